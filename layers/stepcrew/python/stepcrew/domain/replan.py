"""Replanning after a failed sub-task: the planner replans the remaining work, keeping the done sub-tasks.

The run state machine's RunWaves catches every failure into ReplanAfterFailure (planner function, action
``replan_after_failure``), which decides first whether a replan may happen at all (:func:`replan_after_failure`):

- only a **sub-task failure** is replanned: the Catch's error is a child-execution failure (``States.TaskFailed``,
  ``SubtaskFailedError``, ``States.ExecutionFailed``) and a sub-task of the current plan is FAILED with its own
  reason. Anything else (a throttled start, a timeout) is not: ``replannable`` false, and the run fails as before.
- never when it would spend what the run may not: a sub-task that failed with ``BudgetExceededError`` (the run's or
  the tenant's budget) or any of :data:`NOT_REPLANNABLE`, or a run whose usage has reached a budget cap.
- at most ``Budget.max_replans`` times per run (default 1; 0 disables replanning: the run fails as before).

A replan asks the run's engine for a plan of the remaining work (``PlanFacts.replan``: the failure's type and a
short masked cause, the kept sub-tasks' ids and the start of their outputs, the sub-tasks to replace). The reply
lists new sub-tasks only; an id the run used before becomes ``<id>-v<version>``
(:func:`stepcrew.models.versioned_subtask_id`), so no conversation, record or child execution name is shared. The
new plan may depend on kept sub-tasks. It is validated like a first plan (tools, roles, at most 8 sub-tasks with the
kept ones); an invalid one is fed back (``retry``) up to ``MAX_PLAN_ATTEMPTS`` attempts.

A valid replan is stored: the plan becomes kept + new sub-tasks (the kept records unchanged, the replaced ones
removed), the previous :class:`~stepcrew.models.PlanVersion` gets its sub-tasks' final statuses and the new version
is recorded with the failure that caused it. Its waves hold the new sub-tasks only, after as many empty waves as the
run has run before (``wave_offset``): the child executions are named ``<run>-w<wave>-<index>-r<redrive>`` by wave
index, so a new sub-task never gets the name of an earlier one.

When replanning is exhausted or impossible (the limit reached, a decline, still invalid after its attempts, the
planner call failing: :func:`replan_failed`), the output carries ``failure``: the ORIGINAL sub-task failure's code,
and as cause its reason followed by ``; replanning exhausted: <why>``; the state machine puts it in ``$.error`` and
the run fails with it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationError

from stepcrew.domain.common import (
    dataset_profile,
    emit,
    engines_or_default,
    load_active_run,
    logger,
    require_plan,
    role_tool_errors,
)
from stepcrew.domain.finalize import CLOSED_CODE, lambda_error
from stepcrew.domain.modelcall import budget_reached, exchange
from stepcrew.engines.base import PlanReply
from stepcrew.engines.facts import KeptSubtask, PlanFacts, ReplanFacts, WorkerInfo, facts_of
from stepcrew.engines.resolve import EngineResolver
from stepcrew.events import MAX_PLAN_ATTEMPTS, RetryCount, StepFunctionsError
from stepcrew.models import (
    MAX_SUBTASKS,
    Crew,
    Plan,
    PlanValidationError,
    PlanVersion,
    PlanVersionItem,
    Run,
    RunId,
    Strict,
    SubtaskId,
    SubtaskRecord,
    SubtaskStatus,
    utcnow,
    versioned_subtask_id,
)
from stepcrew.resilience.wiring import engine_for
from stepcrew.store.base import RunStore
from stepcrew.text import one_line
from stepcrew.tools.registry import known_tools

#: Step Functions errors of a failed child execution (a sub-task's agent loop), as RunWaves' Catch gives them.
SUBTASK_FAILURE_ERRORS = frozenset({"States.TaskFailed", "SubtaskFailedError", "States.ExecutionFailed"})
#: Sub-task error codes a replan cannot get past or must not spend on: a budget (run or tenant) ran out, the run
#: ended, the provider refuses the key or model requests are forbidden, the deployment lacks a tool, the store and
#: the execution disagree, or the run was closed.
NOT_REPLANNABLE = frozenset({"BudgetExceededError", "RunNotActiveError", "ModelAuthError",
                             "ModelRequestsForbiddenError", "ToolNotDeployedError", "SubtaskStateError", CLOSED_CODE})
#: Characters of a kept sub-task's output the planner is shown, and of a failure's cause.
SUMMARY_MAX_CHARS = 300
CAUSE_MAX_CHARS = 300
#: The planner's conversation (the ledger of its exchanges; replans use purpose ``replan``).
CONVERSATION = "planner"
INITIAL_REASON = "initial plan"

_MASKS = (  # personal data a cause could echo (a provider's or a tool's message): masked before any prompt
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[EMAIL_ADDRESS]"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "[IP_ADDRESS]"),
    (re.compile(r"\b(?:\d[ -]?){6,}\d\b"), "[NUMBER]"),
)


class ReplanInput(Strict):
    """Planner function, action ``replan_after_failure`` (run state machine, ReplanAfterFailure and
    ReplanAfterFailureAgain): ``error`` is RunWaves' caught error; ``attempt`` > 1 with ``previous_error``: the
    previous replan reply was invalid."""

    action: Literal["replan_after_failure"]
    run_id: RunId
    error: StepFunctionsError
    attempt: int = Field(default=1, ge=1, le=MAX_PLAN_ATTEMPTS)
    previous_error: str | None = Field(default=None, max_length=4000)
    retry_count: RetryCount = 0


class ReplanFailedInput(Strict):
    """Planner function, action ``replan_failed`` (ReplanFailed): the replan Task failed after its retries with
    ``replan_error``; ``error`` is still the sub-task failure."""

    action: Literal["replan_failed"]
    run_id: RunId
    error: StepFunctionsError
    replan_error: StepFunctionsError


class ReplanOutput(Strict):
    """``valid``: a new plan is stored, ``waves`` run next (through CheckPlan, so an approval applies again);
    ``retry``: ask again with ``next_attempt`` and ``error``; ``exhausted``: the run fails with ``failure`` (the
    original failure's code, its reason and why replanning ended); none of them (``replannable`` false): not a
    sub-task failure, or replanning disabled or refused (budget): the run fails with the caught error as before.
    ``declined`` is always false (CheckPlan reads it: a replan that declines fails the run, never DECLINED)."""

    run_id: RunId
    replannable: bool
    valid: bool = False
    retry: bool = False
    exhausted: bool = False
    declined: bool = False
    attempt: int = 1
    next_attempt: int = 1
    version: int | None = None
    error: str | None = None
    failure: StepFunctionsError | None = None
    waves: list[list[SubtaskId]] = Field(default_factory=list)
    subtask_count: int = 0
    process: Literal["parallel", "sequential", "hierarchical", "hybrid"] = Field(
        default="parallel", description="the crew's process (CheckPlan routes on it like on a first plan)")


def mask_cause(text: str, limit: int = CAUSE_MAX_CHARS) -> str:
    """One line of at most ``limit`` characters, e-mail addresses, IPv4 addresses and runs of 7+ digits masked."""
    text = one_line(text or "", 10 * limit)
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return one_line(text, limit)


def is_subtask_failure(error: StepFunctionsError) -> bool:
    """True when RunWaves' caught ``error`` is a failed child execution (not a throttled start, a timeout...)."""
    lerr = lambda_error(error.Cause)
    return (error.Error in SUBTASK_FAILURE_ERRORS or (lerr is not None and lerr[0] in SUBTASK_FAILURE_ERRORS)
            or "SubtaskFailedError" in (error.Cause or ""))


def failed_record(records: list[SubtaskRecord]) -> SubtaskRecord | None:
    """The first sub-task that failed with its own reason (not closed by a failed run), or None."""
    return next((r for r in records if r.status == SubtaskStatus.FAILED and r.error is not None
                 and r.error.code != CLOSED_CODE), None)


def failure_text(record: SubtaskRecord) -> str:
    """``sub-task <id> failed: <code>: <message>`` (as the run's error reads today)."""
    return one_line(f"sub-task {record.subtask_id} failed: {record.error.code}: {record.error.message}")


def initial_version(run_id: str, plan: Plan) -> PlanVersion:
    """Plan version 1 of ``plan`` (the planner's first valid plan)."""
    return PlanVersion(run_id=run_id, version=1, reason=INITIAL_REASON, subtasks=_items(plan.subtasks),
                       waves=plan.waves(), rationale=plan.rationale)


def _items(subtasks) -> list[PlanVersionItem]:
    return [PlanVersionItem(id=s.id, title=s.title, depends_on=list(s.depends_on)) for s in subtasks]


def _versions(store: RunStore, run_id: str, plan: Plan) -> list[PlanVersion]:
    """The stored versions; a run planned before versions were kept gets its v1 from the current plan."""
    versions = store.list_plan_versions(run_id)
    if not versions:
        versions = [initial_version(run_id, plan)]
        store.put_plan_version(versions[0])
    return versions


def _exhausted(inp, versions: list[PlanVersion], record: SubtaskRecord, why: str, attempt: int = 1) -> ReplanOutput:
    """The exhausted output: the ORIGINAL failure (v2's cause when the run replanned before, else ``record``'s)."""
    original = next((v for v in versions if v.failure is not None), None)
    code = original.failure.code if original is not None else record.error.code
    reason = original.reason if original is not None else failure_text(record)
    cause = one_line(f"{reason}; replanning exhausted: {why}")
    return ReplanOutput(run_id=inp.run_id, replannable=True, exhausted=True, attempt=attempt, next_attempt=attempt,
                        failure=StepFunctionsError(Error=code, Cause=cause))


def _not_replannable(inp, why: str) -> ReplanOutput:
    logger.info("no replan", extra={"run_id": inp.run_id, "why": why})
    return ReplanOutput(run_id=inp.run_id, replannable=False, attempt=inp.attempt, next_attempt=inp.attempt)


def merge_replan(plan: Plan, kept: list[str], reply: Plan, used: set[str], version: int, tools: set[str],
                 crew: Crew) -> tuple[Plan, list[str]]:
    """The run's plan after a replan: the ``kept`` sub-tasks of ``plan`` (their definitions) then the reply's new
    sub-tasks, a reused id (in ``used``: every id the run had) renamed ``<id>-v<version>`` and dependencies on it
    following; validated like a first plan (tools, roles, cycle, at most MAX_SUBTASKS in all; a sequential crew's
    as a chain). Returns (plan, new ids). Raises PlanValidationError with a one-line reason."""
    ids = [s.id for s in reply.subtasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise PlanValidationError(f"duplicate sub-task ids: {', '.join(dupes)}")
    listed = [i for i in ids if i in kept]
    if listed:
        raise PlanValidationError(f"sub-task(s) {', '.join(listed)} are kept (done): list only the new sub-tasks")
    rename: dict[str, str] = {}
    taken = set(used) | set(kept)
    for s in reply.subtasks:
        new = s.id if s.id not in taken else versioned_subtask_id(s.id, version)
        if new in taken:
            raise PlanValidationError(f"sub-task id {s.id!r} was used before in this run (and {new!r} too): give "
                                      "it a new id")
        rename[s.id] = new
        taken.add(new)
    subtasks = [plan.get(i) for i in kept]
    for s in reply.subtasks:
        deps = []
        for d in s.depends_on:
            if d not in rename and d not in kept:
                raise PlanValidationError(f"sub-task {s.id!r} depends on {d!r}, which is neither a kept sub-task "
                                          f"({', '.join(kept) or 'none'}) nor a new one")
            deps.append(rename.get(d, d))
        subtasks.append(s.model_copy(update={"id": rename[s.id], "depends_on": deps}))
    if len(subtasks) > MAX_SUBTASKS:
        raise PlanValidationError(f"the {len(kept)} kept and {len(reply.subtasks)} new sub-tasks are "
                                  f"{len(subtasks)}, over the limit of {MAX_SUBTASKS} in all")
    try:
        merged = Plan(subtasks=subtasks, rationale=reply.rationale)
    except ValidationError as exc:  # pragma: no cover - the parts were validated already
        raise PlanValidationError(one_line(str(exc), 500)) from None
    merged.validate_rules(tools, {w.name for w in crew.workers})
    role_error = role_tool_errors(merged, crew)
    if role_error:
        raise PlanValidationError(role_error)
    if crew.process == "sequential":
        merged = merged.sequential()
    return merged, [rename[i] for i in ids]


def _facts(run: Run, plan: Plan, records: dict[str, SubtaskRecord], record: SubtaskRecord, version: int,
           used: set[str], inp: ReplanInput, dataset) -> PlanFacts:
    """The planner's facts for a replan: the first plan's facts plus ``replan`` (the failure, kept and replaced)."""
    crew = run.crew
    done = [s for s in plan.subtasks if records.get(s.id) and records[s.id].status == SubtaskStatus.SUCCEEDED]
    rest = [s for s in plan.subtasks if s not in done]
    replan = ReplanFacts(
        version=version, failed_subtask=record.subtask_id, error=record.error.code,
        cause=mask_cause(record.error.message),
        kept=[KeptSubtask(id=s.id, title=s.title, role=s.role, tools=list(s.tools),
                          summary=one_line(records[s.id].output or "", SUMMARY_MAX_CHARS)) for s in done],
        replaced=[facts_of(s) for s in rest], used_ids=sorted(used))
    return PlanFacts(goal=run.goal, has_dataset=run.data is not None, dataset=dataset, inputs=run.inputs,
                     workers=[WorkerInfo(name=w.name, role=w.role, tools=list(w.tools)) for w in crew.workers],
                     tools=sorted({t for w in crew.workers for t in w.tools}), attempt=inp.attempt,
                     previous_error=inp.previous_error, replan=replan)


def _in_plan(version: PlanVersion, plan: Plan) -> bool:
    ids = {s.id for s in plan.subtasks}
    return all(i.id in ids for i in version.subtasks)


def _replayed(inp: ReplanInput, store: RunStore, run: Run, plan: Plan, records: dict[str, SubtaskRecord],
              versions: list[PlanVersion]) -> ReplanOutput | None:
    """The output of a replan already stored, for a retried or redelivered event: the latest version (v2+, not
    superseded) is in the plan and none of its sub-tasks has started. Its records are completed first when the
    attempt that stored it died while switching the plan. None otherwise."""
    latest = versions[-1] if versions else None
    if latest is None or latest.version < 2 or latest.superseded_at is not None or not _in_plan(latest, plan):
        return None
    new = [i.id for i in latest.subtasks]
    if any(i in records and records[i].status != SubtaskStatus.PENDING for i in new):
        return None  # the new plan has run since: this is a new failure
    if any(i in records for i in latest.replaced) or any(i not in records for i in new):
        store.put_plan(run.run_id, plan, keep=[k for k in latest.kept if k in records])
    return ReplanOutput(run_id=run.run_id, replannable=True, valid=True, attempt=inp.attempt,
                        next_attempt=min(inp.attempt + 1, MAX_PLAN_ATTEMPTS), version=latest.version,
                        waves=[[] for _ in range(latest.wave_offset)] + latest.waves, subtask_count=len(new),
                        process=run.crew.process)


def replan_after_failure(inp: ReplanInput, store: RunStore, engines: EngineResolver | None = None) -> ReplanOutput:
    """Decide, ask and store a replan (see the module docstring). Events: ``replanned`` (version, kept, replaced,
    new ids) or ``replan_exhausted`` (why, as a word); ``plan_ready`` for the new plan. A replayed attempt reuses its
    stored reply (no second engine call). Raises RunNotActiveError, MissingInputError, a ModelError (the state
    machine retries, then ReplanFailed)."""
    run = load_active_run(store, inp.run_id)
    if not is_subtask_failure(inp.error):
        return _not_replannable(inp, "not a sub-task failure")
    plan = require_plan(store, run.run_id)
    records = {r.subtask_id: r for r in store.list_subtasks(run.run_id)}
    stored = store.list_plan_versions(run.run_id)
    replayed = _replayed(inp, store, run, plan, records, stored)
    if replayed is not None:
        return replayed
    if stored and stored[-1].version >= 2 and stored[-1].superseded_at is None and not _in_plan(stored[-1], plan):
        stored = stored[:-1]  # written by an attempt that died before the plan switched: made again below
    record = failed_record(list(records.values()))
    if record is None:
        return _not_replannable(inp, "no failed sub-task")
    if run.budget.max_replans == 0:
        return _not_replannable(inp, "replanning disabled")
    if record.error.code in NOT_REPLANNABLE or budget_reached(run.budget, run.usage):
        return _not_replannable(inp, "budget or a failure no replan can get past")
    versions = stored or _versions(store, run.run_id, plan)
    used_replans = len(versions) - 1
    if used_replans >= run.budget.max_replans:
        emit(store, run.run_id, "replan_exhausted", why="limit", replans=used_replans, code=record.error.code)
        return _exhausted(inp, versions, record, f"{used_replans} of at most {run.budget.max_replans} replan(s) "
                          f"used, and plan v{len(versions)}'s {failure_text(record)}")
    version = len(versions) + 1
    used = {i.id for v in versions for i in v.subtasks} | set(records) | {s.id for s in plan.subtasks}
    facts = _facts(run, plan, records, record, version, used, inp, dataset_profile(store, run.run_id))
    engine = engine_for(engines_or_default(engines), run, store, retry_count=inp.retry_count)
    index = (version - 2) * MAX_PLAN_ATTEMPTS + inp.attempt - 1
    called = exchange(store, run, conversation=CONVERSATION, index=index, purpose="replan", facts=facts,
                      call=lambda: engine.plan(facts, run.crew.planner), reply_type=PlanReply)
    reply = called.reply
    next_attempt = min(inp.attempt + 1, MAX_PLAN_ATTEMPTS)
    if reply.decline is not None:
        engine.accepted()
        emit(store, run.run_id, "replan_exhausted", why="declined", version=version, code=record.error.code)
        return _exhausted(inp, versions, record, f"the planner declined to replan: {reply.decline.reason}",
                          inp.attempt)
    kept = [s.id for s in plan.subtasks if records.get(s.id) and records[s.id].status == SubtaskStatus.SUCCEEDED]
    try:
        if reply.plan is None:
            raise PlanValidationError(reply.error or "the reply held no plan")
        merged, new_ids = merge_replan(plan, kept, reply.plan, used, version, known_tools(), run.crew)
    except PlanValidationError as exc:
        error = one_line(str(exc))
        emit(store, run.run_id, "plan_invalid", attempt=inp.attempt, retry=inp.attempt < MAX_PLAN_ATTEMPTS,
             version=version)
        if inp.attempt < MAX_PLAN_ATTEMPTS:
            return ReplanOutput(run_id=run.run_id, replannable=True, retry=True, attempt=inp.attempt,
                                next_attempt=next_attempt, version=version, error=error)
        emit(store, run.run_id, "replan_exhausted", why="invalid", version=version, code=record.error.code)
        return _exhausted(inp, versions, record, f"the new plan was still invalid after {inp.attempt} attempt(s): "
                          f"{error}", inp.attempt)
    engine.accepted()
    new = set(new_ids)
    waves = [w for w in ([i for i in wave if i in new] for wave in merged.waves()) if w]
    previous = versions[-1]
    now = utcnow()
    store.put_plan_version(previous.model_copy(update={"superseded_at": now, "subtasks": [
        item.model_copy(update={"status": records[item.id].status if item.id in records else None,
                                "error": records[item.id].error.code if item.id in records
                                and records[item.id].error else None})
        for item in previous.subtasks]}))
    replaced = [s.id for s in plan.subtasks if s.id not in kept]
    offset = previous.wave_offset + len(previous.waves)
    store.put_plan_version(PlanVersion(
        run_id=run.run_id, version=version, reason=failure_text(record), failure=record.error,
        subtasks=_items([merged.get(i) for i in new_ids]), kept=kept, replaced=replaced, waves=waves,
        wave_offset=offset, rationale=merged.rationale, created_at=now))
    store.put_plan(run.run_id, merged, keep=kept)  # last: until it is done, a retry finds the version pending
    emit(store, run.run_id, "replanned", version=version, failed=record.subtask_id, code=record.error.code,
         kept=kept, replaced=replaced, added=new_ids)
    emit(store, run.run_id, "plan_ready", attempt=inp.attempt, version=version, waves=waves,
         subtasks=[{"id": i, "title": merged.get(i).title, "depends_on": list(merged.get(i).depends_on)}
                   for i in new_ids])
    return ReplanOutput(run_id=run.run_id, replannable=True, valid=True, attempt=inp.attempt,
                        next_attempt=next_attempt, version=version, waves=[[] for _ in range(offset)] + waves,
                        subtask_count=len(new_ids), process=run.crew.process)


def replan_failed(inp: ReplanFailedInput, store: RunStore) -> ReplanOutput:
    """The replan Task failed after its retries (``inp.replan_error``): the exhausted output with the original
    failure and ``the planner's replan call failed (<error>)``, or not replannable when no sub-task failed."""
    run = store.get_run(inp.run_id)
    plan = store.get_plan(run.run_id)
    record = failed_record(store.list_subtasks(run.run_id))
    if plan is None or record is None:
        return ReplanOutput(run_id=inp.run_id, replannable=False)
    versions = store.list_plan_versions(run.run_id) or [initial_version(run.run_id, plan)]
    emit(store, run.run_id, "replan_exhausted", why="failed", code=record.error.code, error=inp.replan_error.Error)
    return _exhausted(inp, versions, record, f"the planner's replan call failed ({inp.replan_error.Error})")
