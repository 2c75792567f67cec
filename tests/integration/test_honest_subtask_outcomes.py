"""Honest sub-task outcomes on the local runtime (issue 12): an empty worker answer is asked again once, then fails
the sub-task with the reason; a run cut off by the runtime (its exit, the CLI's --timeout) closes its open sub-tasks."""

from __future__ import annotations

import json
import time

import pytest
from stepcrew.crew import load_crew
from stepcrew.engines.testing import ScriptedModel, reply
from stepcrew.llm import registry
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunRequest, RunStatus, SubtaskStatus
from stepcrew.service import create_run, start_run

pytestmark = pytest.mark.integration

PLAN = json.dumps({"subtasks": [{"id": "calc", "title": "Multiply", "instructions": "Compute 6 * 7.",
                                 "tools": ["calculator"], "role": ""}]})
HIGH = json.dumps({"accuracy": 0.95, "completeness": 0.95, "relevance": 0.95, "feedback": "ok"})


@pytest.fixture(scope="module")
def rt():
    with LocalRuntime(fast_waits=True) as runtime:
        yield runtime


@pytest.mark.parametrize("answers,expected", [
    ((reply(""), reply("6 * 7 = 42")), RunStatus.SUCCEEDED),
    ((reply(""), reply("  ")), RunStatus.FAILED),
])
def test_an_empty_answer_is_asked_again_once_then_fails_the_subtask(rt, answers, expected):
    name = f"empty-{expected.value.lower()}"
    model = ScriptedModel(by_purpose={"plan": [reply(PLAN)], "act": list(answers),
                                      "synthesize": [reply("# Report\n6 * 7 = 42")], "review": [reply(HIGH)],
                                      "remember": [reply('{"facts": []}')]})
    registry.register(name, lambda tier: model)
    try:
        req = RunRequest(goal="Compute 6 times 7", provider=name, tenant=f"t-{name}", memory="off")
        run_id = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt).run_id
        deadline = time.monotonic() + 60
        while not rt.store.get_run(run_id).status.terminal and time.monotonic() < deadline:
            time.sleep(0.05)
        run = rt.store.get_run(run_id)
        assert run.status == expected, run.error
        (record,) = rt.store.list_subtasks(run_id)
        if expected == RunStatus.FAILED:
            assert record.status == SubtaskStatus.FAILED and record.error.code == "EmptyAnswerError"
            assert run.error.code == "EmptyAnswerError" and "no text twice" in run.error.message
        else:
            assert record.status == SubtaskStatus.SUCCEEDED and record.output == "6 * 7 = 42"
    finally:
        registry.unregister(name)


def test_a_cut_off_run_is_failed_with_its_open_subtasks(rt):
    import threading

    from stepcrew.engines.testing import FunctionModel, label

    release = threading.Event()
    plan = json.dumps({"subtasks": [
        {"id": "first", "title": "First", "instructions": "Compute 6 * 7.", "tools": ["calculator"], "role": ""},
        {"id": "second", "title": "Second", "instructions": "Add 1.", "tools": ["calculator"], "role": "",
         "depends_on": ["first"]}]})

    def answer(request):
        if label(request).purpose == "plan":
            return reply(plan)
        release.wait(10)  # the first sub-task is in flight when the run is cut off
        return reply("42")

    registry.register("cut-off", lambda tier: FunctionModel(answer))
    try:
        req = RunRequest(goal="Compute 6 times 7", provider="cut-off", tenant="t-cut-off", memory="off")
        run_id = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt).run_id
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = rt.store.list_subtasks(run_id)
            if records and records[0].status == SubtaskStatus.RUNNING:
                break
            time.sleep(0.02)
        threading.Timer(0.3, release.set).start()
        rt.cut_off(run_id, "cut off by the test")
        run = rt.store.get_run(run_id)
        assert run.status == RunStatus.FAILED and run.error.code == "LocalRuntimeExited"
        assert run.error.message == "cut off by the test"
        second = {r.subtask_id: r for r in rt.store.list_subtasks(run_id)}["second"]
        assert second.status == SubtaskStatus.FAILED and second.error.code == "RunFailed"
        assert "LocalRuntimeExited" in second.error.message
    finally:
        release.set()
        registry.unregister("cut-off")


def test_oversized_model_output_is_answered_or_capped_and_the_run_recovers(rt):
    """A 300 KB write_section argument (was States.DataLimitExceeded), a 450 KB worker answer and a 600 KB CJK report
    (were StoreError): the model is told its arguments are too large and tries again smaller; the answer and the
    report are stored cut, in bytes; the run SUCCEEDS."""
    from stepcrew.engines.testing import call_tool
    from stepcrew.models import FINAL_OUTPUT_MAX_BYTES, TOOL_ARGUMENTS_MAX_BYTES

    seen = []

    def second_call(request):
        seen.append(request.messages[-1])  # the tool message answering the oversized call
        return call_tool("write_section", {"heading": "h", "summary": "short"}, call_id="c2")

    plan = json.dumps({"subtasks": [{"id": "write", "title": "Write", "instructions": "Write a section.",
                                     "tools": ["write_section"], "role": "writer"}]})
    model = ScriptedModel(by_purpose={
        "plan": [reply(plan)],
        "act": [call_tool("write_section", {"heading": "h", "summary": "x" * 300_000}, call_id="c1"), second_call,
                reply("答" * 150_000)],  # 450 KB
        "synthesize": [reply("報" * 200_000)],  # 600 KB
        "review": [reply(HIGH)]})
    registry.register("oversized", lambda tier: model)
    try:
        req = RunRequest(goal="Write a section", provider="oversized", tenant="t-oversized", memory="off")
        run_id = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt).run_id
        deadline = time.monotonic() + 60
        while not rt.store.get_run(run_id).status.terminal and time.monotonic() < deadline:
            time.sleep(0.05)
        run = rt.store.get_run(run_id)
        assert run.status == RunStatus.SUCCEEDED, run.error
        (refusal,) = seen[0].tool_results
        assert refusal.error.type == "InvalidArguments" and str(TOOL_ARGUMENTS_MAX_BYTES) in refusal.error.message
        (record,) = rt.store.list_subtasks(run_id)
        assert record.output.endswith("[... truncated]") and len(record.output.encode()) <= 150_000
        report = rt.store.get_report(run_id)
        assert len(report.encode()) <= FINAL_OUTPUT_MAX_BYTES and "truncated" in report[-60:]
    finally:
        registry.unregister("oversized")

