"""Fallback chains: which providers a tier tries, in order, and the check that each is configured.

A run's :class:`~stepcrew.models.Routing` holds ``chains`` per tier; a tier without one uses ``[run.provider]``.
The stage default comes from ``STEPCREW_FALLBACK_CHAIN``: a comma-separated list (``anthropic,bedrock,openai``:
the same chain for both tiers) or JSON per tier (``{"fast": ["anthropic", "openai"], "smart": ["anthropic"]}``).
A run's own ``routing`` replaces the stage default.

"Configured" (checked before anything runs, :func:`check_chains`): the provider is registered
(:mod:`stepcrew.llm.registry`) and its credentials are findable — ``anthropic``: ``ANTHROPIC_API_KEY`` or
``STEPCREW_ANTHROPIC_SECRET``; ``openai``: ``OPENAI_API_KEY``, ``STEPCREW_OPENAI_SECRET`` or ``OPENAI_BASE_URL`` (a
compatible server); ``bedrock``: an AWS region (``AWS_REGION`` / ``AWS_DEFAULT_REGION``: the credentials
themselves are only proven by a call); a provider registered in code is configured by its registration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import ValidationError

from stepcrew.llm import registry
from stepcrew.models import Routing

ENV_CHAIN = "STEPCREW_FALLBACK_CHAIN"
_NEEDS: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY", "STEPCREW_ANTHROPIC_SECRET"),
    "openai": ("OPENAI_API_KEY", "STEPCREW_OPENAI_SECRET", "OPENAI_BASE_URL"),
    "bedrock": ("AWS_REGION", "AWS_DEFAULT_REGION"),
}


class ChainConfigError(ValueError):
    """A chain names an unknown or unconfigured provider, or ``STEPCREW_FALLBACK_CHAIN`` is malformed (one line)."""


def stage_routing(env: Mapping[str, str] | None = None) -> Routing:
    """The stage's default routing from ``STEPCREW_FALLBACK_CHAIN`` (unset: no chain). Raises ChainConfigError."""
    env = os.environ if env is None else env
    raw = env.get(ENV_CHAIN, "").strip()
    if not raw:
        return Routing()
    if raw.startswith("{"):
        try:
            chains = json.loads(raw)
        except ValueError as exc:
            raise ChainConfigError(f"{ENV_CHAIN} is not valid JSON: {exc}") from None
    else:
        names = [p.strip().lower() for p in raw.split(",") if p.strip()]
        chains = {"fast": names, "smart": names}
    try:
        return Routing(chains=chains)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ChainConfigError(f"{ENV_CHAIN}: {first['msg']}") from None


def is_configured(provider: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``provider``'s credentials are findable (module docstring). Unknown providers are not."""
    env = os.environ if env is None else env
    try:
        registry.check_provider(provider)
    except registry.UnknownProviderError:
        return False
    needs = _NEEDS.get(provider)
    if needs is None:  # registered in code (tests, a custom adapter): configured by its registration
        return True
    return any(env.get(name, "").strip() for name in needs)


def check_chains(routing: Routing, provider: str, env: Mapping[str, str] | None = None) -> None:
    """Raise ChainConfigError unless every provider of every chain is known and configured. ``provider`` (the
    run's) is checked by the caller as before; ``rule`` needs no chain."""
    for tier, chain in sorted(routing.chains.items()):
        for name in chain:
            try:
                registry.check_provider(name)
            except registry.UnknownProviderError as exc:
                raise ChainConfigError(f"chain of tier {tier}: {exc}") from None
            if not is_configured(name, env):
                hint = " or ".join(_NEEDS.get(name, ()))
                raise ChainConfigError(f"chain of tier {tier}: provider {name!r} is not configured (set {hint})")


def effective_routing(requested: Routing | None, provider: str, env: Mapping[str, str] | None = None) -> Routing:
    """The run's routing: the request's options over the stage default (a request that sets no ``chains`` keeps
    the stage's chain); checked. Raises ChainConfigError."""
    if requested is None:
        routing = stage_routing(env)
    elif "chains" not in requested.model_fields_set:  # other options keep the stage's chain
        routing = requested.model_copy(update={"chains": stage_routing(env).chains})
    else:
        routing = requested
    if provider == "rule" and requested is None:
        return routing.model_copy(update={"chains": {}})  # the rule engine needs no provider: skip the stage's
    check_chains(routing, provider, env)
    if provider == "rule":
        return routing.model_copy(update={"chains": {}})
    return routing
