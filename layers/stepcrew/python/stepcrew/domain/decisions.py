"""A person's answers to a waiting run, one use case each for the API and the CLI.

- :func:`answer_approval`: the plan gate (WAITING_APPROVAL): approve -> the run goes on; reject -> FAILED
  ``ApprovalRejected``.
- :func:`answer_review`: the hand-off of a report that failed its last review round (NEEDS_REVIEW): accept (optionally
  with a corrected report, stored as a new version first) -> SUCCEEDED, the decision recorded on the run; reject ->
  FAILED ``ReviewRejected``; an answer after the deadline -> FAILED ``ReviewTimedOut`` and :class:`DecisionClosed`.

Both claim the decision with a conditional write (only one answer moves the run out of its waiting status), then
answer the Step Functions task token (``SendTaskSuccess``/``SendTaskFailure``); when that fails the claim is given back
so the answer can be retried. A local run whose process has ended has no execution left to resume: pass
``resumer=None`` and the review decision is applied by the same finalize steps the state machine runs after the
hand-off (:func:`stepcrew.domain.finalize.succeed_run` / ``fail_run``).
"""

from __future__ import annotations

from collections.abc import Callable

from typing import Any, Protocol

from stepcrew.domain.common import emit, logger
from stepcrew.domain.finalize import fail_run, succeed_run
from stepcrew.events import FailRun, StepFunctionsError, SucceedRun
from stepcrew.models import FINAL_OUTPUT_MAX_CHARS, ReviewDecision, Run, RunStatus, utcnow
from stepcrew.store.base import RunStateConflictError, RunStore, StoreError

APPROVAL_REJECTED_ERROR = "ApprovalRejected"
REVIEW_REJECTED_ERROR = "ReviewRejected"
REVIEW_TIMED_OUT_ERROR = "ReviewTimedOut"
#: Error codes of a dead task token (timed out, or already answered), Step Functions API reference.
CLOSED_TOKEN_ERRORS = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}
#: A corrected report is one DynamoDB item (400 KB, quotas page): stepcrew keeps it under 350,000 UTF-8 bytes.
REPORT_MAX_BYTES = 350_000


class TaskResumer(Protocol):
    """Answers a Step Functions task token (``.waitForTaskToken``). ``output``: JSON-serialisable (<= 256 KiB);
    ``error`` <= 256 and ``cause`` <= 32,768 characters (Step Functions API reference, SendTaskSuccess/Failure)."""

    def send_task_success(self, token: str, output: dict) -> None: ...

    def send_task_failure(self, token: str, error: str, cause: str) -> None: ...


class DecisionError(Exception):
    """A decision that cannot be applied. ``code`` is the API error code (a class default, or given)."""

    code = "decision_failed"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class NotWaiting(DecisionError):
    """The run is not waiting for this kind of decision (409)."""

    code = "run_not_waiting"


class DecisionClosed(DecisionError):
    """The waiting task is closed: timed out or already answered (409)."""

    code = "decision_closed"


class ResumeFailed(DecisionError):
    """Step Functions could not be reached; nothing changed, retry (503)."""

    code = "resume_failed"


class ReportNotScreened(DecisionError):
    """A corrected report on a run with no live execution, where no output guard is at hand to screen it (409):
    it is never stored unscreened."""

    code = "report_not_screened"


class ReportTooLarge(DecisionError):
    """A corrected report over FINAL_OUTPUT_MAX_CHARS (400)."""

    code = "report_too_large"


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def _claim(store: RunStore, run: Run, waiting: RunStatus, extra: dict[str, Any]) -> str:
    if run.status != waiting or not run.approval_token:
        raise NotWaiting(f"run {run.run_id} is {run.status.value}, not {waiting.value}")
    try:
        store.update_run(run.run_id, {"status": RunStatus.RUNNING, "approval_token": None, **extra},
                         expected=[waiting])
    except RunStateConflictError:
        raise NotWaiting(f"run {run.run_id} is no longer {waiting.value}") from None
    return run.approval_token


def _give_back(store: RunStore, run_id: str, waiting: RunStatus, token: str, undo: dict[str, Any]) -> None:
    """Undo a claim (the run waits again with its token), so the answer can be retried."""
    try:
        store.update_run(run_id, {"status": waiting, "approval_token": token, **undo}, expected=[RunStatus.RUNNING])
    except (RunStateConflictError, StoreError):
        logger.warning("could not give a decision back", extra={"run_id": run_id})


def _resume(store: RunStore, resumer: TaskResumer, run: Run, token: str, waiting: RunStatus, ok: bool,
            output: dict, error: str, cause: str, undo: dict[str, Any], closed_code: str) -> None:
    try:
        if ok:
            resumer.send_task_success(token, output)
        else:
            resumer.send_task_failure(token, error, cause)
    except Exception as exc:
        code = _error_code(exc)
        _give_back(store, run.run_id, waiting, token, undo)  # a dead task is then failed by its timeout
        logger.warning("task token answer failed", extra={"run_id": run.run_id, "error_code": code})
        if code in CLOSED_TOKEN_ERRORS:
            raise DecisionClosed(f"the waiting task of run {run.run_id} is closed (timed out or already "
                                 "answered)", code=closed_code) from None
        raise ResumeFailed("could not resume the run; retry") from None


def answer_approval(store: RunStore, resumer: TaskResumer, run_id: str, tenant: str | None, approved: bool,
                    comment: str = "") -> Run:
    """Approve or reject the plan of a WAITING_APPROVAL run. Raises RunNotFoundError (unknown or another tenant's
    run), NotWaiting, DecisionClosed, ResumeFailed. Returns the run after the claim (RUNNING)."""
    run = store.get_run(run_id, tenant)
    token = _claim(store, run, RunStatus.WAITING_APPROVAL, {})
    cause = f"rejected by the approver: {comment}" if comment else "rejected by the approver"
    _resume(store, resumer, run, token, RunStatus.WAITING_APPROVAL, approved, {"approved": True, "comment": comment},
            APPROVAL_REJECTED_ERROR, cause, {}, "approval_closed")
    logger.info("approval recorded", extra={"run_id": run_id, "approved": approved})
    return store.get_run(run_id)


def answer_review(store: RunStore, resumer: TaskResumer | None, run_id: str, tenant: str | None,
                  decision: ReviewDecision, report: str | None = None,
                  screen: Callable[[str], object] | None = None) -> Run:
    """Accept or reject the report of a NEEDS_REVIEW run (see the module docstring). Raises RunNotFoundError,
    NotWaiting, DecisionClosed (also when the deadline has passed: the run is then FAILED ``ReviewTimedOut``),
    ReportTooLarge, ResumeFailed. Returns the run (RUNNING while the execution finishes, or its terminal state
    when there is no execution to resume). Whatever fails after the claim gives the claim back (the run waits
    again and the answer can be retried).

    ``screen(run_id)``: the output guard (:func:`stepcrew.domain.screening.screen_output`), run on the direct path
    (no execution to resume, so no GuardAcceptedReport state) after a corrected report is stored; without it a
    corrected report there raises ReportNotScreened before anything changes."""
    run = store.get_run(run_id, tenant)
    report = report.strip() if report is not None and report.strip() else None
    if report is not None:
        size = len(report.encode("utf-8"))
        if len(report) > FINAL_OUTPUT_MAX_CHARS or size > REPORT_MAX_BYTES:
            raise ReportTooLarge(f"the report has {len(report)} characters ({size} bytes), over the limit of "
                                 f"{FINAL_OUTPUT_MAX_CHARS} characters or {REPORT_MAX_BYTES} bytes")
    if run.status == RunStatus.NEEDS_REVIEW and run.review_deadline and run.review_deadline < utcnow():
        fail_run(FailRun(run_id=run_id, error=StepFunctionsError(
            Error=REVIEW_TIMED_OUT_ERROR, Cause="no person answered the review hand-off before its deadline")), store)
        raise DecisionClosed(f"the review hand-off of run {run_id} expired at {run.review_deadline.isoformat()}",
                             code="review_expired")
    if resumer is not None and not _live(resumer, run):
        resumer = None  # a local run whose execution ended with its process: nothing to resume
    if resumer is None and report is not None and decision.accept and screen is None:
        raise ReportNotScreened(f"run {run_id} has no execution left to screen a corrected report; accept it "
                                "without one, or answer where the output guard runs (stepcrew runs review)")
    previous_report = store.get_report(run_id) if report is not None and decision.accept else None
    token = _claim(store, run, RunStatus.NEEDS_REVIEW, {"review_decision": decision})
    cause = f"rejected by the reviewer: {decision.comment}" if decision.comment else "rejected by the reviewer"
    try:
        if report is not None and decision.accept:
            store.put_report(run_id, report)
        emit(store, run_id, "review_decided", accept=decision.accept, report_replaced=previous_report is not None)
        if resumer is None:  # no execution left: the same finalize steps the state machine runs, directly
            if decision.accept:
                if report is not None and screen is not None:
                    screen(run_id)  # what GuardAcceptedReport does in the state machine
                succeed_run(SucceedRun(run_id=run_id), store)
            else:
                fail_run(FailRun(run_id=run_id, error=StepFunctionsError(Error=REVIEW_REJECTED_ERROR, Cause=cause)),
                         store)
            return store.get_run(run_id)
    except Exception:
        _give_back(store, run_id, RunStatus.NEEDS_REVIEW, token, {"review_decision": None})
        if previous_report is not None:
            store.put_report(run_id, previous_report)
        raise
    _resume(store, resumer, run, token, RunStatus.NEEDS_REVIEW, decision.accept, {"accept": True},
            REVIEW_REJECTED_ERROR, cause, {"review_decision": None}, "review_closed")
    logger.info("review decision recorded", extra={"run_id": run_id, "accept": decision.accept})
    return store.get_run(run_id)


def _live(resumer: TaskResumer, run: Run) -> bool:
    """Whether ``run``'s execution can still be resumed: a resumer that can tell (the local runtime:
    ``has_live_execution``) is asked; any other (Step Functions) is assumed live."""
    check = getattr(resumer, "has_live_execution", None)
    return True if check is None or not run.execution_arn else bool(check(run.execution_arn))
