"""Provider registry: detection, model ids, register/resolve, caching."""

from __future__ import annotations

import pytest

from stepcrew.llm import registry
from stepcrew.llm.anthropic import AnthropicModel
from stepcrew.llm.bedrock import BedrockModel
from stepcrew.llm.openai import OpenAIModel
from stepcrew.llm.registry import UnknownProviderError
from stepcrew.llm.testing import FunctionModel, reply


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    monkeypatch.setattr(registry, "_cache", {})
    for var in ("STEPCREW_MODEL_FAST", "STEPCREW_MODEL_SMART", "OPENAI_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "rule"),
    ({"ANTHROPIC_API_KEY": "k"}, "anthropic"),
    ({"OPENAI_API_KEY": "k"}, "openai"),
    ({"OPENAI_BASE_URL": "http://localhost:11434/v1"}, "openai"),
    ({"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "k"}, "anthropic"),
    ({"STEPCREW_PROVIDER": "Bedrock", "ANTHROPIC_API_KEY": "k"}, "bedrock"),
    ({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}, "rule"),  # bedrock only when asked
    ({"ANTHROPIC_API_KEY": "  "}, "rule"),
])
def test_detect_provider(env, expected):
    assert registry.detect_provider(env) == expected


def test_model_ids_defaults_and_overrides():
    assert registry.model_id("anthropic", "fast", {}) == "claude-haiku-4-5"
    assert registry.model_id("anthropic", "smart", {}) == "claude-sonnet-4-5"
    assert registry.model_id("openai", "fast", {}) == "gpt-4o-mini"
    assert registry.model_id("openai", "smart", {}) == "gpt-4o"
    assert registry.model_id("bedrock", "smart", {}).startswith("us.anthropic.claude-sonnet")
    assert registry.model_id("openai", "fast", {"OPENAI_MODEL": "llama3.1"}) == "llama3.1"
    assert registry.model_id("openai", "smart", {"OPENAI_MODEL": "llama3.1", "STEPCREW_MODEL_SMART": "qwen"}) == "qwen"
    assert registry.model_id("anthropic", "fast", {"STEPCREW_MODEL_FAST": "claude-3-5-haiku"}) == "claude-3-5-haiku"
    assert registry.model_id("anthropic", "fast", {"OPENAI_MODEL": "x"}) == "claude-haiku-4-5"
    assert registry.model_id("rule", "smart", {"STEPCREW_MODEL_SMART": "x"}) == "rule-engine"
    with pytest.raises(ValueError, match="tier"):
        registry.model_id("anthropic", "medium", {})


def test_engine_names():
    assert registry.engine_name("anthropic", "smart", {}) == "anthropic:claude-sonnet-4-5"
    assert registry.engine_name("openai", "fast", {}) == "openai:gpt-4o-mini"
    assert registry.engine_name("rule", "smart", {}) == "rule-engine"


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(UnknownProviderError) as info:
        registry.resolve("gemini", "smart")
    assert isinstance(info.value, ValueError)
    for name in ("anthropic", "bedrock", "openai", "rule"):
        assert name in str(info.value)


def test_register_resolve_cache_and_unregister():
    built = []

    def factory(tier: str) -> FunctionModel:
        built.append(tier)
        return FunctionModel(lambda r: reply(tier))

    registry.register("fake", factory)
    assert "fake" in registry.known_providers()
    fast = registry.resolve("fake", "fast")
    assert registry.resolve("fake", "fast") is fast  # cached: a warm Lambda reuses it
    assert registry.resolve("fake", "smart") is not fast
    assert built == ["fast", "smart"]
    registry.register("fake", factory)  # re-registering drops the cache
    assert registry.resolve("fake", "fast") is not fast
    registry.unregister("fake")
    assert "fake" not in registry.known_providers()
    with pytest.raises(UnknownProviderError):
        registry.resolve("fake", "fast")
    with pytest.raises(UnknownProviderError):
        registry.unregister("fake")


def test_invalid_provider_names_are_refused():
    with pytest.raises(ValueError):
        registry.register("Bad Name", lambda tier: FunctionModel(lambda r: reply("x")))


def test_builtin_factories_build_adapters_without_network(monkeypatch):
    monkeypatch.setenv("STEPCREW_MODEL_SMART", "claude-opus-4-5")
    anthropic_model = registry.resolve("anthropic", "smart")
    assert isinstance(anthropic_model, AnthropicModel) and anthropic_model.model == "claude-opus-4-5"
    assert anthropic_model._client is None  # nothing built until the first request
    assert isinstance(registry.resolve("openai", "fast"), OpenAIModel)
    bedrock_model = registry.resolve("bedrock", "fast")
    assert isinstance(bedrock_model, BedrockModel) and bedrock_model.model.startswith("us.anthropic.claude-haiku")


def test_rule_is_a_known_provider_but_not_a_model():
    # "rule" names the offline rule engine: the registry knows the name but never builds a Model for it
    assert "rule" in registry.known_providers()
    registry.check_provider("rule")  # known: no UnknownProviderError
    for tier in ("smart", "fast"):
        with pytest.raises(ValueError, match="rule engine") as info:
            registry.resolve("rule", tier)
        assert not isinstance(info.value, UnknownProviderError)
    with pytest.raises(ValueError):
        registry.register("rule", lambda tier: FunctionModel(lambda r: reply("x")))
    assert "rule" not in registry._factories


def test_rule_provider_resolves_to_the_rule_engine():
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.engines.rules import RuleEngine

    resolver = EngineResolver()
    engine = resolver.engine("rule")
    assert isinstance(engine, RuleEngine)
    assert engine.name == "rule-engine"
    assert resolver.engine("rule") is engine  # cached per provider
