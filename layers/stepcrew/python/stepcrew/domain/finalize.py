"""Terminal bookkeeping: succeed a run (after the output guard), fail a run or fail a sub-task, and end a run whose
execution is gone without recording its outcome (:func:`fail_unfinished_run`: the deployed and the local sweeps).

Failures arrive as the ``{"Error", "Cause"}`` object a Step Functions Catch puts in state. :func:`failure_reason`
turns it into a readable :class:`~stepcrew.models.RunError`: the Lambda error JSON's type and message, the plan
error for ``PlanInvalidError``, or, when a sub-task's child execution failed, that sub-task's recorded error.

A run that is continued after a cut-off (``stepcrew runs resume``, ``stepcrew runs redrive``) gets the sub-tasks the
cut-off closed back (:func:`reopen_cut_off_subtasks`; undone by :func:`restore_cut_off_subtasks`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from stepcrew.domain.common import ACTIVE_STATUSES, emit, logger
from stepcrew.domain.errors import (
    MissingInputError,
    OutputRejectedError,
    RunNotActiveError,
    SubtaskStateError,
    one_line,
)
from stepcrew.events import DeclineRun, FailRun, FailSubtask, FinalizeOutput, StepFunctionsError, SucceedRun
from stepcrew.models import (
    FINAL_OUTPUT_MAX_BYTES,
    FINAL_OUTPUT_MAX_CHARS,
    Run,
    RunError,
    RunStatus,
    SubtaskRecord,
    SubtaskStatus,
    utcnow,
)
from stepcrew.store.base import RunNotFoundError, RunStateConflictError, RunStore, StoreError

#: Step Functions errors that mean "a child execution (a sub-task's agent loop) failed".
_CHILD_FAILURES = {"States.TaskFailed", "SubtaskFailedError", "States.ExecutionFailed"}
#: Run statuses with work in flight, which :func:`fail_unfinished_run` may end: every open status but NEEDS_REVIEW (a
#: person's answer to a review is applied without an execution: :func:`stepcrew.domain.decisions.answer_review`).
UNFINISHED_STATUSES = tuple(s for s in RunStatus if not s.terminal and s != RunStatus.NEEDS_REVIEW)


class MetricsSink(Protocol):
    """What finalize needs of Powertools ``Metrics``: ``add_metric(name=, unit=, value=)``."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def _as_given(error: StepFunctionsError) -> RunError:
    """The Step Functions error as it came: ``Error`` as the code, ``Cause`` (one line) as the message."""
    return RunError(code=error.Error or "UnknownError",
                    message=one_line(error.Cause or error.Error or "no cause given"))


def lambda_error(cause: str | None) -> tuple[str, str] | None:
    """The Lambda runtime's error JSON in a Catch ``Cause``: ``(errorType, errorMessage)`` when ``cause`` is a Lambda error JSON, else None."""
    try:
        data = json.loads(cause) if cause else None
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("errorType"), str):
        return data["errorType"], str(data.get("errorMessage") or data["errorType"])
    return None


def review_failed_reason(store: RunStore, run_id: str, threshold: float) -> RunError:
    """``ReviewFailed`` with the last review round's scores (or why it gave none) and the threshold."""
    reviews = store.list_reviews(run_id)
    if not reviews:
        return RunError(code="ReviewFailed", message="the report was not reviewed")
    last = reviews[-1]
    if last.scores is None or last.overall is None:
        detail = f"gave no valid scores ({last.error or 'no reason recorded'})"
    else:
        s = last.scores
        detail = (f"scored {last.overall:.2f} (accuracy {s.accuracy:.2f}, completeness {s.completeness:.2f}, "
                  f"relevance {s.relevance:.2f})")
    return RunError(code="ReviewFailed", message=one_line(
        f"the last review round ({last.round}) {detail}, below the threshold {threshold:.2f}; the report is kept"))


def failure_reason(store: RunStore, run_id: str, error: StepFunctionsError, threshold: float = 0.8) -> RunError:
    """A readable reason for a run failure (see the module docstring). Never raises on odd input."""
    if error.Error == "ReviewFailed":
        return review_failed_reason(store, run_id, threshold)
    if error.Error == "PlanInvalidError":
        return RunError(code="PlanInvalidError",
                        message=one_line(f"the plan was invalid: {error.Cause or 'no detail'}"))
    lerr = lambda_error(error.Cause)
    if lerr and lerr[0] not in _CHILD_FAILURES:
        return RunError(code=lerr[0], message=one_line(lerr[1]))
    if error.Error in _CHILD_FAILURES or lerr or "SubtaskFailedError" in (error.Cause or ""):
        for record in store.list_subtasks(run_id):
            if record.status == SubtaskStatus.FAILED and record.error is not None:
                return RunError(code=record.error.code, message=one_line(
                    f"sub-task {record.subtask_id} failed: {record.error.code}: {record.error.message}"))
    return _as_given(error)


def subtask_reason(error: StepFunctionsError) -> RunError:
    """The reason a sub-task's agent loop failed: the Lambda error JSON's type and message, else Error/Cause."""
    lerr = lambda_error(error.Cause)
    if lerr:
        return RunError(code=lerr[0], message=one_line(lerr[1]))
    return _as_given(error)


def _record_metrics(metrics: MetricsSink | None, run: Run) -> None:
    if metrics is None:
        return
    name = {RunStatus.SUCCEEDED: "RunsSucceeded", RunStatus.DECLINED: "RunsDeclined"}.get(run.status, "RunsFailed")
    metrics.add_metric(name=name, unit="Count", value=1)
    start, end = run.started_at or run.created_at, run.finished_at or utcnow()
    metrics.add_metric(name="RunDurationSeconds", unit="Seconds", value=max((end - start).total_seconds(), 0.0))
    metrics.add_metric(name="InputTokens", unit="Count", value=run.usage.input_tokens)
    metrics.add_metric(name="OutputTokens", unit="Count", value=run.usage.output_tokens)
    metrics.add_metric(name="CostUSD", unit="None", value=run.usage.cost_usd)


def _usage_data(run: Run) -> dict[str, Any]:
    return {"input_tokens": run.usage.input_tokens, "output_tokens": run.usage.output_tokens,
            "cost_usd": round(run.usage.cost_usd, 6)}


def succeed_run(inp: SucceedRun, store: RunStore, metrics: MetricsSink | None = None) -> FinalizeOutput:
    """Output guard (a non-empty report within FINAL_OUTPUT_MAX_CHARS exists, and it passed its last review round
    or a person accepted it: a run never reports a success it did not earn), then RUNNING -> SUCCEEDED
    (``finished_at``, event ``run_succeeded``, metrics). An already SUCCEEDED run is a no-op. Raises
    OutputRejectedError, or RunNotActiveError for a run that is FAILED or not RUNNING."""
    run = store.get_run(inp.run_id)
    if run.status == RunStatus.SUCCEEDED:
        return FinalizeOutput(run_id=run.run_id, status=run.status.value)
    if run.status != RunStatus.RUNNING:
        raise RunNotActiveError(f"run {run.run_id} is {run.status.value}, not RUNNING")
    report = store.get_report(run.run_id)
    if not report or not report.strip():
        raise OutputRejectedError(f"run {run.run_id} has no report")
    reviews = store.list_reviews(run.run_id)
    accepted = run.review_decision is not None and run.review_decision.accept
    if not accepted and not (reviews and reviews[-1].passed):
        raise OutputRejectedError(f"run {run.run_id}: the report neither passed its last review round nor was "
                                  "accepted by a person")
    if len(report) > FINAL_OUTPUT_MAX_CHARS or len(report.encode("utf-8")) > FINAL_OUTPUT_MAX_BYTES:
        raise OutputRejectedError(f"run {run.run_id}: report of {len(report)} characters "
                                  f"({len(report.encode('utf-8'))} bytes) is over the limit of "
                                  f"{FINAL_OUTPUT_MAX_CHARS} characters or {FINAL_OUTPUT_MAX_BYTES} bytes")
    run = store.update_run(run.run_id, {"status": RunStatus.SUCCEEDED, "finished_at": utcnow()},
                           expected=[RunStatus.RUNNING])
    emit(store, run.run_id, "run_succeeded", **_usage_data(run))
    _record_metrics(metrics, run)
    return FinalizeOutput(run_id=run.run_id, status=run.status.value)


def fail_run(inp: FailRun, store: RunStore, metrics: MetricsSink | None = None) -> FinalizeOutput:
    """Mark the run FAILED with :func:`failure_reason` from any non-terminal status (``finished_at``, its open
    sub-tasks FAILED too (:func:`close_open_subtasks`), event ``run_failed`` with the error code, metrics). An already
    terminal run is left as is (no-op)."""
    run = store.get_run(inp.run_id)
    if run.status.terminal:
        return FinalizeOutput(run_id=run.run_id, status=run.status.value)
    reason = failure_reason(store, run.run_id, inp.error, run.review_config.threshold)
    try:
        run = store.update_run(run.run_id, {"status": RunStatus.FAILED, "error": reason, "finished_at": utcnow(),
                                            "approval_token": None}, expected=ACTIVE_STATUSES)
    except RunStateConflictError:
        run = store.get_run(inp.run_id)  # became terminal meanwhile: keep that outcome
        return FinalizeOutput(run_id=run.run_id, status=run.status.value)
    logger.info("run failed", extra={"run_id": run.run_id, "error_code": reason.code})
    close_open_subtasks(store, run.run_id, reason)
    emit(store, run.run_id, "run_failed", code=reason.code, **_usage_data(run))
    _record_metrics(metrics, run)
    return FinalizeOutput(run_id=run.run_id, status=run.status.value)


#: The error code :func:`close_open_subtasks` gives the sub-tasks it closes, and the start of their message (then the
#: run's error code, ``": "`` and its message).
CLOSED_CODE = "RunFailed"
CLOSED_PREFIX = "the run failed before this sub-task finished: "


def close_open_subtasks(store: RunStore, run_id: str, reason: RunError) -> list[str]:
    """Sub-tasks of a failed run still PENDING or RUNNING end FAILED too, with ``RunFailed`` naming the run's error
    (event ``subtask_failed`` each): a finished run leaves no sub-task that looks in flight. Conditional per sub-task,
    so one that finished meanwhile keeps its outcome. Returns the ids closed."""
    closed = []
    error = RunError(code=CLOSED_CODE, message=one_line(f"{CLOSED_PREFIX}{reason.code}: {reason.message}"))
    for record in store.list_subtasks(run_id):
        if record.status not in (SubtaskStatus.PENDING, SubtaskStatus.RUNNING):
            continue
        try:
            store.update_subtask(run_id, record.subtask_id, {"status": SubtaskStatus.FAILED, "error": error,
                                                             "finished_at": utcnow()},
                                 expected=[SubtaskStatus.PENDING, SubtaskStatus.RUNNING])
        except RunStateConflictError:
            continue
        emit(store, run_id, "subtask_failed", record.subtask_id, code=error.code)
        closed.append(record.subtask_id)
    return closed


def closed_by_cut_off(record: SubtaskRecord, codes: Iterable[str]) -> bool:
    """True when ``record`` is a sub-task that a cut-off with one of ``codes`` (run error codes, e.g.
    ``ExecutionEndedWithoutRecord``, ``LocalRuntimeExited``) closed: FAILED :data:`CLOSED_CODE` with the message
    :func:`close_open_subtasks` writes for a run error of one of ``codes`` (its start exactly: :data:`CLOSED_PREFIX`,
    the code, ``": "``), or FAILED with one of ``codes`` itself (records written before the close went through
    :func:`close_open_subtasks`). A sub-task that failed on its own (a tool, the turn limit, its model: its own
    code) is not one, nor one closed because its run failed for a recorded reason. Pure."""
    if record.status != SubtaskStatus.FAILED or record.error is None:
        return False
    codes = tuple(codes)
    if record.error.code in codes:
        return True
    return record.error.code == CLOSED_CODE and any(
        record.error.message.startswith(f"{CLOSED_PREFIX}{code}: ") for code in codes)


def reopened_status(record: SubtaskRecord) -> SubtaskStatus:
    """What a cut-off sub-task is reopened to: RUNNING when it had started (its agent loop goes on from its stored
    conversation), else PENDING (it waits for its turn). Pure."""
    return SubtaskStatus.RUNNING if record.started_at is not None else SubtaskStatus.PENDING


def reopen_cut_off_subtasks(store: RunStore, run_id: str, codes: Iterable[str]) -> list[SubtaskRecord]:
    """Undo :func:`close_open_subtasks` for a run being continued (``stepcrew runs resume``, ``stepcrew runs
    redrive``): each sub-task of ``run_id`` that a cut-off with one of ``codes`` closed (:func:`closed_by_cut_off`)
    goes back to :func:`reopened_status` with ``error`` and ``finished_at`` cleared (``started_at``, ``turns``,
    ``tool_calls`` and the conversation kept), one write per sub-task conditional on FAILED; a sub-task changed
    meanwhile (or gone) is left as it is. A sub-task that failed on its own stays FAILED. No event is written: the
    caller's ``run_resumed`` carries the count.

    Call it only once the run record is open again (:meth:`RunStore.reopen_run`): a FAILED run never has a
    RUNNING or PENDING sub-task. Returns the records as they were before (FAILED, with their error and
    ``finished_at``: what :func:`restore_cut_off_subtasks` puts back), in the store's order. Raises StoreError
    when the store fails; the sub-tasks this call had reopened are put back first (best effort, each conditional)."""
    reopened: list[SubtaskRecord] = []
    codes = tuple(codes)
    try:
        for record in store.list_subtasks(run_id):
            if not closed_by_cut_off(record, codes):
                continue
            try:
                store.update_subtask(run_id, record.subtask_id, {"status": reopened_status(record), "error": None,
                                                                 "finished_at": None},
                                     expected=[SubtaskStatus.FAILED])
            except (RunStateConflictError, KeyError):
                continue
            reopened.append(record)
    except StoreError:
        restore_cut_off_subtasks(store, run_id, reopened)
        raise
    return reopened


def restore_cut_off_subtasks(store: RunStore, run_id: str, records: Iterable[SubtaskRecord]) -> list[str]:
    """Put the sub-tasks :func:`reopen_cut_off_subtasks` reopened back as they were (``records``: what it
    returned): FAILED with their error and ``finished_at``, each write conditional on the status the reopen gave it,
    so one that went on meanwhile keeps its progress. For a continuation refused after the reopen (call it before
    putting the run record back: a FAILED run never has an open sub-task). Returns the ids put back. Best effort: a
    store failure on one sub-task is logged by run and sub-task id and the others are still put back."""
    restored = []
    for record in records:
        try:
            store.update_subtask(run_id, record.subtask_id, {"status": SubtaskStatus.FAILED, "error": record.error,
                                                             "finished_at": record.finished_at},
                                 expected=[reopened_status(record)])
        except (RunStateConflictError, KeyError):
            continue
        except StoreError as exc:
            logger.error("could not put a reopened sub-task back", extra={
                "run_id": run_id, "subtask_id": record.subtask_id, "error_type": type(exc).__name__})
            continue
        restored.append(record.subtask_id)
    return restored


def fail_unfinished_run(store: RunStore, run_id: str, *, code: str, message: str,
                        now: datetime | None = None) -> bool:
    """End a run whose execution is gone without recording its outcome: the deployed sweep's
    (:mod:`stepcrew.domain.sweep`, code ``ExecutionEndedWithoutRecord``) and the local runtime's cut-off
    (:meth:`stepcrew.local.runtime.LocalRuntime.cut_off`, its exit and its start-up sweep, code
    ``LocalRuntimeExited``).

    One write conditional on :data:`UNFINISHED_STATUSES` sets ``status`` FAILED, ``error`` ``{code, message}`` (a
    :class:`~stepcrew.models.RunError`: ``code`` clipped to 128 characters, ``message`` to 4,000) and
    ``finished_at`` (``now``, default the current UTC time); then the event ``run_failed`` ``{"code": code}``; then
    the open sub-tasks end FAILED RunFailed (:func:`close_open_subtasks`, each conditional).

    Returns True when this call marked the run FAILED; False when it did not (nothing written): an unknown or
    malformed run id, or a run no longer in flight (terminal, e.g. finished by a handler meanwhile, or NEEDS_REVIEW),
    whose outcome stands. Raises StoreError when the store failed writing the run or its event (then the run may be
    FAILED without its event and with its sub-tasks left open). A store failure while closing the sub-tasks is logged
    by run id and does not change the answer: the run is FAILED."""
    reason = RunError(code=code, message=message)
    try:
        store.update_run(run_id, {"status": RunStatus.FAILED, "finished_at": now or utcnow(), "error": reason},
                         expected=UNFINISHED_STATUSES)
    except (RunNotFoundError, RunStateConflictError, ValueError):
        return False  # finished (or removed) meanwhile, or not a run id: nothing written
    emit(store, run_id, "run_failed", code=code)
    try:
        close_open_subtasks(store, run_id, reason)
    except StoreError as exc:
        logger.error("could not close the sub-tasks of a failed run",
                     extra={"run_id": run_id, "error_code": code, "error_type": type(exc).__name__})
    return True


def decline_run(inp: DeclineRun, store: RunStore, metrics: MetricsSink | None = None) -> FinalizeOutput:
    """RUNNING -> DECLINED (``finished_at``, event ``run_declined`` with the decline code, metric RunsDeclined): the
    engine said it cannot answer the goal (the planner stored ``decline`` on the run). An already DECLINED run is a
    no-op. Raises RunNotActiveError for another status, MissingInputError when no decline is recorded."""
    run = store.get_run(inp.run_id)
    if run.status == RunStatus.DECLINED:
        return FinalizeOutput(run_id=run.run_id, status=run.status.value)
    if run.status != RunStatus.RUNNING:
        raise RunNotActiveError(f"run {run.run_id} is {run.status.value}, not RUNNING")
    if run.decline is None:
        raise MissingInputError(f"run {run.run_id} has no recorded decline")
    run = store.update_run(run.run_id, {"status": RunStatus.DECLINED, "finished_at": utcnow()},
                           expected=[RunStatus.RUNNING])
    emit(store, run.run_id, "run_declined", code=run.decline.code, **_usage_data(run))
    _record_metrics(metrics, run)
    return FinalizeOutput(run_id=run.run_id, status=run.status.value)


def fail_subtask(inp: FailSubtask, store: RunStore, metrics: MetricsSink | None = None) -> FinalizeOutput:
    """Mark the sub-task FAILED with :func:`subtask_reason` (``finished_at``, event ``subtask_failed``, metric
    SubtasksFailed). A sub-task that already finished (SUCCEEDED or FAILED) is left as is. Raises
    SubtaskStateError for a sub-task the run does not have."""
    try:
        record = store.get_subtask(inp.run_id, inp.subtask_id)
    except KeyError:
        raise SubtaskStateError(f"run {inp.run_id} has no sub-task {inp.subtask_id!r}") from None
    if record.status in (SubtaskStatus.SUCCEEDED, SubtaskStatus.FAILED):
        return FinalizeOutput(run_id=inp.run_id, status=record.status.value, subtask_id=inp.subtask_id)
    reason = subtask_reason(inp.error)
    record = store.update_subtask(inp.run_id, inp.subtask_id, {"status": SubtaskStatus.FAILED, "error": reason,
                                                               "finished_at": utcnow()},
                                  expected=[SubtaskStatus.PENDING, SubtaskStatus.RUNNING])
    emit(store, inp.run_id, "subtask_failed", inp.subtask_id, code=reason.code)
    if metrics is not None:
        metrics.add_metric(name="SubtasksFailed", unit="Count", value=1)
    return FinalizeOutput(run_id=inp.run_id, status=record.status.value, subtask_id=inp.subtask_id)


def finalize(inp: SucceedRun | FailRun | FailSubtask | DeclineRun, store: RunStore,
             metrics: MetricsSink | None = None) -> FinalizeOutput:
    """Dispatch on ``inp.action`` (``succeed_run`` | ``fail_run`` | ``fail_subtask`` | ``decline_run``)."""
    if isinstance(inp, SucceedRun):
        return succeed_run(inp, store, metrics)
    if isinstance(inp, FailRun):
        return fail_run(inp, store, metrics)
    if isinstance(inp, DeclineRun):
        return decline_run(inp, store, metrics)
    return fail_subtask(inp, store, metrics)
