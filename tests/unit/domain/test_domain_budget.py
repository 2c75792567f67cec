"""The run budget: usage is recorded per model call; passing max_tokens / max_cost_usd fails with
BudgetExceededError, and a run already past a cap makes no further model call."""

import pytest
from domain_helpers import RUN_ID, plan_json, two_step_plan

from stepcrew.domain.errors import BudgetExceededError
from stepcrew.domain.planner import plan_run
from stepcrew.events import PlanInput
from stepcrew.engines.testing import ScriptedModel, reply
from stepcrew.models import Budget


def test_usage_is_recorded_and_a_model_turn_event_written(store, make_run, use_model):
    make_run(provider=use_model(ScriptedModel([reply(plan_json(two_step_plan()), input_tokens=70,
                                                     output_tokens=30, model="claude-haiku-4-5")])))
    plan_run(PlanInput(run_id=RUN_ID), store)
    usage = store.get_run(RUN_ID).usage
    assert usage.input_tokens == 70 and usage.output_tokens == 30
    assert usage.by_model["claude-haiku-4-5"].cost_usd == pytest.approx((70 * 1 + 30 * 5) / 1e6)
    (turn,) = [e for _, e in store.list_events(RUN_ID) if e.kind == "model_turn"]
    latency_ms = turn.data.pop("latency_ms")  # the engine's wall time of the call (exact figure: test_model_call_latency)
    assert isinstance(latency_ms, int) and latency_ms >= 0
    assert turn.data == {"purpose": "plan", "model": "claude-haiku-4-5", "stop_reason": "end_turn",
                         "input_tokens": 70, "output_tokens": 30, "tool_calls": 0,
                         # the ladder's record: who answered, on which tier and why, and the rung
                         "provider": "scripted-test", "tier": "smart", "route": "role tier smart", "rung": "full"}


def test_a_call_that_cannot_fit_the_token_budget_is_never_made(store, make_run, use_model):
    model = ScriptedModel([reply("{}", input_tokens=80, output_tokens=30)])
    make_run(provider=use_model(model), budget=Budget(max_tokens=100))
    with pytest.raises(BudgetExceededError, match=r"its budget \(100 tokens\) has no room for another call"):
        plan_run(PlanInput(run_id=RUN_ID), store)  # the planner prompt alone is estimated above 100 tokens
    assert model.requests == [] and store.get_run(RUN_ID).usage.input_tokens == 0


def test_the_call_that_passes_max_tokens_fails_the_run(store, make_run, use_model):
    # the estimate said the call fits (about 1,300 tokens reserved); the provider then reported far more input
    make_run(provider=use_model(ScriptedModel([reply("{}", input_tokens=5000, output_tokens=30)])),
             budget=Budget(max_tokens=4000))
    with pytest.raises(BudgetExceededError, match="used 5030 tokens, over its budget of 4000"):
        plan_run(PlanInput(run_id=RUN_ID), store)
    assert store.get_run(RUN_ID).usage.input_tokens == 5000  # recorded before failing


def test_the_call_that_passes_max_cost_fails_the_run(store, make_run, use_model):
    expensive = reply("{}", input_tokens=1_000_000, output_tokens=0, model="claude-sonnet-4-5")  # $3
    make_run(provider=use_model(ScriptedModel([expensive])), budget=Budget(max_cost_usd=1.0))
    with pytest.raises(BudgetExceededError, match=r"cost \$3.0000, over its budget of \$1.0000"):
        plan_run(PlanInput(run_id=RUN_ID), store)


def test_a_run_already_over_budget_makes_no_model_call(store, make_run, use_model):
    model = ScriptedModel([reply("{}")])
    make_run(provider=use_model(model), budget=Budget(max_tokens=10))
    store.add_usage(RUN_ID, "m", 11, 0, 0.0)
    with pytest.raises(BudgetExceededError):
        plan_run(PlanInput(run_id=RUN_ID), store)
    assert model.requests == []
