"""API key resolution: env var first, then a Secrets Manager secret through Powertools (moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from stepcrew.llm.base import ModelAuthError
from stepcrew.llm.secrets import resolve_api_key


@pytest.fixture
def fresh_powertools():
    """Powertools keeps a module-level provider (with its boto3 client) and a value cache: start and end clean."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    DEFAULT_PROVIDERS.pop("secrets", None)
    parameters.clear_caches()
    yield
    DEFAULT_PROVIDERS.pop("secrets", None)
    parameters.clear_caches()


def test_env_var_wins():
    assert resolve_api_key("anthropic", {"ANTHROPIC_API_KEY": " sk-1 ", "STEPCREW_ANTHROPIC_SECRET": "x"}) == "sk-1"


def test_nothing_configured_names_the_env_var():
    with pytest.raises(ModelAuthError, match="set OPENAI_API_KEY") as info:
        resolve_api_key("openai", {})
    assert "\n" not in str(info.value)


def test_secret_is_read_with_powertools_and_cached(fresh_powertools):
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        arn = sm.create_secret(Name="stepcrew/anthropic", SecretString="sk-ant-from-secret")["ARN"]
        env = {"STEPCREW_ANTHROPIC_SECRET": arn}
        assert resolve_api_key("anthropic", env) == "sk-ant-from-secret"
        sm.put_secret_value(SecretId=arn, SecretString="sk-ant-rotated")
        assert resolve_api_key("anthropic", env) == "sk-ant-from-secret"  # cached for 300 s


def test_json_secret_with_api_key_field(fresh_powertools):
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        sm.create_secret(Name="stepcrew/openai", SecretString=json.dumps({"api_key": "sk-proj-1"}))
        assert resolve_api_key("openai", {"STEPCREW_OPENAI_SECRET": "stepcrew/openai"}) == "sk-proj-1"


def test_unreadable_or_empty_secret_is_an_auth_error(fresh_powertools):
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        with pytest.raises(ModelAuthError, match="STEPCREW_OPENAI_SECRET"):
            resolve_api_key("openai", {"STEPCREW_OPENAI_SECRET": "does-not-exist"})
        sm.create_secret(Name="empty", SecretString=json.dumps({"other": "x"}))
        with pytest.raises(ModelAuthError, match="holds no openai API key"):
            resolve_api_key("openai", {"STEPCREW_OPENAI_SECRET": "empty"})
