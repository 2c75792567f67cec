"""Provider prompt caching: cache markers on a long enough stable prefix (Anthropic ``cache_control``, Bedrock
``cachePoint``), none on a short one, cached token counts parsed per provider and priced at the cache rates.

Expected costs are written out by hand from the published rates (USD per 1M tokens): Claude Sonnet 4.5 input 3,
output 15, cache read 0.30 (0.1x), 5-minute cache write 3.75 (1.25x); gpt-4o input 2.50, cached input 1.25,
output 10; gpt-4.1 input 2.00, cached input 0.50.
"""

from __future__ import annotations

import json

import pytest
from llm_payloads import anthropic_text, bedrock_text, openai_text

from stepcrew.llm import caching, pricing
from stepcrew.llm.anthropic import AnthropicModel
from stepcrew.llm.base import ModelRequest, ModelSettings, ToolSpec
from stepcrew.llm.bedrock import BedrockModel
from stepcrew.llm.openai import OpenAIModel
from stepcrew.models import Message

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

SQL_TOOL = ToolSpec(name="sql_query", description="Run a read-only SQL query on the run's dataset.",
                    parameters={"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]})
SONNET_BEDROCK = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
#: ~1,500 estimated tokens (6,000 characters / 4): over Sonnet 4.5's 1,024 minimum, under Haiku 4.5's 4,096.
LONG_SYSTEM = ("You are the analyst of a crew. " + "Always cite the tool figures exactly. " * 157).strip()
SHORT_SYSTEM = "You are an analyst."


def _request(system: str, tools: list[ToolSpec] | None = None) -> ModelRequest:
    return ModelRequest(messages=[Message(role="system", content=system), Message(role="user", content="Rows?")],
                        tools=[SQL_TOOL] if tools is None else tools, settings=ModelSettings(model="ignored"))


def _anthropic(fake_http, model: str = "claude-sonnet-4-5") -> AnthropicModel:
    return AnthropicModel(model, client=anthropic.Anthropic(api_key="k", http_client=fake_http.client(),
                                                            max_retries=0))


def test_long_system_length_is_what_the_tests_assume():
    assert 5_500 < len(LONG_SYSTEM) < 6_500


# ----------------------------------------------------------------------------------------------- minimums
@pytest.mark.parametrize(("model", "minimum"), [
    ("claude-sonnet-4-5", 1024), ("claude-sonnet-4-5-20250929", 1024), (SONNET_BEDROCK, 1024),
    ("claude-haiku-4-5", 4096), ("us.anthropic.claude-haiku-4-5-20251001-v1:0", 4096),
    ("claude-opus-4-5", 4096), ("claude-sonnet-4-6", 2048), ("claude-3-5-haiku-latest", 2048),
    ("claude-opus-4-1", 1024), ("claude-some-future-model", 4096),
])
def test_minimum_cacheable_length_per_model(model, minimum):
    assert caching.min_cache_tokens(model) == minimum


@pytest.mark.parametrize("model", ["gpt-4o", "meta.llama3-1-70b-instruct-v1:0", "amazon.nova-pro-v1:0"])
def test_non_claude_models_get_no_marker(model):
    assert caching.min_cache_tokens(model) is None
    assert not caching.prefix_reaches_minimum(model, 10_000_000)


def test_the_estimate_is_four_characters_a_token_at_the_boundary():
    # Sonnet 4.5: 1,024 tokens = 4,096 characters by the estimate
    assert caching.prefix_reaches_minimum("claude-sonnet-4-5", 4096)
    assert not caching.prefix_reaches_minimum("claude-sonnet-4-5", 4095)


# ----------------------------------------------------------------------------------------------- anthropic
def test_anthropic_marks_the_system_block_of_a_long_prefix(allow_requests, fake_http):
    fake_http.add(200, anthropic_text())
    _anthropic(fake_http).request(_request(LONG_SYSTEM))
    body = fake_http.body()
    assert body["system"] == [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    # the one short tool is not long enough to cache on its own
    assert "cache_control" not in body["tools"][-1]


def test_anthropic_sends_no_marker_for_a_short_prefix(allow_requests, fake_http):
    fake_http.add(200, anthropic_text())
    _anthropic(fake_http).request(_request(SHORT_SYSTEM))
    raw = fake_http.requests[-1].content.decode()
    assert "cache_control" not in raw
    assert fake_http.body()["system"] == SHORT_SYSTEM


def test_anthropic_respects_the_larger_minimum_of_haiku_4_5(allow_requests, fake_http):
    fake_http.add(200, anthropic_text())
    _anthropic(fake_http, "claude-haiku-4-5").request(_request(LONG_SYSTEM))
    assert "cache_control" not in fake_http.requests[-1].content.decode()


def test_anthropic_marks_the_last_tool_when_the_tools_alone_are_long_enough(allow_requests, fake_http):
    big = ToolSpec(name="catalog", description="Look up the product catalog. " * 160,
                   parameters={"type": "object", "properties": {"sku": {"type": "string"}}})
    fake_http.add(200, anthropic_text())
    _anthropic(fake_http).request(_request(SHORT_SYSTEM, [SQL_TOOL, big]))
    body = fake_http.body()
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in body["tools"][0]
    # tools + system is longer still, so the system block closes a cached prefix too
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_anthropic_cache_usage_is_counted_and_priced(allow_requests, fake_http):
    payload = anthropic_text(input_tokens=50, output_tokens=200)
    payload["usage"].update({"cache_read_input_tokens": 3000, "cache_creation_input_tokens": 1000})
    fake_http.add(200, payload)
    usage = _anthropic(fake_http).request(_request(LONG_SYSTEM)).usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (4050, 3000, 1000)
    # 50 x 3 + 3000 x 0.30 + 1000 x 3.75 + 200 x 15 = 150 + 900 + 3750 + 3000 = 7800 micro-dollars
    assert usage.cost_usd == pytest.approx(0.0078)


def test_anthropic_answer_without_cache_fields_has_zero_cached_tokens(allow_requests, fake_http):
    fake_http.add(200, anthropic_text(input_tokens=1200, output_tokens=300))
    usage = _anthropic(fake_http).request(_request(SHORT_SYSTEM)).usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (1200, 0, 0)


# ----------------------------------------------------------------------------------------------- bedrock
def _tool_config(*extra):
    return {"tools": [{"toolSpec": {"name": "sql_query", "description": SQL_TOOL.description,
                                    "inputSchema": {"json": SQL_TOOL.parameters}}}, *extra]}


def test_bedrock_puts_a_cache_point_after_a_long_system_prompt(allow_requests, bedrock_client):
    client, stub = bedrock_client
    # the stubber also validates the request against botocore's bedrock-runtime service model
    stub.add_response("converse", bedrock_text(), expected_params={
        "modelId": SONNET_BEDROCK,
        "messages": [{"role": "user", "content": [{"text": "Rows?"}]}],
        "system": [{"text": LONG_SYSTEM}, {"cachePoint": {"type": "default"}}],
        "inferenceConfig": {"maxTokens": 2048, "temperature": 0.2},
        "toolConfig": _tool_config(),
    })
    BedrockModel(SONNET_BEDROCK, client=client).request(_request(LONG_SYSTEM))


@pytest.mark.parametrize("model, system", [
    (SONNET_BEDROCK, SHORT_SYSTEM),  # a prefix below the model's minimum
    ("meta.llama3-1-70b-instruct-v1:0", LONG_SYSTEM),  # not a Claude model: no cache point whatever the length
], ids=["short-prefix", "non-claude-model"])
def test_bedrock_sends_no_cache_point(allow_requests, bedrock_client, model, system):
    client, stub = bedrock_client
    stub.add_response("converse", bedrock_text(), expected_params={
        "modelId": model,
        "messages": [{"role": "user", "content": [{"text": "Rows?"}]}],
        "system": [{"text": system}],
        "inferenceConfig": {"maxTokens": 2048, "temperature": 0.2},
        "toolConfig": _tool_config(),
    })
    BedrockModel(model, client=client).request(_request(system))


def test_bedrock_cache_point_after_long_tools(allow_requests, bedrock_client):
    client, stub = bedrock_client
    big = ToolSpec(name="catalog", description="Look up the product catalog. " * 160,
                   parameters={"type": "object", "properties": {"sku": {"type": "string"}}})
    stub.add_response("converse", bedrock_text(), expected_params={
        "modelId": SONNET_BEDROCK,
        "messages": [{"role": "user", "content": [{"text": "Rows?"}]}],
        "system": [{"text": SHORT_SYSTEM}, {"cachePoint": {"type": "default"}}],
        "inferenceConfig": {"maxTokens": 2048, "temperature": 0.2},
        "toolConfig": _tool_config({"toolSpec": {"name": "catalog", "description": big.description,
                                                 "inputSchema": {"json": big.parameters}}},
                                   {"cachePoint": {"type": "default"}}),
    })
    BedrockModel(SONNET_BEDROCK, client=client).request(_request(SHORT_SYSTEM, [SQL_TOOL, big]))


def test_bedrock_cache_usage_is_counted_and_priced(allow_requests, bedrock_client):
    client, stub = bedrock_client
    payload = bedrock_text()
    payload["usage"] = {"inputTokens": 100, "outputTokens": 10, "totalTokens": 2610, "cacheReadInputTokens": 2000,
                        "cacheWriteInputTokens": 500}
    stub.add_response("converse", payload)
    usage = BedrockModel(SONNET_BEDROCK, client=client).request(_request(LONG_SYSTEM)).usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (2600, 2000, 500)
    # 100 x 3 + 2000 x 0.30 + 500 x 3.75 + 10 x 15 = 300 + 600 + 1875 + 150 = 2925 micro-dollars
    assert usage.cost_usd == pytest.approx(0.002925)


# ----------------------------------------------------------------------------------------------- openai
def _openai(fake_http, model: str = "gpt-4o") -> OpenAIModel:
    client = openai.OpenAI(api_key="k", http_client=fake_http.client(), max_retries=0,
                           base_url="https://api.openai.com/v1")
    return OpenAIModel(model, client=client)


def test_openai_sends_nothing_for_caching_and_reads_cached_tokens(allow_requests, fake_http):
    payload = openai_text(prompt_tokens=2000, completion_tokens=100)
    payload["usage"]["prompt_tokens_details"] = {"cached_tokens": 1536, "audio_tokens": 0}
    fake_http.add(200, payload)
    usage = _openai(fake_http).request(_request(LONG_SYSTEM)).usage
    raw = fake_http.requests[-1].content.decode()
    assert "cache_control" not in raw and "cachePoint" not in raw
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (2000, 1536, 0)
    # gpt-4o: 464 x 2.50 + 1536 x 1.25 + 100 x 10 = 1160 + 1920 + 1000 = 4080 micro-dollars
    assert usage.cost_usd == pytest.approx(0.00408)


def test_openai_answer_without_details_has_zero_cached_tokens(allow_requests, fake_http):
    fake_http.add(200, openai_text(prompt_tokens=1000, completion_tokens=200))
    usage = _openai(fake_http).request(_request(SHORT_SYSTEM)).usage
    assert (usage.input_tokens, usage.cache_read_tokens) == (1000, 0)
    assert usage.cost_usd == pytest.approx((1000 * 2.50 + 200 * 10) / 1e6)


# ----------------------------------------------------------------------------------------------- pricing
def test_cached_rates_per_provider():
    assert pricing.cost_usd("gpt-4.1", 1_000_000, 0, cache_read_tokens=1_000_000) == pytest.approx(0.50)
    assert pricing.cost_usd("gpt-4o-mini", 1_000_000, 0, cache_read_tokens=1_000_000) == pytest.approx(0.075)
    # an OpenAI cache write (never reported) would cost plain input
    assert pricing.cost_usd("gpt-4o", 1_000_000, 0, cache_write_tokens=1_000_000) == pytest.approx(2.50)
    assert pricing.cost_usd("claude-haiku-4-5", 1_000_000, 0, cache_read_tokens=1_000_000) == pytest.approx(0.10)
    assert pricing.cost_usd(SONNET_BEDROCK, 1_000_000, 0, cache_write_tokens=1_000_000) == pytest.approx(3.75)


def test_cached_parts_larger_than_the_input_are_refused():
    with pytest.raises(ValueError):
        pricing.cost_usd("gpt-4o", 100, 0, cache_read_tokens=80, cache_write_tokens=30)
    with pytest.raises(ValueError):
        pricing.cost_usd("gpt-4o", 100, 0, cache_read_tokens=-1)


def test_cache_prices_name_their_source_and_date():
    assert "2026-12" in pricing.CACHE_PRICES_TAKEN and "verify" in pricing.CACHE_PRICES_TAKEN
    assert "prompt-caching" in pricing.__doc__


def test_marker_payload_is_json_serialisable():
    # the markers are plain dicts shared by reference nowhere (each request gets its own copy)
    from stepcrew.llm.anthropic import CACHE_CONTROL, request_prefix

    out = request_prefix("claude-sonnet-4-5", _request(LONG_SYSTEM))
    out["system"][0]["cache_control"]["ttl"] = "1h"
    assert CACHE_CONTROL == {"type": "ephemeral"}
    json.dumps(out)
