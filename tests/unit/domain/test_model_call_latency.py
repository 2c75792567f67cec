"""LLM calls are timed by the LLM engine (the handlers carry no X-Ray SDK): each EngineCall holds the request's
wall time, and the ``model_turn`` progress event carries it. The clock is replaced, so the figure is exact."""

from __future__ import annotations

import stepcrew.engines.llm as llm_engine
from stepcrew.domain.modelcall import record_calls
from stepcrew.engines.facts import MemoryFacts
from stepcrew.llm.testing import FunctionModel, reply
from stepcrew.models import AgentRole, Run
from stepcrew.store.memory import MemoryRunStore

ROLE = AgentRole(name="synthesizer", role="Synthesizer", goal="Write reports.")


def test_each_model_call_carries_its_latency_to_the_model_turn_event(monkeypatch, crew):
    ticks = iter([10.0, 10.25])  # the engine reads the clock once before and once after the request
    monkeypatch.setattr(llm_engine.time, "perf_counter", lambda: next(ticks))
    model = FunctionModel(lambda request: reply("[]", input_tokens=7, output_tokens=3))
    engine = llm_engine.LLMEngine("test", lambda tier: (model, "m-1"))

    answer = engine.extract_memory(MemoryFacts(goal="Compare penguins."), ROLE)

    (call,) = answer.calls
    assert call.latency_ms == 250
    store = MemoryRunStore()
    run = Run(run_id="r-latency", goal="Compare penguins.", crew=crew, provider="rule")
    store.create_run(run)
    record_calls(store, run, answer.calls, "memory")
    (turn,) = [e for _, e in store.list_events("r-latency") if e.kind == "model_turn"]
    assert turn.data["latency_ms"] == 250 and turn.data["input_tokens"] == 7


def test_a_call_the_engine_did_not_time_has_no_latency_in_its_event(crew):
    from stepcrew.engines.base import EngineCall

    store = MemoryRunStore()
    run = Run(run_id="r-untimed", goal="Compare penguins.", crew=crew, provider="rule")
    store.create_run(run)
    record_calls(store, run, [EngineCall(model="rule-engine")], "plan")
    (turn,) = [e for _, e in store.list_events("r-untimed") if e.kind == "model_turn"]
    assert "latency_ms" not in turn.data
