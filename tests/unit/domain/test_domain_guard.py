"""Input guard: QUEUED -> RUNNING, screening, dataset check, idempotent redelivery; scheduled run records."""

import pytest
from domain_helpers import RUN_ID

from stepcrew.data import DEMO_DATASET
from stepcrew.domain.errors import InputRejectedError, RunNotActiveError
from stepcrew.domain.guard import create_scheduled_run, guard_run
from stepcrew.events import CreateScheduledRun, RunRef
from stepcrew.models import GOAL_MAX_CHARS, ReviewConfig, RunRequest, RunStatus
from stepcrew.tools.datasets import DatasetError, dataset_uri


def _kinds(store):
    return [e.kind for _, e in store.list_events(RUN_ID)]


def test_queued_run_becomes_running_with_engine_and_event(store, make_run, local_guard):
    make_run(RunStatus.QUEUED, provider="rule", data=dataset_uri(DEMO_DATASET),
             review_config=ReviewConfig(threshold=0.7, max_rounds=3), require_approval=True)
    out = guard_run(RunRef(run_id=RUN_ID), store, local_guard)
    run = store.get_run(RUN_ID)
    assert run.status == RunStatus.RUNNING and run.started_at is not None
    assert run.engine == "rule-engine"
    assert out.config.threshold == 0.7 and out.config.max_rounds == 3 and out.config.require_approval
    assert _kinds(store) == ["run_started"]


def test_redelivered_event_for_a_running_run_is_idempotent(store, make_run, local_guard):
    make_run(RunStatus.QUEUED, provider="rule")
    first = guard_run(RunRef(run_id=RUN_ID), store, local_guard)
    started = store.get_run(RUN_ID).started_at
    second = guard_run(RunRef(run_id=RUN_ID), store, local_guard)
    assert first == second
    assert store.get_run(RUN_ID).started_at == started
    assert _kinds(store) == ["run_started"]


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.FAILED])
def test_terminal_run_is_an_error(store, make_run, status, local_guard):
    make_run(status, provider="rule")
    with pytest.raises(RunNotActiveError, match=f"already {status.value}"):
        guard_run(RunRef(run_id=RUN_ID), store, local_guard)


def test_goal_over_the_limit_is_rejected(store, make_run, local_guard):
    make_run(RunStatus.QUEUED, provider="rule", goal="x" * (GOAL_MAX_CHARS + 1))
    with pytest.raises(InputRejectedError, match="over the limit of 10000"):
        guard_run(RunRef(run_id=RUN_ID), store, local_guard)
    assert store.get_run(RUN_ID).status == RunStatus.QUEUED


def test_control_characters_are_rejected_but_newlines_pass(store, make_run, local_guard):
    make_run(RunStatus.QUEUED, provider="rule", goal="line one\nline two\tand\x1b[31m red")
    with pytest.raises(InputRejectedError, match=r"control character \(U\+001B\) at position 21"):
        guard_run(RunRef(run_id=RUN_ID), store, local_guard)


def test_missing_dataset_fails_with_the_dataset_error(store, make_run, tmp_path, local_guard):
    make_run(RunStatus.QUEUED, provider="rule", data=f"file://{tmp_path}/none.csv")
    with pytest.raises(DatasetError):
        guard_run(RunRef(run_id=RUN_ID), store, local_guard)
    assert store.get_run(RUN_ID).status == RunStatus.QUEUED


def test_unknown_provider_fails_before_running(store, make_run, local_guard):
    from stepcrew.llm.registry import UnknownProviderError

    make_run(RunStatus.QUEUED, provider="nosuch")
    with pytest.raises(UnknownProviderError):
        guard_run(RunRef(run_id=RUN_ID), store, local_guard)


def test_scheduled_run_record_is_written_once(store):
    event = CreateScheduledRun(request=RunRequest(goal="Weekly penguin summary", tenant="acme"), run_id="sched-1")
    assert create_scheduled_run(event, store) == RunRef(run_id="sched-1")
    assert create_scheduled_run(event, store) == RunRef(run_id="sched-1")  # redelivery
    run = store.get_run("sched-1")
    assert run.status == RunStatus.QUEUED and run.tenant == "acme" and run.crew.name == "default"
    assert [e.kind for _, e in store.list_events("sched-1")] == ["run_queued"]


def test_scheduled_run_with_unknown_crew_is_rejected(store):
    from stepcrew.crew import CrewError

    event = CreateScheduledRun(request=RunRequest(goal="x", crew="nope"), run_id="sched-2")
    with pytest.raises(CrewError):
        create_scheduled_run(event, store)
