"""OpenAI Chat Completions adapter; also serves OpenAI-compatible servers (Ollama, vLLM, llama.cpp server).

``import openai`` costs ~0.5 s (FACTS.md), so the SDK is imported only when the client is first built, inside
:meth:`OpenAIModel.request`, after :func:`check_allow_model_requests`. The client is built once per adapter with
``max_retries=0``: the state machine's Retry is the one retry layer.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from stepcrew.llm import _convert
from stepcrew.llm.base import (
    Model,
    ModelAuthError,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelUnavailableError,
    ResponseFormat,
    check_allow_model_requests,
)
from stepcrew.llm.secrets import KEY_ENV, resolve_api_key
from stepcrew.models import Message, ToolCall

logger = logging.getLogger(__name__)

_KEY_HINT = " or ".join(KEY_ENV["openai"])  # the env vars that configure the key
#: Key sent to an OpenAI-compatible server when none is configured (Ollama, vLLM and llama.cpp ignore it).
COMPAT_PLACEHOLDER_KEY = "not-needed"


class OpenAIModel(Model):
    """A model behind the OpenAI Chat Completions API.

    ``model``: the model id sent (``gpt-4o``; ``llama3.1`` on Ollama); also ``ModelResponse.model``. The cost is
    priced as the model the completion names (the one actually used), else ``model`` (unknown ids cost 0).
    ``base_url``: an OpenAI-compatible server (e.g. ``http://localhost:11434/v1``); None -> env ``OPENAI_BASE_URL``, else api.openai.com. ``api_key``: None ->
    :func:`stepcrew.llm.secrets.resolve_api_key` at the first request; with a custom base URL and no key
    configured, :data:`COMPAT_PLACEHOLDER_KEY` is sent. ``client``: an ``openai.OpenAI`` to use as is.
    ``request.settings.timeout_s`` is the per-request timeout in seconds. ``native_response_format``: send
    ``request.response_format`` as ``response_format`` json_schema (:func:`response_format`; api.openai.com, vLLM,
    Ollama >= 0.5 and llama.cpp's server accept it); False for a server that does not, so callers paste the schema
    into the prompt instead. Prompt caching is automatic on api.openai.com (prompts of 1,024 tokens or more); the
    usage reports ``prompt_tokens_details.cached_tokens`` as cache reads, priced at the model's cached-input rate.
    Errors: the :class:`ModelError` subclasses of :mod:`stepcrew.llm.base`.
    """

    provider = "openai"

    def __init__(self, model: str, *, api_key: str | None = None, client: Any = None, base_url: str | None = None,
                 native_response_format: bool = True):
        self.model = model
        self._native_response_format = native_response_format
        self._api_key = api_key
        self._client = client
        self._base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import openai  # lazy: ~0.5 s

                    self._client = openai.OpenAI(api_key=self._resolve_key(), base_url=self._base_url,
                                                 max_retries=0)
        return self._client

    def _resolve_key(self) -> str:
        if self._api_key:
            return self._api_key
        try:
            return resolve_api_key("openai")
        except ModelAuthError:
            if self._base_url:
                return COMPAT_PLACEHOLDER_KEY
            raise

    def request(self, request: ModelRequest) -> ModelResponse:
        """One Chat Completions call. See the class docstring for errors."""
        check_allow_model_requests()
        client = self._get_client()
        import openai  # already loaded by the client (or by the test that built it)

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.messages),
            "temperature": request.settings.temperature,
            "timeout": request.settings.timeout_s,
        }
        # api.openai.com wants max_completion_tokens (max_tokens is deprecated and refused by reasoning models);
        # compatible servers know max_tokens.
        kwargs["max_tokens" if self._base_url else "max_completion_tokens"] = request.settings.max_tokens
        if request.tools:
            kwargs["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                                 "parameters": t.parameters}}
                               for t in request.tools]
        if request.response_format is not None and self._native_response_format:
            kwargs["response_format"] = response_format(request.response_format)
        try:
            completion = client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            err = _map_error(exc)
            raise err from (None if isinstance(err, ModelAuthError) else exc)  # OpenAI's 401 text echoes the key
        response = self._to_response(completion)
        logger.debug("openai call done", extra={"model": self.model, "tools": len(request.tools),
                                                "stop_reason": response.stop_reason,
                                                "request_id": getattr(completion, "id", None)})
        return response

    def _to_response(self, completion: Any) -> ModelResponse:
        if not completion.choices:
            raise ModelUnavailableError("openai answered with no choices")
        choice = completion.choices[0]
        msg = choice.message
        calls = []
        for i, tc in enumerate(msg.tool_calls or []):
            fn = getattr(tc, "function", None)
            if fn is None:  # custom (non-function) tool calls are not used by stepcrew
                continue
            call_id = (tc.id or f"call_{i}")[:64]
            calls.append(ToolCall(call_id=call_id, name=fn.name, arguments=_convert.parse_arguments(fn.arguments)))
        usage = completion.usage
        # prompt_tokens already includes the cached ones (prompt_tokens_details.cached_tokens, reads only: OpenAI's
        # cache writes are automatic, free and not reported).
        input_tokens = _convert.int_or_zero(usage.prompt_tokens) if usage else 0
        output_tokens = _convert.int_or_zero(usage.completion_tokens) if usage else 0
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        cached = _convert.int_or_zero(getattr(details, "cached_tokens", None)) if details is not None else 0
        stop = _convert.stop_reason(choice.finish_reason == "length", calls)
        return ModelResponse(
            text=msg.content or "", tool_calls=calls, stop_reason=stop, model=self.model,
            usage=_convert.usage(input_tokens, output_tokens, getattr(completion, "model", None), self.model,
                                 cache_read_tokens=cached))

    def supports_response_format(self) -> bool:
        """True unless built with ``native_response_format=False`` (see the class docstring)."""
        return self._native_response_format


def response_format(rf: ResponseFormat) -> dict[str, Any]:
    """Chat Completions ``response_format`` for ``rf``: ``{"type": "json_schema", "json_schema": {"name",
    "schema", "strict"[, "description"]}}``. ``strict`` is ``rf.strict``: strict mode refuses (HTTP 400) a schema
    whose properties are not all required or that allows additional properties."""
    spec: dict[str, Any] = {"name": rf.name, "schema": rf.json_schema, "strict": rf.strict}
    if rf.description:
        spec["description"] = rf.description
    return {"type": "json_schema", "json_schema": spec}


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Provider-neutral messages -> Chat Completions ``messages``: one system message first; tool results as
    ``role: "tool"`` messages with ``tool_call_id``; a tool message's own text follows as a user message."""
    out: list[dict[str, Any]] = []
    system = _convert.system_text(messages)
    if system:
        out.append({"role": "system", "content": system})
    for m in messages:
        if m.role == "user":
            out.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": m.content or None}
            if m.tool_calls:
                item["tool_calls"] = [{"id": c.call_id, "type": "function",
                                       "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                      for c in m.tool_calls]
            out.append(item)
        elif m.role == "tool":
            out.extend({"role": "tool", "tool_call_id": r.call_id, "content": _convert.tool_result_json(r)}
                       for r in m.tool_results)
            if m.content:
                out.append({"role": "user", "content": m.content})
    return out


def _map_error(exc: Exception) -> ModelError:
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return ModelUnavailableError(f"openai unreachable ({type(exc).__name__})")
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}  # the SDK already unwrapped {"error": {...}}
        detail = body.get("message") if isinstance(body.get("message"), str) else type(exc).__name__
        return _convert.status_error("openai", exc.status_code, detail, key_hint=_KEY_HINT)
    return ModelError(f"openai: unexpected SDK error ({type(exc).__name__})")
