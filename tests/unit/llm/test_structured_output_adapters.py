"""Each adapter sends ``ModelRequest.response_format`` through its provider's native mechanism (payload assertions
on the loopback / stubbed clients) and returns the structured reply as JSON text: OpenAI ``response_format``
json_schema, Anthropic a forced tool, Bedrock Converse a tool forced with ``toolChoice``."""

from __future__ import annotations

import json

import pytest
from llm_payloads import anthropic_text, bedrock_text, openai_text

from stepcrew.llm.anthropic import AnthropicModel
from stepcrew.llm.base import ModelRequest, ModelSettings, ResponseFormat, ToolSpec
from stepcrew.llm.bedrock import BedrockModel
from stepcrew.llm.openai import OpenAIModel
from stepcrew.models import Message

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["accuracy", "feedback"],
          "properties": {"accuracy": {"type": "number", "minimum": 0, "maximum": 1}, "feedback": {"type": "string"}}}
REVIEW = ResponseFormat(name="review", json_schema=SCHEMA)
ANSWER = {"accuracy": 0.75, "feedback": "name the period"}
SONNET_BEDROCK = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SQL_TOOL = ToolSpec(name="sql_query", description="Run a read-only SQL query on the run's dataset.",
                    parameters={"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]})


def _request(fmt: ResponseFormat | None = REVIEW, tools: list[ToolSpec] | None = None) -> ModelRequest:
    return ModelRequest(messages=[Message(role="system", content="You review reports."),
                                  Message(role="user", content="Score this report.")],
                        tools=tools or [], settings=ModelSettings(model="ignored"), response_format=fmt)


# ----------------------------------------------------------------------------------------------- openai
def _openai(fake_http, **kw) -> OpenAIModel:
    client = openai.OpenAI(api_key="k", http_client=fake_http.client(), max_retries=0,
                           base_url="https://api.openai.com/v1")
    return OpenAIModel("gpt-4o", client=client, **kw)


def test_openai_sends_a_json_schema_response_format(allow_requests, fake_http):
    fake_http.add(200, openai_text(json.dumps(ANSWER)))
    model = _openai(fake_http)
    resp = model.request(_request())
    assert fake_http.body()["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "review", "schema": SCHEMA, "strict": False}}
    assert model.supports_response_format()
    assert json.loads(resp.text) == ANSWER and resp.stop_reason == "end_turn"


def test_openai_strict_is_passed_on(allow_requests, fake_http):
    fake_http.add(200, openai_text(json.dumps(ANSWER)))
    _openai(fake_http).request(_request(REVIEW.model_copy(update={"strict": True})))
    assert fake_http.body()["response_format"]["json_schema"]["strict"] is True


def test_openai_without_the_mechanism_sends_no_response_format(allow_requests, fake_http):
    fake_http.add(200, openai_text("```json\n{}\n```"))
    model = _openai(fake_http, native_response_format=False)
    model.request(_request())
    assert "response_format" not in fake_http.body() and not model.supports_response_format()


def test_openai_without_a_format_sends_none(allow_requests, fake_http):
    fake_http.add(200, openai_text())
    _openai(fake_http).request(_request(None))
    assert "response_format" not in fake_http.body()


# ----------------------------------------------------------------------------------------------- anthropic
def _anthropic(fake_http) -> AnthropicModel:
    return AnthropicModel("claude-sonnet-4-5", client=anthropic.Anthropic(api_key="k", http_client=fake_http.client(),
                                                                          max_retries=0))


def _anthropic_tool_answer(name: str, payload: dict) -> dict:
    body = anthropic_text()
    body["content"] = [{"type": "tool_use", "id": "toolu_01", "name": name, "input": payload}]
    body["stop_reason"] = "tool_use"
    return body


def test_anthropic_forces_a_tool_and_returns_its_input_as_text(allow_requests, fake_http):
    fake_http.add(200, _anthropic_tool_answer("review", ANSWER))
    model = _anthropic(fake_http)
    resp = model.request(_request())
    body = fake_http.body()
    assert body["tool_choice"] == {"type": "tool", "name": "review"}
    assert body["tools"] == [{"name": "review", "description": "Give your reply as this tool's input.",
                              "input_schema": SCHEMA}]
    assert model.supports_response_format()
    assert json.loads(resp.text) == ANSWER
    assert resp.tool_calls == [] and resp.stop_reason == "end_turn"


def test_anthropic_strict_tool(allow_requests, fake_http):
    fake_http.add(200, _anthropic_tool_answer("review", ANSWER))
    _anthropic(fake_http).request(_request(REVIEW.model_copy(update={"strict": True, "description": "Scores."})))
    tool = fake_http.body()["tools"][0]
    assert tool["strict"] is True and tool["description"] == "Scores."


def test_anthropic_with_tools_of_its_own_does_not_force_one(allow_requests, fake_http):
    # forcing the reply tool would forbid the request's own tools: the text-parsing fallback applies
    fake_http.add(200, anthropic_text(json.dumps(ANSWER)))
    resp = _anthropic(fake_http).request(_request(tools=[SQL_TOOL]))
    body = fake_http.body()
    assert "tool_choice" not in body and [t["name"] for t in body["tools"]] == ["sql_query"]
    assert json.loads(resp.text) == ANSWER


def test_anthropic_other_tool_calls_stay_tool_calls(allow_requests, fake_http):
    fake_http.add(200, _anthropic_tool_answer("sql_query", {"sql": "select 1"}))
    resp = _anthropic(fake_http).request(_request(None, tools=[SQL_TOOL]))
    assert resp.text == "" and [c.name for c in resp.tool_calls] == ["sql_query"]


# ----------------------------------------------------------------------------------------------- bedrock
def _bedrock_tool_answer(name: str, payload: dict) -> dict:
    body = bedrock_text()
    body["output"]["message"]["content"] = [{"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": payload}}]
    body["stopReason"] = "tool_use"
    return body


def test_bedrock_forces_the_tool_with_tool_choice(allow_requests, bedrock_client):
    client, stub = bedrock_client
    stub.add_response("converse", _bedrock_tool_answer("review", ANSWER), expected_params={
        "modelId": SONNET_BEDROCK,
        "messages": [{"role": "user", "content": [{"text": "Score this report."}]}],
        "system": [{"text": "You review reports."}],
        "inferenceConfig": {"maxTokens": 2048, "temperature": 0.2},
        "toolConfig": {"tools": [{"toolSpec": {"name": "review", "description": "Give your reply as this tool's input.",
                                               "inputSchema": {"json": SCHEMA}}}],
                       "toolChoice": {"tool": {"name": "review"}}},
    })
    model = BedrockModel(SONNET_BEDROCK, client=client)
    resp = model.request(_request())
    assert model.supports_response_format()
    assert json.loads(resp.text) == ANSWER and resp.tool_calls == [] and resp.stop_reason == "end_turn"


def test_bedrock_non_claude_model_gets_no_forced_tool(allow_requests, bedrock_client):
    client, stub = bedrock_client
    llama = "meta.llama3-1-70b-instruct-v1:0"
    stub.add_response("converse", bedrock_text(json.dumps(ANSWER)), expected_params={
        "modelId": llama,
        "messages": [{"role": "user", "content": [{"text": "Score this report."}]}],
        "system": [{"text": "You review reports."}],
        "inferenceConfig": {"maxTokens": 2048, "temperature": 0.2},
    })
    model = BedrockModel(llama, client=client)
    resp = model.request(_request())
    assert not model.supports_response_format() and json.loads(resp.text) == ANSWER
