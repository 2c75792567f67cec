"""A local run cut off by `--timeout` says so (issue 12): exit 1, and its JSON is FAILED with the reason, its
sub-tasks closed, not a RUNNING run with no error."""

from __future__ import annotations

import json

import pytest

from stepcrew.data import DEMO_DATASET, DEMO_GOAL

from test_cli import stepcrew

pytestmark = pytest.mark.integration


def test_a_run_cut_off_by_its_timeout_is_failed_with_the_reason(tmp_path):
    proc = stepcrew(tmp_path / "home", "run", DEMO_GOAL, "--data", str(DEMO_DATASET), "--timeout", "0.3", "--json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "FAILED"
    assert result["error"]["code"] == "LocalRuntimeExited" and "--timeout of 0.3 s" in result["error"]["message"]
    assert all(s["status"] in ("SUCCEEDED", "FAILED") for s in result["subtasks"])
    shown = stepcrew(tmp_path / "home", "runs", "show", result["run_id"], "--json")
    assert json.loads(shown.stdout)["status"] == "FAILED"
