"""Worker roles: one turn of a sub-task's agent loop (the agent state machine calls this once per model turn).

The conversation lives in the store under the sub-task id (claim-check); state carries the stop reason and the
small tool-call requests only. One invocation: append the previous turn's tool results, call the model with the
sub-task's allowed tools, and either hand the allowed tool calls back to the state machine (``tool_use``) or
store the final answer on the sub-task (``end_turn``).

Tool calls the state machine must not run are answered here with a typed error result: a tool the sub-task is not
allowed (``NotAllowed``) or calls beyond ``MAX_TOOL_CALLS_PER_TURN`` (``LimitExceeded``). These answers are
derived from the stored assistant message, so the next invocation can merge them with the real results into one
``tool`` message (providers want every call of a turn answered in one message). When a turn has no call to run,
the model is asked again at once (once per invocation; the state machine loops otherwise).
"""

from __future__ import annotations

from stepcrew.domain import prompts
from stepcrew.domain.common import (
    allowed_tools,
    ancestors,
    emit,
    load_active_run,
    logger,
    require_plan,
    subtask_facts,
    worker_for,
)
from stepcrew.domain.context import ActContext, SubtaskFacts
from stepcrew.domain.errors import MaxTurnsExceededError, SubtaskStateError
from stepcrew.domain.modelcall import call_model
from stepcrew.events import AgentTurnInput, AgentTurnOutput
from stepcrew.models import (
    MAX_TOOL_CALLS_PER_TURN,
    Message,
    Plan,
    Run,
    SubtaskRecord,
    SubtaskStatus,
    ToolCall,
    ToolError,
    ToolResult,
    utcnow,
)
from stepcrew.store.base import RunStore
from stepcrew.tools.registry import tool_specs

#: Largest worker answer stored on a sub-task record (characters); stepcrew's cap, well under the 400 KB item.
SUBTASK_OUTPUT_MAX_CHARS = 50_000
#: Model calls one invocation may make: the first, plus one more when no call of the first could run.
CALLS_PER_INVOCATION = 2


def split_calls(calls: list[ToolCall], allowed: list[str]) -> tuple[list[ToolCall], list[ToolResult]]:
    """Split a turn's tool calls into those to run (allowed, at most MAX_TOOL_CALLS_PER_TURN = 8, in order) and
    error results for the others: ``NotAllowed`` for a tool the sub-task may not use, ``LimitExceeded`` beyond
    the per-turn cap (:mod:`stepcrew.models`, keeps the tool Map's state small). Deterministic."""
    run: list[ToolCall] = []
    refused: list[ToolResult] = []
    for call in calls:
        if call.name not in allowed:
            message = f"tool {call.name!r} is not allowed for this sub-task; allowed: {', '.join(allowed) or 'none'}"
            refused.append(ToolResult(call_id=call.call_id, name=call.name, ok=False,
                                      error=ToolError(type="NotAllowed", message=message)))
        elif len(run) >= MAX_TOOL_CALLS_PER_TURN:
            refused.append(ToolResult(call_id=call.call_id, name=call.name, ok=False, error=ToolError(
                type="LimitExceeded", message=f"at most {MAX_TOOL_CALLS_PER_TURN} tool calls run per turn")))
        else:
            run.append(call)
    return run, refused


def _answer_pending(inp: AgentTurnInput, last: Message, allowed: list[str]) -> Message:
    """The ``tool`` message answering the last assistant turn: the real results merged with the refusals, in
    call order. SubtaskStateError if ``inp.tool_results`` do not answer exactly the calls that were run."""
    run, refused = split_calls(last.tool_calls, allowed)
    expected = {c.call_id for c in run}
    got = [r.call_id for r in inp.tool_results]
    if set(got) != expected or len(got) != len(expected):
        raise SubtaskStateError(f"sub-task {inp.subtask_id}: tool results {sorted(got)} do not answer the pending "
                                f"tool calls {sorted(expected)}")
    by_id = {r.call_id: r for r in [*inp.tool_results, *refused]}
    return Message(role="tool", tool_results=[by_id[c.call_id] for c in last.tool_calls])


def _output(inp: AgentTurnInput, run: Run, record: SubtaskRecord, stop: str, calls: list[ToolCall] = ()) -> dict:
    return dict(run_id=inp.run_id, subtask_id=inp.subtask_id, turn=max(record.turns, 1), stop_reason=stop,
                tool_calls=list(calls), data_uri=run.data, status=record.status)


def agent_turn(inp: AgentTurnInput, store: RunStore) -> AgentTurnOutput:
    """Run one agent-loop turn of sub-task ``inp.subtask_id`` (see the module docstring).

    First call: the sub-task becomes RUNNING (``started_at``, event ``subtask_started``) and the conversation
    starts with the worker's system prompt and a user prompt (goal, instructions, expected output, the outputs of
    the sub-tasks it depends on; the context also carries their tool results). Later calls append the tool
    results (event ``tool_result`` each). Tool calls are counted on the sub-task (event ``tool_call`` each). The
    final answer is stored on the sub-task (SUCCEEDED, ``finished_at``, event ``subtask_finished``).

    Raises MaxTurnsExceededError past ``budget.max_turns_per_subtask`` model calls, SubtaskStateError (failed
    sub-task, results that answer nothing), RunNotActiveError, BudgetExceededError or a ModelError.
    """
    run = load_active_run(store, inp.run_id)
    plan = require_plan(store, inp.run_id)
    try:
        sub = plan.get(inp.subtask_id)
        record = store.get_subtask(inp.run_id, inp.subtask_id)
    except KeyError:
        raise SubtaskStateError(f"run {inp.run_id} has no sub-task {inp.subtask_id!r}") from None
    if record.status == SubtaskStatus.SUCCEEDED:  # a redelivered event after the answer was stored
        return AgentTurnOutput(**_output(inp, run, record, "end_turn"))
    if record.status == SubtaskStatus.FAILED:
        raise SubtaskStateError(f"sub-task {inp.subtask_id} has already failed")
    role = worker_for(run.crew, sub)
    allowed = allowed_tools(sub, role)
    conversation = store.get_messages(inp.run_id, sub.id)
    ctx = _context(store, run, plan, sub.id)
    if not conversation:
        if record.status == SubtaskStatus.PENDING:
            record = store.update_subtask(inp.run_id, sub.id, {"status": SubtaskStatus.RUNNING,
                                                               "started_at": utcnow()})
            emit(store, inp.run_id, "subtask_started", sub.id, role=role.name)
        conversation = _record(store, inp, prompts.messages(role, prompts.act_prompt(ctx, allowed)))
    elif conversation[-1].role == "assistant" and conversation[-1].tool_calls:
        conversation += _record(store, inp, [_answer_pending(inp, conversation[-1], allowed)])
        for r in inp.tool_results:
            emit(store, inp.run_id, "tool_result", sub.id, name=r.name, ok=r.ok, call_id=r.call_id)
    elif inp.tool_results and not _already_recorded(inp, conversation[-1]):
        raise SubtaskStateError(f"sub-task {sub.id}: tool results arrived but no tool call is pending")
    # else: a retry after a failed model call: the conversation already ends with the prompt or the results.
    specs = tool_specs(allowed)
    turns = record.turns
    new: list[Message] = []
    for _ in range(CALLS_PER_INVOCATION):
        if turns >= run.budget.max_turns_per_subtask:
            raise MaxTurnsExceededError(f"sub-task {sub.id} reached its limit of "
                                        f"{run.budget.max_turns_per_subtask} model calls")
        response = call_model(store, run, role, purpose="act", messages=[*conversation, *new],
                              context=ctx.model_dump(), tools=specs, subtask_id=sub.id).response
        turns += 1
        to_run, refused = split_calls(response.tool_calls, allowed)
        if response.stop_reason != "tool_use" or not response.tool_calls:
            _record(store, inp, [*new, Message(role="assistant", content=response.text)])
            return _finish(store, inp, run, sub.id, turns, response.text)
        new.append(Message(role="assistant", content=response.text, tool_calls=response.tool_calls))
        if to_run:
            break
        new.append(Message(role="tool", tool_results=refused))  # nothing to run: tell the model, ask again
        logger.info("no runnable tool call", extra={"run_id": inp.run_id, "subtask_id": sub.id})
    _record(store, inp, new)
    record = store.update_subtask(inp.run_id, sub.id, {"turns": turns, "tool_calls": record.tool_calls + len(to_run)})
    for call in to_run:
        emit(store, inp.run_id, "tool_call", sub.id, name=call.name, call_id=call.call_id)
    return AgentTurnOutput(**_output(inp, run, record, "tool_use", to_run))


def _already_recorded(inp: AgentTurnInput, last: Message) -> bool:
    """True when ``inp`` replays tool results the conversation's last message already holds (a Retry of the
    state machine after the model call of this turn failed)."""
    recorded = {r.call_id for r in last.tool_results}
    return last.role == "tool" and all(r.call_id in recorded for r in inp.tool_results)


def _record(store: RunStore, inp: AgentTurnInput, messages: list[Message]) -> list[Message]:
    """Append ``messages`` to the sub-task's conversation at once (a retried invocation then finds them)."""
    store.append_messages(inp.run_id, inp.subtask_id, messages)
    return messages


def _context(store: RunStore, run: Run, plan: Plan, subtask_id: str) -> ActContext:
    deps = subtask_facts(store, run.run_id, plan, ancestors(plan, subtask_id))
    sub = plan.get(subtask_id)
    facts = SubtaskFacts(id=sub.id, title=sub.title, instructions=sub.instructions,
                         expected_output=sub.expected_output, role=sub.role, tools=list(sub.tools),
                         depends_on=list(sub.depends_on))
    return ActContext(goal=run.goal, has_dataset=run.data is not None, subtask_id=sub.id, subtask=facts,
                      dependencies=deps)


def _finish(store: RunStore, inp: AgentTurnInput, run: Run, subtask_id: str, turns: int, text: str) -> AgentTurnOutput:
    output = text.strip() or "(the worker returned no text)"
    if len(output) > SUBTASK_OUTPUT_MAX_CHARS:
        output = output[:SUBTASK_OUTPUT_MAX_CHARS] + "\n[... truncated]"
    record = store.update_subtask(inp.run_id, subtask_id, {"status": SubtaskStatus.SUCCEEDED, "output": output,
                                                           "turns": turns, "finished_at": utcnow()})
    emit(store, inp.run_id, "subtask_finished", subtask_id, turns=turns, tool_calls=record.tool_calls)
    return AgentTurnOutput(**_output(inp, run, record, "end_turn"))
