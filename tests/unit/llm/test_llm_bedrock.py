"""BedrockModel driven through a real bedrock-runtime client wrapped in a botocore Stubber (no network)."""

from __future__ import annotations

import json

import pytest
from botocore.stub import ANY
from llm_payloads import bedrock_text, bedrock_tool_use

from stepcrew.llm.base import (
    ModelAuthError,
    ModelBadRequestError,
    ModelThrottledError,
    ModelUnavailableError,
)
from stepcrew.llm.bedrock import BedrockModel
from stepcrew.llm.spotlight import unfence

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture
def stubbed(bedrock_client):
    client, stubber = bedrock_client
    return BedrockModel(SONNET, client=client), stubber


def test_text_reply_and_request_shape(allow_requests, stubbed, basic_request):
    model, stub = stubbed
    stub.add_response("converse", bedrock_text(), expected_params={
        "modelId": SONNET,
        "messages": [{"role": "user", "content": [{"text": "How many rows?"}]}],
        "system": [{"text": "You are an analyst."}],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.1},
        "toolConfig": {"tools": [{"toolSpec": {
            "name": "sql_query", "description": "Run a read-only SQL query on the run's dataset.",
            "inputSchema": {"json": basic_request.tools[0].parameters}}}]},
    })
    resp = model.request(basic_request)
    assert resp.text == "There are 42 rows."
    assert resp.stop_reason == "end_turn"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (2000, 500)
    # the Bedrock profile id is priced like claude-sonnet-4-5: $3 / $15 per 1M
    assert resp.usage.cost_usd == pytest.approx((2000 * 3 + 500 * 15) / 1e6)
    assert resp.model == SONNET


def test_tool_use_reply(allow_requests, stubbed, basic_request):
    model, stub = stubbed
    stub.add_response("converse", bedrock_tool_use("select 1"), expected_params=None)
    resp = model.request(basic_request)
    assert resp.stop_reason == "tool_use"
    assert resp.text == "Counting."
    assert [(c.call_id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "sql_query", {"sql": "select 1"})]


def test_tool_results_become_tool_result_blocks_with_status(allow_requests, stubbed, tool_round_request):
    model, stub = stubbed
    seen: dict = {}
    stub.add_response("converse", bedrock_text(), expected_params={
        "modelId": ANY, "messages": ANY, "system": ANY, "inferenceConfig": ANY, "toolConfig": ANY})
    model._client.meta.events.register("provide-client-params.bedrock-runtime.Converse",
                                lambda params, **_: seen.update(params))
    model.request(tool_round_request)
    messages = seen["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][1] == {"toolUse": {"toolUseId": "toolu_1", "name": "sql_query",
                                                     "input": {"sql": "select count(*) from t"}}}
    ok, failed = (b["toolResult"] for b in messages[2]["content"])
    assert ok["toolUseId"] == "toolu_1" and ok["status"] == "success"
    assert json.loads(unfence(ok["content"][0]["text"])[0]) == {"rows": [[42]]}
    assert failed["toolUseId"] == "toolu_2" and failed["status"] == "error"
    assert json.loads(unfence(failed["content"][0]["text"])[0])["error"]["type"] == "QueryError"


def test_max_tokens_stop_reason(allow_requests, stubbed, basic_request):
    model, stub = stubbed
    stub.add_response("converse", {**bedrock_text(), "stopReason": "max_tokens"})
    assert model.request(basic_request).stop_reason == "max_tokens"


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("ThrottlingException", 429, ModelThrottledError),
    ("ServiceUnavailableException", 503, ModelUnavailableError),
    ("InternalServerException", 500, ModelUnavailableError),
    ("ModelNotReadyException", 429, ModelUnavailableError),
    ("ModelTimeoutException", 408, ModelUnavailableError),
    ("AccessDeniedException", 403, ModelAuthError),
    ("UnrecognizedClientException", 403, ModelAuthError),
    ("ValidationException", 400, ModelBadRequestError),
    ("ResourceNotFoundException", 404, ModelBadRequestError),
])
def test_client_errors_map_to_model_errors(allow_requests, stubbed, basic_request, code, status, expected):
    model, stub = stubbed
    stub.add_client_error("converse", service_error_code=code, service_message="nope", http_status_code=status)
    with pytest.raises(expected):
        model.request(basic_request)


def test_built_client_does_not_retry(allow_requests):
    model = BedrockModel(SONNET, region_name="us-east-1")
    client = model._get_client(30.0)
    # one attempt in total: botocore's "max_attempts" would count retries, not attempts
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert client.meta.config.read_timeout == 30.0
    assert model._get_client(99.0) is client
