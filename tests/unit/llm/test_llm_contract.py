"""One contract for every Model: the same request gives a well-formed ModelResponse; real adapters refuse to run
while ALLOW_MODEL_REQUESTS is off; importing the adapters does not import the provider SDKs."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from botocore.stub import Stubber
from llm_payloads import anthropic_tool_use, bedrock_tool_use, openai_sql_call

from stepcrew.llm.anthropic import AnthropicModel
from stepcrew.llm.base import Model, ModelRequestsForbiddenError, ModelResponse
from stepcrew.llm.bedrock import BedrockModel
from stepcrew.llm.openai import OpenAIModel
from stepcrew.engines.testing import FunctionModel, ScriptedModel, call_tool


def _anthropic(fake_http, stack):
    import anthropic

    fake_http.add(200, anthropic_tool_use())
    client = anthropic.Anthropic(api_key="k", http_client=fake_http.client(), max_retries=0)
    return AnthropicModel("claude-sonnet-4-5", client=client)


def _openai(fake_http, stack):
    import openai

    fake_http.add(200, openai_sql_call())
    client = openai.OpenAI(api_key="k", http_client=fake_http.client(), max_retries=0)
    return OpenAIModel("gpt-4o", client=client)


def _bedrock(fake_http, stack):
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response("converse", bedrock_tool_use())
    stubber.activate()
    stack.append(stubber)
    return BedrockModel("us.anthropic.claude-sonnet-4-5-20250929-v1:0", client=client)


def _scripted(fake_http, stack):
    return ScriptedModel([call_tool("sql_query", {"sql": "select count(*) from t"})])


def _function(fake_http, stack):
    return FunctionModel(lambda r: call_tool("sql_query", {"sql": "select count(*) from t"}))


@pytest.mark.parametrize("build", [_anthropic, _openai, _bedrock, _scripted, _function],
                         ids=["anthropic", "openai", "bedrock", "scripted", "function"])
def test_same_request_gives_a_well_formed_response(allow_requests, fake_http, basic_request, build):
    stack: list = []
    model = build(fake_http, stack)
    try:
        resp = model.request(basic_request)
    finally:
        for stubber in stack:
            stubber.deactivate()
    assert isinstance(model, Model)
    assert isinstance(resp, ModelResponse)
    assert resp.stop_reason == "tool_use"
    assert len(resp.tool_calls) == 1
    call = resp.tool_calls[0]
    assert call.name == "sql_query" and call.call_id and call.arguments == {"sql": "select count(*) from t"}
    assert resp.model
    assert resp.usage.input_tokens >= 0 and resp.usage.output_tokens >= 0 and resp.usage.cost_usd >= 0
    ModelResponse.model_validate(resp.model_dump(mode="json"))  # survives the JSON round trip through state


@pytest.mark.parametrize("model", [AnthropicModel("claude-haiku-4-5", api_key="k"),
                                   OpenAIModel("gpt-4o-mini", api_key="k"),
                                   BedrockModel("us.anthropic.claude-haiku-4-5-20251001-v1:0")],
                         ids=["anthropic", "openai", "bedrock"])
def test_real_adapters_refuse_while_requests_are_off(model, basic_request):
    # Given the session default from tests/conftest.py (requests off)
    with pytest.raises(ModelRequestsForbiddenError):
        model.request(basic_request)
    assert model._client is None  # refused before any client was built


def test_importing_adapters_does_not_import_the_sdks():
    code = ("import sys, stepcrew.llm.anthropic, stepcrew.llm.openai, stepcrew.llm.bedrock, stepcrew.llm.registry, "
            "stepcrew.llm.testing, stepcrew.llm.secrets\n"
            "from stepcrew.llm import registry\n"
            "registry.resolve('anthropic', 'smart'); registry.resolve('openai', 'fast')\n"
            "print(','.join(m for m in ('anthropic', 'openai', 'boto3') if m in sys.modules))")
    env = {**os.environ, "STEPCREW_ALLOW_MODEL_REQUESTS": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ""
