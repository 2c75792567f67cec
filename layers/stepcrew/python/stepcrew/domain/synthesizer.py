"""Synthesizer role: the sub-task outputs -> the run's Markdown report; in improve mode, the current report and a
review round's feedback -> a revised report. The report goes to the store; state only sees its size."""

from __future__ import annotations

from stepcrew.domain.common import (
    dataset_profile,
    emit,
    engines_or_default,
    load_active_run,
    require_plan,
    subtask_facts,
)
from stepcrew.domain.errors import BudgetExceededError, EmptyOutputError, MissingInputError
from stepcrew.domain.modelcall import exchange
from stepcrew.engines.base import ReportReply
from stepcrew.engines.facts import ReportFacts
from stepcrew.engines.resolve import EngineResolver
from stepcrew.resilience.wiring import engine_for
from stepcrew.events import SynthInput, SynthOutput
from stepcrew.models import FINAL_OUTPUT_MAX_BYTES, FINAL_OUTPUT_MAX_CHARS, Run, SubtaskStatus
from stepcrew.text import clip_bytes
from stepcrew.store.base import RunStore

CONVERSATION = "synthesizer"
_TRUNCATED = "\n\n[... report truncated at the size limit]"


def report_context(store: RunStore, run: Run) -> ReportFacts:
    """Goal, dataset profile and every sub-task's facts. MissingInputError if the plan is missing or a sub-task has
    not succeeded (a report is only written from complete results)."""
    plan = require_plan(store, run.run_id)
    pending = [r.subtask_id for r in store.list_subtasks(run.run_id) if r.status != SubtaskStatus.SUCCEEDED]
    if pending:
        raise MissingInputError(f"run {run.run_id}: sub-task(s) without a result: {', '.join(pending)}")
    return ReportFacts(goal=run.goal, has_dataset=run.data is not None, dataset=dataset_profile(store, run.run_id),
                       subtasks=subtask_facts(store, run.run_id, plan))


def cap_report(text: str, limit: int = FINAL_OUTPUT_MAX_CHARS, max_bytes: int = FINAL_OUTPUT_MAX_BYTES) -> str:
    """``text`` cut to ``limit`` characters (default FINAL_OUTPUT_MAX_CHARS, 200,000) and ``max_bytes`` UTF-8 bytes
    (default FINAL_OUTPUT_MAX_BYTES, 300,000; see :mod:`stepcrew.models`) with a visible marker."""
    if len(text) > limit:
        text = text[: limit - len(_TRUNCATED)] + _TRUNCATED
    return clip_bytes(text, max_bytes, _TRUNCATED)


def draft_source(run: Run, facts: ReportFacts) -> str | None:
    """The sub-task whose output is the report's first draft when the crew names ``report_from`` (a worker): that
    worker's last sub-task in plan order (a sub-task with no role is the first worker's) with a non-empty output;
    None (the synthesizer drafts) without ``report_from`` or when that worker has no such sub-task."""
    name = run.crew.report_from
    if name is None:
        return None
    first = run.crew.workers[0].name
    mine = [s for s in facts.subtasks if (s.role or first) == name and (s.output or "").strip()]
    return mine[-1].id if mine else None


def synthesize(inp: SynthInput, store: RunStore, engines: EngineResolver | None = None) -> SynthOutput:
    """Write (``draft``) or revise (``improve``, with the feedback of review round ``inp.round``) the report.

    A draft is the output of the crew's ``report_from`` sub-task when it names one (:func:`draft_source`: no model
    call; the event says ``source``). Stores it (``put_report``, a new version) and emits ``synthesized`` (mode,
    round, chars, version). A replayed
    event reuses the reply stored for its round (no second engine call). Raises MissingInputError (no plan,
    unfinished sub-tasks; improve: no report or no review of that round), EmptyOutputError, RunNotActiveError,
    BudgetExceededError or a ModelError.
    """
    run = load_active_run(store, inp.run_id)
    facts = report_context(store, run)
    if inp.mode != "improve" and (source := draft_source(run, facts)) is not None:
        # the crew's report_from: that sub-task's output already is the report; no model call (issue 11)
        report = cap_report(next(s.output for s in facts.subtasks if s.id == source).strip())
        version = store.put_report(run.run_id, report)
        emit(store, run.run_id, "synthesized", mode=inp.mode, round=inp.round, chars=len(report), version=version,
             source=source)
        return SynthOutput(run_id=run.run_id, mode=inp.mode, chars=len(report))
    if inp.mode == "improve":
        report = store.get_report(run.run_id)
        review = next((r for r in store.list_reviews(run.run_id) if r.round == inp.round), None)
        if not report or review is None:
            raise MissingInputError(f"run {run.run_id}: improve needs the report and review round {inp.round}")
        feedback = review.feedback or (f"The review gave no scores: {review.error}" if review.error else "")
        facts = facts.model_copy(update={"report": report, "feedback": feedback or "(no feedback given)"})
    engine = engine_for(engines_or_default(engines), run, store, retry_count=inp.retry_count)
    role = run.crew.synthesizer
    purpose = "improve" if inp.mode == "improve" else "synthesize"
    ask = (lambda: engine.improve(facts, role)) if inp.mode == "improve" else (lambda: engine.synthesize(facts, role))

    def call() -> ReportReply:  # capped before the ledger stores it: an oversized reply fits its item too
        reply = ask()
        reply.text = cap_report(reply.text.strip())
        return reply

    # the ledger key leaves out the current report: a retried improve (after its put_report) finds its reply
    key_facts = facts.model_copy(update={"report": None})
    try:
        reply = exchange(store, run, conversation=CONVERSATION, index=inp.round, purpose=purpose, facts=key_facts,
                         call=call, reply_type=ReportReply, keep=lambda r: bool(r.text.strip())).reply
    except BudgetExceededError:
        if inp.mode != "improve":
            raise  # no report exists yet: the run fails with the reason
        from stepcrew.domain.reviewer import mark_budget_exhausted

        mark_budget_exhausted(store, run, "improve")  # keep the report it has; the review hands it to a person
        current = store.get_report(run.run_id) or ""
        return SynthOutput(run_id=run.run_id, mode=inp.mode, chars=len(current))
    report = cap_report(reply.text.strip())
    if not report:
        raise EmptyOutputError(f"run {run.run_id}: the synthesizer returned an empty report ({inp.mode})")
    engine.accepted()
    version = store.put_report(run.run_id, report)
    emit(store, run.run_id, "synthesized", mode=inp.mode, round=inp.round, chars=len(report), version=version)
    return SynthOutput(run_id=run.run_id, mode=inp.mode, chars=len(report))
