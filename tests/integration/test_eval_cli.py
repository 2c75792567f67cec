"""`stepcrew eval` as a user runs it: a new process, real runs through the local runtime, the offline rule engine.

The rule engine is being reworked, so these tests check the mechanics (exit codes, one JSON object, its shape, the
gate failing on a figure no report can hold, bad input refused before anything runs), not that the engine's
answers are right; the shipped suite is what measures that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GOAL = ("Compare the average body mass of Adelie, Chinstrap and Gentoo penguins. "
        "Which species is the heaviest on average?")
SUITE = """\
name: cli-mini
description: "One group comparison and one question the data cannot answer."
gate: {{success_min: {success_min}, wrong_but_passed_max: 5}}
datasets:
  penguins: {{file: penguins.csv}}
cases:
  - id: penguins-mass-by-species
    goal: "{goal}"
    dataset: penguins
    type: group_comparison
    answerable: true
    expect:
      entity: "Gentoo"
      figures:
        - {{name: mean_body_mass_g_adelie, value: 3700.66, tolerance: 0.5}}
        - {{name: mean_body_mass_g_chinstrap, value: 3733.09, tolerance: 0.5}}
        - {{name: mean_body_mass_g_gentoo, value: {gentoo}, tolerance: 0.5}}
      tools: [query_dataset]
  - id: penguins-forecast
    goal: "Forecast next year's penguin body mass."
    dataset: penguins
    type: unanswerable
    answerable: false
    reason: forecast
"""
CASE_FIELDS = {"id", "type", "answerable", "run_id", "status", "declined", "declined_correctly", "declined_wrongly",
               "entity_ok", "figures_found", "figures_total", "task_success", "passed_review", "wrong_but_passed",
               "tools_called", "tool_accuracy", "turns", "tokens", "cost_usd", "wall_s", "error", "judge_score"}
TOTAL_FIELDS = {"cases", "answerable", "unanswerable", "success", "declined_correctly", "declined_wrongly", "score",
                "figure_accuracy", "tool_accuracy", "wrong_but_passed", "turns", "tokens", "cost_usd", "wall_s",
                "judge_score"}


def stepcrew(home: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "STEPCREW_HOME": str(home)}
    env.pop("STEPCREW_FAST_WAITS", None)  # the CLI as users run it (eval asks for fast waits itself)
    return subprocess.run([sys.executable, "-m", "stepcrew.cli", "eval", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def write_suite(folder: Path, *, success_min: float = 0.0, gentoo: float = 5076.02) -> Path:
    path = folder / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE.format(goal=GOAL, success_min=success_min, gentoo=gentoo)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stepcrew_home")


@pytest.fixture(scope="module")
def json_run(home, tmp_path_factory):
    return stepcrew(home, str(write_suite(tmp_path_factory.mktemp("suite"))), "--json")


def test_json_prints_one_object_with_every_case(json_run):
    assert json_run.returncode == 0, json_run.stderr[-3000:]
    report = json.loads(json_run.stdout)  # exactly one JSON object: json.loads rejects trailing data
    assert report["suite"] == "cli-mini" and report["provider"] == "rule"
    assert [c["id"] for c in report["cases"]] == ["penguins-mass-by-species", "penguins-forecast"]
    for case in report["cases"]:
        assert set(case) >= CASE_FIELDS
        assert case["status"] in {"SUCCEEDED", "FAILED", "DECLINED", "NEEDS_REVIEW"}, case
        assert case["run_id"]
    answerable, unanswerable = report["cases"]
    assert answerable["answerable"] is True and answerable["figures_total"] == 3
    assert 0 <= answerable["figures_found"] <= 3
    assert unanswerable["answerable"] is False and unanswerable["figures_total"] == 0
    totals = report["totals"]
    assert set(totals) >= TOTAL_FIELDS
    assert (totals["cases"], totals["answerable"], totals["unanswerable"]) == (2, 1, 1)
    assert 0.0 <= totals["score"] <= 1.0
    assert totals["score"] == pytest.approx((totals["success"] + totals["declined_correctly"]) / 2)
    assert set(report["by_type"]) == {"group_comparison", "unanswerable"}


def test_progress_goes_to_stderr_one_line_per_case(json_run):
    lines = [line for line in json_run.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 2
    assert {line.split()[1] for line in lines} == {"penguins-mass-by-species", "penguins-forecast"}


def test_gate_fails_on_a_figure_no_report_holds(home, tmp_path):
    suite = write_suite(tmp_path, success_min=1.0, gentoo=123456.78)
    out = tmp_path / "out"
    proc = stepcrew(home, str(suite), "--gate", "--case", "penguins-mass-by-species", "--out", str(out))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "success_min 1" in proc.stderr
    assert proc.stdout.startswith("# Eval: cli-mini")  # the Markdown report
    data = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    [case] = data["cases"]
    assert case["id"] == "penguins-mass-by-species"
    assert case["task_success"] is False
    assert "mean_body_mass_g_gentoo" in case["figures_missing"]
    assert (out / "eval.md").read_text(encoding="utf-8").count("| penguins-mass-by-species |") == 1


@pytest.mark.parametrize("args, expected", [
    (["{bad}"], "malformed YAML"),
    (["{good}", "--provider", "nosuchprovider"], "unknown provider"),
    (["{good}", "--case", "no-such-case"], "unknown case id"),
    (["{missing}"], "cannot read suite file"),
])
def test_bad_input_exits_2_and_runs_nothing(home, tmp_path, args, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncases: [\n  - id: a\n", encoding="utf-8")
    paths = {"bad": str(bad), "good": str(write_suite(tmp_path)), "missing": str(tmp_path / "missing.yaml")}
    proc = stepcrew(home, *[a.format(**paths) for a in args], "--json", timeout=60)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "case(s)" not in proc.stderr  # the eval did not start
