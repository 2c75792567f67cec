"""Usage of a model call is one DynamoDB write (META only), and records written before that layout still read."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
from boto3.dynamodb.types import TypeSerializer
import pytest
from moto import mock_aws

from stepcrew.models import AgentRole, Crew, ModelUsage, Run, Usage
from stepcrew.store import schema
from stepcrew.store.dynamodb import DynamoRunStore


def _role(name: str) -> AgentRole:
    return AgentRole(name=name, role=name, goal="g")


def _run(**kw) -> Run:
    return Run(run_id="r1", tenant="acme", goal="g", crew=Crew(name="c", planner=_role("p"), workers=[_role("w")],
                                                               reviewer=_role("r"), synthesizer=_role("s")),
               created_at=datetime(2025, 1, 2, tzinfo=UTC), **kw)


class _Counting:
    """A DynamoDB client wrapper counting calls by operation."""

    def __init__(self, client):
        self._client, self.calls = client, []

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name in ("meta", "exceptions", "get_paginator"):
            return attr

        def call(*args, **kwargs):
            self.calls.append((name, kwargs.get("Key", {}).get("SK", {}).get("S")))
            return attr(*args, **kwargs)
        return call


@pytest.fixture
def client():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        schema.create_table(client, "t")
        yield client


def test_add_usage_is_one_update_of_meta_and_needs_no_read(client):
    counting = _Counting(client)
    store = DynamoRunStore("t", client=counting)
    store.create_run(_run())
    counting.calls.clear()
    usage = store.add_usage("r1", "anthropic:claude#x", 10, 3, 0.25, cache_read_tokens=4)
    assert counting.calls == [("update_item", "META")]
    assert usage.by_model["anthropic:claude#x"] == ModelUsage(input_tokens=10, output_tokens=3, cost_usd=0.25,
                                                              cache_read_tokens=4)
    counting.calls.clear()
    got = store.get_run("r1")
    assert [c[0] for c in counting.calls] == ["get_item"]  # no Query of USAGE# items
    assert got.usage == usage


def test_create_run_with_usage_writes_one_item(client):
    counting = _Counting(client)
    store = DynamoRunStore("t", client=counting)
    run = _run(usage=Usage(input_tokens=5, output_tokens=1, cost_usd=0.5,
                           by_model={"m": ModelUsage(input_tokens=5, output_tokens=1, cost_usd=0.5)}))
    store.create_run(run)
    assert [c[0] for c in counting.calls] == ["put_item"]
    assert store.get_run("r1").usage == run.usage


def test_legacy_usage_items_are_still_read(client):
    store = DynamoRunStore("t", client=client)
    store.create_run(_run())
    # a record of the earlier layout: totals on META, the breakdown in a USAGE#<model> item
    client.update_item(TableName="t", Key={"PK": {"S": "RUN#r1"}, "SK": {"S": "META"}},
                       UpdateExpression="SET input_tokens = :i, output_tokens = :o, cost_usd = :c",
                       ExpressionAttributeValues={":i": {"N": "7"}, ":o": {"N": "2"}, ":c": {"N": "0.1"}})
    legacy = schema.usage_item("r1", "old-model", ModelUsage(input_tokens=7, output_tokens=2, cost_usd=0.1))
    client.put_item(TableName="t", Item=TypeSerializer().serialize(legacy)["M"])
    usage = store.get_run("r1").usage
    assert usage.input_tokens == 7
    assert usage.by_model == {"old-model": ModelUsage(input_tokens=7, output_tokens=2, cost_usd=0.1)}


def test_usage_attributes_stay_out_of_run_fields_and_the_list(client):
    store = DynamoRunStore("t", client=client)
    store.create_run(_run())
    store.add_usage("r1", "m", 1, 1, 0.0)
    runs, _ = store.list_runs("acme")
    assert runs[0].usage.input_tokens == 1 and runs[0].usage.by_model == {}  # totals only, as before


@pytest.mark.parametrize("model,total", [("", "input_tokens"), ("m", "bogus")])
def test_usage_attribute_rejects_bad_names(model, total):
    with pytest.raises(ValueError):
        schema.usage_attribute(model, total)
