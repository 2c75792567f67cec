"""Reviewer role: scores the current report on accuracy, completeness and relevance (each 0-1).

``overall`` is the mean of the three; ``passed`` = overall >= the run's threshold. The engine's reply is parsed
strictly: a reply with no valid scores raises :class:`ReviewReplyError` (after its usage is recorded), which the
state machine retries; when the retries are spent it calls :func:`review` again with ``failed`` set, and the round
is recorded as failed with the reason (``scores`` None, ``passed`` false): never a silent 0.
"""

from __future__ import annotations

from stepcrew.domain.common import emit, engines_or_default, load_active_run
from stepcrew.domain.errors import BudgetExceededError, DomainError, MissingInputError
from stepcrew.domain.finalize import lambda_error
from stepcrew.domain.modelcall import budget_reached, exchange
from stepcrew.domain.synthesizer import report_context
from stepcrew.engines.base import ReviewReply
from stepcrew.engines.facts import tool_numbers
from stepcrew.engines.resolve import EngineResolver
from stepcrew.resilience.wiring import engine_for
from stepcrew.events import ReviewInput, ReviewOutput
from stepcrew.models import Message, Review, Run
from stepcrew.store.base import RunStore
from stepcrew.text import one_line

CONVERSATION = "reviewer"
#: One message per reply of a round that held no valid scores (so the ladder can tell the state's ReviewReplyError
#: retries from its transient ones: both count in $$.State.RetryCount).
INVALID_CONVERSATION = "reviewer.invalid"


def _invalid_replies(store: RunStore, run_id: str, round_: int) -> int:
    return sum(1 for m in store.get_messages(run_id, INVALID_CONVERSATION) if m.content == f"round {round_}")
_FEEDBACK_MAX = 4000  # Review.feedback's limit


class ReviewReplyError(DomainError):
    """The reviewer's reply held no valid scores (no JSON object, a missing score, a score outside 0-1). Retried by
    the state machine; then the round is recorded as failed with this reason."""


def _output(inp: ReviewInput, result: Review, budget_exhausted: bool, handoff: bool = False) -> ReviewOutput:
    return ReviewOutput(run_id=inp.run_id, round=inp.round, next_round=inp.round + 1, overall=result.overall,
                        passed=result.passed and not handoff, budget_exhausted=budget_exhausted, handoff=handoff)


def _handoff_reason(run: Run) -> str | None:
    if run.budget_exhausted:
        return "budget exhausted: the report is handed to a person unreviewed"
    return run.handoff_reason


def _not_reviewed(inp: ReviewInput, store: RunStore, run: Run, reason: str) -> ReviewOutput:
    """Record round ``inp.round`` as not reviewed (``reason``) and hand the run to a person."""
    result = Review(round=inp.round, passed=False, error=one_line(reason, 2000),
                    feedback=f"Not reviewed: {reason}.")
    store.put_review(run.run_id, result)
    emit(store, run.run_id, "review", round=inp.round, overall=None, passed=False, error="handoff")
    return _output(inp, result, run.budget_exhausted, handoff=True)


def mark_budget_exhausted(store: RunStore, run: Run, where: str) -> Run:
    """Flag the run ``budget_exhausted`` (event ``budget_exhausted``): it ends with the report it has, handed to a
    person, not FAILED."""
    emit(store, run.run_id, "budget_exhausted", where=where)
    return store.update_run(run.run_id, {"budget_exhausted": True})


def _failed_round(inp: ReviewInput, store: RunStore) -> ReviewOutput:
    run = load_active_run(store, inp.run_id)
    error = lambda_error(inp.failed.Cause) if inp.failed else None
    reason = one_line(error[1] if error else (inp.failed.Cause or inp.failed.Error), 2000)
    result = Review(round=inp.round, passed=False, error=reason,
                    feedback=f"The review round gave no valid scores ({reason}).")
    store.put_review(run.run_id, result)
    emit(store, run.run_id, "review", round=inp.round, overall=None, passed=False,
         error=error[0] if error else inp.failed.Error)
    return _output(inp, result, budget_reached(run.budget, run.usage), handoff=_handoff_reason(run) is not None)


def review(inp: ReviewInput, store: RunStore, engines: EngineResolver | None = None) -> ReviewOutput:
    """Review round ``inp.round`` of the run's report: store it (``put_review``), emit ``review`` (scores only).

    ``budget_exhausted`` is true when the run's usage has reached a budget cap (no improvement round should
    start). A replayed event reuses the reply stored for its round (no second engine call). With ``inp.failed``
    (the state machine's retries of this round are spent) the round is recorded as failed. Raises
    ReviewReplyError, MissingInputError (no report, unfinished sub-tasks), RunNotActiveError, BudgetExceededError
    or a ModelError.
    """
    if inp.failed is not None:
        return _failed_round(inp, store)
    run = load_active_run(store, inp.run_id)
    report = store.get_report(run.run_id)
    if not report:
        raise MissingInputError(f"run {run.run_id} has no report to review")
    if run.budget_exhausted:
        return _not_reviewed(inp, store, run, _handoff_reason(run) or "")
    facts = report_context(store, run)
    facts = facts.model_copy(update={"report": report, "tool_numbers": tool_numbers(facts.subtasks)})
    role = run.crew.reviewer
    # $$.State.RetryCount counts the retries of both Retriers of the state: the transient one's own count is what
    # is left after the ReviewReplyError retries of this round (recorded below when they are raised)
    invalid = _invalid_replies(store, run.run_id, inp.round)
    engine = engine_for(engines_or_default(engines), run, store, retry_count=max(0, inp.retry_count - invalid))
    try:
        called = exchange(store, run, conversation=CONVERSATION, index=inp.round - 1, purpose="review", facts=facts,
                          call=lambda: engine.review(facts, role), reply_type=ReviewReply,
                          keep=lambda r: r.error is None and r.scores is not None)
    except BudgetExceededError:
        run = mark_budget_exhausted(store, run, "review")
        return _not_reviewed(inp, store, run, _handoff_reason(run) or "")
    reply = called.reply
    if reply.error is not None or reply.scores is None:
        store.append_messages(run.run_id, INVALID_CONVERSATION, [Message(role="user", content=f"round {inp.round}")])
        raise ReviewReplyError(f"run {run.run_id} review round {inp.round}: {reply.error or 'no scores'}")
    engine.accepted()
    s = reply.scores
    overall = round((s.accuracy + s.completeness + s.relevance) / 3, 4)
    result = Review(round=inp.round, scores=s, overall=overall, passed=overall >= run.review_config.threshold,
                    feedback=reply.feedback.strip()[:_FEEDBACK_MAX])
    store.put_review(run.run_id, result)
    emit(store, run.run_id, "review", round=inp.round, overall=result.overall, passed=result.passed,
         accuracy=s.accuracy, completeness=s.completeness, relevance=s.relevance)
    run = store.get_run(run.run_id)  # a worker may have set handoff_reason; the ladder may have degraded
    reason = _handoff_reason(run)
    return _output(inp, result, budget_reached(run.budget, called.usage), handoff=reason is not None)
