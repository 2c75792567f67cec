"""OpenAIModel driven through the real openai SDK client over a mock HTTP transport (no network)."""

from __future__ import annotations

import json

import pytest
from llm_payloads import openai_error, openai_sql_call, openai_text, openai_tool_calls

from stepcrew.llm.base import (
    ModelAuthError,
    ModelBadRequestError,
    ModelThrottledError,
    ModelUnavailableError,
)
from stepcrew.llm.openai import COMPAT_PLACEHOLDER_KEY, OpenAIModel
from stepcrew.llm.spotlight import unfence

openai = pytest.importorskip("openai")
httpx2 = pytest.importorskip("httpx2")

SECRET_KEY = "sk-proj-SECRET-never-print-me"


def _model(fake_http, model: str = "gpt-4o", base_url: str | None = None) -> OpenAIModel:
    client = openai.OpenAI(api_key=SECRET_KEY, http_client=fake_http.client(), max_retries=0,
                           base_url=base_url or "https://api.openai.com/v1")
    return OpenAIModel(model, client=client, base_url=base_url)


def test_text_reply_maps_text_usage_and_cost(allow_requests, fake_http, basic_request):
    fake_http.add(200, openai_text(prompt_tokens=1000, completion_tokens=200))
    resp = _model(fake_http).request(basic_request)
    assert resp.text == "There are 42 rows."
    assert resp.stop_reason == "end_turn"
    assert resp.tool_calls == []
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (1000, 200)
    assert resp.usage.cost_usd == pytest.approx((1000 * 2.50 + 200 * 10.00) / 1e6)  # gpt-4o: $2.50 / $10 per 1M
    assert resp.model == "gpt-4o"


def test_cost_uses_the_price_of_the_model_that_answered(allow_requests, fake_http, basic_request):
    # Given an adapter bound to gpt-4o behind a router that served gpt-4o-mini
    payload = openai_text(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    payload["model"] = "gpt-4o-mini-2024-07-18"
    fake_http.add(200, payload)
    # When it is called
    resp = _model(fake_http).request(basic_request)
    # Then the cost is gpt-4o-mini's ($0.15 in / $0.60 out per 1M), and an unpriced answer id falls back
    assert resp.usage.cost_usd == pytest.approx(0.15 + 0.60)
    payload["model"] = "some-unlisted-snapshot"
    fake_http.add(200, payload)
    assert _model(fake_http).request(basic_request).usage.cost_usd == pytest.approx(2.50 + 10.00)


def test_request_body_has_function_tools_and_system_first(allow_requests, fake_http, basic_request):
    fake_http.add(200, openai_text())
    _model(fake_http).request(basic_request)
    body = fake_http.body()
    assert fake_http.requests[-1].url.path == "/v1/chat/completions"
    assert body["model"] == "gpt-4o"
    assert body["messages"] == [{"role": "system", "content": "You are an analyst."},
                                {"role": "user", "content": "How many rows?"}]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "sql_query", "description": "Run a read-only SQL query on the run's dataset.",
        "parameters": basic_request.tools[0].parameters}}]
    assert body["max_completion_tokens"] == 512 and "max_tokens" not in body
    assert body["temperature"] == 0.1


def test_compatible_server_gets_max_tokens(allow_requests, fake_http, basic_request):
    fake_http.add(200, openai_text())
    _model(fake_http, model="llama3.1", base_url="http://ollama.local:11434/v1").request(basic_request)
    body = fake_http.body()
    assert str(fake_http.requests[-1].url) == "http://ollama.local:11434/v1/chat/completions"
    assert body["max_tokens"] == 512 and "max_completion_tokens" not in body


def test_tool_call_reply_parses_arguments(allow_requests, fake_http, basic_request):
    fake_http.add(200, openai_sql_call("select count(*) from sales"))
    resp = _model(fake_http).request(basic_request)
    assert resp.stop_reason == "tool_use"
    assert [(c.call_id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("call_abc123", "sql_query", {"sql": "select count(*) from sales"})]


def test_malformed_arguments_become_raw_not_a_crash(allow_requests, fake_http, basic_request):
    fake_http.add(200, openai_tool_calls(("call_1", "sql_query", '{"sql": "select'), ("call_2", "sql_query", "[1]"),
                                         ("call_3", "sql_query", "")))
    resp = _model(fake_http).request(basic_request)
    assert resp.stop_reason == "tool_use"
    assert resp.tool_calls[0].arguments == {"_raw": '{"sql": "select'}
    assert resp.tool_calls[1].arguments == {"_raw": "[1]"}
    assert resp.tool_calls[2].arguments == {}


def test_tool_calls_win_over_a_stop_finish_reason(allow_requests, fake_http, basic_request):
    # Some compatible servers (Ollama) answer finish_reason "stop" with tool calls.
    fake_http.add(200, openai_tool_calls(("call_1", "sql_query", '{"sql": "select 1"}'), finish_reason="stop"))
    assert _model(fake_http).request(basic_request).stop_reason == "tool_use"


def test_length_finish_reason_is_max_tokens(allow_requests, fake_http, basic_request):
    fake_http.add(200, openai_text(finish_reason="length"))
    assert _model(fake_http).request(basic_request).stop_reason == "max_tokens"


def test_tool_results_become_tool_role_messages(allow_requests, fake_http, tool_round_request):
    fake_http.add(200, openai_text())
    _model(fake_http).request(tool_round_request)
    messages = fake_http.body()["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[2]["content"] == "Let me look."
    assert messages[2]["tool_calls"][0] == {"id": "toolu_1", "type": "function", "function": {
        "name": "sql_query", "arguments": json.dumps({"sql": "select count(*) from t"})}}
    assert messages[3]["tool_call_id"] == "toolu_1"
    assert json.loads(unfence(messages[3]["content"])[0]) == {"rows": [[42]]}
    assert messages[4]["tool_call_id"] == "toolu_2"
    assert json.loads(unfence(messages[4]["content"])[0]) == {"error": {"type": "QueryError", "message": "no column nope"}}


@pytest.mark.parametrize(("status", "expected"), [
    (429, ModelThrottledError), (500, ModelUnavailableError), (503, ModelUnavailableError),
    (401, ModelAuthError), (403, ModelAuthError), (400, ModelBadRequestError), (404, ModelBadRequestError),
    (422, ModelBadRequestError),
])
def test_http_errors_map_to_model_errors_without_retry(allow_requests, fake_http, basic_request, status, expected):
    # OpenAI's real 401 text echoes part of the key: the adapter must drop it.
    fake_http.add(status, openai_error(f"Incorrect API key provided: {SECRET_KEY}", "invalid_request_error"))
    with pytest.raises(expected) as info:
        _model(fake_http).request(basic_request)
    assert len(fake_http.requests) == 1
    if expected is ModelAuthError:
        assert "rejected the API key" in str(info.value)
        assert SECRET_KEY not in str(info.value)
        assert info.value.__cause__ is None


def test_bad_request_keeps_the_provider_reason(allow_requests, fake_http, basic_request):
    fake_http.add(404, openai_error("The model `gpt-9` does not exist", "invalid_request_error", "model_not_found"))
    with pytest.raises(ModelBadRequestError, match="gpt-9"):
        _model(fake_http).request(basic_request)


def test_connection_error_is_unavailable(allow_requests, fake_http, basic_request):
    fake_http.add_exception(httpx2.ConnectError("connection refused"))
    with pytest.raises(ModelUnavailableError):
        _model(fake_http).request(basic_request)


def test_built_client_has_no_sdk_retries_and_uses_env_base_url(allow_requests, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.local:8000/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("STEPCREW_OPENAI_SECRET", raising=False)
    model = OpenAIModel("qwen2.5")
    client = model._get_client()
    assert client.max_retries == 0
    assert str(client.base_url) == "http://vllm.local:8000/v1/"
    assert client.api_key == COMPAT_PLACEHOLDER_KEY  # compatible servers need no key
    assert model._get_client() is client


def test_missing_key_for_openai_itself_names_the_env_var(allow_requests, monkeypatch, basic_request):
    for var in ("OPENAI_API_KEY", "STEPCREW_OPENAI_SECRET", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ModelAuthError, match="OPENAI_API_KEY"):
        OpenAIModel("gpt-4o").request(basic_request)
