"""DynamoDB adapter of the store port: one table, the layout of :mod:`stepcrew.store.schema`.

Consistency and atomicity (what DynamoDB guarantees per request, DynamoDB developer guide):

- Every state change is one conditional request: ``create_run`` (``attribute_not_exists(PK)``), ``update_run``
  and ``update_subtask`` (``attribute_exists(PK)`` and, with ``expected``, ``#status IN (...)``).
- Counters use ``ADD`` (atomic on one item): the usage totals and per-model usage on META, the report
  version and each conversation's ``MSGSEQ#`` counter. ``append_messages`` reserves its sequence numbers with
  one ``ADD`` and then writes each message with ``attribute_not_exists``, so concurrent appends, even to the same
  conversation, never share a number. If a write fails after the reservation, the conversation has a gap in its
  numbers (order is kept; the returned count includes the lost numbers).
- ``add_usage`` is one ``ADD`` request on META: the totals and the model's own counters (``U#<model>#<total>``
  attributes) move together, and the updated item gives the usage back without a read. Transactions are avoided
  on purpose: moto, which runs this adapter locally, copies the whole table for every transaction and is not safe
  under parallel sub-tasks.
- ``put_plan`` is several requests (PLAN, one TASK# per sub-task, deletion of stale TASK# items).
- Reads of the base table are strongly consistent; ``list_runs`` reads GSI1, which is eventually consistent
  (a run created a moment ago may be missing from the list on AWS).

Limits: items over 400 KB (DynamoDB quotas page) raise StoreError before the write; DynamoDB's own size
rejection (an update that grows an item) is mapped to StoreError too. Other client errors (throttling after
botocore's retries, missing table) surface as StoreError with the DynamoDB error code. Messages, message
counters and events expire 90 days after the write (``expires_at``, see the schema module); run records do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

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
    RunStateConflictError,
    RunStore,
    StoreError,
    reopen_conflict,
    reopen_statuses,
    status_conflict,
)

_EVENT_SK_END = s.EVENT_PREFIX[:-1] + chr(ord(s.EVENT_PREFIX[-1]) + 1)  # "EVENT$": above every "EVENT#..." key
_CURSOR_KEYS = (s.PK, s.SK, s.GSI1_PK, s.GSI1_SK)
_EVENT_ID_ATTEMPTS = 5


class _ConditionFailed(Exception):
    """A ConditionExpression did not hold (DynamoDB ConditionalCheckFailedException)."""


class DynamoRunStore(RunStore):
    """The run store on one DynamoDB table (see :mod:`stepcrew.store.schema` for keys and items).

    ``table_name``: an existing table made like :func:`stepcrew.store.schema.create_table`. ``client``: a
    low-level boto3 ``dynamodb`` client (thread-safe; shared by parallel callers); when None, one is built
    here with botocore's "standard" retry mode (5 attempts). Semantics are those of
    :class:`stepcrew.store.base.RunStore`; ``list_runs`` fills usage totals only (``usage.by_model`` is
    empty: ``get_run`` reads the per-model items).
    """

    def __init__(self, table_name: str, *, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client if client is not None else boto3.client(
            "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 5}))
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    # ------------------------------------------------------------------------------------------ plumbing
    def _to_av(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in item.items()}

    def _from_av(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._de.deserialize(v) for k, v in item.items()}

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {s.PK: {"S": pk}, s.SK: {"S": sk}}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as e:
            error = e.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed() from e
            if code == "ValidationException" and "exceeded the maximum allowed size" in message:
                raise StoreError(f"DynamoDB rejected the item: {message} (items are limited to 400 KB)") from e
            raise StoreError(f"DynamoDB {operation} on table {self.table_name!r} failed: {code}: {message}") from e

    def _get(self, pk: str, sk: str, projection: str | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"Key": self._key(pk, sk), "ConsistentRead": True}
        if projection:
            kwargs["ProjectionExpression"] = projection
        item = self._call("get_item", **kwargs).get("Item")
        return self._from_av(item) if item else None

    def _put(self, item: dict[str, Any], *, if_new: bool = False) -> None:
        kwargs: dict[str, Any] = {"Item": self._to_av(s.check_item_size(item))}
        if if_new:
            kwargs["ConditionExpression"] = "attribute_not_exists(PK)"
        self._call("put_item", **kwargs)

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """All items of a Query (every page), deserialised."""
        while True:
            resp = self._call("query", **kwargs)
            for item in resp.get("Items", []):
                yield self._from_av(item)
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def _query_prefix(self, run_id: str, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        return self._query(KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)", ConsistentRead=True,
                           ExpressionAttributeValues={":pk": {"S": s.run_pk(run_id)}, ":prefix": {"S": prefix}},
                           **extra)

    def _set_if_status(self, pk: str, sk: str, values: dict[str, Any],
                       statuses: list[RunStatus] | list[SubtaskStatus] | None) -> dict[str, Any]:
        """One UpdateItem: SET ``values`` (attribute -> DynamoDB value) on an existing item and, with
        ``statuses`` (non-empty), only if its ``status`` is one of them. Returns the new item; _ConditionFailed
        if the item is absent or in another status."""
        names = {f"#f{i}": name for i, name in enumerate(values)}
        attr_values = {f":v{i}": self._ser.serialize(v) for i, v in enumerate(values.values())}
        condition = "attribute_exists(PK)"
        if statuses is not None:
            names["#status"] = "status"
            attr_values.update({f":s{i}": {"S": st.value} for i, st in enumerate(statuses)})
            condition += " AND #status IN (" + ", ".join(f":s{i}" for i in range(len(statuses))) + ")"
        resp = self._call("update_item", Key=self._key(pk, sk), ConditionExpression=condition,
                          UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
                          ExpressionAttributeNames=names, ExpressionAttributeValues=attr_values,
                          ReturnValues="ALL_NEW")
        return self._from_av(resp["Attributes"])

    def _require_run(self, run_id: str) -> None:
        if self._get(s.run_pk(run_id), s.META_SK, projection="PK") is None:
            raise RunNotFoundError(run_id)

    def _by_model(self, run_id: str, item: dict[str, Any]) -> dict[str, ModelUsage]:
        """Per-model usage from the META ``item`` (its ``U#`` attributes). A record written before schema 1.2 kept
        it in ``USAGE#<model>`` items: read those (one Query) only when META has usage but no ``U#`` attribute."""
        by_model = s.by_model_from_item(item)
        if by_model or not any(item.get(name) for name in s.USAGE_TOTAL_ATTRIBUTES):
            return by_model
        return dict(s.usage_from_item(i) for i in self._query_prefix(run_id, s.USAGE_PREFIX))

    # ------------------------------------------------------------------------------------------ runs
    def create_run(self, run: Run) -> None:
        """Put the META item conditionally (RunExistsError if present), its usage included. StoreError if the
        record exceeds 400 KB."""
        try:
            self._put(s.run_item(run), if_new=True)
        except _ConditionFailed:
            raise RunExistsError(run.run_id) from None

    def get_run(self, run_id: str, tenant: str | None = None) -> Run:
        """META item + per-model usage. RunNotFoundError if absent or owned by another ``tenant``."""
        item = self._get(s.run_pk(run_id), s.META_SK)
        if item is None or (tenant is not None and item.get("tenant") != tenant):
            raise RunNotFoundError(run_id)
        return s.run_from_item(item, self._by_model(run_id, item))

    def list_runs(self, tenant: str, limit: int = 50, cursor: str | None = None) -> tuple[list[Run], str | None]:
        """GSI1 newest first. ``cursor``: opaque (URL-safe base64 of the last run's key as JSON); a cursor that
        does not decode, or belongs to another tenant, raises ValueError. Runs carry usage totals only."""
        s.check_limit(limit, 100)
        query: dict[str, Any] = {
            "IndexName": s.GSI1_NAME, "ScanIndexForward": False,
            "KeyConditionExpression": "#pk = :pk", "ExpressionAttributeNames": {"#pk": s.GSI1_PK},
            "ExpressionAttributeValues": {":pk": {"S": s.tenant_pk(tenant)}},
        }
        if cursor is not None:
            query["ExclusiveStartKey"] = self._decode_cursor(cursor, tenant)
        items: list[dict[str, Any]] = []
        while len(items) <= limit:  # read one more than asked, to know whether there is a next page
            resp = self._call("query", Limit=limit + 1 - len(items), **query)
            items.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            query["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        page = items[:limit]
        next_cursor = self._encode_cursor(page[-1]) if len(items) > limit else None
        return [s.run_from_item(self._from_av(item)) for item in page], next_cursor

    @staticmethod
    def _encode_cursor(item: dict[str, Any]) -> str:
        return s.encode_cursor({name: item[name] for name in _CURSOR_KEYS})

    @staticmethod
    def _decode_cursor(cursor: str, tenant: str) -> dict[str, Any]:
        key = s.decode_cursor(cursor)
        valid = (isinstance(key, dict) and set(key) == set(_CURSOR_KEYS)
                 and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values()))
        if not valid or key[s.GSI1_PK]["S"] != s.tenant_pk(tenant):
            raise ValueError("invalid cursor")
        return key

    def update_run(self, run_id: str, changes: dict[str, Any],
                   expected: Iterable[RunStatus] | None = None) -> Run:
        """One conditional UpdateItem (SET of the changed fields and ``updated_at``, now unless given).
        ValueError for unknown or fixed fields (run_id, tenant, created_at, usage) or bad values;
        RunNotFoundError; RunStateConflictError if ``expected`` is given and the status is not in it."""
        changes = dict(changes)
        changes.setdefault("updated_at", datetime.now(UTC))
        _, values = s.validate_changes(Run, changes, set(Run.model_fields) - s.RUN_FIXED_FIELDS)
        s.check_item_size({s.PK: s.run_pk(run_id), s.SK: s.META_SK, **values})
        statuses = None if expected is None else [RunStatus(x) for x in expected]
        if statuses == []:
            self._require_run(run_id)
            raise RunStateConflictError(f"run {run_id}: no expected status given")
        try:
            item = self._set_if_status(s.run_pk(run_id), s.META_SK, values, statuses)
        except _ConditionFailed:
            current = self._get(s.run_pk(run_id), s.META_SK)
            if current is None:
                raise RunNotFoundError(run_id) from None
            raise status_conflict(f"run {run_id}", current.get("status"), statuses or []) from None
        return s.run_from_item(item, self._by_model(run_id, item))

    def reopen_run(self, run_id: str, expected: Run,
                   statuses: Iterable[RunStatus] = (RunStatus.FAILED,)) -> Run:
        """One UpdateItem (SET status RUNNING, error and finished_at NULL, updated_at now) whose ConditionExpression
        holds only while ``status``, ``error.code`` and ``finished_at`` are as in ``expected`` (an absent or NULL
        attribute for a None). See the port for the errors."""
        reopen_statuses(run_id, expected, statuses)
        names = {"#status": "status", "#error": "error", "#fin": "finished_at", "#upd": "updated_at"}
        values: dict[str, Any] = {":running": {"S": RunStatus.RUNNING.value}, ":null": {"NULL": True},
                                  ":now": {"S": s.iso_ts(datetime.now(UTC))}, ":was": {"S": expected.status.value}}
        condition = ["attribute_exists(PK)", "#status = :was"]
        if expected.error is None or expected.finished_at is None:
            values[":nulltype"] = {"S": "NULL"}
        if expected.error is None:
            condition.append("(attribute_not_exists(#error) OR attribute_type(#error, :nulltype))")
        else:
            names["#code"] = "code"
            values[":code"] = {"S": expected.error.code}
            condition.append("#error.#code = :code")
        if expected.finished_at is None:
            condition.append("(attribute_not_exists(#fin) OR attribute_type(#fin, :nulltype))")
        else:
            values[":fin"] = {"S": s.iso_ts(expected.finished_at)}
            condition.append("#fin = :fin")
        try:
            resp = self._call("update_item", Key=self._key(s.run_pk(run_id), s.META_SK),
                              UpdateExpression="SET #status = :running, #error = :null, #fin = :null, #upd = :now",
                              ConditionExpression=" AND ".join(condition), ExpressionAttributeNames=names,
                              ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        except _ConditionFailed:
            current = self._get(s.run_pk(run_id), s.META_SK)
            if current is None:
                raise RunNotFoundError(run_id) from None
            raise (reopen_conflict(run_id, s.run_from_item(current), expected)
                   or RunStateConflictError(f"run {run_id} changed since it was read")) from None
        item = self._from_av(resp["Attributes"])
        return s.run_from_item(item, self._by_model(run_id, item))

    def open_run_ids(self, updated_before: datetime, limit: int = 1000) -> list[str]:
        """A paginated Scan of GSI1, which holds the run records only (META items are its only items carrying
        GSI1PK: a sparse index), filtered on the open statuses and ``updated_at``. Cost: a Scan is charged for every
        item it reads before the filter (DynamoDB Scan documentation), so each call reads every run record once:
        about (number of runs x average record size / 4 KB) / 2 read units (eventually consistent), independent of
        the conversations, events and other items of the table, which GSI1 does not hold."""
        s.check_limit(limit, 10_000)
        open_statuses = [st for st in RunStatus if not st.terminal]
        values = {f":s{i}": {"S": st.value} for i, st in enumerate(open_statuses)}
        values[":before"] = {"S": s.iso_ts(updated_before)}
        kwargs: dict[str, Any] = {
            "IndexName": s.GSI1_NAME, "ProjectionExpression": "run_id",
            "FilterExpression": "#status IN (" + ", ".join(f":s{i}" for i in range(len(open_statuses)))
                                + ") AND #upd < :before",
            "ExpressionAttributeNames": {"#status": "status", "#upd": "updated_at"},
            "ExpressionAttributeValues": values}
        out: list[str] = []
        while len(out) < limit:
            resp = self._call("scan", **kwargs)
            out += [item["run_id"]["S"] for item in resp.get("Items", []) if "run_id" in item]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out[:limit]

    def add_usage(self, run_id: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float, *,
                  cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> Usage:
        """One ``ADD`` on META to the totals and the model's ``U#<model>#<total>`` counters (RunNotFoundError if the
        run is absent). Returns the run's usage after the add, from the updated item. ValueError for an empty model
        or negative numbers. Costs are summed as Decimal (exact for the floats' repr)."""
        s.check_usage_numbers(model, input_tokens, output_tokens, cost_usd, cache_read_tokens=cache_read_tokens,
                              cache_write_tokens=cache_write_tokens)
        values = s.to_dynamo({"input_tokens": input_tokens, "output_tokens": output_tokens, "cost_usd": cost_usd,
                              "cache_read_tokens": cache_read_tokens, "cache_write_tokens": cache_write_tokens})
        names = {f"#m_{k}": s.usage_attribute(model, k) for k in s.USAGE_TOTAL_ATTRIBUTES}
        add = "ADD " + ", ".join([f"{k} :{k}" for k in s.USAGE_TOTAL_ATTRIBUTES]
                                 + [f"#m_{k} :{k}" for k in s.USAGE_TOTAL_ATTRIBUTES])
        attr_values = {f":{k}": self._ser.serialize(v) for k, v in values.items()}
        try:
            resp = self._call("update_item", Key=self._key(s.run_pk(run_id), s.META_SK), UpdateExpression=add,
                              ConditionExpression="attribute_exists(PK)", ExpressionAttributeNames=names,
                              ExpressionAttributeValues=attr_values,
                              ReturnValues="ALL_NEW")  # UPDATED_NEW may leave out a counter an ADD of 0 kept
        except _ConditionFailed:
            raise RunNotFoundError(run_id) from None
        raw = self._from_av(resp["Attributes"])
        item = s.from_dynamo(raw)
        totals = {k: item.get(k, 0) for k in (*s.USAGE_TOTAL_ATTRIBUTES, *s.SAVINGS_ATTRIBUTES)}
        return Usage(**totals, by_model=self._by_model(run_id, raw))

    # ------------------------------------------------------------------------------------------ resilience
    def reserve_budget(self, run_id: str, tokens: int, cost_usd: float, max_tokens: int | None,
                       max_cost_usd: float | None) -> bool:
        """One ``ADD committed_tokens, committed_cost_usd`` on META conditioned on each counter being at most
        ``cap - reservation`` (computed here: a condition cannot add). False when a cap refuses it."""
        s.check_reservation(tokens, cost_usd)
        cost = Decimal(repr(float(cost_usd)))
        condition, values = ["attribute_exists(PK)"], {":t": {"N": str(tokens)}, ":c": {"N": str(cost)}}
        for attr, cap, need in (("committed_tokens", max_tokens, Decimal(tokens)),
                                ("committed_cost_usd", max_cost_usd, cost)):
            if cap is None:
                continue
            room = Decimal(repr(float(cap))) - need
            if room < 0:
                return False
            values[f":room_{attr}"] = {"N": str(room)}
            condition.append(f"(attribute_not_exists({attr}) OR {attr} <= :room_{attr})")
        try:
            self._call("update_item", Key=self._key(s.run_pk(run_id), s.META_SK),
                       UpdateExpression="ADD committed_tokens :t, committed_cost_usd :c",
                       ConditionExpression=" AND ".join(condition), ExpressionAttributeValues=values)
        except _ConditionFailed:
            self._require_run(run_id)
            return False
        return True

    def settle_budget(self, run_id: str, tokens_delta: int, cost_delta: float) -> None:
        """``ADD`` the difference (actual - reserved) to the committed counters."""
        self._call("update_item", Key=self._key(s.run_pk(run_id), s.META_SK),
                   UpdateExpression="ADD committed_tokens :t, committed_cost_usd :c",
                   ConditionExpression="attribute_exists(PK)",
                   ExpressionAttributeValues={":t": {"N": str(int(tokens_delta))},
                                              ":c": {"N": str(Decimal(repr(float(cost_delta))))}})

    def raise_degradation(self, run_id: str, level: str) -> None:
        """``SET degradation_level`` if it is absent or one of the rungs above ``level``."""
        from stepcrew.models import DEGRADATION_ORDER

        lower = DEGRADATION_ORDER[:DEGRADATION_ORDER.index(level)]
        if not lower:
            return
        values = {f":l{i}": {"S": v} for i, v in enumerate(lower)}
        try:
            self._call("update_item", Key=self._key(s.run_pk(run_id), s.META_SK),
                       UpdateExpression="SET degradation_level = :new",
                       ConditionExpression="attribute_exists(PK) AND (attribute_not_exists(degradation_level) OR "
                                           f"degradation_level IN ({', '.join(values)}))",
                       ExpressionAttributeValues={**values, ":new": {"S": level}})
        except _ConditionFailed:
            self._require_run(run_id)  # RunNotFoundError; else it already is at this rung or below

    def add_savings(self, run_id: str, hits: int, tokens: int, cost_usd: float) -> None:
        """``ADD cache_hits, saved_tokens, saved_cost_usd`` on META."""
        s.check_usage_numbers("savings", hits, tokens, cost_usd)
        try:
            self._call("update_item", Key=self._key(s.run_pk(run_id), s.META_SK),
                       UpdateExpression="ADD cache_hits :h, saved_tokens :t, saved_cost_usd :c",
                       ConditionExpression="attribute_exists(PK)",
                       ExpressionAttributeValues={":h": {"N": str(hits)}, ":t": {"N": str(tokens)},
                                                  ":c": {"N": str(Decimal(repr(float(cost_usd))))}})
        except _ConditionFailed:
            raise RunNotFoundError(run_id) from None

    def cache_get(self, tenant: str, key: str) -> dict[str, Any] | None:
        item = self._get(s.cache_pk(tenant), key)
        if item is None or int(item.get("expires_at", 0)) <= int(datetime.now(UTC).timestamp()):
            return None  # TTL deletion lags up to days: an expired entry is never served
        body = json.loads(item["body"])
        return body if body.get("tenant") == tenant else None

    def cache_put(self, tenant: str, key: str, body: dict[str, Any], ttl_s: int) -> None:
        expires = int(datetime.now(UTC).timestamp()) + int(ttl_s)
        self._put({s.PK: s.cache_pk(tenant), s.SK: key, "expires_at": expires,
                   "body": json.dumps({**body, "tenant": tenant}, separators=(",", ":"))})

    def cache_scan(self, tenant: str, prefix: str, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        now = int(datetime.now(UTC).timestamp())
        out: list[tuple[str, dict[str, Any]]] = []
        for item in self._query(KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                                ExpressionAttributeValues={":pk": {"S": s.cache_pk(tenant)},
                                                           ":prefix": {"S": prefix}},
                                ScanIndexForward=False, ConsistentRead=True):
            if int(item.get("expires_at", 0)) > now:
                body = json.loads(item["body"])
                if body.get("tenant") == tenant:
                    out.append((item[s.SK], body))
            if len(out) >= limit:
                break
        return out

    def breaker_persistence(self) -> Any:
        """Powertools' ``CircuitBreakerDynamoDBPersistence`` on this table: ``PK = BREAKER``, ``SK`` = the
        circuit name, TTL ``expires_at``, this store's client."""
        from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence

        return CircuitBreakerDynamoDBPersistence(table_name=self.table_name, key_attr=s.PK, sort_key_attr=s.SK,
                                                 static_pk_value=s.BREAKER_PK, expiry_attr="expires_at",
                                                 boto3_client=self._client)

    # ------------------------------------------------------------------------------------------ plan, sub-tasks
    def put_plan(self, run_id: str, plan: Plan, keep: Iterable[str] = ()) -> None:
        """Put PLAN, (re)create one PENDING ``TASK#`` item per sub-task (``position`` = plan index) except the
        ``keep`` ones (only their ``position`` is set, conditional on the item existing) and delete ``TASK#`` items
        of sub-tasks no longer in the plan. RunNotFoundError if the run is absent; KeyError for a ``keep`` id
        without a record or not in the plan (checked before any write)."""
        self._require_run(run_id)
        keep = set(keep)
        existing = {item[s.SK] for item in self._query_prefix(run_id, s.TASK_PREFIX, ProjectionExpression="SK")}
        missing = sorted(k for k in keep if s.task_sk(k) not in existing or k not in {sub.id for sub in plan.subtasks})
        if missing:
            raise KeyError(missing[0])
        self._put(s.plan_item(run_id, plan))
        wanted = set()
        for position, sub in enumerate(plan.subtasks):
            if sub.id in keep:
                self._call("update_item", Key=self._key(s.run_pk(run_id), s.task_sk(sub.id)),
                           UpdateExpression="SET #p = :p", ConditionExpression="attribute_exists(PK)",
                           ExpressionAttributeNames={"#p": "position"},
                           ExpressionAttributeValues={":p": {"N": str(position)}})
            else:
                self._put(s.subtask_item(SubtaskRecord(run_id=run_id, subtask_id=sub.id), position))
            wanted.add(s.task_sk(sub.id))
        for sk in existing - wanted:
            self._call("delete_item", Key=self._key(s.run_pk(run_id), sk))

    def put_plan_version(self, version: PlanVersion) -> None:
        """Put ``PLANVER#<version:03d>`` (replacing that version). RunNotFoundError if the run is absent."""
        self._require_run(version.run_id)
        self._put(s.plan_version_item(version))

    def list_plan_versions(self, run_id: str) -> list[PlanVersion]:
        """The versions in order (one Query)."""
        return [PlanVersion.model_validate_json(item["body"])
                for item in self._query_prefix(run_id, s.PLAN_VERSION_PREFIX)]

    def get_plan(self, run_id: str) -> Plan | None:
        """The stored plan, or None."""
        item = self._get(s.run_pk(run_id), s.PLAN_SK)
        return Plan.model_validate_json(item["body"]) if item else None

    def get_subtask(self, run_id: str, subtask_id: str) -> SubtaskRecord:
        """The sub-task record; KeyError if unknown."""
        item = self._get(s.run_pk(run_id), s.task_sk(subtask_id))
        if item is None:
            raise KeyError(subtask_id)
        return s.subtask_from_item(item)

    def list_subtasks(self, run_id: str) -> list[SubtaskRecord]:
        """All sub-task records in plan order (by ``position``)."""
        items = sorted(self._query_prefix(run_id, s.TASK_PREFIX), key=lambda item: item["position"])
        return [s.subtask_from_item(item) for item in items]

    def update_subtask(self, run_id: str, subtask_id: str, changes: dict[str, Any],
                       expected: Iterable[SubtaskStatus] | None = None) -> SubtaskRecord:
        """One conditional UpdateItem (SET; ``attribute_exists(PK)`` and, with ``expected``,
        ``#status IN (...)``). KeyError if unknown; RunStateConflictError if the status is not in ``expected``;
        ValueError for other fields or bad values; StoreError if the record would exceed 400 KB."""
        _, values = s.validate_changes(SubtaskRecord, changes, s.SUBTASK_CHANGEABLE_FIELDS)
        statuses = None if expected is None else [SubtaskStatus(x) for x in expected]
        what = f"sub-task {subtask_id} of run {run_id}"
        if not values or statuses == []:  # nothing is written: a read answers (and checks the status)
            record = self.get_subtask(run_id, subtask_id)
            if statuses is not None and record.status not in statuses:
                raise status_conflict(what, record.status.value, statuses)
            return record
        s.check_item_size({s.PK: s.run_pk(run_id), s.SK: s.task_sk(subtask_id), **values})
        try:
            item = self._set_if_status(s.run_pk(run_id), s.task_sk(subtask_id), values, statuses)
        except _ConditionFailed:
            current = self._get(s.run_pk(run_id), s.task_sk(subtask_id))
            if current is None:
                raise KeyError(subtask_id) from None
            raise status_conflict(what, current.get("status"), statuses or []) from None
        return s.subtask_from_item(item)

    # ------------------------------------------------------------------------------------------ conversations
    def append_messages(self, run_id: str, conversation_id: str, messages: list[Message]) -> int:
        """Reserve ``len(messages)`` sequence numbers with one ``ADD`` on ``MSGSEQ#<conversation>``, then put
        each message as ``MSG#<conversation>#<seq:06d>`` (conditional). Returns the conversation's count.
        Every message is size-checked first (StoreError over 400 KB, nothing written). ValueError for a bad
        conversation id."""
        counter_key = self._key(s.run_pk(run_id), s.msg_counter_sk(conversation_id))
        if not messages:
            item = self._call("get_item", Key=counter_key, ConsistentRead=True).get("Item")
            return int(item["count"]["N"]) if item else 0
        ttl = s.expires_at()
        for message in messages:  # the widest sequence number gives the largest item
            s.check_item_size(s.message_item(run_id, conversation_id, s.MAX_MESSAGES_PER_CONVERSATION, message, ttl))
        resp = self._call("update_item", Key=counter_key, UpdateExpression="ADD #n :n SET #ttl = :ttl",
                          ExpressionAttributeNames={"#n": "count", "#ttl": s.TTL_ATTRIBUTE},
                          ExpressionAttributeValues={":n": {"N": str(len(messages))}, ":ttl": {"N": str(ttl)}},
                          ReturnValues="UPDATED_NEW")
        end = int(resp["Attributes"]["count"]["N"])
        for seq, message in enumerate(messages, start=end - len(messages) + 1):
            try:
                self._put(s.message_item(run_id, conversation_id, seq, message, ttl), if_new=True)
            except _ConditionFailed:
                raise StoreError(f"message {seq} of conversation {conversation_id!r} already exists") from None
        return end

    def get_messages(self, run_id: str, conversation_id: str) -> list[Message]:
        """The conversation's messages in order (empty if none)."""
        return [Message.model_validate_json(item["body"])
                for item in self._query_prefix(run_id, s.msg_prefix(conversation_id))]

    # ------------------------------------------------------------------------------------------ events
    def add_event(self, event: ProgressEvent) -> str:
        """Put ``EVENT#<ISO ts of event.at>#<uuid8>`` conditionally; returns the cursor ``<ISO ts>#<uuid8>``."""
        for _ in range(_EVENT_ID_ATTEMPTS):
            cursor = s.new_event_cursor(event.at)
            try:
                self._put(s.event_item(event, cursor), if_new=True)
                return cursor
            except _ConditionFailed:
                continue
        raise StoreError(f"could not draw a unique event id for run {event.run_id}")

    def list_events(self, run_id: str, after: str | None = None, limit: int = 500) -> list[tuple[str, ProgressEvent]]:
        """Events with cursor > ``after`` (any string; cursors compare as strings), oldest first, at most
        ``limit`` (1-1000)."""
        s.check_limit(limit, 1000)
        low = s.event_sk(after) if after is not None else s.EVENT_PREFIX
        items = self._query(KeyConditionExpression="PK = :pk AND SK BETWEEN :low AND :high", ConsistentRead=True,
                            ExpressionAttributeValues={":pk": {"S": s.run_pk(run_id)}, ":low": {"S": low},
                                                       ":high": {"S": _EVENT_SK_END}},
                            Limit=limit + 1)
        out: list[tuple[str, ProgressEvent]] = []
        for item in items:
            if item[s.SK] == low:
                continue  # BETWEEN is inclusive; the cursor itself was already seen
            out.append((item[s.SK][len(s.EVENT_PREFIX):], ProgressEvent.model_validate_json(item["body"])))
            if len(out) == limit:
                break
        return out

    # ------------------------------------------------------------------------------------------ report, reviews
    def put_report(self, run_id: str, text: str) -> int:
        """SET the text and ``ADD`` 1 to ``version`` of the REPORT item in one request; returns the version.
        StoreError if the text makes the item exceed 400 KB (``FINAL_OUTPUT_MAX_CHARS`` keeps reports below)."""
        s.check_item_size(s.report_item(run_id, text, 10**9))
        resp = self._call("update_item", Key=self._key(s.run_pk(run_id), s.REPORT_SK),
                          UpdateExpression="SET #text = :text, #updated = :now ADD #version :one",
                          ExpressionAttributeNames={"#text": "text", "#updated": "updated_at", "#version": "version"},
                          ExpressionAttributeValues={":text": {"S": text}, ":one": {"N": "1"},
                                                     ":now": {"S": s.iso_ts(datetime.now(UTC))}},
                          ReturnValues="UPDATED_NEW")
        return int(resp["Attributes"]["version"]["N"])

    def get_report(self, run_id: str) -> str | None:
        """The current report text, or None."""
        item = self._get(s.run_pk(run_id), s.REPORT_SK)
        return item["text"] if item else None

    def put_review(self, run_id: str, review: Review) -> None:
        """Put ``REVIEW#<round:03d>`` (replacing that round)."""
        self._put(s.review_item(run_id, review))

    def list_reviews(self, run_id: str) -> list[Review]:
        """Review rounds in order."""
        return [Review.model_validate_json(item["body"]) for item in self._query_prefix(run_id, s.REVIEW_PREFIX)]
