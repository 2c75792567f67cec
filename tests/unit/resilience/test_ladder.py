"""The resilience ladder at unit level (:mod:`stepcrew.resilience.ladder`), on MemoryRunStore.

- the chain: a transient error goes back to the ASL's Retry until the last attempt, then the next provider; an
  auth error fails unless ``fallback_on_auth_error``; a bad request never moves on; an open circuit moves on at once;
- the degraded rungs: planner -> rule engine for the whole run, worker -> hand-off, synthesizer/reviewer -> rule
  engine;
- the exact cache inside :class:`GatedModel` (served while the provider is down), ``cacheable``;
- :class:`BudgetGate` arithmetic (reservation = input estimate + output cap; settle on actual usage) and
  :func:`estimate_input_tokens`;
- the ``reserve_budget`` / ``settle_budget`` contract on both stores (MemoryRunStore, DynamoRunStore on moto).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from stepcrew.wiring import tool_functions
from stepcrew.crew import load_crew
from stepcrew.domain.errors import BudgetExceededError, ToolLoopError
from stepcrew.domain.modelcall import record_calls
from stepcrew.engines.base import ActReply, EngineCall, PlanReply, ReportReply, ReviewReply
from stepcrew.engines.facts import ActFacts, PlanFacts, ReportFacts, SubtaskFacts, WorkerInfo
from stepcrew.engines.rules import RuleEngine
from stepcrew.engines.testing import FunctionModel, ScriptedModel, call_tool, reply
from stepcrew.events import MODEL_RETRY_ATTEMPTS
from stepcrew.llm.base import (
    ModelAuthError,
    ModelBadRequestError,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    ModelThrottledError,
    ModelUnavailableError,
    ResponseUsage,
    ToolSpec,
)
from stepcrew.llm.pricing import cost_usd
from stepcrew.models import (
    DEGRADATION_ORDER,
    Budget,
    CriterionScores,
    Decline,
    Message,
    Plan,
    Routing,
    Run,
    SubTask,
    ToolCall,
    ToolResult,
)
from stepcrew.resilience.breaker import Breakers, CircuitOpenError
from stepcrew.resilience.cache import ResponseCache
from stepcrew.resilience.ladder import (
    MIN_OUTPUT_TOKENS,
    NO_PROVIDER,
    BudgetGate,
    CallLog,
    GatedModel,
    LadderEngine,
    cacheable,
    estimate_input_tokens,
    worse,
)
from stepcrew.store.base import RunNotFoundError, RunStore
from stepcrew.store.memory import MemoryRunStore
from stepcrew.tools.registry import known_tools, tool_specs

#: The agent ASL's tool_functions constant, as a deployed stack fills it.
TOOL_FNS = tool_functions(lambda n: f"arn:aws:lambda:us-east-1:123456789012:function:stepcrew-{n}")

RUN_ID = "run1"
CREW = load_crew("default")


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def store() -> MemoryRunStore:
    return MemoryRunStore()


def make_run(store: RunStore, *, chain: tuple[str, ...] = ("p1", "p2"), run_id: str = RUN_ID, **fields) -> Run:
    routing = fields.pop("routing", None) or Routing(chains={"fast": list(chain), "smart": list(chain)})
    run = Run(run_id=run_id, goal="What is 17 * 23?", crew=CREW, provider=chain[0], routing=routing, **fields)
    store.create_run(run)
    return store.get_run(run_id)


def ladder(store: RunStore, run: Run, models: dict, *, retry_count: int = 0, breakers=None) -> LadderEngine:
    """A LadderEngine whose providers play ``models[provider]`` (model id = the provider's name)."""
    return LadderEngine(run, store, lambda provider, tier: (models[provider], provider), rule=RuleEngine(),
                        retry_count=retry_count, max_retries=MODEL_RETRY_ATTEMPTS, breakers=breakers)


def down(exc: type[Exception] = ModelUnavailableError) -> FunctionModel:
    def fail(request):
        raise exc("scripted failure")

    return FunctionModel(fail)


def plan_facts(goal: str = "What is 17 * 23?") -> PlanFacts:
    return PlanFacts(goal=goal, has_dataset=False, workers=[WorkerInfo(name=w.name, role=w.role, tools=list(w.tools))
                                                             for w in CREW.workers], tools=sorted(known_tools()))


CALC = SubtaskFacts(id="calc", title="Compute", instructions="Compute 17 * 23.", tools=["calculator"])


def act_facts() -> ActFacts:
    return ActFacts(goal="What is 17 * 23?", has_dataset=False, subtask=CALC)


def report_facts(report: str | None = None) -> ReportFacts:
    done = CALC.model_copy(update={"output": "17 * 23 = 391"})
    return ReportFacts(goal="What is 17 * 23?", has_dataset=False, subtasks=[done], report=report)


PLAN_TEXT = json.dumps({"subtasks": [{"id": "calc", "title": "Compute", "instructions": "Compute 17 * 23.",
                                      "tools": ["calculator"]}]})
REVIEW_TEXT = json.dumps({"accuracy": 0.9, "completeness": 0.8, "relevance": 1.0, "feedback": "fine"})


# ---------------------------------------------------------------------------------------------- the chain
@pytest.mark.parametrize("error", [ModelThrottledError, ModelUnavailableError])
@pytest.mark.parametrize("retry_count", range(MODEL_RETRY_ATTEMPTS))
def test_a_transient_error_with_retries_left_goes_back_to_the_state_machine(store, error, retry_count):
    first, second = down(error), ScriptedModel([reply(PLAN_TEXT)])
    engine = ladder(store, make_run(store), {"p1": first, "p2": second}, retry_count=retry_count)
    with pytest.raises(error):
        engine.plan(plan_facts(), CREW.planner)
    assert len(first.requests) == 1 and second.requests == []  # the next provider waits for the last attempt
    assert store.get_run(RUN_ID).engine_override is None


@pytest.mark.parametrize("error", [ModelThrottledError, ModelUnavailableError])
def test_at_the_last_attempt_the_next_provider_of_the_chain_answers(store, error):
    first, second = down(error), ScriptedModel([reply(PLAN_TEXT, input_tokens=40, output_tokens=9)])
    engine = ladder(store, make_run(store), {"p1": first, "p2": second}, retry_count=MODEL_RETRY_ATTEMPTS)
    out = engine.plan(plan_facts(), CREW.planner)
    assert out.plan is not None and len(first.requests) == len(second.requests) == 1
    (call,) = out.calls
    assert (call.provider, call.rung, call.cache, call.tier) == ("p2", "full", None, CREW.planner.model_tier)
    assert (call.input_tokens, call.output_tokens) == (40, 9)
    assert engine.outcome.rung == "full" and engine.outcome.failures == [f"p1: {error.__name__}"]


def test_a_rejected_key_fails_the_call_by_default(store):
    first, second = down(ModelAuthError), ScriptedModel([reply(PLAN_TEXT)])
    engine = ladder(store, make_run(store), {"p1": first, "p2": second}, retry_count=MODEL_RETRY_ATTEMPTS)
    with pytest.raises(ModelAuthError):
        engine.plan(plan_facts(), CREW.planner)
    assert second.requests == []


@pytest.mark.parametrize("retry_count", [0, MODEL_RETRY_ATTEMPTS])
def test_a_rejected_key_moves_to_the_next_provider_with_fallback_on_auth_error(store, retry_count):
    first, second = down(ModelAuthError), ScriptedModel([reply(PLAN_TEXT)])
    routing = Routing(chains={"fast": ["p1", "p2"], "smart": ["p1", "p2"]}, fallback_on_auth_error=True)
    engine = ladder(store, make_run(store, routing=routing), {"p1": first, "p2": second}, retry_count=retry_count)
    out = engine.plan(plan_facts(), CREW.planner)
    assert out.calls[0].provider == "p2" and engine.outcome.failures == ["p1: ModelAuthError"]


def test_a_bad_request_is_never_sent_to_another_provider(store):
    first, second = down(ModelBadRequestError), ScriptedModel([reply(PLAN_TEXT)])
    routing = Routing(chains={"fast": ["p1", "p2"], "smart": ["p1", "p2"]}, fallback_on_auth_error=True)
    engine = ladder(store, make_run(store, routing=routing), {"p1": first, "p2": second},
                    retry_count=MODEL_RETRY_ATTEMPTS)
    with pytest.raises(ModelBadRequestError):
        engine.plan(plan_facts(), CREW.planner)
    assert second.requests == []


def test_without_a_chain_the_run_provider_alone_is_tried(store):
    only = ScriptedModel([reply(PLAN_TEXT)])
    run = make_run(store, routing=Routing(), chain=("solo",))
    out = ladder(store, run, {"solo": only}).plan(plan_facts(), CREW.planner)
    assert out.calls[0].provider == "solo"


def test_an_open_circuit_moves_to_the_next_provider_at_once_without_calling_it(store):
    breakers = Breakers(store.breaker_persistence(), failure_threshold=1, recovery_timeout_s=3600)
    first, second = down(), ScriptedModel([reply(PLAN_TEXT), reply(PLAN_TEXT)])
    run = make_run(store)
    # the first failure opens p1's circuit (threshold 1) and still goes back to the ASL (retries left)
    with pytest.raises(ModelUnavailableError):
        ladder(store, run, {"p1": first, "p2": second}, breakers=breakers).plan(plan_facts(), CREW.planner)
    assert breakers.state("p1", "p1") == "open" and breakers.openings == 1
    # the next call, with retries left, skips p1 without calling it
    engine = ladder(store, run, {"p1": first, "p2": second}, breakers=breakers)
    out = engine.plan(plan_facts(), CREW.planner)
    assert len(first.requests) == 1 and out.calls[0].provider == "p2"
    assert engine.outcome.failures == ["p1: circuit open"]


# ---------------------------------------------------------------------------------------------- degraded rungs
def test_an_exhausted_chain_for_the_planner_switches_the_run_to_the_rule_engine(store):
    first, second = down(), down(ModelThrottledError)
    engine = ladder(store, make_run(store), {"p1": first, "p2": second}, retry_count=MODEL_RETRY_ATTEMPTS)
    out = engine.plan(plan_facts(), CREW.planner)
    expected = RuleEngine().plan(plan_facts(), CREW.planner)
    assert out.plan == expected.plan and out.decline == expected.decline and out.plan is not None
    assert store.get_run(RUN_ID).engine_override == "rule"
    assert [(c.provider, c.rung) for c in out.calls] == [(None, "rule_engine")]
    assert "chain exhausted" in out.calls[0].route
    assert engine.outcome.rung == "rule_engine"
    assert engine.outcome.failures == ["p1: ModelUnavailableError", "p2: ModelThrottledError"]


def test_an_exhausted_chain_for_a_worker_hands_the_run_to_a_person(store):
    first, second = down(), down()
    engine = ladder(store, make_run(store), {"p1": first, "p2": second}, retry_count=MODEL_RETRY_ATTEMPTS)
    conversation = engine.open(act_facts(), CREW.workers[0], tool_specs(["calculator"]))
    out = engine.act(act_facts(), CREW.workers[0], conversation, tool_specs(["calculator"]))
    assert out.stop_reason == "end_turn" and not out.message.tool_calls
    assert NO_PROVIDER in out.message.content
    run = store.get_run(RUN_ID)
    assert run.handoff_reason == NO_PROVIDER and run.engine_override is None
    assert [(c.provider, c.rung) for c in out.calls] == [(None, "handoff")]
    assert engine.outcome.rung == "handoff"


@pytest.mark.parametrize("role_call", ["synthesize", "improve", "review"])
def test_an_exhausted_chain_for_the_synthesizer_or_reviewer_falls_to_the_rule_engine(store, role_call):
    engine = ladder(store, make_run(store), {"p1": down(), "p2": down()}, retry_count=MODEL_RETRY_ATTEMPTS)
    role = CREW.reviewer if role_call == "review" else CREW.synthesizer
    facts = report_facts(report=None if role_call == "synthesize" else "# Report\n17 * 23 = 391")
    out = getattr(engine, role_call)(facts, role)
    expected = getattr(RuleEngine(), role_call)(facts, role)
    assert out.model_dump(exclude={"calls"}) == expected.model_dump(exclude={"calls"})
    assert [c.rung for c in out.calls] == ["rule_engine"] and engine.outcome.rung == "rule_engine"
    run = store.get_run(RUN_ID)
    assert run.engine_override is None and run.handoff_reason is None  # only the planner switches the run


def test_worse_orders_the_rungs_and_record_calls_never_raises_the_level_back(store):
    for a, b in itertools.product(DEGRADATION_ORDER, repeat=2):
        assert worse(a, b) == DEGRADATION_ORDER[max(DEGRADATION_ORDER.index(a), DEGRADATION_ORDER.index(b))]
    run = make_run(store)
    record_calls(store, run, [EngineCall(model="m", rung="rule_engine")], "plan")
    assert store.get_run(RUN_ID).degradation_level == "rule_engine"
    # a parallel sub-task's stale view of the run still at "full" records a "cached" call: the level stays
    record_calls(store, run, [EngineCall(model="m", rung="cached", cache="exact", saved_tokens=5)], "act", "calc")
    after = store.get_run(RUN_ID)
    assert after.degradation_level == "rule_engine"
    assert (after.usage.cache_hits, after.usage.saved_tokens) == (1, 5)
    kinds = [e.kind for _, e in store.list_events(RUN_ID)]
    assert kinds.count("degraded") == 1 and kinds.count("cache_hit") == 1


# ---------------------------------------------------------------------------------------------- exact cache
def test_an_accepted_reply_is_served_again_from_the_cache_while_the_provider_is_down(store):
    paid = reply(PLAN_TEXT, input_tokens=120, output_tokens=30, model="claude-haiku-4-5")
    run = make_run(store, chain=("p1",))
    engine = ladder(store, run, {"p1": ScriptedModel([paid])})
    first = engine.plan(plan_facts(), CREW.planner)
    assert first.calls[0].cache is None
    engine.accepted()  # the domain validated the plan
    # When the provider is down, the same request (same tenant) is answered from the cache, not the rule engine
    broken = down()
    engine = ladder(store, run, {"p1": broken}, retry_count=0)
    again = engine.plan(plan_facts(), CREW.planner)
    assert broken.requests == [] and again.plan == first.plan
    (call,) = again.calls
    assert (call.provider, call.cache, call.rung) == ("p1", "exact", "cached")
    assert (call.input_tokens, call.output_tokens, call.cost_usd) == (0, 0, 0.0)  # nothing paid again
    assert call.saved_tokens == 150 == paid.usage.input_tokens + paid.usage.output_tokens
    assert call.saved_cost_usd == pytest.approx(cost_usd("claude-haiku-4-5", 120, 30))
    assert engine.outcome.rung == "cached"


def test_a_reply_is_not_cached_until_the_domain_accepts_it(store):
    run = make_run(store, chain=("p1",))
    model = ScriptedModel([reply(PLAN_TEXT), reply(PLAN_TEXT)])
    ladder(store, run, {"p1": model}).plan(plan_facts(), CREW.planner)  # never accepted (e.g. the plan was invalid)
    assert store.cache_scan(run.tenant, "") == []
    out = ladder(store, run, {"p1": model}).plan(plan_facts(), CREW.planner)
    assert out.calls[0].cache is None and len(model.requests) == 2


def test_a_reply_the_domain_rejects_is_not_cached(store):
    run = make_run(store, chain=("p1",))
    bad = ScriptedModel([reply("no scores here"), reply(REVIEW_TEXT)])
    facts = report_facts("# Report")
    engine = ladder(store, run, {"p1": bad})
    out = engine.review(facts, CREW.reviewer)
    assert out.error is not None
    engine.accepted()  # even if a caller said so, a reply without scores is not kept
    out = ladder(store, run, {"p1": bad}).review(facts, CREW.reviewer)  # asked again, not served the bad reply
    assert out.scores == CriterionScores(accuracy=0.9, completeness=0.8, relevance=1.0)
    assert len(bad.requests) == 2 and out.calls[0].cache is None


def test_a_truncated_reply_is_not_cached(store):
    run = make_run(store, chain=("p1",))
    cut = ModelResponse(text="# Report (cut", stop_reason="max_tokens", model="m")
    model = ScriptedModel([cut, reply("# Report")])
    engine = ladder(store, run, {"p1": model})
    engine.synthesize(report_facts(), CREW.synthesizer)
    engine.accepted()
    out = ladder(store, run, {"p1": model}).synthesize(report_facts(), CREW.synthesizer)
    assert out.text == "# Report" and len(model.requests) == 2


def test_routing_cache_off_never_reads_or_writes_the_cache(store):
    run = make_run(store, routing=Routing(chains={"smart": ["p1"]}, cache=False), chain=("p1",))
    model = ScriptedModel([reply(PLAN_TEXT), reply(PLAN_TEXT)])
    for _ in range(2):
        engine = ladder(store, run, {"p1": model})
        assert engine.plan(plan_facts(), CREW.planner).calls[0].cache is None
        engine.accepted()
    assert len(model.requests) == 2 and store.cache_scan(run.tenant, "") == []


def test_another_tenants_run_gets_no_hit(store):
    run_a = make_run(store, chain=("p1",), tenant="acme")
    run_b = make_run(store, chain=("p1",), tenant="globex", run_id="run2")
    model = ScriptedModel([reply(PLAN_TEXT), reply(PLAN_TEXT)])
    engine = ladder(store, run_a, {"p1": model})
    engine.plan(plan_facts(), CREW.planner)
    engine.accepted()
    out = ladder(store, run_b, {"p1": model}).plan(plan_facts(), CREW.planner)
    assert out.calls[0].cache is None and len(model.requests) == 2


@pytest.mark.parametrize("reply_, expected", [
    (PlanReply(plan=Plan(subtasks=[SubTask(id="a", title="A", instructions="a")])), True),
    (PlanReply(decline=Decline(code="forecast", reason="no forecasts")), True),
    (PlanReply(error="not JSON"), False),
    (PlanReply(), False),
    (PlanReply(plan=Plan(subtasks=[SubTask(id="a", title="A", instructions="a")]), error="bad"), False),
    (ReviewReply(scores=CriterionScores(accuracy=1, completeness=1, relevance=1)), True),
    (ReviewReply(error="no scores"), False),
    (ReviewReply(scores=CriterionScores(accuracy=1, completeness=1, relevance=1), error="x"), False),
    (ReportReply(text="# Report"), True),
    (ReportReply(text="  \n "), False),
    (ActReply(message=Message(role="assistant", content="42"), stop_reason="end_turn"), True),
    (ActReply(message=Message(role="assistant", content=" ", tool_calls=[
        ToolCall(call_id="c1", name="calculator", arguments={"expression": "1+1"})]), stop_reason="tool_use"), True),
    (ActReply(message=Message(role="assistant", content="  "), stop_reason="end_turn"), False),
    ("not a reply", False),
])
def test_cacheable(reply_, expected):
    assert cacheable(reply_) is expected


# ---------------------------------------------------------------------------------------------- GatedModel
def gated(store: RunStore, run: Run, inner, *, cache: bool = True, breakers=None) -> tuple[GatedModel, CallLog]:
    log = CallLog()
    response_cache = ResponseCache(store, run.tenant, 3600) if cache else None
    return GatedModel(inner, "p1", cache=response_cache, gate=BudgetGate(store, run), breakers=breakers,
                      log=log), log


def a_request(text: str = "What is 17 * 23?", max_tokens: int = 2048) -> ModelRequest:
    return ModelRequest(messages=[Message(role="system", content="You compute."), Message(role="user", content=text)],
                        settings=ModelSettings(model="m", max_tokens=max_tokens))


def committed(store: RunStore, run_id: str, cap: int = 10**6) -> int:
    """The run's committed tokens (used + reservations in flight), read through the public contract only: the
    largest reservation ``cap`` still admits is ``cap - committed``."""
    lo, hi = 0, cap
    while lo < hi:  # largest t with reserve(t) accepted
        mid = (lo + hi + 1) // 2
        if store.reserve_budget(run_id, mid, 0.0, cap, None):
            store.settle_budget(run_id, -mid, 0.0)
            lo = mid
        else:
            hi = mid - 1
    return cap - lo


def test_a_cache_miss_pays_reserves_and_writes_the_entry_only_once_accepted(store):
    run = make_run(store, budget=Budget(max_tokens=100_000))
    inner = FunctionModel(lambda r: reply("391", input_tokens=60, output_tokens=5))
    model, log = gated(store, run, inner)
    request = a_request()
    response = model.request(request)
    assert response.usage.input_tokens == 60 and log.entries == [{"provider": "p1", "cache": None, "budget_cut": False}]
    assert inner.requests[0].settings.max_tokens == request.settings.max_tokens  # the budget had room
    assert committed(store, RUN_ID) == 65  # the reservation was settled on the actual usage
    assert store.cache_scan(run.tenant, "") == []  # pending until the engine call's reply is accepted
    log.commit()
    assert len(store.cache_scan(run.tenant, "")) == 1 and log.pending == []
    # the entry is keyed by the request as asked (before the budget cut its output cap)
    hit = ResponseCache(store, run.tenant, 3600).get("p1", request)
    assert hit is not None and hit[0].text == "391" and hit[1] == 65


def test_a_cache_hit_is_served_while_the_provider_is_down_and_reserves_nothing(store):
    run = make_run(store, budget=Budget(max_tokens=100_000))
    request = a_request()
    ResponseCache(store, run.tenant, 3600).put("p1", request, reply("391", input_tokens=70, output_tokens=8), 0.25)
    broken = down()
    model, log = gated(store, run, broken)
    response = model.request(request)
    assert response.text == "391" and response.usage == ResponseUsage() and broken.requests == []
    assert log.entries == [{"provider": "p1", "cache": "exact", "saved_tokens": 78, "saved_cost_usd": 0.25}]
    assert committed(store, RUN_ID) == 0


def test_a_failed_call_releases_its_reservation(store):
    run = make_run(store, budget=Budget(max_tokens=100_000))
    model, log = gated(store, run, down())
    with pytest.raises(ModelUnavailableError):
        model.request(a_request())
    assert committed(store, RUN_ID) == 0 and log.entries == [] and log.pending == []


def test_an_open_circuit_in_the_gate_raises_circuit_open_without_calling(store):
    breakers = Breakers(store.breaker_persistence(), failure_threshold=2, recovery_timeout_s=3600)
    run = make_run(store, budget=Budget(max_tokens=100_000))
    inner = down()
    model, _ = gated(store, run, inner, cache=False, breakers=breakers)
    for _ in range(2):
        with pytest.raises(ModelUnavailableError):
            model.request(a_request())
    with pytest.raises(CircuitOpenError):
        model.request(a_request())
    assert len(inner.requests) == 2 and committed(store, RUN_ID) == 0


# ---------------------------------------------------------------------------------------------- estimate, gate
def test_estimate_input_tokens_counts_texts_calls_results_and_schemas():
    call = ToolCall(call_id="c1", name="calculator", arguments={"expression": "17 * 23"})
    result = ToolResult(call_id="c1", name="calculator", ok=True, content={"value": 391})
    spec = ToolSpec(name="calculator", description="Evaluates arithmetic.", parameters={"type": "object"})
    messages = [Message(role="system", content="s" * 40), Message(role="user", content="u" * 13),
                Message(role="assistant", content="", tool_calls=[call]), Message(role="tool", tool_results=[result])]
    request = ModelRequest(messages=messages, tools=[spec], settings=ModelSettings(model="m"))
    chars = (40 + 13 + len(json.dumps([call.model_dump(mode="json")]))
             + len(json.dumps([result.model_dump(mode="json")], default=str)) + len(spec.model_dump_json()))
    assert estimate_input_tokens(request) == (math.ceil(chars / 3.5) + 8 * len(messages)
                                              + 400)  # the tool-use overhead: tools are sent
    no_tools = request.model_copy(update={"tools": []})
    assert estimate_input_tokens(no_tools) == math.ceil((chars - len(spec.model_dump_json())) / 3.5) + 8 * 4
    # monotone in the text
    assert estimate_input_tokens(a_request("x" * 400)) > estimate_input_tokens(a_request("x"))


def test_a_gate_without_caps_reserves_nothing(store):
    run = make_run(store)
    gate = BudgetGate(store, run)
    request = a_request()
    assert gate.enabled is False
    assert gate.reserve(request) == (request, 0, 0.0)
    gate.settle(0, 0.0, reply("x", input_tokens=999, output_tokens=1))
    assert committed(store, RUN_ID) == 0


def test_the_reservation_is_the_input_estimate_plus_the_output_cap(store):
    request = a_request(max_tokens=2048)
    est = estimate_input_tokens(request)
    run = make_run(store, budget=Budget(max_tokens=est + 10_000))
    sized, tokens, cost = BudgetGate(store, run).reserve(request)
    assert sized.settings.max_tokens == 2048 and tokens == est + 2048 and cost == 0.0  # "m" is not priced
    assert sized.messages == request.messages
    assert committed(store, RUN_ID) == est + 2048


@pytest.mark.parametrize("left", [MIN_OUTPUT_TOKENS, MIN_OUTPUT_TOKENS + 1, 500])
def test_the_output_cap_is_cut_to_what_the_budget_has_left(store, left):
    request = a_request(max_tokens=2048)
    est = estimate_input_tokens(request)
    used = 1_000
    run = make_run(store, budget=Budget(max_tokens=used + est + left))
    store.add_usage(RUN_ID, "m", used, 0, 0.0)
    assert store.reserve_budget(RUN_ID, used, 0.0, None, None)  # committed = used, as after settled calls
    run = store.get_run(RUN_ID)
    sized, tokens, _ = BudgetGate(store, run).reserve(request)
    assert sized.settings.max_tokens == left and tokens == est + left
    assert committed(store, RUN_ID) == used + est + left == run.budget.max_tokens


def test_a_call_with_no_room_for_the_smallest_output_cap_is_refused_and_reserves_nothing(store):
    request = a_request()
    est = estimate_input_tokens(request)
    run = make_run(store, budget=Budget(max_tokens=est + MIN_OUTPUT_TOKENS - 1))
    with pytest.raises(BudgetExceededError, match="no room for another call"):
        BudgetGate(store, run).reserve(request)
    assert committed(store, RUN_ID) == 0


def test_settle_replaces_the_reservation_by_the_actual_usage(store):
    request = a_request()
    run = make_run(store, budget=Budget(max_tokens=50_000))
    gate = BudgetGate(store, run)
    _, tokens, cost = gate.reserve(request)
    gate.settle(tokens, cost, reply("x", input_tokens=321, output_tokens=45))
    assert committed(store, RUN_ID) == 366
    _, tokens, cost = gate.reserve(request)
    gate.settle(tokens, cost, None)  # the call failed: nothing used
    assert committed(store, RUN_ID) == 366


def test_the_cost_cap_halves_the_output_cap_until_the_call_fits(store):
    model = "claude-sonnet-4-5"
    request = a_request(max_tokens=2048).model_copy(update={"settings": ModelSettings(model=model, max_tokens=2048)})
    est = estimate_input_tokens(request)
    max_cost = cost_usd(model, est, 300)  # room for 300 output tokens: 2048 -> 1024 -> 512 -> 256
    expected_cap = 2048
    while cost_usd(model, est, expected_cap) > max_cost:
        expected_cap //= 2
    assert expected_cap == 256
    run = make_run(store, budget=Budget(max_cost_usd=max_cost))
    sized, tokens, cost = BudgetGate(store, run).reserve(request)
    assert sized.settings.max_tokens == expected_cap and tokens == est + expected_cap
    assert cost == pytest.approx(cost_usd(model, est, expected_cap)) and cost <= max_cost


def test_a_cost_cap_with_no_room_for_the_smallest_output_cap_refuses(store):
    model = "claude-sonnet-4-5"
    request = ModelRequest(messages=a_request().messages, settings=ModelSettings(model=model))
    est = estimate_input_tokens(request)
    run = make_run(store, budget=Budget(max_cost_usd=cost_usd(model, est, MIN_OUTPUT_TOKENS - 1)))
    with pytest.raises(BudgetExceededError, match=r"budget \(\$[0-9.]+\) has no room for another call"):
        BudgetGate(store, run).reserve(request)
    assert committed(store, RUN_ID) == 0


def test_a_reservation_held_by_a_call_in_flight_refuses_the_next_one(store):
    request = a_request()
    est = estimate_input_tokens(request)
    run = make_run(store, budget=Budget(max_tokens=est + 600))
    first, second = BudgetGate(store, run), BudgetGate(store, run)
    _, tokens, cost = first.reserve(request)  # takes the whole room
    with pytest.raises(BudgetExceededError, match="held by calls in flight"):
        second.reserve(request)
    first.settle(tokens, cost, reply("x", input_tokens=10, output_tokens=10))
    # a call that reads the run afresh (its usage recorded) fits in what is left
    store.add_usage(RUN_ID, "m", 10, 10, 0.0)
    sized, _, _ = BudgetGate(store, store.get_run(RUN_ID)).reserve(request)
    assert sized.settings.max_tokens == 600 - 20


def test_a_stale_view_of_the_usage_does_not_refuse_a_call_that_fits(store):
    request = a_request()
    est = estimate_input_tokens(request)
    run = make_run(store, budget=Budget(max_tokens=est + 600))
    first, second = BudgetGate(store, run), BudgetGate(store, run)  # both loaded the run before any call
    _, tokens, cost = first.reserve(request)
    first.settle(tokens, cost, reply("x", input_tokens=50, output_tokens=50))
    store.add_usage(RUN_ID, "m", 50, 50, 0.0)
    # nothing is in flight; est + 500 tokens are left: room for a call with a 500-token output cap
    sized, reserved, _ = second.reserve(request)
    assert MIN_OUTPUT_TOKENS <= sized.settings.max_tokens <= 500 and reserved <= est + 500


def test_parallel_gates_never_commit_more_than_the_budget(store):
    request = a_request()
    est = estimate_input_tokens(request)
    max_tokens = 4 * (est + 2048) + est  # room for 4 full reservations, not 5
    run = make_run(store, budget=Budget(max_tokens=max_tokens))
    barrier = threading.Barrier(8)

    def try_reserve(_):
        gate = BudgetGate(store, run)
        barrier.wait()
        try:
            return gate.reserve(request)[1]
        except BudgetExceededError:
            return 0

    with ThreadPoolExecutor(8) as pool:
        reserved = list(pool.map(try_reserve, range(8)))
    assert sum(reserved) == committed(store, RUN_ID, max_tokens) <= max_tokens
    assert sum(1 for r in reserved if r) == 4


# ---------------------------------------------------------------------------------------------- store contract
def test_reserve_budget_admits_up_to_the_cap_exactly(any_store):
    make_run(any_store)
    assert any_store.reserve_budget(RUN_ID, 600, 0.0, 1000, None)
    assert not any_store.reserve_budget(RUN_ID, 401, 0.0, 1000, None)  # 1001 > 1000: nothing written
    assert any_store.reserve_budget(RUN_ID, 400, 0.0, 1000, None)  # exactly the cap
    assert not any_store.reserve_budget(RUN_ID, 1, 0.0, 1000, None)
    any_store.settle_budget(RUN_ID, -700, 0.0)  # the calls used 300 of their 1000
    assert any_store.reserve_budget(RUN_ID, 700, 0.0, 1000, None)
    assert not any_store.reserve_budget(RUN_ID, 1, 0.0, 1000, None)


def test_reserve_budget_checks_the_cost_cap_and_each_cap_alone(any_store):
    make_run(any_store)
    assert any_store.reserve_budget(RUN_ID, 10, 0.25, None, 0.5)
    assert not any_store.reserve_budget(RUN_ID, 10, 0.26, None, 0.5)
    assert any_store.reserve_budget(RUN_ID, 10, 0.25, None, 0.5)
    assert not any_store.reserve_budget(RUN_ID, 0, 0.000001, 10**9, 0.5)  # the cost cap refuses alone
    assert not any_store.reserve_budget(RUN_ID, 10**6, 0.0, 10**6 + 19, None)  # 20 committed: the token cap refuses
    assert any_store.reserve_budget(RUN_ID, 10**6, 10.0, None, None)  # no caps: always admitted
    any_store.settle_budget(RUN_ID, -(10**6), -10.0)
    assert not any_store.reserve_budget(RUN_ID, 0, 0.01, None, 0.5)
    any_store.settle_budget(RUN_ID, 0, -0.25)
    assert any_store.reserve_budget(RUN_ID, 0, 0.25, None, 0.5)


def test_a_reservation_larger_than_the_cap_is_refused_on_a_fresh_run(any_store):
    make_run(any_store)
    assert not any_store.reserve_budget(RUN_ID, 1001, 0.0, 1000, None)
    assert not any_store.reserve_budget(RUN_ID, 0, 1.5, None, 1.0)
    assert any_store.reserve_budget(RUN_ID, 1000, 1.0, 1000, 1.0)


def test_reserve_budget_errors(any_store):
    with pytest.raises(RunNotFoundError):
        any_store.reserve_budget("nope", 1, 0.0, 10, None)
    make_run(any_store)
    with pytest.raises(ValueError):
        any_store.reserve_budget(RUN_ID, -1, 0.0, 10, None)
    with pytest.raises(ValueError):
        any_store.reserve_budget(RUN_ID, 1, -0.1, 10, None)


def test_reservations_are_tenant_and_run_scoped(any_store):
    make_run(any_store)
    make_run(any_store, run_id="run2")
    assert any_store.reserve_budget(RUN_ID, 1000, 0.0, 1000, None)
    assert any_store.reserve_budget("run2", 1000, 0.0, 1000, None)  # another run's counter


def test_concurrent_reservations_never_pass_the_cap(any_store):
    make_run(any_store)

    def reserve(_):
        return any_store.reserve_budget(RUN_ID, 100, 0.01, 1000, 0.05)

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(reserve, range(24)))
    assert admitted == 5  # the cost cap admits 5 (0.05 / 0.01), the token cap would admit 10


# ---------------------------------------------------------------------------------------------- rejected replies
CYCLIC_PLAN = json.dumps({"subtasks": [
    {"id": "a", "title": "A", "instructions": "Do a.", "tools": ["calculator"], "depends_on": ["b"]},
    {"id": "b", "title": "B", "instructions": "Do b.", "tools": ["calculator"], "depends_on": ["a"]}]})


def test_an_accepted_plan_is_served_to_the_next_run_of_the_tenant(store):
    from stepcrew.domain.planner import plan_run
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.events import PlanInput

    model = ScriptedModel([reply(PLAN_TEXT), reply(PLAN_TEXT)])
    resolver = EngineResolver(lambda provider, tier: (model, provider))
    make_run(store, chain=("p1",), run_id="run1")
    assert plan_run(PlanInput(run_id="run1"), store, resolver).valid
    make_run(store, chain=("p1",), run_id="run2")  # the same goal again
    assert plan_run(PlanInput(run_id="run2"), store, resolver).valid
    assert len(model.requests) == 1 and store.get_run("run2").usage.cache_hits == 1


def test_a_plan_the_domain_rejects_is_not_served_to_the_next_run(store):
    from stepcrew.domain.planner import plan_run
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.events import PlanInput

    model = ScriptedModel([reply(CYCLIC_PLAN), reply(PLAN_TEXT)])
    resolver = EngineResolver(lambda provider, tier: (model, provider))
    make_run(store, chain=("p1",), run_id="run1")
    out = plan_run(PlanInput(run_id="run1"), store, resolver)
    assert not out.valid and "cycle" in out.error
    make_run(store, chain=("p1",), run_id="run2")  # the user runs the same goal again
    out = plan_run(PlanInput(run_id="run2"), store, resolver)
    assert len(model.requests) == 2, "the rejected plan was served from the cache instead of asking the model"
    assert out.valid


def test_a_looping_turn_is_not_served_to_the_next_run(store):
    from stepcrew.domain.agent import LOOP_REPEATS, agent_turn
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.events import AgentTurnInput

    same = {"expression": "2 + 2"}
    plan = Plan(subtasks=[SubTask(id="calc", title="Compute", instructions="Compute 2 + 2.", tools=["calculator"])])

    def drive(run_id: str, model) -> object:
        resolver = EngineResolver(lambda provider, tier: (model, provider))
        make_run(store, chain=("p1",), run_id=run_id)
        store.put_plan(run_id, plan)
        out = agent_turn(AgentTurnInput(tool_functions=TOOL_FNS, run_id=run_id, subtask_id="calc"), store, resolver)
        while out.stop_reason == "tool_use":
            results = [ToolResult(call_id=c.call_id, name=c.name, ok=True, content={"value": 4})
                       for c in out.calls]
            out = agent_turn(AgentTurnInput(tool_functions=TOOL_FNS, run_id=run_id, subtask_id="calc", tool_results=results), store, resolver)
        return out

    looping = ScriptedModel([call_tool("calculator", dict(same), call_id=f"c{i}") for i in range(LOOP_REPEATS)])
    with pytest.raises(ToolLoopError):
        drive("run1", looping)
    # the same goal again: the accepted turns may come from the cache, the looping one must be asked again
    fresh = ScriptedModel([reply("2 + 2 = 4")])
    out = drive("run2", fresh)
    assert out.stop_reason == "end_turn" and len(fresh.requests) == 1


def test_a_plan_made_for_other_inputs_is_not_served(store):
    from stepcrew.domain.planner import plan_run
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.events import PlanInput

    def plan_for(region: str) -> str:
        return json.dumps({"subtasks": [{"id": "calc", "title": f"Sales in {region}",
                                         "instructions": f"Compute the total for region {region}.",
                                         "tools": ["calculator"]}]})

    model = ScriptedModel([reply(plan_for("EU")), reply(plan_for("US"))])
    resolver = EngineResolver(lambda provider, tier: (model, provider))
    make_run(store, chain=("p1",), run_id="run1", inputs={"region": "EU"})
    assert plan_run(PlanInput(run_id="run1"), store, resolver).valid
    make_run(store, chain=("p1",), run_id="run2", inputs={"region": "US"})
    assert plan_run(PlanInput(run_id="run2"), store, resolver).valid
    assert len(model.requests) == 2, "the plan made for region EU was served to the run for region US"
    assert "US" in store.get_plan("run2").subtasks[0].instructions
