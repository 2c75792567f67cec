"""Worker agent loop, one turn per call: conversation in the store, tool calls out, tool results in, NotAllowed
and LimitExceeded answers, max turns, events and counts."""

import pytest
from domain_helpers import RUN_ID, two_step_plan

from stepcrew.wiring import tool_functions
from stepcrew.domain.agent import agent_turn
from stepcrew.domain.errors import MaxTurnsExceededError, SubtaskStateError, ToolNotDeployedError
from stepcrew.events import AgentTurnInput
from stepcrew.llm.base import ModelAuthError
from stepcrew.engines.facts import ToolFact
from stepcrew.engines.llm import LLMEngine
from stepcrew.engines.testing import ScriptedModel, call_tool, call_tools, label, reply
from stepcrew.models import Budget, SubtaskStatus, ToolResult

#: The agent ASL's tool_functions constant, as a deployed stack fills it.
TOOL_FNS = tool_functions(lambda n: f"arn:aws:lambda:us-east-1:123456789012:function:stepcrew-{n}")

DATA = "file:///data/penguins.csv"
TABLE = {"columns": ["species", "mean_body_mass_g"], "rows": [["Gentoo", 5076.02], ["Adelie", 3700.66]]}


@pytest.fixture
def setup(store, make_run, use_model):
    """Given a run with the two-step plan stored, playing ``turns`` for the sub-task(s)."""

    def given(*turns, budget=None, **by_subtask):
        model = ScriptedModel(turns, by_subtask=by_subtask or None)
        make_run(provider=use_model(model), data=DATA, **({"budget": budget} if budget else {}))
        store.put_plan(RUN_ID, two_step_plan())
        return model

    return given


def _turn(subtask="compare", results=()):
    return AgentTurnInput(tool_functions=TOOL_FNS, run_id=RUN_ID, subtask_id=subtask, tool_results=list(results))


def _ok(call, content):
    return ToolResult(call_id=call.call_id, name=call.name, ok=True, content=content)


def _kinds(store):
    return [e.kind for _, e in store.list_events(RUN_ID)]


def test_first_turn_starts_the_subtask_and_returns_the_tool_call(store, setup):
    model = setup(call_tool("describe_dataset", {}, call_id="c1"))
    out = agent_turn(_turn(), store)
    assert out.stop_reason == "tool_use" and out.status == SubtaskStatus.RUNNING and out.turn == 1
    assert [c.call_id for c in out.calls] == ["c1"] and out.data_uri == DATA
    record = store.get_subtask(RUN_ID, "compare")
    assert record.status == SubtaskStatus.RUNNING and record.started_at and record.tool_calls == 1
    assert _kinds(store) == ["subtask_started", "model_turn", "tool_call"]
    assert [m.role for m in store.get_messages(RUN_ID, "compare")] == ["system", "user", "assistant"]
    request = model.requests[0]
    assert label(request).purpose == "act" and [t.name for t in request.tools] == ["describe_dataset", "query_dataset"]
    assert "Data analyst" in request.messages[0].content
    assert "Mean body mass per species." in request.messages[1].content
    assert label(request).subtask_id == "compare"
    assert "SQL table `data`" in request.messages[1].content  # the run has a dataset
    assert "No dataset is attached." not in request.messages[1].content


def test_each_call_is_handed_out_with_its_own_function(store, setup):
    setup(call_tool("describe_dataset", {}, call_id="c1"))
    out = agent_turn(_turn(), store)
    assert [(d.function, d.call.name) for d in out.tool_calls] == [
        ("arn:aws:lambda:us-east-1:123456789012:function:stepcrew-tool_describe_dataset", "describe_dataset")]


@pytest.mark.parametrize("allowed", [False, True])
def test_the_runs_side_effect_switch_goes_out_with_the_calls(store, make_run, use_model, allowed):
    make_run(provider=use_model(ScriptedModel([call_tool("describe_dataset", {}, call_id="c1")])), data=DATA,
             allow_side_effects=allowed)
    store.put_plan(RUN_ID, two_step_plan())
    assert agent_turn(_turn(), store).allow_side_effects is allowed

def test_a_tool_without_a_deployed_function_fails_the_turn_before_any_model_call(store, setup):
    model = setup(call_tool("describe_dataset", {}, call_id="c1"))
    partial = {k: v for k, v in TOOL_FNS.items() if k != "query_dataset"}
    with pytest.raises(ToolNotDeployedError, match="query_dataset"):
        agent_turn(AgentTurnInput(tool_functions=partial, run_id=RUN_ID, subtask_id="compare"), store)
    assert model.requests == [] and store.get_messages(RUN_ID, "compare") == []


def test_tool_results_are_appended_and_the_answer_ends_the_subtask(store, setup):
    model = setup(call_tool("query_dataset", {"sql": "SELECT 1"}, call_id="c1"), reply("Gentoo is heaviest."))
    first = agent_turn(_turn(), store)
    out = agent_turn(_turn(results=[_ok(first.calls[0], TABLE)]), store)
    assert out.stop_reason == "end_turn" and out.status == SubtaskStatus.SUCCEEDED and out.turn == 2
    record = store.get_subtask(RUN_ID, "compare")
    assert record.output == "Gentoo is heaviest." and record.finished_at and record.turns == 2
    assert _kinds(store)[-3:] == ["tool_result", "model_turn", "subtask_finished"]
    tool_message = model.requests[1].messages[-1]
    assert tool_message.role == "tool" and tool_message.tool_results[0].content == TABLE
    events = dict((e.kind, e.data) for _, e in store.list_events(RUN_ID))
    assert events["tool_result"] == {"name": "query_dataset", "ok": True, "call_id": "c1"}
    assert events["subtask_finished"] == {"turns": 2, "tool_calls": 1}


def test_a_not_allowed_call_is_answered_in_the_conversation_not_run(store, setup):
    setup(call_tools(("query_dataset", {"sql": "SELECT 1"}), ("write_section", {"heading": "h"})),
          reply("done"))
    first = agent_turn(_turn(), store)
    assert [c.name for c in first.calls] == ["query_dataset"]
    assert store.get_subtask(RUN_ID, "compare").tool_calls == 1
    agent_turn(_turn(results=[_ok(first.calls[0], TABLE)]), store)
    tool_message = store.get_messages(RUN_ID, "compare")[3]
    assert [(r.name, r.ok) for r in tool_message.tool_results] == [("query_dataset", True), ("write_section", False)]
    assert tool_message.tool_results[1].error.type == "NotAllowed"
    assert "allowed: describe_dataset, query_dataset" in tool_message.tool_results[1].error.message


def test_only_not_allowed_calls_ask_the_model_again_at_once(store, setup):
    model = setup(call_tool("write_section", {}), call_tool("describe_dataset", {}, call_id="c2"))
    out = agent_turn(_turn(), store)
    assert [c.call_id for c in out.calls] == ["c2"]
    assert len(model.requests) == 2
    assert model.requests[1].messages[-1].tool_results[0].error.type == "NotAllowed"
    assert store.get_subtask(RUN_ID, "compare").turns == 2


def test_twice_not_allowed_hands_an_empty_tool_map_to_the_state_machine(store, setup):
    model = setup(call_tool("write_section", {}), call_tool("calculator", {}), reply("gave up"))
    out = agent_turn(_turn(), store)
    assert out.stop_reason == "tool_use" and out.calls == []
    final = agent_turn(_turn(results=[]), store)
    assert final.stop_reason == "end_turn" and len(model.requests) == 3
    assert store.get_subtask(RUN_ID, "compare").tool_calls == 0


def test_calls_beyond_the_per_turn_cap_get_limit_exceeded(store, setup):
    calls = [("query_dataset", {"sql": f"SELECT {i}"}) for i in range(10)]
    setup(call_tools(*calls), reply("ok"))
    out = agent_turn(_turn(), store)
    assert len(out.calls) == 8
    agent_turn(_turn(results=[_ok(c, {"rows": []}) for c in out.calls]), store)
    results = store.get_messages(RUN_ID, "compare")[3].tool_results
    assert [r.error.type for r in results if not r.ok] == ["LimitExceeded", "LimitExceeded"]


def test_more_model_calls_than_the_budget_raise_max_turns(store, setup):
    setup(call_tool("describe_dataset", {}), reply("never"), budget=Budget(max_turns_per_subtask=1))
    first = agent_turn(_turn(), store)
    with pytest.raises(MaxTurnsExceededError, match="sub-task compare reached its limit of 1 model calls"):
        agent_turn(_turn(results=[_ok(first.calls[0], {})]), store)


def test_results_that_answer_nothing_pending_are_rejected(store, setup):
    setup(call_tool("describe_dataset", {}, call_id="c1"))
    first = agent_turn(_turn(), store)
    stray = ToolResult(call_id="other", name="describe_dataset", ok=True, content={})
    with pytest.raises(SubtaskStateError, match="do not answer the pending tool calls"):
        agent_turn(_turn(results=[stray]), store)
    assert first.calls[0].call_id == "c1"


def test_dependency_outputs_and_tool_results_reach_the_next_subtask(store, setup, monkeypatch):
    seen = []  # the facts each act call gave the engine
    act = LLMEngine.act

    def spy(self, facts, *args):
        seen.append(facts)
        return act(self, facts, *args)

    monkeypatch.setattr(LLMEngine, "act", spy)
    model = setup(compare=[call_tool("query_dataset", {"sql": "SELECT 1"}), reply("Gentoo 5076.02 g")],
                  write=[reply("## Findings")])
    first = agent_turn(_turn(), store)
    agent_turn(_turn(results=[_ok(first.calls[0], TABLE)]), store)
    out = agent_turn(_turn("write"), store)
    assert out.status == SubtaskStatus.SUCCEEDED
    request = model.requests[-1]
    facts = seen[-1]
    assert facts.subtask.id == "write" and label(request).subtask_id == "write"
    [dep] = facts.dependencies
    assert dep.id == "compare" and dep.output == "Gentoo 5076.02 g"
    assert dep.tool_results == [ToolFact(name="query_dataset", arguments={"sql": "SELECT 1"}, content=TABLE,
                                         source=f"compare/{first.calls[0].call_id}")]
    assert "Gentoo 5076.02 g" in request.messages[1].content
    assert [t.name for t in request.tools] == ["write_section"]


def test_a_redelivered_turn_after_the_answer_does_not_call_the_model(store, setup):
    model = setup(reply("answer"))
    agent_turn(_turn(), store)
    again = agent_turn(_turn(), store)
    assert again.stop_reason == "end_turn" and again.status == SubtaskStatus.SUCCEEDED
    assert len(model.requests) == 1


def test_a_failed_model_call_is_retried_cleanly(store, setup):
    model = setup(ModelAuthError("bad key"), reply("answer"))
    with pytest.raises(ModelAuthError):
        agent_turn(_turn(), store)
    assert [m.role for m in store.get_messages(RUN_ID, "compare")] == ["system", "user"]
    assert store.get_subtask(RUN_ID, "compare").turns == 0
    out = agent_turn(_turn(), store)
    assert out.status == SubtaskStatus.SUCCEEDED and len(model.requests) == 2
    assert [m.role for m in store.get_messages(RUN_ID, "compare")] == ["system", "user", "assistant"]
    assert _kinds(store).count("subtask_started") == 1


def test_a_retried_turn_after_tool_results_does_not_append_them_twice(store, setup):
    model = setup(call_tool("describe_dataset", {}, call_id="c1"), ModelAuthError("flaky"), reply("done"))
    first = agent_turn(_turn(), store)
    results = [_ok(first.calls[0], {"rows": 1})]
    with pytest.raises(ModelAuthError):
        agent_turn(_turn(results=results), store)
    agent_turn(_turn(results=results), store)  # the state machine's Retry replays the same event
    roles = [m.role for m in store.get_messages(RUN_ID, "compare")]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert _kinds(store).count("tool_result") == 1 and len(model.requests) == 3


def test_a_failed_subtask_does_not_run_again(store, setup):
    setup(reply("x"))
    store.update_subtask(RUN_ID, "compare", {"status": SubtaskStatus.FAILED})
    with pytest.raises(SubtaskStateError, match="already failed"):
        agent_turn(_turn(), store)


def test_results_without_a_pending_call_are_rejected(store, setup):
    setup(ModelAuthError("down"))
    with pytest.raises(ModelAuthError):
        agent_turn(_turn(), store)  # the conversation now ends with the user prompt
    stray = ToolResult(call_id="x", name="calculator", ok=True, content={})
    with pytest.raises(SubtaskStateError, match="no tool call is pending"):
        agent_turn(_turn(results=[stray]), store)


# ---- Step Functions retries after a partial write: the stored conversation is the ledger of the sub-task
def _usage_calls(store):
    return sum(1 for _, e in store.list_events(RUN_ID) if e.kind == "model_turn")


def test_a_retry_after_the_tool_calls_were_stored_returns_them_without_a_new_model_call(store, setup):
    from domain_helpers import FailOnce

    model = setup(call_tool("describe_dataset", {}, call_id="c1"), reply("never"))
    flaky = FailOnce(store, "update_subtask", skip=1)  # skip the RUNNING update; fail the counts update
    with pytest.raises(ConnectionError):
        agent_turn(_turn(), flaky)
    out = agent_turn(_turn(), store)  # the Retry replays the first-turn event
    assert out.stop_reason == "tool_use" and [c.call_id for c in out.calls] == ["c1"]
    assert len(model.requests) == 1 and _usage_calls(store) == 1
    record = store.get_subtask(RUN_ID, "compare")
    assert record.turns == 1 and record.tool_calls == 1
    assert _kinds(store).count("tool_call") == 1
    assert [m.role for m in store.get_messages(RUN_ID, "compare")] == ["system", "user", "assistant"]


def test_a_retry_after_the_answer_was_stored_finishes_without_a_new_model_call(store, setup):
    from domain_helpers import FailOnce

    model = setup(reply("the answer"), reply("a second answer"))
    flaky = FailOnce(store, "update_subtask", skip=1)  # the SUCCEEDED update fails
    with pytest.raises(ConnectionError):
        agent_turn(_turn(), flaky)
    out = agent_turn(_turn(), store)
    assert out.stop_reason == "end_turn" and out.status == SubtaskStatus.SUCCEEDED
    assert len(model.requests) == 1 and store.get_run(RUN_ID).usage.output_tokens == 20
    record = store.get_subtask(RUN_ID, "compare")
    assert record.output == "the answer" and record.turns == 1
    assert [m.role for m in store.get_messages(RUN_ID, "compare")] == ["system", "user", "assistant"]


def test_counts_are_not_doubled_by_a_retried_later_turn(store, setup):
    from domain_helpers import FailOnce

    setup(call_tool("describe_dataset", {}, call_id="c1"), call_tool("query_dataset", {"sql": "SELECT 1"},
                                                                     call_id="c2"), reply("done"))
    first = agent_turn(_turn(), store)
    results = [_ok(first.calls[0], {"rows": 1})]
    flaky = FailOnce(store, "update_subtask")
    with pytest.raises(ConnectionError):
        agent_turn(_turn(results=results), flaky)
    second = agent_turn(_turn(results=results), store)
    assert [c.call_id for c in second.calls] == ["c2"]
    record = store.get_subtask(RUN_ID, "compare")
    assert record.turns == 2 and record.tool_calls == 2
    agent_turn(_turn(results=[_ok(second.calls[0], TABLE)]), store)
    record = store.get_subtask(RUN_ID, "compare")
    assert record.status == SubtaskStatus.SUCCEEDED and record.turns == 3 and record.tool_calls == 2


def test_an_empty_answer_is_asked_for_once_more_in_the_same_invocation(store, setup):
    model = setup(reply("   "), reply("Gentoo is heaviest."))
    out = agent_turn(_turn(), store)
    assert out.stop_reason == "end_turn" and out.status == SubtaskStatus.SUCCEEDED
    assert store.get_subtask(RUN_ID, "compare").output == "Gentoo is heaviest."
    from stepcrew.domain.agent import EMPTY_ANSWER_NUDGE

    assert model.requests[1].messages[-1].content == EMPTY_ANSWER_NUDGE  # the model was told why
    assert len(model.requests) == 2


def test_a_second_empty_answer_fails_the_subtask_and_a_retry_does_not_nudge_again(store, setup):
    from stepcrew.domain.errors import EmptyAnswerError

    model = setup(reply(""), reply(""), reply("late answer"))
    with pytest.raises(EmptyAnswerError, match="no text twice"):
        agent_turn(_turn(), store)
    assert store.get_subtask(RUN_ID, "compare").status == SubtaskStatus.RUNNING  # fail_subtask records the failure
    # a Step Functions retry of the same event finds the nudge in the ledger: it asks, never nudges a second time
    out = agent_turn(_turn(), store)
    assert out.status == SubtaskStatus.SUCCEEDED and len(model.requests) == 3
    from stepcrew.domain.agent import EMPTY_ANSWER_NUDGE

    nudges = [m for m in store.get_messages(RUN_ID, "compare") if m.content == EMPTY_ANSWER_NUDGE]
    assert len(nudges) == 1
