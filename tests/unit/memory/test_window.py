"""Short-term memory (stepcrew.memory.window): a request is fitted to its role's token budget by summarizing the
oldest tool results, then dropping the oldest whole turns; the opening (system prompt, sub-task prompt) and the last
turn are never touched; every tool call stays answered; the output converts for every provider; the engine sends
the fitted request and records the numbers on the turn (``EngineCall.context_*`` and the ``model_turn`` event).

Expected token counts are computed here by hand (``hand_tokens``: characters / 3.5 rounded up + 8 per message +
schemas and 400 when tools are sent, the rule the budget gate documents), never by asking the window module."""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
from stepcrew.wiring import tool_functions
from stepcrew.crew import load_crew
from stepcrew.domain.agent import agent_turn
from stepcrew.engines.facts import ActFacts, SubtaskFacts
from stepcrew.engines.llm import LLMEngine
from stepcrew.engines.testing import ScriptedModel, call_tool, reply
from stepcrew.events import AgentTurnInput
from stepcrew.llm import registry
from stepcrew.llm.anthropic import to_anthropic_messages
from stepcrew.llm.base import ModelRequest, ModelSettings, ToolSpec
from stepcrew.llm.bedrock import to_bedrock_messages
from stepcrew.llm.openai import to_openai_messages
from stepcrew.llm.testing import FunctionModel
from stepcrew.memory.window import (
    DEFAULT_CONTEXT_TOKENS,
    SUMMARY_PREFIX,
    WindowReport,
    estimate_tokens,
    fit,
    omission_note,
    summarize_result,
)
from stepcrew.models import Message, Plan, Run, RunStatus, SubTask, ToolCall, ToolError, ToolResult, ToolScreen
from stepcrew.resilience.ladder import estimate_input_tokens
from stepcrew.store.memory import MemoryRunStore

#: The agent ASL's tool_functions constant, as a deployed stack fills it.
TOOL_FNS = tool_functions(lambda n: f"arn:aws:lambda:us-east-1:123456789012:function:stepcrew-{n}")

SPEC = ToolSpec(name="calculator", description="Evaluates arithmetic.", parameters={"type": "object"})


# ---------------------------------------------------------------------------------------------- helpers
def hand_chars(m: Message) -> int:
    size = len(m.content)
    if m.tool_calls:
        size += len(json.dumps([c.model_dump(mode="json") for c in m.tool_calls]))
    if m.tool_results:
        size += len(json.dumps([r.model_dump(mode="json") for r in m.tool_results], default=str))
    return size


def hand_tokens(messages: list[Message], tools: list[ToolSpec] = ()) -> int:
    chars = sum(hand_chars(m) for m in messages) + sum(len(t.model_dump_json()) for t in tools)
    return math.ceil(chars / 3.5) + 8 * len(messages) + (400 if tools else 0)


def turn(i: int, content, *, ok: bool = True) -> list[Message]:
    """Assistant turn ``c<i>`` (one calculator call) and the tool message answering it."""
    call = ToolCall(call_id=f"c{i}", name="calculator", arguments={})
    result = (ToolResult(call_id=call.call_id, name="calculator", ok=True, content=content) if ok else
              ToolResult(call_id=call.call_id, name="calculator", ok=False,
                         error=ToolError(type="QueryError", message=content)))
    return [Message(role="assistant", tool_calls=[call]), Message(role="tool", tool_results=[result])]


OPENING = [Message(role="system", content="s" * 700), Message(role="user", content="u" * 700)]


def conversation(middle: int = 4, size: int = 7000, last: int = 100) -> list[Message]:
    """The opening (1,400 characters), ``middle`` turns with results of ``size`` characters, and a last turn with
    a result of ``last`` characters."""
    msgs = list(OPENING)
    for i in range(1, middle + 1):
        msgs += turn(i, "x" * size)
    return msgs + turn(middle + 1, "y" * last)


def is_summary(r: ToolResult) -> bool:
    return isinstance(r.content, str) and r.content.startswith(SUMMARY_PREFIX)


def summarized_ids(msgs: list[Message]) -> list[str]:
    return [r.call_id for m in msgs for r in m.tool_results if is_summary(r)]


def assistant_ids(msgs: list[Message]) -> list[str]:
    return [c.call_id for m in msgs if m.role == "assistant" for c in m.tool_calls]


def assert_calls_answered(msgs: list[Message]) -> None:
    """Every assistant message with tool calls is followed by one tool message answering exactly those ids, and
    every tool message answers the assistant message right before it."""
    for i, m in enumerate(msgs):
        if m.role == "assistant" and m.tool_calls:
            assert i + 1 < len(msgs) and msgs[i + 1].role == "tool", f"call(s) of message {i} unanswered"
            assert [r.call_id for r in msgs[i + 1].tool_results] == [c.call_id for c in m.tool_calls]
        if m.role == "tool":
            assert i > 0 and msgs[i - 1].role == "assistant"


def assert_converts(msgs: list[Message]) -> None:
    """The three converters accept the list, and what they produce pairs every call with its result."""
    openai = to_openai_messages(msgs)
    assert openai[0]["role"] == "system"
    pending: set[str] = set()
    for item in openai:
        if item["role"] == "tool":
            assert item["tool_call_id"] in pending
            pending.discard(item["tool_call_id"])
        else:
            assert not pending, "a tool call is not answered before the next message"
            pending = {c["id"] for c in item.get("tool_calls") or []}
    assert not pending

    for turns, use, result, use_id, result_id in (
            (to_anthropic_messages(msgs), "tool_use", "tool_result", "id", "tool_use_id"),
            (to_bedrock_messages(msgs), "toolUse", "toolResult", "toolUseId", "toolUseId")):
        assert turns[0]["role"] == "user"
        assert all(a["role"] != b["role"] for a, b in itertools.pairwise(turns)), "roles must alternate"
        assert all(t["content"] for t in turns), "no empty turn"
        for i, t in enumerate(turns):
            blocks = t["content"]
            if use == "tool_use":
                uses = {b["id"] for b in blocks if b.get("type") == use}
                answers = {b[result_id] for b in turns[i + 1]["content"] if b.get("type") == result} \
                    if i + 1 < len(turns) else set()
                own = {b[result_id] for b in blocks if b.get("type") == result}
            else:
                uses = {b[use][use_id] for b in blocks if use in b}
                answers = {b[result][result_id] for b in turns[i + 1]["content"] if result in b} \
                    if i + 1 < len(turns) else set()
                own = {b[result][result_id] for b in blocks if result in b}
            assert uses <= answers
            if own:  # a result answers a call of the turn right before it
                prev = turns[i - 1]["content"]
                called = {b["id"] for b in prev if b.get("type") == use} if use == "tool_use" else \
                    {b[use][use_id] for b in prev if use in b}
                assert own <= called


BUDGETS = [100_000, 8000, 6000, 4000, 2000, 1500, 1200, 1100, 1000, 900, 800, 700, 620, 500, 50]


# ---------------------------------------------------------------------------------------------- the estimate
def test_the_estimate_is_the_budget_gates_estimate():
    msgs = conversation(middle=2)
    request = ModelRequest(messages=msgs, tools=[SPEC], settings=ModelSettings(model="m"))
    assert estimate_tokens(msgs, [SPEC]) == estimate_input_tokens(request) == hand_tokens(msgs, [SPEC])
    assert estimate_tokens(msgs) == hand_tokens(msgs)  # no tools: no schema, no tool-use overhead
    # the hand count of this conversation: 1,400 + 3 x 58 (calls) + 2 x 7,138 + 238 (results) characters
    assert hand_tokens(msgs) == math.ceil((1400 + 3 * 58 + 2 * 7138 + 238) / 3.5) + 8 * 8 == 4661


def test_the_default_budget_leaves_room_under_the_smallest_window():
    assert 4000 <= DEFAULT_CONTEXT_TOKENS and DEFAULT_CONTEXT_TOKENS + 2048 < 128_000 // 4


# ---------------------------------------------------------------------------------------------- fit
def test_a_conversation_within_budget_is_sent_as_it_is():
    msgs = conversation()
    out, report = fit(msgs, 100_000, [SPEC])
    assert out == msgs and out is not msgs
    tokens = hand_tokens(msgs, [SPEC])
    assert report == WindowReport(budget_tokens=100_000, tokens_before=tokens, tokens_after=tokens)


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_budget_is_respected_unless_the_minimum_is_over_it(budget):
    msgs = conversation()
    out, report = fit(msgs, budget, [])
    assert report.tokens_before == hand_tokens(msgs) and report.tokens_after == hand_tokens(out)
    minimum = hand_tokens([*OPENING, Message(role="user", content=out[2].content), *msgs[-2:]]) \
        if report.turns_dropped == 4 else None
    if report.over_budget:
        assert report.turns_dropped == 4 and report.results_summarized == 0 and report.tokens_after == minimum
        assert minimum > budget
    else:
        assert report.tokens_after <= budget


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_opening_and_the_last_turn_are_never_touched(budget):
    msgs = conversation()
    out, _ = fit(msgs, budget, [SPEC])
    assert out[0] == msgs[0] and out[1] == msgs[1]  # the system prompt and the sub-task prompt
    assert out[-2:] == msgs[-2:]  # the newest assistant message and the results answering it, whole
    assert out[-1].tool_results[0].content == "y" * 100


@pytest.mark.parametrize("budget", BUDGETS)
def test_every_call_stays_answered_and_every_provider_accepts_the_list(budget):
    msgs = conversation()
    out, _ = fit(msgs, budget, [SPEC])
    assert_calls_answered(out)
    assert_converts(out)


def test_the_converters_accept_the_original_conversation_too():  # the checks above are not vacuous
    assert_calls_answered(conversation())
    assert_converts(conversation())
    with pytest.raises(AssertionError):
        assert_calls_answered(conversation()[:-1])  # the last call unanswered


def test_the_oldest_results_are_summarized_first_and_only_as_many_as_needed():
    # 4 middle results of 7,138 JSON characters (~2,040 tokens each); a summary is a few hundred characters. By
    # hand, whatever the summary's exact length (250-700 characters): one summary leaves >= 6,700 tokens, two
    # leave <= 5,130: a budget of 6,000 takes exactly two, the oldest.
    msgs = conversation()
    out, report = fit(msgs, 6000, [])
    assert summarized_ids(out) == ["c1", "c2"]
    assert report.results_summarized == 2 and report.turns_dropped == 0 and not report.over_budget
    assert [m.role for m in out] == [m.role for m in msgs]
    assert out[7] == msgs[7] and out[9] == msgs[9]  # c3 and c4 whole
    # budget - 1 below the full size: one summary is enough
    out, report = fit(msgs, hand_tokens(msgs) - 1, [])
    assert summarized_ids(out) == ["c1"] and report.results_summarized == 1


def test_a_summary_keeps_what_answers_the_call_and_says_what_it_was():
    msgs = conversation(middle=1, size=0)
    msgs[3] = Message(role="tool", tool_results=[ToolResult(
        call_id="c1", name="calculator", ok=True, content={"value": "é" * 5000}, truncated=True)])
    out, report = fit(msgs, hand_tokens(msgs) - 1, [])
    (result,) = out[3].tool_results
    original = msgs[3].tool_results[0]
    assert (result.call_id, result.name, result.ok, result.error, result.truncated) == \
        (original.call_id, original.name, original.ok, original.error, original.truncated)
    text = json.dumps({"value": "é" * 5000}, ensure_ascii=False)
    assert result.content.startswith(SUMMARY_PREFIX)
    assert "calculator" in result.content and "ok" in result.content
    assert f"{len(text.encode())} bytes" in result.content  # 10,013 bytes: the é are two bytes each
    assert text[:200] in result.content and text[:201] not in result.content
    assert "call the tool again if you need it" in result.content
    assert report.results_summarized == 1


def test_failed_results_are_kept_whole():
    msgs = [*OPENING, *turn(1, "e" * 1900, ok=False), *turn(2, "x" * 7000), *turn(3, "y")]
    out, report = fit(msgs, hand_tokens(msgs) - 1, [])
    assert out[3] == msgs[3] and summarized_ids(out) == ["c2"] and report.results_summarized == 1


def test_a_flagged_result_stays_flagged_in_its_summary():
    msgs = conversation(middle=1)
    flagged = msgs[3].tool_results[0].model_copy(update={"screened": ToolScreen(injection=["instruction_override"])})
    msgs[3] = Message(role="tool", tool_results=[flagged])
    out, _ = fit(msgs, hand_tokens(msgs) - 1, [])
    assert is_summary(out[3].tool_results[0]) and out[3].tool_results[0].screened == flagged.screened
    assert 'flagged="instructions"' in to_openai_messages(out)[3]["content"]  # still fenced as flagged data


def test_whole_oldest_turns_are_dropped_when_summaries_are_not_enough():
    # By hand: with every result summarized the request is still ~1,200 tokens; the opening + note + last turn is
    # 548-611 tokens, one more summarized turn is >= 652: a budget of 620 drops all 4 middle turns.
    msgs = conversation()
    out, report = fit(msgs, 620, [])
    assert report.turns_dropped == 4 and report.results_summarized == 0 and not report.over_budget
    assert out[:2] == OPENING and out[-2:] == msgs[-2:] and len(out) == 5
    note = out[2]
    assert note.role == "user" and "4 earlier turns" in note.content and not note.tool_calls
    assert report.tokens_after == hand_tokens(out) <= 620


@pytest.mark.parametrize("budget", [1100, 1000, 900, 800, 700])
def test_the_fewest_oldest_turns_are_dropped(budget):
    msgs = conversation()
    out, report = fit(msgs, budget, [])
    dropped = report.turns_dropped
    assert 1 <= dropped <= 4 and not report.over_budget and report.tokens_after <= budget
    assert assistant_ids(out) == [f"c{i}" for i in range(dropped + 1, 6)]  # the oldest are gone
    assert out[2].role == "user" and f"{dropped} earlier turn" in out[2].content
    # one turn fewer dropped, even with every kept result summarized, would not have fit
    kept = msgs[2 + 2 * (dropped - 1):-2]
    summarized = [m if m.role == "assistant" else m.model_copy(
        update={"tool_results": [summarize_result(r) for r in m.tool_results]}) for m in kept]
    alternative = [*OPENING, *([omission_note(dropped - 1)] if dropped > 1 else []), *summarized, *msgs[-2:]]
    assert hand_tokens(alternative) > budget


def test_over_budget_returns_the_minimal_list_and_says_so():
    msgs = [Message(role="system", content="s" * 35_000), *conversation()[1:]]
    out, report = fit(msgs, 1000, [SPEC])
    assert report.over_budget and report.turns_dropped == 4 and report.results_summarized == 0
    assert out == [msgs[0], msgs[1], out[2], *msgs[-2:]] and "4 earlier turns" in out[2].content
    assert report.tokens_after == hand_tokens(out, [SPEC]) > 1000
    assert_converts(out)
    # no assistant message yet: nothing to shrink
    out, report = fit(msgs[:2], 1000, [])
    assert out == msgs[:2] and report.over_budget and report.turns_dropped == report.results_summarized == 0


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_input_is_not_changed(budget):
    msgs = conversation()
    before = copy.deepcopy([m.model_dump() for m in msgs])
    ids = [id(m) for m in msgs]
    fit(msgs, budget, [SPEC])
    assert [m.model_dump() for m in msgs] == before and [id(m) for m in msgs] == ids


@pytest.mark.parametrize("budget", BUDGETS)
def test_fit_is_idempotent_and_deterministic(budget):
    out, report = fit(conversation(), budget, [SPEC])
    again, second = fit(out, budget, [SPEC])
    assert again == out and fit(conversation(), budget, [SPEC]) == (out, report)
    assert second.tokens_after == report.tokens_after
    assert second.results_summarized == 0 and second.turns_dropped == 0  # nothing more was done


# ---------------------------------------------------------------------------------------------- the engine
def _facts() -> ActFacts:
    return ActFacts(goal="g", has_dataset=False, subtask=SubtaskFacts(id="s1", title="t"))


def test_the_llm_engine_sends_the_fitted_request_and_records_the_numbers():
    model = FunctionModel(lambda request: reply("done"))
    engine = LLMEngine("fake", lambda tier: (model, "m"))
    role = load_crew("default").workers[0].model_copy(update={"context_tokens": 6000})
    msgs = conversation()
    stored = copy.deepcopy(msgs)
    out = engine.act(_facts(), role, msgs, [SPEC])
    (request,) = model.requests
    sent = request.messages
    assert summarized_ids(sent) == ["c1", "c2"]  # by hand, as in the fit test (the schema adds ~420 tokens)
    (call,) = out.calls
    assert call.context_budget_tokens == 6000
    assert call.context_tokens == hand_tokens(sent, [SPEC]) <= 6000
    assert (call.context_summarized, call.context_dropped) == (2, 0)
    assert msgs == stored  # the ledger is not rewritten

    # no context_tokens on the role: the default budget, and a short conversation goes as it is
    short = conversation(middle=0)
    reply_ = engine.act(_facts(), role.model_copy(update={"context_tokens": None}), short, [SPEC])
    assert model.requests[-1].messages == short
    assert reply_.calls[0].context_budget_tokens == DEFAULT_CONTEXT_TOKENS
    assert reply_.calls[0].context_tokens == hand_tokens(short, [SPEC])


WINDOW_RUN = "run1"
WINDOW_PROVIDER = "window-test"


def test_agent_turns_are_windowed_and_the_model_turn_events_carry_the_numbers():
    # Three results of 20,000 characters (~5,700 tokens each; larger than a real tool's 8 KiB cap, so that the
    # margins below hold whatever the worker prompt's size) under a budget of 10,000 tokens: the opening and the
    # tool schemas are ~1,100 tokens. By hand: the 2nd call (one result, ~6,900) fits; the 3rd (two results,
    # ~12,600) needs the oldest summarized (~7,100); the 4th (three, ~18,300) needs the two oldest (~7,300).
    crew = load_crew("default")
    workers = [w.model_copy(update={"context_tokens": 10_000}) if w.name == "data_analyst" else w
               for w in crew.workers]
    crew = crew.model_copy(update={"workers": workers})
    model = ScriptedModel([call_tool("query_dataset", {"sql": f"SELECT {i}"}, call_id=f"q{i}") for i in (1, 2, 3)]
                          + [reply("Gentoo is heaviest.")])
    registry.register(WINDOW_PROVIDER, lambda tier: model)
    try:
        store = MemoryRunStore()
        store.create_run(Run(run_id=WINDOW_RUN, goal="Compare the penguin species by body mass.", crew=crew,
                             provider=WINDOW_PROVIDER, status=RunStatus.RUNNING, data="file:///data/penguins.csv"))
        store.put_plan(WINDOW_RUN, Plan(subtasks=[SubTask(
            id="compare", title="Compare species", instructions="Mean body mass per species.",
            tools=["describe_dataset", "query_dataset"], role="data_analyst")]))
        out = agent_turn(AgentTurnInput(tool_functions=TOOL_FNS, run_id=WINDOW_RUN, subtask_id="compare"), store)
        for _ in range(3):
            results = [ToolResult(call_id=c.call_id, name=c.name, ok=True, content={"rows": [["x" * 20_000]]})
                       for c in out.calls]
            out = agent_turn(AgentTurnInput(tool_functions=TOOL_FNS, run_id=WINDOW_RUN, subtask_id="compare", tool_results=results), store)
    finally:
        registry.unregister(WINDOW_PROVIDER)
    assert out.stop_reason == "end_turn"
    turns = [e.data for _, e in store.list_events(WINDOW_RUN) if e.kind == "model_turn"]
    assert len(turns) == len(model.requests) == 4
    for data, request in zip(turns, model.requests, strict=True):
        assert data["context_budget_tokens"] == 10_000
        assert data["context_tokens"] == hand_tokens(request.messages, request.tools) <= 10_000
        assert data["context_summarized"] == len(summarized_ids(request.messages))
        assert data["context_dropped"] == 0
        assert_calls_answered(request.messages)
    assert [d["context_summarized"] for d in turns] == [0, 0, 1, 2]
    assert summarized_ids(model.requests[3].messages) == ["q1", "q2"]
    # the ledger keeps every result whole
    ledger = store.get_messages(WINDOW_RUN, "compare")
    assert [r.content for m in ledger for r in m.tool_results] == [{"rows": [["x" * 20_000]]}] * 3
    assert all(isinstance(v, (int, str)) for d in turns for v in d.values())  # numbers and ids, no text
