"""`stepcrew runs redrive` use case (stepcrew.domain.redrive): which deployed runs are redriven, the conditional
reopen, and a refused RedriveExecution putting the record back. Step Functions is a botocore Stubber (no AWS)."""

from __future__ import annotations

import boto3
import pytest

from stepcrew.crew import load_crew
from stepcrew.domain.redrive import RedriveError, redrive_run
from stepcrew.models import RunError, RunRequest, RunStatus
from stepcrew.service import create_run
from stepcrew.store.memory import MemoryRunStore

ARN = "arn:aws:states:us-east-1:123456789012:execution:stepcrew-run:"


def _run(store, status: RunStatus, code: str | None = None, tenant: str = "acme") -> str:
    run = create_run(RunRequest(goal="Compute 6 times 7", tenant=tenant), load_crew("default"), store)
    changes = {"status": status, "execution_arn": ARN + run.run_id}
    if code:
        changes["error"] = RunError(code=code, message="why")
    store.update_run(run.run_id, changes)
    return run.run_id


def _described(sfn, run_id: str, status: str, redrive: str = "REDRIVABLE", reason: str | None = None) -> None:
    answer = {"executionArn": ARN + run_id, "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:r",
              "status": status, "startDate": "2026-12-01T00:00:00Z", "redriveStatus": redrive}
    if reason:
        answer["redriveStatusReason"] = reason
    sfn.stub.add_response("describe_execution", answer, {"executionArn": ARN + run_id})


@pytest.mark.parametrize("status, code", [(RunStatus.RUNNING, None), (RunStatus.FAILED, "ExecutionEndedWithoutRecord"),
                                          (RunStatus.FAILED, "LocalRuntimeExited")])
def test_a_run_whose_execution_ended_unrecorded_is_reopened_and_redriven(sfn, status, code):
    store = MemoryRunStore()
    run_id = _run(store, status, code)
    _described(sfn, run_id, "ABORTED")
    sfn.stub.add_response("redrive_execution", {"redriveDate": "2026-12-01T00:00:01Z"}, {"executionArn": ARN + run_id})
    assert redrive_run(store, sfn, run_id, "acme") == ARN + run_id
    run = store.get_run(run_id)
    assert run.status == RunStatus.RUNNING and run.error is None and run.finished_at is None
    assert [e.data.get("via") for _, e in store.list_events(run_id) if e.kind == "run_resumed"] == ["redrive"]


@pytest.mark.parametrize("status, code, words", [
    (RunStatus.SUCCEEDED, None, "nothing to redrive"),
    (RunStatus.DECLINED, None, "nothing to redrive"),
    (RunStatus.NEEDS_REVIEW, None, "review"),
    (RunStatus.FAILED, "BudgetExceededError", "recorded by its workflow"),
])
def test_a_decided_run_is_refused_and_nothing_changes(sfn, status, code, words):
    store = MemoryRunStore()
    run_id = _run(store, status, code)
    before = store.get_run(run_id)
    with pytest.raises(RedriveError, match=words):
        redrive_run(store, sfn, run_id, "acme")
    assert store.get_run(run_id) == before


def test_another_tenants_run_and_an_unknown_run_are_not_found(sfn):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.RUNNING, tenant="other")
    for rid in (run_id, "no-such-run"):
        with pytest.raises(RedriveError, match="no run"):
            redrive_run(store, sfn, rid, "acme")
    assert store.get_run(run_id).status == RunStatus.RUNNING


def test_a_running_or_not_redrivable_execution_is_refused_and_nothing_changes(sfn):
    store = MemoryRunStore()
    running, old = _run(store, RunStatus.RUNNING), _run(store, RunStatus.RUNNING)
    _described(sfn, running, "RUNNING")
    with pytest.raises(RedriveError, match="still RUNNING"):
        redrive_run(store, sfn, running, "acme")
    _described(sfn, old, "FAILED", "NOT_REDRIVABLE", "Execution redrivable period exceeded.")
    with pytest.raises(RedriveError, match="redrivable period exceeded"):
        redrive_run(store, sfn, old, "acme")
    assert store.get_run(running).status == store.get_run(old).status == RunStatus.RUNNING


def test_a_refused_redrive_puts_the_record_back(sfn):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.FAILED, "ExecutionEndedWithoutRecord")
    _described(sfn, run_id, "TIMED_OUT")
    sfn.stub.add_client_error("redrive_execution", service_error_code="ExecutionNotRedrivable",
                              service_message="not redrivable", expected_params={"executionArn": ARN + run_id})
    with pytest.raises(RedriveError, match="ExecutionNotRedrivable"):
        redrive_run(store, sfn, run_id, "acme")
    run = store.get_run(run_id)
    assert run.status == RunStatus.FAILED and run.error.code == "ExecutionEndedWithoutRecord"


def test_a_record_changed_between_the_read_and_the_reopen_is_left_alone(sfn, monkeypatch):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.RUNNING)

    def describe_then_finish(**kwargs):  # another process finishes the run meanwhile
        store.update_run(run_id, {"status": RunStatus.SUCCEEDED})
        return {"status": "ABORTED", "redriveStatus": "REDRIVABLE"}

    monkeypatch.setattr(sfn, "describe_execution", describe_then_finish)
    with pytest.raises(RedriveError, match="changed while"):
        redrive_run(store, sfn, run_id, "acme")
    assert store.get_run(run_id).status == RunStatus.SUCCEEDED


# --------------------------------------------------------------------------------------------- the conditional reopen
# RunStore.reopen_run on both adapters (the in-memory fake and DynamoRunStore on a moto table).
_TABLES = iter(range(10_000))


@pytest.fixture(params=["memory", "dynamo"])
def any_store(request):
    if request.param == "memory":
        return MemoryRunStore()
    from stepcrew.store.dynamodb import DynamoRunStore
    from stepcrew.store.schema import create_table

    client = request.getfixturevalue("moto_dynamodb")
    table = f"stepcrew-redrive-{next(_TABLES)}"
    create_table(client, table)
    return DynamoRunStore(table, client=client)


def _failed(store, code: str = "ExecutionEndedWithoutRecord") -> str:
    from stepcrew.models import utcnow

    run_id = _run(store, RunStatus.RUNNING)
    store.update_run(run_id, {"status": RunStatus.FAILED, "error": RunError(code=code, message="why"),
                              "finished_at": utcnow()})
    return run_id


def test_reopen_turns_the_failed_record_it_read_into_running(any_store):
    run_id = _failed(any_store)
    read = any_store.get_run(run_id)
    reopened = any_store.reopen_run(run_id, read)
    again = any_store.get_run(run_id)
    assert reopened.status == again.status == RunStatus.RUNNING
    assert again.error is None and again.finished_at is None and again.updated_at > read.updated_at
    assert again.goal == read.goal and again.execution_arn == read.execution_arn  # nothing else touched


@pytest.mark.parametrize("change", [
    {"error": RunError(code="BudgetExceededError", message="spent")},  # failed again, another reason
    {"status": RunStatus.SUCCEEDED, "error": None},
    {"finished_at": "later"},  # the same failure, written again later
])
def test_reopen_of_a_record_changed_since_it_was_read_conflicts_and_writes_nothing(any_store, change):
    from datetime import timedelta

    from stepcrew.store.base import RunStateConflictError

    run_id = _failed(any_store)
    read = any_store.get_run(run_id)
    if change.get("finished_at") == "later":
        change = {"finished_at": read.finished_at + timedelta(seconds=5)}
    any_store.update_run(run_id, change)
    now = any_store.get_run(run_id)
    with pytest.raises(RunStateConflictError, match="changed since it was read"):
        any_store.reopen_run(run_id, read)
    assert any_store.get_run(run_id) == now


def test_reopen_refuses_a_status_outside_the_given_ones_and_unknown_or_foreign_records(any_store):
    from stepcrew.store.base import RunNotFoundError, RunStateConflictError

    run_id = _run(any_store, RunStatus.SUCCEEDED)
    read = any_store.get_run(run_id)
    with pytest.raises(RunStateConflictError, match="SUCCEEDED"):
        any_store.reopen_run(run_id, read)  # default: FAILED only
    with pytest.raises(RunStateConflictError):
        any_store.reopen_run(run_id, read, statuses=[RunStatus.FAILED, RunStatus.RUNNING])
    assert any_store.get_run(run_id) == read
    with pytest.raises(ValueError, match="record of run"):
        any_store.reopen_run("another-run", read)
    ghost = read.model_copy(update={"run_id": "ghost", "status": RunStatus.FAILED})
    with pytest.raises(RunNotFoundError):
        any_store.reopen_run("ghost", ghost)


def test_reopen_of_an_open_record_given_its_status(any_store):
    run_id = _run(any_store, RunStatus.WAITING_APPROVAL)
    read = any_store.get_run(run_id)
    assert any_store.reopen_run(run_id, read, statuses=[RunStatus.WAITING_APPROVAL]).status == RunStatus.RUNNING


def test_a_failed_record_refailed_with_another_code_meanwhile_is_not_redriven(sfn, monkeypatch):
    store = MemoryRunStore()
    run_id = _failed(store)
    store.update_run(run_id, {"execution_arn": ARN + run_id})

    def describe_then_refail(**kwargs):  # the sweep, or an operator, records another reason meanwhile
        store.update_run(run_id, {"error": RunError(code="LocalRuntimeExited", message="other")})
        return {"status": "ABORTED", "redriveStatus": "REDRIVABLE"}

    monkeypatch.setattr(sfn, "describe_execution", describe_then_refail)
    with pytest.raises(RedriveError, match="changed while"):
        redrive_run(store, sfn, run_id, "acme")
    run = store.get_run(run_id)
    assert run.status == RunStatus.FAILED and run.error.code == "LocalRuntimeExited"


# --------------------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("case", ["unknown", "succeeded", "recorded_failure"])
def test_cli_redrive_bad_input_is_one_line_exit_2_and_changes_nothing(sfn, monkeypatch, case):
    from typer.testing import CliRunner

    import stepcrew.cli as cli

    store = MemoryRunStore()
    run_id = {"unknown": lambda: "no-such-run", "succeeded": lambda: _run(store, RunStatus.SUCCEEDED),
              "recorded_failure": lambda: _run(store, RunStatus.FAILED, "BudgetExceededError")}[case]()
    before = store.get_run(run_id) if case != "unknown" else None
    monkeypatch.setattr(cli, "_aws_backend", lambda: (store, None))
    monkeypatch.setattr(boto3, "client", lambda *a, **k: sfn)  # the Stubber: any call to AWS would fail the test
    result = CliRunner().invoke(cli.app, ["runs", "redrive", run_id, "--aws", "--tenant", "acme"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    assert {"unknown": "no run", "succeeded": "ended SUCCEEDED",
            "recorded_failure": "recorded by its workflow"}[case] in lines[0]
    if before is not None:
        assert store.get_run(run_id) == before
