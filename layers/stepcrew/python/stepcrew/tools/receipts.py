"""Exactly-once side effects: an idempotency receipt per tool call, written before the effect and completed after.

A tool with a real side effect (an export, a notification) runs its effect through :func:`exactly_once`. The
receipt's key is the call's identity: run, sub-task and tool-call id (``RECEIPT#<run_id>`` / ``<subtask>#<call>`` in
the run table: its own partition prefix, so an operations tool's role can be held to ``RECEIPT#*`` keys with the
``dynamodb:LeadingKeys`` condition, like the tool cache's ``CACHE#*``), so every way the same call can come back — a Lambda retried by the ASL ``Retry``, a redriven or
resumed run, a Map iteration replayed — finds it:

1. ``begin``: a conditional put (``attribute_not_exists``) of a PENDING receipt with the tenant, the tool and the
   SHA-256 of the arguments. It either creates the receipt (go on to the effect) or returns the receipt that exists.
2. the effect;
3. ``complete``: PENDING -> DONE with the effect's small result (conditional on PENDING).

What an existing receipt means:

- DONE: the effect happened; its stored result is returned with ``replayed: true`` and nothing is done again.
- PENDING: an earlier attempt died between 1 and 3 (Lambda timeout, out of memory, a kill): the effect may or may
  not have happened. An effect that can check itself and whose repeat is harmless (``verify``: e.g. the export,
  which writes one fixed key with content of a known SHA-256, so two attempts racing write the same object) is
  completed from that check or done once more if it never happened; any other effect (a notification) is **never**
  repeated: the call fails with ``OperationInDoubt`` (a person decides), because at-most-once is the only honest
  guarantee left.
- another tenant's, or the same call id with other arguments: refused (``Forbidden`` / ``ReceiptConflict``), nothing
  done.

Why not Powertools' idempotency utility: it re-runs a call whose INPROGRESS record has expired (its DynamoDB
persistence layer's condition accepts ``in_progress_expiration < now``, set from the Lambda's remaining time), which
is exactly the crash-after-the-effect case this module must never repeat.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.models import ToolCall, ToolContext, utcnow
from stepcrew.tools.errors import ToolFailure

#: The largest result a receipt keeps (bytes of its JSON): receipts hold a summary (keys, sizes, ids), never data.
RESULT_MAX_BYTES = 4096


class OperationInDoubt(ToolFailure):
    """An earlier attempt of this very call started its side effect and never recorded the end: it is not repeated."""

    type = "OperationInDoubt"


class ReceiptConflict(ToolFailure):
    """The call id already has a receipt for other arguments or another tool."""

    type = "ReceiptConflict"


class ReceiptForbidden(ToolFailure):
    """The receipt of this call id belongs to another tenant (answered like any refusal: nothing done)."""

    type = "Forbidden"


class Receipt(BaseModel):
    """One call's receipt (``RECEIPT#<run_id>`` / ``<subtask_id>#<call_id>``)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    subtask_id: str
    call_id: str
    tenant: str
    tool: str
    arguments_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    status: Literal["PENDING", "DONE"] = "PENDING"
    result: dict[str, Any] | None = None
    started_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None

    @property
    def sort_key(self) -> str:
        return receipt_sk(self.subtask_id, self.call_id)


def receipt_pk(run_id: str) -> str:
    """Partition key of a run's receipts: ``RECEIPT#<run_id>``."""
    return f"RECEIPT#{run_id}"


def receipt_sk(subtask_id: str, call_id: str) -> str:
    """Sort key of one call's receipt: ``<subtask_id>#<call_id>``."""
    return f"{subtask_id}#{call_id}"


def arguments_sha256(arguments: dict[str, Any]) -> str:
    """SHA-256 (hex) of the arguments as canonical JSON (sorted keys, no spaces)."""
    blob = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ReceiptStore(ABC):
    """The receipts port."""

    @abstractmethod
    def begin(self, receipt: Receipt) -> Receipt | None:
        """Create ``receipt`` (PENDING) unless one exists for its key: None when created, else the existing one."""

    @abstractmethod
    def complete(self, run_id: str, subtask_id: str, call_id: str, result: dict[str, Any]) -> None:
        """PENDING -> DONE with ``result`` (at most RESULT_MAX_BYTES of JSON). A receipt already DONE is left as it
        is (an earlier attempt completed it)."""


class MemoryReceiptStore(ReceiptStore):
    """In-process receipts (tests, the rule-engine benches)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Receipt] = {}
        self._lock = threading.Lock()

    def begin(self, receipt: Receipt) -> Receipt | None:
        with self._lock:
            key = (receipt.run_id, receipt.sort_key)
            if key in self.items:
                return self.items[key].model_copy(deep=True)
            self.items[key] = receipt.model_copy(deep=True)
            return None

    def complete(self, run_id: str, subtask_id: str, call_id: str, result: dict[str, Any]) -> None:
        _check_result(result)
        with self._lock:
            key = (run_id, receipt_sk(subtask_id, call_id))
            current = self.items.get(key)
            if current is None:
                raise KeyError(f"no receipt {key}")
            if current.status == "PENDING":
                self.items[key] = current.model_copy(update={"status": "DONE", "result": result,
                                                             "completed_at": utcnow()})


class DynamoReceiptStore(ReceiptStore):
    """Receipts in the run table (``client``: a boto3 DynamoDB client built once per cold start). Deployed, an
    operations tool's role may ``PutItem``/``GetItem`` only items whose partition key begins with ``RECEIPT#``."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client, self.table = client, table_name

    def _key(self, run_id: str, sk: str) -> dict[str, Any]:
        from stepcrew.store import schema as s

        return {s.PK: {"S": receipt_pk(run_id)}, s.SK: {"S": sk}}

    def begin(self, receipt: Receipt) -> Receipt | None:
        body = receipt.model_dump_json()
        try:
            self.client.put_item(TableName=self.table,
                                 Item={**self._key(receipt.run_id, receipt.sort_key), "body": {"S": body}},
                                 ConditionExpression="attribute_not_exists(PK)")
            return None
        except self.client.exceptions.ConditionalCheckFailedException:
            item = self.client.get_item(TableName=self.table, Key=self._key(receipt.run_id, receipt.sort_key),
                                        ConsistentRead=True).get("Item")
            if item is None:  # deleted in between (never by stepcrew): treat as taken, never as free
                raise OperationInDoubt("the receipt of this call vanished while it was read: not repeated") from None
            return Receipt.model_validate_json(item["body"]["S"])

    def complete(self, run_id: str, subtask_id: str, call_id: str, result: dict[str, Any]) -> None:
        _check_result(result)
        key = self._key(run_id, receipt_sk(subtask_id, call_id))
        item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        if item is None:
            raise KeyError(f"no receipt {run_id}/{subtask_id}/{call_id}")
        current = Receipt.model_validate_json(item["body"]["S"])
        if current.status == "DONE":
            return
        done = current.model_copy(update={"status": "DONE", "result": result, "completed_at": utcnow()})
        try:
            self.client.put_item(TableName=self.table, Item={**key, "body": {"S": done.model_dump_json()}},
                                 ConditionExpression="#b = :pending",
                                 ExpressionAttributeNames={"#b": "body"},
                                 ExpressionAttributeValues={":pending": item["body"]})
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # completed by another attempt meanwhile: its result stands


def _check_result(result: dict[str, Any]) -> None:
    size = len(json.dumps(result, ensure_ascii=False).encode())
    if size > RESULT_MAX_BYTES:
        raise ValueError(f"a receipt keeps at most {RESULT_MAX_BYTES} bytes of result, got {size}")


def exactly_once(store: ReceiptStore, ctx: ToolContext, call: ToolCall, effect: Callable[[], dict[str, Any]], *,
                 verify: Callable[[], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Run ``effect`` (returns a small JSON-able result) at most once for this call (see the module docstring), and
    exactly once unless an earlier attempt died inside it and ``verify`` cannot tell. ``verify()``: the effect's
    result if it is observably done, else None (it did not happen: it is done now). Returns the effect's result, with
    ``replayed: true`` when it was an earlier attempt's. Raises OperationInDoubt, ReceiptConflict, ReceiptForbidden
    (ToolFailures the model reads)."""
    tenant = ctx.tenant or "default"
    receipt = Receipt(run_id=ctx.run_id, subtask_id=ctx.subtask_id, call_id=call.call_id, tenant=tenant,
                      tool=call.name, arguments_sha256=arguments_sha256(call.arguments))
    existing = store.begin(receipt)
    if existing is not None:
        if existing.tenant != tenant:
            raise ReceiptForbidden("this call id is not this run's")
        if (existing.tool, existing.arguments_sha256) != (receipt.tool, receipt.arguments_sha256):
            raise ReceiptConflict(f"call {call.call_id} was already made with other arguments or another tool: use a "
                                  "new call")
        if existing.status == "DONE":
            return {**(existing.result or {}), "replayed": True}
        seen = verify() if verify is not None else None
        if seen is not None:
            store.complete(ctx.run_id, ctx.subtask_id, call.call_id, seen)
            return {**seen, "replayed": True}
        if verify is None:
            raise OperationInDoubt(f"an earlier attempt of call {call.call_id} started this {call.name} and did not "
                                   f"record its end (started {existing.started_at.isoformat()}): it is not repeated; "
                                   "a person must check whether it happened")
    result = effect()
    store.complete(ctx.run_id, ctx.subtask_id, call.call_id, result)
    return result
