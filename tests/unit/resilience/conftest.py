"""Fixtures of the resilience unit tests: one moto DynamoDB for a module (its calls serialised like the local
runtime's hook does) and ``any_store``, the contract tests' two store adapters on it."""

from __future__ import annotations

import itertools

import pytest
from stepcrew.store.base import RunStore
from stepcrew.store.dynamodb import DynamoRunStore
from stepcrew.store.memory import MemoryRunStore
from stepcrew.store.schema import create_table

_TABLE_NUMBERS = itertools.count()


@pytest.fixture(params=["memory", "dynamo"])
def any_store(request) -> RunStore:
    if request.param == "memory":
        return MemoryRunStore()
    client = request.getfixturevalue("moto_dynamodb")
    table = f"stepcrew-resilience-{next(_TABLE_NUMBERS)}"
    create_table(client, table)
    return DynamoRunStore(table, client=client)
