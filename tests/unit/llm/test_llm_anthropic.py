"""AnthropicModel driven through the real anthropic SDK client over a mock HTTP transport (no network)."""

from __future__ import annotations

import json

import pytest
from llm_payloads import anthropic_error, anthropic_text, anthropic_tool_use

from stepcrew.llm.anthropic import AnthropicModel
from stepcrew.llm.base import (
    ModelAuthError,
    ModelBadRequestError,
    ModelThrottledError,
    ModelUnavailableError,
)
from stepcrew.llm.spotlight import unfence

anthropic = pytest.importorskip("anthropic")
httpx2 = pytest.importorskip("httpx2")

SECRET_KEY = "sk-ant-api03-SECRET-never-print-me"


def _model(fake_http, model: str = "claude-sonnet-4-5") -> AnthropicModel:
    client = anthropic.Anthropic(api_key=SECRET_KEY, http_client=fake_http.client(), max_retries=0)
    return AnthropicModel(model, client=client)


def test_text_reply_maps_text_usage_and_cost(allow_requests, fake_http, basic_request):
    # Given a provider that answers with text
    fake_http.add(200, anthropic_text(input_tokens=1200, output_tokens=300))
    # When the adapter is called
    resp = _model(fake_http).request(basic_request)
    # Then text, stop reason, usage and cost (sonnet 4.5: $3 in / $15 out per 1M) are mapped
    assert resp.text == "There are 42 rows."
    assert resp.stop_reason == "end_turn"
    assert resp.tool_calls == []
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (1200, 300)
    assert resp.usage.cost_usd == pytest.approx((1200 * 3 + 300 * 15) / 1e6)
    assert resp.model == "claude-sonnet-4-5"


def test_cost_uses_the_price_of_the_model_that_answered(allow_requests, fake_http, basic_request):
    # Given an adapter bound to sonnet 4.5 whose answer says haiku 3 served it
    payload = anthropic_text(input_tokens=1_000_000, output_tokens=1_000_000)
    payload["model"] = "claude-3-haiku-20240307"
    fake_http.add(200, payload)
    # When it is called
    resp = _model(fake_http).request(basic_request)
    # Then the cost is haiku 3's ($0.25 in / $1.25 out per 1M), not sonnet's
    assert resp.usage.cost_usd == pytest.approx(0.25 + 1.25)


def test_request_body_has_separate_system_tools_and_settings(allow_requests, fake_http, basic_request):
    fake_http.add(200, anthropic_text())
    _model(fake_http).request(basic_request)
    body = fake_http.body()
    assert fake_http.requests[-1].url.path == "/v1/messages"
    assert body["model"] == "claude-sonnet-4-5"
    assert body["system"] == "You are an analyst."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "How many rows?"}]}]
    assert body["tools"] == [{"name": "sql_query", "description": "Run a read-only SQL query on the run's dataset.",
                              "input_schema": basic_request.tools[0].parameters}]
    assert body["max_tokens"] == 512
    assert "temperature" not in body  # API 2026-10-21 refuses sampling parameters


def test_tool_use_reply_becomes_tool_calls(allow_requests, fake_http, basic_request):
    fake_http.add(200, anthropic_tool_use("select count(*) from sales"))
    resp = _model(fake_http).request(basic_request)
    assert resp.stop_reason == "tool_use"
    assert resp.text == "I'll count the rows."
    assert len(resp.tool_calls) == 1
    call = resp.tool_calls[0]
    assert (call.call_id, call.name, call.arguments) == ("toolu_01A09q90qw90lq917835lq9", "sql_query",
                                                         {"sql": "select count(*) from sales"})


def test_tool_results_become_tool_result_blocks_with_is_error(allow_requests, fake_http, tool_round_request):
    fake_http.add(200, anthropic_text())
    _model(fake_http).request(tool_round_request)
    messages = fake_http.body()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "sql_query", "input": {"sql": "select count(*) from t"}},
        {"type": "tool_use", "id": "toolu_2", "name": "sql_query", "input": {"sql": "select nope"}}]
    ok, failed = messages[2]["content"]
    assert ok["type"] == "tool_result" and ok["tool_use_id"] == "toolu_1" and ok["is_error"] is False
    assert json.loads(unfence(ok["content"])[0]) == {"rows": [[42]]}
    assert failed["tool_use_id"] == "toolu_2" and failed["is_error"] is True
    assert json.loads(unfence(failed["content"])[0]) == {"error": {"type": "QueryError", "message": "no column nope"}}


def test_max_tokens_stop_reason(allow_requests, fake_http, basic_request):
    fake_http.add(200, anthropic_text(stop_reason="max_tokens"))
    assert _model(fake_http).request(basic_request).stop_reason == "max_tokens"


@pytest.mark.parametrize(("status", "kind", "expected"), [
    (429, "rate_limit_error", ModelThrottledError),
    (500, "api_error", ModelUnavailableError),
    (529, "overloaded_error", ModelUnavailableError),
    (401, "authentication_error", ModelAuthError),
    (403, "permission_error", ModelAuthError),
    (400, "invalid_request_error", ModelBadRequestError),
    (404, "not_found_error", ModelBadRequestError),
])
def test_http_errors_map_to_model_errors_without_retry(allow_requests, fake_http, basic_request, status, kind,
                                                       expected):
    fake_http.add(status, anthropic_error(kind, f"x-api-key {SECRET_KEY} problem"))
    with pytest.raises(expected) as info:
        _model(fake_http).request(basic_request)
    assert len(fake_http.requests) == 1  # no SDK retry
    if expected is ModelAuthError:
        assert "rejected the API key" in str(info.value)
        assert SECRET_KEY not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_connection_error_is_unavailable(allow_requests, fake_http, basic_request):
    fake_http.add_exception(httpx2.ConnectError("connection refused"))
    with pytest.raises(ModelUnavailableError):
        _model(fake_http).request(basic_request)


def test_timeout_is_unavailable(allow_requests, fake_http, basic_request):
    fake_http.add_exception(httpx2.ReadTimeout("read timed out"))
    with pytest.raises(ModelUnavailableError):
        _model(fake_http).request(basic_request)


def test_built_client_has_no_sdk_retries_and_is_cached(allow_requests):
    model = AnthropicModel("claude-haiku-4-5", api_key="sk-test")
    client = model._get_client()
    assert client.max_retries == 0
    assert model._get_client() is client


def test_missing_key_names_the_env_var(allow_requests, monkeypatch, basic_request):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("STEPCREW_ANTHROPIC_SECRET", raising=False)
    with pytest.raises(ModelAuthError, match="ANTHROPIC_API_KEY"):
        AnthropicModel("claude-haiku-4-5").request(basic_request)
