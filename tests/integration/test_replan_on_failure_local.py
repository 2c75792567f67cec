"""Replanning after a failed sub-task through the real run ASL on the local runtime (the CLI in this process, a
scripted provider): a sub-task whose worker answers nothing twice fails (EmptyAnswerError); the planner replans the
remaining work; the run SUCCEEDS with a report, and `runs show` shows plan versions v1 and v2. When the replanned
sub-task fails too, the run FAILS with the original failure and "replanning exhausted"; with --max-replans 0 it fails
at once, as before replanning existed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stepcrew.engines.testing import ScriptedModel, reply
from stepcrew.llm import registry

pytestmark = pytest.mark.integration

PROVIDER = "scripted-replan"
GOAL = "Compute 6 times 7"
PLAN = json.dumps({"subtasks": [
    {"id": "setup", "title": "Note the inputs", "instructions": "Name the two numbers.", "tools": [], "role": ""},
    {"id": "calc", "title": "Multiply", "instructions": "Compute 6 * 7.", "tools": ["calculator"], "role": "",
     "depends_on": ["setup"]}]})
REPLAN = json.dumps({"subtasks": [{"id": "calc", "title": "Multiply again", "instructions": "Compute 6 * 7, then "
                                   "answer with the product.", "tools": ["calculator"], "role": "",
                                   "depends_on": ["setup"]}], "rationale": "answer in text this time"})
HIGH = json.dumps({"accuracy": 0.95, "completeness": 0.95, "relevance": 0.95, "feedback": "ok"})
EMPTY_TWICE = [reply(""), reply("")]


@pytest.fixture
def provider(monkeypatch, tmp_path):
    """``provider(model)`` registers ``model`` as PROVIDER; STEPCREW_HOME in tmp_path (in-process CLI)."""
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path / "home"))
    yield lambda model: registry.register(PROVIDER, lambda tier: model)
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def run_cli(capfd, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (the scripted provider is reachable); stdout read at the fd level."""
    from stepcrew.cli import app

    capfd.readouterr()
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    out, err = capfd.readouterr()
    return result.exit_code, out + result.stdout, err + (result.stderr if result.stderr_bytes else "")


def _model(calc_v2: list) -> ScriptedModel:
    return ScriptedModel(by_purpose={"plan": [reply(PLAN)], "replan": [reply(REPLAN)],
                                     "synthesize": [reply("# Report\n6 * 7 = 42")], "review": [reply(HIGH)]},
                         by_subtask={"setup": [reply("The numbers are 6 and 7.")], "calc": list(EMPTY_TWICE),
                                     "calc-v2": calc_v2})


def test_a_failed_subtask_is_replanned_and_the_run_succeeds_with_plan_versions(provider, capfd):
    # Given: calc's worker answers nothing twice; the replanned calc (calc-v2) answers
    model = _model([reply("6 * 7 = 42")])
    provider(model)
    # When
    code, out, err = run_cli(capfd, "run", GOAL, "--provider", PROVIDER, "--no-memory", "--json")
    # Then: SUCCEEDED with the report; the kept sub-task ran once, its output kept; calc-v2 replaced calc
    assert code == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "SUCCEEDED" and result["final_output"].startswith("# Report")
    assert {s["id"]: s["status"] for s in result["subtasks"]} == {"setup": "SUCCEEDED", "calc-v2": "SUCCEEDED"}
    assert model.remaining() == {"default": 0, "purpose:plan": 0, "purpose:replan": 0, "purpose:synthesize": 0,
                                 "purpose:review": 0, "subtask:setup": 0, "subtask:calc": 0, "subtask:calc-v2": 0}
    (replan,) = model.requests_for("replan")
    assert "Sub-task calc failed with EmptyAnswerError" in replan.messages[-1].content
    assert "The numbers are 6 and 7." in replan.messages[-1].content  # the kept output, as its summary
    # runs show: the plan versions, JSON and text
    code, out, _ = run_cli(capfd, "runs", "show", result["run_id"], "--json")
    assert code == 0
    versions = json.loads(out.strip().splitlines()[-1])["plan_versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["reason"] == "initial plan"
    assert [(i["id"], i["status"], i["error"]) for i in versions[0]["subtasks"]] == [
        ("setup", "SUCCEEDED", None), ("calc", "FAILED", "EmptyAnswerError")]
    assert versions[1]["reason"].startswith("sub-task calc failed: EmptyAnswerError")
    assert versions[1]["kept"] == ["setup"] and versions[1]["replaced"] == ["calc"]
    assert [i["id"] for i in versions[1]["subtasks"]] == ["calc-v2"] and versions[1]["wave_offset"] == 2
    code, _, err = run_cli(capfd, "runs", "show", result["run_id"])
    assert code == 0
    assert "plan v1: initial plan" in err and "plan v2: sub-task calc failed: EmptyAnswerError" in err


def test_when_the_replan_fails_too_the_run_fails_with_the_original_reason(provider, capfd):
    provider(_model(list(EMPTY_TWICE)))  # calc-v2 answers nothing twice as well; max_replans is 1 (default)
    code, out, err = run_cli(capfd, "run", GOAL, "--provider", PROVIDER, "--no-memory", "--json")
    assert code == 1, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "FAILED"
    error = result["error"]
    assert error["code"] == "EmptyAnswerError"
    assert error["message"].startswith("sub-task calc failed: EmptyAnswerError: ")
    assert "replanning exhausted: 1 of at most 1 replan(s) used" in error["message"]
    assert "sub-task calc-v2 failed: EmptyAnswerError" in error["message"]


def test_max_replans_0_fails_the_run_at_once_as_before(provider, capfd):
    model = _model([])
    provider(model)
    code, out, err = run_cli(capfd, "run", GOAL, "--provider", PROVIDER, "--no-memory", "--json",
                             "--max-replans", "0")
    assert code == 1, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "FAILED" and result["error"]["code"] == "EmptyAnswerError"
    assert "replanning" not in result["error"]["message"] and "no text twice" in result["error"]["message"]
    assert model.requests_for("replan") == []
    assert {s["id"]: s["status"] for s in result["subtasks"]} == {"setup": "SUCCEEDED", "calc": "FAILED"}
