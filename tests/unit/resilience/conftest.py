"""Fixtures of the resilience unit tests: one moto DynamoDB for a module (its calls serialised like the local
runtime's hook does) and ``any_store``, the contract tests' two store adapters on it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler
from stepcrew.local import hook
from stepcrew.store.base import RunStore
from stepcrew.store.dynamodb import DynamoRunStore
from stepcrew.store.memory import MemoryRunStore
from stepcrew.store.schema import create_table

_TABLE_NUMBERS = itertools.count()


@pytest.fixture(scope="module")
def moto_dynamodb() -> Iterator[object]:
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        mp.setattr(DynamoHandler, "call_action", hook._serialised(DynamoHandler.call_action))
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture(params=["memory", "dynamo"])
def any_store(request) -> RunStore:
    if request.param == "memory":
        return MemoryRunStore()
    client = request.getfixturevalue("moto_dynamodb")
    table = f"stepcrew-resilience-{next(_TABLE_NUMBERS)}"
    create_table(client, table)
    return DynamoRunStore(table, client=client)
