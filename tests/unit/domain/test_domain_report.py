"""Synthesizer (draft, improve) and reviewer (pass, fail, fail-closed replies, budget) over a finished plan."""

import json

import pytest
from domain_helpers import RUN_ID, two_step_plan

from stepcrew.domain.errors import EmptyOutputError, MissingInputError
from stepcrew.domain.reviewer import ReviewReplyError, review
from stepcrew.domain.synthesizer import synthesize
from stepcrew.engines.llm import LLMEngine
from stepcrew.events import ReviewInput, StepFunctionsError, SynthInput
from stepcrew.engines.testing import ScriptedModel, label, reply
from stepcrew.models import FINAL_OUTPUT_MAX_CHARS, Budget, Message, ReviewConfig, SubtaskStatus, ToolCall, ToolResult


@pytest.fixture
def finished(store, make_run, use_model):
    """Given a run whose two sub-tasks succeeded (compare ran one query), playing scripts by purpose."""

    def given(budget=None, threshold=0.8, **by_purpose):
        model = ScriptedModel(by_purpose=by_purpose)
        make_run(provider=use_model(model), budget=budget or Budget(),
                 review_config=ReviewConfig(threshold=threshold))
        store.put_plan(RUN_ID, two_step_plan())
        call = ToolCall(call_id="c1", name="query_dataset", arguments={"sql": "SELECT 1"})
        store.append_messages(RUN_ID, "compare", [
            Message(role="assistant", tool_calls=[call]),
            Message(role="tool", tool_results=[ToolResult(call_id="c1", name="query_dataset", ok=True,
                                                          content={"rows": [["Gentoo", 5076.02]]})])])
        for sid, output in [("compare", "Gentoo: 5076.02 g"), ("write", "## Section")]:
            store.update_subtask(RUN_ID, sid, {"status": SubtaskStatus.SUCCEEDED, "output": output})
        return model

    return given


@pytest.fixture
def engine_facts(monkeypatch):
    """The facts each LLM engine call got, per method name (what the engine boundary receives)."""
    seen: dict[str, list] = {}
    for method in ("synthesize", "improve", "review"):
        original = getattr(LLMEngine, method)

        def spy(self, facts, role, _original=original, _method=method):
            seen.setdefault(_method, []).append(facts)
            return _original(self, facts, role)

        monkeypatch.setattr(LLMEngine, method, spy)
    return seen


def _review_json(a, c, r, feedback="fine"):
    return json.dumps({"accuracy": a, "completeness": c, "relevance": r, "feedback": feedback})


def test_draft_is_written_from_the_subtask_outputs(store, finished, engine_facts):
    model = finished(synthesize=[reply("# Report\nGentoo: 5076.02 g\n")])
    out = synthesize(SynthInput(run_id=RUN_ID), store)
    assert out.mode == "draft" and out.chars == len("# Report\nGentoo: 5076.02 g")
    assert store.get_report(RUN_ID) == "# Report\nGentoo: 5076.02 g"
    request = model.requests[0]
    assert label(request).purpose == "synthesize" and "Report synthesizer" in request.messages[0].content
    assert "Gentoo: 5076.02 g" in request.messages[1].content
    (facts,) = engine_facts["synthesize"]
    assert facts.subtasks[0].tool_results[0].content == {"rows": [["Gentoo", 5076.02]]}
    (event,) = [e for _, e in store.list_events(RUN_ID) if e.kind == "synthesized"]
    assert event.data == {"mode": "draft", "round": 0, "chars": out.chars, "version": 1}


def test_improve_applies_the_feedback_of_the_given_round(store, finished, engine_facts):
    model = finished(synthesize=[reply("v1")], review=[reply(_review_json(0.2, 0.2, 0.2, "add the method"))],
                     improve=[reply("v2 with method")])
    synthesize(SynthInput(run_id=RUN_ID), store)
    review(ReviewInput(run_id=RUN_ID, round=1), store)
    out = synthesize(SynthInput(run_id=RUN_ID, mode="improve", round=1), store)
    assert out.mode == "improve" and store.get_report(RUN_ID) == "v2 with method"
    request = model.requests_for("improve")[0]
    assert "add the method" in request.messages[1].content and "v1" in request.messages[1].content
    assert ('Current report:\n<<<DATA source="current report">>>\nv1\n<<<END DATA>>>\n\n'
            "Reviewer feedback:\nadd the method\n\n") in request.messages[1].content
    (facts,) = engine_facts["improve"]
    assert facts.feedback == "add the method" and facts.report == "v1"


def test_improve_without_that_review_round_is_missing_input(store, finished):
    finished(synthesize=[reply("v1")])
    synthesize(SynthInput(run_id=RUN_ID), store)
    with pytest.raises(MissingInputError, match="review round 3"):
        synthesize(SynthInput(run_id=RUN_ID, mode="improve", round=3), store)


def test_unfinished_subtasks_block_the_report(store, finished):
    finished(synthesize=[reply("x")])
    store.update_subtask(RUN_ID, "write", {"status": SubtaskStatus.FAILED})
    with pytest.raises(MissingInputError, match="without a result: write"):
        synthesize(SynthInput(run_id=RUN_ID), store)


def test_an_empty_report_is_an_error_and_a_huge_one_is_capped(store, finished):
    finished(synthesize=[reply("   "), reply("x" * (FINAL_OUTPUT_MAX_CHARS + 10))])
    with pytest.raises(EmptyOutputError):
        synthesize(SynthInput(run_id=RUN_ID), store)
    out = synthesize(SynthInput(run_id=RUN_ID), store)
    assert out.chars == FINAL_OUTPUT_MAX_CHARS and store.get_report(RUN_ID).endswith("size limit]")


def test_review_passes_at_the_threshold_and_reports_the_mean(store, finished):
    fenced = f"```json\n{_review_json(1, 0.9, 0.5)}\n```"
    model = finished(threshold=0.8, synthesize=[reply("r")], review=[reply(fenced)])
    synthesize(SynthInput(run_id=RUN_ID), store)
    out = review(ReviewInput(run_id=RUN_ID, round=1), store)
    assert out.overall == pytest.approx(0.8) and out.passed and out.next_round == 2 and not out.budget_exhausted
    (stored,) = store.list_reviews(RUN_ID)
    assert stored.scores.completeness == 0.9 and stored.feedback == "fine"
    prompt = model.requests_for("review")[0].messages[1].content
    figures = prompt.split("Figures returned by the tools: ", 1)[1].split("\n", 1)[0]
    assert {float(n) for n in figures.split(", ")} == {5076.02, 1.0, 2.0}  # 2 = list lengths
    (event,) = [e for _, e in store.list_events(RUN_ID) if e.kind == "review"]
    assert event.data["passed"] is True and "feedback" not in event.data


def test_review_below_the_threshold_fails(store, finished):
    finished(threshold=0.9, synthesize=[reply("r")], review=[reply(_review_json(0.9, 0.9, 0.6))])
    synthesize(SynthInput(run_id=RUN_ID), store)
    out = review(ReviewInput(run_id=RUN_ID, round=2), store)
    assert out.overall == pytest.approx(0.8) and not out.passed and out.round == 2 and out.next_round == 3


@pytest.mark.parametrize(("text", "why"), [
    ("Looks great to me!", "unparseable review"),
    (_review_json(1.5, 1, 1), "invalid review: accuracy: Input should be less than or equal to 1"),
    (json.dumps({"accuracy": 1, "completeness": 1}), "invalid review: relevance: Field required"),
])
def test_unparseable_or_out_of_range_reviews_fail_closed(store, finished, text, why):
    finished(synthesize=[reply("r")], review=[reply(text)])
    synthesize(SynthInput(run_id=RUN_ID), store)
    # a reply without valid scores is an error (never a silent 0), after the paid call's usage is recorded
    with pytest.raises(ReviewReplyError, match=why) as info:
        review(ReviewInput(run_id=RUN_ID), store)
    assert store.list_reviews(RUN_ID) == []
    assert store.get_run(RUN_ID).usage.output_tokens == 40  # synthesize + the rejected review
    assert store.get_messages(RUN_ID, "reviewer") == []  # not kept: a retry asks again
    # once the state machine's retries are spent, the round is recorded as failed, with the reason
    cause = json.dumps({"errorType": "ReviewReplyError", "errorMessage": str(info.value)})
    out = review(ReviewInput(run_id=RUN_ID, failed=StepFunctionsError(Error="ReviewReplyError", Cause=cause)), store)
    assert out.overall is None and not out.passed
    (stored,) = store.list_reviews(RUN_ID)
    assert stored.scores is None and stored.overall is None and not stored.passed
    assert why in stored.error and why in stored.feedback


def test_a_review_the_budget_cannot_pay_hands_the_report_to_a_person(store, finished):
    finished(budget=Budget(max_tokens=700), synthesize=[reply("r", input_tokens=600, output_tokens=20)],
             review=[reply(_review_json(0.1, 0.1, 0.1), input_tokens=10, output_tokens=20)])
    synthesize(SynthInput(run_id=RUN_ID), store)
    out = review(ReviewInput(run_id=RUN_ID), store)
    # the review call does not fit what is left: no call, the report is kept and handed off (not FAILED)
    assert out.budget_exhausted and out.handoff and not out.passed
    run = store.get_run(RUN_ID)
    assert run.budget_exhausted and run.usage.input_tokens == 600 and store.get_report(RUN_ID) == "r"
    (stored,) = store.list_reviews(RUN_ID)
    assert stored.scores is None and "budget exhausted" in stored.error
    assert [e.data for _, e in store.list_events(RUN_ID) if e.kind == "budget_exhausted"] == [{"where": "review"}]


def test_review_without_a_report_is_missing_input(store, finished):
    finished()
    with pytest.raises(MissingInputError, match="no report"):
        review(ReviewInput(run_id=RUN_ID), store)


def test_a_retried_synthesis_reuses_the_stored_reply(store, finished):
    from domain_helpers import FailOnce

    model = finished(synthesize=[reply("# Report v1"), reply("# another")])
    with pytest.raises(ConnectionError):
        synthesize(SynthInput(run_id=RUN_ID), FailOnce(store, "put_report"))
    out = synthesize(SynthInput(run_id=RUN_ID), store)
    assert store.get_report(RUN_ID) == "# Report v1" and out.chars == len("# Report v1")
    assert len(model.requests) == 1 and store.get_run(RUN_ID).usage.output_tokens == 20
    assert len(store.get_messages(RUN_ID, "synthesizer")) == 2


def test_a_retried_review_reuses_the_stored_reply(store, finished):
    from domain_helpers import FailOnce

    model = finished(synthesize=[reply("# Report Gentoo 5076.02")],
                     review=[reply(_review_json(0.9, 0.9, 0.9)), reply(_review_json(0.1, 0.1, 0.1))])
    synthesize(SynthInput(run_id=RUN_ID), store)
    with pytest.raises(ConnectionError):
        review(ReviewInput(run_id=RUN_ID, round=1), FailOnce(store, "put_review"))
    out = review(ReviewInput(run_id=RUN_ID, round=1), store)
    assert out.passed and out.overall == 0.9
    assert len(model.requests_for("review")) == 1 and len(store.get_messages(RUN_ID, "reviewer")) == 2
    assert sum(1 for _, e in store.list_events(RUN_ID) if e.kind == "model_turn") == 2
