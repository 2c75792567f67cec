"""A finished run's memory: it becomes an episode of its tenant and, when it succeeded, proposes facts.

Called by the memory function from the run state machine's Remember states (after the terminal status is written:
the episode records the true outcome). Never changes the run's outcome (the states catch every error).

- **Episode** (every terminal run: SUCCEEDED, FAILED, DECLINED): goal, dataset fingerprint, the plan's shape,
  the tools the workers called, the outcome (status, error or decline code, the reason in one line), the last review
  round (overall score, passed, feedback), cost and engine. Its id is derived from the run (finish time and id), so
  a retried state replaces it instead of adding a second one.
- **Facts** (SUCCEEDED runs only: a failed run's lessons are its episode, not facts): the worker's ``remember``
  calls that succeeded (origin ``tool``, confidence 0.9) and the facts the engine proposed from the goal and inputs
  (origin ``extracted``): :func:`propose_memory` runs first on the synthesizer function. With the LLM engine the
  planner already proposed them in its plan reply (``PlanFacts.propose_facts``: one sentence of its prompt instead
  of a separate ~300-token call, bench/prompt_tokens.py); when it did not (a replan, a semantic-cache hit) the
  engine asks its model once, through the ledger so a retry does not pay twice; the rule engine uses the rules of
  :mod:`stepcrew.memory.extract`. The memory function reads the stored proposal (the rules when there is none).

Everything passes the PII guard before it is stored (:class:`stepcrew.memory.service.Memory`). A run with
``memory: off`` records nothing.
"""

from __future__ import annotations

from stepcrew.domain.common import dataset_profile, emit
from stepcrew.domain.modelcall import exchange
from stepcrew.engines.base import MemoryReply, PlanReply
from stepcrew.engines.facts import MemoryFacts
from stepcrew.events import ProposeMemory, ProposeMemoryOutput, RecordRun, RememberFacts, RememberOutput
from stepcrew.memory.models import Episode, FactIn, MemoryRejectedError, PlanShape, RecordRunResult
from stepcrew.memory.service import Memory, episode_id, fingerprint
from stepcrew.models import Message, Run, RunStatus
from stepcrew.store.base import RunStore
from stepcrew.text import one_line

#: Conversation id of the extraction exchange (the ledger of its one model call).
EXTRACT_CONVERSATION = "memory-extract"
TOOL_CONFIDENCE = 0.9


def build_episode(store: RunStore, run: Run) -> tuple[Episode, dict[str, list[dict]]]:
    """The run's episode, and the ``remember`` calls with an ok result by sub-task (their arguments)."""
    plan = store.get_plan(run.run_id)
    steps = []
    tools_used: dict[str, None] = {}
    remembered: dict[str, list[dict]] = {}
    for sub in plan.subtasks if plan else []:
        steps.append(PlanShape.Step(id=sub.id, title=sub.title, role=sub.role, tools=list(sub.tools),
                                    depends_on=list(sub.depends_on)))
        messages = store.get_messages(run.run_id, sub.id)
        ok = {r.call_id for m in messages for r in m.tool_results if r.ok}
        for m in messages:
            for c in m.tool_calls:
                tools_used[c.name] = None
                if c.name == "remember" and c.call_id in ok:
                    remembered.setdefault(sub.id, []).append(c.arguments)
    reviews = store.list_reviews(run.run_id)
    last = reviews[-1] if reviews else None
    profile = dataset_profile(store, run.run_id)
    reason = None
    if run.error is not None:
        reason = f"{run.error.code}: {run.error.message}"
    elif run.decline is not None:
        reason = f"declined ({run.decline.code}): {run.decline.reason}"
    elif run.handoff_reason:
        reason = run.handoff_reason
    finished = run.finished_at or run.updated_at
    episode = Episode(
        memory_id=episode_id(finished, run.run_id), tenant=run.tenant, run_id=run.run_id, user=run.user,
        goal=run.goal, dataset=profile.dataset if profile else None,
        dataset_fingerprint=fingerprint(profile.dataset, [(c.name, c.type) for c in profile.columns])
        if profile else None,
        plan=PlanShape(steps=steps), tools_used=list(tools_used), status=run.status.value,
        error_code=run.error.code if run.error else (run.decline.code if run.decline else None),
        reason=one_line(reason, 500) if reason else None,
        review_overall=last.overall if last else None, review_passed=last.passed if last else None,
        feedback=one_line(last.feedback, 500) if last and last.feedback else None,
        cost_usd=round(run.usage.cost_usd, 6), engine=run.engine, created_at=finished)
    return episode, remembered


def _tool_facts(remembered: dict[str, list[dict]]) -> list[FactIn]:
    out = []
    for calls in remembered.values():
        for args in calls:
            try:
                out.append(FactIn(text=args.get("fact", ""), subject=args.get("subject"),
                                  kind=args.get("kind", "fact"), confidence=TOOL_CONFIDENCE))
            except ValueError:
                continue  # the tool validated it; a stored call that no longer validates is skipped
    return out


def propose_memory(inp: ProposeMemory, store: RunStore, engines=None) -> ProposeMemoryOutput:
    """The run's engine proposes facts from a SUCCEEDED run's goal and inputs (module docstring), stored in the
    ledger conversation ``memory-extract`` (a retried state reuses the stored reply: no second model call). Runs on
    the synthesizer function, which has the model providers; the memory function screens and writes the facts.
    A rule-engine run makes no call and stores nothing (the memory function applies the rules); facts the planner
    proposed with the accepted plan are stored as the proposal (``by="planner"``, no call). Skipped for a run
    that did not succeed
    or has memory off. Raises what the engine raises (a ModelError, BudgetExceededError): the state catches it and
    the memory function falls back to the rules."""
    from stepcrew.domain.common import engines_or_default
    from stepcrew.resilience.wiring import engine_for

    run = store.get_run(inp.run_id)
    if run.memory == "off" or run.status != RunStatus.SUCCEEDED:
        return ProposeMemoryOutput(run_id=run.run_id, facts=0, by="skipped")
    if run.provider == "rule" or run.engine_override:  # the rules need no call: the memory function applies them
        return ProposeMemoryOutput(run_id=run.run_id, facts=0, by="rules")
    planned = _planner_facts(store, run)
    if planned is not None:  # the planner proposed them with the plan (PlanFacts.propose_facts): no second call
        if not store.get_messages(run.run_id, EXTRACT_CONVERSATION):
            store.append_messages(run.run_id, EXTRACT_CONVERSATION, [Message(
                role="assistant", content=MemoryReply(facts=planned).model_dump_json())])
        return ProposeMemoryOutput(run_id=run.run_id, facts=len(planned), by="planner")
    facts = MemoryFacts(goal=run.goal, inputs=run.inputs)
    role = run.crew.synthesizer.model_copy(update={"model_tier": "fast"})
    engine = engine_for(engines_or_default(engines), run, store, retry_count=inp.retry_count)
    def call() -> MemoryReply:
        reply = engine.extract_memory(facts, role)
        for c in reply.calls:  # the run has finished: a proposal (even a cached one) never moves its degradation
            c.rung = None
        return reply

    called = exchange(store, run, conversation=EXTRACT_CONVERSATION, index=0, purpose="remember", facts=facts,
                      call=call, reply_type=MemoryReply)
    engine.accepted()  # a parsed proposal: the exact cache may keep it (the same goal and inputs propose the same)
    by = "stored" if called.replayed else "rules" if all(c.model == "rule-engine" for c in called.reply.calls) \
        else "model"
    return ProposeMemoryOutput(run_id=run.run_id, facts=len(called.reply.facts), by=by)


def _planner_facts(store: RunStore, run: Run) -> list | None:
    """The facts the accepted plan's reply proposed (the planner's last stored reply, when it holds a plan and was
    asked for facts); None when it was not asked (a replan, a semantic-cache hit, the rule engine) or its reply had no
    facts list; ``[]`` when it answered none."""
    from stepcrew.domain.planner import CONVERSATION as PLANNER

    replies = [m for m in store.get_messages(run.run_id, PLANNER) if m.role == "assistant"]
    if not replies:
        return None
    try:
        reply = PlanReply.model_validate_json(replies[-1].content)
    except ValueError:
        return None
    return list(reply.facts) if reply.plan is not None and reply.facts is not None else None


def _proposed(store: RunStore, run: Run) -> list[FactIn]:
    """The facts :func:`propose_memory` stored for the run, else (the proposal failed or never ran) the rules."""
    from stepcrew.memory.extract import extract_facts

    stored = store.get_messages(run.run_id, EXTRACT_CONVERSATION)
    replies = [m for m in stored if m.role == "assistant"]
    if not replies:
        return extract_facts(run.goal, run.inputs)
    reply = MemoryReply.model_validate_json(replies[-1].content)
    out = []
    for f in reply.facts:
        try:
            out.append(f if isinstance(f, FactIn) else FactIn.model_validate(f))
        except ValueError:
            continue
    return out


def record_run_memory(inp: RecordRun, store: RunStore, memory: Memory) -> RecordRunResult:
    """Record the finished run ``inp.run_id`` (module docstring). Returns what was written, or why nothing was
    (``skipped``: memory off, run not finished). Raises RunNotFoundError, GuardUnavailableError (no guard: nothing
    is written unscreened) or a StoreError."""
    run = store.get_run(inp.run_id)
    if run.memory == "off":
        return RecordRunResult(run_id=run.run_id, skipped="memory is off for this run")
    if not run.status.terminal:
        return RecordRunResult(run_id=run.run_id, skipped=f"the run is {run.status.value}, not finished")
    episode, remembered = build_episode(store, run)
    ep_id, evicted = memory.put_episode(episode)
    result = RecordRunResult(run_id=run.run_id, episode=ep_id)
    result.facts.evicted += evicted
    if run.status == RunStatus.SUCCEEDED:
        for origin, facts in (("tool", _tool_facts(remembered)), ("extracted", _proposed(store, run))):
            if not facts:
                continue
            written = memory.add_facts(run.tenant, facts, origin=origin, source_run=run.run_id, strict=False,
                                       user=run.user)
            result.facts.created += written.created
            result.facts.updated += written.updated
            result.facts.evicted += written.evicted
            for k, v in written.masked.items():
                result.facts.masked[k] = result.facts.masked.get(k, 0) + v
    emit(store, run.run_id, "memory_recorded", episode=ep_id, facts_created=len(result.facts.created),
         facts_updated=len(result.facts.updated), evicted=len(result.facts.evicted),
         masked=sum(result.facts.masked.values()))
    return result


def remember_facts(inp: RememberFacts, memory: Memory) -> RememberOutput:
    """Screen and store a person's facts for ``inp.tenant`` (``POST /memory`` through the memory function). A
    client mistake (a fact refused by the guard, a user id of another tenant) is an ``ok: false`` answer with
    nothing written; GuardUnavailableError and StoreError propagate (a 5xx: the caller may retry)."""
    try:
        result = memory.add_facts(inp.tenant, inp.facts, origin="explicit", user=inp.user)
    except (MemoryRejectedError, ValueError) as exc:
        return RememberOutput(ok=False, error={"type": type(exc).__name__, "message": str(exc)})
    return RememberOutput(ok=True, result=result.model_dump(mode="json"))
