"""Calls that add nothing are skipped (issue 11, "Prompts"): the crew's ``report_from`` sub-task output is the
report's first draft (no synthesizer draft call), and the planner proposes the run's memory facts in its plan reply
(no separate extraction call at the end)."""

import json

import pytest
from domain_helpers import RUN_ID, plan_json, two_step_plan

from stepcrew.domain.planner import plan_run
from stepcrew.domain.remember import EXTRACT_CONVERSATION, _proposed, propose_memory
from stepcrew.domain.synthesizer import synthesize
from stepcrew.engines import prompts
from stepcrew.engines.testing import ScriptedModel, label, reply
from stepcrew.events import PlanInput, ProposeMemory, SynthInput
from stepcrew.models import Crew, RunStatus, SubtaskStatus


def _finish(store):
    store.put_plan(RUN_ID, two_step_plan())
    for sid, output in [("compare", "Gentoo: 5076.02 g"), ("write", "## Gentoo is heaviest\nGentoo: 5076.02 g")]:
        store.update_subtask(RUN_ID, sid, {"status": SubtaskStatus.SUCCEEDED, "output": output})


def test_report_from_makes_the_workers_output_the_draft_without_a_model_call(store, make_run, use_model, crew):
    model = ScriptedModel(by_purpose={"synthesize": [reply("# a synthesizer draft")]})
    make_run(provider=use_model(model), crew=crew.model_copy(update={"report_from": "writer"}))
    _finish(store)
    out = synthesize(SynthInput(run_id=RUN_ID), store)
    assert model.requests == []  # no draft call
    expected = "## Gentoo is heaviest\nGentoo: 5076.02 g"
    assert store.get_report(RUN_ID) == expected and out.chars == len(expected)
    event = [e for _, e in store.list_events(RUN_ID) if e.kind == "synthesized"][-1]
    assert event.data["source"] == "write" and event.data["mode"] == "draft"


def test_without_report_from_the_synthesizer_drafts(store, make_run, use_model, crew):
    model = ScriptedModel(by_purpose={"synthesize": [reply("# a synthesizer draft")]})
    make_run(provider=use_model(model), crew=crew)
    _finish(store)
    synthesize(SynthInput(run_id=RUN_ID), store)
    assert [label(r).purpose for r in model.requests] == ["synthesize"]
    assert store.get_report(RUN_ID) == "# a synthesizer draft"


def test_report_from_a_worker_without_output_falls_back_to_the_synthesizer(store, make_run, use_model, crew):
    model = ScriptedModel(by_purpose={"synthesize": [reply("# drafted")]})
    make_run(provider=use_model(model), crew=crew.model_copy(update={"report_from": "writer"}))
    store.put_plan(RUN_ID, two_step_plan())
    store.update_subtask(RUN_ID, "compare", {"status": SubtaskStatus.SUCCEEDED, "output": "x"})
    store.update_subtask(RUN_ID, "write", {"status": SubtaskStatus.SUCCEEDED, "output": "   "})
    synthesize(SynthInput(run_id=RUN_ID), store)
    assert len(model.requests) == 1 and store.get_report(RUN_ID) == "# drafted"


def test_report_from_must_name_a_worker(crew):
    doc = crew.model_dump(mode="json") | {"report_from": "nobody"}
    with pytest.raises(ValueError, match="report_from 'nobody' is not a worker"):
        Crew.model_validate(doc)


FACT = {"subject": "currency", "text": "report currency EUR", "kind": "preference", "confidence": 0.95}


def _plan_with_facts(facts):
    return json.dumps(json.loads(plan_json(two_step_plan())) | {"facts": facts})


def test_the_planner_proposes_memory_and_the_end_of_run_makes_no_extraction_call(store, make_run, use_model):
    model = ScriptedModel(by_purpose={"plan": [reply(_plan_with_facts([FACT]))],
                                      "remember": [reply(json.dumps({"facts": []}))]})
    make_run(provider=use_model(model), goal="Compare the species by body mass, in EUR please.")
    out = plan_run(PlanInput(run_id=RUN_ID), store)
    assert out.valid  # the facts key does not break the plan
    assert prompts.PLAN_FACTS_RULE in next(m.content for m in model.requests[0].messages if m.role == "user")
    store.update_run(RUN_ID, {"status": RunStatus.SUCCEEDED})
    proposed = propose_memory(ProposeMemory(action="propose_memory", run_id=RUN_ID), store)
    assert proposed.by == "planner" and proposed.facts == 1
    assert [label(r).purpose for r in model.requests] == ["plan"]  # no "remember" call
    facts = _proposed(store, store.get_run(RUN_ID))
    assert [(f.text, f.kind, f.confidence) for f in facts] == [("report currency EUR", "preference", 0.8)]
    propose_memory(ProposeMemory(action="propose_memory", run_id=RUN_ID), store)  # a retried state
    assert len(store.get_messages(RUN_ID, EXTRACT_CONVERSATION)) == 1


def test_an_empty_facts_list_is_an_answer_none(store, make_run, use_model):
    model = ScriptedModel(by_purpose={"plan": [reply(_plan_with_facts([]))]})
    make_run(provider=use_model(model))
    plan_run(PlanInput(run_id=RUN_ID), store)
    store.update_run(RUN_ID, {"status": RunStatus.SUCCEEDED})
    out = propose_memory(ProposeMemory(action="propose_memory", run_id=RUN_ID), store)
    assert (out.by, out.facts) == ("planner", 0) and len(model.requests) == 1


def test_a_plan_reply_without_a_facts_list_leaves_the_proposal_to_the_runs_end(store, make_run, use_model):
    """The model ignored the ask: silence is not "none", so the extraction call still runs."""
    model = ScriptedModel(by_purpose={"plan": [reply(plan_json(two_step_plan()))],
                                      "remember": [reply(json.dumps({"facts": [FACT]}))]})
    make_run(provider=use_model(model))
    plan_run(PlanInput(run_id=RUN_ID), store)
    store.update_run(RUN_ID, {"status": RunStatus.SUCCEEDED})
    out = propose_memory(ProposeMemory(action="propose_memory", run_id=RUN_ID), store)
    assert (out.by, out.facts) == ("model", 1)
    assert [label(r).purpose for r in model.requests] == ["plan", "remember"]


def test_the_native_plan_format_requires_the_facts_list():
    assert prompts.plan_format(facts=True).json_schema["required"] == ["facts"]
    assert "facts" not in prompts.plan_format().json_schema["properties"]


def test_memory_off_asks_the_planner_for_no_facts(store, make_run, use_model):
    model = ScriptedModel(by_purpose={"plan": [reply(_plan_with_facts([FACT]))]})
    make_run(provider=use_model(model), memory="off")
    plan_run(PlanInput(run_id=RUN_ID), store)
    user = next(m.content for m in model.requests[0].messages if m.role == "user")
    assert prompts.PLAN_FACTS_RULE not in user and '"facts"' not in user
    store.update_run(RUN_ID, {"status": RunStatus.SUCCEEDED})
    out = propose_memory(ProposeMemory(action="propose_memory", run_id=RUN_ID), store)
    assert out.by == "skipped"


def test_a_planner_not_asked_for_facts_leaves_the_extraction_call(store, make_run, use_model):
    """A stored plan reply with no facts field (a replan, a semantic-cache hit): the model is asked at the end."""
    from stepcrew.domain.modelcall import exchange  # noqa: F401  (the ledger format the planner uses)
    from stepcrew.engines.base import PlanReply
    from stepcrew.models import Message

    model = ScriptedModel(by_purpose={"remember": [reply(json.dumps({"facts": [FACT]}))]})
    make_run(provider=use_model(model), status=RunStatus.SUCCEEDED)
    store.append_messages(RUN_ID, "planner", [Message(role="user", content="k"), Message(
        role="assistant", content=PlanReply(plan=two_step_plan()).model_dump_json())])
    out = propose_memory(ProposeMemory(action="propose_memory", run_id=RUN_ID), store)
    assert out.by == "model" and [label(r).purpose for r in model.requests] == ["remember"]
