"""`stepcrew runs redrive` use case (stepcrew.domain.redrive): which deployed runs are redriven, the conditional
reopen, and a refused RedriveExecution putting the record back. Step Functions is a botocore Stubber (no AWS)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from stepcrew.crew import load_crew
from stepcrew.domain.redrive import RedriveError, redrive_run
from stepcrew.models import RunError, RunRequest, RunStatus
from stepcrew.service import create_run
from stepcrew.store.memory import MemoryRunStore

ARN = "arn:aws:states:us-east-1:123456789012:execution:stepcrew-run:"


@pytest.fixture
def sfn():
    client = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        client.stub = stub
        yield client
        stub.assert_no_pending_responses()


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
