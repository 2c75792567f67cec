"""Tenant memory through the real run.asl.json / agent.asl.json on the local runtime (moto in-process).

Given a tenant whose earlier run and added facts are in memory, when it runs a similar goal, then its planner (and
its workers) are prompted with them and ``runs show`` lists what was recalled; another tenant's runs never see
them; a run with ``memory: off`` neither recalls nor leaves anything; a succeeded run's remember calls and
extracted facts are stored (screened); a failed run becomes an episode that says why.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest
from stepcrew.crew import load_crew
from stepcrew.engines.testing import ScriptedModel, call_tool, label, reply
from stepcrew.llm import registry
from stepcrew.local.runtime import LocalRuntime
from stepcrew.memory.models import FactIn
from stepcrew.memory.service import Memory
from stepcrew.memory.store import memory_store_for
from stepcrew.models import RunRequest, RunStatus
from stepcrew.service import create_run, run_result, start_run

pytestmark = pytest.mark.integration

_SEQ = itertools.count(1)
GOAL = "Compute the total cost of 6 boxes at 7 dollars each"
SIMILAR = "Compute the total cost of 6 crates at 7 dollars each"


def plan_json(tools=("calculator",)) -> str:
    return json.dumps({"subtasks": [{"id": "calc", "title": "Multiply", "instructions": "Compute 6 * 7.",
                                     "depends_on": [], "expected_output": "a number", "tools": list(tools),
                                     "role": ""}], "rationale": "one step"})


def review_json(score: float = 0.95) -> str:
    return json.dumps({"accuracy": score, "completeness": score, "relevance": score, "feedback": "ok"})


def script(*, extra_act=(), remember=None, score: float = 0.95, remember_turn=None,
           plan_facts=None) -> ScriptedModel:
    """``plan_facts``: the facts the plan reply proposes (issue 11); None: the reply has no facts list, so the
    run's end asks the ``remember`` script."""
    plan = plan_json(("calculator", "remember") if extra_act else ("calculator",))
    if plan_facts is not None:
        plan = json.dumps(json.loads(plan) | {"facts": plan_facts})
    return ScriptedModel(by_purpose={
        "plan": [reply(plan)],
        "act": [*extra_act, call_tool("calculator", {"expression": "6 * 7"}), reply("6 * 7 = 42")],
        "synthesize": [reply("# Report\n6 * 7 = 42 dollars")],
        "review": [reply(review_json(score))] * 2,
        "improve": [reply("# Report\n6 * 7 = 42 dollars")],
        "remember": [remember_turn or reply(json.dumps({"facts": remember or []}))]})


@pytest.fixture(scope="module")
def rt():
    with LocalRuntime(fast_waits=True) as runtime:
        yield runtime


@pytest.fixture
def provider():
    made = []

    def make(model: ScriptedModel) -> str:
        name = f"memflow-{next(_SEQ)}"
        registry.register(name, lambda tier: model)
        made.append(name)
        return name

    yield make
    for name in made:
        registry.unregister(name)


def tenant() -> str:
    return f"mem-tenant-{next(_SEQ)}"


def crew_with_remember():
    crew = load_crew("default")
    workers = [w.model_copy(update={"tools": [*w.tools, "remember"]}) for w in crew.workers]
    return crew.model_copy(update={"workers": workers})


def run(rt, provider_name: str, tenant_id: str, goal: str = GOAL, crew=None, **request) -> str:
    req = RunRequest(goal=goal, provider=provider_name, tenant=tenant_id, **request)
    run_id = start_run(create_run(req, crew or load_crew("default"), rt.store), rt.store, rt).run_id
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = rt.store.get_run(run_id)
        if record.status.terminal:
            rt.wait(record.execution_arn, timeout_s=60)  # the Remember state runs after the terminal write
            return run_id
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


def memory(rt, guard=None) -> Memory:
    from stepcrew.embeddings.testing import HashingEmbeddings

    return Memory(memory_store_for(rt.store), embeddings=HashingEmbeddings, guard=guard)


def plan_prompt(model: ScriptedModel) -> str:
    return "\n".join(m.content for m in model.requests_for("plan")[0].messages)


def act_prompt(model: ScriptedModel) -> str:
    return "\n".join(m.content for m in model.requests_for("act")[0].messages)


def test_second_similar_run_recalls_the_episode_and_the_added_fact(rt, provider, local_guard):
    a = tenant()
    first = run(rt, provider(script()), a)
    assert rt.store.get_run(first).status == RunStatus.SUCCEEDED
    listed = memory(rt).list(a, "episode")
    assert [e.run_id for e in listed.episodes] == [first]
    assert listed.episodes[0].status == "SUCCEEDED" and listed.episodes[0].review_overall == pytest.approx(0.95)

    memory(rt, local_guard).add_facts(a, [FactIn(text="report currency EUR")])
    model = script()
    second = run(rt, provider(model), a, goal=SIMILAR)
    prompt = plan_prompt(model)
    assert "report currency EUR" in prompt
    assert f"run {first}" in prompt and "outcome SUCCEEDED, review 0.95" in prompt
    assert "report currency EUR" in act_prompt(model)  # the workers get the facts too
    shown = run_result(rt.store, second, a).memory
    assert [e.run_id for e in shown.episodes] == [first]
    assert [f.text for f in shown.facts] == ["report currency EUR"]


def test_another_tenant_never_recalls_them(rt, provider, local_guard):
    a, b = tenant(), tenant()
    first = run(rt, provider(script()), a)
    memory(rt, local_guard).add_facts(a, [FactIn(text="fiscal year starts in April")])
    model = script()
    other = run(rt, provider(model), b)  # the very same goal
    prompt = plan_prompt(model)
    assert "fiscal year" not in prompt and first not in prompt and "Memory (from earlier runs" not in prompt
    assert run_result(rt.store, other, b).memory.episodes == []
    assert [e.run_id for e in memory(rt).list(b, "episode").episodes] == [other]
    assert memory(rt).list(b, "fact").facts == []


def test_memory_off_recalls_nothing_and_leaves_nothing(rt, provider, local_guard):
    a = tenant()
    first = run(rt, provider(script()), a)
    memory(rt, local_guard).add_facts(a, [FactIn(text="report currency EUR")])
    model = script()
    off = run(rt, provider(model), a, goal=SIMILAR, memory="off")
    assert "report currency" not in plan_prompt(model) and first not in plan_prompt(model)
    assert run_result(rt.store, off, a).memory is None
    kinds = {e.kind for _, e in rt.store.list_events(off)}
    assert "memory_recalled" not in kinds and "memory_recorded" not in kinds
    assert [e.run_id for e in memory(rt).list(a, "episode").episodes] == [first]


def test_succeeded_run_stores_remember_calls_and_extracted_facts_screened(rt, provider):
    a = tenant()
    remember = call_tool("remember", {"fact": "column rev means net revenue in k$, owner ann@example.com",
                                      "subject": "column rev"})
    extracted = [{"subject": "fiscal year", "text": "fiscal year starts in April", "confidence": 0.95}]
    run_id = run(rt, provider(script(extra_act=[remember], remember=extracted)), a, crew=crew_with_remember(),
                 goal=GOAL + "; our fiscal year starts in April")
    assert rt.store.get_run(run_id).status == RunStatus.SUCCEEDED
    facts = {f.subject: f for f in memory(rt).list(a, "fact").facts}
    assert set(facts) == {"column rev", "fiscal year"}
    rev = facts["column rev"]
    assert rev.origin == "tool" and rev.source_run == run_id and rev.confidence == pytest.approx(0.9)
    assert "ann@example.com" not in rev.text and "[EMAIL_ADDRESS]" in rev.text  # masked before it was stored
    fy = facts["fiscal year"]
    assert fy.origin == "extracted" and fy.confidence == pytest.approx(0.8)  # a model's guess is capped at 0.8
    recorded = [e for _, e in rt.store.list_events(run_id) if e.kind == "memory_recorded"]
    assert len(recorded) == 1 and recorded[0].data["facts_created"] == 2


def test_facts_the_planner_proposed_are_stored_without_an_extraction_call(rt, provider):
    a = tenant()
    proposed = [{"subject": "fiscal year", "text": "fiscal year starts in April", "confidence": 0.95}]
    model = script(plan_facts=proposed, remember=[{"text": "never asked"}])
    run_id = run(rt, provider(model), a, goal=GOAL + "; our fiscal year starts in April")
    assert rt.store.get_run(run_id).status == RunStatus.SUCCEEDED
    (fact,) = memory(rt).list(a, "fact").facts
    assert (fact.text, fact.origin, fact.confidence) == ("fiscal year starts in April", "extracted", 0.8)
    assert "remember" not in [label(r).purpose for r in model.requests]


def test_failed_run_becomes_an_episode_that_says_why(rt, provider):
    a = tenant()
    model = ScriptedModel(by_purpose={"plan": [reply("no plan here")] * 3})
    run_id = run(rt, provider(model), a)
    assert rt.store.get_run(run_id).status == RunStatus.FAILED
    (episode,) = memory(rt).list(a, "episode").episodes
    assert episode.run_id == run_id and episode.status == "FAILED"
    assert episode.error_code == "PlanInvalidError" and "plan" in (episode.reason or "")
    assert memory(rt).list(a, "fact").facts == []  # a failed run teaches no facts


def test_a_failed_model_proposal_falls_back_to_the_rules_and_the_run_still_succeeds(rt, provider):
    from stepcrew.llm.base import ModelBadRequestError

    a = tenant()
    model = script(remember_turn=ModelBadRequestError("bad request"))
    run_id = run(rt, provider(model), a, goal=GOAL + "; our fiscal year starts in April")
    assert rt.store.get_run(run_id).status == RunStatus.SUCCEEDED
    (fact,) = memory(rt).list(a, "fact").facts
    assert (fact.text, fact.origin, fact.confidence) == ("fiscal year starts in April", "extracted", 0.6)
