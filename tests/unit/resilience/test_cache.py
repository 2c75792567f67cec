"""The exact response cache (:mod:`stepcrew.resilience.cache`): key stability and sensitivity, and the tenant-scoped,
expiring entries on both stores (MemoryRunStore, DynamoRunStore on moto)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from stepcrew.engines.testing import reply
from stepcrew.llm.base import ModelRequest, ModelSettings, ResponseUsage, ToolSpec
from stepcrew.models import Message, ToolCall, ToolResult
from stepcrew.resilience.cache import (
    RESPONSE_PREFIX,
    ResponseCache,
    SemanticPlanCache,
    normalise_goal,
    response_key,
)
from stepcrew.store import dynamodb as dynamodb_module
from stepcrew.store import memory as memory_module
from stepcrew.store.base import StoreError
from stepcrew.store.memory import MemoryRunStore

SPEC = ToolSpec(name="calculator", description="Evaluates arithmetic.",
                parameters={"type": "object", "properties": {"expression": {"type": "string"}}})
CALL = ToolCall(call_id="c1", name="calculator", arguments={"expression": "17 * 23"})


def request(*, model: str = "m", user: str = "What is 17 * 23?", tools=(SPEC,), temperature: float = 0.2,
            max_tokens: int = 2048, timeout_s: float = 60.0, result: ToolResult | None = None) -> ModelRequest:
    messages = [Message(role="system", content="You compute."), Message(role="user", content=user)]
    if result is not None:
        messages += [Message(role="assistant", content="", tool_calls=[CALL]),
                     Message(role="tool", tool_results=[result])]
    return ModelRequest(messages=messages, tools=list(tools),
                        settings=ModelSettings(model=model, temperature=temperature, max_tokens=max_tokens,
                                               timeout_s=timeout_s))


def ok_result(value=391, **kw) -> ToolResult:
    return ToolResult(call_id="c1", name="calculator", ok=True, content={"value": value}, **kw)


# ---------------------------------------------------------------------------------------------- the key
def test_the_key_is_stable_and_shaped():
    key = response_key("anthropic", request())
    assert key == response_key("anthropic", request()) == response_key("anthropic", request().model_copy(deep=True))
    assert key.startswith(RESPONSE_PREFIX) and len(key) == len(RESPONSE_PREFIX) + 64
    int(key[len(RESPONSE_PREFIX):], 16)
    # dict order of the arguments does not matter (sorted keys)
    a = request().model_copy(update={"tools": [ToolSpec(name="t", description="d", parameters={"a": 1, "b": 2})]})
    b = request().model_copy(update={"tools": [ToolSpec(name="t", description="d", parameters={"b": 2, "a": 1})]})
    assert response_key("p", a) == response_key("p", b)


@pytest.mark.parametrize("provider, changed", [
    ("openai", request()),  # another provider
    ("anthropic", request(model="m2")),
    ("anthropic", request(user="What is 17 * 24?")),
    ("anthropic", request(tools=())),
    ("anthropic", request(tools=(SPEC.model_copy(update={"description": "Evaluates maths."}),))),
    ("anthropic", request(temperature=0.7)),
    ("anthropic", request(max_tokens=1024)),
    ("anthropic", request(result=ok_result())),  # a longer conversation
])
def test_what_changes_an_answer_changes_the_key(provider, changed):
    assert response_key(provider, changed) != response_key("anthropic", request())


def test_a_native_reply_schema_is_part_of_the_key():
    from stepcrew.llm.base import ResponseFormat

    plan_v1 = ResponseFormat(name="plan", json_schema={"type": "object", "properties": {"a": {"type": "string"}}})
    plan_v2 = ResponseFormat(name="plan", json_schema={"type": "object", "properties": {"b": {"type": "string"}}})
    keys = {response_key("anthropic", request().model_copy(update={"response_format": f}))
            for f in (None, plan_v1, plan_v2)}
    assert len(keys) == 3  # an answer cached under an older reply schema is never served for a newer one


def test_the_timeout_does_not_change_the_key():
    assert response_key("anthropic", request(timeout_s=5)) == response_key("anthropic", request(timeout_s=600))


def test_tool_results_count_as_the_model_reads_them():
    base = response_key("p", request(result=ok_result()))
    assert response_key("p", request(result=ok_result(value=392))) != base  # another result
    assert response_key("p", request(result=ok_result(cached=True))) == base  # bookkeeping only


# ---------------------------------------------------------------------------------------------- entries
def in_the_future(monkeypatch, seconds: int) -> None:
    """Move both stores' clock ``seconds`` ahead."""
    real = datetime

    class Later(real):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(memory_module, "datetime", Later)
    monkeypatch.setattr(dynamodb_module, "datetime", Later)


def test_a_hit_returns_the_answer_for_free_with_what_it_cost(any_store):
    cache = ResponseCache(any_store, "acme", 3600)
    paid = reply("391", input_tokens=120, output_tokens=30, model="claude-haiku-4-5")
    assert cache.get("anthropic", request()) is None
    cache.put("anthropic", request(), paid, 0.000345)
    response, tokens, cost = cache.get("anthropic", request())
    assert response.text == "391" and response.model == "claude-haiku-4-5" and response.stop_reason == "end_turn"
    assert response.usage == ResponseUsage()  # nothing is paid for a hit
    assert tokens == 150 and cost == pytest.approx(0.000345)
    # another provider, model or prompt misses
    assert cache.get("openai", request()) is None
    assert cache.get("anthropic", request(model="m2")) is None
    assert cache.get("anthropic", request(user="What is 17 * 24?")) is None


def test_a_tool_call_answer_round_trips(any_store):
    cache = ResponseCache(any_store, "acme", 3600)
    from stepcrew.engines.testing import call_tool

    asked = call_tool("calculator", {"expression": "17 * 23"}, call_id="c9")
    cache.put("p", request(), asked, 0.0)
    response, _, _ = cache.get("p", request())
    assert response.stop_reason == "tool_use" and response.tool_calls == asked.tool_calls


def test_tenant_b_never_reads_tenant_as_entry(any_store):
    ResponseCache(any_store, "tenant-a", 3600).put("p", request(), reply("A's answer"), 0.01)
    assert ResponseCache(any_store, "tenant-b", 3600).get("p", request()) is None
    assert any_store.cache_get("tenant-b", response_key("p", request())) is None
    assert any_store.cache_scan("tenant-b", RESPONSE_PREFIX) == []
    # B's own entry under the same key does not touch A's
    ResponseCache(any_store, "tenant-b", 3600).put("p", request(), reply("B's answer"), 0.01)
    assert ResponseCache(any_store, "tenant-a", 3600).get("p", request())[0].text == "A's answer"
    assert ResponseCache(any_store, "tenant-b", 3600).get("p", request())[0].text == "B's answer"


def test_an_expired_entry_is_never_served(any_store, monkeypatch):
    ttl = 120
    cache = ResponseCache(any_store, "acme", ttl)
    cache.put("p", request(), reply("old"), 0.0)
    in_the_future(monkeypatch, ttl - 5)
    assert cache.get("p", request())[0].text == "old"
    in_the_future(monkeypatch, ttl + 1)
    assert cache.get("p", request()) is None
    assert any_store.cache_scan("acme", RESPONSE_PREFIX) == []


def test_a_new_answer_replaces_the_entry_and_restarts_its_life(any_store, monkeypatch):
    ResponseCache(any_store, "acme", 60).put("p", request(), reply("first"), 0.0)
    ResponseCache(any_store, "acme", 3600).put("p", request(), reply("second"), 0.0)
    in_the_future(monkeypatch, 600)
    assert ResponseCache(any_store, "acme", 60).get("p", request())[0].text == "second"


class _Broken(MemoryRunStore):
    def cache_get(self, tenant, key):
        raise StoreError("table unavailable")

    def cache_put(self, tenant, key, body, ttl_s):
        raise StoreError("table unavailable")


def test_store_errors_are_a_miss_and_an_ignored_write():
    cache = ResponseCache(_Broken(), "acme", 3600)
    cache.put("p", request(), reply("x"), 0.0)  # no raise
    assert cache.get("p", request()) is None


@pytest.mark.parametrize("body", [{"at": 1}, {"response": {"text": "no stop reason"}}, {"response": "garbage"}])
def test_an_unreadable_entry_is_a_miss(body):
    store = MemoryRunStore()
    store.cache_put("acme", response_key("p", request()), body, 3600)
    assert ResponseCache(store, "acme", 3600).get("p", request()) is None


# ---------------------------------------------------------------------------------------------- plan cache key


@pytest.mark.parametrize("a, b", [
    ("What is the average body mass?", "what is the average body mass"),  # case, punctuation
    ("Please tell me the average body mass.", "average body mass"),  # politeness, articles
    ("Could you list the species, quickly!", "list species quickly"),  # "quickly" may be what is asked
    ("Mean of 3.5% growth", "mean of 3.5% growth"),
])
def test_normalise_goal_drops_what_does_not_change_the_question(a, b):
    assert normalise_goal(a) == normalise_goal(b)


@pytest.mark.parametrize("a, b", [
    ("What is the average body mass?", "What is the median body mass?"),
    ("Mean body mass in 2007", "Mean body mass in 2008"),
    ("Growth of 3.5%", "Growth of 35%"),  # the decimal point is kept
    ("Adelie heavier than Gentoo?", "Gentoo heavier than Adelie?"),  # word order is kept
])
def test_normalise_goal_keeps_what_changes_the_question(a, b):
    assert normalise_goal(a) != normalise_goal(b)


@pytest.mark.parametrize("a, b", [
    ("How many penguins weigh > 4000 g?", "How many penguins weigh < 4000 g?"),
    ("Which months had growth below -5%?", "Which months had growth below 5%?"),
])
def test_goals_that_differ_in_a_comparison_or_a_sign_get_different_keys(a, b):
    assert normalise_goal(a) != normalise_goal(b)


def test_the_plan_cache_serves_a_valid_plan_for_the_same_normalised_goal_of_the_same_tenant_and_scope():
    store = MemoryRunStore()
    cache = SemanticPlanCache(store, "acme", None, float("inf"), 3600)  # embeddings off (the default threshold)
    cache.remember("What is the average body mass?", "scope1", {"plan": {"subtasks": []}}, (120, 0.01))
    body, score, kind = cache.lookup("please, what is THE average body mass", "scope1")
    assert (score, kind) == (1.0, "normalised") and body["paid_tokens"] == 120
    assert cache.lookup("What is the median body mass?", "scope1") is None
    assert cache.lookup("What is the average body mass?", "scope2") is None  # another dataset / crew
    other = SemanticPlanCache(store, "globex", None, float("inf"), 3600)
    assert other.lookup("What is the average body mass?", "scope1") is None  # another tenant
