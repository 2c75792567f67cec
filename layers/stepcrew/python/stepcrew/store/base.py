"""The store port: run records, plans, sub-tasks, conversations, progress events, reports and reviews.

Adapters: :class:`stepcrew.store.dynamodb.DynamoRunStore` (single table, see :mod:`stepcrew.store.schema`) and
:class:`stepcrew.store.memory.MemoryRunStore` (an in-memory fake). Both pass ``tests/unit/store/test_contract.py``.

Every state change is conditional (DynamoDB ``ConditionExpression``): creating a run that exists raises
:class:`RunExistsError`; a status change from a status not in ``expected`` raises :class:`RunStateConflictError`.
A run of another tenant is reported as :class:`RunNotFoundError` (never revealed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from stepcrew.models import (
    Delegation,
    Message,
    Plan,
    PlanVersion,
    ProgressEvent,
    Review,
    Run,
    RunStatus,
    SubtaskRecord,
    SubtaskStatus,
    Usage,
)


class StoreError(Exception):
    """Base of store errors."""


class RunNotFoundError(StoreError):
    """No such run (or it belongs to another tenant)."""


class RunExistsError(StoreError):
    """A run with this id already exists."""


class RunStateConflictError(StoreError):
    """A conditional write failed: the run (or sub-task) was not in an expected status."""


def status_conflict(what: str, status: str | None,
                    expected: Iterable[RunStatus | SubtaskStatus]) -> RunStateConflictError:
    """The error for a write refused because ``what`` (``run <id>`` or ``sub-task <id> of run <id>``) has
    status ``status`` (its value), not one of ``expected``."""
    return RunStateConflictError(f"{what} is {status}, expected one of {', '.join(st.value for st in expected)}")


def reopen_conflict(run_id: str, current: Run, expected: Run) -> RunStateConflictError | None:
    """The conflict :meth:`RunStore.reopen_run` raises when ``current`` (the record now) is not as ``expected``
    (status, error code, finished_at), else None."""
    code = current.error.code if current.error else None
    want = expected.error.code if expected.error else None
    if current.status == expected.status and code == want and current.finished_at == expected.finished_at:
        return None
    return RunStateConflictError(f"run {run_id} changed since it was read: it is {current.status.value} "
                                 f"({code or 'no error'}), expected {expected.status.value} ({want or 'no error'})")


def reopen_statuses(run_id: str, expected: Run, statuses: Iterable[RunStatus]) -> list[RunStatus]:
    """The checked ``statuses`` of :meth:`RunStore.reopen_run`. ValueError for another run's record;
    RunStateConflictError when ``expected.status`` is not one of them."""
    if expected.run_id != run_id:
        raise ValueError(f"reopen_run({run_id!r}) was given the record of run {expected.run_id!r}")
    allowed = [RunStatus(x) for x in statuses]
    if expected.status not in allowed:
        raise status_conflict(f"run {run_id}", expected.status.value, allowed)
    return allowed


class RunStore(ABC):
    """Port for all persistent run state. Timestamps are UTC; costs are USD floats (stored as Decimal)."""

    # ---- runs
    @abstractmethod
    def create_run(self, run: Run) -> None:
        """Write a new run record. Raises RunExistsError if ``run.run_id`` exists."""

    @abstractmethod
    def get_run(self, run_id: str, tenant: str | None = None) -> Run:
        """Read a run (with its accumulated usage). ``tenant`` given and different: RunNotFoundError."""

    @abstractmethod
    def list_runs(self, tenant: str, limit: int = 50, cursor: str | None = None) -> tuple[list[Run], str | None]:
        """Runs of one tenant, newest first (GSI1). Returns (runs, next cursor or None). ``limit`` 1-100.
        Listed runs carry usage totals only (``usage.by_model`` is empty; ``get_run`` fills it). A bad cursor
        raises ValueError."""

    @abstractmethod
    def update_run(self, run_id: str, changes: dict[str, Any],
                   expected: Iterable[RunStatus] | None = None) -> Run:
        """Set top-level fields of the run record (``status``, ``error``, ``engine``, ``started_at``,
        ``finished_at``, ``approval_token``, ``execution_arn``...; values are model field values) and
        ``updated_at``. With ``expected``, the write only happens if the current status is one of them, else
        RunStateConflictError. Returns the updated run."""

    @abstractmethod
    def reopen_run(self, run_id: str, expected: Run,
                   statuses: Iterable[RunStatus] = (RunStatus.FAILED,)) -> Run:
        """Reopen a run record to RUNNING (``error`` and ``finished_at`` cleared, ``updated_at`` now) in one
        conditional write that holds only if the record is still as ``expected`` (a :class:`Run` read before): the
        same ``status``, which must be one of ``statuses`` (default: a terminal FAILED), the same ``error.code`` (or
        still no error) and the same ``finished_at`` (or still none). For ``stepcrew runs redrive`` (deployed) and
        ``stepcrew runs resume`` (local). Returns the reopened run. RunNotFoundError; RunStateConflictError when the
        record changed since it was read, or ``expected.status`` is not in ``statuses`` (nothing written);
        ValueError when ``expected.run_id`` is not ``run_id``."""

    @abstractmethod
    def open_run_ids(self, updated_before: datetime, limit: int = 1000) -> list[str]:
        """Ids of run records of every tenant that are not terminal (QUEUED, RUNNING, WAITING_APPROVAL,
        NEEDS_REVIEW) and were last updated before ``updated_before``, at most ``limit`` (1-10,000), in no set
        order: the deployed orphan sweep (:mod:`stepcrew.domain.sweep`). An operator read across tenants: callers
        re-read each run (strongly consistent) before acting on it."""

    @abstractmethod
    def add_usage(self, run_id: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float, *,
                  cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> Usage:
        """Atomically add one model response's usage to the run's totals and per-model breakdown
        (``cache_read_tokens`` / ``cache_write_tokens``: the parts of ``input_tokens`` served from / written to
        the provider's prompt cache)."""

    # ---- resilience: budget reservations, cache savings, cache entries, circuit-breaker state
    @abstractmethod
    def reserve_budget(self, run_id: str, tokens: int, cost_usd: float, max_tokens: int | None,
                       max_cost_usd: float | None) -> bool:
        """Reserve one call's maximum (``tokens``, ``cost_usd``) against the run's caps: one conditional update of
        the run's *committed* counters (used + outstanding reservations) that holds only if each stays within its
        cap (a DynamoDB condition cannot add, so ``cap - reservation`` is computed here). True if reserved, False if
        a cap refused it (nothing written). RunNotFoundError; ValueError for negative numbers."""

    @abstractmethod
    def settle_budget(self, run_id: str, tokens_delta: int, cost_delta: float) -> None:
        """After the call: add ``actual - reserved`` (usually negative) to the committed counters."""

    @abstractmethod
    def raise_degradation(self, run_id: str, level: str) -> None:
        """Set the run's ``degradation_level`` to ``level`` only if it is lower now (``DEGRADATION_ORDER``): one
        conditional write, so parallel sub-tasks can never lower it."""

    @abstractmethod
    def add_savings(self, run_id: str, hits: int, tokens: int, cost_usd: float) -> None:
        """Count ``hits`` cache hits and what they saved (tokens, USD) on the run's usage (atomic ADD)."""

    @abstractmethod
    def cache_get(self, tenant: str, key: str) -> dict[str, Any] | None:
        """The live cache entry ``key`` of ``tenant`` (its body), or None (absent or expired). Entries of another
        tenant are never returned: the tenant is in the partition key and checked again in the body."""

    @abstractmethod
    def cache_put(self, tenant: str, key: str, body: dict[str, Any], ttl_s: int) -> None:
        """Write (replace) cache entry ``key`` of ``tenant``, expiring ``ttl_s`` seconds from now (400 KB cap)."""

    @abstractmethod
    def cache_scan(self, tenant: str, prefix: str, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``limit`` live entries of ``tenant`` whose key starts with ``prefix``: ``(key, body)``."""

    @abstractmethod
    def breaker_persistence(self) -> Any:
        """A Powertools circuit-breaker persistence layer on this store (shared by every function)."""

    # ---- plan and sub-tasks
    @abstractmethod
    def put_plan(self, run_id: str, plan: Plan, keep: Iterable[str] = ()) -> None:
        """Store (replace) the run's validated plan and create one PENDING sub-task record per sub-task, except the
        sub-tasks named in ``keep`` (ids of this plan whose records exist: a replanned run's done sub-tasks), whose
        records stay as they are (status, output, counts). Records of sub-tasks no longer in the plan are removed
        (their conversations stay: a later plan never reuses their ids, see
        :func:`stepcrew.models.versioned_subtask_id`). RunNotFoundError; KeyError for a ``keep`` id without a
        record or not in ``plan``."""

    @abstractmethod
    def get_plan(self, run_id: str) -> Plan | None:
        """The run's plan, or None before :meth:`put_plan`."""

    @abstractmethod
    def put_plan_version(self, version: PlanVersion) -> None:
        """Store (replace) one version of a run's plan (keyed by ``version.version``). RunNotFoundError."""

    @abstractmethod
    def list_plan_versions(self, run_id: str) -> list[PlanVersion]:
        """The run's plan versions, oldest (v1) first; empty for a run planned before versions were kept."""

    @abstractmethod
    def get_subtask(self, run_id: str, subtask_id: str) -> SubtaskRecord:
        """Raises KeyError if unknown."""

    @abstractmethod
    def list_subtasks(self, run_id: str) -> list[SubtaskRecord]:
        """In plan order."""

    @abstractmethod
    def update_subtask(self, run_id: str, subtask_id: str, changes: dict[str, Any],
                       expected: Iterable[SubtaskStatus] | None = None) -> SubtaskRecord:
        """Set fields of a sub-task record (``status``, ``turns``, ``tool_calls``, ``output``, ``error``,
        ``started_at``, ``finished_at``). Raises KeyError if unknown. With ``expected``, the write only happens
        if the sub-task's current status is one of them, else RunStateConflictError (pass it for every status
        change, e.g. RUNNING -> SUCCEEDED only from RUNNING)."""

    # ---- conversations (claim-check: never in state)
    @abstractmethod
    def append_messages(self, run_id: str, conversation_id: str, messages: list[Message]) -> int:
        """Append turns to a conversation (``subtask id``, ``synthesizer``, ``reviewer``...). Returns the new
        message count. Each message is its own item (DynamoDB items are capped at 400 KB)."""

    @abstractmethod
    def get_messages(self, run_id: str, conversation_id: str) -> list[Message]:
        """The conversation's messages in order (empty if none). ValueError for a bad conversation id."""

    # ---- progress events
    @abstractmethod
    def add_event(self, event: ProgressEvent) -> str:
        """Append a progress event; returns its cursor (sortable, unique within the run)."""

    @abstractmethod
    def list_events(self, run_id: str, after: str | None = None, limit: int = 500) -> list[tuple[str, ProgressEvent]]:
        """Events with cursor > ``after``, oldest first, as (cursor, event)."""

    # ---- report and reviews
    @abstractmethod
    def put_report(self, run_id: str, text: str) -> int:
        """Store the current report (replacing the previous version); returns its version (1, 2, ...)."""

    @abstractmethod
    def get_report(self, run_id: str) -> str | None:
        """The current report text (Markdown), or None before :meth:`put_report`."""

    @abstractmethod
    def put_review(self, run_id: str, review: Review) -> None:
        """Store a review round (keyed by ``review.round``)."""

    @abstractmethod
    def list_reviews(self, run_id: str) -> list[Review]:
        """Review rounds in order."""

    # ---- manager delegations (hierarchical / hybrid crews): an append-only ledger over the conversation primitives
    def record_delegations(self, run_id: str, delegations: list[Delegation]) -> None:
        """Append versions of delegation records (a new delegation, or one whose verdict was set) in one append:
        each is a message of conversation :data:`DELEGATIONS_CONVERSATION` (one item each, 400 KB; the conversations'
        retention). :meth:`list_delegations` keeps the latest version of each ``seq``. ValueError for a record of
        another run."""
        if any(d.run_id != run_id for d in delegations):
            raise ValueError(f"record_delegations({run_id!r}) was given another run's delegation")
        if delegations:
            self.append_messages(run_id, DELEGATIONS_CONVERSATION,
                                 [Message(role="assistant", content=d.model_dump_json()) for d in delegations])

    def list_delegations(self, run_id: str) -> list[Delegation]:
        """The run's delegations, latest version of each, by ``seq`` (empty for a run without a manager). Callers
        check the tenant first (``get_run(run_id, tenant)``), as for every other read of a run's items."""
        latest: dict[int, Delegation] = {}
        for m in self.get_messages(run_id, DELEGATIONS_CONVERSATION):
            d = Delegation.model_validate_json(m.content)
            latest[d.seq] = d
        return [latest[k] for k in sorted(latest)]


#: Conversation id of the delegation ledger (no sub-task id can take it: sub-task ids have no ':').
DELEGATIONS_CONVERSATION = "manager:delegations"
