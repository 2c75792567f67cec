"""Finalize: output guard and success, readable failure reasons, idempotent terminal no-ops, sub-task failure,
metrics; and the approval gate."""

import json
from pathlib import Path

import pytest
from domain_helpers import RUN_ID, two_step_plan
from pydantic import TypeAdapter

from stepcrew.domain.approval import request_approval
from stepcrew.domain.errors import OutputRejectedError, RunNotActiveError
from stepcrew.domain.finalize import finalize
from stepcrew.events import (
    ApprovalInput,
    FailRun,
    FailSubtask,
    FinalizeInput,
    StepFunctionsError,
    SucceedRun,
)
from stepcrew.models import CriterionScores, Review, RunError, RunStatus, SubtaskStatus, utcnow

EVENTS = Path(__file__).resolve().parents[3] / "events"


class Sink:
    def __init__(self):
        self.metrics = {}

    def add_metric(self, name, unit, value):
        self.metrics[name] = (unit, value)


def _event(name):
    data = json.loads((EVENTS / f"{name}.json").read_text())
    return TypeAdapter(FinalizeInput).validate_python({**data, "run_id": RUN_ID})


def _lambda_cause(error_type, message):
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []})


def test_succeed_run_after_the_output_guard_records_metrics(store, make_run):
    make_run(started_at=utcnow())
    store.put_report(RUN_ID, "# Report\n")
    store.put_review(RUN_ID, Review(round=1, scores=CriterionScores(accuracy=0.9, completeness=0.9, relevance=0.9),
                                    overall=0.9, passed=True))  # the last review round passed
    store.add_usage(RUN_ID, "m", 100, 50, 0.25)
    sink = Sink()
    out = finalize(SucceedRun(run_id=RUN_ID), store, sink)
    run = store.get_run(RUN_ID)
    assert out.status == "SUCCEEDED" and run.status == RunStatus.SUCCEEDED and run.finished_at
    assert sink.metrics["RunsSucceeded"] == ("Count", 1)
    assert sink.metrics["InputTokens"] == ("Count", 100) and sink.metrics["OutputTokens"] == ("Count", 50)
    assert sink.metrics["CostUSD"][1] == pytest.approx(0.25) and sink.metrics["RunDurationSeconds"][1] >= 0
    (event,) = [e for _, e in store.list_events(RUN_ID)]
    assert event.kind == "run_succeeded" and event.data["input_tokens"] == 100


@pytest.mark.parametrize("report", [None, "   \n"])
def test_no_or_blank_report_is_rejected(store, make_run, report):
    make_run()
    if report is not None:
        store.put_report(RUN_ID, report)
    with pytest.raises(OutputRejectedError, match="has no report"):
        finalize(SucceedRun(run_id=RUN_ID), store)
    assert store.get_run(RUN_ID).status == RunStatus.RUNNING


def test_succeeding_twice_is_a_no_op_and_a_failed_run_cannot_succeed(store, make_run):
    make_run(status=RunStatus.SUCCEEDED)
    assert finalize(SucceedRun(run_id=RUN_ID), store).status == "SUCCEEDED"
    assert store.list_events(RUN_ID) == []
    store.update_run(RUN_ID, {"status": RunStatus.FAILED})
    with pytest.raises(RunNotActiveError):
        finalize(SucceedRun(run_id=RUN_ID), store)


def test_fail_run_reads_the_lambda_error_json(store, make_run):
    make_run()
    sink = Sink()
    out = finalize(_event("finalize_fail_run_lambda_error"), store, sink)
    run = store.get_run(RUN_ID)
    assert out.status == "FAILED" and run.finished_at
    assert run.error == RunError(code="ModelAuthError", message="anthropic rejected the credentials (HTTP 401)")
    assert sink.metrics["RunsFailed"] == ("Count", 1)
    assert [e.data["code"] for _, e in store.list_events(RUN_ID) if e.kind == "run_failed"] == ["ModelAuthError"]


def test_fail_run_after_a_child_execution_uses_the_failed_subtasks_error(store, make_run):
    make_run()
    store.put_plan(RUN_ID, two_step_plan())
    store.update_subtask(RUN_ID, "compare", {"status": SubtaskStatus.FAILED,
                                             "error": RunError(code="ModelAuthError", message="invalid x-api-key")})
    finalize(_event("finalize_fail_run_subtask"), store)
    error = store.get_run(RUN_ID).error
    assert error.code == "ModelAuthError"
    assert error.message == "sub-task compare failed: ModelAuthError: invalid x-api-key"


def test_fail_run_with_an_invalid_plan_carries_the_plan_error(store, make_run):
    make_run()
    finalize(_event("finalize_fail_run_plan_invalid"), store)
    error = store.get_run(RUN_ID).error
    assert error.code == "PlanInvalidError"
    assert error.message == "the plan was invalid: dependency cycle among sub-tasks: compare, quantify"


def test_fail_run_without_json_keeps_error_and_cause(store, make_run):
    make_run(status=RunStatus.WAITING_APPROVAL, approval_token="tok")
    finalize(FailRun(run_id=RUN_ID, error=StepFunctionsError(Error="States.Timeout", Cause="no approval\nin 24h")),
             store)
    run = store.get_run(RUN_ID)
    assert run.status == RunStatus.FAILED and run.approval_token is None
    assert run.error == RunError(code="States.Timeout", message="no approval in 24h")


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.FAILED])
def test_fail_run_on_a_terminal_run_is_a_no_op(store, make_run, status):
    make_run(status=status, error=RunError(code="First", message="first reason"))
    out = finalize(FailRun(run_id=RUN_ID, error=StepFunctionsError(Error="Other", Cause="x")), store, Sink())
    run = store.get_run(RUN_ID)
    assert out.status == status.value and run.status == status and run.error.code == "First"
    assert store.list_events(RUN_ID) == []


def test_fail_subtask_records_the_lambda_error_once(store, make_run):
    make_run()
    store.put_plan(RUN_ID, two_step_plan())
    out = finalize(_event("finalize_fail_subtask"), store)
    record = store.get_subtask(RUN_ID, "compare")
    assert out.subtask_id == "compare" and out.status == "FAILED"
    assert record.status == SubtaskStatus.FAILED and record.finished_at
    assert record.error == RunError(code="MaxTurnsExceededError",
                                    message="sub-task compare reached its limit of 8 model calls")
    again = FailSubtask(run_id=RUN_ID, subtask_id="compare", error=StepFunctionsError(Error="X", Cause="y"))
    finalize(again, store)
    assert store.get_subtask(RUN_ID, "compare").error.code == "MaxTurnsExceededError"
    assert [e.kind for _, e in store.list_events(RUN_ID)] == ["subtask_failed"]


def test_approval_stores_the_token_and_waits(store, make_run):
    make_run()
    out = request_approval(ApprovalInput(run_id=RUN_ID, task_token="token-1"), store)
    run = store.get_run(RUN_ID)
    assert out.status == "WAITING_APPROVAL" and run.status == RunStatus.WAITING_APPROVAL
    assert run.approval_token == "token-1"
    request_approval(ApprovalInput(run_id=RUN_ID, task_token="token-2"), store)  # redelivery: newest token wins
    assert store.get_run(RUN_ID).approval_token == "token-2"


def test_approval_on_a_finished_run_is_refused(store, make_run):
    make_run(status=RunStatus.FAILED)
    with pytest.raises(RunNotActiveError):
        request_approval(ApprovalInput(run_id=RUN_ID, task_token="t"), store)


def test_fail_subtask_for_an_unknown_subtask_fails_closed_with_a_clear_error(store, make_run):
    from stepcrew.domain.errors import SubtaskStateError

    make_run()
    store.put_plan(RUN_ID, two_step_plan())
    bad = FailSubtask(run_id=RUN_ID, subtask_id="nope", error=StepFunctionsError(Error="X", Cause="y"))
    with pytest.raises(SubtaskStateError, match="run run1 has no sub-task 'nope'"):
        finalize(bad, store)


def test_fail_run_closes_the_subtasks_still_open_and_keeps_the_finished_ones(store, make_run):
    make_run()
    store.put_plan(RUN_ID, two_step_plan())
    ids = [r.subtask_id for r in store.list_subtasks(RUN_ID)]
    first, second = ids[0], ids[1]
    store.update_subtask(RUN_ID, first, {"status": SubtaskStatus.RUNNING}, expected=[SubtaskStatus.PENDING])
    store.update_subtask(RUN_ID, first, {"status": SubtaskStatus.FAILED,
                                         "error": RunError(code="ModelAuthError", message="invalid x-api-key")},
                         expected=[SubtaskStatus.RUNNING])
    finalize(_event("finalize_fail_run_subtask"), store)
    records = {r.subtask_id: r for r in store.list_subtasks(RUN_ID)}
    assert records[first].error.code == "ModelAuthError"  # its own failure is kept
    assert records[second].status == SubtaskStatus.FAILED and records[second].finished_at is not None
    assert records[second].error.code == "RunFailed" and "ModelAuthError" in records[second].error.message
    assert not [r for r in records.values() if r.status in (SubtaskStatus.PENDING, SubtaskStatus.RUNNING)]
