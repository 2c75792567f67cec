"""The real run.asl.json and agent.asl.json, executed by the local runtime (moto in-process) with the real
handlers, and scripted models playing the roles.

Given a crew and a scripted provider, when a run executes, then the state machines' Choice/Map/Retry/Catch paths
do what the design says: parallel waves, tool errors fed back, reflection rounds, failures recorded.
"""

from __future__ import annotations

import json
import threading

import pytest

from stepcrew.crew import load_crew
from stepcrew.llm import registry
from stepcrew.llm.base import ModelAuthError, ModelThrottledError
from stepcrew.engines.testing import FunctionModel, ScriptedModel, call_tool, call_tools, label, reply
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunRequest, RunStatus, SubtaskStatus
from stepcrew.service import create_run, run_result, start_run

pytestmark = pytest.mark.integration

PROVIDER = "scripted"


def plan_json(*subtasks: dict) -> str:
    return json.dumps({"subtasks": list(subtasks), "rationale": "test plan"})


def subtask(id_: str, tools: list[str], depends_on: list[str] | None = None, role: str = "") -> dict:
    return {"id": id_, "title": f"Sub-task {id_}", "instructions": f"Do {id_}.", "depends_on": depends_on or [],
            "expected_output": "a number", "tools": tools, "role": role}


def review_json(score: float, feedback: str = "ok") -> str:
    return json.dumps({"accuracy": score, "completeness": score, "relevance": score, "feedback": feedback})


TWO_PARALLEL_THEN_ONE = plan_json(subtask("alpha", ["calculator"]), subtask("beta", ["calculator"]),
                                  subtask("gamma", ["calculator"], ["alpha", "beta"]))


@pytest.fixture(scope="module")
def runtime():
    """One LocalRuntime for the module (tests/integration/conftest.py's ``local_rt`` is the per-test one): each
    test creates its own run (its own run id and records) and waits for it to end, so the tests share nothing."""
    with LocalRuntime(fast_waits=True) as rt:
        yield rt


@pytest.fixture(autouse=True)
def _unregister_scripted_provider():
    """``execute`` registers the test's scripted model as provider PROVIDER; no other test may see it."""
    yield
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def execute(rt: LocalRuntime, model, *, review: dict | None = None, goal: str = "Compute two numbers and sum them",
            budget: dict | None = None):
    registry.register(PROVIDER, lambda tier: model)
    # no response cache: these flows must reach the scripted model (the cache has its own tests,
    # test_resilience_ladder.py); the module shares one runtime, tenant and goals
    request = RunRequest(goal=goal, provider=PROVIDER, review=review or {}, budget=budget or {},
                         routing={"cache": False})
    run = create_run(request, load_crew("default"), rt.store)
    run = start_run(run, rt.store, rt)
    rt.wait(run.execution_arn, timeout_s=120)
    return run_result(rt.store, run.run_id)


def test_happy_path_runs_independent_subtasks_side_by_side(runtime):
    # Given: alpha and beta only finish their first turn once BOTH are inside it (a barrier): if the wave ran
    # them one after the other, the barrier would time out and the run would fail.
    barrier = threading.Barrier(2, timeout=30)
    scripted = ScriptedModel(by_purpose={"plan": [reply(TWO_PARALLEL_THEN_ONE)],
                                         "synthesize": [reply("# Report\n4 + 9 = 13")],
                                         "review": [reply(review_json(0.9))]},
                             by_subtask={"gamma": [call_tool("calculator", {"expression": "4 + 9"}), reply("13")]})

    def act(request):
        sub = label(request).subtask_id
        if sub in ("alpha", "beta"):
            if not any(m.role == "tool" for m in request.messages):
                barrier.wait()
                return call_tool("calculator", {"expression": "2 + 2" if sub == "alpha" else "3 * 3"})
            return reply(f"{sub} done")
        return scripted.request(request)

    model = FunctionModel(lambda r: act(r) if label(r).purpose == "act" else scripted.request(r))
    # When
    result = execute(runtime, model)
    # Then
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert [s.id for s in result.plan.subtasks] == ["alpha", "beta", "gamma"]
    assert all(s.status == SubtaskStatus.SUCCEEDED and s.tool_calls == 1 for s in result.subtasks)
    by_id = {s.id: s for s in result.subtasks}
    assert by_id["gamma"].started_at >= max(by_id["alpha"].finished_at, by_id["beta"].finished_at)
    assert result.final_output == "# Report\n4 + 9 = 13"
    assert [(r.round, r.passed) for r in result.review.rounds] == [(1, True)]
    # the calculator Lambda really ran: its result is in alpha's stored conversation
    tool_msgs = [m for m in runtime.store.get_messages(result.run_id, "alpha") if m.role == "tool"]
    assert tool_msgs and tool_msgs[0].tool_results[0].content["value"] == 4


def test_tool_error_is_reported_to_the_model_which_recovers(runtime):
    # Given: the model first divides by zero, then reads the typed error and asks again
    seen_errors = []

    def recover(request):
        tool_results = [r for m in request.messages if m.role == "tool" for r in m.tool_results]
        if not tool_results:
            return call_tool("calculator", {"expression": "1 / 0"})
        last = tool_results[-1]
        if not last.ok:
            seen_errors.append(last.error.type)
            return call_tool("calculator", {"expression": "1 / 4"})
        return reply(f"the answer is {last.content['value']}")

    scripted = ScriptedModel(by_purpose={"plan": [reply(plan_json(subtask("only", ["calculator"])))],
                                         "act": [recover, recover, recover],
                                         "synthesize": [reply("# Report\n0.25")], "review": [reply(review_json(1))]})
    # When
    result = execute(runtime, scripted)
    # Then
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert seen_errors == ["CalculationError"]
    assert result.subtasks[0].tool_calls == 2
    record = runtime.store.get_subtask(result.run_id, "only")
    assert record.output == "the answer is 0.25"


def test_reflection_loop_improves_then_passes(runtime):
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan_json(subtask("only", ["calculator"])))],
        "act": [call_tool("calculator", {"expression": "6 * 7"}), reply("42")],
        "synthesize": [reply("# Draft\nsomething")],
        "improve": [reply("# Report\nThe answer is 42.")],
        "review": [reply(review_json(0.4, "state the number")), reply(review_json(0.95))]})
    result = execute(runtime, scripted, review={"threshold": 0.8, "max_rounds": 3})
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert [(r.round, r.passed) for r in result.review.rounds] == [(1, False), (2, True)]
    assert result.review.rounds[0].overall == pytest.approx(0.4)
    assert result.final_output == "# Report\nThe answer is 42."
    improve_requests = scripted.requests_for("improve")
    assert len(improve_requests) == 1
    assert "state the number" in json.dumps(improve_requests[0].model_dump(mode="json"))
    assert scripted.remaining()["purpose:review"] == 0


def test_reflection_loop_stops_at_max_rounds(runtime):
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan_json(subtask("only", ["calculator"])))],
        "act": [call_tool("calculator", {"expression": "1 + 1"}), reply("2")],
        "synthesize": [reply("# Draft")],
        "improve": [reply("# Draft v2"), reply("# Draft v3")],
        "review": [reply(review_json(0.3)), reply(review_json(0.5)), reply(review_json(0.99))]})
    result = execute(runtime, scripted, review={"threshold": 0.8, "max_rounds": 2, "on_fail": "fail"})
    assert [(r.round, r.passed) for r in result.review.rounds] == [(1, False), (2, False)]
    assert len(scripted.requests_for("improve")) == 1  # one improvement between the two rounds, none after
    # a report that never passed is not a success: with on_fail "fail" the run fails with the last round's scores
    assert result.status == RunStatus.FAILED
    assert result.error.code == "ReviewFailed"
    assert "round (2)" in result.error.message and "0.50" in result.error.message and "0.80" in result.error.message
    assert result.final_output is None
    assert runtime.store.get_report(result.run_id) == "# Draft v2"  # the report is kept, the improved one
    assert scripted.remaining()["purpose:review"] == 1  # no third round


def test_provider_failure_ends_the_run_failed_with_the_reason(runtime):
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan_json(subtask("only", ["calculator"])))],
        "act": [ModelAuthError("the provider rejected the API key (HTTP 401)")]})
    result = execute(runtime, scripted)
    assert result.status == RunStatus.FAILED
    assert result.error is not None
    assert "ModelAuthError" in f"{result.error.code} {result.error.message}"
    assert "rejected the API key" in result.error.message
    assert result.subtasks[0].status == SubtaskStatus.FAILED
    assert result.final_output is None


def test_transient_provider_errors_are_retried_by_the_state_machine(runtime):
    scripted = ScriptedModel(by_purpose={
        "plan": [ModelThrottledError("429"), ModelThrottledError("429"),
                 reply(plan_json(subtask("only", ["calculator"])))],
        "act": [call_tool("calculator", {"expression": "2 ** 3"}), reply("8")],
        "synthesize": [reply("# Report\n8")], "review": [reply(review_json(0.9))]})
    result = execute(runtime, scripted)
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert len(scripted.requests_for("plan")) == 3


def test_invalid_plan_is_retried_then_the_run_fails(runtime):
    cyclic = plan_json(subtask("a", ["calculator"], ["b"]), subtask("b", ["calculator"], ["a"]))
    scripted = ScriptedModel(by_purpose={"plan": [reply(cyclic), reply(cyclic), reply(cyclic)]})
    result = execute(runtime, scripted)
    assert result.status == RunStatus.FAILED
    assert result.error.code == "PlanInvalidError"
    assert "cycle" in result.error.message
    plans = scripted.requests_for("plan")
    assert len(plans) == 3  # the first try and 2 more
    assert "cycle" in json.dumps(plans[1].model_dump(mode="json"))  # the error went back to the planner
    assert result.subtasks == []


def test_several_tool_calls_in_one_turn_run_through_the_tool_map(runtime):
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan_json(subtask("only", ["calculator"])))],
        "act": [call_tools(("calculator", {"expression": "1 + 1"}), ("calculator", {"expression": "2 + 2"}),
                           ("no_such_tool", {})),
                reply("done")],
        "synthesize": [reply("# Report")], "review": [reply(review_json(0.9))]})
    result = execute(runtime, scripted)
    assert result.status == RunStatus.SUCCEEDED, result.error
    results = [r for m in runtime.store.get_messages(result.run_id, "only") if m.role == "tool" for r in m.tool_results]
    values = sorted(r.content["value"] for r in results if r.ok)
    assert values == [2, 4]
    # the sub-task may only use the calculator: the agent refuses the unknown tool before the Map runs anything
    assert [(r.name, r.error.type) for r in results if not r.ok] == [("no_such_tool", "NotAllowed")]


def test_a_run_over_its_token_budget_fails_with_the_reason(runtime):
    # Given: the budget allows 50 tokens in all; the planner's prompt alone is estimated above that
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan_json(subtask("only", ["calculator"])))],
        "act": [call_tool("calculator", {"expression": "1 + 1"}), reply("2")],
        "synthesize": [reply("# Report")], "review": [reply(review_json(0.9))]})
    result = execute(runtime, scripted, budget={"max_tokens": 50})
    assert result.status == RunStatus.FAILED
    assert "BudgetExceededError" in f"{result.error.code} {result.error.message}"
    assert "no room for another call" in result.error.message
    assert result.final_output is None
    # the reservation refused the call before it was made: nothing was spent, nothing overshot
    assert result.usage.input_tokens + result.usage.output_tokens == 0 and scripted.requests == []


def test_a_subtask_over_its_turn_limit_fails_the_run(runtime):
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan_json(subtask("only", ["calculator"])))],
        "act": [call_tool("calculator", {"expression": f"{i} + 1"}) for i in range(5)]})
    result = execute(runtime, scripted, budget={"max_turns_per_subtask": 2})
    assert result.status == RunStatus.FAILED
    assert "MaxTurnsExceededError" in f"{result.error.code} {result.error.message}"
    assert result.subtasks[0].status == SubtaskStatus.FAILED
