"""The CI gate: the shipped eval suite on the offline rule engine must meet its own thresholds (success + correct
declines >= 90 %, no wrong report that passed review), and the gate must fail when the engine is broken.

The ground truth the suite checks against is computed with pandas (``evals/suites/analyst/truth.py``), not by the
engine under test; ``tests/unit/evals/test_suite_truth.py`` checks the suite's figures against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stepcrew.engines.rules import analysis
from stepcrew.evals.runner import gate, run_suite
from stepcrew.evals.suite import load_suite

pytestmark = pytest.mark.integration


def test_the_shipped_suite_passes_its_gate_on_the_rule_engine(tmp_path):
    env = {**os.environ, "STEPCREW_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "stepcrew.cli", "eval", "analyst", "--gate", "--json",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    totals = report["totals"]
    assert totals["cases"] >= 30 and totals["unanswerable"] >= 4
    assert totals["score"] >= 0.9 and totals["wrong_but_passed"] == 0, json.dumps(totals)
    assert (tmp_path / "out" / "eval.md").read_text().count("\n|") > totals["cases"]


def test_the_gate_fails_on_a_deliberately_broken_engine(monkeypatch):
    # Given: a rule engine whose aggregates are silently wrong (MIN instead of the asked mean): its reports still
    # trace every figure to a tool result, so its own rubric passes them
    monkeypatch.setitem(analysis._AGG_SQL, "avg", "min({})")
    suite = load_suite("analyst")
    cases = ["penguins-mass-by-species", "cars-mpg-by-origin", "penguins-gentoo-flipper", "weather-forecast"]
    # When the eval runs those cases
    report = run_suite(suite, case_ids=cases, timeout_s=120)
    # Then the checks against the independent truth catch it: wrong reports that passed review, and a failed gate
    assert report.totals.wrong_but_passed >= 2
    failures = gate(report, suite.gate)
    assert any("wrong_but_passed" in f for f in failures) and any("success_min" in f for f in failures), failures
