"""A circuit breaker per provider and model, shared by every Lambda: Powertools' circuit breaker utility
(``aws_lambda_powertools.utilities.circuit_breaker``, pinned 3.37.0) on the run table
(``PK = BREAKER``, ``SK = model:<provider>:<model id>``, TTL ``expires_at``; :meth:`RunStore.breaker_persistence`).

Semantics (read from the utility's code, ``circuit_breaker/base.py``): a circuit opens after
``failure_threshold`` *consecutive* transient failures (:class:`ModelThrottledError`, :class:`ModelUnavailableError`)
counted in the execution environment that sees them — the healthy path writes nothing, only a transition is
persisted; every environment reads the shared state (cached locally ``local_cache_max_age`` = 5 s), so an open
circuit stops calls from every function within seconds. After ``recovery_timeout`` seconds one caller wins a
conditional write and runs the single half-open probe: success closes the circuit (``success_threshold`` = 1),
failure reopens it. An open circuit raises :class:`CircuitOpenError` at once (no call, no wait): the ladder moves
to the next provider. Locally the same code runs on the local runtime's emulated table (same process for every
"function", so the local counters are shared too).

Why the utility and not our own: it has the shared state, the probe election and a lease for a prober that dies;
its one difference from "N failures in a window" is that the count is consecutive and per environment, which is
what it is built for (no write per call). Settings: ``STEPCREW_BREAKER_FAILURES`` (default 5),
``STEPCREW_BREAKER_RECOVERY_S`` (default 30).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from stepcrew.llm.base import ModelError, ModelThrottledError, ModelUnavailableError

T = TypeVar("T")


class CircuitOpenError(ModelError):
    """The provider's circuit is open: no call was made. Handled by the ladder (never reaches the ASL)."""


def circuit_name(provider: str, model: str) -> str:
    """The circuit of one provider and model id."""
    return f"model:{provider}:{model}"


def _int_env(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


class Breakers:
    """Circuits of one persistence layer. ``on_open(name)`` is called when a circuit opens (metrics, benches)."""

    def __init__(self, persistence: Any, *, failure_threshold: int = 5, recovery_timeout_s: int = 30,
                 on_open: Callable[[str], None] | None = None) -> None:
        from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerConfig

        self.persistence = persistence
        self.config = CircuitBreakerConfig(failure_threshold=failure_threshold,
                                           recovery_timeout=recovery_timeout_s, success_threshold=1,
                                           handled_exceptions=(ModelThrottledError, ModelUnavailableError))
        self._on_open = on_open
        self.openings = 0
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, persistence: Any, env: Mapping[str, str] | None = None, **kw: Any) -> Breakers:
        env = os.environ if env is None else env
        return cls(persistence, failure_threshold=_int_env(env, "STEPCREW_BREAKER_FAILURES", 5, 1, 1000),
                   recovery_timeout_s=_int_env(env, "STEPCREW_BREAKER_RECOVERY_S", 30, 1, 86_400), **kw)

    def _transition(self, transition: Any) -> None:
        from aws_lambda_powertools.utilities.circuit_breaker.states import CircuitState

        if transition.to_state == CircuitState.OPEN:
            with self._lock:
                self.openings += 1
            if self._on_open is not None:
                self._on_open(transition.circuit_name)

    def call(self, provider: str, model: str, fn: Callable[[], T]) -> T:
        """``fn()`` through the circuit of ``provider``/``model``. Raises CircuitOpenError when it is open (``fn``
        not called), else what ``fn`` raises."""
        from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError, circuit_breaker

        guarded = circuit_breaker(name=circuit_name(provider, model), persistence_store=self.persistence,
                                  config=self.config, on_transition=self._transition)(fn)
        try:
            return guarded()
        except CircuitBreakerOpenError:
            raise CircuitOpenError(f"the circuit of {provider}:{model} is open") from None

    def state(self, provider: str, model: str) -> str:
        """``closed`` | ``open`` | ``half_open`` as the store (or the 5 s local cache) says."""
        self.persistence.configure(config=self.config, circuit_name=circuit_name(provider, model))
        return self.persistence.get_state(circuit_name(provider, model)).state.value.lower()


def reset_local_counters() -> None:
    """Forget the utility's per-process failure streaks (tests; a fresh local run)."""
    from aws_lambda_powertools.utilities.circuit_breaker import base

    with base._COUNTERS_LOCK:
        base._LOCAL_FAILURES.clear()
        base._LOCAL_SUCCESSES.clear()
        base._LAST_OBSERVED_STATE.clear()
