"""Fixtures of the tool tests: the real penguins data, tool contexts and invocations, fresh dataset caches."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any

import pytest

from stepcrew.data import DEMO_DATASET
from stepcrew.models import ToolCall, ToolContext, ToolInvocation
from stepcrew.tools import datasets


@pytest.fixture(autouse=True)
def _fresh_caches(tmp_path_factory, monkeypatch):
    """Every test starts with no downloaded files, no loaded databases and no S3 client."""
    monkeypatch.setattr(datasets, "CACHE_DIR", tmp_path_factory.mktemp("dataset-cache"))
    datasets.reset_caches()
    yield
    datasets.reset_caches()


@pytest.fixture(scope="session")
def penguins_uri() -> str:
    return DEMO_DATASET.as_uri()


@pytest.fixture(scope="session")
def penguin_rows() -> list[dict[str, str]]:
    """The CSV read independently with the csv module (``NA`` = missing)."""
    with DEMO_DATASET.open(newline="") as f:
        return list(csv.DictReader(f))


def _invocation(name: str, arguments: dict[str, Any], data_uri: str | None = None) -> ToolInvocation:
    return ToolInvocation(context=ToolContext(run_id="run-test", subtask_id="t1", data_uri=data_uri),
                          call=ToolCall(call_id="c1", name=name, arguments=arguments))


@pytest.fixture
def make_invocation():
    """``make_invocation(tool_name, arguments, data_uri=None) -> ToolInvocation``."""
    return _invocation


@dataclass
class FakeLambdaContext:
    """The attributes Powertools' inject_lambda_context reads."""

    function_name: str = "tool"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:tool"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
