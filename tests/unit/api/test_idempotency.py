"""Idempotency-Key on POST /runs: Powertools idempotency persisted in the run table itself.

Given a tenant and a key, when the same request is sent again within 24 h, then the first run comes back and no
second run or execution is made; a different body with that key is 422; other tenants and other keys are
independent; a failed start frees the key."""

from __future__ import annotations

import json
import time

from api_helpers import http_event

from stepcrew.api.app import ApiConfig, build_app
from stepcrew.api.idempotency import (
    IDEMPOTENCY_KEY_PREFIX,
    IDEMPOTENCY_PK,
    IDEMPOTENCY_TTL_S,
    MemoryPersistenceLayer,
    idempotency_config,
)
from stepcrew.api.models import NewRun
from stepcrew.store.memory import MemoryRunStore
from stepcrew.store.schema import PK, SK, TTL_ATTRIBUTE

BODY = {"goal": "Sum 2 and 3", "inputs": {"a": "2"}}


def post(api, body=BODY, key="key-1", tenant="acme"):
    return api.call(http_event("POST", "/runs", body=body, headers={"Idempotency-Key": key}, tenant=tenant))


def idempotency_items(api) -> list[dict]:
    return [i for i in api.ddb.scan(TableName=api.table)["Items"] if i[PK]["S"].startswith("IDEMPOTENCY#")]


def test_replay_returns_the_same_run_and_starts_one_execution(api):
    status1, headers1, first = post(api)
    status2, headers2, second = post(api)

    assert (status1, status2) == (202, 202)
    assert second["run_id"] == first["run_id"]
    assert headers2["idempotent-replayed"] == "true" and "idempotent-replayed" not in headers1
    assert api.starter.started == [first["run_id"]]
    runs, _ = api.store.list_runs("acme")
    assert [r.run_id for r in runs] == [first["run_id"]]


def test_replay_reports_the_runs_current_status(api):
    from stepcrew.models import RunStatus

    _, _, first = post(api)
    api.store.update_run(first["run_id"], {"status": RunStatus.RUNNING})
    _, _, again = post(api)
    assert again["status"] == "RUNNING"


def test_equivalent_bodies_are_the_same_request(api):
    _, _, first = post(api, {"goal": "Sum 2 and 3"})
    status, _, second = post(api, {"goal": "Sum 2 and 3", "crew": "default", "inputs": {}})  # defaults spelled out
    assert status == 202 and second["run_id"] == first["run_id"]
    assert len(api.starter.started) == 1


def test_same_key_with_a_different_body_is_422_and_changes_nothing(api):
    _, _, first = post(api)
    before = api.table_items()
    status, _, data = post(api, {"goal": "Something else"})
    assert status == 422 and data["error"]["code"] == "idempotency_key_reused"
    assert api.table_items() == before
    assert api.starter.started == [first["run_id"]]


def test_keys_are_per_tenant(api):
    _, _, acme = post(api, tenant="acme")
    _, _, other = post(api, tenant="globex")
    assert acme["run_id"] != other["run_id"]
    assert api.store.get_run(other["run_id"]).tenant == "globex"
    assert len(api.starter.started) == 2


def test_without_a_key_every_request_is_a_new_run(api):
    ids = {api.call(http_event("POST", "/runs", body=BODY))[2]["run_id"] for _ in range(2)}
    assert len(ids) == 2 and len(api.starter.started) == 2
    assert idempotency_items(api) == []


def test_the_record_lives_in_the_run_table_with_a_24h_ttl(api):
    before = int(time.time())
    post(api)
    items = idempotency_items(api)
    assert len(items) == 1
    item = items[0]
    assert item[PK]["S"] == IDEMPOTENCY_PK
    assert item[SK]["S"].startswith(f"{IDEMPOTENCY_KEY_PREFIX}#")
    assert "key-1" not in json.dumps(item) and "acme" not in item[SK]["S"]  # hashed
    assert item["status"]["S"] == "COMPLETED"
    expires = int(item[TTL_ATTRIBUTE]["N"])
    assert before + IDEMPOTENCY_TTL_S <= expires <= int(time.time()) + IDEMPOTENCY_TTL_S


def test_an_expired_record_no_longer_dedupes(api):
    _, _, first = post(api)
    item = idempotency_items(api)[0]
    api.ddb.update_item(TableName=api.table, Key={PK: item[PK], SK: item[SK]},
                        UpdateExpression="SET #e = :past", ExpressionAttributeNames={"#e": TTL_ATTRIBUTE},
                        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
    _, _, second = post(api)
    assert second["run_id"] != first["run_id"]


def test_a_request_still_in_progress_is_409(api):
    data = {"tenant": "acme", "key": "key-1", "request": NewRun.model_validate(BODY).model_dump(mode="json")}
    api.persistence.configure(idempotency_config(), key_prefix=IDEMPOTENCY_KEY_PREFIX)
    api.persistence.save_inprogress(data=data, remaining_time_in_millis=60_000)  # another Lambda is mid-request
    before = api.table_items()

    status, headers, body = post(api)

    assert status == 409 and body["error"]["code"] == "idempotency_in_progress"
    assert headers["retry-after"] == "1"
    assert api.starter.started == [] and api.table_items() == before


def test_a_failed_start_is_503_records_the_run_failed_and_frees_the_key(api):
    api.starter.fail = RuntimeError("ThrottlingException: rate exceeded")
    status, _, data = post(api)
    assert status == 503 and data["error"]["code"] == "run_start_failed"
    assert "Throttling" not in data["error"]["message"]
    runs, _ = api.store.list_runs("acme")
    assert [r.status.value for r in runs] == ["FAILED"]
    assert idempotency_items(api) == []

    api.starter.fail = None
    status, _, retry = post(api)
    assert status == 202 and retry["run_id"] != runs[0].run_id
    assert api.starter.started == [retry["run_id"]]


def test_bad_input_with_a_key_leaves_no_record(api):
    status, _, _ = post(api, {"goal": "x", "crew": "nope"})
    assert status == 400
    assert idempotency_items(api) == []
    assert post(api, {"goal": "x"})[0] == 202


def test_the_memory_persistence_layer_has_the_same_semantics():
    from api_helpers import Api, RecordingStarter, RecordingTasks

    store, starter, tasks = MemoryRunStore(), RecordingStarter(), RecordingTasks()
    app = build_app(store, starter, tasks, MemoryPersistenceLayer(), ApiConfig())
    api = Api(app=app, store=store, starter=starter, tasks=tasks, ddb=None, persistence=None, table="")
    _, _, first = post(api)
    _, headers, second = post(api)
    status, _, _ = post(api, {"goal": "other"})
    assert second["run_id"] == first["run_id"] and headers["idempotent-replayed"] == "true"
    assert status == 422 and starter.started == [first["run_id"]]
