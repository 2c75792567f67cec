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
The sub-tasks the cut-off closed: a record the deployed sweep (or a local cut-off) marked has its open sub-tasks
closed FAILED ``RunFailed`` naming the run's code (:func:`stepcrew.domain.finalize.close_open_subtasks`), and the
agent loop refuses to go on with a FAILED sub-task (``SubtaskStateError``). The redrive reopens them with the local
resume's use case, :func:`stepcrew.domain.finalize.reopen_cut_off_subtasks` (codes :data:`REDRIVABLE_CODES`): a
sub-task that had started goes back to RUNNING (its agent loop goes on from its stored conversation), one that had
not to PENDING. A sub-task that failed on its own (its tool, its turn limit, its model: its own error code) stays
FAILED, with what that means for the redriven run's outcome.

Order, and what a refusal leaves: (1) the run record is reopened, one conditional write (:meth:`RunStore.reopen_run`):
it becomes RUNNING only while its status, error code and finished_at are those read here; a record another process
changed meanwhile is left alone (:class:`RedriveError`, nothing changed); (2) its cut-off sub-tasks are reopened (each
write conditional on FAILED); (3) ``RedriveExecution``; (4) the event ``run_resumed`` ``{"via": "redrive", "after",
"execution_status", "subtasks_reopened"}``. The sub-tasks are reopened before ``RedriveExecution`` so that the
redriven execution never meets a FAILED one (its rerun ``RunSubtask`` Tasks start their agent loops at once), and
after the record so that a FAILED run never has an open sub-task. If ``RedriveExecution`` is refused (or the store
fails while reopening the sub-tasks), the sub-tasks are put back first (FAILED with their error and finished_at, each
write conditional on the status the reopen gave it: :func:`stepcrew.domain.finalize.restore_cut_off_subtasks`), then
the record (conditional on RUNNING), and :class:`RedriveError` says so. A process that dies between (1) and (3)
leaves a RUNNING record over an ended execution: the next sweep marks it FAILED again, closing its sub-tasks again,
and it can be redriven again.
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
    record to RUNNING (conditional on what was read) and the sub-tasks its cut-off closed (RUNNING if started, else
    PENDING), then ``RedriveExecution``, then the event ``run_resumed`` (the order: see the module docstring).
    Returns the execution ARN. Raises :class:`RedriveError` with the reason when it cannot be (nothing changed: a
    refusal after the reopen puts the sub-tasks, then the record, back as they were). ``store``: a RunStore; ``sfn``: a
    boto3 Step Functions client (``describe_execution``, ``redrive_execution``)."""
    from botocore.exceptions import ClientError

    from stepcrew.domain.finalize import reopen_cut_off_subtasks, restore_cut_off_subtasks
    from stepcrew.store.base import RunNotFoundError, RunStateConflictError, StoreError

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
    try:  # after the record (a FAILED run has no open sub-task), before the execution goes on (it needs them open)
        reopened = reopen_cut_off_subtasks(store, run_id, REDRIVABLE_CODES)
    except StoreError as exc:  # the sub-tasks it had reopened are back already
        store.update_run(run_id, before, expected=[RunStatus.RUNNING])
        raise RedriveError(f"run {run_id}: its sub-tasks could not be reopened ({type(exc).__name__}); the record "
                           "is as it was, try again") from None
    try:
        sfn.redrive_execution(executionArn=run.execution_arn)
    except ClientError as exc:
        restore_cut_off_subtasks(store, run_id, reopened)  # first: a FAILED run never has an open sub-task
        store.update_run(run_id, before, expected=[RunStatus.RUNNING])
        raise RedriveError(f"run {run_id}: RedriveExecution refused ({exc.response['Error']['Code']}: "
                           f"{exc.response['Error'].get('Message', '')[:200]}); the record and its sub-tasks are as "
                           "they were") from None
    store.add_event(ProgressEvent(run_id=run_id, kind="run_resumed",
                                  data={"via": "redrive", "after": run.error.code if run.error else run.status.value,
                                        "execution_status": described["status"], "subtasks_reopened": len(reopened)}))
    return run.execution_arn
