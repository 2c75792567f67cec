"""The single-table design: key names, key builders, item layout, the item-size rule and ``create_table``.

One source for the CDK stack (names, GSI, TTL attribute), :class:`stepcrew.store.dynamodb.DynamoRunStore` and the
local runtime, which builds the same table on moto with :func:`create_table`.

Items of one run share the partition ``RUN#<run_id>``:

=======================================  ==================================================================
SK                                       item
=======================================  ==================================================================
``META``                                 run record: one attribute per :class:`~stepcrew.models.Run` field
                                         (``usage`` excepted) + usage totals (:data:`USAGE_TOTAL_ATTRIBUTES`:
                                         tokens, cost, prompt-cache tokens) + per-model usage, one
                                         attribute per model and total (``U#<model>#<total>``, see
                                         :func:`usage_attribute`); GSI1PK ``TENANT#<tenant>``,
                                         GSI1SK ``<created_at ISO>#<run_id>``. No TTL.
``PLAN``                                 the plan (``body``: JSON)
``TASK#<subtask>``                       sub-task record, one attribute per field + ``position`` (plan order)
``MSG#<conversation>#<seq:06d>``         one conversation turn (``body``: JSON), TTL
``MSGSEQ#<conversation>``                the conversation's message counter (``count``), TTL
``EVENT#<ISO ts>#<uuid8>``               one progress event (``body``: JSON), TTL
``REPORT``                               the current report (``text``, ``version``)
``REVIEW#<round:03d>``                   one review round (``body``: JSON)
``PLANVER#<version:03d>``                one version of the plan (``body``: :class:`~stepcrew.models.PlanVersion`)
``USAGE#<model>``                        per-model usage of records written before schema 1.2 (read only;
                                         new runs keep it on META, so a model call is one write)
=======================================  ==================================================================

Timestamps in keys are UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width, so they sort as strings). Numbers are
stored as ``Decimal`` (DynamoDB numbers: up to 38 significant digits). Short-lived items (messages, message
counters, events) carry ``expires_at`` (epoch seconds, ``SHORT_LIVED_TTL_DAYS`` = 90 days after the write);
DynamoDB deletes expired items within a few days of that time, not at once (DynamoDB TTL documentation).

Limits: an item is at most 400 KB including attribute names (DynamoDB quotas page,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html); :func:`check_item_size`
estimates the size with the rules of "DynamoDB item sizes and formats"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html) and raises
:class:`~stepcrew.store.base.StoreError` before a write that DynamoDB would reject.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from stepcrew.models import Message, ModelUsage, Plan, PlanVersion, ProgressEvent, Review, Run, SubtaskRecord
from stepcrew.store.base import StoreError

PK = "PK"
SK = "SK"
GSI1_NAME = "GSI1"
GSI1_PK = "GSI1PK"
GSI1_SK = "GSI1SK"
TTL_ATTRIBUTE = "expires_at"

MAX_ITEM_BYTES = 400 * 1024  # DynamoDB quotas page: "The maximum item size in DynamoDB is 400 KB"
SHORT_LIVED_TTL_DAYS = 90
MAX_MESSAGES_PER_CONVERSATION = 999_999  # MSG#<conversation>#<seq:06d> sorts correctly up to here
MAX_REVIEW_ROUND = 999  # REVIEW#<round:03d>

META_SK = "META"
PLAN_SK = "PLAN"
REPORT_SK = "REPORT"
TASK_PREFIX = "TASK#"
MSG_PREFIX = "MSG#"
MSG_COUNTER_PREFIX = "MSGSEQ#"
EVENT_PREFIX = "EVENT#"
REVIEW_PREFIX = "REVIEW#"
PLAN_VERSION_PREFIX = "PLANVER#"
USAGE_PREFIX = "USAGE#"
USAGE_TOTAL_ATTRIBUTES = ("input_tokens", "output_tokens", "cost_usd", "cache_read_tokens", "cache_write_tokens")
#: Cache savings on META (ADD, like the usage totals), read into ``Usage``.
SAVINGS_ATTRIBUTES = ("cache_hits", "saved_tokens", "saved_cost_usd")
#: Budget reservations on META: used + outstanding reservations (``RunStore.reserve_budget``); never in ``Run``.
COMMITTED_ATTRIBUTES = ("committed_tokens", "committed_cost_usd")
#: Partition key of a tenant's cache entries (``CACHE#<tenant> / <key>``, body JSON, TTL ``expires_at``).
CACHE_PK_PREFIX = "CACHE#"
#: Partition key of the circuit-breaker records (one item per circuit, Powertools' DynamoDB persistence).
BREAKER_PK = "BREAKER"

# A conversation id is a sub-task id or a role name such as "synthesizer". No '#', so that the key prefix
# "MSG#<conversation>#" of one conversation never matches another conversation's items.
CONVERSATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

_RUN_KEY_ATTRIBUTES = (PK, SK, GSI1_PK, GSI1_SK)
# update_run may change every Run field but these; update_subtask only these SubtaskRecord fields.
RUN_FIXED_FIELDS = frozenset({"run_id", "tenant", "created_at", "usage"})
SUBTASK_CHANGEABLE_FIELDS = frozenset({"status", "turns", "tool_calls", "output", "error", "started_at",
                                       "finished_at"})


# --------------------------------------------------------------------------------------------- keys
def iso_ts(dt: datetime) -> str:
    """``dt`` as fixed-width UTC ISO 8601 with microseconds (``2025-01-31T12:00:00.000000Z``); sortable as a
    string. A naive datetime is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_pk(run_id: str) -> str:
    """Partition key of every item of a run: ``RUN#<run_id>``."""
    return f"RUN#{run_id}"


def tenant_pk(tenant: str) -> str:
    """GSI1 partition key of a tenant's run records: ``TENANT#<tenant>``."""
    return f"TENANT#{tenant}"


def gsi1_sk(created_at: datetime, run_id: str) -> str:
    """GSI1 sort key of a run record: ``<created_at ISO>#<run_id>`` (newest first = descending)."""
    return f"{iso_ts(created_at)}#{run_id}"


def task_sk(subtask_id: str) -> str:
    """``TASK#<subtask_id>``."""
    return f"{TASK_PREFIX}{subtask_id}"


def check_conversation_id(conversation_id: str) -> str:
    """Return ``conversation_id`` if it matches ``CONVERSATION_ID_PATTERN`` (1-64 characters, no '#'),
    else raise ValueError."""
    if not isinstance(conversation_id, str) or not CONVERSATION_ID_PATTERN.match(conversation_id):
        raise ValueError(f"invalid conversation id {conversation_id!r}: expected {CONVERSATION_ID_PATTERN.pattern}")
    return conversation_id


def msg_prefix(conversation_id: str) -> str:
    """Sort-key prefix of one conversation's messages: ``MSG#<conversation>#``."""
    return f"{MSG_PREFIX}{check_conversation_id(conversation_id)}#"


def msg_sk(conversation_id: str, seq: int) -> str:
    """``MSG#<conversation>#<seq:06d>``; ``seq`` is 1-based, at most ``MAX_MESSAGES_PER_CONVERSATION``
    (StoreError beyond: the key would no longer sort)."""
    if not 1 <= seq <= MAX_MESSAGES_PER_CONVERSATION:
        raise StoreError(f"conversation {conversation_id!r} would exceed {MAX_MESSAGES_PER_CONVERSATION} messages")
    return f"{msg_prefix(conversation_id)}{seq:06d}"


def msg_counter_sk(conversation_id: str) -> str:
    """``MSGSEQ#<conversation>``: the item holding the conversation's message count."""
    return f"{MSG_COUNTER_PREFIX}{check_conversation_id(conversation_id)}"


def new_event_cursor(at: datetime) -> str:
    """A fresh event cursor ``<ISO ts>#<uuid8>``: sorts by time, unique with high probability (32 random bits;
    the DynamoDB adapter writes it conditionally and draws again on a collision)."""
    return f"{iso_ts(at)}#{uuid.uuid4().hex[:8]}"


def event_sk(cursor: str) -> str:
    """``EVENT#<ISO ts>#<uuid8>`` from a cursor made by :func:`new_event_cursor`."""
    return f"{EVENT_PREFIX}{cursor}"


def review_sk(round_: int) -> str:
    """``REVIEW#<round:03d>``; ``round_`` 1-999 (ValueError otherwise)."""
    if not 1 <= round_ <= MAX_REVIEW_ROUND:
        raise ValueError(f"review round must be 1-{MAX_REVIEW_ROUND}, got {round_}")
    return f"{REVIEW_PREFIX}{round_:03d}"


def usage_sk(model: str) -> str:
    """``USAGE#<model>`` (model id, non-empty)."""
    if not model:
        raise ValueError("model id must not be empty")
    return f"{USAGE_PREFIX}{model}"


def expires_at(now: float | None = None) -> int:
    """TTL value of a short-lived item: epoch seconds, ``SHORT_LIVED_TTL_DAYS`` after ``now`` (default: now)."""
    return int(now if now is not None else time.time()) + SHORT_LIVED_TTL_DAYS * 86_400


# --------------------------------------------------------------------------------------------- values
def to_dynamo(value: Any) -> Any:
    """JSON-compatible Python (as from ``model_dump(mode="json")``) -> the same with every float as ``Decimal``
    (boto3's TypeSerializer rejects floats). Exact for the float's shortest repr."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def from_dynamo(value: Any) -> Any:
    """Inverse of :func:`to_dynamo`: ``Decimal`` -> ``int`` when integral, else ``float``; recursive."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [from_dynamo(v) for v in value]
    return value


def validate_changes(model_cls: type[BaseModel], changes: dict[str, Any],
                     allowed: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a partial update of ``model_cls`` field by field (pydantic's ``validate_assignment``).

    Returns (validated Python values, the same as DynamoDB attribute values: JSON-mode dump, datetimes as
    :func:`iso_ts`, floats as Decimal). Raises ValueError for a field outside ``allowed`` and pydantic's
    ValidationError (a ValueError) for a bad value."""
    allowed = frozenset(allowed)
    bad = sorted(set(changes) - allowed)
    if bad:
        raise ValueError(f"cannot change {', '.join(bad)} of {model_cls.__name__}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    holder = model_cls.model_construct()
    for name, value in changes.items():
        model_cls.__pydantic_validator__.validate_assignment(holder, name, value)
    values = {name: getattr(holder, name) for name in changes}
    dumped = holder.model_dump(mode="json", include=set(changes))
    for name, value in values.items():
        if isinstance(value, datetime):
            dumped[name] = iso_ts(value)
    return values, to_dynamo(dumped)


def check_limit(limit: int, high: int) -> int:
    """``limit`` if it is an int in 1..``high``, else ValueError."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= high:
        raise ValueError(f"limit must be an integer from 1 to {high}, got {limit!r}")
    return limit


def encode_cursor(data: Any) -> str:
    """An opaque page cursor: URL-safe base64 of ``data`` as JSON (sorted keys)."""
    return base64.urlsafe_b64encode(json.dumps(data, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str) -> Any:
    """Inverse of :func:`encode_cursor`; ValueError("invalid cursor") for text that is not base64 JSON (the
    caller checks the shape)."""
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, AttributeError) as e:
        raise ValueError("invalid cursor") from e


def check_usage_numbers(model: str, input_tokens: int, output_tokens: int, cost_usd: float, *,
                        cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> None:
    """ValueError unless ``model`` is non-empty, token counts are ints >= 0 and ``cost_usd`` is a number >= 0."""
    if not model:
        raise ValueError("model id must not be empty")
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                        ("cache_read_tokens", cache_read_tokens), ("cache_write_tokens", cache_write_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if not isinstance(cost_usd, int | float) or isinstance(cost_usd, bool) or not 0 <= cost_usd < float("inf"):
        raise ValueError(f"cost_usd must be a finite number >= 0, got {cost_usd!r}")


def _value_size(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, int | float | Decimal):
        digits = Decimal(str(value)).normalize().as_tuple().digits
        return (len(digits) + 1) // 2 + 1
    if isinstance(value, dict):
        return 3 + sum(len(str(k).encode("utf-8")) + _value_size(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 3 + sum(_value_size(v) + 1 for v in value)
    raise TypeError(f"unsupported DynamoDB value type: {type(value).__name__}")


def item_size(item: dict[str, Any]) -> int:
    """Estimated DynamoDB size in bytes of a plain-Python item (attribute names + values), per "DynamoDB item
    sizes and formats": strings by UTF-8 bytes, numbers 1 byte per 2 significant digits + 1, null/bool 1,
    list/map 3 + 1 per element + contents."""
    return sum(len(name.encode("utf-8")) + _value_size(v) for name, v in item.items())


def check_item_size(item: dict[str, Any]) -> dict[str, Any]:
    """Return ``item`` if it fits ``MAX_ITEM_BYTES`` (400 KB, DynamoDB quotas page), else raise StoreError
    naming the item's key and its size."""
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise StoreError(f"item {item.get(PK)}/{item.get(SK)} is {size:,} bytes; DynamoDB items are limited to "
                         f"{MAX_ITEM_BYTES:,} bytes (400 KB). Store less text in one item.")
    return item


def _body(model: Any) -> str:
    return model.model_dump_json()


# --------------------------------------------------------------------------------------------- items
def run_item(run: Run) -> dict[str, Any]:
    """The META item of ``run`` (plain Python, numbers as Decimal): keys, GSI1 keys, one attribute per field
    except ``usage``, and the usage totals. The crew is one JSON string (``crew``): it is never queried, and a deep
    map costs every read of the run (moto's serializer took ~0.2 s per read of the default crew as a map)."""
    fields = to_dynamo(run.model_dump(mode="json", exclude={"usage", "crew"}))
    fields["crew"] = run.crew.model_dump_json()
    for name in ("created_at", "updated_at", "started_at", "finished_at"):
        value = getattr(run, name)
        fields[name] = iso_ts(value) if value is not None else None
    totals = to_dynamo({name: getattr(run.usage, name) for name in (*USAGE_TOTAL_ATTRIBUTES, *SAVINGS_ATTRIBUTES)})
    return {PK: run_pk(run.run_id), SK: META_SK, GSI1_PK: tenant_pk(run.tenant),
            GSI1_SK: gsi1_sk(run.created_at, run.run_id), **fields, **totals,
            **usage_attributes(run.usage.by_model)}


def run_from_item(item: dict[str, Any], by_model: dict[str, ModelUsage] | None = None) -> Run:
    """Rebuild a :class:`Run` from its META item; ``by_model``: its per-model usage (None: empty, as
    ``list_runs`` gives). The ``U#`` usage attributes never reach the Run's fields."""
    data = from_dynamo({k: v for k, v in item.items()
                        if k not in _RUN_KEY_ATTRIBUTES and not k.startswith(USAGE_ATTRIBUTE_PREFIX)})
    if isinstance(data.get("crew"), str):  # JSON string since schema 1.1; a map in records written before
        data["crew"] = json.loads(data["crew"])
    usage = {name: data.pop(name, 0) for name in (*USAGE_TOTAL_ATTRIBUTES, *SAVINGS_ATTRIBUTES)}
    for name in COMMITTED_ATTRIBUTES:
        data.pop(name, None)
    usage["by_model"] = {m: u.model_dump() for m, u in (by_model or {}).items()}
    return Run.model_validate({**data, "usage": usage})


#: Prefix of the per-model usage attributes on META (schema 1.2): ``U#<model>#<total>``.
USAGE_ATTRIBUTE_PREFIX = "U#"


def usage_attribute(model: str, total: str) -> str:
    """``U#<model>#<total>``: the META attribute holding one model's ``total`` (one of
    :data:`USAGE_TOTAL_ATTRIBUTES`). Top-level attributes, not a map, so one ``ADD`` creates or increments each
    (DynamoDB ``ADD`` takes a number attribute; a nested path would need its map to exist first). ValueError for
    an empty model or an unknown total."""
    if not model:
        raise ValueError("model must not be empty")
    if total not in USAGE_TOTAL_ATTRIBUTES:
        raise ValueError(f"unknown usage total {total!r}")
    return f"{USAGE_ATTRIBUTE_PREFIX}{model}#{total}"


def usage_attributes(by_model: dict[str, ModelUsage]) -> dict[str, Any]:
    """The ``U#<model>#<total>`` attributes of ``by_model`` (numbers as Decimal), for a META item."""
    return to_dynamo({usage_attribute(model, total): getattr(usage, total)
                      for model, usage in by_model.items() for total in USAGE_TOTAL_ATTRIBUTES})


def by_model_from_item(item: dict[str, Any]) -> dict[str, ModelUsage]:
    """Per-model usage from the ``U#<model>#<total>`` attributes of a META item (plain Python values)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in item.items():
        if not name.startswith(USAGE_ATTRIBUTE_PREFIX):
            continue
        model, _, total = name[len(USAGE_ATTRIBUTE_PREFIX):].rpartition("#")
        if model and total in USAGE_TOTAL_ATTRIBUTES:
            out.setdefault(model, {})[total] = value
    return {m: ModelUsage(**{k: from_dynamo(v) for k, v in totals.items()}) for m, totals in out.items()}


def usage_item(run_id: str, model: str, usage: ModelUsage) -> dict[str, Any]:
    """A ``USAGE#<model>`` item (the layout before schema 1.2; tests of the legacy read build them)."""
    return {PK: run_pk(run_id), SK: usage_sk(model), "model": model, **to_dynamo(usage.model_dump())}


def usage_from_item(item: dict[str, Any]) -> tuple[str, ModelUsage]:
    """(model id, usage) from a ``USAGE#<model>`` item."""
    data = from_dynamo(item)
    return item[SK][len(USAGE_PREFIX):], ModelUsage(**{k: data.get(k, 0) for k in USAGE_TOTAL_ATTRIBUTES})


def plan_item(run_id: str, plan: Plan) -> dict[str, Any]:
    """The ``PLAN`` item: the plan as JSON in ``body`` (exact round trip, no Decimal conversion)."""
    return {PK: run_pk(run_id), SK: PLAN_SK, "body": _body(plan)}


def subtask_item(record: SubtaskRecord, position: int) -> dict[str, Any]:
    """A ``TASK#<subtask>`` item: one attribute per field plus ``position`` (0-based index in the plan)."""
    fields = to_dynamo(record.model_dump(mode="json"))
    for name in ("started_at", "finished_at"):
        value = getattr(record, name)
        fields[name] = iso_ts(value) if value is not None else None
    return {PK: run_pk(record.run_id), SK: task_sk(record.subtask_id), "position": position, **fields}


def subtask_from_item(item: dict[str, Any]) -> SubtaskRecord:
    """Rebuild a :class:`SubtaskRecord` from its item."""
    data = from_dynamo({k: v for k, v in item.items() if k not in (PK, SK, "position")})
    return SubtaskRecord.model_validate(data)


def message_item(run_id: str, conversation_id: str, seq: int, message: Message,
                 ttl: int | None = None) -> dict[str, Any]:
    """A ``MSG#<conversation>#<seq:06d>`` item (``body``: the message as JSON), with TTL."""
    return {PK: run_pk(run_id), SK: msg_sk(conversation_id, seq), "conversation": conversation_id, "seq": seq,
            "role": message.role, "body": _body(message), TTL_ATTRIBUTE: ttl if ttl is not None else expires_at()}


def event_item(event: ProgressEvent, cursor: str, ttl: int | None = None) -> dict[str, Any]:
    """An ``EVENT#<cursor>`` item (``body``: the event as JSON), with TTL."""
    return {PK: run_pk(event.run_id), SK: event_sk(cursor), "kind": event.kind, "body": _body(event),
            TTL_ATTRIBUTE: ttl if ttl is not None else expires_at()}


def report_item(run_id: str, text: str, version: int) -> dict[str, Any]:
    """The ``REPORT`` item (used for the size check; the adapter writes it with an atomic version ``ADD``)."""
    return {PK: run_pk(run_id), SK: REPORT_SK, "text": text, "version": version,
            "updated_at": iso_ts(datetime.now(UTC))}


def plan_version_sk(version: int) -> str:
    """``PLANVER#<version:03d>``; ``version`` 1-999 (ValueError otherwise)."""
    if not 1 <= version <= 999:
        raise ValueError(f"plan version must be 1-999, got {version}")
    return f"{PLAN_VERSION_PREFIX}{version:03d}"


def plan_version_item(version: PlanVersion) -> dict[str, Any]:
    """A ``PLANVER#<version:03d>`` item (``body``: the version as JSON)."""
    return {PK: run_pk(version.run_id), SK: plan_version_sk(version.version), "version": version.version,
            "body": _body(version)}


def review_item(run_id: str, review: Review) -> dict[str, Any]:
    """A ``REVIEW#<round:03d>`` item (``body``: the review as JSON)."""
    return {PK: run_pk(run_id), SK: review_sk(review.round), "round": review.round, "body": _body(review)}


# --------------------------------------------------------------------------------------------- table
def create_table(client: Any, table_name: str) -> None:
    """Create the stepcrew table with a low-level boto3 ``dynamodb`` client: keys ``PK``/``SK`` (strings),
    on-demand billing (PAY_PER_REQUEST), GSI ``GSI1`` on ``GSI1PK``/``GSI1SK`` projecting ALL, then TTL on
    ``expires_at``. Waits until the table is ACTIVE (immediate on moto). Used by the local runtime on moto; the
    CDK stack declares the same table from these constants. Raises botocore's ClientError
    (``ResourceInUseException``) if the table exists."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in (PK, SK, GSI1_PK, GSI1_SK)],
        KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": GSI1_NAME,
            "KeySchema": [{"AttributeName": GSI1_PK, "KeyType": "HASH"},
                          {"AttributeName": GSI1_SK, "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    client.update_time_to_live(TableName=table_name,
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})


def cache_pk(tenant: str) -> str:
    """Partition key of ``tenant``'s cache entries."""
    if not tenant or "#" in tenant:
        raise ValueError(f"invalid tenant {tenant!r}")
    return f"{CACHE_PK_PREFIX}{tenant}"


def check_reservation(tokens: int, cost_usd: float) -> None:
    """ValueError unless ``tokens`` is an int >= 0 and ``cost_usd`` a finite number >= 0."""
    check_usage_numbers("reservation", tokens, 0, cost_usd)
