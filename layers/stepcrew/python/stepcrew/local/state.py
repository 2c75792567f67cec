"""Persistence of the emulated DynamoDB table between processes, so ``stepcrew runs list/show`` work later.

One file, ``<folder>/table.json``: ``{"version": 1, "items": [<item in DynamoDB JSON>...]}`` (binary values as
base64 text). Writes are atomic (temporary file + ``os.replace``) under an exclusive ``fcntl`` lock on
``<folder>/table.lock``; reads take a shared lock. :meth:`LocalState.save` merges by partition: it re-reads the
file and replaces only the partitions (hash-key values) this process changed, so two processes running
different runs keep each other's runs. POSIX only (``fcntl``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

FILE_VERSION = 1
_BATCH = 25  # BatchWriteItem takes at most 25 items


def default_state_dir() -> Path:
    """``$STEPCREW_HOME/state``, else ``~/.stepcrew/state`` (not created here)."""
    home = os.environ.get("STEPCREW_HOME")
    return (Path(home) if home else Path.home() / ".stepcrew") / "state"


def _map_value(typed: dict, convert: Any) -> dict:
    """One typed DynamoDB JSON value (``{"<tag>": ...}``) with ``convert`` applied to its binary parts. Only the type
    tag decides: inside ``M`` the keys are attribute names (user data such as run ``inputs``), so a key literally
    named ``B`` is never mistaken for a binary value."""
    ((tag, inner),) = typed.items()
    if tag == "B":
        return {tag: convert(inner)}
    if tag == "BS":
        return {tag: [convert(b) for b in inner]}
    if tag == "M":
        return {tag: _map_binary(inner, convert)}
    if tag == "L":
        return {tag: [_map_value(v, convert) for v in inner]}
    return typed


def _map_binary(item: dict, convert: Any) -> dict:
    """An item (attribute name -> typed value) with ``convert`` applied to every binary value (``B``, ``BS``)."""
    return {name: _map_value(typed, convert) for name, typed in item.items()}


def _encode(value: Any) -> Any:
    """DynamoDB JSON from boto3 (bytes for B/BS) -> JSON-safe (base64 text)."""
    return _map_binary(value, lambda b: base64.b64encode(b).decode())


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode`."""
    return _map_binary(value, base64.b64decode)


def _canonical(item: dict) -> str:
    return json.dumps(item, sort_keys=True)


class StateFileError(ValueError):
    """The state file cannot be read (corrupt, or written by another version of stepcrew). The message names the
    file and what to do; nothing is overwritten (the runtime does not save after a failed restore)."""


class LocalState:
    """The saved copy of one emulated table in ``folder`` (created on first save).

    ``restore`` remembers what it loaded, so :meth:`save_changed` can tell which partitions this process
    wrote, changed or emptied since."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "table.json"
        self._lock_path = self.folder / "table.lock"
        self._baseline: dict[str, set[str]] = {}  # partition -> canonical encoded items at restore/save

    # ------------------------------------------------------------------------------------------ file access

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[dict]:
        """Items in the file (encoded), [] if there is no file. Raises ValueError for a file of another
        format."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise StateFileError(f"{self.path} is not valid JSON ({type(exc).__name__}): the state folder "
                                 f"{self.folder} looks corrupt; move the file away to start with an empty state "
                                 "(nothing was changed)") from None
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > FILE_VERSION:
            raise StateFileError(f"{self.path} was written by a newer stepcrew (state version {version}, this one "
                                 f"reads {FILE_VERSION}): upgrade stepcrew or use another STEPCREW_HOME (nothing "
                                 "was changed)")
        if not isinstance(data, dict) or version != FILE_VERSION or not isinstance(data.get("items"), list):
            raise StateFileError(f"{self.path}: not a stepcrew state file of version {FILE_VERSION} (nothing was "
                                 "changed)")
        return data["items"]

    def _write(self, items: list[dict]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".table-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": FILE_VERSION, "items": items}, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    # ------------------------------------------------------------------------------------------ table access

    @staticmethod
    def _hash_key(client: Any, table_name: str) -> str:
        schema = client.describe_table(TableName=table_name)["Table"]["KeySchema"]
        return next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")

    @staticmethod
    def _scan(client: Any, table_name: str) -> list[dict]:
        pages = client.get_paginator("scan").paginate(TableName=table_name)
        return [_encode(item) for page in pages for item in page.get("Items", [])]

    @staticmethod
    def _partition(item: dict, hash_key: str) -> str:
        value = item[hash_key]
        return next(iter(value.values())) if isinstance(value, dict) else str(value)

    def _by_partition(self, items: list[dict], hash_key: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for item in items:
            out.setdefault(self._partition(item, hash_key), set()).add(_canonical(item))
        return out

    # ------------------------------------------------------------------------------------------ public API

    def restore(self, client: Any, table_name: str) -> int:
        """Load the saved items into ``table_name`` (a low-level boto3 ``dynamodb`` client; the table exists,
        usually empty) and remember them as the baseline. Returns the number of items loaded (0 if there is no
        file). Raises ValueError for an unreadable file."""
        with self._locked(exclusive=False):
            items = self._read()
        hash_key = self._hash_key(client, table_name)
        for start in range(0, len(items), _BATCH):
            requests = [{"PutRequest": {"Item": _decode(item)}} for item in items[start:start + _BATCH]]
            pending: dict[str, Any] = {table_name: requests}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        # The baseline is what the table holds now (not the file text): moto may normalise values (numbers,
        # sets), and a false "changed" would overwrite a newer copy of that partition saved by another process.
        self._baseline = self._by_partition(self._scan(client, table_name), hash_key)
        LOG.debug("restored %d items from %s", len(items), self.path)
        return len(items)

    def save(self, client: Any, table_name: str, partitions: set[str] | None = None) -> int:
        """Write the table to the file. ``partitions`` None: the file becomes exactly the table. Otherwise the
        file is re-read under the lock and only those partitions are replaced by the table's items (a
        partition now empty is dropped), keeping every other process's partitions. Returns the number of items
        in the file."""
        hash_key = self._hash_key(client, table_name)
        current = self._scan(client, table_name)
        return self._save(current, self._by_partition(current, hash_key), hash_key, partitions)

    def save_changed(self, client: Any, table_name: str) -> int:
        """:meth:`save` of the partitions (hash-key values) whose items differ from the baseline: written,
        changed or deleted since :meth:`restore` / the last save. One scan of the table. Returns the number of
        items in the file."""
        hash_key = self._hash_key(client, table_name)
        current = self._scan(client, table_name)
        now = self._by_partition(current, hash_key)
        changed = {pk for pk in now.keys() | self._baseline.keys() if now.get(pk) != self._baseline.get(pk)}
        return self._save(current, now, hash_key, changed)

    def _save(self, current: list[dict], saved: dict[str, set[str]], hash_key: str,
              partitions: set[str] | None) -> int:
        with self._locked(exclusive=True):
            if partitions is None:
                merged = current
            else:
                kept = [item for item in self._read() if self._partition(item, hash_key) not in partitions]
                merged = kept + [item for item in current if self._partition(item, hash_key) in partitions]
            self._write(merged)
        for pk in (saved.keys() | self._baseline.keys()) if partitions is None else partitions:
            if pk in saved:
                self._baseline[pk] = saved[pk]
            else:
                self._baseline.pop(pk, None)
        LOG.debug("saved %d items to %s", len(merged), self.path)
        return len(merged)
