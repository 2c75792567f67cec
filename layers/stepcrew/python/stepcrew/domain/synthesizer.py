"""Synthesizer role: the sub-task outputs -> the run's Markdown report; in improve mode, the current report and a
review round's feedback -> a revised report. The report goes to the store; state only sees its size."""

from __future__ import annotations

from stepcrew.domain import prompts
from stepcrew.domain.common import emit, load_active_run, require_plan, subtask_facts
from stepcrew.domain.context import ReportContext
from stepcrew.domain.errors import EmptyOutputError, MissingInputError
from stepcrew.domain.modelcall import exchange
from stepcrew.events import SynthInput, SynthOutput
from stepcrew.models import FINAL_OUTPUT_MAX_CHARS, Run, SubtaskStatus
from stepcrew.store.base import RunStore

CONVERSATION = "synthesizer"
_TRUNCATED = "\n\n[... report truncated at the size limit]"


def report_context(store: RunStore, run: Run) -> ReportContext:
    """Goal and every sub-task's facts. MissingInputError if the plan is missing or a sub-task has not succeeded
    (a report is only written from complete results)."""
    plan = require_plan(store, run.run_id)
    pending = [r.subtask_id for r in store.list_subtasks(run.run_id) if r.status != SubtaskStatus.SUCCEEDED]
    if pending:
        raise MissingInputError(f"run {run.run_id}: sub-task(s) without a result: {', '.join(pending)}")
    return ReportContext(goal=run.goal, has_dataset=run.data is not None,
                         subtasks=subtask_facts(store, run.run_id, plan))


def cap_report(text: str) -> str:
    """``text`` cut to FINAL_OUTPUT_MAX_CHARS (200,000, see :mod:`stepcrew.models`) with a visible marker."""
    if len(text) <= FINAL_OUTPUT_MAX_CHARS:
        return text
    return text[: FINAL_OUTPUT_MAX_CHARS - len(_TRUNCATED)] + _TRUNCATED


def synthesize(inp: SynthInput, store: RunStore) -> SynthOutput:
    """Write (``draft``) or revise (``improve``, with the feedback of review round ``inp.round``) the report.

    Stores it (``put_report``, a new version) and emits ``synthesized`` (mode, round, chars, version). A replayed
    event reuses the reply stored for its round (no second model call). Raises
    MissingInputError (no plan, unfinished sub-tasks; improve: no report or no review of that round),
    EmptyOutputError, RunNotActiveError, BudgetExceededError or a ModelError.
    """
    run = load_active_run(store, inp.run_id)
    ctx = report_context(store, run)
    if inp.mode == "improve":
        report = store.get_report(run.run_id)
        review = next((r for r in store.list_reviews(run.run_id) if r.round == inp.round), None)
        if not report or review is None:
            raise MissingInputError(f"run {run.run_id}: improve needs the report and review round {inp.round}")
        ctx = ctx.model_copy(update={"report": report, "feedback": review.feedback or "(no feedback given)"})
        user = prompts.improve_prompt(ctx)
    else:
        user = prompts.synth_prompt(ctx)
    role = run.crew.synthesizer
    msgs = prompts.messages(role, user)
    purpose = "improve" if inp.mode == "improve" else "synthesize"
    report = exchange(store, run, role, conversation=CONVERSATION, index=inp.round, purpose=purpose, messages=msgs,
                      context=ctx.model_dump(), keep=lambda text: cap_report(text.strip())).text
    if not report:
        raise EmptyOutputError(f"run {run.run_id}: the synthesizer returned an empty report ({inp.mode})")
    version = store.put_report(run.run_id, report)
    emit(store, run.run_id, "synthesized", mode=inp.mode, round=inp.round, chars=len(report), version=version)
    return SynthOutput(run_id=run.run_id, mode=inp.mode, chars=len(report))
