"""Honest outcomes through the real run.asl.json on the local runtime: a report that fails its last review round
is never a success (FAILED ReviewFailed, or NEEDS_REVIEW handed to a person who accepts, rejects, or lets it
expire), a reviewer reply without scores is retried then recorded as a failed round, a goal the rule engine cannot
answer ends DECLINED, and a dataset that is not what its name says fails before any model call.
"""

from __future__ import annotations

import json
import time

import pytest

from stepcrew.crew import load_crew
from stepcrew.data import DEMO_DATASET
from stepcrew.domain.decisions import DecisionClosed, NotWaiting, answer_review
from stepcrew.engines.testing import ScriptedModel, call_tool, label, reply
from stepcrew.llm import registry
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import ReviewDecision, RunRequest, RunStatus
from stepcrew.service import create_run, run_result, start_run
from stepcrew.store.base import RunNotFoundError

pytestmark = pytest.mark.integration

PROVIDER = "scripted-outcomes"
PLAN = json.dumps({"subtasks": [{"id": "calc", "title": "Compute", "instructions": "Compute 6 * 7.",
                                 "tools": ["calculator"], "role": "data_analyst"}]})


def review_json(score: float) -> str:
    return json.dumps({"accuracy": score, "completeness": score, "relevance": score, "feedback": "needs work"})


@pytest.fixture(scope="module")
def rt():
    with LocalRuntime(fast_waits=True) as runtime:
        yield runtime


@pytest.fixture(autouse=True)
def _unregister():
    yield
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def scripted(reviews: list) -> ScriptedModel:
    """A crew that computes 6 * 7 and writes '42'; the reviewer plays ``reviews`` (texts) in order."""
    return ScriptedModel(by_purpose={
        "plan": [reply(PLAN)],
        "act": [call_tool("calculator", {"expression": "6 * 7"}), reply("6 * 7 = 42")],
        "synthesize": [reply("# Report\n6 * 7 = 42")],
        "improve": [reply("# Report (revised)\n6 * 7 = 42")] * 3,
        "review": [reply(text) for text in reviews]})


def start(rt: LocalRuntime, model, *, review: dict | None = None, tenant: str = "acme", **request) -> str:
    registry.register(PROVIDER, lambda tier: model)
    request.setdefault("routing", {"cache": False})  # reach the scripted model (the cache: test_resilience_ladder)
    req = RunRequest(goal="Compute 6 times 7", provider=PROVIDER, review=review or {}, tenant=tenant, **request)
    run = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt)
    return run.run_id


def wait_status(rt: LocalRuntime, run_id: str, statuses: set[RunStatus], timeout_s: float = 60) -> RunStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = rt.store.get_run(run_id).status
        if status in statuses:
            return status
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} is {rt.store.get_run(run_id).status}, never one of {statuses}")


def wait_event(rt: LocalRuntime, run_id: str, kind: str, timeout_s: float = 60) -> None:
    """Until the run has an event of ``kind``: the approval function writes the status first and then its event
    (an event reports what is stored), so a reader that saw the status may read the events a moment early."""
    deadline = time.monotonic() + timeout_s
    while kind not in [e.kind for _, e in rt.store.list_events(run_id)]:
        assert time.monotonic() < deadline, f"run {run_id} has no {kind} event"
        time.sleep(0.05)


def execution_status(rt: LocalRuntime, run_id: str) -> str:
    arn = rt.store.get_run(run_id).execution_arn
    return rt.wait(arn, timeout_s=60)


def test_a_report_failing_every_round_with_on_fail_fail_ends_failed_with_the_scores(rt):
    # Given: both review rounds score 0.79 against the 0.8 threshold
    run_id = start(rt, scripted([review_json(0.79), review_json(0.79)]), review={"on_fail": "fail"})
    # When the run ends
    assert execution_status(rt, run_id) == "FAILED"
    result = run_result(rt.store, run_id)
    # Then: FAILED ReviewFailed naming the last round's score and the threshold, never SUCCEEDED
    assert result.status == RunStatus.FAILED
    assert result.error.code == "ReviewFailed"
    assert "0.79" in result.error.message and "0.80" in result.error.message and "round (2)" in result.error.message
    assert [r.passed for r in result.review.rounds] == [False, False]


def test_a_failed_review_is_handed_off_and_a_person_accepts_it(rt):
    # Given: the default on_fail (handoff) and two failing rounds
    run_id = start(rt, scripted([review_json(0.5), review_json(0.6)]))
    assert wait_status(rt, run_id, {RunStatus.NEEDS_REVIEW, RunStatus.FAILED, RunStatus.SUCCEEDED}) == \
        RunStatus.NEEDS_REVIEW
    run = rt.store.get_run(run_id)
    # Then: the report is kept and shown, a task token is stored, the deadline is ~24 h away, an event is emitted
    result = run_result(rt.store, run_id)
    assert result.final_output.startswith("# Report (revised)") and run.approval_token
    assert 86_000 < (run.review_deadline - run.updated_at).total_seconds() <= 86_400
    wait_event(rt, run_id, "needs_review")
    # When a person accepts, with a corrected report
    answer_review(rt.store, rt, run_id, "acme", ReviewDecision(accept=True, comment="checked by hand"),
                  "# Report (checked)\n6 * 7 = 42")
    # Then the execution finishes and the run SUCCEEDED with the person's decision and report
    assert execution_status(rt, run_id) == "SUCCEEDED"
    result = run_result(rt.store, run_id)
    assert result.status == RunStatus.SUCCEEDED
    assert result.review.decision.accept and result.review.decision.comment == "checked by hand"
    assert result.final_output == "# Report (checked)\n6 * 7 = 42"
    # and a second answer is refused, nothing changed
    with pytest.raises(NotWaiting):
        answer_review(rt.store, rt, run_id, "acme", ReviewDecision(accept=False))
    assert rt.store.get_run(run_id).status == RunStatus.SUCCEEDED


def test_a_handed_off_report_rejected_by_a_person_fails_the_run(rt):
    run_id = start(rt, scripted([review_json(0.1), review_json(0.1)]))
    wait_status(rt, run_id, {RunStatus.NEEDS_REVIEW})
    # Given another tenant: it cannot see or answer the run
    with pytest.raises(RunNotFoundError):
        answer_review(rt.store, rt, run_id, "other-tenant", ReviewDecision(accept=True))
    answer_review(rt.store, rt, run_id, "acme", ReviewDecision(accept=False, comment="the figures are wrong"))
    assert execution_status(rt, run_id) == "FAILED"
    result = run_result(rt.store, run_id)
    assert result.status == RunStatus.FAILED and result.error.code == "ReviewRejected"
    assert "the figures are wrong" in result.error.message and result.final_output is None


def test_a_hand_off_nobody_answers_expires_into_review_timed_out(rt):
    run_id = start(rt, scripted([review_json(0.2)]), review={"max_rounds": 1, "handoff_timeout_s": 1})
    wait_status(rt, run_id, {RunStatus.NEEDS_REVIEW})
    # When nobody answers within the timeout, the state machine's TimeoutSecondsPath fires
    assert execution_status(rt, run_id) == "FAILED"
    result = run_result(rt.store, run_id)
    assert result.status == RunStatus.FAILED and result.error.code == "ReviewTimedOut"
    with pytest.raises(NotWaiting):
        answer_review(rt.store, rt, run_id, "acme", ReviewDecision(accept=True))


def test_an_answer_after_the_deadline_of_a_dead_local_run_expires_it(rt):
    # Given a run left NEEDS_REVIEW whose execution is gone (its process ended) and whose deadline passed
    run_id = start(rt, scripted([review_json(0.2)]), review={"max_rounds": 1, "handoff_timeout_s": 3600})
    wait_status(rt, run_id, {RunStatus.NEEDS_REVIEW})
    from datetime import timedelta

    from stepcrew.models import utcnow

    rt.store.update_run(run_id, {"review_deadline": utcnow() - timedelta(seconds=1)})
    # When a person answers with no execution to resume
    with pytest.raises(DecisionClosed):
        answer_review(rt.store, None, run_id, "acme", ReviewDecision(accept=True))
    # Then the run is FAILED ReviewTimedOut, not accepted
    result = run_result(rt.store, run_id)
    assert result.status == RunStatus.FAILED and result.error.code == "ReviewTimedOut"
    rt.sfn.stop_execution(executionArn=rt.store.get_run(run_id).execution_arn)


def test_a_reviewer_reply_without_scores_is_retried_then_recorded_as_a_failed_round(rt):
    # Given: round 1's reviewer replies three times without valid scores (1 try + 2 ASL retries), round 2 passes
    model = scripted(["no json here", '{"accuracy": 2}', "still nothing", review_json(0.95)])
    run_id = start(rt, model)
    assert execution_status(rt, run_id) == "SUCCEEDED"
    rounds = rt.store.list_reviews(run_id)
    # Then: round 1 is a failed round with the reason (no silent 0), round 2 passed after an improvement
    assert rounds[0].scores is None and rounds[0].overall is None and not rounds[0].passed
    assert "no valid" in rounds[0].feedback or "invalid review" in (rounds[0].error or "") \
        or "unparseable" in (rounds[0].error or "")
    assert rounds[1].passed and rounds[1].overall == 0.95
    assert len([r for r in model.requests if label(r).purpose == "review"]) == 4
    assert run_result(rt.store, run_id).status == RunStatus.SUCCEEDED


def test_the_rule_engine_declines_a_forecast_through_the_state_machine(rt):
    req = RunRequest(goal="Forecast next year's average body mass of the penguins.", provider="rule",
                     data=DEMO_DATASET.as_uri(), tenant="acme")
    run = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt)
    assert rt.wait(run.execution_arn, timeout_s=60) == "SUCCEEDED"
    result = run_result(rt.store, run.run_id)
    assert result.status == RunStatus.DECLINED and result.decline.code == "forecast"
    assert "model provider" in result.decline.reason and result.final_output is None
    assert result.plan.subtasks == [] and result.review.rounds == []


def test_a_binary_file_named_csv_fails_the_run_before_any_model_call(rt, tmp_path):
    bad = tmp_path / "image.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    model = ScriptedModel()  # any model call would exhaust it
    registry.register(PROVIDER, lambda tier: model)
    req = RunRequest(goal="Summarise the data", provider=PROVIDER, data=bad.as_uri(), tenant="acme",
                     routing={"cache": False})
    run = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt)
    assert rt.wait(run.execution_arn, timeout_s=60) == "FAILED"
    result = run_result(rt.store, run.run_id)
    assert result.status == RunStatus.FAILED and result.error.code == "DatasetError"
    assert "binary" in result.error.message and model.requests == []


def test_a_hand_off_publishes_stepcrew_run_needs_review_to_eventbridge(rt):
    # Given: a rule on the default bus that routes the hand-off event to a queue (how a team would route it)
    sqs, events = rt.client("sqs"), rt.client("events")
    queue_url = sqs.create_queue(QueueName="needs-review")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="needs-review", EventPattern=json.dumps({"source": ["stepcrew"],
                                                                 "detail-type": ["stepcrew.run.needs_review"]}))
    events.put_targets(Rule="needs-review", Targets=[{"Id": "q", "Arn": queue_arn}])
    # When a run is handed off
    run_id = start(rt, scripted([review_json(0.3)]), review={"max_rounds": 1})
    wait_status(rt, run_id, {RunStatus.NEEDS_REVIEW})
    # Then the event names the run, its tenant and the failed round, and carries no task token
    # (published right after the status is written: poll the queue a little)
    mine, deadline = [], time.monotonic() + 20
    while not mine and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        mine += [d for d in (json.loads(m["Body"])["detail"] for m in messages) if d["run_id"] == run_id]
    assert len(mine) == 1 and mine[0]["tenant"] == "acme" and mine[0]["reason"] == "review_failed"
    assert mine[0]["overall"] == 0.3 and mine[0]["threshold"] == 0.8
    assert rt.store.get_run(run_id).approval_token not in json.dumps(mine[0])
    answer_review(rt.store, rt, run_id, "acme", ReviewDecision(accept=False))
    assert execution_status(rt, run_id) == "FAILED"
