"""Honest exit codes of the CLI: DECLINED exits 4, NEEDS_REVIEW exits 3 and is answered later with `stepcrew runs
review`, a plan gate (`--require-approval`) is answered from another process with `stepcrew runs approve`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.engines.testing import ScriptedModel, call_tool, reply
from stepcrew.llm import registry

from test_cli import cli_env, stepcrew

pytestmark = pytest.mark.integration

PROVIDER = "scripted-cli"
PLAN = json.dumps({"subtasks": [{"id": "calc", "title": "Compute", "instructions": "Compute 6 * 7.",
                                 "tools": ["calculator"], "role": "data_analyst"}]})
LOW = json.dumps({"accuracy": 0.4, "completeness": 0.4, "relevance": 0.4, "feedback": "weak"})


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    """A provider whose reviewer always scores 0.4, and STEPCREW_HOME in tmp_path (in-process CLI)."""
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path / "home"))
    model = ScriptedModel(by_purpose={"plan": [reply(PLAN)],
                                      "act": [call_tool("calculator", {"expression": "6 * 7"}), reply("42")],
                                      "synthesize": [reply("# Report\n6 * 7 = 42")],
                                      "improve": [reply("# Report v2\n6 * 7 = 42")],
                                      "review": [reply(LOW), reply(LOW)]})
    registry.register(PROVIDER, lambda tier: model)
    yield model
    registry.unregister(PROVIDER)


def run_cli(capfd, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (so the scripted provider is reachable); stdout read at the fd level (the CLI keeps
    the real fd 1 for its JSON)."""
    from stepcrew.cli import app

    capfd.readouterr()
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    out, err = capfd.readouterr()
    return result.exit_code, out + result.stdout, err + (result.stderr if result.stderr_bytes else "")


def test_a_declined_goal_exits_4_with_the_reason(tmp_path):
    proc = stepcrew(tmp_path, "run", "Why are Gentoo penguins the heaviest?", "--data", str(DEMO_DATASET), "--json")
    assert proc.returncode == 4, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "DECLINED" and result["decline"]["code"] == "cause"
    assert result["final_output"] is None


def test_a_failed_review_exits_3_and_runs_review_answers_it_in_another_process(scripted, capfd):
    # When the report fails both rounds (default on_fail: handoff)
    code, out, _ = run_cli(capfd, "run", "Compute 6 times 7", "--provider", PROVIDER, "--json")
    # Then: exit 3, NEEDS_REVIEW, the report shown for the person to judge, a deadline
    assert code == 3
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "NEEDS_REVIEW" and result["final_output"].startswith("# Report v2")
    assert result["review"]["deadline"] and [r["passed"] for r in result["review"]["rounds"]] == [False, False]
    run_id = result["run_id"]
    # When a person accepts it later (the run's process has ended)
    code, out, _ = run_cli(capfd, "runs", "review", run_id, "--accept", "--comment", "checked", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "SUCCEEDED" and result["review"]["decision"]["accept"] is True
    # and a second answer is bad input (exit 2), nothing changed
    code, _, _ = run_cli(capfd, "runs", "review", run_id, "--reject")
    assert code == 2


def test_a_rejected_hand_off_exits_1_and_on_review_fail_fail_never_waits(scripted, capfd):
    code, out, _ = run_cli(capfd, "run", "Compute 6 times 7", "--provider", PROVIDER, "--json")
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
    code, out, _ = run_cli(capfd, "runs", "review", run_id, "--reject", "--comment", "wrong", "--json")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and result["status"] == "FAILED" and result["error"]["code"] == "ReviewRejected"


def test_on_review_fail_fail_exits_1_with_review_failed(scripted, capfd):
    code, out, _ = run_cli(capfd, "run", "Compute 6 times 7", "--provider", PROVIDER, "--on-review-fail", "fail",
                           "--json")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and result["status"] == "FAILED" and result["error"]["code"] == "ReviewFailed"


@pytest.mark.parametrize("reject", [False, True])
def test_require_approval_waits_until_runs_approve_answers_from_another_process(tmp_path, reject):
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "stepcrew.cli", "run", DEMO_GOAL, "--data", str(DEMO_DATASET),
                             "--require-approval", "--json"], env=cli_env(home), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        live = None
        deadline = time.monotonic() + 120
        while live is None and time.monotonic() < deadline and proc.poll() is None:
            found = list((home / "decisions").glob("*.live")) if (home / "decisions").is_dir() else []
            live = found[0] if found else None
            time.sleep(0.1)
        assert live is not None, "the run never waited for approval"
        run_id = live.name.removesuffix(".live")
        args = ["runs", "approve", run_id] + (["--reject", "--comment", "wrong data"] if reject else [])
        answer = stepcrew(home, *args)
        assert answer.returncode == 0, answer.stderr
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out)
    if reject:
        assert proc.returncode == 1 and result["status"] == "FAILED" and result["error"]["code"] == "ApprovalRejected"
    else:
        assert proc.returncode == 0 and result["status"] == "SUCCEEDED", err[-2000:]


def test_runs_approve_without_a_waiting_process_is_bad_input(tmp_path):
    proc = stepcrew(tmp_path / "home", "runs", "approve", "0123456789abcdef0123456789abcdef")
    assert proc.returncode == 2 and "no `stepcrew run` process" in proc.stderr.replace("\n", " ")


def test_a_binary_dataset_is_rejected_by_the_cli_before_anything_is_written(tmp_path):
    bad = Path(tmp_path) / "data.csv"
    bad.write_bytes(bytes(range(256)) * 4)
    proc = stepcrew(tmp_path / "home", "run", "Summarise the data", "--data", str(bad))
    assert proc.returncode == 2 and "binary" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "home" / "state").exists() or not any((tmp_path / "home" / "state").iterdir())
