"""``stepcrew runs redrive``: continue a deployed run whose execution ended without finishing it.

What Step Functions allows (API reference, RedriveExecution,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html, and the developer guide,
https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html): a Standard execution that FAILED, was
ABORTED or TIMED_OUT, started on or after 2023-11-15, within 14 days of its end ("redrivable period"), under the one-year
open limit and with fewer than 24,999 history events, is continued "from the unsuccessful step" with the same input,
definition and ARN; the successful steps are not rerun, and for an inline Map or Parallel only the failed or aborted
iterations/branches are. ``DescribeExecution`` says whether it can be (``redriveStatus`` NOT_REDRIVABLE with
``redriveStatusReason``: still RUNNING, SUCCEEDED, period exceeded, history limit, ...).

Why a run whose failure its workflow recorded is refused: the run state machine catches every error into
``RecordFailure -> RememberFailure -> RunFailed``, and ``RunFailed`` is a Fail state, so such an execution's
"unsuccessful step" is that Fail state: a redrive would run it again and fail at once (after reopening the record for
nothing). Its failure is a decided outcome (budget, review, a Lambda error after its retries): start the run again.
What redrive is for is an execution that ended *without* its workflow recording the outcome: aborted
(StopExecution), timed out, failed outside any Catch (``States.Runtime``, a limit) -- its record still open
(QUEUED/RUNNING/WAITING_APPROVAL) or marked by the deployed sweep (:mod:`stepcrew.domain.sweep`) with a code in
:data:`REDRIVABLE_CODES`. An execution cut off inside ``RunWaves`` reruns the unfinished ``RunSubtask`` Tasks, whose
``states:startExecution.sync:2`` starts each sub-task's child again: the child's name carries
``$$.Execution.RedriveCount`` (``<run_id>-w<wave>-<index>-r<count>``, run.asl.json), because Step Functions answers
``ExecutionAlreadyExists`` for a closed execution's name "regardless of input" (StartExecution API reference).
Known gap (not handled here): a record the deployed sweep marked has its open sub-tasks closed FAILED
(:func:`stepcrew.domain.finalize.close_open_subtasks`) and they are not reopened, so their agent loop refuses to go on
(``SubtaskStateError``) and such a redrive ends FAILED (recorded, never a silent success).

The reopen is one conditional write (:meth:`RunStore.reopen_run`): the record becomes RUNNING only while its status,
error code and finished_at are those read here; a record another process changed meanwhile is left alone
(:class:`RedriveError`, nothing changed). If ``RedriveExecution`` is refused after the reopen, the record is put back
as it was (conditional on RUNNING).
"""

from __future__ import annotations

from typing import Any

from stepcrew.models import ProgressEvent, Run, RunStatus

#: Record codes of runs whose execution ended without the workflow recording it (the local cut-off, the deployed
#: sweep): these may be redriven.
REDRIVABLE_CODES = ("LocalRuntimeExited", "ExecutionEndedWithoutRecord")
#: Record statuses a redrive may reopen: open records (their execution ended unrecorded) and FAILED ones with a
#: code of :data:`REDRIVABLE_CODES`.
REOPENABLE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_APPROVAL, RunStatus.FAILED)
#: Execution statuses RedriveExecution accepts (API reference).
REDRIVABLE_EXECUTION_STATUSES = ("FAILED", "ABORTED", "TIMED_OUT")


class RedriveError(ValueError):
    """The run cannot be redriven (unknown, still running, its outcome recorded, not redrivable, changed
    meanwhile): one line, nothing changed."""


def record_refusal(run: Run) -> str | None:
    """Why the record of ``run`` rules a redrive out (None: it may be redriven). Pure."""
    rid = run.run_id
    if run.status in (RunStatus.SUCCEEDED, RunStatus.DECLINED):
        return f"run {rid} ended {run.status.value}: nothing to redrive"
    if run.status == RunStatus.NEEDS_REVIEW:
        return f"run {rid} waits for a person's review: answer it with `stepcrew runs review`"
    if run.status == RunStatus.FAILED and (run.error is None or run.error.code not in REDRIVABLE_CODES):
        code = run.error.code if run.error is not None else "unknown"
        return (f"run {rid} ended FAILED {code}, recorded by its workflow: a redrive would only rerun its Fail "
                "state (RunFailed); start the run again")
    if not run.execution_arn:
        return f"run {rid} has no execution to redrive (it never started)"
    return None


def execution_refusal(run_id: str, described: dict[str, Any]) -> str | None:
    """Why the execution (a DescribeExecution answer) cannot be redriven (None: it can). Pure."""
    status = described.get("status")
    if status == "RUNNING":
        return f"run {run_id}: its execution is still RUNNING"
    if described.get("redriveStatus") == "NOT_REDRIVABLE":
        return (f"run {run_id}: Step Functions cannot redrive its execution "
                f"({described.get('redriveStatusReason') or 'not redrivable'})")
    if status not in REDRIVABLE_EXECUTION_STATUSES:
        return f"run {run_id}: its execution is {status}, which cannot be redriven"
    return None


def redrive_run(store: Any, sfn: Any, run_id: str, tenant: str) -> str:
    """Redrive the execution of ``run_id`` (a run of ``tenant``): check the record and the execution, reopen the
    record to RUNNING (conditional on what was read), then ``RedriveExecution``. Returns the execution ARN. Raises
    :class:`RedriveError` with the reason when it cannot be (nothing changed). ``store``: a RunStore; ``sfn``: a
    boto3 Step Functions client (``describe_execution``, ``redrive_execution``)."""
    from botocore.exceptions import ClientError

    from stepcrew.store.base import RunNotFoundError, RunStateConflictError

    try:
        run = store.get_run(run_id, tenant)
    except (RunNotFoundError, ValueError):
        raise RedriveError(f"no run {run_id!r} of tenant {tenant!r}") from None
    refusal = record_refusal(run)
    if refusal:
        raise RedriveError(refusal)
    try:
        described = sfn.describe_execution(executionArn=run.execution_arn)
    except ClientError as exc:
        raise RedriveError(f"run {run_id}: its execution cannot be read ({exc.response['Error']['Code']})") from None
    refusal = execution_refusal(run_id, described)
    if refusal:
        raise RedriveError(refusal)
    before = {"status": run.status, "error": run.error, "finished_at": run.finished_at}
    try:
        store.reopen_run(run_id, run, statuses=REOPENABLE_STATUSES)
    except (RunStateConflictError, RunNotFoundError):
        raise RedriveError(f"run {run_id} changed while it was being redriven: see `stepcrew runs show`") from None
    try:
        sfn.redrive_execution(executionArn=run.execution_arn)
    except ClientError as exc:
        store.update_run(run_id, before, expected=[RunStatus.RUNNING])
        raise RedriveError(f"run {run_id}: RedriveExecution refused ({exc.response['Error']['Code']}: "
                           f"{exc.response['Error'].get('Message', '')[:200]}); the record is as it was") from None
    store.add_event(ProgressEvent(run_id=run_id, kind="run_resumed",
                                  data={"via": "redrive", "after": run.error.code if run.error else run.status.value,
                                        "execution_status": described["status"]}))
    return run.execution_arn
