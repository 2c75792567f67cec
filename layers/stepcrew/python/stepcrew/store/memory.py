"""In-memory fake of the store port, with the semantics of :class:`stepcrew.store.dynamodb.DynamoRunStore`.

For unit tests and single-process runs: nothing survives the process. One re-entrant lock guards all state,
so parallel sub-tasks (threads) may call it concurrently; every method is atomic. Values go in and come out as
deep copies, so callers cannot change stored state. Items are size-checked exactly like the DynamoDB adapter
(400 KB per item, :func:`stepcrew.store.schema.check_item_size`), usage costs are summed as Decimal like
DynamoDB's ``ADD``, and ``list_runs`` returns usage totals only (``usage.by_model`` empty), as on DynamoDB.
No TTL: messages and events never expire here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stepcrew.models import (
    Message,
    ModelUsage,
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
from stepcrew.store import schema as s
from stepcrew.store.base import (
    RunExistsError,
    RunNotFoundError,
    RunStore,
    StoreError,
    reopen_conflict,
    reopen_statuses,
    status_conflict,
)

_Totals = dict[str, Any]  # input_tokens: int, output_tokens: int, cost_usd: Decimal


def _zero() -> _Totals:
    return {"input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0), "cache_read_tokens": 0,
            "cache_write_tokens": 0}


def _dec(number: float) -> Decimal:
    """A cost as DynamoDB would store it: the Decimal of the float's shortest repr."""
    return Decimal(repr(float(number)))


def _add(totals: _Totals, input_tokens: int, output_tokens: int, cost: Decimal, cache_read_tokens: int = 0,
         cache_write_tokens: int = 0) -> None:
    totals["input_tokens"] += input_tokens
    totals["output_tokens"] += output_tokens
    totals["cost_usd"] += cost
    totals["cache_read_tokens"] += cache_read_tokens
    totals["cache_write_tokens"] += cache_write_tokens


def _as_usage_fields(totals: _Totals) -> dict[str, Any]:
    return {"input_tokens": totals["input_tokens"], "output_tokens": totals["output_tokens"],
            "cost_usd": float(totals["cost_usd"]), "cache_read_tokens": totals["cache_read_tokens"],
            "cache_write_tokens": totals["cache_write_tokens"]}


class MemoryRunStore(RunStore):
    """Thread-safe in-memory run store (see the module docstring). No arguments."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}  # usage kept apart, in _totals / _by_model
        self._totals: dict[str, _Totals] = {}
        self._by_model: dict[str, dict[str, _Totals]] = {}
        self._plans: dict[str, Plan] = {}
        self._plan_versions: dict[str, dict[int, PlanVersion]] = {}
        self._subtasks: dict[str, dict[str, SubtaskRecord]] = {}  # insertion order = plan order
        self._messages: dict[tuple[str, str], list[Message]] = {}
        self._events: dict[str, dict[str, ProgressEvent]] = {}
        self._reports: dict[str, tuple[int, str]] = {}
        self._reviews: dict[str, dict[int, Review]] = {}
        self._savings: dict[str, list] = {}  # run_id -> [hits, tokens, Decimal cost]
        self._committed: dict[str, list] = {}  # run_id -> [tokens, Decimal cost]
        self._cache: dict[tuple[str, str], tuple[int, str]] = {}  # (tenant, key) -> (expires_at, body JSON)
        self._breaker: Any = None

    # ------------------------------------------------------------------------------------------ runs
    def _assemble(self, run_id: str, with_by_model: bool = True) -> Run:
        by_model = {m: ModelUsage(**_as_usage_fields(t)) for m, t in self._by_model.get(run_id, {}).items()}
        hits, tokens, cost = self._savings.get(run_id, (0, 0, Decimal(0)))
        usage = Usage(**_as_usage_fields(self._totals[run_id]), by_model=by_model if with_by_model else {},
                      cache_hits=hits, saved_tokens=tokens, saved_cost_usd=float(cost))
        return self._runs[run_id].model_copy(update={"usage": usage}, deep=True)

    def create_run(self, run: Run) -> None:
        """Store a copy of ``run``. RunExistsError if the id exists; StoreError over 400 KB."""
        s.check_item_size(s.run_item(run))
        with self._lock:
            if run.run_id in self._runs:
                raise RunExistsError(run.run_id)
            self._runs[run.run_id] = run.model_copy(update={"usage": Usage()}, deep=True)
            totals = _zero()
            _add(totals, run.usage.input_tokens, run.usage.output_tokens, _dec(run.usage.cost_usd),
                 run.usage.cache_read_tokens, run.usage.cache_write_tokens)
            self._totals[run.run_id] = totals
            self._by_model[run.run_id] = {}
            for model, u in run.usage.by_model.items():
                self._by_model[run.run_id][model] = _zero()
                _add(self._by_model[run.run_id][model], u.input_tokens, u.output_tokens, _dec(u.cost_usd),
                     u.cache_read_tokens, u.cache_write_tokens)

    def get_run(self, run_id: str, tenant: str | None = None) -> Run:
        """A copy of the run with its usage. RunNotFoundError if absent or of another ``tenant``."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or (tenant is not None and run.tenant != tenant):
                raise RunNotFoundError(run_id)
            return self._assemble(run_id)

    def list_runs(self, tenant: str, limit: int = 50, cursor: str | None = None) -> tuple[list[Run], str | None]:
        """Newest first by (created_at, run_id). ``cursor`` is opaque (base64 JSON); a bad cursor or one of
        another tenant raises ValueError. Runs carry usage totals only."""
        s.check_limit(limit, 100)
        after = self._decode_cursor(cursor, tenant) if cursor is not None else None
        with self._lock:
            keyed = sorted(((s.gsi1_sk(r.created_at, r.run_id), r.run_id) for r in self._runs.values()
                            if r.tenant == tenant), reverse=True)
            if after is not None:
                keyed = [k for k in keyed if k[0] < after]
            page = keyed[:limit]
            runs = [self._assemble(run_id, with_by_model=False) for _, run_id in page]
        next_cursor = self._encode_cursor(tenant, page[-1][0]) if len(keyed) > limit else None
        return runs, next_cursor

    @staticmethod
    def _encode_cursor(tenant: str, key: str) -> str:
        return s.encode_cursor({"tenant": tenant, "key": key})

    @staticmethod
    def _decode_cursor(cursor: str, tenant: str) -> str:
        data = s.decode_cursor(cursor)
        if not isinstance(data, dict) or data.get("tenant") != tenant or not isinstance(data.get("key"), str):
            raise ValueError("invalid cursor")
        return data["key"]

    def update_run(self, run_id: str, changes: dict[str, Any],
                   expected: Iterable[RunStatus] | None = None) -> Run:
        """Set fields and ``updated_at`` (now unless given) atomically. ValueError for unknown or fixed fields
        or bad values; RunNotFoundError; RunStateConflictError if the status is not in ``expected``."""
        changes = dict(changes)
        changes.setdefault("updated_at", datetime.now(UTC))
        values, _ = s.validate_changes(Run, changes, set(Run.model_fields) - s.RUN_FIXED_FIELDS)
        statuses = None if expected is None else [RunStatus(x) for x in expected]
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if statuses is not None and run.status not in statuses:
                raise status_conflict(f"run {run_id}", run.status.value, statuses)
            updated = run.model_copy(update=values, deep=True)
            s.check_item_size(s.run_item(updated))
            self._runs[run_id] = updated
            return self._assemble(run_id)

    def reopen_run(self, run_id: str, expected: Run,
                   statuses: Iterable[RunStatus] = (RunStatus.FAILED,)) -> Run:
        """RUNNING again, atomically, only if the record is still as ``expected`` (see the port)."""
        reopen_statuses(run_id, expected, statuses)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            conflict = reopen_conflict(run_id, run, expected)
            if conflict is not None:
                raise conflict
            self._runs[run_id] = run.model_copy(update={"status": RunStatus.RUNNING, "error": None,
                                                        "finished_at": None, "updated_at": datetime.now(UTC)})
            return self._assemble(run_id)

    def open_run_ids(self, updated_before: datetime, limit: int = 1000) -> list[str]:
        """Non-terminal runs last updated before ``updated_before`` (see the port)."""
        s.check_limit(limit, 10_000)
        with self._lock:
            return [run_id for run_id, run in self._runs.items()
                    if not run.status.terminal and run.updated_at < updated_before][:limit]

    def add_usage(self, run_id: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float, *,
                  cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> Usage:
        """Add to the totals and the model's breakdown atomically; returns the run's usage after the add.
        RunNotFoundError; ValueError for an empty model or negative numbers."""
        s.check_usage_numbers(model, input_tokens, output_tokens, cost_usd, cache_read_tokens=cache_read_tokens,
                              cache_write_tokens=cache_write_tokens)
        cost = _dec(cost_usd)
        cached = (cache_read_tokens, cache_write_tokens)
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFoundError(run_id)
            _add(self._totals[run_id], input_tokens, output_tokens, cost, *cached)
            _add(self._by_model[run_id].setdefault(model, _zero()), input_tokens, output_tokens, cost, *cached)
            return self._assemble(run_id).usage

    # ------------------------------------------------------------------------------------------ resilience
    def reserve_budget(self, run_id: str, tokens: int, cost_usd: float, max_tokens: int | None,
                       max_cost_usd: float | None) -> bool:
        s.check_reservation(tokens, cost_usd)
        cost = _dec(cost_usd)
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFoundError(run_id)
            committed = self._committed.setdefault(run_id, [0, Decimal(0)])
            if max_tokens is not None and committed[0] > max_tokens - tokens:
                return False
            if max_cost_usd is not None and committed[1] > _dec(max_cost_usd) - cost:
                return False
            committed[0] += tokens
            committed[1] += cost
            return True

    def settle_budget(self, run_id: str, tokens_delta: int, cost_delta: float) -> None:
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFoundError(run_id)
            committed = self._committed.setdefault(run_id, [0, Decimal(0)])
            committed[0] += int(tokens_delta)
            committed[1] += _dec(cost_delta)

    def raise_degradation(self, run_id: str, level: str) -> None:
        from stepcrew.models import DEGRADATION_ORDER

        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if DEGRADATION_ORDER.index(level) > DEGRADATION_ORDER.index(run.degradation_level):
                self._runs[run_id] = run.model_copy(update={"degradation_level": level})

    def add_savings(self, run_id: str, hits: int, tokens: int, cost_usd: float) -> None:
        s.check_usage_numbers("savings", hits, tokens, cost_usd)
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFoundError(run_id)
            cur = self._savings.setdefault(run_id, [0, 0, Decimal(0)])
            cur[0] += hits
            cur[1] += tokens
            cur[2] += _dec(cost_usd)

    def cache_get(self, tenant: str, key: str) -> dict[str, Any] | None:
        pk = s.cache_pk(tenant)
        with self._lock:
            entry = self._cache.get((pk, key))
        if entry is None or entry[0] <= int(datetime.now(UTC).timestamp()):
            return None
        body = json.loads(entry[1])
        return body if body.get("tenant") == tenant else None

    def cache_put(self, tenant: str, key: str, body: dict[str, Any], ttl_s: int) -> None:
        text = json.dumps({**body, "tenant": tenant}, separators=(",", ":"))
        s.check_item_size({"PK": s.cache_pk(tenant), "SK": key, "body": text})
        with self._lock:
            self._cache[(s.cache_pk(tenant), key)] = (int(datetime.now(UTC).timestamp()) + int(ttl_s), text)

    def cache_scan(self, tenant: str, prefix: str, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        pk, now = s.cache_pk(tenant), int(datetime.now(UTC).timestamp())
        with self._lock:
            keys = sorted((k for (p, k) in self._cache if p == pk and k.startswith(prefix)), reverse=True)
            entries = [(k, self._cache[(pk, k)]) for k in keys]
        out = []
        for k, (expires, text) in entries:
            body = json.loads(text)
            if expires > now and body.get("tenant") == tenant:
                out.append((k, body))
            if len(out) >= limit:
                break
        return out

    def breaker_persistence(self) -> Any:
        """One in-memory persistence layer per store (same semantics as Powertools' DynamoDB one)."""
        with self._lock:
            if self._breaker is None:
                self._breaker = MemoryCircuitPersistence()
            return self._breaker

    # ------------------------------------------------------------------------------------------ plan, sub-tasks
    def put_plan(self, run_id: str, plan: Plan, keep: Iterable[str] = ()) -> None:
        """Replace the plan and the sub-task records (PENDING, plan order; the ``keep`` ones as they are).
        RunNotFoundError; KeyError for a ``keep`` id without a record or not in the plan."""
        s.check_item_size(s.plan_item(run_id, plan))
        keep = set(keep)
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFoundError(run_id)
            current = self._subtasks.get(run_id, {})
            missing = sorted(k for k in keep if k not in current or k not in {sub.id for sub in plan.subtasks})
            if missing:
                raise KeyError(missing[0])
            self._plans[run_id] = plan.model_copy(deep=True)
            self._subtasks[run_id] = {sub.id: current[sub.id] if sub.id in keep else
                                      SubtaskRecord(run_id=run_id, subtask_id=sub.id) for sub in plan.subtasks}

    def put_plan_version(self, version: PlanVersion) -> None:
        """Store a copy (replacing that version). RunNotFoundError; StoreError over 400 KB."""
        s.check_item_size(s.plan_version_item(version))
        with self._lock:
            if version.run_id not in self._runs:
                raise RunNotFoundError(version.run_id)
            self._plan_versions.setdefault(version.run_id, {})[version.version] = version.model_copy(deep=True)

    def list_plan_versions(self, run_id: str) -> list[PlanVersion]:
        """Copies, oldest first."""
        with self._lock:
            versions = self._plan_versions.get(run_id, {})
            return [versions[n].model_copy(deep=True) for n in sorted(versions)]

    def get_plan(self, run_id: str) -> Plan | None:
        """A copy of the plan, or None."""
        with self._lock:
            plan = self._plans.get(run_id)
            return plan.model_copy(deep=True) if plan else None

    def get_subtask(self, run_id: str, subtask_id: str) -> SubtaskRecord:
        """A copy of the sub-task record; KeyError if unknown."""
        with self._lock:
            record = self._subtasks.get(run_id, {}).get(subtask_id)
            if record is None:
                raise KeyError(subtask_id)
            return record.model_copy(deep=True)

    def list_subtasks(self, run_id: str) -> list[SubtaskRecord]:
        """Copies of the sub-task records in plan order."""
        with self._lock:
            return [r.model_copy(deep=True) for r in self._subtasks.get(run_id, {}).values()]

    def update_subtask(self, run_id: str, subtask_id: str, changes: dict[str, Any],
                       expected: Iterable[SubtaskStatus] | None = None) -> SubtaskRecord:
        """Set fields atomically. KeyError if unknown; RunStateConflictError if the status is not in
        ``expected``; ValueError for other fields or bad values; StoreError over 400 KB."""
        values, _ = s.validate_changes(SubtaskRecord, changes, s.SUBTASK_CHANGEABLE_FIELDS)
        statuses = None if expected is None else [SubtaskStatus(x) for x in expected]
        with self._lock:
            records = self._subtasks.get(run_id, {})
            if subtask_id not in records:
                raise KeyError(subtask_id)
            current = records[subtask_id].status
            if statuses is not None and current not in statuses:
                raise status_conflict(f"sub-task {subtask_id} of run {run_id}", current.value, statuses)
            updated = records[subtask_id].model_copy(update=values, deep=True)
            s.check_item_size(s.subtask_item(updated, list(records).index(subtask_id)))
            records[subtask_id] = updated
            return updated.model_copy(deep=True)

    # ------------------------------------------------------------------------------------------ conversations
    def append_messages(self, run_id: str, conversation_id: str, messages: list[Message]) -> int:
        """Append copies atomically; returns the conversation's message count. StoreError if a message exceeds
        400 KB as an item (nothing appended); ValueError for a bad conversation id."""
        s.check_conversation_id(conversation_id)
        for message in messages:
            s.check_item_size(s.message_item(run_id, conversation_id, s.MAX_MESSAGES_PER_CONVERSATION, message, 0))
        with self._lock:
            stored = self._messages.setdefault((run_id, conversation_id), [])
            if len(stored) + len(messages) > s.MAX_MESSAGES_PER_CONVERSATION:
                raise StoreError(f"conversation {conversation_id!r} would exceed "
                                 f"{s.MAX_MESSAGES_PER_CONVERSATION} messages")
            stored.extend(m.model_copy(deep=True) for m in messages)
            return len(stored)

    def get_messages(self, run_id: str, conversation_id: str) -> list[Message]:
        """Copies of the conversation's messages in order."""
        s.check_conversation_id(conversation_id)
        with self._lock:
            return [m.model_copy(deep=True) for m in self._messages.get((run_id, conversation_id), [])]

    # ------------------------------------------------------------------------------------------ events
    def add_event(self, event: ProgressEvent) -> str:
        """Store a copy; returns its cursor ``<ISO ts of event.at>#<uuid8>``."""
        with self._lock:
            events = self._events.setdefault(event.run_id, {})
            cursor = s.new_event_cursor(event.at)
            while cursor in events:
                cursor = s.new_event_cursor(event.at)
            s.check_item_size(s.event_item(event, cursor, 0))
            events[cursor] = event.model_copy(deep=True)
            return cursor

    def list_events(self, run_id: str, after: str | None = None, limit: int = 500) -> list[tuple[str, ProgressEvent]]:
        """Events with cursor > ``after``, oldest first, at most ``limit`` (1-1000)."""
        s.check_limit(limit, 1000)
        with self._lock:
            events = self._events.get(run_id, {})
            cursors = sorted(c for c in events if after is None or c > after)[:limit]
            return [(c, events[c].model_copy(deep=True)) for c in cursors]

    # ------------------------------------------------------------------------------------------ report, reviews
    def put_report(self, run_id: str, text: str) -> int:
        """Replace the report; returns its version (1, 2, ...). StoreError over 400 KB."""
        s.check_item_size(s.report_item(run_id, text, 10**9))
        with self._lock:
            version = self._reports.get(run_id, (0, ""))[0] + 1
            self._reports[run_id] = (version, text)
            return version

    def get_report(self, run_id: str) -> str | None:
        """The current report text, or None."""
        with self._lock:
            report = self._reports.get(run_id)
            return report[1] if report else None

    def put_review(self, run_id: str, review: Review) -> None:
        """Store a copy, keyed by ``review.round`` (replacing that round)."""
        s.check_item_size(s.review_item(run_id, review))
        with self._lock:
            self._reviews.setdefault(run_id, {})[review.round] = review.model_copy(deep=True)

    def list_reviews(self, run_id: str) -> list[Review]:
        """Copies of the review rounds in round order."""
        with self._lock:
            reviews = self._reviews.get(run_id, {})
            return [reviews[r].model_copy(deep=True) for r in sorted(reviews)]


def _circuit_persistence_base() -> type:
    from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerPersistenceLayer

    return CircuitBreakerPersistenceLayer


class MemoryCircuitPersistence(_circuit_persistence_base()):  # type: ignore[misc]
    """Powertools circuit-breaker persistence in memory: the conditional half-open election of the DynamoDB
    layer (OPEN, no owner, same ``opened_at``; or an expired probe lease) under a lock."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, Any] = {}
        self._rlock = threading.Lock()

    def _get_record(self, name: str) -> Any:
        with self._rlock:
            record = self._records.get(name)
            return None if record is None else _copy_record(record)

    def _put_record(self, record: Any, condition: str | None = None, expected_opened_at: int | None = None) -> None:
        from aws_lambda_powertools.utilities.circuit_breaker.persistence.base import CircuitBreakerExistingLockError
        from aws_lambda_powertools.utilities.circuit_breaker.states import CircuitState

        with self._rlock:
            if condition == "half_open":
                cur = self._records.get(record.name)
                now = int(datetime.now(UTC).timestamp())
                free = cur is not None and cur.state == CircuitState.OPEN and cur.half_open_owner is None
                expired = (cur is not None and cur.probe_lease_expiry is not None and cur.probe_lease_expiry <= now)
                if not (free or expired) or (expected_opened_at is not None and cur.opened_at != expected_opened_at):
                    raise CircuitBreakerExistingLockError(record.name)
            self._records[record.name] = _copy_record(record)

    def _update_record(self, record: Any) -> None:
        with self._rlock:
            self._records[record.name] = _copy_record(record)


def _copy_record(record: Any) -> Any:
    from dataclasses import replace

    return replace(record)
