"""Tool-call arguments by reference (issue 12, part 5): the agent hands large write_section arguments to the state as a
reference to the stored assistant message; the tool resolves it through the store, for the run's tenant only."""

from __future__ import annotations

import hashlib
import json

import pytest
from stepcrew.crew import load_crew
from stepcrew.domain.agent import (
    DROPPED_KEY,
    MESSAGE_BODY_MAX_BYTES,
    TOO_LARGE_KEY,
    bound_arguments,
    check_loop,
    fit_message,
    split_calls,
)
from stepcrew.models import (
    TOOL_ARGUMENTS_MAX_BYTES,
    TOOL_ARGUMENTS_TURN_MAX_BYTES,
    Message,
    Run,
    ToolCall,
    ToolContext,
    ToolInvocation,
)
from stepcrew.store.memory import MemoryRunStore
from stepcrew.store.schema import message_item
from stepcrew.tools.argrefs import (
    ARGUMENTS_INLINE_MAX_BYTES,
    REF_KEY,
    ArgumentsReader,
    ArgumentsUnavailable,
    by_reference,
)
from stepcrew.tools.base import invoke_event
from stepcrew.tools.calculator import Calculator
from stepcrew.tools.write_section import WriteSection
from stepcrew.wiring import FUNCTIONS

SUMMARY = "Adelie penguins weigh 3.7 kg on average. " * 80  # ~3.3 KB: over the inline threshold, valid for the tool


def section_call(call_id: str = "c1", summary: str = SUMMARY) -> ToolCall:
    return ToolCall(call_id=call_id, name="write_section", arguments={"heading": "Body mass", "summary": summary})


@pytest.fixture
def store(run_store):
    return run_store  # tests/unit/conftest.py: both adapters


def stored_run(store, run_id: str, tenant: str, *calls: ToolCall) -> None:
    """A run of ``tenant`` whose sub-task ``write`` stored an assistant message with ``calls``."""
    store.create_run(Run(run_id=run_id, tenant=tenant, goal="Write it up", crew=load_crew("default")))
    store.append_messages(run_id, "write", [Message(role="user", content="write"),
                                            Message(role="assistant", tool_calls=list(calls))])


def invocation(call: ToolCall, run_id: str = "run-a", tenant: str | None = "tenant-a") -> ToolInvocation:
    return ToolInvocation(context=ToolContext(run_id=run_id, subtask_id="write", tenant=tenant), call=call)


def test_only_large_arguments_of_a_tool_taking_references_go_by_reference():
    small = section_call(summary="short")
    assert by_reference(small, "run-a", "write") == small
    big = section_call()
    handed = by_reference(big, "run-a", "write")
    (ref,) = handed.arguments.values()
    assert list(handed.arguments) == [REF_KEY] and (handed.call_id, handed.name) == ("c1", "write_section")
    size = len(json.dumps(big.arguments, ensure_ascii=False, separators=(",", ":")).encode())
    assert size > ARGUMENTS_INLINE_MAX_BYTES and ref["bytes"] == size
    assert ref["sha256"] == hashlib.sha256(json.dumps(big.arguments, sort_keys=True, separators=(",", ":"),
                                                      ensure_ascii=False).encode()).hexdigest()
    assert (ref["run_id"], ref["subtask_id"], ref["call_id"]) == ("run-a", "write", "c1")
    assert len(json.dumps(handed.model_dump())) < 400  # what the state carries instead of ~3.3 KB
    # a tool whose function has no table access keeps its (capped) arguments inline
    calc = ToolCall(call_id="c2", name="calculator", arguments={"expression": "1+" * 2000 + "1"})
    assert by_reference(calc, "run-a", "write") == calc


def test_the_wiring_grants_the_table_read_to_exactly_the_tools_taking_references():
    from stepcrew.tools.registry import TOOLS

    readers = {spec.tool for spec in FUNCTIONS.values() if spec.reads_arguments}
    assert readers == {name for name, tool in TOOLS.items() if tool.arguments_by_reference} == {"write_section"}


def test_a_reference_resolves_to_the_stored_arguments_and_the_tool_runs(store):
    stored_run(store, "run-a", "tenant-a", section_call("c0", "other"), section_call())
    handed = by_reference(section_call(), "run-a", "write")
    resolved = ArgumentsReader(store).resolve(invocation(handed))
    assert resolved.call.arguments == section_call().arguments
    result = invoke_event(WriteSection(), invocation(handed).model_dump(mode="json"), arguments=ArgumentsReader(store))
    assert result["ok"] is True and "Adelie penguins weigh 3.7 kg" in result["content"]["markdown"]


def test_a_reference_to_another_tenants_run_is_refused(store):
    secret = section_call(summary="Tenant B's confidential figures: 4242 units. " * 60)
    stored_run(store, "run-b", "tenant-b", secret)
    to_b = by_reference(secret, "run-b", "write")
    reader = ArgumentsReader(store)
    # the invocation names B's run but A's tenant (a state or a caller pointing elsewhere): the read is refused
    with pytest.raises(ArgumentsUnavailable):
        reader.resolve(invocation(to_b, run_id="run-b", tenant="tenant-a"))
    result = invoke_event(WriteSection(), invocation(to_b, run_id="run-b", tenant="tenant-a").model_dump(mode="json"),
                          arguments=reader)
    assert result["ok"] is False and result["error"]["type"] == "ArgumentsUnavailable"
    assert "4242" not in json.dumps(result) and "run-b" not in json.dumps(result)
    # A's own run, a reference to B's run: refused before any read
    stored_run(store, "run-a", "tenant-a", section_call())
    with pytest.raises(ArgumentsUnavailable):
        reader.resolve(invocation(to_b, run_id="run-a", tenant="tenant-a"))
    # and B's own invocation resolves it (the check is not a blanket refusal)
    assert reader.resolve(invocation(to_b, run_id="run-b", tenant="tenant-b")).call.arguments == secret.arguments


@pytest.mark.parametrize("case", ["no-tenant", "other-call", "changed", "extra-key", "malformed", "not-stored"])
def test_a_reference_that_does_not_check_out_is_refused(store, case):
    stored_run(store, "run-a", "tenant-a", section_call())
    handed = by_reference(section_call(), "run-a", "write")
    ref = handed.arguments[REF_KEY]
    tenant = "tenant-a"
    if case == "no-tenant":
        tenant = None
    elif case == "other-call":
        handed = handed.model_copy(update={"call_id": "c9"})
    elif case == "changed":  # a reference whose digest is not the stored arguments'
        handed = handed.model_copy(update={"arguments": {REF_KEY: {**ref, "sha256": "0" * 64}}})
    elif case == "extra-key":
        handed = handed.model_copy(update={"arguments": {REF_KEY: ref, "heading": "x"}})
    elif case == "malformed":
        handed = handed.model_copy(update={"arguments": {REF_KEY: {"run_id": "run-a"}}})
    elif case == "not-stored":
        handed = by_reference(section_call("c1", SUMMARY + "!"), "run-a", "write")
    with pytest.raises(ArgumentsUnavailable):
        ArgumentsReader(store).resolve(invocation(handed, tenant=tenant))


def test_a_tool_taking_no_references_refuses_one():
    handed = by_reference(section_call(), "run-a", "write").model_copy(update={"name": "calculator"})
    result = invoke_event(Calculator(), invocation(handed).model_dump(mode="json"),
                          arguments=ArgumentsReader(MemoryRunStore()))
    assert result["ok"] is False and result["error"]["type"] == "ArgumentsUnavailable"


def test_a_model_cannot_send_a_reference_itself():
    forged = ToolCall(call_id="c1", name="write_section", arguments={REF_KEY: {"run_id": "run-b"}})
    run, (refusal,) = split_calls([forged], ["write_section"])
    assert run == [] and refusal.error.type == "InvalidArguments" and REF_KEY in refusal.error.message


def test_calls_past_the_turns_stored_budget_are_kept_as_sizes_and_asked_again_later():
    each = TOOL_ARGUMENTS_MAX_BYTES - 200
    calls = [ToolCall(call_id=f"c{i}", name="write_section", arguments={"heading": "h", "summary": chr(65 + i) * each})
             for i in range(20)]
    stored = bound_arguments(Message(role="assistant", tool_calls=calls))
    kept = [c for c in stored.tool_calls if DROPPED_KEY not in c.arguments]
    assert 0 < len(kept) < 20 and kept == calls[:len(kept)]
    assert sum(len(json.dumps(c.arguments).encode()) for c in kept) <= TOOL_ARGUMENTS_TURN_MAX_BYTES
    run, refused = split_calls(stored.tool_calls, ["write_section"])
    assert [c.call_id for c in run] == [c.call_id for c in kept]
    assert {r.error.type for r in refused} == {"LimitExceeded"} and len(refused) == 20 - len(kept)
    assert len(stored.model_dump_json().encode()) <= MESSAGE_BODY_MAX_BYTES


def test_equal_sized_oversized_calls_are_not_a_loop():
    """8 different calls of ~40 KB have the same stored form (their size): refused, never a repeated call."""
    calls = [ToolCall(call_id=f"c{i}", name="write_section", arguments={"heading": "h", "summary": chr(97 + i) * 40_000})
             for i in range(8)]
    stored = bound_arguments(Message(role="assistant", tool_calls=calls))
    assert all(c.arguments == {TOO_LARGE_KEY: stored.tool_calls[0].arguments[TOO_LARGE_KEY]} for c in stored.tool_calls)
    check_loop([stored, stored], stored.tool_calls, "write")  # no ToolLoopError
    run, refused = split_calls(stored.tool_calls, ["write_section"])
    assert run == [] and [r.error.type for r in refused] == ["InvalidArguments"] * 8


@pytest.mark.parametrize("text", ["a\n" * 150_000, '"' * 250_000, "報\n" * 120_000, "\x01" * 100_000])
def test_a_message_is_cut_to_its_item_counting_json_escapes(text):
    message = fit_message(Message(role="user", content=text))
    body = message.model_dump_json().encode()
    assert len(body) <= MESSAGE_BODY_MAX_BYTES and message.content.endswith("[... truncated]")
    assert text.startswith(message.content[: -len("\n[... truncated]")])
    item = message_item("r" * 39, "w" * 40, 999_999, message)
    from stepcrew.store.schema import check_item_size

    check_item_size(item)  # under DynamoDB's 400 KB
    small = Message(role="user", content="short")
    assert fit_message(small) == small
