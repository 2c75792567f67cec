"""Short-term memory: each model call of a sub-task's agent loop is kept within a token budget per role.

The stored conversation (the sub-task's ledger, :mod:`stepcrew.domain.agent`) is never rewritten; :func:`fit`
computes what is *sent*. The request is cut in three parts:

- the **opening**: every message before the first assistant message (in an agent conversation: the system prompt
  and the sub-task prompt, the first user message). Never dropped, never altered;
- the **last turn**: from the newest assistant message to the end (that message, with its tool calls, and the
  ``tool`` message answering them; a conversation with no assistant message has no last turn). Never dropped, never
  altered: it is what the model has to answer now;
- the **middle**: the earlier turns, each an assistant message and the messages after it up to the next assistant
  message (its ``tool`` message).

When the whole conversation is over the budget, the middle is shrunk, least recent first:

1. the **oldest tool results** are summarized, one at a time, until the request fits: a result's ``content``
   becomes a short text (tool name, ok, size of the original in bytes, its first :data:`SUMMARY_HEAD_CHARS`
   characters, "call the tool again if you need it"); ``call_id``, ``name``, ``ok``, ``error`` and the guard's
   ``screened`` verdict are kept, so every tool call is still answered (providers reject a call without a result)
   and a flagged result is still datamarked in the prompt. Failed results (a typed error, no content) and results
   already shorter than their summary are left as they are;
2. if summarizing every middle result is not enough, the **oldest whole turns** are dropped (the assistant message
   and its tool message together: a call never loses its result, a result never loses its call), and one short
   user message (:func:`omission_note`) is put right after the opening to say how many were left out. Each number
   of dropped turns is tried with as few summaries as it needs, so the newest results stay whole when possible;
3. if the opening and the last turn alone are over the budget, the minimal list (opening, note, last turn) is
   returned and the report says ``over_budget``: :func:`fit` never raises; the call is made and the budget gate of
   the ladder (:mod:`stepcrew.resilience.ladder`) still guards the run's token and $ budgets.

The note is a ``user`` message of its own, after the sub-task prompt: the OpenAI converter sends it as a second
user message (Chat Completions accepts consecutive user messages) and the Anthropic and Bedrock converters merge it
into the sub-task prompt's user turn (:func:`stepcrew.llm._convert.merge_turns`), so roles still alternate.

Tokens are estimated by :func:`estimate_tokens`, the same estimate the ladder's budget gate reserves
(:func:`stepcrew.resilience.ladder.estimate_input_tokens` calls it), so "within the context budget" and "what the
gate reserves" are the same number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.llm.base import ToolSpec
from stepcrew.models import Message, ToolResult

#: The default prompt budget (tokens) of one model call of a role whose ``context_tokens`` is not set. The providers
#: stepcrew supports out of the box serve at least a 128,000-token context window (OpenAI's gpt-4o / gpt-4o-mini;
#: Claude Haiku 4.5 and Sonnet 4.5 serve 200,000 on the Anthropic API and Bedrock): 12,000 input tokens plus the
#: default 2,048-token output cap is about a ninth of the smallest, so no call comes near a window, and an
#: OpenAI-compatible local server with a small window can be given a lower ``context_tokens``. It still holds the
#: opening (a system prompt of ~1,000 tokens and a sub-task prompt whose long texts are clipped to 6,000 characters
#: each) and several whole 8 KiB tool results (~2,400 tokens each at 3.5 characters per token). It also bounds cost:
#: every turn resends the conversation, so a sub-task of 8 model calls sends at most ~96,000 input tokens.
DEFAULT_CONTEXT_TOKENS = 12_000
#: Characters per token assumed by the estimate: 3.5, below the ~4 of English prose, for JSON and numbers.
CHARS_PER_TOKEN = 3.5
#: Tokens counted per message (role, separators).
MESSAGE_OVERHEAD_TOKENS = 8
#: Tokens a provider adds to a request with tools that the messages do not show: Anthropic documents a tool-use
#: system prompt of 313-346 tokens for its current models ("Tool use with Claude", pricing section); reserved as 400.
TOOLS_OVERHEAD_TOKENS = 400
#: Characters of the original result kept in its summary.
SUMMARY_HEAD_CHARS = 200
#: How a summarized result's content starts (a result that starts so is never summarized again).
SUMMARY_PREFIX = "[earlier tool result, summarized to save context]"


class WindowReport(BaseModel):
    """What :func:`fit` did to one request: the budget, the estimates before and after (tokens, by
    :func:`estimate_tokens`), how many tool results it summarized and how many earlier turns it dropped, and
    whether the request is still over the budget (the opening and the last turn alone exceed it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    budget_tokens: int = Field(ge=0)
    tokens_before: int = Field(ge=0)
    tokens_after: int = Field(ge=0)
    results_summarized: int = Field(default=0, ge=0)
    turns_dropped: int = Field(default=0, ge=0)
    over_budget: bool = False


def message_chars(message: Message) -> int:
    """Characters one message counts for in the estimate: its text, the JSON of its tool calls and the JSON of its
    tool results."""
    size = len(message.content)
    if message.tool_calls:
        size += len(json.dumps([c.model_dump(mode="json") for c in message.tool_calls]))
    if message.tool_results:
        size += len(json.dumps([r.model_dump(mode="json") for r in message.tool_results], default=str))
    return size


def _tokens(chars: int, messages: int, tools_chars: int, with_tools: bool) -> int:
    return (math.ceil((chars + tools_chars) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * messages
            + (TOOLS_OVERHEAD_TOKENS if with_tools else 0))


def estimate_tokens(messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
    """An estimate of a request's input tokens, meant to be at or above the real count: characters of the message
    texts, tool calls, tool results (:func:`message_chars`) and tool schemas / :data:`CHARS_PER_TOKEN`, plus
    :data:`MESSAGE_OVERHEAD_TOKENS` per message and :data:`TOOLS_OVERHEAD_TOKENS` when tools are sent."""
    return _tokens(sum(message_chars(m) for m in messages), len(messages),
                   sum(len(t.model_dump_json()) for t in tools), bool(tools))


def summarize_result(result: ToolResult) -> ToolResult | None:
    """``result`` with its content replaced by a short summary (see the module docstring), or None when it is not
    summarized: a failed result, an already summarized one, or one no longer than its summary would be."""
    if not result.ok or (isinstance(result.content, str) and result.content.startswith(SUMMARY_PREFIX)):
        return None
    text = result.content if isinstance(result.content, str) else json.dumps(result.content, default=str,
                                                                             ensure_ascii=False)
    head = text[:SUMMARY_HEAD_CHARS] + ("…" if len(text) > SUMMARY_HEAD_CHARS else "")
    summary = (f"{SUMMARY_PREFIX} {result.name}, ok, {len(text.encode())} bytes originally; it began: {head} "
               "(call the tool again if you need it)")
    summarized = result.model_copy(update={"content": summary})
    original_size = len(json.dumps(result.model_dump(mode="json"), default=str))
    return summarized if len(json.dumps(summarized.model_dump(mode="json"), default=str)) < original_size else None


def omission_note(turns: int) -> Message:
    """The user message that says ``turns`` earlier turns were left out of this request."""
    what = "1 earlier turn" if turns == 1 else f"{turns} earlier turns"
    return Message(role="user", content=f"[{what} of this sub-task (tool calls and their results) omitted to fit "
                                        "the context budget; call a tool again if you need one of those results]")


def _variants(message: Message) -> list[Message]:
    """``message`` with its first 0, 1, 2... summarizable tool results summarized (index = how many)."""
    out = [message]
    results = list(message.tool_results)
    for i, r in enumerate(results):
        short = summarize_result(r)
        if short is not None:
            results[i] = short
            out.append(message.model_copy(update={"tool_results": list(results)}))
    return out


def fit(messages: list[Message], budget_tokens: int,
        tools: Sequence[ToolSpec] = ()) -> tuple[list[Message], WindowReport]:
    """The messages to send so that :func:`estimate_tokens` of them and ``tools`` is at most ``budget_tokens``,
    and what was done (:class:`WindowReport`); see the module docstring for the rules. Pure and deterministic: the
    input list and its messages are not changed (changed messages are copies). Never raises on a budget that
    cannot be met: the minimal list comes back with ``over_budget=True``."""
    messages = list(messages)
    tools_chars, with_tools = sum(len(t.model_dump_json()) for t in tools), bool(tools)
    before = estimate_tokens(messages, tools)
    if before <= budget_tokens:
        return messages, WindowReport(budget_tokens=budget_tokens, tokens_before=before, tokens_after=before)

    assistants = [i for i, m in enumerate(messages) if m.role == "assistant"]
    first, last = (assistants[0], assistants[-1]) if assistants else (len(messages), len(messages))
    opening, tail = messages[:first], messages[last:]
    starts = [i for i in assistants if i < last]  # each middle turn starts at an assistant message
    variants = {i: _variants(messages[i]) for i in range(first, last)}
    sizes = {i: [message_chars(v) for v in vs] for i, vs in variants.items()}
    fixed = sum(message_chars(m) for m in opening) + sum(message_chars(m) for m in tail)
    steps = [(i, k) for i in range(first, last) for k in range(1, len(variants[i]))]  # oldest result first

    def fits(chars: int, count: int) -> bool:
        return _tokens(chars, count, tools_chars, with_tools) <= budget_tokens

    def build(dropped: int, start: int, done: dict[int, int]) -> tuple[list[Message], WindowReport]:
        kept = [variants[i][done.get(i, 0)] for i in range(start, last)]
        out = [*opening, *([omission_note(dropped)] if dropped else []), *kept, *tail]
        after = estimate_tokens(out, tools)
        return out, WindowReport(budget_tokens=budget_tokens, tokens_before=before, tokens_after=after,
                                 results_summarized=sum(done.values()), turns_dropped=dropped,
                                 over_budget=after > budget_tokens)

    for dropped in range(len(starts) + 1):
        start = starts[dropped] if dropped < len(starts) else last
        note = message_chars(omission_note(dropped)) if dropped else 0
        chars = fixed + note + sum(sizes[i][0] for i in range(start, last))
        count = len(opening) + len(tail) + (1 if dropped else 0) + (last - start)
        done: dict[int, int] = {}
        if fits(chars, count):
            return build(dropped, start, done)
        for i, k in steps:
            if i < start:
                continue
            chars += sizes[i][k] - sizes[i][k - 1]
            done[i] = k
            if fits(chars, count):
                return build(dropped, start, done)
    return build(len(starts), last, {})  # the opening and the last turn alone are over the budget


def engine_call_fields(report: WindowReport) -> dict[str, Any]:
    """The report's numbers as :class:`~stepcrew.engines.base.EngineCall` fields (``context_*``)."""
    return {"context_budget_tokens": report.budget_tokens, "context_tokens": report.tokens_after,
            "context_summarized": report.results_summarized, "context_dropped": report.turns_dropped}
