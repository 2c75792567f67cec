"""Fixtures for the LLM adapter tests: requests, a recording fake HTTP transport (httpx2, which the anthropic and
openai SDKs use), a stubbed bedrock-runtime client, and the real-request switch turned on for one test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from stepcrew.llm.base import ModelRequest, ModelSettings, ToolSpec
from stepcrew.llm.testing import override_allow_model_requests
from stepcrew.models import Message, ToolCall, ToolError, ToolResult

SQL_TOOL = ToolSpec(name="sql_query", description="Run a read-only SQL query on the run's dataset.",
                    parameters={"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]})


@pytest.fixture
def allow_requests() -> Iterator[None]:
    """Real adapters may run (they still only reach fakes)."""
    with override_allow_model_requests(True):
        yield


@pytest.fixture
def bedrock_client():
    """``(client, stubber)``: a real bedrock-runtime client behind a botocore Stubber (each expected request is also
    validated against botocore's service model); every queued response must be used."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def basic_request() -> ModelRequest:
    """Given a system prompt, one user turn and one tool."""
    return ModelRequest(
        messages=[Message(role="system", content="You are an analyst."),
                  Message(role="user", content="How many rows?")],
        tools=[SQL_TOOL], settings=ModelSettings(model="ignored", max_tokens=512, temperature=0.1, timeout_s=30))


@pytest.fixture
def tool_round_request() -> ModelRequest:
    """Given a conversation where the model asked for two tools, one succeeded and one failed."""
    return ModelRequest(
        messages=[
            Message(role="system", content="You are an analyst."),
            Message(role="user", content="How many rows?"),
            Message(role="assistant", content="Let me look.", tool_calls=[
                ToolCall(call_id="toolu_1", name="sql_query", arguments={"sql": "select count(*) from t"}),
                ToolCall(call_id="toolu_2", name="sql_query", arguments={"sql": "select nope"})]),
            Message(role="tool", tool_results=[
                ToolResult(call_id="toolu_1", name="sql_query", ok=True, content={"rows": [[42]]}),
                ToolResult(call_id="toolu_2", name="sql_query", ok=False,
                           error=ToolError(type="QueryError", message="no column nope"))]),
        ],
        tools=[SQL_TOOL], settings=ModelSettings(model="ignored"))


class FakeHTTP:
    """A MockTransport handler that replays queued responses (or raises queued exceptions) and records requests."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.queue: list[Any] = []

    def add(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> FakeHTTP:
        import httpx2

        self.queue.append(httpx2.Response(status, json=body, headers=headers))
        return self

    def add_exception(self, exc: Exception) -> FakeHTTP:
        self.queue.append(exc)
        return self

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        item = self.queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def client(self) -> Any:
        import httpx2

        return httpx2.Client(transport=httpx2.MockTransport(self))

    def body(self, i: int = -1) -> dict[str, Any]:
        return json.loads(self.requests[i].content)


@pytest.fixture
def fake_http() -> FakeHTTP:
    return FakeHTTP()
