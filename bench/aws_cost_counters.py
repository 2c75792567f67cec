"""Counting rules of ``bench/aws_cost.py``: DynamoDB item sizes and request units, Step Functions transitions and the
Lambda invocations of an execution history, and a meter that applies the DynamoDB rules to every call of the boto3
clients of a session. Pure functions except :class:`DynamoMeter`.

DynamoDB (on-demand). Sources:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html (item size),
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html (request units),
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes (index
writes), https://aws.amazon.com/dynamodb/pricing/on-demand/ (request units, transactional x2).

- Item size (bytes) = sum over attributes of UTF-8 bytes of the name + size of the value: S = UTF-8 bytes; N =
  1 byte per 2 significant digits (rounded up) + 1 (approximate, as the docs say); B = raw bytes; BOOL/NULL = 1;
  L/M = 3 + sum of elements + 1 per element (a map element counts its key name); SS/NS/BS = sum of the elements.
- WRU = ceil(bytes / 1024) per item written: PutItem and UpdateItem take the larger of the item before and after,
  DeleteItem the deleted item; a write whose condition fails still consumes ceil(existing item / 1 KB), at least 1
  (no index write). Each GSI the write touches costs its own write of its index entry (table key + index key +
  projected attributes): an entry added or removed = 1 write of that entry; an entry whose index key changed = a delete
  plus a put; an entry whose projected attributes changed = 1 write (larger of before/after); untouched = none.
  Transactional writes (TransactWriteItems, ConditionCheck included) count x2.
- RRU = ceil(bytes / 4096) per read, at least 1; x0.5 when eventually consistent (every GSI read), x2 transactional.
  GetItem / BatchGetItem: per item (an item not found still costs the minimum); Query / Scan: the sizes of every item
  the page evaluated (before any FilterExpression, the whole item whatever the ProjectionExpression) summed, then
  rounded up once per call.

Step Functions (Standard). Source: https://aws.amazon.com/step-functions/pricing/ ("Step Functions counts a state
transition each time a step of your workflow is executed ... including retries"; "each retry will be charged as an
additional state transition"). Rule applied to a history: one transition per ``*StateEntered`` event (every state
entered, in Map iterations and Parallel branches too), plus one per retry = every ``TaskScheduled`` of a Task entry
after its first.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096


# ------------------------------------------------------------------------------------------------ item size
def number_size(text: str) -> int:
    """Bytes of a DynamoDB number given as its wire string: ceil(significant digits / 2) + 1 (leading and trailing
    zeros trimmed; 0 has one digit)."""
    digits = Decimal(text).normalize().as_tuple().digits
    return math.ceil(max(1, len(digits)) / 2) + 1


def _raw_len(value: Any) -> int:
    if isinstance(value, str):  # a base64 text (never what boto3 hands back, but accept it)
        import base64

        return len(base64.b64decode(value))
    return len(getattr(value, "value", value))  # bytes, bytearray or boto3's Binary


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one AttributeValue in wire shape (``{"S": "x"}``, ``{"M": {...}}``...), its name not included."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return _raw_len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode("utf-8")) for x in v)
    if kind == "NS":
        return sum(number_size(x) for x in v)
    if kind == "BS":
        return sum(_raw_len(x) for x in v)
    if kind == "L":
        return 3 + sum(value_size(x) + 1 for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(x) + 1 for k, x in v.items())
    raise ValueError(f"unknown AttributeValue type {kind!r}")


def item_size(item: dict[str, dict[str, Any]] | None) -> int:
    """Bytes of an item in wire shape (attribute name -> AttributeValue) as DynamoDB counts them; 0 for None."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())


def wru(size: int) -> int:
    """Write request units of one item write of ``size`` bytes (at least 1)."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def rru(total_size: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read request units of one read of ``total_size`` bytes (a GetItem's item, or the sum over a Query page)."""
    units = max(1, math.ceil(total_size / READ_UNIT_BYTES))
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


# ------------------------------------------------------------------------------------------------ index writes
@dataclass(frozen=True)
class Gsi:
    """A global secondary index: its key attributes, projection (ALL, KEYS_ONLY or INCLUDE) and INCLUDE list."""

    name: str
    keys: tuple[str, ...]
    projection: str = "ALL"
    non_key: tuple[str, ...] = ()

    @classmethod
    def from_cfn(cls, spec: dict[str, Any]) -> Gsi:
        """From a CloudFormation / DescribeTable ``GlobalSecondaryIndexes`` element."""
        proj = spec.get("Projection", {})
        return cls(name=spec["IndexName"], keys=tuple(k["AttributeName"] for k in spec["KeySchema"]),
                   projection=proj.get("ProjectionType", "ALL"), non_key=tuple(proj.get("NonKeyAttributes", ())))

    def entry(self, item: dict[str, Any] | None, table_keys: tuple[str, ...]) -> dict[str, Any] | None:
        """The index entry of ``item`` (None when the item lacks an index key: a sparse index holds no entry)."""
        if not item or any(k not in item for k in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        wanted = set(self.keys) | set(table_keys) | (set(self.non_key) if self.projection == "INCLUDE" else set())
        return {k: v for k, v in item.items() if k in wanted}


def index_write_units(old: dict | None, new: dict | None, gsi: Gsi, table_keys: tuple[str, ...]) -> int:
    """WRU the index ``gsi`` consumes for a table write that turned ``old`` into ``new`` (None = no item)."""
    before, after = gsi.entry(old, table_keys), gsi.entry(new, table_keys)
    if before is None and after is None:
        return 0
    if before is None:
        return wru(item_size(after))
    if after is None:
        return wru(item_size(before))
    if any(before[k] != after[k] for k in gsi.keys):
        return wru(item_size(before)) + wru(item_size(after))
    if before != after:
        return wru(max(item_size(before), item_size(after)))
    return 0


def write_units(old: dict | None, new: dict | None, *, table_keys: tuple[str, ...], gsis: Iterable[Gsi] = (),
                condition_failed: bool = False, transactional: bool = False) -> dict[str, int]:
    """WRU of one item write by target (``"table"`` and each index name touched). ``old``/``new``: the item before
    and after (None = absent). A failed condition costs the existing item's size on the table only."""
    factor = 2 if transactional else 1
    if condition_failed:
        return {"table": factor * wru(item_size(old))}
    units = {"table": factor * wru(max(item_size(old), item_size(new)))}
    for gsi in gsis:
        n = index_write_units(old, new, gsi, table_keys)
        if n:
            units[gsi.name] = factor * n
    return units


# ------------------------------------------------------------------------------------------------ histories
def transitions(events: list[dict[str, Any]]) -> tuple[int, int]:
    """(states entered, retries) of one execution history (boto3 ``get_execution_history`` events). A retry is a
    ``TaskScheduled`` whose Task entry (found through ``previousEventId``) already scheduled once. Billed
    transitions = the sum."""
    by_id = {e["id"]: e for e in events}
    entered = sum(1 for e in events if e["type"].endswith("StateEntered"))
    scheduled: dict[int, int] = {}
    for e in events:
        if e["type"] != "TaskScheduled":
            continue
        prev, seen = e.get("previousEventId"), 0
        while prev in by_id and by_id[prev]["type"] != "TaskStateEntered" and seen < len(events):
            prev, seen = by_id[prev].get("previousEventId"), seen + 1
        key = prev if prev in by_id else -e["id"]  # no entry found: count it as a first attempt
        scheduled[key] = scheduled.get(key, 0) + 1
    return entered, sum(n - 1 for n in scheduled.values())


def lambda_invocations(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(function name, payload) of every Lambda invocation an execution history schedules (``lambda:invoke``,
    ``.waitForTaskToken`` and the bare function-ARN form), retries included, in history order. The name is the
    function's (the ARN's ``function:<name>`` part)."""
    out = []
    for e in events:
        details = e.get("taskScheduledEventDetails")
        if e["type"] != "TaskScheduled" or not details or details.get("resourceType") != "lambda":
            continue
        params = json.loads(details.get("parameters") or "{}")
        fn = str(params.get("FunctionName", details.get("resource", "")))
        name = fn.split(":")[6] if fn.startswith("arn:") else fn.split(":")[0]
        out.append((name, params.get("Payload", params.get("Input"))))
    return out


def children_started(events: list[dict[str, Any]]) -> int:
    """``states:startExecution`` tasks an execution history scheduled (child executions it started)."""
    return sum(1 for e in events if e["type"] == "TaskScheduled"
               and (e.get("taskScheduledEventDetails") or {}).get("resourceType") == "states"
               and (e["taskScheduledEventDetails"].get("resource") or "").startswith("startExecution"))


# ------------------------------------------------------------------------------------------------ the meter
#: Seconds each thread spent in the meter (its own shadow reads): callers timing work subtract it.
METER_TIME = threading.local()


def meter_seconds() -> float:
    """Seconds the calling thread has spent in :class:`DynamoMeter` handlers so far."""
    return getattr(METER_TIME, "s", 0.0)


def _timed(fn: Any) -> Any:
    def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            METER_TIME.s = meter_seconds() + time.perf_counter() - t0
    return wrapper


_READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class DynamoTally:
    """Request units and calls by operation (floats: eventually consistent reads cost halves)."""

    wru: float = 0.0
    rru: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    wru_by_target: dict[str, float] = field(default_factory=dict)
    units_by_op: dict[str, float] = field(default_factory=dict)  # WRU or RRU by operation
    largest_item: int = 0  # bytes of the largest item written


class DynamoMeter:
    """Counts WRU/RRU of every DynamoDB data call made by clients of one boto3 session (created after
    :meth:`install`): botocore's ``before-parameter-build`` reads the request, ``after-call`` the outcome. Item sizes
    come from the items themselves, read before and after each write (and the whole items of each read) through a
    separate, unmetered client of another session (``shadow``), so they are the stored items, not the request.

    ``schema(table_name) -> (table key attribute names, [Gsi])``. Not exact under concurrent writes to the same item
    (the before/after reads are not atomic with the write)."""

    def __init__(self, shadow: Any, schema: Any) -> None:
        self.shadow, self.schema = shadow, schema
        self.tally = DynamoTally()
        self._lock = threading.Lock()

    def install(self, session: Any) -> None:
        """Register on a boto3 (or botocore) session's event system."""
        events = getattr(session, "events", None) or session.get_component("event_emitter")
        events.register("before-parameter-build.dynamodb", self._before)
        events.register("after-call.dynamodb", self._after)

    # -- helpers
    def _get(self, table: str, key: dict) -> dict | None:
        return self.shadow.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    @staticmethod
    def _key_of(item: dict, keys: tuple[str, ...]) -> dict:
        return {k: item[k] for k in keys if k in item}

    def _add(self, op: str, wru_units: dict[str, int] | None = None, rru_units: float = 0.0) -> None:
        with self._lock:
            spent = sum((wru_units or {}).values()) + rru_units
            self.tally.units_by_op[op] = self.tally.units_by_op.get(op, 0) + spent
            if wru_units:
                for target, n in wru_units.items():
                    self.tally.wru += n
                    self.tally.wru_by_target[target] = self.tally.wru_by_target.get(target, 0) + n
            self.tally.rru += rru_units

    # -- events
    @_timed
    def _before(self, params: dict, model: Any, context: dict, **_: Any) -> None:
        op = model.name
        if op not in _READS | _WRITES:
            return
        with self._lock:
            self.tally.calls[op] = self.tally.calls.get(op, 0) + 1
        writes: list[tuple[str, dict, bool]] = []  # (table, key, transactional)
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            keys, _ = self.schema(params["TableName"])
            source = params["Item"] if op == "PutItem" else params["Key"]
            writes.append((params["TableName"], self._key_of(source, keys), False))
        elif op == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                keys, _ = self.schema(table)
                for r in requests:
                    src = r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"]
                    writes.append((table, self._key_of(src, keys), False))
        elif op == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, body),) = action.items()
                keys, _ = self.schema(body["TableName"])
                src = body["Item"] if kind == "Put" else body["Key"]
                writes.append((body["TableName"], self._key_of(src, keys), True))
        context["aws_cost_writes"] = [(t, k, tx, self._get(t, k)) for t, k, tx in writes]
        context["aws_cost_params"] = params

    @_timed
    def _after(self, http_response: Any, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        op = model.name
        params = context.pop("aws_cost_params", None)
        if params is None:
            return
        failed = parsed.get("Error", {}).get("Code") if isinstance(parsed.get("Error"), dict) else None
        if op in _WRITES:
            cancelled = failed in ("ConditionalCheckFailedException", "TransactionCanceledException")
            for table, key, tx, old in context.pop("aws_cost_writes", []):
                keys, gsis = self.schema(table)
                if failed and not cancelled:
                    continue  # rejected before the write (validation, throttling): nothing consumed
                new = old if cancelled else self._get(table, key)
                with self._lock:
                    self.tally.largest_item = max(self.tally.largest_item, item_size(old), item_size(new))
                self._add(op, write_units(old, new, table_keys=keys, gsis=gsis, condition_failed=cancelled,
                                          transactional=tx))
            return
        if failed:
            return
        self._add(op, rru_units=self._read_units(op, params, parsed))

    def _read_units(self, op: str, params: dict, parsed: dict) -> float:
        if op == "GetItem":
            item = self._get(params["TableName"], params["Key"])
            return rru(item_size(item), consistent=bool(params.get("ConsistentRead")))
        if op == "BatchGetItem":
            total = 0.0
            for table, spec in params["RequestItems"].items():
                for key in spec["Keys"]:
                    total += rru(item_size(self._get(table, key)), consistent=bool(spec.get("ConsistentRead")))
            return total
        if op == "TransactGetItems":
            return sum(rru(item_size(self._get(a["Get"]["TableName"], a["Get"]["Key"])), consistent=True,
                           transactional=True) for a in params["TransactItems"])
        # Query / Scan: the items the page evaluated, whole (re-read without filter or projection)
        shadow_params = {k: v for k, v in params.items()
                         if k not in ("FilterExpression", "ProjectionExpression", "Select", "ReturnConsumedCapacity")}
        used = " ".join(str(shadow_params.get(k, "")) for k in ("KeyConditionExpression",))
        for names in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
            if names in shadow_params:
                kept = {k: v for k, v in shadow_params[names].items() if k in used}
                if kept:
                    shadow_params[names] = kept
                else:
                    shadow_params.pop(names)
        if "LastEvaluatedKey" in parsed:  # the same page: at most as many items as the call evaluated
            shadow_params["Limit"] = max(1, int(parsed.get("ScannedCount", parsed.get("Count", 1))))
        items = getattr(self.shadow, "query" if op == "Query" else "scan")(**shadow_params).get("Items", [])
        consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
        return rru(sum(item_size(i) for i in items), consistent=consistent)
