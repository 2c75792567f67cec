"""Planner role: the run's goal -> a validated DAG of sub-tasks (:class:`~stepcrew.models.Plan`), or a decline.

The planner's engine (:mod:`stepcrew.engines`) sees the goal, the dataset's profile (the describe_dataset result
the run state machine fetched before planning), the workers and the tools. An invalid plan is not an exception:
the output says so (``valid`` false, ``error`` one line) and whether the state machine should ask again
(``retry``: ``attempt < MAX_PLAN_ATTEMPTS``), with the error fed back. A decline (the engine cannot answer this
goal) is recorded on the run and the output says ``declined``: the state machine ends the run DECLINED.
"""

from __future__ import annotations

from stepcrew.domain.common import (
    dataset_profile,
    emit,
    engines_or_default,
    load_active_run,
    logger,
    role_tool_errors,
    store_dataset_profile,
)
from stepcrew.domain.modelcall import exchange
from stepcrew.domain.recall import recall_for_run
from stepcrew.domain.replan import initial_version
from stepcrew.engines.base import EngineCall, PlanReply
from stepcrew.engines.facts import PlanFacts, WorkerInfo
from stepcrew.engines.resolve import EngineResolver
from stepcrew.resilience.wiring import embeddings_for, engine_for
from stepcrew.events import MAX_PLAN_ATTEMPTS, PlanInput, PlanOutput
from stepcrew.models import Crew, Plan, PlanValidationError, Run
from stepcrew.resilience.cache import SemanticPlanCache, plan_scope
from stepcrew.store.base import RunStore
from stepcrew.text import one_line
from stepcrew.tools.registry import known_tools

#: Conversation id of the planner's exchanges (one per attempt; a retried attempt reuses its stored reply, see
#: :func:`stepcrew.domain.modelcall.exchange`).
CONVERSATION = "planner"


def check_plan(reply: PlanReply, tools: set[str], crew: Crew) -> Plan:
    """The reply's plan, validated against the known tools and the crew's roles and their tools (a sequential
    crew's plan as a chain: :meth:`stepcrew.models.Plan.sequential`). Raises
    PlanValidationError with a one-line reason (the reply was no plan, or a rule is broken)."""
    if reply.plan is None:
        raise PlanValidationError(reply.error or "the reply held no plan")
    reply.plan.validate_rules(tools, {w.name for w in crew.workers})
    role_error = role_tool_errors(reply.plan, crew)
    if role_error:
        raise PlanValidationError(role_error)
    return reply.plan.sequential() if crew.process == "sequential" else reply.plan


def _semantic_cache(run: Run, store: RunStore, resolver: EngineResolver) -> SemanticPlanCache | None:
    """The run's plan cache (normalised goal; embeddings too when a threshold in [0, 1] is set), or None (a
    rule-engine run, caches off)."""
    from stepcrew.embeddings import DEFAULT_SEMANTIC_THRESHOLD

    if run.provider == "rule" or run.engine_override or not (run.routing.cache and run.routing.semantic_cache):
        return None
    threshold = run.routing.semantic_threshold
    threshold = DEFAULT_SEMANTIC_THRESHOLD if threshold is None else threshold
    return SemanticPlanCache(store, run.tenant, lambda: embeddings_for(resolver), threshold,
                             run.routing.cache_ttl_s)


def _semantic_hit(cache: SemanticPlanCache | None, goal: str, scope: str) -> PlanReply | None:
    """A cached valid plan of a similar goal (rung ``cached``, cache ``semantic``), or None."""
    if cache is None:
        return None
    try:
        found = cache.lookup(goal, scope)
    except Exception as exc:  # noqa: BLE001 - a cache never fails a run
        logger.warning("semantic cache lookup failed", extra={"error": type(exc).__name__})
        return None
    if found is None:
        return None
    body, score, kind = found
    reply = PlanReply.model_validate(body["reply"])
    reply.calls = [EngineCall(model="cache", rung="cached", cache="semantic",
                              route=f"plan cache ({kind} goal), similarity {score:.3f}",
                              saved_tokens=int(body.get("paid_tokens", 0)),
                              saved_cost_usd=float(body.get("paid_cost_usd", 0.0)))]
    return reply


def plan_run(inp: PlanInput, store: RunStore, engines: EngineResolver | None = None) -> PlanOutput:
    """Ask the crew's planner for a plan and validate it.

    Valid: the plan is stored (``put_plan``: one PENDING record per sub-task) and a ``plan_ready`` event lists
    ids, titles and dependencies. The tenant's memory is recalled first (:mod:`stepcrew.domain.recall`) and given
    to the engine as ``facts.memory``; the planner is told the tools of the crew's workers (not every registered
    tool: it may give a sub-task only tools of its role). Invalid: a ``plan_invalid`` event; ``retry`` is true while
    ``attempt < MAX_PLAN_ATTEMPTS`` (3). Declined: ``decline`` is stored on the run and ``declined`` is true.
    A replayed attempt reuses its stored reply (no second engine call). Raises RunNotActiveError,
    BudgetExceededError or a ModelError.
    """
    run = load_active_run(store, inp.run_id)
    if inp.dataset is not None and inp.dataset.ok:
        profile = store_dataset_profile(store, run.run_id, inp.dataset)
    else:
        profile = dataset_profile(store, run.run_id)
    crew = run.crew
    tools = known_tools()
    resolver = engines_or_default(engines)
    memory = recall_for_run(run, store, resolver)
    facts = PlanFacts(goal=run.goal, has_dataset=run.data is not None, dataset=profile,
                      inputs=run.inputs,
                      workers=[WorkerInfo(name=w.name, role=w.role, tools=list(w.tools)) for w in crew.workers],
                      tools=sorted({t for w in crew.workers for t in w.tools}), attempt=inp.attempt, previous_error=inp.previous_error,
                      memory=memory if memory is not None and not memory.empty else None,
                      propose_facts=run.memory != "off")
    engine = engine_for(resolver, run, store, retry_count=inp.retry_count)
    semantic = _semantic_cache(run, store, resolver) if inp.attempt == 1 else None
    scope = plan_scope(profile, facts.workers, facts.tools, facts.has_dataset, facts.inputs)

    def call() -> PlanReply:
        hit = _semantic_hit(semantic, run.goal, scope)
        if hit is not None:  # another goal's plan: its proposed facts are that goal's, never this run's
            return hit.model_copy(update={"facts": None})
        return engine.plan(facts, crew.planner)

    called = exchange(store, run, conversation=CONVERSATION, index=inp.attempt - 1, purpose="plan", facts=facts,
                      call=call, reply_type=PlanReply)
    reply = called.reply
    out = dict(run_id=run.run_id, attempt=inp.attempt, next_attempt=min(inp.attempt + 1, MAX_PLAN_ATTEMPTS))
    if reply.decline is not None:
        engine.accepted()
        store.update_run(run.run_id, {"decline": reply.decline})
        emit(store, run.run_id, "plan_invalid", attempt=inp.attempt, retry=False, declined=reply.decline.code)
        return PlanOutput(**out, valid=False, retry=False, declined=True, error=one_line(reply.decline.reason))
    try:
        plan = check_plan(reply, tools, crew)
    except PlanValidationError as exc:
        retry = inp.attempt < MAX_PLAN_ATTEMPTS
        emit(store, run.run_id, "plan_invalid", attempt=inp.attempt, retry=retry)
        return PlanOutput(**out, valid=False, retry=retry, error=one_line(str(exc)))
    engine.accepted()  # a valid plan: the exact cache may keep it (a rejected one is never replayed)
    if not (called.replayed and store.get_plan(run.run_id) == plan):
        store.put_plan(run.run_id, plan)  # a replay (Retry, resumed run) keeps the sub-tasks' progress
        store.put_plan_version(initial_version(run.run_id, plan))  # v1 (replans add v2...: domain.replan)
    if semantic is not None and not called.replayed and reply.calls and all(c.rung == "full" for c in reply.calls):
        paid = (sum(c.input_tokens + c.output_tokens for c in reply.calls), sum(c.cost_usd for c in reply.calls))
        semantic.remember(run.goal, scope, reply.model_dump(mode="json", exclude={"calls"}), paid)
    waves = plan.waves()
    emit(store, run.run_id, "plan_ready", attempt=inp.attempt, waves=waves,
         subtasks=[{"id": s.id, "title": s.title, "depends_on": list(s.depends_on)} for s in plan.subtasks])
    return PlanOutput(**out, valid=True, retry=False, waves=waves, subtask_count=len(plan.subtasks),
                      process=crew.process)
