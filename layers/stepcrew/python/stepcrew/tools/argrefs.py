"""Tool-call arguments by reference (claim-check): large arguments stay in the store, the state carries a reference.

The agent Lambda stores every assistant message, tool calls and their arguments included, in the sub-task's
conversation (``RUN#<run_id> / MSG#<subtask_id>#<seq>``, at most ``TOOL_ARGUMENTS_MAX_BYTES`` = 16 KiB of arguments
per call). When it hands a call to the agent state machine it puts the arguments in the state only when they are
small; otherwise the call's ``arguments`` are one key, :data:`REF_KEY`, holding an :class:`ArgumentsRef`
(run id + sub-task id + call id, with the arguments' size and SHA-256), about 250 bytes.

Which calls go by reference (:func:`by_reference`): those of a tool with ``arguments_by_reference`` (the tool's
function may read the run table, :data:`stepcrew.wiring.FunctionSpec.reads_arguments`) whose arguments are over
:data:`ARGUMENTS_INLINE_MAX_BYTES` (2 KiB) of UTF-8 JSON. Why a threshold, not always: each reference costs the tool
a Query of the sub-task's conversation (strongly consistent: one read unit per 4 KB read, and ~5-10 ms) and a boto3
client at its cold start (~200 ms, FACTS.md), and gives its function read access to the table; inline, 8 calls of at
most 2 KiB and their 8 results of at most 8 KiB keep the tool Map's state near 80 KiB, far below the 256 KiB Step
Functions payload quota (Step Functions quotas page). ``write_section`` is the one tool whose valid arguments
(a summary of 4,000 characters, 20 bullets, a table of 50 rows) pass 2 KiB; the other tools' argument models allow
less than 16 KiB and stay inline under the per-turn cap of 64 KiB.

Resolution (:meth:`ArgumentsReader.resolve`, in the tool Lambda before the tool runs or its cache is read) checks,
in order: the reference is well formed; the invocation names the run's tenant (``ToolContext.tenant``, from the run
record via the state, never from the model); the reference names the invocation's own run, sub-task and call; the
run belongs to that tenant (the read itself is scoped: ``get_run(run_id, tenant)``); the conversation's newest
assistant message holding that call (id and tool) with arguments of the same SHA-256 (a model may reuse
call ids across turns). Any failure refuses the call with
:class:`ArgumentsUnavailable` (``ToolError`` type ``ArgumentsUnavailable``, a message without ids or content); the
reason is logged with ids only. A model cannot forge a reference: the agent refuses any call whose arguments use
:data:`REF_KEY` (``InvalidArguments``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stepcrew.models import RunId, SubtaskId, ToolCall, ToolInvocation
from stepcrew.tools.errors import ToolFailure

logger = logging.getLogger(__name__)

#: The one key of a call's ``arguments`` when they travel by reference. Reserved: a model's call using it is refused.
REF_KEY = "_arguments_ref"
#: Arguments over this many UTF-8 bytes (compact JSON) go by reference, for tools that accept references.
ARGUMENTS_INLINE_MAX_BYTES = 2 * 1024


class ArgumentsUnavailable(ToolFailure):
    """The stored arguments of a call given by reference could not be read for this run (or the reference was not
    this run's): the call is refused. The model may call the tool again."""

    type = "ArgumentsUnavailable"


class ArgumentsRef(BaseModel):
    """Where a call's arguments are stored: the assistant message of sub-task ``subtask_id`` of run ``run_id``
    holding call ``call_id``. ``bytes``: their UTF-8 JSON size; ``sha256``: hex digest of :func:`canonical`."""

    model_config = ConfigDict(extra="forbid")

    run_id: RunId
    subtask_id: SubtaskId
    call_id: str = Field(min_length=1, max_length=64)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def canonical(arguments: dict[str, Any]) -> bytes:
    """The arguments as compact JSON with sorted keys, UTF-8 (what the digest covers)."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def arguments_bytes(arguments: dict[str, Any]) -> int:
    """UTF-8 bytes of ``arguments`` as compact JSON (what the state would carry)."""
    return len(json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))


def is_reference(call: ToolCall) -> bool:
    """True when the call's arguments use the reserved :data:`REF_KEY`."""
    return REF_KEY in call.arguments


def by_reference(call: ToolCall, run_id: str, subtask_id: str, threshold: int = ARGUMENTS_INLINE_MAX_BYTES) -> ToolCall:
    """``call`` as the state should carry it: unchanged when its arguments are at most ``threshold`` bytes or its
    tool does not accept references (unknown tools too); else with ``arguments = {REF_KEY: <ArgumentsRef>}``."""
    from stepcrew.tools.registry import TOOLS

    tool = TOOLS.get(call.name)
    size = arguments_bytes(call.arguments)
    if tool is None or not tool.arguments_by_reference or size <= threshold:
        return call
    ref = ArgumentsRef(run_id=run_id, subtask_id=subtask_id, call_id=call.call_id, bytes=size,
                       sha256=hashlib.sha256(canonical(call.arguments)).hexdigest())
    return call.model_copy(update={"arguments": {REF_KEY: ref.model_dump()}})


class ArgumentsReader:
    """Resolves references on a :class:`~stepcrew.store.base.RunStore` (``store``), or on the DynamoDB table of
    ``STEPCREW_TABLE_NAME`` built on first use (``store=None``), so a tool Lambda whose calls are all inline never
    builds a boto3 client."""

    def __init__(self, store: Any = None) -> None:
        self._store = store
        self._lock = threading.Lock()

    def _get_store(self) -> Any:
        with self._lock:
            if self._store is None:
                table = os.environ.get("STEPCREW_TABLE_NAME", "").strip()
                if not table:
                    raise ArgumentsUnavailable("stored arguments cannot be read here (no run table configured)")
                from stepcrew.store.dynamodb import DynamoRunStore

                self._store = DynamoRunStore(table)
            return self._store

    def resolve(self, invocation: ToolInvocation) -> ToolInvocation:
        """``invocation`` with its call's stored arguments in place of the reference (unchanged without one).
        Raises :class:`ArgumentsUnavailable` on any failed check (see the module docstring)."""
        call, ctx = invocation.call, invocation.context
        if not is_reference(call):
            return invocation
        ids = {"run_id": ctx.run_id, "subtask_id": ctx.subtask_id, "call_id": call.call_id, "tool": call.name}

        def refuse(reason: str) -> ArgumentsUnavailable:
            logger.warning("arguments reference refused", extra={**ids, "reason": reason})
            return ArgumentsUnavailable("the stored arguments of this call could not be read; call the tool again")

        if set(call.arguments) != {REF_KEY}:
            raise refuse("extra keys")
        try:
            ref = ArgumentsRef.model_validate(call.arguments[REF_KEY])
        except ValidationError:
            raise refuse("malformed") from None
        if ctx.tenant is None:
            raise refuse("no tenant")
        if (ref.run_id, ref.subtask_id, ref.call_id) != (ctx.run_id, ctx.subtask_id, call.call_id):
            raise refuse("not this call")
        from stepcrew.store.base import RunNotFoundError, StoreError

        store = self._get_store()
        try:
            store.get_run(ref.run_id, tenant=ctx.tenant)  # RunNotFoundError when another tenant's (or no) run
            messages = store.get_messages(ref.run_id, ref.subtask_id)
        except RunNotFoundError:
            raise refuse("not the tenant's run") from None
        except (StoreError, ValueError) as exc:
            raise refuse(type(exc).__name__) from None
        for message in reversed(messages):
            if message.role != "assistant":
                continue
            for stored in message.tool_calls:
                if (stored.call_id == ref.call_id and stored.name == call.name
                        and hashlib.sha256(canonical(stored.arguments)).hexdigest() == ref.sha256):
                    logger.debug("arguments resolved", extra={**ids, "bytes": ref.bytes})
                    return invocation.model_copy(update={"call": call.model_copy(
                        update={"arguments": stored.arguments})})
        raise refuse("not stored")
