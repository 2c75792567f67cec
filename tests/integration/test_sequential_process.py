"""A sequential crew through the real run ASL on the local runtime: the plan's sub-tasks run one wave each, in
dependency order, and every sub-task is given the outputs of all earlier ones."""

from __future__ import annotations

from stepcrew.crew import load_crew
from stepcrew.domain.agent import _context
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunRequest, RunStatus, SubtaskStatus
from stepcrew.service import create_run, start_run
from stepcrew.tools.datasets import dataset_uri


def test_the_demo_goal_runs_as_a_chain_and_each_subtask_sees_every_earlier_output():
    with LocalRuntime() as rt:
        req = RunRequest(goal=DEMO_GOAL, data=dataset_uri(DEMO_DATASET), tenant="t-seq", memory="off")
        run = start_run(create_run(req, load_crew("sequential"), rt.store), rt.store, rt)
        rt.wait(rt.store.get_run(run.run_id).execution_arn)
        store = rt.store
        record = store.get_run(run.run_id)
        plan = store.get_plan(run.run_id)
        subtasks = {s.subtask_id: s for s in store.list_subtasks(run.run_id)}
        ready = [e for _, e in store.list_events(run.run_id) if e.kind == "plan_ready"]
        started = [e.subtask_id for _, e in store.list_events(run.run_id) if e.kind == "subtask_started"]
        finished = [e.subtask_id for _, e in store.list_events(run.run_id) if e.kind == "subtask_finished"]
        # what each sub-task's engine is given (the LLM engine renders it into the first prompt)
        seen = {s.id: _context(store, record, plan, s).dependencies for s in plan.subtasks}
    assert record.status == RunStatus.SUCCEEDED, record.error
    ids = [s.id for s in plan.subtasks]
    assert len(ids) >= 2
    assert ready[-1].data["waves"] == [[i] for i in ids]  # one sub-task per wave
    assert [s.depends_on for s in plan.subtasks] == [ids[:k] for k in range(len(ids))]
    assert started == ids and finished == ids  # one at a time: each started after the one before it finished
    for k, i in enumerate(ids):
        assert subtasks[i].status == SubtaskStatus.SUCCEEDED
        assert [(d.id, d.output) for d in seen[i]] == [(e, subtasks[e].output) for e in ids[:k]]
