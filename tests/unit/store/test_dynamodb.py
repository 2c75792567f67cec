"""DynamoRunStore specifics beyond the port contract: the items it writes and how it reports DynamoDB errors."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from stepcrew.models import AgentRole, Crew, Message, ProgressEvent, Run
from stepcrew.store import schema
from stepcrew.store.base import StoreError
from stepcrew.store.dynamodb import DynamoRunStore


def _role(name: str) -> AgentRole:
    return AgentRole(name=name, role=name, goal="g")


RUN = Run(run_id="r1", tenant="acme", goal="g", crew=Crew(name="c", planner=_role("p"), workers=[_role("w")],
                                                          reviewer=_role("r"), synthesizer=_role("s")),
          created_at=datetime(2025, 1, 2, tzinfo=UTC))


@pytest.fixture
def client():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        schema.create_table(client, "t")
        yield client


def _items(client) -> dict[str, dict]:
    return {i["SK"]["S"]: i for i in client.query(TableName="t", KeyConditionExpression="PK = :pk",
                                                  ExpressionAttributeValues={":pk": {"S": "RUN#r1"}})["Items"]}


def test_item_layout_keys_gsi_and_ttl(client):
    store = DynamoRunStore("t", client=client)
    store.create_run(RUN)
    store.add_usage("r1", "m1", 3, 4, 0.5)
    store.append_messages("r1", "w", [Message(role="user", content="hi")])
    cursor = store.add_event(ProgressEvent(run_id="r1", kind="run_started"))
    items = _items(client)
    meta = items["META"]
    assert meta["GSI1PK"] == {"S": "TENANT#acme"} and meta["GSI1SK"] == {"S": "2025-01-02T00:00:00.000000Z#r1"}
    assert meta["cost_usd"] == {"N": "0.5"} and meta["input_tokens"] == {"N": "3"}
    assert "expires_at" not in meta
    assert meta["U#m1#output_tokens"] == {"N": "4"} and meta["U#m1#input_tokens"] == {"N": "3"}
    assert not any(sk.startswith("USAGE#") for sk in items)  # per-model usage lives on META (one write per call)
    for sk in ("MSG#w#000001", "MSGSEQ#w", f"EVENT#{cursor}"):
        assert int(items[sk]["expires_at"]["N"]) > 1_700_000_000
    assert items["MSGSEQ#w"]["count"] == {"N": "1"}


def test_the_crew_is_one_json_string_and_old_map_records_still_read(client):
    store = DynamoRunStore("t", client=client)
    store.create_run(RUN)
    meta = _items(client)["META"]
    assert set(meta["crew"]) == {"S"} and Crew.model_validate_json(meta["crew"]["S"]) == RUN.crew
    # a record written before the crew became a string: the crew as a DynamoDB map
    from boto3.dynamodb.types import TypeSerializer

    old = {**meta, "crew": TypeSerializer().serialize(schema.to_dynamo(RUN.crew.model_dump(mode="json")))}
    client.put_item(TableName="t", Item=old)
    assert store.get_run("r1").crew == RUN.crew


def test_client_errors_become_store_errors():
    with mock_aws():
        store = DynamoRunStore("missing", client=boto3.client("dynamodb", region_name="us-east-1"))
        with pytest.raises(StoreError, match="ResourceNotFoundException"):
            store.get_report("r1")


def test_builds_its_own_client_when_none_given():
    with mock_aws():
        schema.create_table(boto3.client("dynamodb", region_name="us-east-1"), "t")
        store = DynamoRunStore("t")
        assert store.put_report("r1", "x") == 1
