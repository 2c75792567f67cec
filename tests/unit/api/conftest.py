"""Fixtures of the API unit tests: the real resolver on a moto DynamoDB table (DynamoRunStore and Powertools'
DynamoDB idempotency layer on the same table, as deployed), with a recording execution starter and task resumer
instead of Step Functions. No sockets: moto runs in-process."""

from __future__ import annotations

import itertools

import pytest
from api_helpers import TABLE, Api

from stepcrew.store.schema import create_table


_TABLES = itertools.count()


@pytest.fixture
def aws(moto_dynamodb) -> tuple:
    """A fresh run table for each test: (client, table name)."""
    name = f"{TABLE}-{next(_TABLES)}"
    create_table(moto_dynamodb, name)
    return moto_dynamodb, name


@pytest.fixture
def api(aws) -> Api:
    return Api.build(aws)
