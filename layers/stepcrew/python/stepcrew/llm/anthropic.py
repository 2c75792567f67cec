"""Anthropic Messages API adapter.

``import anthropic`` costs ~1.9 s (FACTS.md, import cost), so the SDK is imported only when the client is first
built, inside :meth:`AnthropicModel.request`, after :func:`check_allow_model_requests`. The client is built once
per adapter (a warm Lambda reuses it) with ``max_retries=0``: the state machine's Retry is the one retry layer.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from stepcrew.llm import _convert, caching
from stepcrew.llm.base import (
    Model,
    ModelAuthError,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelUnavailableError,
    check_allow_model_requests,
)
from stepcrew.llm.secrets import KEY_ENV, resolve_api_key
from stepcrew.models import Message, ToolCall

logger = logging.getLogger(__name__)

_KEY_HINT = " or ".join(KEY_ENV["anthropic"])  # the env vars that configure the key


class AnthropicModel(Model):
    """Claude through the Anthropic Messages API.

    ``model``: an Anthropic model id (``claude-sonnet-4-5``); it is what is sent and what ``ModelResponse.model``
    reports (``request.settings.model`` is not sent: an adapter is bound to one model). The cost is priced as the
    model the answer names (the one actually used), falling back to ``model`` if that id is not in the table.
    ``api_key``: None -> :func:`stepcrew.llm.secrets.resolve_api_key` at the first request. ``client``: an
    ``anthropic.Anthropic`` to use as is (tests inject one with a mock HTTP transport). ``base_url``: a proxy or
    gateway; None -> the SDK default. ``request.settings.timeout_s`` is the per-request timeout in seconds.
    ``request.settings.temperature`` is not sent: the SDK (2.x) speaks API version 2026-10-21, which refuses
    sampling parameters (temperature/top_p/top_k) with HTTP 400 and whose SDK has no such argument.
    Prompt caching: the stable prefix (tools, then system) carries ``cache_control`` markers when it reaches the
    model's minimum cacheable length (:func:`request_prefix`, :mod:`stepcrew.llm.caching`); the usage reports the
    cache reads and writes and prices them at Anthropic's cache rates. ``request.response_format`` is sent as a
    forced tool whose input becomes the response text (:func:`request_prefix`).
    Errors: :class:`ModelRequestsForbiddenError`, :class:`ModelThrottledError`, :class:`ModelUnavailableError`,
    :class:`ModelAuthError`, :class:`ModelBadRequestError` (from :mod:`stepcrew.llm.base`).
    """

    provider = "anthropic"

    def __init__(self, model: str, *, api_key: str | None = None, client: Any = None, base_url: str | None = None):
        self.model = model
        self._api_key = api_key
        self._client = client
        self._base_url = base_url
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import anthropic  # lazy: ~1.9 s

                    key = self._api_key or resolve_api_key("anthropic")
                    self._client = anthropic.Anthropic(api_key=key, base_url=self._base_url, max_retries=0)
        return self._client

    def request(self, request: ModelRequest) -> ModelResponse:
        """One Messages API call. See the class docstring for errors."""
        check_allow_model_requests()
        client = self._get_client()
        import anthropic  # already loaded by the client (or by the test that built it)

        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.settings.max_tokens,
            "messages": to_anthropic_messages(request.messages),
            "timeout": request.settings.timeout_s,
        }
        kwargs.update(request_prefix(self.model, request))
        try:
            message = client.messages.create(**kwargs)
        except anthropic.AnthropicError as exc:
            err = _map_error(exc)
            raise err from (None if isinstance(err, ModelAuthError) else exc)  # never chain an auth error's text
        response = self._to_response(message, reply_tool(request))
        logger.debug("anthropic call done", extra={"model": self.model, "tools": len(request.tools),
                                                   "stop_reason": response.stop_reason,
                                                   "request_id": getattr(message, "id", None)})
        return response

    def supports_response_format(self) -> bool:
        """True: ``response_format`` is sent as a forced tool (:func:`request_prefix`)."""
        return True

    def _to_response(self, message: Any, reply_tool_name: str | None = None) -> ModelResponse:
        texts: list[str] = []
        replies: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use" and reply_tool_name and block.name == reply_tool_name:
                replies.append(json.dumps(block.input, ensure_ascii=False))  # the structured reply, as JSON text
            elif block.type == "tool_use":
                args = block.input if isinstance(block.input, dict) else {"_raw": str(block.input)}
                calls.append(ToolCall(call_id=block.id, name=block.name, arguments=args))
        u = message.usage
        # Anthropic's input_tokens excludes the cache; ResponseUsage.input_tokens counts every prompt token.
        read = _convert.int_or_zero(getattr(u, "cache_read_input_tokens", None))
        write = _convert.int_or_zero(getattr(u, "cache_creation_input_tokens", None))
        input_tokens = _convert.int_or_zero(u.input_tokens) + read + write
        stop = _convert.stop_reason(message.stop_reason in _convert.TRUNCATED_STOP_REASONS, calls)
        return ModelResponse(
            text=replies[0] if replies else "".join(texts), tool_calls=calls, stop_reason=stop, model=self.model,
            usage=_convert.usage(input_tokens, _convert.int_or_zero(u.output_tokens), message.model, self.model,
                                 cache_read_tokens=read, cache_write_tokens=write))


#: The cache marker of the Messages API (5-minute entry, the default TTL).
CACHE_CONTROL = {"type": "ephemeral"}


def reply_tool(request: ModelRequest) -> str | None:
    """The name of the tool that carries ``request.response_format`` (a forced tool), or None when it is not sent
    natively: no format, or the request offers tools of its own (forcing one tool would forbid the others; the
    caller's text-parsing fallback applies)."""
    rf = request.response_format
    return rf.name if rf is not None and not request.tools else None


def request_prefix(model: str, request: ModelRequest) -> dict[str, Any]:
    """The ``system``, ``tools`` and ``tool_choice`` arguments of a Messages API call.

    - ``system``: all system messages joined; one text block marked with :data:`CACHE_CONTROL` when tools + system
      reach ``model``'s minimum cacheable length (:func:`stepcrew.llm.caching.cache_marks`), else a plain string.
    - ``tools``: the request's tools; the last one marked when the tools alone reach that minimum.
    - native structured output: ``request.response_format`` becomes a tool (its JSON Schema as ``input_schema``,
      ``strict`` passed on) forced with ``tool_choice={"type": "tool", "name": ...}``; the adapter returns its input
      as the response text (JSON). Not sent when the request has tools of its own (:func:`reply_tool`).
    """
    out: dict[str, Any] = {}
    tools: list[dict[str, Any]] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                                   for t in request.tools]
    sent_specs = list(request.tools)
    rf = request.response_format
    if reply_tool(request) is not None and rf is not None:
        spec = _convert.reply_tool_spec(rf)
        tool: dict[str, Any] = {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}
        if rf.strict:
            tool["strict"] = True
        tools.append(tool)
        sent_specs.append(spec)
        out["tool_choice"] = {"type": "tool", "name": rf.name}
    system = _convert.system_text(request.messages)
    mark_system, mark_tools = caching.cache_marks(model, system, sent_specs)
    if system:  # a plain string unless marked (a marker needs the block form)
        out["system"] = [{"type": "text", "text": system, "cache_control": dict(CACHE_CONTROL)}] if mark_system \
            else system
    if tools:
        if mark_tools:
            tools[-1] = {**tools[-1], "cache_control": dict(CACHE_CONTROL)}
        out["tools"] = tools
    return out


def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Provider-neutral messages -> Messages API ``messages`` (system messages are left out: they go to
    ``system``). Tool results become ``tool_result`` blocks of a user turn; same-role turns are merged."""
    turns: list[tuple[str, list[Any]]] = []
    for m in messages:
        text = [{"type": "text", "text": m.content}] if m.content else []
        if m.role == "user":
            turns.append(("user", text))
        elif m.role == "assistant":
            uses = [{"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
            turns.append(("assistant", text + uses))
        elif m.role == "tool":
            results = [{"type": "tool_result", "tool_use_id": r.call_id, "content": _convert.tool_result_json(r),
                        "is_error": not r.ok} for r in m.tool_results]
            turns.append(("user", results + text))
    return [{"role": role, "content": blocks} for role, blocks in _convert.merge_turns(turns)]


def _map_error(exc: Exception) -> ModelError:
    import anthropic

    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return ModelUnavailableError(f"anthropic unreachable ({type(exc).__name__})")
    if isinstance(exc, anthropic.APIStatusError):
        detail = getattr(exc, "api_message", None) or type(exc).__name__
        return _convert.status_error("anthropic", exc.status_code, detail, key_hint=_KEY_HINT)
    return ModelError(f"anthropic: unexpected SDK error ({type(exc).__name__})")
