"""ScriptedModel, FunctionModel, the response helpers and the request switch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from stepcrew.engines import prompts
from stepcrew.engines.facts import ActFacts, PlanFacts, ReportFacts, SubtaskFacts, WorkerInfo
from stepcrew.engines.testing import ScriptedModel, ScriptExhaustedError, label
from stepcrew.llm import base
from stepcrew.llm.base import ModelRequest, ModelSettings, ModelThrottledError
from stepcrew.llm.testing import FunctionModel, call_tool, call_tools, override_allow_model_requests, reply
from stepcrew.models import Message

GOAL = "Compare the penguin species by body mass."
_DONE = SubtaskFacts(id="s1", title="Stats", output="Adelie 3700 g.")


def _opening(purpose: str, subtask_id: str | None) -> str:
    """The first user prompt the LLM engine renders for a role call of ``purpose`` (what ``label`` reads)."""
    if purpose == "act":
        return prompts.act_prompt(ActFacts(goal=GOAL, has_dataset=False,
                                           subtask=SubtaskFacts(id=subtask_id or "s1", title="Stats")), [])
    if purpose == "plan":
        return prompts.plan_prompt(PlanFacts(goal=GOAL, has_dataset=False, tools=["calculator"],
                                             workers=[WorkerInfo(name="analyst", role="Analyst",
                                                                 tools=["calculator"])]))
    report = ReportFacts(goal=GOAL, has_dataset=False, subtasks=[_DONE], report="# Report", feedback="more")
    return {"synthesize": prompts.synth_prompt, "improve": prompts.improve_prompt,
            "review": prompts.review_prompt}[purpose](report)


def _req(purpose: str = "act", subtask_id: str | None = None, text: str = "hi") -> ModelRequest:
    """A request whose conversation was opened by ``purpose``'s real prompt and ends with the user turn ``text``."""
    request = ModelRequest(messages=[Message(role="system", content="You are a tester."),
                                     Message(role="user", content=_opening(purpose, subtask_id)),
                                     Message(role="user", content=text)],
                           settings=ModelSettings(model="scripted"))
    assert (label(request).purpose, label(request).subtask_id) == (
        purpose, (subtask_id or "s1") if purpose == "act" else None)
    return request


def test_turns_play_in_order_and_requests_are_recorded():
    model = ScriptedModel([call_tool("sql_query", {"sql": "select 1"}, call_id="c1"), reply("done")])
    first = model.request(_req(text="a"))
    second = model.request(_req(text="b"))
    assert (first.stop_reason, first.tool_calls[0].call_id, first.tool_calls[0].arguments) == (
        "tool_use", "c1", {"sql": "select 1"})
    assert (second.stop_reason, second.text) == ("end_turn", "done")
    assert [r.messages[-1].content for r in model.requests] == ["a", "b"]
    assert model.remaining() == {"default": 0}


def test_exhausted_script_raises_a_clear_assertion():
    model = ScriptedModel([reply("only")])
    model.request(_req())
    with pytest.raises(ScriptExhaustedError, match=r"'default' is exhausted after 1 turn") as info:
        model.request(_req())
    assert isinstance(info.value, AssertionError)


def test_scripted_exceptions_are_raised_then_the_script_goes_on():
    model = ScriptedModel([ModelThrottledError("slow down"), ModelThrottledError, reply("ok")])
    with pytest.raises(ModelThrottledError, match="slow down"):
        model.request(_req())
    with pytest.raises(ModelThrottledError):
        model.request(_req())
    assert model.request(_req()).text == "ok"


def test_callable_turns_see_the_request():
    model = ScriptedModel([lambda r: reply(f"echo {r.messages[-1].content}")])
    assert model.request(_req(text="ping")).text == "echo ping"


def test_callable_returning_a_wrong_type_is_a_type_error():
    model = ScriptedModel([lambda r: "not a response"])
    with pytest.raises(TypeError, match="ModelResponse"):
        model.request(_req())


def test_per_purpose_scripts_are_independent():
    model = ScriptedModel([reply("default")], by_purpose={"plan": [reply("plan")], "review": [reply("review")]})
    assert model.request(_req("review")).text == "review"
    assert model.request(_req("plan")).text == "plan"
    assert model.request(_req("synthesize")).text == "default"  # no script of its own: the default one
    with pytest.raises(ScriptExhaustedError, match="purpose:plan"):
        model.request(_req("plan"))
    assert [label(r).purpose for r in model.requests_for("plan")] == ["plan", "plan"]


def test_per_subtask_act_scripts_are_deterministic_under_threads():
    # Given two sub-tasks whose agent loops run in parallel threads, each with its own script
    scripts = {f"s{i}": [call_tool("sql_query", {"sql": f"q{i}"}), reply(f"answer {i}")] for i in range(6)}
    model = ScriptedModel(by_subtask=scripts, by_purpose={"act": [reply("fallback")]})

    def loop(subtask: str) -> list[str]:
        out = []
        for _ in range(2):
            r = model.request(_req("act", subtask))
            out.append(r.tool_calls[0].arguments["sql"] if r.tool_calls else r.text)
        return out

    # When they run concurrently
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = dict(zip(scripts, pool.map(loop, scripts), strict=True))
    # Then each sub-task saw exactly its own turns, in order
    assert results == {f"s{i}": [f"q{i}", f"answer {i}"] for i in range(6)}
    assert model.request(_req("act", "unknown")).text == "fallback"
    assert all(v == 0 for v in model.remaining().values())


def test_responses_are_copies():
    scripted = reply("x")
    model = ScriptedModel([scripted])
    model.request(_req()).tool_calls.append(call_tool("t", {}).tool_calls[0])
    assert scripted.tool_calls == []


def test_function_model_records_and_answers():
    model = FunctionModel(lambda r: reply(label(r).purpose), model="fn")
    assert model.request(_req("review")).text == "review"
    assert len(model.requests) == 1 and model.model == "fn"


def test_helpers_build_well_formed_responses_with_cost():
    r = reply("hi", input_tokens=1_000_000, output_tokens=0, model="claude-haiku-4-5")
    assert r.usage.cost_usd == pytest.approx(1.0)  # haiku 4.5: $1 per 1M input tokens
    a, b = call_tool("t", {}), call_tool("t", {})
    assert a.tool_calls[0].call_id != b.tool_calls[0].call_id
    multi = call_tools(("a", {"x": 1}), ("b", {}))
    assert multi.stop_reason == "tool_use" and [c.name for c in multi.tool_calls] == ["a", "b"]
    with pytest.raises(ValueError):
        call_tools()


def test_override_allow_model_requests_restores_even_on_error():
    before = base.ALLOW_MODEL_REQUESTS
    with pytest.raises(RuntimeError):
        with override_allow_model_requests(not before):
            assert base.ALLOW_MODEL_REQUESTS is (not before)
            raise RuntimeError
    assert base.ALLOW_MODEL_REQUESTS is before
