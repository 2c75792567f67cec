"""Planner role: the run's goal -> a validated DAG of sub-tasks (:class:`~stepcrew.models.Plan`).

An invalid plan is not an exception: the output says so (``valid`` false, ``error`` one line) and whether the state
machine should ask again (``retry``: ``attempt < MAX_PLAN_ATTEMPTS``), with the error fed back into the prompt.
"""

from __future__ import annotations

from pydantic import ValidationError

from stepcrew.domain import prompts
from stepcrew.domain.common import emit, load_active_run, role_tool_errors
from stepcrew.domain.context import PlanContext, WorkerInfo
from stepcrew.domain.errors import describe_validation_error, one_line
from stepcrew.domain.modelcall import exchange
from stepcrew.events import MAX_PLAN_ATTEMPTS, PlanInput, PlanOutput
from stepcrew.models import Plan, PlanValidationError
from stepcrew.store.base import RunStore
from stepcrew.tools.registry import known_tools

#: Conversation id of the planner's exchanges (one per attempt, each a fresh prompt; a retried attempt reuses its
#: stored reply, see :func:`stepcrew.domain.modelcall.exchange`).
CONVERSATION = "planner"


def parse_plan(text: str, tools: set[str], roles: set[str]) -> Plan:
    """Parse and validate a planner reply. Raises PlanValidationError with a one-line reason (bad JSON, schema
    error, or a broken rule: ids, dependencies, cycle, unknown tools or roles)."""
    try:
        data = prompts.parse_json_reply(text)
        plan = Plan.model_validate(data)
    except prompts.JsonReplyError as exc:
        raise PlanValidationError(str(exc)) from exc
    except ValidationError as exc:
        raise PlanValidationError(describe_validation_error(exc, prefix="plan schema: ")) from exc
    plan.validate_rules(tools, roles)
    return plan


def plan_run(inp: PlanInput, store: RunStore) -> PlanOutput:
    """Ask the crew's planner for a plan and validate it.

    Valid: the plan is stored (``put_plan``: one PENDING record per sub-task) and a ``plan_ready`` event lists
    ids, titles and dependencies. Invalid: a ``plan_invalid`` event; ``retry`` is true while
    ``attempt < MAX_PLAN_ATTEMPTS`` (3). A replayed attempt reuses its stored reply (no second model call).
    Raises RunNotActiveError, BudgetExceededError or a ModelError.
    """
    run = load_active_run(store, inp.run_id)
    crew = run.crew
    tools = known_tools()
    ctx = PlanContext(goal=run.goal, has_dataset=run.data is not None, inputs=run.inputs,
                      workers=[WorkerInfo(name=w.name, role=w.role, tools=list(w.tools)) for w in crew.workers],
                      tools=sorted(tools), attempt=inp.attempt, previous_error=inp.previous_error)
    msgs = prompts.messages(crew.planner, prompts.plan_prompt(ctx))
    reply = exchange(store, run, crew.planner, conversation=CONVERSATION, index=inp.attempt - 1, purpose="plan",
                     messages=msgs, context=ctx.model_dump()).text
    try:
        plan = parse_plan(reply, tools, {w.name for w in crew.workers})
        role_error = role_tool_errors(plan, crew)
        if role_error:
            raise PlanValidationError(role_error)
    except PlanValidationError as exc:
        error = one_line(str(exc))
        retry = inp.attempt < MAX_PLAN_ATTEMPTS
        emit(store, run.run_id, "plan_invalid", attempt=inp.attempt, retry=retry)
        return PlanOutput(run_id=run.run_id, valid=False, attempt=inp.attempt,
                          next_attempt=min(inp.attempt + 1, MAX_PLAN_ATTEMPTS), retry=retry, error=error)
    store.put_plan(run.run_id, plan)
    waves = plan.waves()
    emit(store, run.run_id, "plan_ready", attempt=inp.attempt, waves=waves,
         subtasks=[{"id": s.id, "title": s.title, "depends_on": list(s.depends_on)} for s in plan.subtasks])
    return PlanOutput(run_id=run.run_id, valid=True, attempt=inp.attempt,
                      next_attempt=min(inp.attempt + 1, MAX_PLAN_ATTEMPTS), retry=False, waves=waves,
                      subtask_count=len(plan.subtasks))
