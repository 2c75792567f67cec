"""Fixtures for the role-function tests: an in-memory store, the default crew, a run, and a test provider whose
model is a ScriptedModel/FunctionModel (registered under a test name, unregistered after the test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stepcrew.crew import load_crew
from stepcrew.llm import registry
from stepcrew.llm.base import Model
from stepcrew.models import Crew, Run, RunStatus
from stepcrew.store.memory import MemoryRunStore

from domain_helpers import RUN_ID, TEST_PROVIDER, FakeContext



@pytest.fixture
def sfn():
    """A boto3 Step Functions client under a botocore Stubber (``sfn.stub``): queue answers with ``add_response``;
    every queued answer must be used."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        client.stub = stub
        yield client
        stub.assert_no_pending_responses()


@pytest.fixture
def store() -> MemoryRunStore:
    return MemoryRunStore()


@pytest.fixture(scope="session")
def crew() -> Crew:
    return load_crew("default")


@pytest.fixture
def use_model() -> Iterator[Callable[[Model], str]]:
    """``use_model(model)`` registers ``model`` as provider TEST_PROVIDER (both tiers) and returns the name."""
    registered = []

    def use(model: Model) -> str:
        registry.register(TEST_PROVIDER, lambda tier: model)
        registered.append(TEST_PROVIDER)
        return TEST_PROVIDER

    yield use
    if registered:
        registry.unregister(TEST_PROVIDER)


@pytest.fixture
def make_run(store: MemoryRunStore, crew: Crew) -> Callable[..., Run]:
    """``make_run(status=RUNNING, provider=TEST_PROVIDER, **fields)`` writes a run record and returns it."""

    def make(status: RunStatus = RunStatus.RUNNING, **fields: Any) -> Run:
        values = {"run_id": RUN_ID, "goal": "Compare the penguin species by body mass.", "crew": crew,
                  "provider": TEST_PROVIDER, "status": status, **fields}
        run = Run(**values)
        store.create_run(run)
        return run

    return make


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()
