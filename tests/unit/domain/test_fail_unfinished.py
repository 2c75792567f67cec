"""stepcrew.domain.finalize.fail_unfinished_run: the one fail path of the deployed sweep (ExecutionEndedWithoutRecord)
and the local runtime's cut-off (LocalRuntimeExited). A run with work in flight ends FAILED with its open sub-tasks,
under a conditional write: a run that reached a terminal status (or waits for a person's review) keeps it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from stepcrew.crew import load_crew
from stepcrew.domain.finalize import fail_unfinished_run
from stepcrew.domain.sweep import sweep
from stepcrew.models import Plan, RunRequest, RunStatus, SubTask, SubtaskStatus
from stepcrew.service import create_run
from stepcrew.store.base import StoreError
from stepcrew.store.memory import MemoryRunStore

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
CODE, MESSAGE = "LocalRuntimeExited", "the local runtime exited before the run finished"


def _run(store, status: RunStatus) -> str:
    """A run of ``status`` with three sub-tasks: a SUCCEEDED, b RUNNING, c PENDING."""
    run = create_run(RunRequest(goal="Compute 6 times 7", tenant="acme"), load_crew("default"), store)
    store.put_plan(run.run_id, Plan(subtasks=[SubTask(id=i, title=i, instructions=f"do {i}") for i in "abc"]))
    store.update_subtask(run.run_id, "a", {"status": SubtaskStatus.SUCCEEDED})
    store.update_subtask(run.run_id, "b", {"status": SubtaskStatus.RUNNING})
    store.update_run(run.run_id, {"status": status})
    return run.run_id


def _events(store, run_id: str) -> list[tuple[str, str | None, dict]]:
    return [(e.kind, e.subtask_id, e.data) for _, e in store.list_events(run_id)]


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_APPROVAL])
def test_a_run_in_flight_ends_failed_with_its_open_subtasks(status):
    store = MemoryRunStore()
    run_id = _run(store, status)
    before = _events(store, run_id)
    assert fail_unfinished_run(store, run_id, code=CODE, message=MESSAGE, now=NOW) is True
    run = store.get_run(run_id)
    assert run.status == RunStatus.FAILED and (run.error.code, run.error.message) == (CODE, MESSAGE)
    assert run.finished_at == NOW
    subtasks = {s.subtask_id: s for s in store.list_subtasks(run_id)}
    assert subtasks["a"].status == SubtaskStatus.SUCCEEDED and subtasks["a"].error is None
    for sid in "bc":
        assert subtasks[sid].status == SubtaskStatus.FAILED and subtasks[sid].error.code == "RunFailed"
        assert subtasks[sid].error.message == f"the run failed before this sub-task finished: {CODE}: {MESSAGE}"
    assert _events(store, run_id)[len(before):] == [("run_failed", None, {"code": CODE}),
                                                    ("subtask_failed", "b", {"code": "RunFailed"}),
                                                    ("subtask_failed", "c", {"code": "RunFailed"})]


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DECLINED,
                                    RunStatus.NEEDS_REVIEW])
def test_a_finished_or_review_waiting_run_keeps_its_outcome_and_nothing_is_written(status):
    store = MemoryRunStore()
    run_id = _run(store, status)
    before = (store.get_run(run_id), store.list_subtasks(run_id), _events(store, run_id))
    assert fail_unfinished_run(store, run_id, code=CODE, message=MESSAGE, now=NOW) is False
    assert (store.get_run(run_id), store.list_subtasks(run_id), _events(store, run_id)) == before


@pytest.mark.parametrize("run_id", ["0123456789abcdef0123456789abcdef", "not a run id"])
def test_an_unknown_or_malformed_run_id_is_not_marked(run_id):
    store = MemoryRunStore()
    assert fail_unfinished_run(store, run_id, code=CODE, message=MESSAGE) is False
    assert store.list_events(run_id) == []


class _FailingSubtaskWrites(MemoryRunStore):
    def update_subtask(self, *args, **kwargs):
        raise StoreError("sub-task write throttled")


class _FailingEvents(MemoryRunStore):
    def add_event(self, event):
        if event.kind == "run_failed":
            raise StoreError("event write throttled")
        return super().add_event(event)


def test_a_store_failure_closing_the_subtasks_is_logged_and_the_run_is_still_failed(caplog):
    store = _FailingSubtaskWrites()
    run = create_run(RunRequest(goal="Compute 6 times 7", tenant="acme"), load_crew("default"), store)
    store.put_plan(run.run_id, Plan(subtasks=[SubTask(id="a", title="a", instructions="do a")]))
    store.update_run(run.run_id, {"status": RunStatus.RUNNING})
    assert fail_unfinished_run(store, run.run_id, code=CODE, message=MESSAGE) is True
    assert store.get_run(run.run_id).status == RunStatus.FAILED
    assert [s.status for s in store.list_subtasks(run.run_id)] == [SubtaskStatus.PENDING]
    failed = [r for r in caplog.records if r.getMessage() == "could not close the sub-tasks of a failed run"]
    assert [getattr(r, "run_id", None) for r in failed] == [run.run_id]


def test_a_store_failure_writing_the_run_failed_event_is_raised():
    store = _FailingEvents()
    run_id = _run(store, RunStatus.RUNNING)
    with pytest.raises(StoreError):
        fail_unfinished_run(store, run_id, code=CODE, message=MESSAGE)
    # the record was written first (conditional), its sub-tasks are left as they were
    assert store.get_run(run_id).status == RunStatus.FAILED
    assert [s.status for s in store.list_subtasks(run_id)] == [SubtaskStatus.SUCCEEDED, SubtaskStatus.RUNNING,
                                                               SubtaskStatus.PENDING]


def test_the_sweep_counts_an_event_write_failure_in_its_errors_instead_of_raising(sfn):
    from datetime import timedelta

    from stepcrew.models import utcnow

    store = _FailingEvents()
    run_id = _run(store, RunStatus.RUNNING)
    store.update_run(run_id, {"updated_at": utcnow() - timedelta(minutes=30)})
    sfn.stub.add_client_error("describe_execution", service_error_code="ExecutionDoesNotExist")
    report = sweep(store, sfn, "arn:aws:states:us-east-1:123456789012:stateMachine:stepcrew-dev-run")
    assert (report.candidates, report.errors, report.swept) == (1, 1, [])
