"""Fixtures of the resilience unit tests: one moto DynamoDB for a module (its calls serialised like the local
runtime's hook does) and ``any_store``, the contract tests' two store adapters on it."""

from __future__ import annotations

import pytest
from stepcrew.store.base import RunStore


@pytest.fixture
def any_store(run_store) -> RunStore:
    return run_store  # tests/unit/conftest.py: both adapters
