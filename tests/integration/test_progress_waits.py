"""Retries shown as they happen (issue 12, part 6), through the real run.asl.json / agent.asl.json on the local runtime:
a model call is throttled once and then answers; the progress view names the call, the error and the next attempt,
with the interval of the state's ASL Retry (read here from the ASL file, independently of the code under test)."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from stepcrew import wiring
from stepcrew.crew import load_crew
from stepcrew.engines.testing import ScriptedModel, call_tool, label, reply
from stepcrew.llm import registry
from stepcrew.llm.base import ModelThrottledError
from stepcrew.local import hook
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunRequest, RunStatus
from stepcrew.service import create_run, start_run

pytestmark = pytest.mark.integration

PLAN = json.dumps({"subtasks": [{"id": "calc", "title": "Multiply", "instructions": "Compute 6 * 7.",
                                 "tools": ["calculator"], "role": ""}]})
HIGH = json.dumps({"accuracy": 0.95, "completeness": 0.95, "relevance": 0.95, "feedback": "ok"})
THROTTLED = "scripted rate limit (HTTP 429)"


def asl_retrier(machine: str, state: str, error: str) -> dict:
    """The first Retry entry of ``state`` in statemachines/<machine>.asl.json that lists ``error``."""
    definition = json.loads((wiring.STATEMACHINES_DIR / f"{machine}.asl.json").read_text())
    return next(r for r in definition["States"][state]["Retry"] if error in r["ErrorEquals"])


def scripted(name: str, *, plan_throttled: bool = False, act_throttled: bool = False) -> ScriptedModel:
    model = ScriptedModel(by_purpose={
        "plan": ([ModelThrottledError(THROTTLED)] if plan_throttled else []) + [reply(PLAN)],
        "act": ([ModelThrottledError(THROTTLED)] if act_throttled else [])
        + [call_tool("calculator", {"expression": "6 * 7"}), reply("6 * 7 = 42")],
        "synthesize": [reply("# Report\n6 * 7 = 42")], "review": [reply(HIGH)],
        "remember": [reply('{"facts": []}')]})
    registry.register(name, lambda tier: model)
    return model


def plain(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_cli_shows_a_throttled_worker_call_its_error_and_its_next_attempt(capfd, monkeypatch, tmp_path):
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STEPCREW_FAST_WAITS", "1")
    model = scripted("throttled-once-cli", act_throttled=True)
    try:
        from stepcrew.cli import app

        capfd.readouterr()
        result = CliRunner().invoke(app, ["run", "Compute 6 times 7", "--provider", "throttled-once-cli",
                                          "--json", "--no-memory"], catch_exceptions=False)
        out, err = capfd.readouterr()
    finally:
        registry.unregister("throttled-once-cli")
    err = plain(err + (result.stderr if result.stderr_bytes else ""))
    assert result.exit_code == 0, err[-2000:]
    assert json.loads((out + result.stdout).strip().splitlines()[-1])["status"] == "SUCCEEDED"
    assert [label(r).purpose for r in model.requests].count("act") == 3  # the throttled call, then its two turns
    retry = asl_retrier("agent", "CallModel", "ModelThrottledError")
    bound = f"≤ {retry['IntervalSeconds']:g} s" if retry.get("JitterStrategy") == "FULL" else \
        f"{retry['IntervalSeconds']:g} s"
    expected = (f"calc CallModel (worker) attempt 1 failed: ModelThrottledError ({THROTTLED}); retry 1 of "
                f"{retry['MaxAttempts']} in {bound}")
    assert expected in err, err[-3000:]
    assert f"shortened to ≤ {hook.FAST_WAIT_S:g} s by fast waits" in err
    assert err.count("failed: ModelThrottledError") == 1  # one throttle, one line, and no other retry shown


def test_real_waits_show_the_planner_retry_without_a_fast_waits_note():
    from stepcrew.cli import Progress, follow
    from stepcrew.progress_waits import for_run

    scripted("throttled-once-plan", plan_throttled=True)
    try:
        with LocalRuntime(fast_waits=False) as rt:
            req = RunRequest(goal="Compute 6 times 7", provider="throttled-once-plan", tenant="t-waits",
                             memory="off")
            run_id = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt).run_id
            buf = io.StringIO()
            waits = for_run(rt.store, run_id, rt)
            finished = follow(rt.store, run_id, lambda: rt.store.get_run(run_id).status.terminal,
                              Progress(Console(file=buf, width=400, force_terminal=False)), 120, waits=waits)
            status = rt.store.get_run(run_id).status
            assert_local_history_matches_the_api(rt, rt.store.get_run(run_id).execution_arn)
    finally:
        registry.unregister("throttled-once-plan")
    text = plain(buf.getvalue())
    assert finished and status == RunStatus.SUCCEEDED, text[-2000:]
    retry = asl_retrier("run", "Plan", "ModelThrottledError")
    assert (f"Plan (planner) attempt 1 failed: ModelThrottledError ({THROTTLED}); retry 1 of {retry['MaxAttempts']} "
            f"in ≤ {retry['IntervalSeconds']:g} s (full jitter)") in text, text[-3000:]
    assert "fast waits" not in text
    assert re.search(r"(started after|Plan \(planner\) retry 1 of \d+ started after) \d+\.\d\d s", text)
    assert text.index("attempt 1 failed") < text.index("run SUCCEEDED")


def assert_local_history_matches_the_api(rt, arn: str) -> None:
    """Contract of LocalHistoryClient (it reads moto's internals): the events of a finished execution, newest first,
    page by page, are the API's events (ids, order, types, previous ids, times to the millisecond, details)."""
    from stepcrew.progress_waits import LocalHistoryClient, _utc

    rt.wait(arn)
    expected = rt.sfn.get_execution_history(executionArn=arn)["events"]
    local = LocalHistoryClient(rt.sfn, "123456789012", rt.region)
    got, token = [], None
    while True:
        page = local.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=7,
                                           **({"nextToken": token} if token else {}))
        got += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    assert [e["id"] for e in got] == sorted((e["id"] for e in expected), reverse=True)
    for mine, api in zip(reversed(got), expected, strict=True):
        assert (mine["type"], mine["previousEventId"]) == (api["type"], api["previousEventId"])
        assert abs((_utc(mine["timestamp"]) - _utc(api["timestamp"])).total_seconds()) < 0.001
        details = [k for k in api if k.endswith("EventDetails")]
        assert {k: mine[k] for k in details} == {k: api[k] for k in details}
