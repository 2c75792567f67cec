"""Large model output through the real ASL on the local runtime (issue 12, part 5): a 300 KB tool argument, 8 calls of
~40 KB in one turn and a ~600 KB CJK report end in a recovered run (the model is told and fixes it), never in
States.DataLimitExceeded or a StoreError; write_section arguments over 2 KiB reach the tool by reference."""

from __future__ import annotations

import json
import time

import pytest
from stepcrew.crew import load_crew
from stepcrew.engines.testing import ScriptedModel, reply
from stepcrew.llm import registry
from stepcrew.llm.testing import call_tool, call_tools
from stepcrew.local import hook
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import FINAL_OUTPUT_MAX_BYTES, TOOL_ARGUMENTS_MAX_BYTES, RunRequest, RunStatus
from stepcrew.service import create_run, start_run
from stepcrew.tools.argrefs import ARGUMENTS_INLINE_MAX_BYTES, REF_KEY

pytestmark = pytest.mark.integration

PLAN = json.dumps({"subtasks": [{"id": "write", "title": "Write", "instructions": "Write a section.",
                                 "tools": ["write_section"], "role": "writer"}]})
HIGH = json.dumps({"accuracy": 0.95, "completeness": 0.95, "relevance": 0.95, "feedback": "ok"})
#: Valid write_section arguments over the inline threshold: they go by reference.
SUMMARY = "Gentoo penguins are the heaviest species in the sample, at 5.1 kg on average. " * 45


@pytest.fixture(scope="module")
def rt():
    with LocalRuntime(fast_waits=True) as runtime:
        events: list[dict] = []
        real = hook.resolve_handler("tool_write_section")

        def recording(event, context):  # what the state machine hands the tool, then the real handler
            events.append(json.loads(json.dumps(event)))
            return real(event, context)

        runtime.register_handler("tool_write_section", recording)
        runtime.tool_events = events
        yield runtime


def run_with(rt, name: str, model: ScriptedModel):
    registry.register(name, lambda tier: model)
    try:
        req = RunRequest(goal="Write a section on penguins", provider=name, tenant=f"t-{name}", memory="off")
        run_id = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt).run_id
        deadline = time.monotonic() + 90
        while not rt.store.get_run(run_id).status.terminal and time.monotonic() < deadline:
            time.sleep(0.05)
        return rt.store.get_run(run_id)
    finally:
        registry.unregister(name)


def test_a_300_kb_argument_is_refused_then_the_fixed_call_runs_by_reference(rt):
    seen = []

    def fixed(request):
        seen.append(request.messages[-1])  # the tool message answering the 300 KB call
        return call_tool("write_section", {"heading": "Body mass", "summary": SUMMARY}, call_id="c2")

    def done(request):
        seen.append(request.messages[-1])  # the tool message with the real result
        return reply("Gentoo penguins are the heaviest (5.1 kg).")

    model = ScriptedModel(by_purpose={
        "plan": [reply(PLAN)],
        "act": [call_tool("write_section", {"heading": "h", "summary": "x" * 300_000}, call_id="c1"), fixed, done],
        "synthesize": [reply("# Report\nGentoo penguins are the heaviest.")], "review": [reply(HIGH)]})
    before = len(rt.tool_events)
    run = run_with(rt, "args-300kb", model)
    assert run.status == RunStatus.SUCCEEDED, run.error
    (refusal,) = seen[0].tool_results
    assert refusal.error.type == "InvalidArguments" and str(TOOL_ARGUMENTS_MAX_BYTES) in refusal.error.message
    (result,) = seen[1].tool_results
    assert result.ok and "5.1 kg on average" in result.content["markdown"]  # the tool read the stored arguments
    (event,) = rt.tool_events[before:]  # the refused call never reached the tool
    assert list(event["call"]["arguments"]) == [REF_KEY] and event["context"]["tenant"] == "t-args-300kb"
    assert len(json.dumps(SUMMARY)) > ARGUMENTS_INLINE_MAX_BYTES and SUMMARY[:40] not in json.dumps(event)


def test_eight_calls_of_40_kb_in_one_turn_are_refused_and_the_model_recovers(rt):
    seen = []

    def recover(request):
        seen.append(request.messages[-1])
        return call_tool("write_section", {"heading": "Body mass", "summary": "Gentoo: 5.1 kg."}, call_id="small")

    big = [("write_section", {"heading": f"Part {i}", "summary": chr(0x4E00 + i) * 13_500}) for i in range(8)]  # 40 KB
    model = ScriptedModel(by_purpose={
        "plan": [reply(PLAN)], "act": [call_tools(*big), recover, reply("Gentoo penguins weigh 5.1 kg.")],
        "synthesize": [reply("# Report\nGentoo: 5.1 kg.")], "review": [reply(HIGH)]})
    before = len(rt.tool_events)
    run = run_with(rt, "args-8x40kb", model)
    assert run.status == RunStatus.SUCCEEDED, run.error
    refusals = seen[0].tool_results
    assert len(refusals) == 8 and {r.error.type for r in refusals} == {"InvalidArguments"}
    (event,) = rt.tool_events[before:]  # only the small call ran, inline
    assert event["call"]["arguments"] == {"heading": "Body mass", "summary": "Gentoo: 5.1 kg."}


def test_a_600_kb_cjk_report_is_stored_cut_in_bytes_and_says_so(rt):
    text = "報" * 199_000  # 597,000 bytes of UTF-8
    model = ScriptedModel(by_purpose={
        "plan": [reply(PLAN)], "act": [reply("Gentoo penguins weigh 5.1 kg.")],
        "synthesize": [reply(text)], "review": [reply(HIGH)]})
    run = run_with(rt, "report-600kb", model)
    assert run.status == RunStatus.SUCCEEDED, run.error
    report = rt.store.get_report(run.run_id)
    assert len(report.encode()) <= FINAL_OUTPUT_MAX_BYTES < len(text.encode())
    assert report.startswith("報" * 1000) and report.rstrip().endswith("[... report truncated at the size limit]")
