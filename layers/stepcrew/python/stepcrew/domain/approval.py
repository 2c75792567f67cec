"""Approval gate: store the Step Functions task token on a run and mark it WAITING_APPROVAL.

``POST /runs/{id}/approval`` reads the token and resumes the execution (``SendTaskSuccess``/``SendTaskFailure``).
The token is a credential for the execution: it goes to the store only, never to logs or events.
"""

from __future__ import annotations

from stepcrew.domain.errors import RunNotActiveError
from stepcrew.events import ApprovalInput, ApprovalOutput
from stepcrew.models import RunStatus
from stepcrew.store.base import RunStateConflictError, RunStore


def request_approval(inp: ApprovalInput, store: RunStore) -> ApprovalOutput:
    """RUNNING -> WAITING_APPROVAL with ``approval_token`` set (conditional). A redelivered event for a run already
    waiting replaces the token (the newest one is the live one). Raises RunNotActiveError for any other status."""
    changes = {"status": RunStatus.WAITING_APPROVAL, "approval_token": inp.task_token}
    try:
        store.update_run(inp.run_id, changes, expected=[RunStatus.RUNNING, RunStatus.WAITING_APPROVAL])
    except RunStateConflictError as exc:
        raise RunNotActiveError(f"run {inp.run_id} cannot wait for approval: {exc}") from None
    return ApprovalOutput(run_id=inp.run_id)
