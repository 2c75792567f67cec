"""The manager role (hierarchical / hybrid crews): reply validation, the rule engine's deterministic delegation,
the reply parser, the delegation ledger on both store adapters, and manager rounds on the in-memory store (replay,
the bound, a failed child)."""

from __future__ import annotations

import json

import pytest

from stepcrew.crew import load_crew
from stepcrew.domain.manager import (
    DelegationResult,
    ManageInput,
    ManagerReplyError,
    check_reply,
    manage_round,
)
from stepcrew.engines.base import Assessment, DelegationOrder, ManageReply
from stepcrew.engines.facts import DelegationFact, ManageFacts, SubtaskFacts, WorkerInfo
from stepcrew.engines.llm import parse_manage_reply
from stepcrew.engines.prompts import describe, manage_prompt
from stepcrew.engines.rules.manager import manage
from stepcrew.llm.base import ModelRequest, ModelSettings
from stepcrew.models import Delegation, Message, Plan, Run, RunError, RunStatus, SubTask, SubtaskStatus
from stepcrew.store.memory import MemoryRunStore

CREW = load_crew("hierarchical")
HYBRID = load_crew("hybrid")
# a -> c, b independent; a and b for the analyst, c for the writer
PLAN = Plan(subtasks=[SubTask(id="a", title="A", instructions="do a", tools=["query_dataset"], role="data_analyst"),
                      SubTask(id="b", title="B", instructions="do b", role="data_analyst"),
                      SubTask(id="c", title="C", instructions="do c", depends_on=["a"], tools=["write_section"],
                              role="writer")])


def _order(sub="a", worker="data_analyst", tools=(), instructions=""):
    return DelegationOrder(subtask_id=sub, worker=worker, tools=list(tools), instructions=instructions)


def _check(reply, crew=CREW, accepted=(), outstanding=None, outcomes=None):
    check_reply(reply, crew=crew, plan=PLAN, accepted=set(accepted), outstanding=outstanding or {},
                outcomes=outcomes or {})


@pytest.mark.parametrize("reply, kw, message", [
    (ManageReply(delegations=[_order(sub="zz")]), {}, "unknown sub-task 'zz'"),
    (ManageReply(delegations=[_order(worker="wizard")]), {}, "unknown worker 'wizard'"),
    (ManageReply(delegations=[_order(worker="writer")]), {}, "planned for worker 'data_analyst'"),
    (ManageReply(delegations=[_order(tools=["write_section"])]), {}, "has no tool(s) write_section"),
    (ManageReply(delegations=[_order(sub="c", worker="writer")]), {}, "not ready: a not accepted"),
    (ManageReply(delegations=[_order()]), {"accepted": ["a"]}, "already accepted"),
    (ManageReply(delegations=[_order(), _order()]), {"crew": HYBRID}, "delegated twice"),
    (ManageReply(delegations=[_order(), _order(sub="b")]), {}, "one sub-task per round"),
    (ManageReply(done=True), {"accepted": ["a"]}, "b, c are not accepted"),
    (ManageReply(), {}, "no delegation and not done"),
    (ManageReply(assessments=[Assessment(subtask_id="a", verdict="accept")], done=True),
     {"outstanding": {"a": "data_analyst"}, "outcomes": {"a": "FAILED"}}, "cannot be accepted"),
    (ManageReply(assessments=[Assessment(subtask_id="a", verdict="send_back")]),
     {"outstanding": {"a": "data_analyst"}, "outcomes": {"a": "SUCCEEDED"}}, "needs feedback"),
    (ManageReply(delegations=[_order(sub="b")]),
     {"outstanding": {"a": "data_analyst"}, "outcomes": {"a": "SUCCEEDED"}}, "no verdict for a"),
    (ManageReply(delegations=[_order(instructions="x" * 2001)]), {}, "over 2000 characters"),
    (ManageReply(error="the reply holds no valid JSON object"), {}, "no valid JSON"),
])
def test_an_invalid_reply_is_refused_with_a_one_line_reason(reply, kw, message):
    with pytest.raises(ManagerReplyError) as info:
        _check(reply, **kw)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_valid_replies_pass():
    _check(ManageReply(delegations=[_order(tools=["query_dataset"])]))  # a tool the worker has
    _check(ManageReply(delegations=[_order(), _order(sub="b")]), crew=HYBRID)  # a hybrid batch of ready ones
    accepted_a = Assessment(subtask_id="a", verdict="accept")
    _check(ManageReply(assessments=[accepted_a], delegations=[_order(sub="c", worker="writer")]),
           outstanding={"a": "data_analyst"}, outcomes={"a": "SUCCEEDED"})  # c is ready once a is accepted
    _check(ManageReply(assessments=[Assessment(subtask_id="c", verdict="send_back", feedback="add a table")]),
           accepted=["a", "b"], outstanding={"c": "writer"}, outcomes={"c": "SUCCEEDED"})  # the send-back delegates
    _check(ManageReply(assessments=[Assessment(subtask_id="c", verdict="accept")], done=True), accepted=["a", "b"],
           outstanding={"c": "writer"}, outcomes={"c": "SUCCEEDED"})


def _facts(process="hierarchical", accepted=(), results=()):
    subs = [SubtaskFacts(id=s.id, title=s.title, instructions=s.instructions, role=s.role, tools=list(s.tools),
                         depends_on=list(s.depends_on)) for s in PLAN.subtasks]
    return ManageFacts(goal="g", process=process, round=0, subtasks=subs, accepted=list(accepted),
                       results=list(results), workers=[WorkerInfo(name=w.name, role=w.role, tools=list(w.tools))
                                                       for w in CREW.workers], delegations_left=6)


def _done(sub, status="SUCCEEDED", error=None):
    return DelegationFact(seq=1, subtask_id=sub, worker="data_analyst", status=status, output="x", error=error)


def test_the_rule_manager_delegates_one_ready_subtask_at_a_time_in_plan_order():
    steps, accepted, results = [], [], []
    for _ in range(5):
        reply = manage(_facts(accepted=accepted, results=results))
        _check(reply, accepted=accepted, outstanding={r.subtask_id: r.worker for r in results},
               outcomes={r.subtask_id: r.status for r in results})
        accepted += [a.subtask_id for a in reply.assessments if a.verdict == "accept"]
        if reply.done:
            break
        steps.append([(d.subtask_id, d.worker, d.instructions) for d in reply.delegations])
        results = [_done(d.subtask_id) for d in reply.delegations]
    assert steps == [[("a", "data_analyst", "do a")], [("b", "data_analyst", "do b")], [("c", "writer", "do c")]]
    assert accepted == ["a", "b", "c"] and reply.done and reply.calls[0].model == "rule-engine"


def test_the_rule_manager_of_a_hybrid_crew_delegates_every_ready_subtask_as_one_batch():
    first = manage(_facts(process="hybrid"))
    assert [d.subtask_id for d in first.delegations] == ["a", "b"]
    second = manage(_facts(process="hybrid", results=[_done("a"), _done("b")]))
    assert [a.verdict for a in second.assessments] == ["accept", "accept"]
    assert [d.subtask_id for d in second.delegations] == ["c"]


def test_the_rule_manager_gives_up_on_a_failed_subtask_naming_it():
    reply = manage(_facts(results=[_done("a", "FAILED", "ToolLoopError: same call 3 times")]))
    assert reply.give_up and "sub-task a failed" in reply.give_up and "ToolLoopError" in reply.give_up
    assert reply.delegations == [] and not reply.done


def test_the_manager_reply_parser():
    text = json.dumps({"assessments": [{"subtask_id": "a", "verdict": "accept", "feedback": ""}],
                       "delegations": [{"subtask_id": "b", "worker": "data_analyst", "instructions": "go",
                                        "tools": []}], "done": False, "give_up": ""})
    reply = parse_manage_reply(f"Here:\n```json\n{text}\n```")
    assert reply.error is None and reply.give_up is None
    assert [a.verdict for a in reply.assessments] == ["accept"] and reply.delegations[0].subtask_id == "b"
    assert "no valid JSON" in parse_manage_reply("I will delegate a").error
    assert "verdict" in parse_manage_reply(json.dumps({"assessments": [{"subtask_id": "a", "verdict": "maybe"}]})).error


def test_manager_prompts_are_told_apart_and_put_the_stable_part_first():
    a = manage_prompt(_facts())
    b = manage_prompt(_facts(accepted=["a"]).model_copy(update={"goal": "another goal"}))
    stable = a.split("\n\nGoal:\n")[0]
    assert stable == b.split("\n\nGoal:\n")[0] and "JSON object" in stable
    assert "JSON object" not in manage_prompt(_facts(), native=True).split("\n\nGoal:\n")[0].split("Rules:")[0]
    request = ModelRequest(messages=[Message(role="system", content="s"), Message(role="user", content=a)],
                           settings=ModelSettings(model="m"))
    assert describe(request).purpose == "manage"


def test_the_delegation_ledger_keeps_the_latest_version_of_each(run_store):
    run_store.create_run(Run(run_id="r1", goal="g", crew=CREW))
    d1 = Delegation(run_id="r1", seq=1, round=0, worker="data_analyst", subtask_id="a", instructions="do a")
    d2 = Delegation(run_id="r1", seq=2, round=0, worker="data_analyst", subtask_id="b")
    run_store.record_delegations("r1", [d1, d2])
    run_store.record_delegations("r1", [d1.model_copy(update={"verdict": "sent_back", "feedback": "more"})])
    got = run_store.list_delegations("r1")
    assert [(d.seq, d.verdict, d.feedback) for d in got] == [(1, "sent_back", "more"), (2, None, "")]
    assert run_store.list_delegations("other") == []
    with pytest.raises(ValueError):
        run_store.record_delegations("r1", [d1.model_copy(update={"run_id": "r2"})])


# ------------------------------------------------------------------------------------ rounds on the memory store
def _run(store, crew=CREW, plan=PLAN) -> str:
    store.create_run(Run(run_id="r1", goal="g", crew=crew, status=RunStatus.RUNNING))
    store.put_plan("r1", plan)
    return "r1"


def _finish(store, sub, output="done"):
    store.update_subtask("r1", sub, {"status": SubtaskStatus.SUCCEEDED, "output": output})


def test_a_replayed_round_returns_the_same_delegations_and_records_nothing_more():
    store = MemoryRunStore()
    _run(store)
    first = manage_round(ManageInput(run_id="r1", round=0), store)
    again = manage_round(ManageInput(run_id="r1", round=0), store)
    assert first.outcome == again.outcome == "delegate"
    assert first.delegations == again.delegations and [d.subtask_id for d in first.delegations] == ["a"]
    assert len(store.list_delegations("r1")) == 1
    assert [e.kind for _, e in store.list_events("r1")].count("delegated") == 1


def test_the_bound_stops_the_manager_with_manager_limit_exceeded():
    store = MemoryRunStore()
    _run(store, crew=CREW.model_copy(update={"max_delegations": 2}))
    out, results = None, []
    for rnd in range(4):
        out = manage_round(ManageInput(run_id="r1", round=rnd, results=results), store)
        if out.outcome != "delegate":
            break
        for d in out.delegations:
            _finish(store, d.subtask_id)
        results = [DelegationResult(subtask_id=d.subtask_id, seq=d.seq, child={"status": "SUCCEEDED"})
                   for d in out.delegations]
    assert (rnd, out.outcome, out.error) == (2, "stopped", "ManagerLimitExceeded")  # a, b delegated; c refused
    assert "delegation 3 of a run bounded to 2" in out.cause and "2 of 3 sub-tasks accepted" in out.cause
    assert [(d.subtask_id, d.verdict) for d in store.list_delegations("r1")] == [("a", "accepted"),
                                                                                  ("b", "accepted")]


def test_a_child_that_failed_before_recording_is_seen_as_failed_and_the_rule_manager_gives_up():
    store = MemoryRunStore()
    _run(store)
    out = manage_round(ManageInput(run_id="r1", round=0), store)
    (item,) = out.delegations
    failed = DelegationResult(subtask_id=item.subtask_id, seq=item.seq, failed=True,
                              error="StepFunctions.ExecutionAlreadyExistsException")
    out = manage_round(ManageInput(run_id="r1", round=1, results=[failed]), store)
    assert (out.outcome, out.error) == ("stopped", "ManagerGaveUp")
    assert "ExecutionAlreadyExists" in out.cause
    assert [d.verdict for d in store.list_delegations("r1")] == ["failed"]


def test_a_failed_subtask_record_gives_its_error_to_the_manager():
    store = MemoryRunStore()
    _run(store)
    manage_round(ManageInput(run_id="r1", round=0), store)
    store.update_subtask("r1", "a", {"status": SubtaskStatus.FAILED,
                                     "error": RunError(code="MaxTurnsExceededError", message="8 model calls")})
    out = manage_round(ManageInput(run_id="r1", round=1, results=[
        DelegationResult(subtask_id="a", seq=1, failed=True, error="States.TaskFailed")]), store)
    assert out.outcome == "stopped" and "MaxTurnsExceededError: 8 model calls" in out.cause


def _scripted_run(store, max_tokens):
    from stepcrew.models import Budget

    store.create_run(Run(run_id="r1", goal="g", crew=CREW, status=RunStatus.RUNNING, provider="scripted-mgr",
                         budget=Budget(max_tokens=max_tokens)))
    store.put_plan("r1", PLAN)


def _first_delegation():
    from stepcrew.engines.testing import reply

    return reply(json.dumps({"assessments": [], "delegations": [{"subtask_id": "a", "worker": "data_analyst",
                                                                 "instructions": "do a", "tools": []}],
                             "done": False, "give_up": ""}), input_tokens=40, output_tokens=20)


def test_the_managers_model_calls_count_against_the_run_budget():
    from stepcrew.domain.errors import BudgetExceededError
    from stepcrew.engines.resolve import scripted_resolver
    from stepcrew.engines.testing import ScriptedModel

    store = MemoryRunStore()
    _scripted_run(store, max_tokens=10_000)
    model = ScriptedModel(by_purpose={"manage": [_first_delegation()]})
    out = manage_round(ManageInput(run_id="r1", round=0), store, scripted_resolver(model))
    assert [d.subtask_id for d in out.delegations] == ["a"]
    usage = store.get_run("r1").usage
    assert (usage.input_tokens, usage.output_tokens) == (40, 20)  # the manager's call is on the run's usage

    tight = MemoryRunStore()
    _scripted_run(tight, max_tokens=50)  # the call's 60 tokens pass the cap: refused before or failed after
    with pytest.raises(BudgetExceededError):
        manage_round(ManageInput(run_id="r1", round=0), tight,
                     scripted_resolver(ScriptedModel(by_purpose={"manage": [_first_delegation()]})))
    assert tight.list_delegations("r1") == []  # nothing delegated on a budget that ran out
