"""Provider prompt-cache token counts travel from a model response to the run's usage (both store adapters) and to
``runs show --json`` (RunResult.usage)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stepcrew.domain.modelcall import record_calls
from stepcrew.engines.llm import LLMEngine
from stepcrew.llm.base import ModelResponse, ResponseUsage
from stepcrew.llm.testing import FunctionModel
from stepcrew.models import AgentRole, Crew, Run
from stepcrew.service import run_result


def _role(name: str) -> AgentRole:
    return AgentRole(name=name, role=name.title(), goal=f"do the {name} work")


CREW = Crew(name="test", planner=_role("planner"), workers=[_role("analyst")], reviewer=_role("reviewer"),
            synthesizer=_role("synthesizer"))


@pytest.fixture
def store(run_store):
    return run_store  # tests/unit/conftest.py: both adapters


def _run() -> Run:
    return Run(run_id="r1", tenant="acme", crew=CREW, goal="Summarise sales",
               created_at=datetime(2025, 1, 1, tzinfo=UTC))


def test_add_usage_sums_cache_tokens_in_totals_and_by_model(store):
    store.create_run(_run())
    store.add_usage("r1", "claude-sonnet-4-5", 4000, 100, 0.01, cache_read_tokens=3000, cache_write_tokens=0)
    store.add_usage("r1", "claude-sonnet-4-5", 4100, 100, 0.02, cache_read_tokens=0, cache_write_tokens=3500)
    usage = store.add_usage("r1", "gpt-4o", 10, 1, 0.001)  # no cache fields: zero
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (8110, 3000, 3500)
    sonnet = usage.by_model["claude-sonnet-4-5"]
    assert (sonnet.cache_read_tokens, sonnet.cache_write_tokens) == (3000, 3500)
    assert (usage.by_model["gpt-4o"].cache_read_tokens, usage.by_model["gpt-4o"].cache_write_tokens) == (0, 0)
    assert store.get_run("r1").usage == usage


def test_negative_cache_tokens_are_refused(store):
    store.create_run(_run())
    with pytest.raises(ValueError):
        store.add_usage("r1", "m", 10, 1, 0.0, cache_read_tokens=-1)


def test_a_cached_response_reaches_the_run_result(store):
    # Given a model whose answer read 3,000 of its 4,050 prompt tokens from the provider's cache
    usage = ResponseUsage(input_tokens=4050, output_tokens=200, cache_read_tokens=3000, cache_write_tokens=1000,
                          cost_usd=0.0078)
    model = FunctionModel(lambda request: ModelResponse(text="ok", stop_reason="end_turn", model="claude-sonnet-4-5",
                                                        usage=usage))
    engine = LLMEngine("function", lambda tier: (model, "claude-sonnet-4-5"))
    store.create_run(_run())
    run = store.get_run("r1")
    # When the engine's call is recorded on the run
    from stepcrew.engines.facts import ReportFacts

    reply = engine.synthesize(ReportFacts(goal="Summarise sales", has_dataset=False, subtasks=[]), CREW.synthesizer)
    assert (reply.calls[0].cache_read_tokens, reply.calls[0].cache_write_tokens) == (3000, 1000)
    record_calls(store, run, reply.calls, "synthesize")
    # Then the run's usage and the RunResult (runs show --json) carry the cached counts
    view = run_result(store, "r1").usage
    assert (view.input_tokens, view.cache_read_tokens, view.cache_write_tokens) == (4050, 3000, 1000)
    assert view.cost_usd == pytest.approx(0.0078)
