"""The deployed orphan sweep (functions/sweeper, on an EventBridge schedule): run records left open by an execution
that ended without its workflow recording the outcome (aborted, timed out, failed outside any Catch) or that never
started (the api wrote the record, then StartExecution never happened) end FAILED :data:`SWEEP_CODE` with their open
sub-tasks, so no run stays QUEUED/RUNNING/WAITING_APPROVAL for ever.

Which records: :meth:`RunStore.open_run_ids` (DynamoDB: a Scan of the sparse GSI1, which holds run records only;
its cost is named there), last updated more than ``grace_s`` ago (a run the api has just written may not have its
execution yet). NEEDS_REVIEW runs are left alone, as the local sweep leaves them: a person's answer is applied
without an execution (:func:`stepcrew.domain.decisions.answer_review`). Each candidate is re-read (strongly
consistent), its execution described (``DescribeExecution``; the ARN is the record's, else the run state machine's
execution named by the run id), and it is marked only if the execution is not RUNNING (or does not exist), with a
write conditional on an open status, so a run finished meanwhile keeps its outcome. A swept run may then be
continued with ``stepcrew runs redrive`` (:mod:`stepcrew.domain.redrive`), within Step Functions' 14-day redrive
window.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.domain.common import logger
from stepcrew.domain.errors import one_line
from stepcrew.domain.finalize import UNFINISHED_STATUSES, fail_unfinished_run
from stepcrew.models import RunError, utcnow
from stepcrew.settings import RoleSettings

#: The error code of a run the sweep marked FAILED (also one of :data:`stepcrew.domain.redrive.REDRIVABLE_CODES`).
SWEEP_CODE = "ExecutionEndedWithoutRecord"
#: Seconds a record must have stayed unchanged before it is a candidate (the api writes the record, then starts
#: the execution: a few seconds apart).
GRACE_S = 300
#: Candidates per invocation at most (each costs a GetItem and a DescribeExecution; the rest wait for the next tick).
MAX_RUNS_PER_SWEEP = 500
#: Record statuses the sweep may end (open, work in flight: QUEUED, RUNNING, WAITING_APPROVAL).
SWEEPABLE = UNFINISHED_STATUSES
STATE_MACHINE_ARN_PATTERN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"


class SweeperSettings(RoleSettings):
    """The sweeper's environment: the table, stage, service name and ``STEPCREW_RUN_STATE_MACHINE_ARN``."""

    run_state_machine_arn: str = Field(alias="STEPCREW_RUN_STATE_MACHINE_ARN", pattern=STATE_MACHINE_ARN_PATTERN)


class SweepRequest(BaseModel):
    """The invocation event: an EventBridge Scheduled Event (its fields are ignored) or ``{}`` by hand, optionally
    ``grace_s`` (60-86,400 s) and ``max_runs`` (1-10,000)."""

    model_config = ConfigDict(extra="ignore")
    grace_s: int = Field(default=GRACE_S, ge=60, le=86_400)
    max_runs: int = Field(default=MAX_RUNS_PER_SWEEP, ge=1, le=10_000)


class SweepReport(BaseModel):
    """What one sweep did: ``candidates`` (open records past the grace period), ``live`` (execution RUNNING),
    ``swept`` (run ids marked FAILED), ``skipped`` (finished meanwhile, or waiting for a review), ``errors``
    (could not be checked: left for the next tick)."""

    candidates: int = 0
    live: int = 0
    swept: list[str] = Field(default_factory=list)
    skipped: int = 0
    errors: int = 0


def execution_arn_of(run_id: str, execution_arn: str | None, state_machine_arn: str) -> str:
    """The run's execution: the one on its record, else the run state machine's execution named ``run_id`` (the api
    and the schedules name executions by run id)."""
    return execution_arn or f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{run_id}"


def ended_reason(described: dict[str, Any] | None) -> RunError | None:
    """The :data:`SWEEP_CODE` error for an execution that is over (a DescribeExecution answer; None: it does not
    exist), or None while it is RUNNING. Pure."""
    if described is None:
        return RunError(code=SWEEP_CODE, message="the run's execution does not exist (it never started, or its "
                                                 "history expired); the record was left open")
    status = described.get("status")
    if status == "RUNNING":
        return None
    detail = ": ".join(x for x in (described.get("error"), described.get("cause")) if x)
    return RunError(code=SWEEP_CODE, message=one_line(
        f"the run's execution ended {status}{' (' + detail[:300] + ')' if detail else ''} without recording the "
        "run's outcome; `stepcrew runs redrive` may continue it within 14 days"))


def _describe(sfn: Any, arn: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return sfn.describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ExecutionDoesNotExist", "ExecutionDoesNotExistException"):
            return None
        raise


def sweep(store: Any, sfn: Any, state_machine_arn: str, request: SweepRequest | None = None) -> SweepReport:
    """One sweep (see the module docstring). ``store``: a RunStore; ``sfn``: a boto3 Step Functions client
    (``describe_execution``). Never raises for one run's trouble: it is counted in ``errors`` and logged by id."""
    from botocore.exceptions import BotoCoreError, ClientError

    from stepcrew.store.base import RunNotFoundError, StoreError

    request = request or SweepRequest()
    report = SweepReport()
    candidates = store.open_run_ids(utcnow() - timedelta(seconds=request.grace_s), limit=request.max_runs)
    report.candidates = len(candidates)
    for run_id in candidates:
        try:
            run = store.get_run(run_id)
            if run.status not in SWEEPABLE:
                report.skipped += 1
                continue
            reason = ended_reason(_describe(sfn, execution_arn_of(run_id, run.execution_arn, state_machine_arn)))
            if reason is None:
                report.live += 1
                continue
            # conditional on an open status; emits run_failed and closes the open sub-tasks
            marked = fail_unfinished_run(store, run_id, code=reason.code, message=reason.message)
        except RunNotFoundError:
            report.skipped += 1  # removed meanwhile
            continue
        except (ClientError, BotoCoreError, StoreError) as exc:
            report.errors += 1
            logger.warning("sweep could not check run", extra={"run_id": run_id, "error_type": type(exc).__name__})
            continue
        if not marked:
            report.skipped += 1  # finished meanwhile: its outcome stands
            continue
        report.swept.append(run_id)
        logger.warning("run swept: its execution ended without a terminal record", extra={"run_id": run_id})
    return report
