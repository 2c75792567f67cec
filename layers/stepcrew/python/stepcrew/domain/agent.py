"""Worker roles: one turn of a sub-task's agent loop (the agent state machine calls this once per model turn).

The conversation lives in the store under the sub-task id (claim-check); state carries the stop reason and the
tool-call requests: a call's arguments inline when small, else (tools with ``arguments_by_reference``, over 2 KiB)
a reference to the stored assistant message (:mod:`stepcrew.tools.argrefs`: run id + sub-task id + call id). One invocation: append the previous turn's tool results, call the model with the
sub-task's allowed tools, and either hand the allowed tool calls back to the state machine (``tool_use``) or
store the final answer on the sub-task (``end_turn``).

Tool calls the state machine must not run are answered here with a typed error result: a tool the sub-task is not
allowed (``NotAllowed``) or calls beyond ``MAX_TOOL_CALLS_PER_TURN`` (``LimitExceeded``). These answers are
derived from the stored assistant message, so the next invocation can merge them with the real results into one
``tool`` message (providers want every call of a turn answered in one message). When a turn has no call to run,
the model is asked again at once (once per invocation; the state machine loops otherwise).

Every message is stored as one item (400 KB, DynamoDB quotas page) whose ``body`` is the message's JSON: each is kept
under :data:`MESSAGE_BODY_MAX_BYTES` of UTF-8 JSON by :func:`fit_message` (its text cut, with a marker the model
reads) and an assistant message's calls keep at most ``TOOL_ARGUMENTS_TURN_MAX_BYTES`` of arguments together
(:func:`bound_arguments`; later calls are stored with their size only and answered ``LimitExceeded``).
"""

from __future__ import annotations

from stepcrew.domain.common import (
    allowed_tools,
    ancestors,
    dataset_profile,
    emit,
    engines_or_default,
    load_active_run,
    logger,
    require_plan,
    subtask_facts,
    worker_for,
)
from stepcrew.domain.errors import (
    EmptyAnswerError,
    MaxTurnsExceededError,
    SubtaskStateError,
    ToolLoopError,
    ToolNotDeployedError,
)
from stepcrew.domain.modelcall import engine_call, flush
from stepcrew.domain.recall import stored_context
from stepcrew.engines.facts import ActFacts, facts_of
from stepcrew.engines.resolve import EngineResolver
from stepcrew.resilience.wiring import engine_for
from stepcrew.events import AgentTurnInput, AgentTurnOutput, ToolDispatch
from stepcrew.models import (
    MAX_TOOL_CALLS_PER_TURN,
    TOOL_ARGUMENTS_MAX_BYTES,
    TOOL_ARGUMENTS_TURN_MAX_BYTES,
    Message,
    Plan,
    Run,
    SubTask,
    SubtaskRecord,
    SubtaskStatus,
    ToolCall,
    ToolError,
    ToolResult,
    utcnow,
)
from stepcrew.store.base import RunStore
from stepcrew.text import clip_bytes
from stepcrew.tools.argrefs import REF_KEY, by_reference
from stepcrew.tools.registry import tool_specs

#: Largest worker answer stored on a sub-task record (characters, and UTF-8 bytes: DynamoDB counts bytes); stepcrew's
#: cap, well under the 400 KB item.
SUBTASK_OUTPUT_MAX_CHARS = 50_000
SUBTASK_OUTPUT_MAX_BYTES = 150_000
#: Largest text of one assistant message kept in the sub-task's conversation (UTF-8 bytes): each message is one item
#: (400 KB quota), so a longer reply is stored cut, with a marker.
MESSAGE_TEXT_MAX_BYTES = 300_000
#: Largest JSON body of one stored message (UTF-8 bytes): the item adds keys and a few attributes (< 300 bytes) and
#: must stay under DynamoDB's 400 KB (409,600 bytes; quotas page). JSON escapes count (a newline is 2 bytes).
MESSAGE_BODY_MAX_BYTES = 380_000
TRUNCATED_MARKER = "\n[... truncated]"
#: Key that replaces the arguments of a call over TOOL_ARGUMENTS_MAX_BYTES in the stored conversation (their size):
#: such a call is refused (InvalidArguments) from the stored message alone, deterministically.
TOO_LARGE_KEY = "_too_large_bytes"
#: Key that replaces the arguments of a call past TOOL_ARGUMENTS_TURN_MAX_BYTES of stored arguments in one turn (their
#: size): refused with LimitExceeded (call again in a later turn).
DROPPED_KEY = "_dropped_bytes"
#: Argument keys only stepcrew writes: a call using one is never run nor counted as a repeat.
MARKER_KEYS = (TOO_LARGE_KEY, DROPPED_KEY, REF_KEY)
#: Model calls one invocation may make: the first, plus one more when no call of the first could run.
CALLS_PER_INVOCATION = 2
#: The same tool call (tool and arguments) asked for this many times in one sub-task is a loop (ToolLoopError).
LOOP_REPEATS = 3
#: What a worker is told after an empty final answer (once; a second empty answer fails the sub-task).
EMPTY_ANSWER_NUDGE = ("Your last answer was empty. Answer the sub-task now in plain text, with the figures you found "
                      "(or say plainly what you could not find).")


def _nudged(conversation: list[Message]) -> bool:
    return any(m.role == "user" and m.content == EMPTY_ANSWER_NUDGE for m in conversation)


def _call_key(call: ToolCall) -> str:
    import json

    return call.name + "\0" + json.dumps(call.arguments, sort_keys=True, separators=(",", ":"), default=str)


def check_loop(conversation: list[Message], calls: list[ToolCall], subtask_id: str) -> None:
    """Raise ToolLoopError when a call of ``calls`` (the new turn) repeats a tool call with the same arguments
    for the ``LOOP_REPEATS``-th time in the sub-task's ``conversation``. Calls stored with a size marker
    (:data:`MARKER_KEYS`) are not counted: they were refused, and equal sizes are not equal arguments."""
    def counted(some: list[ToolCall]) -> list[ToolCall]:  # a call refused from its markers never ran: no repeat
        return [c for c in some if not any(key in c.arguments for key in MARKER_KEYS)]

    seen: dict[str, int] = {}
    for m in conversation:
        if m.role == "assistant":
            for c in counted(m.tool_calls):
                seen[_call_key(c)] = seen.get(_call_key(c), 0) + 1
    for c in counted(calls):
        key = _call_key(c)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] >= LOOP_REPEATS:
            raise ToolLoopError(f"sub-task {subtask_id} asked for the same {c.name} call with the same arguments "
                                f"{seen[key]} times: a loop, ended (the earlier results did not change)")


def arguments_bytes(call: ToolCall) -> int:
    """UTF-8 bytes of a call's arguments as JSON (what the state carries)."""
    import json

    return len(json.dumps(call.arguments, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))


def bound_arguments(message: Message) -> Message:
    """The assistant message as the conversation stores it (one item per message, 400 KB): the arguments of every
    call over TOOL_ARGUMENTS_MAX_BYTES replaced by ``{TOO_LARGE_KEY: <bytes>}``; once the kept arguments of the turn
    reach TOOL_ARGUMENTS_TURN_MAX_BYTES, those of every later call by ``{DROPPED_KEY: <bytes>}``; its text cut to
    MESSAGE_TEXT_MAX_BYTES and to what :func:`fit_message` allows. Deterministic."""
    calls, kept = [], 0
    for c in message.tool_calls:
        size = arguments_bytes(c)
        if size > TOOL_ARGUMENTS_MAX_BYTES:
            c = c.model_copy(update={"arguments": {TOO_LARGE_KEY: size}})
        elif kept + size > TOOL_ARGUMENTS_TURN_MAX_BYTES:
            c = c.model_copy(update={"arguments": {DROPPED_KEY: size}})
        else:
            kept += size
        calls.append(c)
    text = clip_bytes(message.content, MESSAGE_TEXT_MAX_BYTES, TRUNCATED_MARKER)
    return fit_message(message.model_copy(update={"tool_calls": calls, "content": text}))


def _json_bytes(text: str) -> int:
    import json

    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2  # without the quotes


def fit_message(message: Message, max_bytes: int = MESSAGE_BODY_MAX_BYTES) -> Message:
    """``message`` unchanged when its JSON (what the store writes as the item's ``body``) is at most ``max_bytes``
    UTF-8 bytes; else with its text cut (on a character boundary, JSON escapes counted) so that it fits, ending with
    :data:`TRUNCATED_MARKER`. A message whose calls and results alone do not fit is returned as is (they are
    bounded before: 8 KiB per result, :func:`bound_arguments` for calls) and the store refuses it."""
    if len(message.model_dump_json().encode("utf-8")) <= max_bytes:
        return message
    rest = len(message.model_copy(update={"content": ""}).model_dump_json().encode("utf-8"))
    room = max_bytes - rest - _json_bytes(TRUNCATED_MARKER)
    text = message.content
    if room <= 0 or not text:
        return message
    lo, hi = 0, min(len(text), room)  # a character is at least one byte of JSON
    while lo < hi:  # the longest prefix whose JSON fits ``room``
        mid = (lo + hi + 1) // 2
        if _json_bytes(text[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    return message.model_copy(update={"content": text[:lo] + TRUNCATED_MARKER})


def split_calls(calls: list[ToolCall], allowed: list[str]) -> tuple[list[ToolCall], list[ToolResult]]:
    """Split a turn's tool calls into those to run (allowed, at most MAX_TOOL_CALLS_PER_TURN = 8, in order, their
    arguments together at most TOOL_ARGUMENTS_TURN_MAX_BYTES) and error results for the others: ``InvalidArguments``
    for a call whose arguments were over TOOL_ARGUMENTS_MAX_BYTES (:func:`bound_arguments`) or use the reserved
    reference key (:data:`stepcrew.tools.argrefs.REF_KEY`: only stepcrew writes references), ``NotAllowed`` for a
    tool the sub-task may not use, ``LimitExceeded`` beyond the per-turn caps (:mod:`stepcrew.models`: they bound
    the stored assistant message and the work of one turn; the state carries large arguments by reference).
    Deterministic."""
    run: list[ToolCall] = []
    refused: list[ToolResult] = []
    total = 0
    for call in calls:
        size = arguments_bytes(call)
        if TOO_LARGE_KEY in call.arguments:
            message = (f"the arguments of this {call.name} call were {call.arguments[TOO_LARGE_KEY]} bytes, over the "
                       f"limit of {TOOL_ARGUMENTS_MAX_BYTES} bytes per call: call it again with less (shorter "
                       "text, fewer rows, or several calls)")
            refused.append(ToolResult(call_id=call.call_id, name=call.name, ok=False,
                                      error=ToolError(type="InvalidArguments", message=message)))
        elif REF_KEY in call.arguments:
            refused.append(ToolResult(call_id=call.call_id, name=call.name, ok=False, error=ToolError(
                type="InvalidArguments", message=f"{REF_KEY}: this argument name is reserved; pass the tool's own "
                                                 "arguments")))
        elif call.name not in allowed:
            message = f"tool {call.name!r} is not allowed for this sub-task; allowed: {', '.join(allowed) or 'none'}"
            refused.append(ToolResult(call_id=call.call_id, name=call.name, ok=False,
                                      error=ToolError(type="NotAllowed", message=message)))
        elif DROPPED_KEY in call.arguments or (len(run) < MAX_TOOL_CALLS_PER_TURN
                                               and total + size > TOOL_ARGUMENTS_TURN_MAX_BYTES):
            refused.append(ToolResult(call_id=call.call_id, name=call.name, ok=False, error=ToolError(
                type="LimitExceeded", message=f"the calls of one turn carry at most {TOOL_ARGUMENTS_TURN_MAX_BYTES} "
                                              "bytes of arguments together: make this call again in a later turn")))
        elif len(run) >= MAX_TOOL_CALLS_PER_TURN:
            refused.append(ToolResult(call_id=call.call_id, name=call.name, ok=False, error=ToolError(
                type="LimitExceeded", message=f"at most {MAX_TOOL_CALLS_PER_TURN} tool calls run per turn")))
        else:
            run.append(call)
            total += size
    return run, refused


def _answer_pending(inp: AgentTurnInput, last: Message, allowed: list[str]) -> Message:
    """The ``tool`` message answering the last assistant turn: the real results (``inp.tool_results``, which
    :func:`_answers` has matched to the calls that were run) merged with the refusals, in call order."""
    by_id = {r.call_id: r for r in [*inp.tool_results, *split_calls(last.tool_calls, allowed)[1]]}
    return Message(role="tool", tool_results=[by_id[c.call_id] for c in last.tool_calls])


def _output(inp: AgentTurnInput, run: Run, record: SubtaskRecord, stop: str, calls: list[ToolDispatch] = ()) -> dict:
    return dict(run_id=inp.run_id, subtask_id=inp.subtask_id, turn=max(record.turns, 1), stop_reason=stop,
                tool_calls=list(calls), data_uri=run.data, tenant=run.tenant, status=record.status,
                allow_side_effects=run.allow_side_effects)


def agent_turn(inp: AgentTurnInput, store: RunStore, engines: EngineResolver | None = None) -> AgentTurnOutput:
    """Run one agent-loop turn of sub-task ``inp.subtask_id`` (see the module docstring).

    First call: the sub-task becomes RUNNING (``started_at``, event ``subtask_started``) and the conversation
    starts with the worker's system prompt and a user prompt (goal, instructions, expected output, the outputs of
    the sub-tasks it depends on; the engine's facts also carry their tool results). Later calls append the tool
    results (event ``tool_result`` each). Tool calls are counted on the sub-task (event ``tool_call`` each). The
    final answer is stored on the sub-task (SUCCEEDED, ``finished_at``, event ``subtask_finished``).

    Retry-safe: the stored conversation is the sub-task's ledger. A replayed event whose model reply is already
    stored (the invocation died after storing it) makes no model call and records no usage again: it returns
    the stored tool calls or finishes with the stored answer. ``turns`` and ``tool_calls`` on the record are
    derived from the conversation, never incremented, so a retry cannot double them.

    An empty final answer is not an answer: the worker is told so once (:data:`EMPTY_ANSWER_NUDGE`, one more model
    call in the same invocation); a second empty answer raises EmptyAnswerError and the sub-task fails with it.

    Raises ToolNotDeployedError (an allowed tool without a function in ``inp.tool_functions``, before any model
    call), MaxTurnsExceededError past ``budget.max_turns_per_subtask`` model calls, SubtaskStateError (unknown or
    failed sub-task, results that answer nothing), RunNotActiveError, BudgetExceededError or a ModelError.
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
    if run.memory == "off":  # a run that opted out leaves nothing in memory: the remember tool is not offered
        allowed = [t for t in allowed if t != "remember"]
    missing = sorted(set(allowed) - inp.tool_functions.keys())
    if missing:
        raise ToolNotDeployedError(f"sub-task {inp.subtask_id} may use {', '.join(missing)}, which the agent state "
                                   "machine has no function for (tool_functions)")
    specs = tool_specs(allowed)
    engine = engine_for(engines_or_default(engines), run, store, retry_count=inp.retry_count)
    conversation = store.get_messages(inp.run_id, sub.id)
    ctx = _context(store, run, plan, sub)
    last = conversation[-1] if conversation else None
    if last is None:
        if record.status == SubtaskStatus.PENDING:
            record = store.update_subtask(inp.run_id, sub.id, {"status": SubtaskStatus.RUNNING,
                                                               "started_at": utcnow()},
                                          expected=[SubtaskStatus.PENDING])
            emit(store, inp.run_id, "subtask_started", sub.id, role=role.name)
        conversation = _record(store, inp, engine.open(ctx, role, specs))
    elif last.role == "assistant" and not last.tool_calls and last.content.strip():  # replay: answer stored
        return _finish(store, inp, run, conversation, allowed, last.content)
    elif last.role == "assistant" and not _answers(inp, last, allowed):
        if not _is_replay(inp, conversation):
            raise SubtaskStateError(f"sub-task {inp.subtask_id}: tool results "
                                    f"{sorted(r.call_id for r in inp.tool_results)} do not answer the pending "
                                    f"tool calls {sorted(c.call_id for c in split_calls(last.tool_calls, allowed)[0])}")
        return _hand_out(store, inp, run, record, conversation, allowed)  # replay: the calls are stored
    elif last.role == "assistant":
        conversation += _record(store, inp, [_answer_pending(inp, last, allowed)])
        for r in inp.tool_results:
            emit(store, inp.run_id, "tool_result", sub.id, name=r.name, ok=r.ok, call_id=r.call_id,
                 **({"cached": True} if r.cached else {}))
        hits = sum(1 for r in inp.tool_results if r.cached)
        if hits:  # tool-result cache hits (stepcrew.tools.cache): counted on the run's usage
            store.add_savings(inp.run_id, hits, 0, 0.0)
            emit(store, inp.run_id, "cache_hit", sub.id, purpose="tool", cache="tool", hits=hits)
    elif inp.tool_results and not _is_replay(inp, conversation):
        raise SubtaskStateError(f"sub-task {sub.id}: tool results arrived but no tool call is pending")
    # else: a retry after a failed model call: the conversation already ends with the prompt or the results.
    turns = _counts(conversation, allowed)[0]
    pending: list = []  # model_turn events, emitted once the turn's messages are stored (modelcall.record_calls)
    try:
        return _act(inp, store, run, record, sub, ctx, role, specs, engine, conversation, allowed, turns, pending)
    finally:
        flush(pending)


def _act(inp, store, run, record, sub, ctx, role, specs, engine, conversation, allowed, turns, pending):
    """The model calls of one invocation (see :func:`agent_turn`); their events go to ``pending``."""
    new: list[Message] = []
    calls, limit = 0, CALLS_PER_INVOCATION
    while calls < limit:
        calls += 1
        if turns >= run.budget.max_turns_per_subtask:
            raise MaxTurnsExceededError(f"sub-task {sub.id} reached its limit of "
                                        f"{run.budget.max_turns_per_subtask} model calls")
        so_far = [*conversation, *new]
        reply = engine_call(store, run, "act", lambda so_far=so_far: engine.act(ctx, role, so_far, specs),
                            subtask_id=sub.id, defer=pending).reply
        turns += 1
        message = bound_arguments(reply.message)
        to_run, refused = split_calls(message.tool_calls, allowed)
        if reply.stop_reason != "tool_use" or not message.tool_calls:
            if not message.content.strip():  # an empty answer is no answer: ask once more, then fail the sub-task
                if _nudged([*conversation, *new]):
                    raise EmptyAnswerError(f"sub-task {sub.id}: the worker answered with no text twice (it was "
                                           "asked once to answer again)")
                new += [Message(role="assistant", content=""), Message(role="user", content=EMPTY_ANSWER_NUDGE)]
                conversation += _record(store, inp, new)  # a retry of this invocation asks again, not nudges again
                flush(pending)  # the events once what they report is stored
                new = []
                limit += 1  # the nudge's call is extra: the invocation still answers within its own turn
                continue
            engine.accepted()
            conversation += _record(store, inp, [*new, Message(role="assistant", content=message.content)])
            flush(pending)  # the events once what they report is stored
            return _finish(store, inp, run, conversation, allowed, message.content)
        try:
            check_loop([*conversation, *new], message.tool_calls, sub.id)
        except ToolLoopError:
            emit(store, inp.run_id, "loop_detected", sub.id, repeats=LOOP_REPEATS)
            raise
        engine.accepted()  # no loop: the exact cache may keep this turn
        new.append(Message(role="assistant", content=message.content, tool_calls=message.tool_calls))
        if to_run:
            break
        new.append(Message(role="tool", tool_results=refused))  # nothing to run: tell the model, ask again
        logger.info("no runnable tool call", extra={"run_id": inp.run_id, "subtask_id": sub.id})
    conversation += _record(store, inp, new)
    flush(pending)  # the events once what they report is stored
    return _hand_out(store, inp, run, record, conversation, allowed)


def _answers(inp: AgentTurnInput, last: Message, allowed: list[str]) -> bool:
    """True when ``inp.tool_results`` answer exactly the runnable calls of the assistant message ``last``."""
    expected = [c.call_id for c in split_calls(last.tool_calls, allowed)[0]]
    got = [r.call_id for r in inp.tool_results]
    return sorted(got) == sorted(expected)


def _is_replay(inp: AgentTurnInput, conversation: list[Message]) -> bool:
    """True when ``inp`` is an event the conversation has already consumed: no tool results (the first turn) or
    results already recorded in it (a Retry of the state machine after this turn's model call or writes failed)."""
    recorded = {r.call_id for m in conversation if m.role == "tool" for r in m.tool_results}
    return all(r.call_id in recorded for r in inp.tool_results)


def _counts(conversation: list[Message], allowed: list[str]) -> tuple[int, int]:
    """``(turns, tool_calls)`` of a conversation: model calls (one assistant message each) and the tool calls
    that were handed to the state machine (allowed, within the per-turn cap)."""
    replies = [m for m in conversation if m.role == "assistant"]
    return len(replies), sum(len(split_calls(m.tool_calls, allowed)[0]) for m in replies)


def _hand_out(store: RunStore, inp: AgentTurnInput, run: Run, record: SubtaskRecord, conversation: list[Message],
              allowed: list[str]) -> AgentTurnOutput:
    """Return the runnable calls of the conversation's last (assistant) message to the state machine (arguments over
    2 KiB by reference for the tools that take references: :func:`stepcrew.tools.argrefs.by_reference`); writes the
    counts and the ``tool_call`` events unless an earlier attempt of this turn already did."""
    to_run = split_calls(conversation[-1].tool_calls, allowed)[0]
    turns, calls = _counts(conversation, allowed)
    if (record.turns, record.tool_calls) != (turns, calls):
        record = store.update_subtask(inp.run_id, inp.subtask_id, {"turns": turns, "tool_calls": calls},
                                      expected=[SubtaskStatus.RUNNING])
        for call in to_run:
            emit(store, inp.run_id, "tool_call", inp.subtask_id, name=call.name, call_id=call.call_id)
    handed = [ToolDispatch(function=inp.tool_functions[call.name], call=by_reference(call, inp.run_id, inp.subtask_id))
              for call in to_run]
    return AgentTurnOutput(**_output(inp, run, record, "tool_use", handed))


def _record(store: RunStore, inp: AgentTurnInput, messages: list[Message]) -> list[Message]:
    """Append ``messages`` to the sub-task's conversation at once (a retried invocation then finds them), each cut to
    its item by :func:`fit_message` (the prompt too: the outputs of many dependencies can pass 400 KB). Returns the
    messages as stored."""
    messages = [fit_message(m) for m in messages]
    store.append_messages(inp.run_id, inp.subtask_id, messages)
    return messages


def _context(store: RunStore, run: Run, plan: Plan, sub: SubTask) -> ActFacts:
    deps = subtask_facts(store, run.run_id, plan, ancestors(plan, sub.id))
    # workers get the recalled facts only: no read of the stored context when the run's summary lists none
    recalled_facts = run.memory == "on" and run.recalled is not None and run.recalled.facts
    memory = stored_context(store, run.run_id) if recalled_facts else None
    return ActFacts(goal=run.goal, has_dataset=run.data is not None, dataset=dataset_profile(store, run.run_id),
                    subtask=facts_of(sub), dependencies=deps,
                    memory=memory if memory is not None and memory.facts else None)


def _finish(store: RunStore, inp: AgentTurnInput, run: Run, conversation: list[Message], allowed: list[str],
            text: str) -> AgentTurnOutput:
    """Store the worker's answer (capped at SUBTASK_OUTPUT_MAX_CHARS) on the sub-task: SUCCEEDED. Never called with
    an empty answer (:data:`EMPTY_ANSWER_NUDGE`)."""
    output = text.strip()
    if len(output) > SUBTASK_OUTPUT_MAX_CHARS:
        output = output[:SUBTASK_OUTPUT_MAX_CHARS] + "\n[... truncated]"
    output = clip_bytes(output, SUBTASK_OUTPUT_MAX_BYTES, "\n[... truncated]")
    turns, calls = _counts(conversation, allowed)
    record = store.update_subtask(inp.run_id, inp.subtask_id, {"status": SubtaskStatus.SUCCEEDED, "output": output,
                                                               "turns": turns, "tool_calls": calls,
                                                               "finished_at": utcnow()},
                                  expected=[SubtaskStatus.RUNNING])
    emit(store, inp.run_id, "subtask_finished", inp.subtask_id, turns=turns, tool_calls=record.tool_calls)
    return AgentTurnOutput(**_output(inp, run, record, "end_turn"))
