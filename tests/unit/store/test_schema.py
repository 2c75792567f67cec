"""The table made by schema.create_table, and the key helpers that the CDK stack and both adapters share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from stepcrew.models import Message
from stepcrew.store import schema
from stepcrew.store.base import StoreError


def test_create_table_keys_gsi_billing_and_ttl():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        schema.create_table(client, "crew")
        table = client.describe_table(TableName="crew")["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {("PK", "HASH"), ("SK", "RANGE")}
        [gsi] = table["GlobalSecondaryIndexes"]
        assert gsi["IndexName"] == schema.GSI1_NAME == "GSI1"
        assert [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] == [("GSI1PK", "HASH"),
                                                                                  ("GSI1SK", "RANGE")]
        assert gsi["Projection"]["ProjectionType"] == "ALL"
        assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
            "PK": "S", "SK": "S", "GSI1PK": "S", "GSI1SK": "S"}
        ttl = client.describe_time_to_live(TableName="crew")["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_key_formats():
    at = datetime(2025, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    assert schema.run_pk("r1") == "RUN#r1"
    assert schema.tenant_pk("acme") == "TENANT#acme"
    assert schema.gsi1_sk(at, "r1") == "2025-03-04T05:06:07.000089Z#r1"
    assert schema.task_sk("load") == "TASK#load"
    assert schema.msg_sk("load", 7) == "MSG#load#000007"
    assert schema.review_sk(3) == "REVIEW#003"
    assert schema.usage_sk("anthropic:claude") == "USAGE#anthropic:claude"
    assert schema.event_sk(schema.new_event_cursor(at)).startswith("EVENT#2025-03-04T05:06:07.000089Z#")
    assert len(schema.new_event_cursor(at).split("#")[1]) == 8


def test_timestamps_sort_as_strings_across_time_zones():
    a = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))  # 07:00 UTC
    b = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    assert schema.iso_ts(a) < schema.iso_ts(b)
    assert schema.iso_ts(datetime(2025, 1, 1)) == "2025-01-01T00:00:00.000000Z"  # naive = UTC


def test_key_limits():
    with pytest.raises(ValueError):
        schema.msg_prefix("a#b")
    with pytest.raises(StoreError):
        schema.msg_sk("a", schema.MAX_MESSAGES_PER_CONVERSATION + 1)
    with pytest.raises(ValueError):
        schema.review_sk(1000)


def test_short_lived_items_carry_ttl_and_item_size_follows_the_rules():
    assert schema.expires_at(1_000) == 1_000 + 90 * 86_400
    item = schema.message_item("r1", "a", 1, Message(role="user", content="hi"), ttl=None)
    assert isinstance(item[schema.TTL_ATTRIBUTE], int) and item[schema.TTL_ATTRIBUTE] > 1_700_000_000
    assert schema.item_size({"ab": "héllo"}) == 2 + 6
    assert schema.item_size({"n": 12345}) == 1 + 4  # 5 digits -> 3 bytes + 1
    assert schema.item_size({"m": {"k": [True, None]}}) == 1 + 3 + (1 + (3 + 2 + 2) + 1)
    assert schema.check_item_size({"PK": "x" * 1000}) == {"PK": "x" * 1000}
    with pytest.raises(StoreError, match="400 KB"):
        schema.check_item_size({"PK": "RUN#r", "SK": "REPORT", "text": "x" * schema.MAX_ITEM_BYTES})
