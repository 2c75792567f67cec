"""Small helpers shared by the role functions: progress events, run and plan loading, a sub-task's worker and
allowed tools, and the facts (outputs, tool results) the later roles read from the store."""

from __future__ import annotations

import logging
from typing import Any

from stepcrew.domain.errors import MissingInputError, RunNotActiveError
from stepcrew.engines.facts import DatasetProfile, SubtaskFacts, facts_of, tool_facts
from stepcrew.engines.resolve import EngineResolver
from stepcrew.models import (
    AgentRole,
    Crew,
    EventKind,
    Message,
    Plan,
    ProgressEvent,
    Run,
    RunStatus,
    SubTask,
    ToolResult,
)
from stepcrew.store.base import RunStore

# A child of "stepcrew", the package logger the handlers configure (copy_config_to_registered_loggers).
logger = logging.getLogger("stepcrew.domain")

#: Statuses a run can still fail from (every non-terminal one).
ACTIVE_STATUSES = tuple(s for s in RunStatus if not s.terminal)
#: Conversation holding the dataset's profile: the describe_dataset result the run state machine got before planning.
DATASET_CONVERSATION = "dataset"

_default_engines: EngineResolver | None = None


def engines_or_default(engines: EngineResolver | None) -> EngineResolver:
    """``engines``, else one process-wide :class:`EngineResolver` on the provider registry (handlers pass theirs)."""
    global _default_engines
    if engines is not None:
        return engines
    if _default_engines is None:
        _default_engines = EngineResolver()
    return _default_engines


def store_dataset_profile(store: RunStore, run_id: str, result: ToolResult) -> DatasetProfile | None:
    """Keep the run's dataset profile (a successful describe_dataset result) once, as conversation ``dataset``;
    returns the profile kept (the stored one when a replayed planner event finds it already there)."""
    stored = store.get_messages(run_id, DATASET_CONVERSATION)
    if not stored:
        store.append_messages(run_id, DATASET_CONVERSATION, [Message(role="tool", tool_results=[result])])
        stored = [Message(role="tool", tool_results=[result])]
    return _profile_of(stored)


def _profile_of(messages: list[Message]) -> DatasetProfile | None:
    for m in messages:
        for r in m.tool_results:
            if r.ok and isinstance(r.content, dict):
                return DatasetProfile.model_validate(r.content)
    return None


def dataset_profile(store: RunStore, run_id: str) -> DatasetProfile | None:
    """The run's dataset profile stored by the planner, or None (no dataset, or not profiled)."""
    return _profile_of(store.get_messages(run_id, DATASET_CONVERSATION))


def emit(store: RunStore, run_id: str, kind: EventKind, subtask_id: str | None = None, **data: Any) -> None:
    """Append a progress event. ``data`` holds ids, names and numbers only (never prompts or outputs)."""
    store.add_event(ProgressEvent(run_id=run_id, kind=kind, subtask_id=subtask_id, data=data))
    logger.info("event %s", kind, extra={"run_id": run_id, "subtask_id": subtask_id})


def load_active_run(store: RunStore, run_id: str) -> Run:
    """The run, unless it is already terminal (then RunNotActiveError: a cancelled or finished run does no
    more work). Raises RunNotFoundError from the store."""
    run = store.get_run(run_id)
    if run.status.terminal:
        raise RunNotActiveError(f"run {run_id} is {run.status.value}")
    return run


def require_plan(store: RunStore, run_id: str) -> Plan:
    """The run's stored plan; MissingInputError if the planner has not stored one."""
    plan = store.get_plan(run_id)
    if plan is None:
        raise MissingInputError(f"run {run_id} has no plan")
    return plan


def worker_for(crew: Crew, subtask: SubTask) -> AgentRole:
    """The worker role of a sub-task: ``subtask.role`` or, when empty, the crew's first worker. KeyError for an
    unknown role (the planner validates roles, so this means a corrupted plan)."""
    return crew.worker(subtask.role) if subtask.role else crew.workers[0]


def allowed_tools(subtask: SubTask, role: AgentRole) -> list[str]:
    """Tools a sub-task may call: its own ``tools`` that its role has (in the sub-task's order), or all the
    role's tools when the sub-task names none."""
    if not subtask.tools:
        return list(role.tools)
    return [t for t in subtask.tools if t in role.tools]


def role_tool_errors(plan: Plan, crew: Crew) -> str | None:
    """The first sub-task that lists a tool its worker role does not have, as a one-line error, or None."""
    for s in plan.subtasks:
        role = worker_for(crew, s)
        bad = [t for t in s.tools if t not in role.tools]
        if bad:
            return (f"sub-task {s.id!r} gives role {role.name!r} tool(s) it does not have: {', '.join(bad)}; "
                    f"{role.name} has: {', '.join(role.tools) or 'no tools'}")
    return None


def subtask_facts(store: RunStore, run_id: str, plan: Plan, ids: list[str] | None = None) -> list[SubtaskFacts]:
    """Facts of the named sub-tasks (default: all), in plan order: definition, stored output and the successful
    tool results of its conversation. One store read for the records, one per sub-task for its messages."""
    wanted = set(ids) if ids is not None else None
    records = {r.subtask_id: r for r in store.list_subtasks(run_id)}
    out = []
    for s in plan.subtasks:
        if wanted is not None and s.id not in wanted:
            continue
        record = records.get(s.id)
        out.append(facts_of(s, record.output if record else None, tool_facts(store.get_messages(run_id, s.id), s.id)))
    return out


def ancestors(plan: Plan, subtask_id: str) -> list[str]:
    """Every sub-task ``subtask_id`` depends on, directly or not, in plan order."""
    seen: set[str] = set()
    stack = list(plan.get(subtask_id).depends_on)
    while stack:
        sid = stack.pop()
        if sid not in seen:
            seen.add(sid)
            stack.extend(plan.get(sid).depends_on)
    return [s.id for s in plan.subtasks if s.id in seen]
