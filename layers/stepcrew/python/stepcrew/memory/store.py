"""The memory store port: a tenant's long-term facts and episodes, with their vectors, in the run table.

Items (single table, :mod:`stepcrew.store.schema`; one partition per tenant, so a Query can only ever read one
tenant's memory):

=============================  ==========================================================================
PK / SK                        item
=============================  ==========================================================================
``MEM#<tenant>`` / ``META``    counters ``facts``, ``episodes`` (ADD) and ``version`` (ADD 1 on every write
                               or delete: an in-process vector cache reloads when it changes)
``MEM#<tenant>`` / ``FACT#<id>``     a fact: ``body`` (JSON :class:`~stepcrew.memory.models.MemoryItem`),
                               ``tenant``, ``user``, ``vec`` (Binary: float32 little-endian), ``vec_model``,
                               ``expires_at`` (TTL, only for a fact with a TTL)
``MEM#<tenant>`` / ``EPISODE#<id>``  an episode (``body``: :class:`~stepcrew.memory.models.Episode`), ``vec``,
                               ``vec_model``; ids start with a fixed-width UTC time, so the oldest sorts first
=============================  ==========================================================================

Every read checks the item's ``tenant`` attribute again (defence in depth after the partition key) and skips
facts past their ``expires_at`` (DynamoDB's TTL deletes within days, not at once). Adapters:
:class:`DynamoMemoryStore` and :class:`InMemoryMemoryStore`; both pass ``tests/unit/memory/test_store_contract.py``.
"""

from __future__ import annotations

import array
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepcrew.memory.models import Episode, MemoryItem

FACT_PREFIX = "FACT#"
EPISODE_PREFIX = "EPISODE#"
META_SK = "META"


def memory_pk(tenant: str) -> str:
    """Partition key of a tenant's memory: ``MEM#<tenant>``."""
    return f"MEM#{tenant}"


def pack_vector(vector: list[float] | None) -> bytes | None:
    """A vector as float32 little-endian bytes (4 bytes per dimension), or None."""
    if vector is None:
        return None
    a = array.array("f", vector)
    if sys.byteorder != "little":  # pragma: no cover
        a.byteswap()
    return a.tobytes()


def unpack_vector(data: bytes | None) -> list[float] | None:
    if not data:
        return None
    a = array.array("f")
    a.frombytes(bytes(data))
    if sys.byteorder != "little":  # pragma: no cover
        a.byteswap()
    return a.tolist()


@dataclass
class Stored:
    """A stored item with its vector (None: not embedded) and the embeddings' name that made it."""

    item: MemoryItem | Episode
    vector: list[float] | None = None
    vector_model: str | None = None


@dataclass(frozen=True)
class Counts:
    facts: int = 0
    episodes: int = 0
    version: int = 0


def _live(item: MemoryItem | Episode, now: datetime) -> bool:
    return not (isinstance(item, MemoryItem) and item.expires_at is not None and item.expires_at <= now)


class MemoryStore(ABC):
    """Port of a tenant's memory. Every method takes the tenant and never returns another tenant's items."""

    @abstractmethod
    def put_fact(self, item: MemoryItem, vector: list[float] | None, vector_model: str | None) -> bool:
        """Write (create or replace) a fact. True when it is new (``facts`` counter +1), False when it replaced
        the item with the same id."""

    @abstractmethod
    def put_episode(self, episode: Episode, vector: list[float] | None, vector_model: str | None) -> bool:
        """Write an episode; True when new. Replacing an episode (same id: a retried run end) keeps the count."""

    @abstractmethod
    def get(self, tenant: str, memory_id: str) -> Stored | None:
        """One live item of ``tenant`` (a fact ``f-...`` or an episode ``e-...``) with its vector, or None."""

    @abstractmethod
    def scan(self, tenant: str, kind: str, *, vectors: bool = True, limit: int | None = None,
             cursor: str | None = None, oldest_first: bool = True) -> tuple[list[Stored], str | None]:
        """Live items of one kind (``fact`` | ``episode``) of ``tenant``, by id (oldest episodes first, or newest
        with ``oldest_first=False``), at most ``limit`` (None: all). Returns (items, next cursor or None). A bad
        cursor raises ValueError."""

    @abstractmethod
    def delete(self, tenant: str, memory_id: str) -> bool:
        """Delete one item; True if it existed (its counter -1)."""

    @abstractmethod
    def delete_many(self, tenant: str, kind: str, memory_ids: list[str]) -> int:
        """Delete items of one kind of ``tenant`` that a scan just listed, in batches (an erase of a large tenant
        must fit an API request); the counter drops by the number given. Returns it."""

    @abstractmethod
    def counts(self, tenant: str) -> Counts:
        """The tenant's counters (may count TTL-expired facts until :meth:`set_count` corrects them)."""

    @abstractmethod
    def set_count(self, tenant: str, kind: str, value: int) -> None:
        """Correct a counter after a full scan (TTL deletions do not decrement it)."""


# ---------------------------------------------------------------------------------------------- in memory
class InMemoryMemoryStore(MemoryStore):
    """The in-memory fake (tests, the memory run store)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Stored]] = {}
        self._counts: dict[str, dict[str, int]] = {}

    def _bump(self, tenant: str, **delta: int) -> None:
        c = self._counts.setdefault(tenant, {"facts": 0, "episodes": 0, "version": 0})
        for k, v in delta.items():
            c[k] += v
        c["version"] += 1

    def _put(self, item: MemoryItem | Episode, vector: list[float] | None, model: str | None, kind: str) -> bool:
        with self._lock:
            items = self._items.setdefault(item.tenant, {})
            old = items.get(item.memory_id)
            new = old is None or not _live(old.item, datetime.now(UTC))  # an expired item is counted as gone
            items[item.memory_id] = Stored(item.model_copy(deep=True), list(vector) if vector else None, model)
            self._bump(item.tenant, **{kind: 1 if new else 0})
            return new

    def put_fact(self, item: MemoryItem, vector: list[float] | None, vector_model: str | None) -> bool:
        return self._put(item, vector, vector_model, "facts")

    def put_episode(self, episode: Episode, vector: list[float] | None, vector_model: str | None) -> bool:
        return self._put(episode, vector, vector_model, "episodes")

    def get(self, tenant: str, memory_id: str) -> Stored | None:
        with self._lock:
            stored = self._items.get(tenant, {}).get(memory_id)
            if stored is None or stored.item.tenant != tenant or not _live(stored.item, datetime.now(UTC)):
                return None
            return Stored(stored.item.model_copy(deep=True), stored.vector, stored.vector_model)

    def scan(self, tenant: str, kind: str, *, vectors: bool = True, limit: int | None = None,
             cursor: str | None = None, oldest_first: bool = True) -> tuple[list[Stored], str | None]:
        prefix = {"fact": "f-", "episode": "e-"}[kind]
        now = datetime.now(UTC)
        with self._lock:
            ids = sorted((i for i in self._items.get(tenant, {}) if i.startswith(prefix)), reverse=not oldest_first)
            if cursor is not None:
                if not isinstance(cursor, str) or not cursor.startswith(prefix):
                    raise ValueError("bad cursor")
                ids = [i for i in ids if (i > cursor if oldest_first else i < cursor)]
            out: list[Stored] = []
            for i in ids:
                st = self._items[tenant][i]
                if st.item.tenant != tenant or not _live(st.item, now):
                    continue
                out.append(Stored(st.item.model_copy(deep=True), st.vector if vectors else None, st.vector_model))
                if limit is not None and len(out) >= limit:
                    more = ids.index(i) < len(ids) - 1
                    return out, (i if more else None)
            return out, None

    def delete(self, tenant: str, memory_id: str) -> bool:
        with self._lock:
            stored = self._items.get(tenant, {}).pop(memory_id, None)
            if stored is None:
                return False
            self._bump(tenant, **{"facts" if memory_id.startswith("f-") else "episodes": -1})
            return True

    def delete_many(self, tenant: str, kind: str, memory_ids: list[str]) -> int:
        with self._lock:
            gone = [self._items.get(tenant, {}).pop(mid, None) for mid in dict.fromkeys(memory_ids)]
            n = sum(1 for g in gone if g is not None)
            if n:
                self._bump(tenant, **{"facts" if kind == "fact" else "episodes": -n})
            return n

    def counts(self, tenant: str) -> Counts:
        with self._lock:
            c = self._counts.get(tenant, {"facts": 0, "episodes": 0, "version": 0})
            return Counts(c["facts"], c["episodes"], c["version"])

    def set_count(self, tenant: str, kind: str, value: int) -> None:
        with self._lock:
            c = self._counts.setdefault(tenant, {"facts": 0, "episodes": 0, "version": 0})
            c[{"fact": "facts", "episode": "episodes"}[kind]] = value


# ---------------------------------------------------------------------------------------------- DynamoDB
class DynamoMemoryStore(MemoryStore):
    """The memory store on the run table of a :class:`~stepcrew.store.dynamodb.DynamoRunStore` (its client and
    plumbing: item-size check, errors as StoreError). New items and deletions are one transaction with the
    ``META`` counters; a replace is one PutItem plus the version bump."""

    def __init__(self, run_store: Any) -> None:
        self._rs = run_store
        self.table_name = run_store.table_name

    # -------------------------------------------------------------------------------------- plumbing
    def _item(self, item: MemoryItem | Episode, vector: list[float] | None, model: str | None,
              prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {"PK": memory_pk(item.tenant), "SK": prefix + item.memory_id, "tenant": item.tenant,
                               "body": item.model_dump_json()}
        if getattr(item, "user", None):
            out["user"] = item.user
        if vector is not None:
            out["vec"] = pack_vector(vector)
            out["vec_model"] = model or ""
        if isinstance(item, MemoryItem) and item.expires_at is not None:
            out["expires_at"] = int(item.expires_at.timestamp())
        from stepcrew.store import schema

        return schema.check_item_size(out)

    def _counter_update(self, tenant: str, kind: str, delta: int) -> dict[str, Any]:
        return {"Update": {"TableName": self.table_name,
                           "Key": {"PK": {"S": memory_pk(tenant)}, "SK": {"S": META_SK}},
                           "UpdateExpression": "ADD #k :d, version :one",
                           "ExpressionAttributeNames": {"#k": kind},
                           "ExpressionAttributeValues": {":d": {"N": str(delta)}, ":one": {"N": "1"}}}}

    def _bump_version(self, tenant: str) -> None:
        self._rs._call("update_item", Key={"PK": {"S": memory_pk(tenant)}, "SK": {"S": META_SK}},
                       UpdateExpression="ADD version :one", ExpressionAttributeValues={":one": {"N": "1"}})

    def _put(self, item: MemoryItem | Episode, vector: list[float] | None, model: str | None, prefix: str,
             kind: str) -> bool:
        from botocore.exceptions import ClientError

        av = self._rs._to_av(self._item(item, vector, model, prefix))
        try:
            self._rs._client.transact_write_items(TransactItems=[
                # new, or replacing an expired item that TTL has not deleted yet (it was no longer counted live)
                {"Put": {"TableName": self.table_name, "Item": av,
                         "ConditionExpression": "attribute_not_exists(PK) OR expires_at <= :now",
                         "ExpressionAttributeValues": {":now": {"N": str(int(datetime.now(UTC).timestamp()))}}}},
                self._counter_update(item.tenant, kind, 1)])
            return True
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException" or \
                    "ConditionalCheckFailed" not in reasons:
                from stepcrew.store.base import StoreError

                raise StoreError(f"DynamoDB memory write failed: {exc.response.get('Error', {}).get('Code')}") \
                    from exc
        self._rs._call("put_item", Item=av)  # exists: replace it (same id = same subject or same run)
        self._bump_version(item.tenant)
        return False

    def _stored(self, raw: dict[str, Any], tenant: str, now: datetime) -> Stored | None:
        if raw.get("tenant") != tenant:
            return None  # defence in depth: the partition is the tenant's, the item must say so too
        sk = raw["SK"]
        cls = MemoryItem if sk.startswith(FACT_PREFIX) else Episode
        item = cls.model_validate_json(raw["body"])
        if item.tenant != tenant or not _live(item, now):
            return None
        vec = raw.get("vec")
        return Stored(item, unpack_vector(bytes(vec.value if hasattr(vec, "value") else vec)) if vec else None,
                      raw.get("vec_model"))

    # -------------------------------------------------------------------------------------- the port
    def put_fact(self, item: MemoryItem, vector: list[float] | None, vector_model: str | None) -> bool:
        return self._put(item, vector, vector_model, FACT_PREFIX, "facts")

    def put_episode(self, episode: Episode, vector: list[float] | None, vector_model: str | None) -> bool:
        return self._put(episode, vector, vector_model, EPISODE_PREFIX, "episodes")

    def get(self, tenant: str, memory_id: str) -> Stored | None:
        prefix = FACT_PREFIX if memory_id.startswith("f-") else EPISODE_PREFIX
        raw = self._rs._get(memory_pk(tenant), prefix + memory_id)
        return self._stored(raw, tenant, datetime.now(UTC)) if raw else None

    def scan(self, tenant: str, kind: str, *, vectors: bool = True, limit: int | None = None,
             cursor: str | None = None, oldest_first: bool = True) -> tuple[list[Stored], str | None]:
        prefix = {"fact": FACT_PREFIX, "episode": EPISODE_PREFIX}[kind]
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)", "ConsistentRead": True,
            "ExpressionAttributeValues": {":pk": {"S": memory_pk(tenant)}, ":prefix": {"S": prefix}},
            "ScanIndexForward": oldest_first}
        if not vectors:
            kwargs["ProjectionExpression"] = "PK, SK, tenant, body"
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor.startswith(prefix[0].lower()):
                raise ValueError("bad cursor")
            kwargs["ExclusiveStartKey"] = {"PK": {"S": memory_pk(tenant)}, "SK": {"S": prefix + cursor}}
        now = datetime.now(UTC)
        out: list[Stored] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(out) + 1
            resp = self._rs._call("query", **kwargs)
            for av in resp.get("Items", []):
                stored = self._stored(self._rs._from_av(av), tenant, now)
                if stored is None:
                    continue
                if limit is not None and len(out) >= limit:
                    return out, out[-1].item.memory_id
                out.append(stored)
            if "LastEvaluatedKey" not in resp:
                return out, None
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def delete(self, tenant: str, memory_id: str) -> bool:
        from botocore.exceptions import ClientError

        prefix, kind = (FACT_PREFIX, "facts") if memory_id.startswith("f-") else (EPISODE_PREFIX, "episodes")
        try:
            self._rs._client.transact_write_items(TransactItems=[
                {"Delete": {"TableName": self.table_name,
                            "Key": {"PK": {"S": memory_pk(tenant)}, "SK": {"S": prefix + memory_id}},
                            "ConditionExpression": "attribute_exists(PK) AND tenant = :t",
                            "ExpressionAttributeValues": {":t": {"S": tenant}}}},
                self._counter_update(tenant, kind, -1)])
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            from stepcrew.store.base import StoreError

            raise StoreError(f"DynamoDB memory delete failed: {exc.response.get('Error', {}).get('Code')}") from exc

    def delete_many(self, tenant: str, kind: str, memory_ids: list[str]) -> int:
        """BatchWriteItem of DeleteRequests, 25 per call (DynamoDB's limit per BatchWriteItem), unprocessed items
        sent again (at most 8 rounds, then StoreError); the keys are in the tenant's partition, so no other tenant's
        item can be named. Then one counter update (ADD -n, version +1)."""
        import time

        from stepcrew.store.base import StoreError

        prefix = FACT_PREFIX if kind == "fact" else EPISODE_PREFIX
        ids = list(dict.fromkeys(memory_ids))
        for start in range(0, len(ids), 25):
            pending = [{"DeleteRequest": {"Key": {"PK": {"S": memory_pk(tenant)}, "SK": {"S": prefix + mid}}}}
                       for mid in ids[start:start + 25]]
            for attempt in range(8):
                resp = self._rs._client.batch_write_item(RequestItems={self.table_name: pending})
                pending = resp.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
            else:
                raise StoreError(f"DynamoDB kept {len(pending)} memory deletes unprocessed")
        if ids:
            self._rs._call("update_item", **{k: v for k, v in self._counter_update(
                tenant, "facts" if kind == "fact" else "episodes", -len(ids))["Update"].items() if k != "TableName"})
        return len(ids)

    def counts(self, tenant: str) -> Counts:
        raw = self._rs._get(memory_pk(tenant), META_SK)
        if not raw:
            return Counts()
        return Counts(int(raw.get("facts", 0)), int(raw.get("episodes", 0)), int(raw.get("version", 0)))

    def set_count(self, tenant: str, kind: str, value: int) -> None:
        attr = {"fact": "facts", "episode": "episodes"}[kind]
        self._rs._call("update_item", Key={"PK": {"S": memory_pk(tenant)}, "SK": {"S": META_SK}},
                       UpdateExpression="SET #k = :v ADD version :one", ExpressionAttributeNames={"#k": attr},
                       ExpressionAttributeValues={":v": {"N": str(int(value))}, ":one": {"N": "1"}})


_memory_stores: dict[int, InMemoryMemoryStore] = {}
_memory_lock = threading.Lock()


def memory_store_for(run_store: Any) -> MemoryStore:
    """The memory store beside a run store: :class:`DynamoMemoryStore` on a ``DynamoRunStore``'s table, else one
    :class:`InMemoryMemoryStore` per run-store object (kept on it as ``_memory``)."""
    if getattr(run_store, "table_name", None) and hasattr(run_store, "_client"):
        return DynamoMemoryStore(run_store)
    with _memory_lock:
        mem = getattr(run_store, "_memory_store", None)
        if mem is None:
            mem = InMemoryMemoryStore()
            try:
                run_store._memory_store = mem
            except AttributeError:  # pragma: no cover
                pass
        return mem

