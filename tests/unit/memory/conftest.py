"""Fixtures of the memory tests: both memory-store adapters (in memory; DynamoDB on moto), a fake guard."""

from __future__ import annotations

import itertools
import re

import pytest
from stepcrew.guards.base import Finding, Guard
from stepcrew.memory.store import DynamoMemoryStore, InMemoryMemoryStore, MemoryStore
from stepcrew.store.dynamodb import DynamoRunStore
from stepcrew.store.schema import create_table

_TABLES = itertools.count(1)


@pytest.fixture(params=["memory", "dynamo"])
def mstore(request) -> MemoryStore:
    if request.param == "memory":
        return InMemoryMemoryStore()
    client = request.getfixturevalue("moto_dynamodb")
    table = f"stepcrew-memory-{next(_TABLES)}"
    create_table(client, table)
    return DynamoMemoryStore(DynamoRunStore(table, client=client))


class FakeGuard(Guard):
    """E-mails are PII; "ignore previous instructions" is an injection. Counts its calls."""

    name = "fake"
    EMAIL = re.compile(r"[\w.]+@[\w.]+\.\w+")
    INJECTION = re.compile(r"ignore (all )?previous instructions", re.I)

    def __init__(self) -> None:
        self.calls = 0

    def pii(self, text: str) -> list[Finding]:
        self.calls += 1
        return [Finding(kind="pii", entity="EMAIL_ADDRESS", start=m.start(), end=m.end(), score=1.0)
                for m in self.EMAIL.finditer(text)]

    def injection(self, text: str) -> list[Finding]:
        return [Finding(kind="injection", entity="instruction_override", start=m.start(), end=m.end(), score=1.0)
                for m in self.INJECTION.finditer(text)]

    def topics(self, text, denied):
        return []


@pytest.fixture
def guard() -> FakeGuard:
    return FakeGuard()
