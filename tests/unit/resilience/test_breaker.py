"""Circuit breakers per provider and model (:mod:`stepcrew.resilience.breaker`, Powertools' utility) on the store's
persistence: MemoryRunStore's in-memory layer and DynamoRunStore's table (moto)."""

from __future__ import annotations

import itertools

import pytest
from stepcrew.llm.base import ModelAuthError, ModelBadRequestError, ModelThrottledError, ModelUnavailableError
from stepcrew.resilience.breaker import Breakers, CircuitOpenError, circuit_name, reset_local_counters
from stepcrew.store.dynamodb import DynamoRunStore
from stepcrew.store.memory import MemoryRunStore
from stepcrew.store.schema import create_table

_TABLE_NUMBERS = itertools.count()


@pytest.fixture(params=["memory", "dynamo"])
def layers(request):
    """``layers()`` -> a persistence layer on one shared state: the memory store's own, or a new
    DynamoRunStore's on the same table (another function's)."""
    if request.param == "memory":
        store = MemoryRunStore()
        return store.breaker_persistence
    client = request.getfixturevalue("moto_dynamodb")
    table = f"stepcrew-breaker-{next(_TABLE_NUMBERS)}"
    create_table(client, table)
    return lambda: DynamoRunStore(table, client=client).breaker_persistence()


@pytest.fixture
def persistence(layers):
    return layers()


class Provider:
    """Counts calls; raises ``errors`` in order (None: answers)."""

    def __init__(self, *errors):
        self.errors, self.calls = list(errors), 0

    def __call__(self):
        self.calls += 1
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error("scripted")
        return "ok"


def test_the_circuit_opens_after_the_threshold_of_consecutive_transient_failures(persistence):
    opened = []
    breakers = Breakers(persistence, failure_threshold=3, recovery_timeout_s=3600, on_open=opened.append)
    fn = Provider(ModelUnavailableError, ModelThrottledError, ModelUnavailableError)
    for _ in range(3):
        assert breakers.state("p", "m") == "closed"
        with pytest.raises((ModelUnavailableError, ModelThrottledError)):
            breakers.call("p", "m", fn)
    assert breakers.state("p", "m") == "open" and breakers.openings == 1
    assert opened == [circuit_name("p", "m")] == ["model:p:m"]
    # later calls are refused at once, the provider is not called
    for _ in range(4):
        with pytest.raises(CircuitOpenError, match="p:m is open"):
            breakers.call("p", "m", fn)
    assert fn.calls == 3


def test_a_success_resets_the_streak(persistence):
    breakers = Breakers(persistence, failure_threshold=2, recovery_timeout_s=3600)
    fn = Provider(ModelUnavailableError, None, ModelUnavailableError, None, ModelUnavailableError)
    for _ in range(5):
        try:
            breakers.call("p", "m", fn)
        except ModelUnavailableError:
            pass
    assert breakers.state("p", "m") == "closed" and fn.calls == 5


@pytest.mark.parametrize("error", [ModelAuthError, ModelBadRequestError, ValueError])
def test_errors_that_are_not_transient_do_not_count(persistence, error):
    breakers = Breakers(persistence, failure_threshold=1, recovery_timeout_s=3600)
    fn = Provider(*([error] * 3))
    for _ in range(3):
        with pytest.raises(error):
            breakers.call("p", "m", fn)
    assert breakers.state("p", "m") == "closed" and fn.calls == 3


def test_circuits_are_per_provider_and_model(persistence):
    breakers = Breakers(persistence, failure_threshold=1, recovery_timeout_s=3600)
    with pytest.raises(ModelUnavailableError):
        breakers.call("p", "m", Provider(ModelUnavailableError))
    assert breakers.state("p", "m") == "open"
    assert breakers.state("p", "m2") == "closed" and breakers.state("q", "m") == "closed"
    assert breakers.call("p", "m2", Provider()) == "ok" and breakers.call("q", "m", Provider()) == "ok"


def test_an_open_circuit_is_shared_by_every_breaker_on_the_same_state(layers):
    one = Breakers(layers(), failure_threshold=1, recovery_timeout_s=3600)
    with pytest.raises(ModelUnavailableError):
        one.call("p", "m", Provider(ModelUnavailableError))
    reset_local_counters()  # another execution environment: no local streak of its own
    other = Breakers(layers(), failure_threshold=1, recovery_timeout_s=3600)
    fn = Provider()
    with pytest.raises(CircuitOpenError):
        other.call("p", "m", fn)
    assert fn.calls == 0


def test_after_the_recovery_timeout_one_probe_closes_or_reopens_the_circuit(persistence, monkeypatch):
    from aws_lambda_powertools.utilities.circuit_breaker import base

    now = [1_000_000]
    monkeypatch.setattr(base.CircuitBreakerHandler, "_now", staticmethod(lambda: now[0]))
    breakers = Breakers(persistence, failure_threshold=1, recovery_timeout_s=30)
    with pytest.raises(ModelUnavailableError):
        breakers.call("p", "m", Provider(ModelUnavailableError))
    now[0] += 29
    with pytest.raises(CircuitOpenError):
        breakers.call("p", "m", Provider())
    now[0] += 1  # the recovery timeout has passed: a failed probe reopens it
    failing = Provider(ModelUnavailableError)
    with pytest.raises(ModelUnavailableError):
        breakers.call("p", "m", failing)
    assert failing.calls == 1 and breakers.state("p", "m") == "open" and breakers.openings == 2
    now[0] += 30  # a successful probe closes it (success_threshold 1)
    assert breakers.call("p", "m", Provider()) == "ok"
    assert breakers.state("p", "m") == "closed"


def test_settings_from_the_environment():
    persistence = MemoryRunStore().breaker_persistence()
    default = Breakers.from_env(persistence, {})
    assert (default.config.failure_threshold, default.config.recovery_timeout) == (5, 30)
    tuned = Breakers.from_env(persistence, {"STEPCREW_BREAKER_FAILURES": " 2 ", "STEPCREW_BREAKER_RECOVERY_S": "90"})
    assert (tuned.config.failure_threshold, tuned.config.recovery_timeout) == (2, 90)


@pytest.mark.parametrize("env, match", [
    ({"STEPCREW_BREAKER_FAILURES": "two"}, "must be an integer"),
    ({"STEPCREW_BREAKER_FAILURES": "0"}, "between 1 and 1000"),
    ({"STEPCREW_BREAKER_FAILURES": "1001"}, "between 1 and 1000"),
    ({"STEPCREW_BREAKER_RECOVERY_S": "0"}, "between 1 and 86400"),
    ({"STEPCREW_BREAKER_RECOVERY_S": "1.5"}, "must be an integer"),
])
def test_bad_settings_are_rejected(env, match):
    with pytest.raises(ValueError, match=match):
        Breakers.from_env(MemoryRunStore().breaker_persistence(), env)
