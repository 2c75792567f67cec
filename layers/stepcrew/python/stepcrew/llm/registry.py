"""Provider registry: provider name + model tier -> a :class:`Model`.

Built-in providers: ``anthropic``, ``openai`` (also OpenAI-compatible servers via ``OPENAI_BASE_URL``),
``bedrock``; and ``rule``, the offline rule engine, which is a known provider name but not a model (it is an engine:
:mod:`stepcrew.engines.rules`; :func:`resolve` refuses it). Resolved models are cached per
(provider, tier, model id), so a warm Lambda reuses its SDK client. Building a model never touches the network
or a secret: adapters do that at their first request.

Model ids per tier come from :data:`DEFAULT_MODELS`, overridable by env ``STEPCREW_MODEL_FAST`` /
``STEPCREW_MODEL_SMART`` (any provider but ``rule``), then ``OPENAI_MODEL`` (openai, both tiers).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

from stepcrew.llm.base import Model
from stepcrew.llm.pricing import RULE_ENGINE_MODEL

Factory = Callable[[str], Model]
TIERS = ("fast", "smart")

#: provider -> tier -> default model id. Bedrock ids are the US cross-region inference profiles of Claude.
DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "anthropic": {"fast": "claude-haiku-4-5", "smart": "claude-sonnet-4-5"},
    "openai": {"fast": "gpt-4o-mini", "smart": "gpt-4o"},
    "bedrock": {"fast": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "smart": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
    "rule": {"fast": RULE_ENGINE_MODEL, "smart": RULE_ENGINE_MODEL},
}


class UnknownProviderError(ValueError):
    """No factory is registered under that provider name. The message lists the known providers."""


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise ValueError(f"unknown model tier {tier!r}; expected one of: {', '.join(TIERS)}")


def model_id(provider: str, tier: str, env: Mapping[str, str] | None = None) -> str:
    """The model id ``provider`` uses for ``tier`` ("fast" | "smart"). ``rule`` is always ``rule-engine``.
    A provider without defaults (a registered one) gets ``STEPCREW_MODEL_<TIER>`` or ``""``."""
    _check_tier(tier)
    if provider == "rule":
        return RULE_ENGINE_MODEL
    env = os.environ if env is None else env
    override = env.get(f"STEPCREW_MODEL_{tier.upper()}", "").strip()
    if override:
        return override
    if provider == "openai" and env.get("OPENAI_MODEL", "").strip():
        return env["OPENAI_MODEL"].strip()
    return DEFAULT_MODELS.get(provider, {}).get(tier, "")


def engine_name(provider: str, tier: str, env: Mapping[str, str] | None = None) -> str:
    """What a run reports as its engine: ``"<provider>:<model id>"``, or ``"rule-engine"`` for the rule engine."""
    if provider == "rule":
        return RULE_ENGINE_MODEL
    return f"{provider}:{model_id(provider, tier, env)}"


def _anthropic(tier: str) -> Model:
    from stepcrew.llm.anthropic import AnthropicModel

    return AnthropicModel(model_id("anthropic", tier))


def _openai(tier: str) -> Model:
    from stepcrew.llm.openai import OpenAIModel

    return OpenAIModel(model_id("openai", tier))


def _bedrock(tier: str) -> Model:
    from stepcrew.llm.bedrock import BedrockModel

    return BedrockModel(model_id("bedrock", tier))


_lock = threading.RLock()  # re-entrant: a factory may resolve another provider
_factories: dict[str, Factory] = {"anthropic": _anthropic, "openai": _openai, "bedrock": _bedrock}
RULE = "rule"  # the rule engine: known, never a model
_cache: dict[tuple[str, str, str], Model] = {}


def register(name: str, factory: Factory) -> None:
    """Register (or replace) provider ``name``; ``factory(tier)`` returns a Model for tier "fast" | "smart".
    Drops cached models of that name."""
    if not name or not name.replace("_", "").replace("-", "").isalnum() or not name[0].isalpha() or name == RULE:
        raise ValueError(f"invalid provider name {name!r}")
    with _lock:
        _factories[name] = factory
        _drop(name)


def unregister(name: str) -> None:
    """Remove provider ``name`` and its cached models. Raises UnknownProviderError if it is not registered."""
    with _lock:
        if name not in _factories:
            raise _unknown(name)
        del _factories[name]
        _drop(name)


def known_providers() -> list[str]:
    """Registered provider names and ``rule``, sorted."""
    with _lock:
        return sorted([*_factories, RULE])


def check_provider(name: str) -> None:
    """Raise UnknownProviderError (naming the known providers) unless ``name`` is registered. Builds nothing."""
    with _lock:
        if name not in _factories and name != RULE:
            raise _unknown(name)


def resolve(provider: str, tier: str) -> Model:
    """The Model for ``provider`` and ``tier``, built by its factory once and cached (per provider, tier and
    model id, so an env override of the model id takes effect). Raises UnknownProviderError or ValueError (tier)."""
    _check_tier(tier)
    if provider == RULE:
        raise ValueError("provider 'rule' is the rule engine, not a model (stepcrew.engines.resolve)")
    with _lock:
        factory = _factories.get(provider)
        if factory is None:
            raise _unknown(provider)
        key = (provider, tier, model_id(provider, tier))
        model = _cache.get(key)
        if model is None:
            model = _cache[key] = factory(tier)
        return model


def clear_cache() -> None:
    """Forget every resolved model (tests; a changed key or base URL)."""
    with _lock:
        _cache.clear()


def detect_provider(env: Mapping[str, str] | None = None) -> str:
    """The provider to use when none is given: ``STEPCREW_PROVIDER`` if set; else ``anthropic`` if
    ``ANTHROPIC_API_KEY`` is set; else ``openai`` if ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set; else
    ``rule`` (offline). Bedrock is used only when asked for explicitly (AWS credentials alone prove no model
    access)."""
    env = os.environ if env is None else env
    explicit = env.get("STEPCREW_PROVIDER", "").strip().lower()
    if explicit:
        return explicit
    if env.get("ANTHROPIC_API_KEY", "").strip():
        return "anthropic"
    if env.get("OPENAI_API_KEY", "").strip() or env.get("OPENAI_BASE_URL", "").strip():
        return "openai"
    return "rule"


def _drop(name: str) -> None:
    for key in [k for k in _cache if k[0] == name]:
        del _cache[key]


def _unknown(name: str) -> UnknownProviderError:
    return UnknownProviderError(f"unknown provider {name!r}; known providers: {', '.join(known_providers())}")
