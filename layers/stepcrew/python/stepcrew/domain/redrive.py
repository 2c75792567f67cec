"""``stepcrew runs redrive``: continue a deployed run whose execution ended without finishing it.

Step Functions ``RedriveExecution`` restarts a Standard execution that FAILED, was ABORTED or TIMED_OUT within the
last 14 days "from the unsuccessful step", with the same input and ARN; the successful steps are not rerun, and for
an inline Map only the failed iterations are redriven (API reference, RedriveExecution,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html). ``DescribeExecution``
says whether it can be (``redriveStatus`` / ``redriveStatusReason``).

Which runs: the run state machine catches every failure it can into ``RecordFailure`` -> ``RunFailed`` (a Fail
state), so a failure it recorded is a decided outcome (a budget passed, a failed review...): redriving it would run
the Fail state again, and such a run is refused ("start it again"). What redrive is for is an execution that ended
*without* its workflow recording the outcome: aborted (StopExecution), timed out, or failed outside any Catch
(``States.Runtime``, a limit) — its record is still open (QUEUED/RUNNING/WAITING_APPROVAL) or was marked by an
operator sweep with a code in :data:`REDRIVABLE_CODES`.

Reopening is conditional (:meth:`RunStore.update_run` with ``expected`` = the status read): a record another
process changed meanwhile is left alone (RunStateConflictError -> :class:`RedriveError`). If ``RedriveExecution`` is
refused after the reopen, the record is put back as it was (conditional on RUNNING).
"""

from __future__ import annotations

from typing import Any

from stepcrew.models import ProgressEvent, RunStatus

#: Record codes of runs whose execution ended without the workflow recording it (the local cut-off, an operator
#: sweep): these may be redriven.
REDRIVABLE_CODES = ("LocalRuntimeExited", "ExecutionEndedWithoutRecord")


class RedriveError(ValueError):
    """The run cannot be redriven (unknown, still running, its outcome recorded, not redrivable): one line,
    nothing changed."""


def redrive_run(store: Any, sfn: Any, run_id: str, tenant: str) -> str:
    """Redrive the execution of ``run_id`` (a run of ``tenant``): reopen the record to RUNNING, then
    ``RedriveExecution``. Returns the execution ARN. Raises :class:`RedriveError` with the reason when it cannot be
    (nothing changed)."""
    from botocore.exceptions import ClientError

    from stepcrew.store.base import RunNotFoundError, RunStateConflictError

    try:
        run = store.get_run(run_id, tenant)
    except (RunNotFoundError, ValueError):
        raise RedriveError(f"no run {run_id!r} of tenant {tenant!r}") from None
    if run.status == RunStatus.SUCCEEDED or run.status == RunStatus.DECLINED:
        raise RedriveError(f"run {run_id} ended {run.status.value}: nothing to redrive")
    if run.status == RunStatus.NEEDS_REVIEW:
        raise RedriveError(f"run {run_id} waits for a person's review: answer it with `stepcrew runs review`")
    recorded = run.status == RunStatus.FAILED and (run.error is None or run.error.code not in REDRIVABLE_CODES)
    if recorded:
        code = run.error.code if run.error is not None else "unknown"
        raise RedriveError(f"run {run_id} ended FAILED {code}, recorded by its workflow: a redrive would only rerun "
                           "its Fail state; start the run again")
    if not run.execution_arn:
        raise RedriveError(f"run {run_id} has no execution to redrive (it never started)")
    try:
        described = sfn.describe_execution(executionArn=run.execution_arn)
    except ClientError as exc:
        raise RedriveError(f"run {run_id}: its execution cannot be read ({exc.response['Error']['Code']})") from None
    if described["status"] == "RUNNING":
        raise RedriveError(f"run {run_id}: its execution is still RUNNING")
    if described.get("redriveStatus") == "NOT_REDRIVABLE":
        raise RedriveError(f"run {run_id}: Step Functions cannot redrive its execution "
                           f"({described.get('redriveStatusReason') or 'not redrivable'})")
    before = {"status": run.status, "error": run.error, "finished_at": run.finished_at}
    try:
        store.update_run(run_id, {"status": RunStatus.RUNNING, "error": None, "finished_at": None},
                         expected=[run.status])
    except RunStateConflictError:
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
