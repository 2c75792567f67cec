"""The resilience ladder through the real run.asl.json / agent.asl.json on the local runtime (moto in-process).

Given providers that fail in scripted ways, when a run executes, then each rung of the ladder
(:mod:`stepcrew.resilience.ladder`) does what its docstring says: the next provider after the ASL's last retry,
the exact cache (tenant-scoped), the rule engine when the chain is exhausted, the hand-off for a worker, the budget
(at review, and with 8 parallel sub-tasks), loop detection and the circuit breaker.

Isolation: the runtime is shared by the module, so every test registers its own provider names (their own circuits
and cache keys) and runs under its own tenant (its own cache partition).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable

import pytest
from stepcrew.crew import load_crew
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.domain.agent import LOOP_REPEATS
from stepcrew.domain.decisions import answer_review
from stepcrew.engines.testing import FunctionModel, ScriptedModel, call_tool, label, reply
from stepcrew.events import MODEL_RETRY_ATTEMPTS
from stepcrew.llm import registry
from stepcrew.llm.base import ModelRequest, ModelUnavailableError
from stepcrew.llm.pricing import RULE_ENGINE_MODEL
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import DEGRADATION_ORDER, ReviewDecision, Routing, RunRequest, RunStatus, SubtaskStatus
from stepcrew.resilience.breaker import Breakers
from stepcrew.resilience.ladder import MIN_OUTPUT_TOKENS, NO_PROVIDER, estimate_input_tokens
from stepcrew.service import create_run, run_result, start_run
from stepcrew.tools.datasets import dataset_uri

pytestmark = pytest.mark.integration

_SEQ = itertools.count(1)
ENDED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DECLINED, RunStatus.NEEDS_REVIEW}


def plan_json(*subtasks: dict) -> str:
    return json.dumps({"subtasks": list(subtasks), "rationale": "test plan"})


def subtask(id_: str, tools: list[str] | None = None, depends_on: list[str] | None = None) -> dict:
    return {"id": id_, "title": f"Sub-task {id_}", "instructions": f"Do {id_}.", "depends_on": depends_on or [],
            "expected_output": "a number", "tools": tools or ["calculator"], "role": ""}


def review_json(score: float) -> str:
    return json.dumps({"accuracy": score, "completeness": score, "relevance": score, "feedback": "ok"})


def one_calc_script(report: str = "# Report\n6 * 7 = 42", score: float = 0.95, **usage: int) -> dict:
    """A crew run that computes 6 * 7 with the calculator: the turns per purpose (``usage``: tokens per reply)."""
    return {"plan": [reply(plan_json(subtask("calc")), **usage)],
            "act": [call_tool("calculator", {"expression": "6 * 7"}, **usage), reply("6 * 7 = 42", **usage)],
            "synthesize": [reply(report, **usage)],
            "review": [reply(review_json(score), **usage)]}


def always_down(request: ModelRequest):
    raise ModelUnavailableError("provider down (HTTP 503)")


@pytest.fixture(scope="module")
def rt():
    with LocalRuntime(fast_waits=True) as runtime:
        yield runtime


@pytest.fixture(autouse=True)
def _default_breakers(monkeypatch):
    """The tests that count calls on a failing provider rely on the default threshold being above the failures
    of one call (the first try, its retries and the last attempt); the breaker test sets its own."""
    monkeypatch.delenv("STEPCREW_BREAKER_FAILURES", raising=False)
    default = Breakers.from_env(None, {}).config.failure_threshold
    assert default > MODEL_RETRY_ATTEMPTS + 1


@pytest.fixture
def names():
    """``names(prefix)`` -> a provider (or tenant) name unique in this process; registered providers are
    unregistered after the test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{next(_SEQ)}"
        made.append(name)
        return name

    yield make
    for name in made:
        if name in registry.known_providers():
            registry.unregister(name)


def register(name: str, model) -> None:
    registry.register(name, lambda tier: model)


def start(rt: LocalRuntime, provider: str, *, tenant: str, goal: str = "Compute 6 times 7",
          chain: list[str] | None = None, data: str | None = None, **request) -> str:
    routing = Routing(chains={"fast": chain, "smart": chain}) if chain else None
    # memory off: these tests count the ladder's calls and cache hits; a recalled episode changes the planner's prompt
    # (so a repeated run misses the exact cache) and a succeeded run adds a memory proposal call
    request.setdefault("memory", "off")
    req = RunRequest(goal=goal, provider=provider, tenant=tenant, data=data, routing=routing, **request)
    return start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt).run_id


def wait_end(rt: LocalRuntime, run_id: str, timeout_s: float = 60) -> RunStatus:
    """Wait until the run ends (or waits for a person), and for its execution when it ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = rt.store.get_run(run_id)
        if run.status in ENDED:
            if run.status != RunStatus.NEEDS_REVIEW:
                rt.wait(run.execution_arn, timeout_s=max(deadline - time.monotonic(), 1))
            return run.status
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} is still {rt.store.get_run(run_id).status}")


def release(rt: LocalRuntime, run_id: str, tenant: str) -> None:
    """End a run waiting in NEEDS_REVIEW (a person rejects it), so no execution is left waiting."""
    answer_review(rt.store, rt, run_id, tenant, ReviewDecision(accept=False, comment="test cleanup"))


def events(rt: LocalRuntime, run_id: str, kind: str) -> list:
    return [e for _, e in rt.store.list_events(run_id) if e.kind == kind]


def purposes(model) -> list[str]:
    return [label(r).purpose for r in model.requests]


def lowest_rung(turns: list) -> str:
    """The lowest rung named by the run's model_turn events (what degradation_level must say)."""
    return max((t.data.get("rung", "full") for t in turns), key=DEGRADATION_ORDER.index, default="full")


# ---------------------------------------------------------------------------------------------- rung: next provider
def test_a_provider_down_for_every_attempt_moves_to_the_next_provider_after_the_last_retry(rt, names):
    # Given: the primary always answers 503; the backup plays the whole crew
    primary, backup = FunctionModel(always_down), ScriptedModel(by_purpose=one_calc_script())
    p1, p2, tenant = names("primary"), names("backup"), names("t")
    register(p1, primary)
    register(p2, backup)
    # When
    run_id = start(rt, p1, tenant=tenant, chain=[p1, p2])
    status = wait_end(rt, run_id)
    # Then: the run succeeded at full service, every recorded turn answered by the backup
    result = run_result(rt.store, run_id)
    assert status == RunStatus.SUCCEEDED, result.error
    assert result.degradation_level == "full"
    turns = events(rt, run_id, "model_turn")
    assert turns and {t.data["provider"] for t in turns} == {p2}
    assert {t.data["rung"] for t in turns} == {"full"}
    assert len(turns) == len(backup.requests)  # one model_turn per answered call, none for the failed ones
    # the primary was asked for the plan once per ASL attempt: the first try, its retries, then the last attempt
    assert purposes(primary).count("plan") == MODEL_RETRY_ATTEMPTS + 1
    assert backup.remaining() == {"default": 0, "purpose:plan": 0, "purpose:act": 0, "purpose:synthesize": 0,
                                  "purpose:review": 0}
    assert result.final_output == one_calc_script()["synthesize"][0].text


# ---------------------------------------------------------------------------------------------- rung: cached
def test_a_repeated_run_is_served_from_the_tenants_cache_and_another_tenant_gets_no_hit(rt, names):
    provider, tenant_a, tenant_b = names("cached"), names("ta"), names("tb")
    usage = {"input_tokens": 101, "output_tokens": 17}
    paid_per_call = usage["input_tokens"] + usage["output_tokens"]

    def run_once(tenant: str) -> tuple[ScriptedModel, str]:
        model = ScriptedModel(by_purpose=one_calc_script(**usage))
        register(provider, model)
        run_id = start(rt, provider, tenant=tenant)
        assert wait_end(rt, run_id) == RunStatus.SUCCEEDED, run_result(rt.store, run_id).error
        return model, run_id

    # Given a first run of tenant A (nothing cached yet)
    first, first_id = run_once(tenant_a)
    first_result = run_result(rt.store, first_id)
    assert first_result.usage.cache_hits == 0 and first_result.degradation_level == "full"
    # When tenant A runs the same goal again
    second, second_id = run_once(tenant_a)
    # Then its identical model calls are served from the cache: fewer calls, hits and savings recorded
    result = run_result(rt.store, second_id)
    hits = events(rt, second_id, "cache_hit")
    assert len(second.requests) < len(first.requests)
    assert result.usage.cache_hits == len(hits) == len(first.requests) - len(second.requests)
    assert result.usage.saved_tokens == paid_per_call * len(hits) > 0
    # (the plan may come from the exact cache or the planner's plan cache; every other call from the exact cache)
    cached_turns = [t for t in events(rt, second_id, "model_turn") if t.data.get("cache")]
    assert len(cached_turns) == len(hits) and all(t.data["rung"] == "cached" for t in cached_turns)
    assert {t.data["cache"] for t in cached_turns if t.data["purpose"] != "plan"} == {"exact"}
    assert all(t.data["input_tokens"] == 0 and t.data["output_tokens"] == 0 for t in cached_turns)  # not paid again
    assert result.usage.input_tokens + result.usage.output_tokens == paid_per_call * len(second.requests)
    assert result.degradation_level == lowest_rung(events(rt, second_id, "model_turn")) == "cached"
    assert result.final_output == first_result.final_output
    # When the provider is down, tenant A's cached answers are still served: the run succeeds without it
    broken = FunctionModel(always_down)
    register(provider, broken)
    offline_id = start(rt, provider, tenant=tenant_a)
    assert wait_end(rt, offline_id) == RunStatus.SUCCEEDED, run_result(rt.store, offline_id).error
    assert broken.requests == [] and run_result(rt.store, offline_id).usage.cache_hits == len(first.requests)
    # When tenant B runs the same goal: no entry of tenant A is served
    third, third_id = run_once(tenant_b)
    isolated = run_result(rt.store, third_id)
    assert isolated.usage.cache_hits == 0 and isolated.usage.saved_tokens == 0
    assert events(rt, third_id, "cache_hit") == []
    assert len(third.requests) == len(first.requests)
    assert isolated.degradation_level == "full"


# ---------------------------------------------------------------------------------------------- rung: rule engine
@pytest.mark.parametrize("goal, status, decline_code", [
    (DEMO_GOAL, RunStatus.SUCCEEDED, None),
    ("Why is the Gentoo penguin the heaviest species in the Palmer Archipelago dataset?", RunStatus.DECLINED,
     "cause"),
], ids=["answerable", "why-question"])
def test_an_exhausted_chain_for_the_planner_switches_the_run_to_the_rule_engine(rt, names, goal, status,
                                                                                  decline_code):
    # Given: every provider of the chain is down
    down_a, down_b = FunctionModel(always_down), FunctionModel(always_down)
    p1, p2, tenant = names("down-a"), names("down-b"), names("t")
    register(p1, down_a)
    register(p2, down_b)
    data = dataset_uri(DEMO_DATASET)
    # When
    run_id = start(rt, p1, tenant=tenant, goal=goal, chain=[p1, p2], data=data)
    ended = wait_end(rt, run_id, timeout_s=90)
    # Then: the run ends on the rule engine, as a run of the rule engine itself ends, and never FAILED
    result = run_result(rt.store, run_id)
    assert ended == status != RunStatus.FAILED, result.error
    run = rt.store.get_run(run_id)
    assert run.engine_override == "rule"
    assert result.degradation_level == "rule_engine"
    assert result.engine == RULE_ENGINE_MODEL  # what produced the output
    turns = events(rt, run_id, "model_turn")
    assert turns and turns[0].data["purpose"] == "plan" and turns[0].data["rung"] == "rule_engine"
    assert "provider" not in turns[0].data  # no provider answered
    assert "chain exhausted" in turns[0].data["route"]
    assert [e.data["rung"] for e in events(rt, run_id, "degraded")][:1] == ["rule_engine"]
    # the providers were only asked for the plan: the first after each ASL attempt, the next one once at the last
    assert purposes(down_a) == ["plan"] * (MODEL_RETRY_ATTEMPTS + 1)
    assert purposes(down_b) == ["plan"]
    # the same goal on the rule engine alone gives the same outcome and the same report
    rule_id = start(rt, "rule", tenant=tenant, goal=goal, data=data)
    assert wait_end(rt, rule_id, timeout_s=90) == status
    rule_result = run_result(rt.store, rule_id)
    assert result.final_output == rule_result.final_output
    if decline_code is None:
        assert result.final_output
    else:
        assert result.decline.code == rule_result.decline.code == decline_code
        assert result.final_output is None


# ---------------------------------------------------------------------------------------------- rung: hand-off
def test_a_worker_with_no_provider_left_hands_the_run_to_a_person(rt, names):
    # Given: both providers plan, write and review, but neither can play a worker's turn
    script = one_calc_script(score=0.97)

    def no_act(scripted: ScriptedModel) -> Callable[[ModelRequest], object]:
        return lambda r: always_down(r) if label(r).purpose == "act" else scripted.request(r)

    first_script = ScriptedModel(by_purpose=script)
    first, second = FunctionModel(no_act(first_script)), FunctionModel(no_act(ScriptedModel()))
    p1, p2, tenant = names("noact-a"), names("noact-b"), names("t")
    register(p1, first)
    register(p2, second)
    # When
    run_id = start(rt, p1, tenant=tenant, chain=[p1, p2])
    status = wait_end(rt, run_id)
    # Then: NEEDS_REVIEW although the review passed, with the reason and the lowest rung
    try:
        result = run_result(rt.store, run_id)
        assert status == RunStatus.NEEDS_REVIEW, result.error
        assert result.handoff_reason == NO_PROVIDER
        assert result.degradation_level == "handoff"
        assert [r.passed for r in result.review.rounds] == [True]  # "whatever the review says"
        assert result.final_output == script["synthesize"][0].text  # the report is kept for the person
        (handoff,) = [t for t in events(rt, run_id, "model_turn") if t.data.get("rung") == "handoff"]
        assert handoff.subtask_id == "calc" and handoff.data["purpose"] == "act"
        assert "handoff" in [e.data["rung"] for e in events(rt, run_id, "degraded")]
        record = rt.store.get_subtask(run_id, "calc")
        assert record.status == SubtaskStatus.SUCCEEDED and NO_PROVIDER in record.output
        assert purposes(first).count("act") == MODEL_RETRY_ATTEMPTS + 1 and purposes(second) == ["act"]
        deadline = time.monotonic() + 60  # the status is written before its event: the event may lag a moment
        while "needs_review" not in [e.kind for _, e in rt.store.list_events(run_id)]:
            assert time.monotonic() < deadline, "no needs_review event"
            time.sleep(0.05)
    finally:
        if rt.store.get_run(run_id).status == RunStatus.NEEDS_REVIEW:
            release(rt, run_id, tenant)


# ---------------------------------------------------------------------------------------------- budget
@pytest.mark.parametrize("how", ["no_room_to_reserve", "review_call_passes_the_cap"])
def test_a_budget_that_runs_out_at_review_hands_the_kept_report_to_a_person(rt, names, how):
    max_tokens = 50_000
    script = one_calc_script(score=0.99)
    scripted = ScriptedModel(by_purpose=script)
    spent = {"tokens": 0}
    lock = threading.Lock()

    def play(request: ModelRequest):
        response = scripted.request(request)
        purpose = label(request).purpose
        if purpose == "synthesize" and how == "no_room_to_reserve":
            # leave 10 tokens: less than the smallest output cap worth a call, whatever the review's prompt
            response.usage.input_tokens = max_tokens - spent["tokens"] - response.usage.output_tokens - 10
        if purpose == "review" and how == "review_call_passes_the_cap":
            response.usage.input_tokens = max_tokens  # the provider reports far more than estimated
        with lock:
            spent["tokens"] += response.usage.input_tokens + response.usage.output_tokens
        return response

    model = FunctionModel(play)
    provider, tenant = names("budget"), names("t")
    register(provider, model)
    run_id = start(rt, provider, tenant=tenant, budget={"max_tokens": max_tokens})
    status = wait_end(rt, run_id)
    try:
        result = run_result(rt.store, run_id)
        assert status == RunStatus.NEEDS_REVIEW, result.error
        assert result.budget_exhausted is True
        assert result.final_output == script["synthesize"][0].text  # the report is kept
        assert [e.data.get("where") for e in events(rt, run_id, "budget_exhausted")] == ["review"]
        (round1,) = rt.store.list_reviews(run_id)
        assert round1.passed is False and round1.scores is None and "budget" in (round1.error or "")
        reviews_asked = purposes(model).count("review")
        assert reviews_asked == (0 if how == "no_room_to_reserve" else 1)  # a call that cannot fit is never made
        assert result.usage.input_tokens + result.usage.output_tokens == spent["tokens"]  # what was paid is kept
    finally:
        if rt.store.get_run(run_id).status == RunStatus.NEEDS_REVIEW:
            release(rt, run_id, tenant)


def test_reservations_hold_the_token_budget_across_eight_parallel_subtasks(rt, names):
    # Given: 8 independent sub-tasks (one wave), each worker call reports 50 input + 50 output tokens; the plan
    # call leaves `room` tokens of the budget: room for at least one worker call, not for all eight
    n, per_call, max_tokens = 8, 100, 20_000
    # room for one worker call's reservation (its input estimate, ~1,000 tokens with the tool-use overhead, + an
    # output cap) but not for eight of them; asserted below from the requests themselves
    room = 3_000
    ids = [f"s{i}" for i in range(n)]

    def play(request: ModelRequest):
        purpose = label(request).purpose
        if purpose == "plan":
            return reply(plan_json(*(subtask(i) for i in ids)), input_tokens=max_tokens - room - 20,
                         output_tokens=20)
        if purpose == "act":
            time.sleep(0.5)  # the eight sub-tasks are in flight together: their reservations overlap
            return reply(f"{label(request).subtask_id} done", input_tokens=50, output_tokens=50)
        if purpose == "synthesize":
            return reply("# Report\nall done", input_tokens=50, output_tokens=50)
        return reply(review_json(0.99), input_tokens=50, output_tokens=50)

    model = FunctionModel(play)
    provider, tenant = names("parallel"), names("t")
    register(provider, model)
    # When
    run_id = start(rt, provider, tenant=tenant, budget={"max_tokens": max_tokens})
    status = wait_end(rt, run_id, timeout_s=90)
    try:
        result = run_result(rt.store, run_id)
        run = rt.store.get_run(run_id)
        used = result.usage.input_tokens + result.usage.output_tokens
        # the reservation of each call that reached the model: its input estimate + the output cap it was sent with
        reservations = [estimate_input_tokens(r) + r.settings.max_tokens for r in model.requests]
        acts = [r for r in model.requests if label(r).purpose == "act"]
        act_reservations = [estimate_input_tokens(r) + r.settings.max_tokens for r in acts]
        # Then: the budget holds within one reservation (the design's bound)...
        assert used <= max_tokens + max(reservations)
        # ...and, as no worker call used more than it reserved, within the budget itself
        assert all(per_call <= res for res in act_reservations)
        assert used <= max_tokens
        # only some worker calls fitted (the first one always does: its prompt leaves room for an output cap),
        # and the run did not succeed silently
        assert acts and estimate_input_tokens(acts[0]) + MIN_OUTPUT_TOKENS <= room
        assert n * (estimate_input_tokens(acts[0]) + MIN_OUTPUT_TOKENS) > room  # eight could never all fit
        assert len(acts) < n
        assert status != RunStatus.SUCCEEDED
        if status == RunStatus.FAILED:
            assert "BudgetExceededError" in f"{result.error.code} {result.error.message}"
            failed = [s for s in result.subtasks if s.status == SubtaskStatus.FAILED]
            assert failed
        else:
            assert status == RunStatus.NEEDS_REVIEW and (run.budget_exhausted or run.handoff_reason)
        print(f"\n8 parallel sub-tasks: status={status.value} worker calls made={len(acts)}/{n} used={used}/"
              f"{max_tokens} largest reservation={max(reservations)} act reservations={sorted(act_reservations)} "
              f"act input estimate={estimate_input_tokens(acts[0])} error={result.error}")
    finally:
        if rt.store.get_run(run_id).status == RunStatus.NEEDS_REVIEW:
            release(rt, run_id, tenant)


# ---------------------------------------------------------------------------------------------- loop detection
def test_a_worker_repeating_the_same_tool_call_is_stopped_as_a_loop(rt, names):
    same = {"expression": "2 + 2"}
    model = ScriptedModel(by_purpose={"plan": [reply(plan_json(subtask("loop")))],
                                      "act": [call_tool("calculator", dict(same)) for _ in range(LOOP_REPEATS + 2)]})
    provider, tenant = names("loop"), names("t")
    register(provider, model)
    run_id = start(rt, provider, tenant=tenant)
    status = wait_end(rt, run_id)
    result = run_result(rt.store, run_id)
    assert status == RunStatus.FAILED
    record = rt.store.get_subtask(run_id, "loop")
    assert record.status == SubtaskStatus.FAILED
    assert "ToolLoopError" in f"{record.error.code} {record.error.message}"
    assert "ToolLoopError" in f"{result.error.code} {result.error.message}"
    (loop,) = events(rt, run_id, "loop_detected")
    assert loop.subtask_id == "loop" and loop.data["repeats"] == LOOP_REPEATS
    # the model asked LOOP_REPEATS times; the calculator ran for every request but the looping one
    assert purposes(model).count("act") == LOOP_REPEATS
    assert len(events(rt, run_id, "tool_result")) == LOOP_REPEATS - 1


# ---------------------------------------------------------------------------------------------- circuit breaker
def test_an_open_circuit_skips_the_provider_without_calling_it(rt, names, monkeypatch):
    # Given: circuits open after 2 consecutive transient failures (the handlers cold-start on the new setting)
    threshold = 2
    monkeypatch.setenv("STEPCREW_BREAKER_FAILURES", str(threshold))
    monkeypatch.setenv("STEPCREW_BREAKER_RECOVERY_S", "3600")
    flaky, steady = FunctionModel(always_down), ScriptedModel(by_purpose=one_calc_script())
    p1, p2, tenant = names("flaky"), names("steady"), names("t")
    register(p1, flaky)
    register(p2, steady)
    # When
    run_id = start(rt, p1, tenant=tenant, chain=[p1, p2])
    status = wait_end(rt, run_id)
    # Then: the flaky provider was called `threshold` times in all; every later call skipped it at once
    result = run_result(rt.store, run_id)
    assert status == RunStatus.SUCCEEDED, result.error
    assert len(flaky.requests) == threshold
    assert purposes(flaky) == ["plan"] * threshold
    turns = events(rt, run_id, "model_turn")
    assert {t.data["provider"] for t in turns} == {p2} and len(turns) == len(steady.requests)
    assert len(steady.requests) > 1  # later calls (worker, synthesizer, reviewer) went to the next provider
    assert Breakers(rt.store.breaker_persistence()).state(p1, p1) == "open"
    assert result.degradation_level == "full"

