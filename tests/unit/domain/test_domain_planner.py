"""Planner role: valid plans are stored; invalid ones (parse error, schema, unknown tool/role, cycle) come back
with a one-line error and a retry flag; the retry prompt carries the previous error."""

import json

import pytest
from domain_helpers import RUN_ID, plan_json, two_step_plan

from stepcrew.domain.planner import plan_run
from stepcrew.domain.modelcall import ledger_key
from stepcrew.engines.base import PlanReply
from stepcrew.engines.llm import LLMEngine
from stepcrew.events import PlanInput
from stepcrew.engines.testing import ScriptedModel, label, reply
from stepcrew.models import SubtaskStatus



def _plan_with(**changes) -> str:
    data = two_step_plan().model_dump(mode="json")
    data["subtasks"][1].update(changes)
    return json.dumps(data)


def _events(store, kind):
    return [e for _, e in store.list_events(RUN_ID) if e.kind == kind]


def test_valid_fenced_plan_is_stored_with_waves_and_event(store, make_run, use_model):
    model = ScriptedModel([reply(plan_json(two_step_plan(), fenced=True))])
    make_run(provider=use_model(model))
    out = plan_run(PlanInput(run_id=RUN_ID), store)
    assert out.valid and not out.retry and out.error is None
    assert out.waves == [["compare"], ["write"]] and out.subtask_count == 2
    assert store.get_plan(RUN_ID) == two_step_plan()
    assert [r.status for r in store.list_subtasks(RUN_ID)] == [SubtaskStatus.PENDING] * 2
    (event,) = _events(store, "plan_ready")
    assert event.data["subtasks"][1] == {"id": "write", "title": "Write it up", "depends_on": ["compare"]}
    request = model.requests[0]
    assert label(request).purpose == "plan" and request.messages[0].role == "system"
    assert "Planner" in request.messages[0].content
    prompt = request.messages[1].content
    assert "JSON Schema" in prompt
    assert "Goal:\nCompare the penguin species by body mass.\n\n" in prompt
    assert prompt.index("JSON Schema") < prompt.index("Goal:")  # the part the same for every goal comes first
    workers = prompt.split("Workers:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert {line[2:].split(" ", 1)[0] for line in workers} == {"data_analyst", "writer"}


@pytest.mark.parametrize(("text", "error"), [
    ("I cannot plan this.", "the reply holds no valid JSON object"),
    ('{"subtasks": []}', "plan schema: subtasks: List should have at least 1 item"),
    (_plan_with(tools=["teleport"]), "sub-task 'write' names unknown tool(s): teleport"),
    (_plan_with(role="ghost"), "sub-task 'write' names unknown role 'ghost'"),
    (_plan_with(depends_on=["nope"]), "depends on unknown sub-task(s): nope"),
    (_plan_with(tools=["query_dataset"]), "gives role 'writer' tool(s) it does not have: query_dataset"),
])
def test_invalid_plans_come_back_with_a_one_line_error_and_retry(store, make_run, use_model, text, error):
    make_run(provider=use_model(ScriptedModel([reply(text)])))
    out = plan_run(PlanInput(run_id=RUN_ID), store)
    assert not out.valid and out.retry and out.next_attempt == 2
    assert error in out.error and "\n" not in out.error
    assert store.get_plan(RUN_ID) is None
    assert _events(store, "plan_invalid")[0].data == {"attempt": 1, "retry": True}


def test_cycle_is_invalid(store, make_run, use_model):
    data = two_step_plan().model_dump(mode="json")
    data["subtasks"][0]["depends_on"] = ["write"]
    make_run(provider=use_model(ScriptedModel([reply(json.dumps(data))])))
    out = plan_run(PlanInput(run_id=RUN_ID), store)
    assert not out.valid and out.error == "dependency cycle among sub-tasks: compare, write"


def test_retry_prompt_carries_the_previous_error_and_last_attempt_does_not_retry(store, make_run, use_model):
    model = ScriptedModel([reply("still not json")])
    make_run(provider=use_model(model))
    out = plan_run(PlanInput(run_id=RUN_ID, attempt=3, previous_error="sub-task 'x' names unknown tool(s): y"), store)
    assert not out.valid and not out.retry
    prompt = model.requests[0].messages[-1].content
    assert "Your previous plan (attempt 2) was rejected: sub-task 'x' names unknown tool(s): y" in prompt


def test_planner_exchange_is_kept_for_audit(store, make_run, use_model, monkeypatch):
    seen = []  # the facts the engine was asked to plan from
    plan = LLMEngine.plan
    monkeypatch.setattr(LLMEngine, "plan", lambda self, facts, role: seen.append(facts) or plan(self, facts, role))
    make_run(provider=use_model(ScriptedModel([reply(plan_json(two_step_plan()))])))
    plan_run(PlanInput(run_id=RUN_ID), store)
    stored = store.get_messages(RUN_ID, "planner")
    assert [m.role for m in stored] == ["user", "assistant"]
    # the ledger keeps the exchange's key (purpose, attempt index, facts hash) and the engine's reply
    assert stored[0].content == ledger_key("plan", 0, seen[0])
    assert PlanReply.model_validate_json(stored[1].content).plan == two_step_plan()


def test_a_retry_after_the_reply_was_stored_reuses_it_without_a_new_model_call(store, make_run, use_model):
    from domain_helpers import FailOnce

    model = ScriptedModel([reply(plan_json(two_step_plan())), reply("{}")])
    make_run(provider=use_model(model))
    with pytest.raises(ConnectionError):
        plan_run(PlanInput(run_id=RUN_ID), FailOnce(store, "put_plan"))
    out = plan_run(PlanInput(run_id=RUN_ID), store)  # the state machine's Retry replays the event
    assert out.valid and store.get_plan(RUN_ID) == two_step_plan()
    assert len(model.requests) == 1 and store.get_run(RUN_ID).usage.output_tokens == 20
    assert len(_events(store, "model_turn")) == 1
    assert [m.role for m in store.get_messages(RUN_ID, "planner")] == ["user", "assistant"]


def test_each_plan_attempt_gets_its_own_model_call(store, make_run, use_model):
    model = ScriptedModel([reply("not json"), reply(plan_json(two_step_plan()))])
    make_run(provider=use_model(model))
    first = plan_run(PlanInput(run_id=RUN_ID), store)
    second = plan_run(PlanInput(run_id=RUN_ID, attempt=2, previous_error=first.error), store)
    assert not first.valid and second.valid and len(model.requests) == 2
    assert [m.role for m in store.get_messages(RUN_ID, "planner")] == ["user", "assistant"] * 2
