"""Waiting for a person: store a Step Functions task token on a run and mark it waiting.

Two kinds (``ApprovalInput.kind``):

- ``approval``: the plan gate (``require_approval``): RUNNING -> WAITING_APPROVAL; ``POST /runs/{id}/approval``
  (or ``stepcrew runs approve``) resumes the execution.
- ``review``: the hand-off of a report that failed its last review round (``review.on_fail: handoff``): RUNNING ->
  NEEDS_REVIEW with ``review_deadline`` = now + ``review.handoff_timeout_s``, event ``needs_review``, and the
  EventBridge event ``stepcrew.run.needs_review`` (source ``stepcrew``) so a team can route it to a person.
  ``POST /runs/{id}/review`` (or ``stepcrew runs review``) answers it; the state machine fails the run with
  ``ReviewTimedOut`` when the deadline passes.

The token is a credential for the execution: it goes to the store only, never to logs, events or EventBridge.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from stepcrew.domain.common import emit
from stepcrew.domain.errors import RunNotActiveError
from stepcrew.events import ApprovalInput, ApprovalOutput
from stepcrew.models import RunStatus, utcnow
from stepcrew.store.base import RunStateConflictError, RunStore

#: EventBridge ``DetailType`` of a hand-off (source ``stepcrew``).
NEEDS_REVIEW_DETAIL_TYPE = "stepcrew.run.needs_review"
EVENT_SOURCE = "stepcrew"


class EventPublisher(Protocol):
    """Publishes one event (``detail``: JSON-serialisable, ids and numbers only). Raises on failure."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


def request_approval(inp: ApprovalInput, store: RunStore, publisher: EventPublisher | None = None) -> ApprovalOutput:
    """Store ``inp.task_token`` and mark the run waiting (see the module docstring). Conditional on RUNNING (or the
    same waiting status: a redelivered event replaces the token, the newest one is the live one). Raises
    RunNotActiveError for any other status; what ``publisher`` raises (the state machine retries)."""
    waiting = RunStatus.NEEDS_REVIEW if inp.kind == "review" else RunStatus.WAITING_APPROVAL
    changes: dict[str, Any] = {"status": waiting, "approval_token": inp.task_token}
    if inp.kind == "review":
        run = store.get_run(inp.run_id)
        changes["review_deadline"] = utcnow() + timedelta(seconds=run.review_config.handoff_timeout_s)
    try:
        run = store.update_run(inp.run_id, changes, expected=[RunStatus.RUNNING, waiting])
    except RunStateConflictError as exc:
        raise RunNotActiveError(f"run {inp.run_id} cannot wait for a person: {exc}") from None
    if inp.kind == "review":
        reviews = store.list_reviews(inp.run_id)
        last = reviews[-1] if reviews else None
        detail = {"run_id": run.run_id, "tenant": run.tenant, "reason": "review_failed",
                  "round": last.round if last else None, "overall": last.overall if last else None,
                  "threshold": run.review_config.threshold, "deadline": run.review_deadline.isoformat()}
        emit(store, run.run_id, "needs_review", round=detail["round"], overall=detail["overall"],
             deadline=detail["deadline"])
        if publisher is not None:
            publisher.publish(NEEDS_REVIEW_DETAIL_TYPE, detail)
    else:
        emit(store, run.run_id, "approval_requested")
    return ApprovalOutput(run_id=inp.run_id, status=waiting.value)
