"""Fixtures shared by the unit tests: one moto DynamoDB account per module, and a run store of each adapter."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler
from stepcrew.local import hook
from stepcrew.store.dynamodb import DynamoRunStore
from stepcrew.store.memory import MemoryRunStore
from stepcrew.store.schema import create_table

_TABLES = itertools.count()


@pytest.fixture(scope="module")
def moto_dynamodb() -> Iterator[object]:
    """One moto account per module (tests make a fresh table each; building a client costs ~0.1-0.2 s), with each
    DynamoDB request under a lock, the local hook's own serialisation: moto does not apply a request to an item
    atomically as DynamoDB does, so without it parallel callers would see torn writes the real service never shows."""
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        mp.setattr(DynamoHandler, "call_action", hook._serialised(DynamoHandler.call_action))
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture(params=["memory", "dynamo"])
def run_store(request):
    """A fresh run store of each adapter: the in-memory fake, and DynamoRunStore on a new table of the module's moto
    account (contract tests run against both)."""
    if request.param == "memory":
        return MemoryRunStore()
    client = request.getfixturevalue("moto_dynamodb")
    table = f"stepcrew-{next(_TABLES)}"
    create_table(client, table)
    return DynamoRunStore(table, client=client)
