"""Native structured output in the LLM engine: the plan, review and memory reply schemas travel as the request's
``response_format`` when the model supports it (and the prompt then leaves the schema out); otherwise the schema
is pasted into the prompt and the reply is parsed from text (fenced JSON, prose around it)."""

from __future__ import annotations

import json

from stepcrew.engines import prompts
from stepcrew.engines.facts import MemoryFacts, PlanFacts, ReportFacts, SubtaskFacts, WorkerInfo
from stepcrew.engines.llm import LLMEngine
from stepcrew.llm.base import Model, ModelRequest, ModelResponse
from stepcrew.llm.testing import FunctionModel, reply
from stepcrew.models import AgentRole

ROLE = AgentRole(name="planner", role="Planner", goal="plan the work")
PLAN_FACTS = PlanFacts(goal="Average mass per species?", has_dataset=False, tools=["calculator"],
                       workers=[WorkerInfo(name="analyst", role="Analyst", tools=["calculator"])])
REPORT_FACTS = ReportFacts(goal="Average mass per species?", has_dataset=False, report="# Report\nAdelie 3700 g",
                           subtasks=[SubtaskFacts(id="s1", title="Mass", instructions="mean mass", output="3700")])
PLAN_JSON = {"subtasks": [{"id": "s1", "title": "Mass", "instructions": "Compute the mean mass per species.",
                           "role": "analyst", "tools": ["calculator"]}]}


def _engine(model: Model) -> LLMEngine:
    return LLMEngine("function", lambda tier: (model, "some-model"))


def _user(request: ModelRequest) -> str:
    return next(m.content for m in request.messages if m.role == "user")


# ----------------------------------------------------------------------------------------------- native
def test_native_plan_sends_the_schema_as_response_format_not_in_the_prompt():
    model = FunctionModel(lambda r: reply(json.dumps(PLAN_JSON)), native_response_format=True)
    out = _engine(model).plan(PLAN_FACTS, ROLE)
    request = model.requests[-1]
    assert request.response_format is not None and request.response_format.name == "plan"
    schema = request.response_format.json_schema
    assert set(schema["properties"]) == {"subtasks", "rationale", "decline"}
    assert "$defs" not in schema and schema["required"] == []  # lean: the sub-task schema inlined
    assert set(schema["properties"]["subtasks"]["items"]["properties"]) >= {"id", "title", "instructions", "role"}
    assert request.response_format.strict is False  # Plan has optional fields: not strict-mode compatible
    user = _user(request)
    assert prompts.plan_schema_text() not in user and "JSON Schema" not in user
    assert "\n\nWorkers:\n" in user and "Rules:" in user  # the rules stay; describe() still tells it apart
    assert prompts.describe(request).purpose == "plan"
    assert out.error is None and [s.id for s in out.plan.subtasks] == ["s1"]


def test_native_plan_decline_without_subtasks():
    for body in ({"decline": "the data holds no forecast"}, {"decline": "no forecast", "subtasks": []}):
        model = FunctionModel(lambda r, b=body: reply(json.dumps(b)), native_response_format=True)
        out = _engine(model).plan(PLAN_FACTS, ROLE)
        assert out.plan is None and out.decline is not None and out.decline.code == "unsupported"


def test_native_review_and_memory_send_their_schemas():
    scores = {"accuracy": 1, "completeness": 0.5, "relevance": 0.75, "feedback": "add the period"}
    model = FunctionModel(lambda r: reply(json.dumps(scores)), native_response_format=True)
    review = _engine(model).review(REPORT_FACTS, ROLE)
    request = model.requests[-1]
    assert request.response_format.name == "review"
    assert request.response_format.json_schema["required"] == ["accuracy", "completeness", "relevance", "feedback"]
    assert '"accuracy": <0-1>' not in _user(request)
    assert prompts.describe(request).purpose == "review"
    assert review.error is None and review.scores.completeness == 0.5 and review.feedback == "add the period"

    facts = {"facts": [{"subject": "currency", "text": "report currency EUR", "kind": "preference",
                        "confidence": 0.9}]}
    model = FunctionModel(lambda r: reply(json.dumps(facts)), native_response_format=True)
    memory = _engine(model).extract_memory(MemoryFacts(goal="Report in EUR please"), ROLE)
    request = model.requests[-1]
    assert request.response_format.name == "memory"
    assert request.response_format.json_schema["properties"]["facts"]["items"]["required"] == [
        "subject", "text", "kind", "confidence"]  # "at most 5" is in the prompt; parse_memory_reply keeps 5
    assert '"facts": [' not in _user(request) and prompts.describe(request).purpose == "remember"
    assert [f.text for f in memory.facts] == ["report currency EUR"] and memory.facts[0].confidence == 0.8


def test_a_native_reply_that_is_not_json_falls_back_to_an_error_not_a_crash():
    model = FunctionModel(lambda r: reply("I cannot produce a plan."), native_response_format=True)
    out = _engine(model).plan(PLAN_FACTS, ROLE)
    assert out.plan is None and out.decline is None and "no valid JSON object" in out.error


def test_a_wrapper_model_reports_the_capability_of_the_model_it_wraps():
    class Wrapper(Model):  # like the resilience ladder's GatedModel: keeps the wrapped model as ``inner``
        def __init__(self, inner: Model) -> None:
            self.inner = inner

        def request(self, request: ModelRequest) -> ModelResponse:
            return self.inner.request(request)

    native = FunctionModel(lambda r: reply(json.dumps(PLAN_JSON)), native_response_format=True)
    _engine(Wrapper(native)).plan(PLAN_FACTS, ROLE)
    assert native.requests[-1].response_format is not None
    plain = FunctionModel(lambda r: reply(json.dumps(PLAN_JSON)))
    _engine(Wrapper(plain)).plan(PLAN_FACTS, ROLE)
    assert plain.requests[-1].response_format is None


# ----------------------------------------------------------------------------------------------- fallback
def test_without_the_mechanism_the_schema_is_pasted_and_fenced_json_parses():
    fenced = "Here is the plan:\n```json\n" + json.dumps(PLAN_JSON, indent=2) + "\n```\nDone."
    model = FunctionModel(lambda r: reply(fenced))  # native_response_format defaults to False
    out = _engine(model).plan(PLAN_FACTS, ROLE)
    request = model.requests[-1]
    assert request.response_format is None
    assert prompts.plan_schema_text() in _user(request) and '{"decline"' in _user(request)
    assert out.error is None and out.plan.subtasks[0].title == "Mass"


def test_without_the_mechanism_review_and_memory_spell_the_shape_out():
    model = FunctionModel(lambda r: reply('```json\n{"accuracy": 0.9, "completeness": 1, "relevance": 1}\n```'))
    review = _engine(model).review(REPORT_FACTS, ROLE)
    assert model.requests[-1].response_format is None and '"accuracy": <0-1>' in _user(model.requests[-1])
    assert review.error is None and review.scores.accuracy == 0.9
    model = FunctionModel(lambda r: reply('{"facts": []}'))
    _engine(model).extract_memory(MemoryFacts(goal="Anything"), ROLE)
    assert model.requests[-1].response_format is None and '"facts": [' in _user(model.requests[-1])


def test_native_prompts_are_shorter_than_pasted_ones():
    assert len(prompts.plan_prompt(PLAN_FACTS, native=True)) < len(prompts.plan_prompt(PLAN_FACTS)) - 500
    assert len(prompts.review_prompt(REPORT_FACTS, native=True)) < len(prompts.review_prompt(REPORT_FACTS))
