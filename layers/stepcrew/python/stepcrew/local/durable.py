"""Durable local state: every write the emulated DynamoDB table receives is in SQLite before the call returns.

Why SQLite (stdlib ``sqlite3``, WAL mode) behind moto rather than our own journal file: it gives atomic, crash-safe
transactions, concurrent readers while one process writes, a cross-process write lock with a timeout and indexed
lookups, all well kept and in the standard library. moto stays the table *engine* (conditions, update expressions,
queries, pagination behave as moto's DynamoDB); SQLite is the table's *storage*.

How: :class:`Journal` wraps moto's ``DynamoHandler.call_action`` (one DynamoDB request). For a request on the
journaled table it

1. works out which partitions (hash-key values) the request reads or writes (``Key``/``Item``, the partition of a
   Query, the index hash value of a GSI Query, every partition for a Scan or PartiQL);
2. brings each of those partitions in moto up to date with SQLite, lazily: a partition is loaded the first time a
   request touches it, and reloaded when another process wrote it since (each partition has a version number in
   SQLite, bumped by every write). A GSI Query loads only the items holding that index key. So a process's start-up
   and a run's speed do not depend on how many runs are kept, only on what they touch;
3. runs moto's request; if it is a write that succeeded, writes the touched items (read back from moto) to SQLite
   and commits, inside one ``BEGIN IMMEDIATE`` transaction taken before step 2 — so the read-check-write of a
   conditional put is atomic across processes too, and a failed condition writes nothing.

Durability: ``synchronous=NORMAL`` in WAL mode — a committed write survives the process being killed (kill -9) at
any instant; after a power loss or OS crash the last transactions may be lost (SQLite, "Write-Ahead Logging" and
"PRAGMA synchronous"). ``STEPCREW_STATE_SYNC=full`` makes every commit fsync the log (slower). A kill -9 loses at
most the request in flight; the ``table.db-wal`` / ``-shm`` files SQLite keeps beside the database are recovered at
the next open and removed when the last connection closes cleanly: there is no temporary file of ours.

Files in the state folder: ``table.db`` (``PRAGMA user_version`` = :data:`DB_VERSION`). A ``table.json`` of an
earlier stepcrew (state version 1) is imported once and renamed ``table.json.imported``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepcrew.local.priority import PriorityRLock
from stepcrew.local.state import FILE_VERSION, StateFileError, _decode, _encode, read_legacy_items

LOG = logging.getLogger(__name__)

DB_NAME = "table.db"
#: Version of the SQLite layout (``PRAGMA user_version``); a database of a higher version is refused.
DB_VERSION = 2
BUSY_TIMEOUT_MS = 30_000  # another process's write transaction is waited for, at most this long
_WRITE_ACTIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_PARTIQL_ACTIONS = {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (tbl TEXT NOT NULL, pk TEXT NOT NULL, sk TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT, PRIMARY KEY (tbl, pk, sk)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_status ON items (tbl, status) WHERE status IS NOT NULL;
CREATE TABLE IF NOT EXISTS partitions (tbl TEXT NOT NULL, pk TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (tbl, pk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_keys (tbl TEXT NOT NULL, idx TEXT NOT NULL, hk TEXT NOT NULL, pk TEXT NOT NULL,
    sk TEXT NOT NULL, PRIMARY KEY (tbl, idx, pk, sk)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS index_keys_hk ON index_keys (tbl, idx, hk);
"""


def _typed_json(value: dict) -> str:
    """A typed key value (``{"S": "RUN#x"}``) as canonical text (binary as base64)."""
    return json.dumps(_encode({"k": value})["k"], sort_keys=True, separators=(",", ":"))


def _untyped(text: str) -> dict:
    return _decode({"k": json.loads(text)})["k"]


class StateDB:
    """The SQLite database of a state folder. ``writable`` False: opened read-only (``mode=ro``), and a folder
    without a database reads as empty (nothing is created). Raises :class:`StateFileError` for a file that is not a
    database, or of a newer layout (nothing is changed)."""

    def __init__(self, folder: Path, *, writable: bool, sync: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.writable = writable
        self.conn: sqlite3.Connection | None = None
        sync = (sync or os.environ.get("STEPCREW_STATE_SYNC") or "normal").strip().lower()
        if sync not in ("normal", "full"):
            raise StateFileError(f"STEPCREW_STATE_SYNC must be 'normal' or 'full', got {sync!r}")
        legacy = self.folder / "table.json"
        if not self.path.exists() and not writable:
            if legacy.exists():
                self._check_legacy(legacy)
            return  # nothing kept yet: reads see an empty table, nothing is created
        if writable:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not self.path.exists() and legacy.exists():
                self._check_legacy(legacy)  # refuse a corrupt/newer file before creating anything
        try:
            uri = f"file:{self.path}?mode={'rwc' if writable else 'ro'}"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > DB_VERSION:
                conn.close()
                raise StateFileError(f"{self.path} was written by a newer stepcrew (state version {version}, this one "
                                     f"reads {DB_VERSION}): upgrade stepcrew or use another STEPCREW_HOME (nothing "
                                     "was changed)")
            if writable:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={sync.upper()}")
                if version == 0:
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version={DB_VERSION}")
            elif version == 0:  # an empty file another process is creating: read as empty
                conn.close()
                return
            self.conn = conn
        except sqlite3.DatabaseError as exc:
            raise StateFileError(f"{self.path} is not a readable stepcrew state database ({exc}): the state folder "
                                 f"{self.folder} looks corrupt; move the file away to start with an empty state "
                                 "(nothing was changed)") from None
        if writable and legacy.exists():
            self._import_legacy(legacy)

    # ------------------------------------------------------------------------------------------ legacy file

    @staticmethod
    def _legacy_items(legacy: Path) -> list[dict]:
        return read_legacy_items(legacy.parent)

    def _check_legacy(self, legacy: Path) -> None:
        self._legacy_items(legacy)  # raises StateFileError for a corrupt or newer file

    def _import_legacy(self, legacy: Path) -> None:
        """Import a state-version-1 ``table.json`` (all items belong to the runtime's default table name, which
        the file did not record: they are stored under table ``*`` and adopted by the first table opened)."""
        items = self._legacy_items(legacy)
        with self.transaction():
            for item in items:
                self.conn.execute("INSERT OR REPLACE INTO items (tbl, pk, sk, body, status) VALUES ('*', ?, ?, ?, ?)",
                                  (json.dumps(item["PK"], sort_keys=True, separators=(",", ":")),
                                   json.dumps(item["SK"], sort_keys=True, separators=(",", ":")) if "SK" in item
                                   else "", json.dumps(item, separators=(",", ":")),
                                   item.get("status", {}).get("S")))
        os.replace(legacy, legacy.with_name("table.json.imported"))
        LOG.info("imported %d items of state version %d from %s", len(items), FILE_VERSION, legacy)

    def adopt_legacy(self, table: str, index_keys: Callable[[dict], list[tuple[str, str]]]) -> None:
        """Give items imported from a ``table.json`` (table ``*``) to ``table``, with their partition versions and
        index keys."""
        if self.conn is None or not self.writable:
            return
        rows = self.conn.execute("SELECT pk, sk, body FROM items WHERE tbl = '*'").fetchall()
        if not rows:
            return
        with self.transaction():
            for pk, sk, body in rows:
                for idx, hk in index_keys(_decode(json.loads(body))):
                    self.conn.execute("INSERT OR REPLACE INTO index_keys VALUES (?, ?, ?, ?, ?)",
                                      (table, idx, hk, pk, sk))
                self.conn.execute("INSERT OR IGNORE INTO partitions VALUES (?, ?, 1)", (table, pk))
            self.conn.execute("UPDATE OR REPLACE items SET tbl = ? WHERE tbl = '*'", (table,))

    # ------------------------------------------------------------------------------------------ access

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an exception): the cross-process write lock."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def version(self, table: str, pk: str) -> int:
        if self.conn is None:
            return 0
        row = self.conn.execute("SELECT version FROM partitions WHERE tbl = ? AND pk = ?", (table, pk)).fetchone()
        return row[0] if row else 0

    def versions(self, table: str) -> dict[str, int]:
        if self.conn is None:
            return {}
        return dict(self.conn.execute("SELECT pk, version FROM partitions WHERE tbl = ?", (table,)).fetchall())

    def rows(self, table: str, pk: str) -> list[dict]:
        if self.conn is None:
            return []
        return [_decode(json.loads(body)) for (body,) in
                self.conn.execute("SELECT body FROM items WHERE tbl = ? AND pk = ?", (table, pk))]

    def index_rows(self, table: str, idx: str, hk: str) -> dict[str, list[dict]]:
        """Items holding index ``idx``'s hash key ``hk``, by partition."""
        out: dict[str, list[dict]] = {}
        if self.conn is None:
            return out
        for pk, body in self.conn.execute(
                "SELECT i.pk, i.body FROM index_keys k JOIN items i ON i.tbl = k.tbl AND i.pk = k.pk AND i.sk = k.sk "
                "WHERE k.tbl = ? AND k.idx = ? AND k.hk = ?", (table, idx, hk)):
            out.setdefault(pk, []).append(_decode(json.loads(body)))
        return out

    def by_status(self, table: str, statuses: Iterable[str]) -> list[dict]:
        """Items whose ``status`` attribute (a string) is one of ``statuses`` (an index: no scan of the table)."""
        statuses = list(statuses)
        if self.conn is None or not statuses:
            return []
        marks = ", ".join("?" for _ in statuses)
        return [_decode(json.loads(body)) for (body,) in self.conn.execute(
            f"SELECT body FROM items WHERE tbl = ? AND status IN ({marks})", (table, *statuses))]

    def count(self, table: str) -> int:
        if self.conn is None:
            return 0
        return self.conn.execute("SELECT COUNT(*) FROM items WHERE tbl = ?", (table,)).fetchone()[0]

    def all_items(self, table: str) -> list[dict]:
        if self.conn is None:
            return []
        return [_decode(json.loads(body)) for (body,) in
                self.conn.execute("SELECT body FROM items WHERE tbl = ? ORDER BY pk, sk", (table,))]

    def put(self, table: str, pk: str, sk: str, item: dict | None, index_keys: list[tuple[str, str]]) -> None:
        """Store (``item``) or delete (None) one item; call inside :meth:`transaction`."""
        self.conn.execute("DELETE FROM index_keys WHERE tbl = ? AND pk = ? AND sk = ?", (table, pk, sk))
        if item is None:
            self.conn.execute("DELETE FROM items WHERE tbl = ? AND pk = ? AND sk = ?", (table, pk, sk))
            return
        status = item.get("status", {}).get("S") if isinstance(item.get("status"), dict) else None
        self.conn.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)",
                          (table, pk, sk, json.dumps(_encode(item), separators=(",", ":")), status))
        for idx, hk in index_keys:
            self.conn.execute("INSERT OR REPLACE INTO index_keys VALUES (?, ?, ?, ?, ?)", (table, idx, hk, pk, sk))

    def bump(self, table: str, pk: str) -> int:
        """Increment the partition's version (call inside :meth:`transaction`); returns the new version."""
        self.conn.execute("INSERT INTO partitions VALUES (?, ?, 1) ON CONFLICT (tbl, pk) DO UPDATE SET "
                          "version = version + 1", (table, pk))
        return self.version(table, pk)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                if self.writable:
                    self.conn.execute("PRAGMA optimize")
            self.conn.close()
            self.conn = None


@dataclass
class _Touch:
    """What one request touches on the journaled table."""

    partitions: set[str] = field(default_factory=set)  # full partitions to bring up to date
    index: list[tuple[str, str]] = field(default_factory=list)  # (index name, hash key json) of GSI queries
    everything: bool = False  # a Scan or PartiQL statement
    writes: list[tuple[str, dict]] = field(default_factory=list)  # (pk json, key attributes) written


@dataclass
class _Loaded:
    version: int
    complete: bool
    index_keys: set[tuple[str, str]] = field(default_factory=set)


class Journal:
    """The durable layer of one emulated table (see the module docstring). :meth:`install` patches moto; use one
    Journal per process at a time (moto's mock is process-wide)."""

    _installed: Journal | None = None

    def __init__(self, db: StateDB, table_name: str) -> None:
        self.db = db
        self.table_name = table_name
        self.loaded: dict[str, _Loaded] = {}
        self._lock = PriorityRLock()  # the dev server's requests go before executions' (local/priority.py)
        self._original: Any = None
        self._table: Any = None
        #: Requests served and partitions loaded (for benchmarks and tests).
        self.stats = {"requests": 0, "writes": 0, "loads": 0, "load_s": 0.0}

    # ------------------------------------------------------------------------------------------ moto patch

    def install(self) -> None:
        from moto.dynamodb.responses import DynamoHandler

        if Journal._installed is not None:
            raise RuntimeError("a durable Journal is already installed in this process")
        original = DynamoHandler.call_action
        journal = self

        def call_action_journaled(handler: Any) -> Any:
            return journal.handle(handler, lambda: original(handler))

        self._original = original
        DynamoHandler.call_action = call_action_journaled
        Journal._installed = self

    def uninstall(self) -> None:
        from moto.dynamodb.responses import DynamoHandler

        if Journal._installed is self:
            DynamoHandler.call_action = self._original
            Journal._installed = None
        self.db.close()

    def adopt(self, backend: Any) -> None:
        """Bind to the moto table (after ``create_table``) and adopt items imported from a legacy file."""
        self._table = backend.get_table(self.table_name)
        self.db.adopt_legacy(self.table_name, self._index_keys)

    # ------------------------------------------------------------------------------------------ keys

    def _index_keys(self, item: dict) -> list[tuple[str, str]]:
        out = []
        for index in self._table.global_indexes:
            hash_attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
            if hash_attr in item:
                out.append((index.name, _typed_json(item[hash_attr])))
        return out

    def _key_of(self, attrs: dict) -> tuple[str, dict] | None:
        table = self._table
        if table.hash_key_attr not in attrs:
            return None
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr:
            if table.range_key_attr not in attrs:
                return None
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return _typed_json(key[table.hash_key_attr]), key

    def _touch(self, action: str, params: dict) -> _Touch | None:
        """What ``action`` touches on our table, or None if it does not concern it."""
        name = self.table_name
        touch = _Touch()

        def add(attrs: dict, write: bool) -> None:
            found = self._key_of(attrs or {})
            if found is None:
                touch.everything = True  # a malformed key: moto will refuse it; be safe
                return
            touch.partitions.add(found[0])
            if write:
                touch.writes.append(found)

        if action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            if params.get("TableName") != name:
                return None
            add(params.get("Item") if action == "PutItem" else params.get("Key"), action != "GetItem")
        elif action in ("BatchGetItem", "BatchWriteItem"):
            requests = (params.get("RequestItems") or {}).get(name)
            if requests is None:
                return None
            if action == "BatchGetItem":
                for key in requests.get("Keys", []):
                    add(key, False)
            else:
                for request in requests:
                    if "PutRequest" in request:
                        add(request["PutRequest"].get("Item"), True)
                    elif "DeleteRequest" in request:
                        add(request["DeleteRequest"].get("Key"), True)
        elif action in ("TransactWriteItems", "TransactGetItems"):
            mine = False
            for entry in params.get("TransactItems", []):
                for kind, body in entry.items():
                    if body.get("TableName") != name:
                        continue
                    mine = True
                    add(body.get("Item") if kind == "Put" else body.get("Key"), kind in ("Put", "Update", "Delete"))
            if not mine:
                return None
        elif action == "Query":
            if params.get("TableName") != name:
                return None
            self._query_touch(params, touch)
        elif action == "Scan":
            if params.get("TableName") != name:
                return None
            touch.everything = True
        elif action in _PARTIQL_ACTIONS:
            touch.everything = True
        else:
            return None
        return touch

    def _query_touch(self, params: dict, touch: _Touch) -> None:
        from moto.dynamodb.parsing.key_condition_expression import parse_expression

        table, index_name = self._table, params.get("IndexName")
        if index_name:
            index = next((i for i in table.global_indexes if i.name == index_name), None)
            if index is None:  # an LSI or an unknown index: partitions are those of the base table
                touch.everything = True
                return
            schema = index.schema
        else:
            schema = table.schema
        hash_attr = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
        value = None
        try:
            if params.get("KeyConditionExpression"):
                hash_conditions, _, _ = parse_expression(params["KeyConditionExpression"],
                                                         params.get("ExpressionAttributeValues") or {},
                                                         params.get("ExpressionAttributeNames") or {}, schema)
                value = dict(hash_conditions).get(hash_attr)
            elif params.get("KeyConditions"):
                value = params["KeyConditions"][hash_attr]["AttributeValueList"][0]
        except Exception:  # noqa: BLE001 - moto refuses the request itself; make sure it sees every item
            value = None
        if value is None:
            touch.everything = True
        elif index_name:
            touch.index.append((index_name, _typed_json(value)))
        else:
            touch.partitions.add(_typed_json(value))

    # ------------------------------------------------------------------------------------------ loading

    def _install_items(self, pk: str, items: list[dict], replace: bool) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType, Item

        table = self._table
        hash_value = DynamoType(_untyped(pk))
        if replace:
            table.items.pop(hash_value, None)
        for attrs in items:
            range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
            item = Item(hash_value, range_value, attrs)
            if range_value is not None:
                table.items[hash_value][range_value] = item
            else:
                table.items[hash_value] = item

    def _bring_partition(self, pk: str, version: int | None = None) -> None:
        version = self.db.version(self.table_name, pk) if version is None else version
        state = self.loaded.get(pk)
        if state is not None and state.complete and state.version == version:
            return
        started = time.perf_counter()
        self._install_items(pk, self.db.rows(self.table_name, pk), replace=True)
        self.loaded[pk] = _Loaded(version, True)
        self.stats["loads"] += 1
        self.stats["load_s"] += time.perf_counter() - started

    def _bring_index(self, idx: str, hk: str) -> None:
        """Make moto's answer to a GSI query on (``idx``, ``hk``) current: partitions moto holds in full are
        reloaded when stale; of the others only the items holding that index key are loaded (a partition loaded
        in part is loaded in full before any base-table request touches it)."""
        rows = self.db.index_rows(self.table_name, idx, hk)
        versions = self.db.versions(self.table_name)
        concerned = set(rows) | {pk for pk, s in self.loaded.items() if s.complete or (idx, hk) in s.index_keys}
        for pk in concerned:
            version = versions.get(pk, 0)
            state = self.loaded.get(pk)
            if state is not None and state.complete:
                self._bring_partition(pk, version)
                continue
            if state is not None and state.version != version:
                self._drop(pk)
                state = None
            if pk in rows and (state is None or (idx, hk) not in state.index_keys):
                self._install_items(pk, rows[pk], replace=False)
                self.loaded[pk] = _Loaded(version, False, (state.index_keys if state else set()) | {(idx, hk)})
                self.stats["loads"] += 1

    def _drop(self, pk: str) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        self._table.items.pop(DynamoType(_untyped(pk)), None)
        self.loaded.pop(pk, None)

    def _bring(self, touch: _Touch) -> None:
        if touch.everything:
            versions = self.db.versions(self.table_name)
            for pk, version in versions.items():
                self._bring_partition(pk, version)
            for pk in [pk for pk in self.loaded if pk not in versions]:  # deleted by another process
                self._drop(pk)
            return
        for pk in touch.partitions:
            self._bring_partition(pk)
        for idx, hk in touch.index:
            self._bring_index(idx, hk)

    # ------------------------------------------------------------------------------------------ requests

    def handle(self, handler: Any, call: Callable[[], Any]) -> Any:
        """Serve one moto DynamoDB request durably (see the module docstring)."""
        if self._table is None:
            return call()
        try:
            action = handler._get_action()
            params = getattr(handler, "params", None) or {}
            touch = self._touch(action, params)
        except Exception:  # noqa: BLE001 - not ours to judge: moto answers the request itself
            touch = None
        if touch is None:
            return call()
        writes = self.db.writable and (bool(touch.writes) or action in _PARTIQL_ACTIONS)
        with self._lock:
            self.stats["requests"] += 1
            if not writes:
                self._bring(touch)
                return call()
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")  # the cross-process write lock, held from the freshness check on
            try:
                self._bring(touch)
                result = call()
                if result[0] == 200:
                    self._journal(touch, everything=action in _PARTIQL_ACTIONS)
            except BaseException:
                conn.execute("ROLLBACK")
                for pk in touch.partitions:  # moto may hold what SQLite does not: reload at the next touch
                    self.loaded.pop(pk, None)
                if touch.everything or touch.index:
                    self.loaded.clear()
                raise
            if result[0] == 200:
                conn.execute("COMMIT")
                self.stats["writes"] += 1
            else:  # refused (a failed condition, a validation error): moto changed nothing, nor do we
                conn.execute("ROLLBACK")
            return result

    def _journal(self, touch: _Touch, everything: bool) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        table, name = self._table, self.table_name
        if everything:
            written = {}
            for hash_value, partition in table.items.items():
                items = partition.values() if table.range_key_attr else [partition]
                for item in items:
                    attrs = item.to_json()["Attributes"]
                    written.setdefault(_typed_json(attrs[table.hash_key_attr]), []).append(attrs)
            for pk in set(written) | set(self.db.versions(name)):
                self.db.conn.execute("DELETE FROM items WHERE tbl = ? AND pk = ?", (name, pk))
                self.db.conn.execute("DELETE FROM index_keys WHERE tbl = ? AND pk = ?", (name, pk))
                for attrs in written.get(pk, []):
                    self.db.put(name, pk, self._sk(attrs), attrs, self._index_keys(attrs))
                self.loaded[pk] = _Loaded(self.db.bump(name, pk), True)
            return
        changed: set[str] = set()
        for pk, key in touch.writes:
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            item = table.get_item(hash_value, range_value)
            attrs = item.to_json()["Attributes"] if item is not None else None
            self.db.put(name, pk, self._sk(key), attrs, self._index_keys(attrs) if attrs else [])
            changed.add(pk)
        for pk in changed:
            version = self.db.bump(name, pk)
            state = self.loaded.get(pk)
            self.loaded[pk] = _Loaded(version, state.complete if state else True,
                                      state.index_keys if state else set())

    def _sk(self, attrs: dict) -> str:
        range_attr = self._table.range_key_attr
        return _typed_json(attrs[range_attr]) if range_attr else ""
