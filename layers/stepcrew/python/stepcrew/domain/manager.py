"""Manager role (hierarchical and hybrid crews): one round of the manager loop of ``statemachines/run.asl.json``.

After a valid (and approved) plan, a crew with ``process: hierarchical`` or ``hybrid`` runs a loop in ASL instead of
the dependency waves: ``Manage`` (this use case) -> ``ManagerChoice`` -> ``RunDelegations`` (a Map: each item is the
agent child execution of one delegated sub-task; a failed child is caught inside its iteration) -> ``Manage`` ...
until the manager says the goal is met (-> ``GuardOutputs``, the usual synthesis and review) or is stopped.

One round (:func:`manage_round`):

1. The delegations of the previous round are given to the manager with their outcome (the sub-task's record, and
   the Map item's error for a child that failed before it could record one). It assesses each: ``accept`` the
   answer, or ``send_back`` with feedback (the worker is given the feedback as a new user turn of its conversation
   and answers again).
2. It decides the next delegation(s): ``hierarchical`` exactly one per round, ``hybrid`` a batch of independent
   ready sub-tasks that run side by side; or ``done`` (every sub-task accepted), or ``give_up`` (why the goal cannot
   be met: the run fails with ``ManagerGaveUp``).
3. Every delegation is validated (:func:`check_reply`): a sub-task of the plan, not accepted yet, ready (its
   dependencies accepted), not twice in the batch; a known worker that is the sub-task's planned worker; tools that
   worker has. An invalid reply is recorded (a ``rejected`` delegation per bad order, event
   ``delegation_rejected``) and the manager is asked again with the error, at most :data:`MAX_MANAGER_ASKS` times
   in one round; then the run fails with ``ManagerInvalidReply``.
4. The bound: at most ``crew.max_delegations`` delegations per run (default twice the plan's sub-tasks,
   :func:`stepcrew.models.default_max_delegations`; hard cap ``MAX_DELEGATIONS_CAP``). A manager that asks for more
   is stopped: the run fails with ``ManagerLimitExceeded``, never SUCCEEDED. The manager's model calls go through
   :func:`stepcrew.domain.modelcall.exchange` (the run's budget is checked, and reserved per call by the ladder).

Every delegation is recorded in the store (:meth:`stepcrew.store.base.RunStore.record_delegations`: run, sequence
number, round, worker, sub-task, kind, instructions and their digest, tools, verdict, feedback) and
shown by ``stepcrew runs show``. Retry-safe: a replayed round (the Task retried after its writes) finds its
delegations already recorded and returns them; its model exchange is reused from the ledger (conversation
``manager``).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field

from stepcrew.domain.agent import _context
from stepcrew.domain.common import (
    allowed_tools,
    emit,
    engines_or_default,
    load_active_run,
    require_plan,
    subtask_facts,
    worker_for,
)
from stepcrew.domain.errors import SubtaskStateError
from stepcrew.domain.modelcall import exchange
from stepcrew.engines.base import ManageReply
from stepcrew.engines.facts import DelegationFact, ManageFacts, WorkerInfo
from stepcrew.engines.resolve import EngineResolver
from stepcrew.models import (
    DELEGATION_INSTRUCTIONS_MAX_CHARS,
    Crew,
    Delegation,
    Message,
    Plan,
    Run,
    RunId,
    Strict,
    SubtaskId,
    SubtaskStatus,
    ToolError,
    ToolResult,
    default_max_delegations,
    utcnow,
)
from stepcrew.resilience.wiring import engine_for
from stepcrew.store.base import RunStore
from stepcrew.text import one_line
from stepcrew.tools.registry import tool_specs

#: Conversation id of the manager's model exchanges (the retry ledger, :func:`stepcrew.domain.modelcall.exchange`).
CONVERSATION = "manager"
#: Times the manager is asked in one round when its reply is invalid (the first ask included): stepcrew's bound.
MAX_MANAGER_ASKS = 3
#: What a worker is told when its answer is sent back (then the manager's feedback).
FEEDBACK_PREFIX = "The manager sent your answer back. Feedback: "
#: What a worker is told in addition to the plan's instructions when the manager gives its own.
INSTRUCTIONS_PREFIX = "Instructions from the manager for this delegation: "


class DelegationResult(Strict):
    """One item of ``RunDelegations``' output: the delegation (``subtask_id``, ``seq``) and either the child's
    final ``child.status`` or, when the child failed, ``failed`` with the error name."""

    run_id: RunId | None = None
    subtask_id: SubtaskId
    seq: int = Field(ge=1)
    child: dict | None = None
    failed: bool = False
    error: str | None = Field(default=None, max_length=256)


class ManageInput(Strict):
    """The ``Manage`` Task's payload: ``round`` (0 first; the previous output's ``round``), the results of the
    previous round's delegations and the state's retry count."""

    run_id: RunId
    round: int = Field(default=0, ge=0, le=10_000)
    results: list[DelegationResult] = Field(default_factory=list, max_length=64)
    retry_count: int = Field(default=0, ge=0)


class DelegationItem(Strict):
    """One item for ``RunDelegations``: the sub-task its child execution runs and the delegation's ``seq`` (in the
    child's name, so names are unique per delegation)."""

    subtask_id: SubtaskId
    seq: int


class ManageOutput(Strict):
    """``outcome``: ``delegate`` (run ``delegations``, then come back with ``round``), ``finished`` (the goal is
    met: synthesis) or ``stopped`` (the run fails with ``error`` / ``cause``)."""

    run_id: RunId
    round: int
    outcome: Literal["delegate", "finished", "stopped"]
    delegations: list[DelegationItem] = Field(default_factory=list)
    error: str = ""
    cause: str = ""


class ManagerReplyError(ValueError):
    """A manager reply broke a rule; the message (one line) is given back to the manager."""


def max_delegations(crew: Crew, plan: Plan) -> int:
    """The run's bound on delegations (see the module docstring)."""
    return crew.max_delegations or default_max_delegations(len(plan.subtasks))


def digest(text: str) -> str:
    """sha256 of ``text`` (UTF-8), first 16 hex digits: what a delegation record keeps of long instructions."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_reply(reply: ManageReply, *, crew: Crew, plan: Plan, accepted: set[str], outstanding: dict[str, str],
                outcomes: dict[str, str]) -> None:
    """Validate a manager reply (rules in the module docstring). ``accepted``: sub-tasks accepted before this round;
    ``outstanding``: sub-task -> worker of last round's delegations (each needs an assessment); ``outcomes``: their
    status (``SUCCEEDED`` / ``FAILED``). Raises ManagerReplyError naming the first problem."""
    if reply.error:
        raise ManagerReplyError(reply.error)
    ids = {s.id for s in plan.subtasks}
    verdicts: dict[str, str] = {}
    for a in reply.assessments:
        if a.subtask_id not in outstanding:
            raise ManagerReplyError(f"assessment of {a.subtask_id!r}, which has no result to assess (results: "
                                    f"{', '.join(outstanding) or 'none'})")
        if a.verdict == "accept" and outcomes.get(a.subtask_id) != "SUCCEEDED":
            raise ManagerReplyError(f"sub-task {a.subtask_id!r} failed: it cannot be accepted; send it back or give up")
        if a.verdict == "send_back" and not a.feedback.strip():
            raise ManagerReplyError(f"sending {a.subtask_id!r} back needs feedback for the worker")
        if len(a.feedback) > DELEGATION_INSTRUCTIONS_MAX_CHARS:
            raise ManagerReplyError(f"the feedback for {a.subtask_id!r} is over {DELEGATION_INSTRUCTIONS_MAX_CHARS} "
                                    "characters")
        verdicts[a.subtask_id] = a.verdict
    if reply.give_up:
        return
    missing = [s for s in outstanding if s not in verdicts]
    if missing:
        raise ManagerReplyError(f"assess every result: no verdict for {', '.join(missing)}")
    now_accepted = accepted | {s for s, v in verdicts.items() if v == "accept"}
    sent_back = [s for s, v in verdicts.items() if v == "send_back"]
    workers = {w.name: w for w in crew.workers}
    seen: set[str] = set(sent_back)
    for d in reply.delegations:
        if d.subtask_id not in ids:
            raise ManagerReplyError(f"unknown sub-task {d.subtask_id!r}; the plan's sub-tasks: {', '.join(sorted(ids))}")
        if d.worker not in workers:
            raise ManagerReplyError(f"unknown worker {d.worker!r}; workers: {', '.join(workers)}")
        sub = plan.get(d.subtask_id)
        planned = worker_for(crew, sub).name
        if d.worker != planned:
            raise ManagerReplyError(f"sub-task {d.subtask_id!r} is planned for worker {planned!r}, not {d.worker!r}")
        bad = [t for t in d.tools if t not in workers[d.worker].tools]
        if bad:
            raise ManagerReplyError(f"worker {d.worker!r} has no tool(s) {', '.join(bad)}; it has: "
                                    f"{', '.join(workers[d.worker].tools) or 'none'}")
        if len(d.instructions) > DELEGATION_INSTRUCTIONS_MAX_CHARS:
            raise ManagerReplyError(f"the instructions for {d.subtask_id!r} are over "
                                    f"{DELEGATION_INSTRUCTIONS_MAX_CHARS} characters")
        if d.subtask_id in now_accepted:
            raise ManagerReplyError(f"sub-task {d.subtask_id!r} is already accepted")
        if d.subtask_id in seen:
            raise ManagerReplyError(f"sub-task {d.subtask_id!r} is delegated twice in this round")
        waiting = [x for x in sub.depends_on if x not in now_accepted]
        if waiting:
            raise ManagerReplyError(f"sub-task {d.subtask_id!r} is not ready: {', '.join(waiting)} not accepted yet")
        seen.add(d.subtask_id)
    count = len(seen)
    if reply.done:
        if count:
            raise ManagerReplyError("done with delegations: either delegate or say the goal is met")
        left = [s.id for s in plan.subtasks if s.id not in now_accepted]
        if left:
            raise ManagerReplyError(f"done, but sub-task(s) {', '.join(left)} are not accepted")
        return
    if not count:
        raise ManagerReplyError("no delegation and not done: delegate the next sub-task or say the goal is met")
    if crew.process == "hierarchical" and count > 1:
        raise ManagerReplyError(f"a hierarchical manager delegates one sub-task per round, not {count} "
                                f"({', '.join(sorted(seen))})")


def _outcomes(store: RunStore, run_id: str, outstanding: list[Delegation],
              results: list[DelegationResult]) -> dict[str, tuple[str, str | None, str | None]]:
    """sub-task -> (status, output, error) of last round's delegations: the record's final status, or FAILED with
    the Map item's error when the child never got to record one."""
    by_seq = {r.seq: r for r in results}
    out = {}
    for d in outstanding:
        record = store.get_subtask(run_id, d.subtask_id)
        item = by_seq.get(d.seq)
        if record.status == SubtaskStatus.SUCCEEDED and not (item and item.failed):
            out[d.subtask_id] = ("SUCCEEDED", record.output, None)
        else:
            error = (f"{record.error.code}: {record.error.message}" if record.error else
                     (item.error if item and item.error else "the delegation did not finish"))
            out[d.subtask_id] = ("FAILED", None, one_line(error, 500))
    return out


def manage_round(inp: ManageInput, store: RunStore, engines: EngineResolver | None = None) -> ManageOutput:
    """One manager round (module docstring). Raises RunNotActiveError, MissingInputError, BudgetExceededError, a
    ModelError, or SubtaskStateError (a crew without a manager: the run was not meant for this loop)."""
    run = load_active_run(store, inp.run_id)
    crew = run.crew
    if crew.manager is None or crew.process not in ("hierarchical", "hybrid"):
        raise SubtaskStateError(f"run {run.run_id}: crew {crew.name!r} has no manager (process {crew.process})")
    plan = require_plan(store, run.run_id)
    engine = engine_for(engines_or_default(engines), run, store, retry_count=inp.retry_count)
    ledger = store.list_delegations(run.run_id)
    base = dict(run_id=run.run_id, round=inp.round + 1)
    replayed = [d for d in ledger if d.round == inp.round and d.verdict is None]
    if replayed:  # a retried Task after this round's writes: the same delegations again
        _prepare(store, run, plan, replayed, engine)
        return ManageOutput(**base, outcome="delegate",
                            delegations=[DelegationItem(subtask_id=d.subtask_id, seq=d.seq) for d in replayed])
    outstanding = [d for d in ledger if d.verdict is None and d.round < inp.round]
    accepted = {d.subtask_id for d in ledger if d.verdict == "accepted"}
    issued = sum(1 for d in ledger if d.verdict != "rejected")
    bound = max_delegations(crew, plan)
    outcomes = _outcomes(store, run.run_id, outstanding, inp.results)
    results = [DelegationFact(seq=d.seq, subtask_id=d.subtask_id, worker=d.worker, status=outcomes[d.subtask_id][0],
                              output=outcomes[d.subtask_id][1], error=outcomes[d.subtask_id][2]) for d in outstanding]
    facts = ManageFacts(goal=run.goal, process=crew.process, round=inp.round,
                        subtasks=subtask_facts(store, run.run_id, plan), accepted=sorted(accepted), results=results,
                        workers=[WorkerInfo(name=w.name, role=w.role, tools=list(w.tools)) for w in crew.workers],
                        delegations_left=max(bound - issued, 0))
    seq = max((d.seq for d in ledger), default=0)
    error = None
    for attempt in range(MAX_MANAGER_ASKS):
        asked = facts.model_copy(update={"previous_error": error})
        reply = exchange(store, run, conversation=CONVERSATION, index=inp.round * MAX_MANAGER_ASKS + attempt,
                         purpose="manage", facts=asked, call=lambda asked=asked: engine.manage(asked, crew.manager),
                         reply_type=ManageReply).reply
        try:
            check_reply(reply, crew=crew, plan=plan, accepted=accepted,
                        outstanding={d.subtask_id: d.worker for d in outstanding},
                        outcomes={k: v[0] for k, v in outcomes.items()})
        except ManagerReplyError as exc:
            error = one_line(str(exc), 500)
            if any(d.verdict == "rejected" and d.round == inp.round and d.error == error for d in ledger):
                continue  # a replayed round: this rejection is recorded already
            rejected = [Delegation(run_id=run.run_id, seq=(seq := seq + 1), round=inp.round, worker=d.worker[:40],
                                   subtask_id=d.subtask_id[:64], instructions=d.instructions,
                                   instructions_digest=digest(d.instructions), tools=[t[:64] for t in d.tools[:16]],
                                   verdict="rejected", error=error)
                        for d in reply.delegations[:8]] or [
                Delegation(run_id=run.run_id, seq=(seq := seq + 1), round=inp.round, subtask_id="-",
                           verdict="rejected", error=error)]
            store.record_delegations(run.run_id, rejected)
            emit(store, run.run_id, "delegation_rejected", attempt=attempt + 1, round=inp.round)
            continue
        engine.accepted()
        break
    else:
        emit(store, run.run_id, "manager_stopped", code="ManagerInvalidReply", round=inp.round)
        return ManageOutput(**base, outcome="stopped", error="ManagerInvalidReply",
                            cause=f"the manager gave no valid reply in {MAX_MANAGER_ASKS} asks: {error}")
    # the assessments of last round
    by_sub = {d.subtask_id: d for d in outstanding}
    verdicts = {a.subtask_id: a for a in reply.assessments}
    assessed = []
    for sub_id, d in by_sub.items():
        a = verdicts.get(sub_id)
        if a is None:  # a give-up that left it unassessed
            verdict = "failed" if outcomes[sub_id][0] != "SUCCEEDED" else None
            if verdict is None:
                continue
            assessed.append(d.model_copy(update={"verdict": verdict, "at": utcnow()}))
        else:
            verdict = "accepted" if a.verdict == "accept" else "sent_back"
            assessed.append(d.model_copy(update={"verdict": verdict, "feedback": a.feedback, "at": utcnow()}))

    def record(new: list[Delegation]) -> None:  # the verdicts and the new delegations in one append, then events
        store.record_delegations(run.run_id, [*assessed, *new])
        for d in assessed:
            emit(store, run.run_id, "delegation_assessed", d.subtask_id, seq=d.seq, verdict=d.verdict)
        for d in new:
            emit(store, run.run_id, "delegated", d.subtask_id, seq=d.seq, worker=d.worker,
                 send_back=d.kind == "send_back")

    if reply.give_up:
        record([])
        emit(store, run.run_id, "manager_stopped", code="ManagerGaveUp", round=inp.round)
        return ManageOutput(**base, outcome="stopped", error="ManagerGaveUp",
                            cause=one_line(f"the manager gave up: {reply.give_up}", 1000))
    if reply.done:
        record([])
        emit(store, run.run_id, "manager_finished", round=inp.round, delegations=issued)
        return ManageOutput(**base, outcome="finished")
    orders = [(a.subtask_id, by_sub[a.subtask_id].worker, "", [], a.feedback)
              for a in reply.assessments if a.verdict == "send_back"]
    orders += [(d.subtask_id, d.worker, d.instructions.strip(), list(d.tools), "") for d in reply.delegations]
    if issued + len(orders) > bound:
        record([])
        emit(store, run.run_id, "manager_stopped", code="ManagerLimitExceeded", round=inp.round)
        return ManageOutput(**base, outcome="stopped", error="ManagerLimitExceeded",
                            cause=f"the manager asked for delegation {issued + len(orders)} of a run bounded to "
                                  f"{bound} (crew max_delegations, default twice the plan's sub-tasks); "
                                  f"{len(accepted | {a.subtask_id for a in reply.assessments if a.verdict == 'accept'})}"
                                  f" of {len(plan.subtasks)} sub-tasks accepted")
    new = []
    for sub_id, worker, instructions, tools, feedback in orders:
        plan_text = plan.get(sub_id).instructions
        extra = "" if instructions == plan_text else instructions
        new.append(Delegation(run_id=run.run_id, seq=(seq := seq + 1), round=inp.round, worker=worker,
                              subtask_id=sub_id, kind="send_back" if feedback else "delegate",
                              instructions=feedback or extra or plan_text,
                              instructions_digest=digest(feedback or extra or plan_text), tools=tools,
                              feedback=feedback))
    record(new)
    _prepare(store, run, plan, new, engine)
    return ManageOutput(**base, outcome="delegate",
                        delegations=[DelegationItem(subtask_id=d.subtask_id, seq=d.seq) for d in new])


def _prepare(store: RunStore, run: Run, plan: Plan, delegations: list[Delegation], engine) -> None:
    """Make each delegated sub-task's conversation say what the manager said, idempotently (a replay writes nothing
    twice). A send-back appends the feedback as a user turn (a pending tool call of a failed turn is first answered
    ``Interrupted``; a conversation never opened is opened with it) and reopens the record to RUNNING. A first
    delegation with the manager's own instructions opens the conversation with them (the worker's usual opening,
    the instructions added) and marks it RUNNING; without them the agent opens it as in a parallel run."""
    for d in delegations:
        record = store.get_subtask(run.run_id, d.subtask_id)
        conversation = store.get_messages(run.run_id, d.subtask_id)
        sub = plan.get(d.subtask_id)
        if d.kind == "send_back":
            text = FEEDBACK_PREFIX + d.feedback
            last = conversation[-1] if conversation else None
            if last is None:
                _open(store, run, plan, sub, f"{sub.instructions}\n\n{text}", engine)
            elif not (last.role == "user" and text in last.content):
                add = []
                if last.role == "assistant" and last.tool_calls:
                    add.append(Message(role="tool", tool_results=[ToolResult(
                        call_id=c.call_id, name=c.name, ok=False,
                        error=ToolError(type="Interrupted", message="the sub-task stopped before this call ran"))
                        for c in last.tool_calls]))
                store.append_messages(run.run_id, d.subtask_id, [*add, Message(role="user", content=text)])
            if record.status != SubtaskStatus.RUNNING:
                store.update_subtask(run.run_id, d.subtask_id, {"status": SubtaskStatus.RUNNING, "error": None,
                                                                "started_at": record.started_at or utcnow()},
                                     expected=[record.status])
        elif d.instructions != sub.instructions and not conversation:
            _open(store, run, plan, sub, f"{sub.instructions}\n\n{INSTRUCTIONS_PREFIX}{d.instructions}", engine)
            if record.status == SubtaskStatus.PENDING:
                store.update_subtask(run.run_id, d.subtask_id, {"status": SubtaskStatus.RUNNING,
                                                                "started_at": utcnow()},
                                     expected=[SubtaskStatus.PENDING])
                emit(store, run.run_id, "subtask_started", d.subtask_id, role=d.worker)


def _open(store: RunStore, run: Run, plan: Plan, sub, instructions: str, engine) -> None:
    """Store the worker's opening messages (its engine's ``open``) for ``sub`` with ``instructions``."""
    amended = sub.model_copy(update={"instructions": instructions[:4000]})
    role = worker_for(run.crew, sub)
    allowed = allowed_tools(sub, role)
    if run.memory == "off":
        allowed = [t for t in allowed if t != "remember"]
    store.append_messages(run.run_id, sub.id, engine.open(_context(store, run, plan, amended), role,
                                                          tool_specs(allowed)))
