"""Small helpers shared by the provider adapters (private: adapters only)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from stepcrew.llm import pricing
from stepcrew.llm.base import (
    ModelAuthError,
    ModelBadRequestError,
    ModelError,
    ModelThrottledError,
    ModelUnavailableError,
    ResponseFormat,
    ResponseUsage,
    StopReason,
    ToolSpec,
)
from stepcrew.llm import spotlight
from stepcrew.models import Message, ToolCall, ToolResult

#: Longest provider error detail kept in a ModelError message (the run record stores it; keep it short).
ERROR_DETAIL_MAX_CHARS = 300
#: Longest raw (unparseable) tool-argument string kept in ``ToolCall.arguments["_raw"]`` (it travels in state).
RAW_ARGUMENTS_MAX_CHARS = 1000
#: Anthropic and Bedrock Converse stop reasons of an answer cut short (reported as ``max_tokens``).
TRUNCATED_STOP_REASONS = frozenset({"max_tokens", "model_context_window_exceeded"})


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: What a forced reply tool says when its ``ResponseFormat`` gives no description.
REPLY_TOOL_DESCRIPTION = "Give your reply as this tool's input."


def reply_tool_spec(response_format: ResponseFormat) -> ToolSpec:
    """The tool that carries a native structured reply on providers that force a tool (Anthropic, Bedrock Converse):
    its name, its description (or :data:`REPLY_TOOL_DESCRIPTION`) and the reply's JSON Schema as parameters."""
    return ToolSpec(name=response_format.name, description=response_format.description or REPLY_TOOL_DESCRIPTION,
                    parameters=response_format.json_schema)


def system_text(messages: Iterable[Message]) -> str:
    """All ``system`` messages joined by blank lines (providers take the system prompt apart)."""
    return "\n\n".join(m.content for m in messages if m.role == "system" and m.content)


def tool_result_json(result: ToolResult) -> str:
    """What the model reads for one tool result: JSON of ``content`` when ok, else of the typed error, fenced as
    data (:func:`stepcrew.llm.spotlight.fence`); datamarked when the tool-output guard found instructions in it."""
    flagged = bool(result.screened and result.screened.injection)
    if result.ok:
        body: Any = spotlight.datamark(result.content) if flagged else result.content
        if result.truncated:
            body = {"content": body, "truncated": True}
    else:
        assert result.error is not None
        body = {"error": result.error.model_dump()}
    text = json.dumps(body, default=str, ensure_ascii=False)
    return spotlight.fence(text, source=f"tool {result.name} call {result.call_id}", flagged=flagged)


def merge_turns(turns: Iterable[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """Merge consecutive turns of the same role (tool results + a user note become one user turn) and drop
    empty ones: the Messages and Converse APIs want alternating, non-empty turns."""
    out: list[tuple[str, list[Any]]] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if out and out[-1][0] == role:
            out[-1][1].extend(blocks)
        else:
            out.append((role, list(blocks)))
    return out


def stop_reason(truncated: bool, calls: list[ToolCall]) -> StopReason:
    """The provider-neutral stop reason: ``max_tokens`` when the answer was cut short, else ``tool_use`` when it
    holds tool calls (whatever the provider said: some compatible servers answer "stop" with calls), else
    ``end_turn``."""
    return "max_tokens" if truncated else ("tool_use" if calls else "end_turn")


def cost(input_tokens: int, output_tokens: int, *model_ids: str | None, cache_read_tokens: int = 0,
         cache_write_tokens: int = 0) -> float:
    """Cost in USD of one response from :mod:`stepcrew.llm.pricing`, priced as the first of ``model_ids`` found in
    the table. Pass the id the provider reports as having answered first (the model actually used: an alias or a
    router may serve another model than the one asked for), then the id asked for; 0.0 if none is priced.
    ``input_tokens`` includes the cache reads and writes, which are billed at the row's cache prices."""
    for mid in model_ids:
        if mid and pricing.is_priced(mid):
            return pricing.cost_usd(mid, input_tokens, output_tokens, cache_read_tokens=cache_read_tokens,
                                    cache_write_tokens=cache_write_tokens)
    return 0.0


def usage(input_tokens: int, output_tokens: int, *model_ids: str | None, cache_read_tokens: int = 0,
          cache_write_tokens: int = 0) -> ResponseUsage:
    """The :class:`ResponseUsage` of one response: ``input_tokens`` is every prompt token (cached included), the
    cost as :func:`cost`. Cached counts a provider reports above ``input_tokens`` (it never should) are capped."""
    cache_read_tokens = min(cache_read_tokens, input_tokens)
    cache_write_tokens = min(cache_write_tokens, input_tokens - cache_read_tokens)
    return ResponseUsage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read_tokens,
                         cache_write_tokens=cache_write_tokens,
                         cost_usd=cost(input_tokens, output_tokens, *model_ids, cache_read_tokens=cache_read_tokens,
                                       cache_write_tokens=cache_write_tokens))


def int_or_zero(value: Any) -> int:
    """A provider's token count as an int >= 0 (None, absent or malformed -> 0)."""
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """Parse a tool call's JSON argument string. Empty -> ``{}``; malformed JSON or a non-object ->
    ``{"_raw": <clipped string>}`` so the tool answers with a typed InvalidArguments error instead of crashing."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": clip(raw, RAW_ARGUMENTS_MAX_CHARS)}
    if not isinstance(value, dict):
        return {"_raw": clip(raw, RAW_ARGUMENTS_MAX_CHARS)}
    return value


def status_error(provider: str, status: int, detail: str | None, *, key_hint: str) -> ModelError:
    """The ModelError for an HTTP error answer. 429 -> throttled; 408/409/5xx (incl. Anthropic's 529
    overloaded) -> unavailable; 401/403 -> auth (the provider's text is dropped: OpenAI echoes part of the key);
    other 4xx (400/404/413/422...) -> bad request, with the provider's detail clipped to
    :data:`ERROR_DETAIL_MAX_CHARS`."""
    tail = f": {clip(detail, ERROR_DETAIL_MAX_CHARS)}" if detail else ""
    if status == 429:
        return ModelThrottledError(f"{provider} rate limit (HTTP 429){tail}")
    if status in (408, 409) or status >= 500:
        return ModelUnavailableError(f"{provider} unavailable (HTTP {status}){tail}")
    if status in (401, 403):
        return ModelAuthError(f"{provider} rejected the API key (HTTP {status}); check {key_hint}")
    return ModelBadRequestError(f"{provider} rejected the request (HTTP {status}){tail}")
