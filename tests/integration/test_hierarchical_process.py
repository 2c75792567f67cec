"""Hierarchical and hybrid crews through the real run ASL on the local runtime: the manager loop (Manage ->
ManagerChoice -> RunDelegations -> Manage ...) with the rule engine's manager, and with scripted manager models (one
that keeps sending work back, stopped by the bound; one that delegates to an unknown worker, rejected and asked
again)."""

from __future__ import annotations

import json
import time

import pytest
from stepcrew.crew import load_crew
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.domain.manager import FEEDBACK_PREFIX, INSTRUCTIONS_PREFIX
from stepcrew.engines.testing import ScriptedModel, reply
from stepcrew.llm import registry
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunRequest, RunStatus, SubtaskStatus
from stepcrew.service import create_run, start_run
from stepcrew.tools.datasets import dataset_uri

pytestmark = pytest.mark.integration

PLAN = json.dumps({"subtasks": [{"id": "calc", "title": "Multiply", "instructions": "Compute 6 * 7.",
                                 "tools": ["calculator"], "role": "data_analyst"}]})
HIGH = json.dumps({"accuracy": 0.95, "completeness": 0.95, "relevance": 0.95, "feedback": "ok"})


def _manage(assessments=(), delegations=(), done=False, give_up=""):
    return reply(json.dumps({"assessments": list(assessments), "delegations": list(delegations), "done": done,
                             "give_up": give_up}))


def _delegate(worker="data_analyst", instructions="Compute 6 * 7.", tools=("calculator",)):
    return {"subtask_id": "calc", "worker": worker, "instructions": instructions, "tools": list(tools)}


@pytest.fixture(scope="module")
def rt():
    with LocalRuntime(fast_waits=True) as runtime:
        yield runtime


def _run(rt, crew: str, tenant: str, **kw) -> str:
    req = RunRequest(goal=kw.pop("goal", DEMO_GOAL), tenant=tenant, memory="off", **kw)
    run = start_run(create_run(req, load_crew(crew), rt.store), rt.store, rt)
    rt.wait(rt.store.get_run(run.run_id).execution_arn)
    return run.run_id


def _events(rt, run_id, *kinds):
    return [(e.kind, e.subtask_id) for _, e in rt.store.list_events(run_id) if e.kind in kinds]


def test_a_hierarchical_crew_delegates_one_subtask_at_a_time_in_plan_order_and_succeeds(rt):
    run_id = _run(rt, "hierarchical", "t-hier", data=dataset_uri(DEMO_DATASET))
    run, plan = rt.store.get_run(run_id), rt.store.get_plan(run_id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert rt.store.get_report(run_id)
    ids = [s.id for s in plan.subtasks]
    assert len(ids) >= 2
    delegations = rt.store.list_delegations(run_id)
    # one delegation per round, in plan order (dependencies respected), each accepted, to the planned worker
    assert [(d.seq, d.round, d.subtask_id, d.verdict) for d in delegations] == [
        (k + 1, k, i, "accepted") for k, i in enumerate(ids)]
    assert [d.worker for d in delegations] == [s.role for s in plan.subtasks]
    # each sub-task started after the one before it finished
    flow = _events(rt, run_id, "subtask_started", "subtask_finished")
    assert flow == [(k, i) for i in ids for k in ("subtask_started", "subtask_finished")]
    assert all(r.status == SubtaskStatus.SUCCEEDED for r in rt.store.list_subtasks(run_id))
    assert _events(rt, run_id, "manager_finished") == [("manager_finished", None)]


def test_a_hybrid_crew_delegates_the_ready_subtasks_as_one_batch_run_side_by_side(rt):
    run_id = _run(rt, "hybrid", "t-hybrid", data=dataset_uri(DEMO_DATASET))
    run, plan = rt.store.get_run(run_id), rt.store.get_plan(run_id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert rt.store.get_report(run_id)
    delegations = rt.store.list_delegations(run_id)
    rounds: dict[int, list[str]] = {}
    for d in delegations:
        rounds.setdefault(d.round, []).append(d.subtask_id)
    assert list(rounds.values()) == plan.waves()  # the rule manager's batches are the plan's waves
    first = rounds[0]
    assert len(first) >= 2, "the demo plan has two independent sub-tasks"
    flow = _events(rt, run_id, "subtask_started", "subtask_finished")
    starts = [flow.index(("subtask_started", i)) for i in first]
    ends = [flow.index(("subtask_finished", i)) for i in first]
    assert max(starts) < min(ends)  # every sub-task of the batch started before any of them finished
    assert all(d.verdict == "accepted" for d in delegations)


def _scripted(name: str, manage: list, act: list) -> ScriptedModel:
    model = ScriptedModel(by_purpose={"plan": [reply(PLAN)], "manage": manage, "act": act,
                                      "synthesize": [reply("# Report\n6 * 7 = 42")], "review": [reply(HIGH)],
                                      "remember": [reply('{"facts": []}')]})
    registry.register(name, lambda tier: model)
    return model


def test_a_manager_that_keeps_sending_work_back_is_stopped_by_the_bound_and_the_run_fails(rt):
    # one sub-task: the bound is 2 delegations (twice the plan's sub-tasks); the third is refused
    send_back = {"subtask_id": "calc", "verdict": "send_back", "feedback": "Show your working."}
    model = _scripted("mgr-loop", manage=[_manage(delegations=[_delegate()]), _manage(assessments=[send_back]),
                                          _manage(assessments=[send_back])],
                      act=[reply("42"), reply("6 * 7 = 42")])
    try:
        run_id = _run(rt, "hierarchical", "t-mgr-loop", goal="Compute 6 times 7", provider="mgr-loop")
    finally:
        registry.unregister("mgr-loop")
    run = rt.store.get_run(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error.code == "ManagerLimitExceeded" and "bounded to 2" in run.error.message
    assert rt.store.get_report(run_id) is None  # never synthesized
    delegations = rt.store.list_delegations(run_id)
    assert [(d.seq, d.kind, d.verdict) for d in delegations] == [(1, "delegate", "sent_back"),
                                                                 (2, "send_back", "sent_back")]
    assert delegations[1].feedback == "Show your working."
    # the worker answered twice, the second time with the manager's feedback as its last user turn
    acts = model.requests_for("act")
    assert len(acts) == 2
    assert acts[1].messages[-1].content == FEEDBACK_PREFIX + "Show your working."
    assert model.remaining()["purpose:manage"] == 0


def test_a_delegation_to_an_unknown_worker_is_rejected_and_the_manager_asked_again(rt):
    better = "Compute 6 * 7 and state the product."
    model = _scripted("mgr-unknown", manage=[
        _manage(delegations=[_delegate(worker="wizard")]),
        _manage(delegations=[_delegate(instructions=better)]),
        _manage(assessments=[{"subtask_id": "calc", "verdict": "accept", "feedback": ""}], done=True)],
        act=[reply("6 * 7 = 42")])
    try:
        run_id = _run(rt, "hierarchical", "t-mgr-unknown", goal="Compute 6 times 7", provider="mgr-unknown")
    finally:
        registry.unregister("mgr-unknown")
    run = rt.store.get_run(run_id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    delegations = rt.store.list_delegations(run_id)
    assert [(d.seq, d.worker, d.verdict) for d in delegations] == [(1, "wizard", "rejected"),
                                                                   (2, "data_analyst", "accepted")]
    assert "unknown worker 'wizard'" in delegations[0].error
    assert delegations[1].instructions == better
    manages = model.requests_for("manage")
    assert len(manages) == 3
    assert "Your previous reply was rejected: unknown worker 'wizard'" in manages[1].messages[-1].content
    # the worker was given the manager's instructions with the plan's
    (act,) = model.requests_for("act")
    assert INSTRUCTIONS_PREFIX + better in next(m.content for m in act.messages if m.role == "user")
    assert _events(rt, run_id, "delegation_rejected") == [("delegation_rejected", None)]
    assert rt.store.get_subtask(run_id, "calc").output == "6 * 7 = 42"


def test_a_parallel_run_never_meets_the_manager(rt):
    run_id = _run(rt, "parallel", "t-par", data=dataset_uri(DEMO_DATASET))
    run = rt.store.get_run(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert rt.store.list_delegations(run_id) == []
    history = rt.sfn.get_execution_history(executionArn=run.execution_arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert "RunWaves" in entered and not {"RouteApproved", "StartManager", "Manage"} & set(entered)


def test_an_approved_hierarchical_plan_goes_to_the_manager(rt):
    from stepcrew.domain.decisions import answer_approval

    req = RunRequest(goal=DEMO_GOAL, data=dataset_uri(DEMO_DATASET), tenant="t-hier-ok", memory="off",
                     require_approval=True)
    run = start_run(create_run(req, load_crew("hierarchical"), rt.store), rt.store, rt)
    deadline = time.monotonic() + 60
    while rt.store.get_run(run.run_id).status != RunStatus.WAITING_APPROVAL and time.monotonic() < deadline:
        time.sleep(0.05)
    answer_approval(rt.store, rt, run.run_id, "t-hier-ok", True)
    rt.wait(rt.store.get_run(run.run_id).execution_arn)
    record = rt.store.get_run(run.run_id)
    assert record.status == RunStatus.SUCCEEDED, record.error
    plan = rt.store.get_plan(run.run_id)
    assert [d.subtask_id for d in rt.store.list_delegations(run.run_id)] == [s.id for s in plan.subtasks]


def test_a_failed_delegation_is_seen_by_the_manager_who_sends_it_back_and_the_run_succeeds(rt):
    # the worker answers empty twice: its child execution fails (EmptyAnswerError), caught inside RunDelegations
    feedback = {"subtask_id": "calc", "verdict": "send_back", "feedback": "Answer with the product."}
    model = _scripted("mgr-retry", manage=[
        _manage(delegations=[_delegate()]), _manage(assessments=[feedback]),
        _manage(assessments=[{"subtask_id": "calc", "verdict": "accept", "feedback": ""}], done=True)],
        act=[reply(""), reply(""), reply("6 * 7 = 42")])
    try:
        run_id = _run(rt, "hierarchical", "t-mgr-retry", goal="Compute 6 times 7", provider="mgr-retry")
    finally:
        registry.unregister("mgr-retry")
    run = rt.store.get_run(run_id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    second = model.requests_for("manage")[1].messages[-1].content
    assert "calc (delegation 1, worker data_analyst): FAILED" in second and "EmptyAnswerError" in second
    assert [(d.kind, d.verdict) for d in rt.store.list_delegations(run_id)] == [("delegate", "sent_back"),
                                                                               ("send_back", "accepted")]
    record = rt.store.get_subtask(run_id, "calc")
    assert (record.status, record.output, record.error) == (SubtaskStatus.SUCCEEDED, "6 * 7 = 42", None)


def test_the_cli_runs_a_hierarchical_crew_and_runs_show_lists_its_delegations(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "STEPCREW_HOME": str(tmp_path)}

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "stepcrew.cli", *args], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    ran = cli("run", DEMO_GOAL, "--data", str(DEMO_DATASET), "--crew", "hierarchical", "--json")
    result = json.loads(ran.stdout)
    assert result["status"] == "SUCCEEDED" and result["final_output"]
    assert "manager: delegation 1 to data_analyst" in ran.stderr  # progress lines name the delegations
    shown = json.loads(cli("runs", "show", result["run_id"], "--json").stdout)
    ids = [s["id"] for s in result["plan"]["subtasks"]]
    assert [(d["seq"], d["subtask_id"], d["verdict"]) for d in shown["delegations"]] == [
        (k + 1, i, "accepted") for k, i in enumerate(ids)]
    human = cli("runs", "show", result["run_id"])
    assert f"delegations of {result['run_id']}" in human.stderr and "accepted" in human.stderr
