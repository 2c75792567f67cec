"""Reviewer role: scores the current report on accuracy, completeness and relevance (each 0-1).

``overall`` is the mean of the three; ``passed`` = overall >= the run's threshold. A reply that is not the asked
JSON, or has a score outside 0-1, fails closed: all scores 0, not passed, and the feedback says why.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from stepcrew.domain import prompts
from stepcrew.domain.common import emit, load_active_run, tool_numbers
from stepcrew.domain.errors import MissingInputError, describe_validation_error
from stepcrew.domain.modelcall import budget_reached, exchange
from stepcrew.domain.synthesizer import report_context
from stepcrew.events import ReviewInput, ReviewOutput
from stepcrew.models import CriterionScores, Review, Score
from stepcrew.store.base import RunStore

CONVERSATION = "reviewer"
_FEEDBACK_MAX = 4000  # Review.feedback's limit


class _ReviewReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    accuracy: Score
    completeness: Score
    relevance: Score
    feedback: str = ""


def parse_review(text: str, round_: int, threshold: float) -> Review:
    """A :class:`Review` from a reviewer reply; fails closed (scores 0, not passed, feedback = the reason) when
    the reply holds no JSON object or a score is missing or outside 0-1."""
    try:
        reply = _ReviewReply.model_validate(prompts.parse_json_reply(text))
    except prompts.JsonReplyError as exc:
        return _rejected(round_, f"unparseable review: {exc}")
    except ValidationError as exc:
        return _rejected(round_, describe_validation_error(exc, prefix="invalid review: "))
    scores = CriterionScores(accuracy=reply.accuracy, completeness=reply.completeness, relevance=reply.relevance)
    overall = round((reply.accuracy + reply.completeness + reply.relevance) / 3, 4)
    return Review(round=round_, scores=scores, overall=overall, passed=overall >= threshold,
                  feedback=reply.feedback.strip()[:_FEEDBACK_MAX])


def _rejected(round_: int, reason: str) -> Review:
    return Review(round=round_, scores=CriterionScores(accuracy=0, completeness=0, relevance=0), overall=0,
                  passed=False, feedback=f"The review was rejected and scored 0 ({reason})."[:_FEEDBACK_MAX])


def review(inp: ReviewInput, store: RunStore) -> ReviewOutput:
    """Review round ``inp.round`` of the run's report: store it (``put_review``), emit ``review`` (scores only).

    ``budget_exhausted`` is true when the run's usage has reached a budget cap (no improvement round should
    start). A replayed event reuses the reply stored for its round (no second model call). Raises
    MissingInputError (no report, unfinished sub-tasks), RunNotActiveError, BudgetExceededError or a ModelError.
    """
    run = load_active_run(store, inp.run_id)
    report = store.get_report(run.run_id)
    if not report:
        raise MissingInputError(f"run {run.run_id} has no report to review")
    ctx = report_context(store, run)
    ctx = ctx.model_copy(update={"report": report, "tool_numbers": tool_numbers(ctx.subtasks)})
    role = run.crew.reviewer
    msgs = prompts.messages(role, prompts.review_prompt(ctx))
    reply = exchange(store, run, role, conversation=CONVERSATION, index=inp.round - 1, purpose="review",
                     messages=msgs, context=ctx.model_dump())
    result = parse_review(reply.text, inp.round, run.review_config.threshold)
    store.put_review(run.run_id, result)
    s = result.scores
    emit(store, run.run_id, "review", round=inp.round, overall=result.overall, passed=result.passed,
         accuracy=s.accuracy, completeness=s.completeness, relevance=s.relevance)
    return ReviewOutput(run_id=run.run_id, round=inp.round, next_round=inp.round + 1, overall=result.overall,
                        passed=result.passed, budget_exhausted=budget_reached(run.budget, reply.usage))
