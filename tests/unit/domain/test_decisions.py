"""A person's answers (stepcrew.domain.decisions) on an in-memory store: claims are given back on any failure,
reports are size-checked in bytes before anything changes, a local run with no live execution is finalized
directly, and a review that gives booleans for scores is not a review."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stepcrew.crew import load_crew
from stepcrew.domain.decisions import ReportTooLarge, answer_review
from stepcrew.engines.llm import parse_review_reply
from stepcrew.models import Review, ReviewDecision, Run, RunStatus, utcnow
from stepcrew.store.memory import MemoryRunStore


class Tasks:
    def __init__(self, live: bool = True) -> None:
        self.live, self.answers = live, []

    def has_live_execution(self, arn: str) -> bool:
        return self.live

    def send_task_success(self, token: str, output: dict) -> None:
        self.answers.append(("success", token))

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        self.answers.append(("failure", token, error))


@pytest.fixture
def store() -> MemoryRunStore:
    s = MemoryRunStore()
    s.create_run(Run(run_id="r1", tenant="acme", goal="g", crew=load_crew("default"), status=RunStatus.NEEDS_REVIEW,
                     approval_token="tok", review_deadline=utcnow() + timedelta(hours=1),
                     execution_arn="arn:aws:states:us-east-1:1:execution:run:r1"))
    s.put_report("r1", "# Draft")
    s.put_review("r1", Review(round=1, passed=False, overall=0.5))
    return s


def test_a_failure_after_the_claim_gives_the_claim_and_the_report_back(store, monkeypatch):
    tasks = Tasks()
    real_emit = store.add_event

    def boom(event):
        if event.kind == "review_decided":
            raise ConnectionError("store down")
        return real_emit(event)

    monkeypatch.setattr(store, "add_event", boom)
    with pytest.raises(ConnectionError):
        answer_review(store, tasks, "r1", "acme", ReviewDecision(accept=True), "# Fixed")
    run = store.get_run("r1")
    assert run.status == RunStatus.NEEDS_REVIEW and run.approval_token == "tok" and run.review_decision is None
    assert store.get_report("r1") == "# Draft" and tasks.answers == []
    monkeypatch.undo()
    answer_review(store, tasks, "r1", "acme", ReviewDecision(accept=True), "# Fixed")  # the retry works
    assert tasks.answers == [("success", "tok")] and store.get_report("r1") == "# Fixed"


def test_a_report_over_the_item_size_in_bytes_is_refused_before_anything_changes(store):
    with pytest.raises(ReportTooLarge):
        answer_review(store, Tasks(), "r1", "acme", ReviewDecision(accept=True), "€" * 150_000)  # 450 KB
    assert store.get_run("r1").status == RunStatus.NEEDS_REVIEW and store.get_report("r1") == "# Draft"


def test_a_run_whose_execution_is_gone_is_finalized_directly(store):
    tasks = Tasks(live=False)  # e.g. stepcrew dev restarted: the old token is dead
    run = answer_review(store, tasks, "r1", "acme", ReviewDecision(accept=True, comment="ok"))
    assert run.status == RunStatus.SUCCEEDED and tasks.answers == []


@pytest.mark.parametrize("text", ['{"accuracy": true, "completeness": true, "relevance": true}',
                                  '{"accuracy": "0.9", "completeness": 0.9, "relevance": 0.9}'])
def test_booleans_or_strings_are_not_scores(text):
    scores, _, error = parse_review_reply(text)
    assert scores is None and error
