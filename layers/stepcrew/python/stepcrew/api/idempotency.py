"""Idempotency of ``POST /runs``: Powertools idempotency, persisted in the run table itself.

A request with header ``Idempotency-Key: <key>`` is keyed by ``(tenant, key)``: the same tenant sending the same
key within :data:`IDEMPOTENCY_TTL_S` (24 h) gets the first answer back (the same run id) and no second run or
execution is created; another tenant's identical key is a different record. The request body (normalised: the
validated :class:`~stepcrew.api.models.NewRun` with defaults filled in) is hashed and checked: the same key with a
different body raises ``IdempotencyValidationError`` (answered 422); the same key while the first request is still
being processed raises ``IdempotencyAlreadyInProgressError`` (answered 409). If starting the run fails, the record
is deleted (Powertools does so for any exception), so a retry with the same key starts afresh. Without the header
a request is not deduplicated (the header is optional).

Records live in the run table (:mod:`stepcrew.store.schema`): partition ``PK = IDEMPOTENCY#api`` (no run, tenant
or cache item starts with ``IDEMPOTENCY#``), sort key ``SK = runs#<md5 of [tenant, key]>``, expiry in the table's
TTL attribute ``expires_at`` (epoch seconds; DynamoDB deletes expired items within days, and Powertools treats a
record past its expiry as absent at once). All records share one partition: DynamoDB serves up to 1,000 writes/s
per partition (DynamoDB partition throughput documentation), far above the run-start rate this API is built for.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.config import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord

from stepcrew.store import schema

IDEMPOTENCY_TTL_S = 24 * 60 * 60
IDEMPOTENCY_PK = "IDEMPOTENCY#api"
IDEMPOTENCY_KEY_PREFIX = "runs"
#: What is hashed into the record key (``[tenant, key]``) and what is validated against it (the request body).
EVENT_KEY_JMESPATH = "[tenant, key]"
PAYLOAD_JMESPATH = "request"


def idempotency_config() -> IdempotencyConfig:
    """24 h expiry; key = hash of ``[tenant, key]``; payload check on ``request``; a missing key raises."""
    return IdempotencyConfig(event_key_jmespath=EVENT_KEY_JMESPATH, payload_validation_jmespath=PAYLOAD_JMESPATH,
                             raise_on_no_idempotency_key=True, expires_after_seconds=IDEMPOTENCY_TTL_S)


def dynamodb_persistence(table_name: str, *, client: Any = None) -> DynamoDBPersistenceLayer:
    """The Powertools DynamoDB persistence layer on the run table (key attributes from :mod:`stepcrew.store.schema`).
    ``client``: a low-level boto3 ``dynamodb`` client (shared with the store), or None to build one."""
    return DynamoDBPersistenceLayer(table_name=table_name, key_attr=schema.PK, sort_key_attr=schema.SK,
                                    static_pk_value=IDEMPOTENCY_PK, expiry_attr=schema.TTL_ATTRIBUTE,
                                    boto3_client=client)


class MemoryPersistenceLayer(BasePersistenceLayer):
    """In-process persistence with the DynamoDB layer's semantics (conditional put: a record can be replaced only
    when absent, expired, or in progress past its in-progress expiry). For :class:`MemoryRunStore` setups (tests);
    thread-safe; lost at exit."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, DataRecord] = {}
        self._lock = threading.Lock()

    def _get_record(self, idempotency_key: str) -> DataRecord:
        with self._lock:
            record = self._records.get(idempotency_key)
        if record is None:
            raise IdempotencyItemNotFoundError
        return record

    def _put_record(self, data_record: DataRecord) -> None:
        now = dt.datetime.now()
        with self._lock:
            old = self._records.get(data_record.idempotency_key)
            if old is not None:
                expired = old.expiry_timestamp is not None and old.expiry_timestamp < int(now.timestamp())
                stale = (old.status == STATUS_CONSTANTS["INPROGRESS"] and old.in_progress_expiry_timestamp is not None
                         and old.in_progress_expiry_timestamp < int(now.timestamp() * 1000))
                if not (expired or stale):
                    self._validate_payload(data_payload=data_record, stored_data_record=old)
                    raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self._records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records.pop(data_record.idempotency_key, None)
