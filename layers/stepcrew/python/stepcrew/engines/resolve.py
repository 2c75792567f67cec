"""Which engine plays a run's roles: ``rule`` -> the rule engine; any other provider -> the LLM engine on that
provider's models (:mod:`stepcrew.llm.registry`), behind the resilience ladder (:mod:`stepcrew.resilience`).

Handlers build one :class:`EngineResolver` per cold start and pass it to the role use cases; tests pass one whose
``model_for`` returns their scripted model. The local runtime and a deployed stack resolve engines the same way:
the run record's ``provider`` decides, nothing in the ASL does.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from stepcrew.engines.base import Engine
from stepcrew.llm import registry
from stepcrew.llm.base import Model

RULE_PROVIDER = "rule"


def _registry_model(provider: str, tier: str) -> tuple[Model, str]:
    return registry.resolve(provider, tier), registry.model_id(provider, tier)


class EngineResolver:
    """``engine(provider)`` -> the plain :class:`~stepcrew.engines.base.Engine` for a provider (the engine of one
    role call of a run, behind the ladder, is :func:`stepcrew.resilience.wiring.engine_for`).
    ``model_for(provider, tier)`` returns ``(Model, model id)`` (default: the provider registry). ``breakers``: a
    :class:`stepcrew.resilience.breaker.Breakers` (default: one per store, on its persistence, built at first use);
    ``embeddings``: the semantic cache's embeddings port (default: built at first use from
    ``STEPCREW_EMBEDDINGS``). Raises :class:`stepcrew.llm.registry.UnknownProviderError` for an unknown
    provider."""

    def __init__(self, model_for: Callable[[str, str], tuple[Model, str]] | None = None, *,
                 breakers: Any = None, embeddings: Any = None) -> None:
        self._model_for = model_for or _registry_model
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        #: Collaborators of the resilience ladder (``stepcrew.resilience.wiring`` builds the missing ones at first
        #: use and keeps them here, per store object): circuit breakers, the tenant ledger, the embeddings port.
        self.breakers = breakers
        self.embeddings = embeddings
        self.per_store: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.parts_lock = threading.Lock()
        #: The tenant memory of each store (stepcrew.memory.wiring.memory_for), built at first use.
        self.memories: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def engine(self, provider: str) -> Engine:
        with self._lock:
            engine = self._engines.get(provider)
            if engine is None:
                engine = self._engines[provider] = self._build(provider)
            return engine

    def _build(self, provider: str) -> Engine:
        if provider == RULE_PROVIDER:
            from stepcrew.engines.rules import RuleEngine

            return RuleEngine()
        if self._model_for is _registry_model:
            registry.check_provider(provider)
        from stepcrew.engines.llm import LLMEngine

        return LLMEngine(provider, lambda tier: self._model_for(provider, tier))

    @property
    def model_for(self) -> Callable[[str, str], tuple[Model, str]]:
        """``(provider, tier) -> (Model, model id)``; checks the provider first when it is the registry's."""
        if self._model_for is not _registry_model:
            return self._model_for

        def checked(provider: str, tier: str) -> tuple[Model, str]:
            registry.check_provider(provider)
            return _registry_model(provider, tier)

        return checked


def scripted_resolver(model: Model, model_id: str = "scripted", **kw: Any) -> EngineResolver:
    """A resolver whose every non-rule provider plays ``model`` (tests and the eval's judge)."""
    return EngineResolver(lambda provider, tier: (model, model_id), **kw)
