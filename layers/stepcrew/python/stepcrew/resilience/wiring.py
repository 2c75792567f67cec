"""The engine of one role call of a run: the rule engine, or the LLM engine behind the ladder.

:func:`engine_for` is what every role use case calls (``stepcrew.domain``). Its collaborators come from the
injected :class:`~stepcrew.engines.resolve.EngineResolver` (built once per cold start by each handler): the
models (``model_for``), and the ladder's parts, built at first use and kept on the resolver per store object —
the circuit breakers on the store's persistence (:mod:`stepcrew.resilience.breaker`), the tenant's $ ledger on the
store's table (:mod:`stepcrew.resilience.tenant_budget`) and the embeddings port of the semantic cache.
"""

from __future__ import annotations

from typing import Any

from stepcrew.engines.base import Engine
from stepcrew.engines.resolve import RULE_PROVIDER, EngineResolver
from stepcrew.events import MODEL_RETRY_ATTEMPTS
from stepcrew.models import Run
from stepcrew.store.base import RunStore


def _parts(resolver: EngineResolver, store: RunStore) -> dict[str, Any]:
    with resolver.parts_lock:
        parts = resolver.per_store.get(store)
        if parts is None:
            from stepcrew.resilience.breaker import Breakers
            from stepcrew.resilience.tenant_budget import ledger_for

            parts = {"breakers": resolver.breakers or Breakers.from_env(store.breaker_persistence()),
                     "ledger": ledger_for(store)}
            resolver.per_store[store] = parts
        return parts


def breakers_for(resolver: EngineResolver, store: RunStore) -> Any:
    """The circuit breakers the resolver's calls use on ``store``."""
    return _parts(resolver, store)["breakers"]


def ledger_for_store(resolver: EngineResolver, store: RunStore) -> Any:
    """The tenant $ ledger the resolver's calls use on ``store``."""
    return _parts(resolver, store)["ledger"]


def embeddings_for(resolver: EngineResolver) -> Any:
    """The embeddings port of the semantic cache (built once per resolver from ``STEPCREW_EMBEDDINGS``)."""
    with resolver.parts_lock:
        if resolver.embeddings is None:
            from stepcrew.embeddings import build_embeddings

            resolver.embeddings = build_embeddings()
        return resolver.embeddings


def engine_for(resolver: EngineResolver, run: Run, store: RunStore, *, retry_count: int = 0) -> Engine:
    """The engine of one role call of ``run``: the rule engine for ``rule`` runs and runs switched to it
    (``run.engine_override``), else a :class:`stepcrew.resilience.ladder.LadderEngine` (``retry_count``: the
    state's ``$$.State.RetryCount``). Raises UnknownProviderError for a provider of the run or its chains that is
    not registered."""
    if run.provider == RULE_PROVIDER or run.engine_override == RULE_PROVIDER:
        return resolver.engine(RULE_PROVIDER)
    from stepcrew.resilience.ladder import LadderEngine

    parts = _parts(resolver, store)
    return LadderEngine(run, store, resolver.model_for, rule=resolver.engine(RULE_PROVIDER),
                        retry_count=retry_count, max_retries=MODEL_RETRY_ATTEMPTS, breakers=parts["breakers"],
                        ledger=parts["ledger"])
