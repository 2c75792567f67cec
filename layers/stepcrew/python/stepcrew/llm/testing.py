"""Test models shipped with the library (like pydantic-ai's ``TestModel`` / ``FunctionModel``).

- :class:`FunctionModel` answers every request with a function.
- :class:`stepcrew.engines.testing.ScriptedModel` (one layer up: it tells the roles' prompts apart) plays given
  turns per purpose and per sub-task.
- :func:`reply`, :func:`call_tool`, :func:`call_tools` build responses; :func:`override_allow_model_requests`
  flips the real-request switch for a block.

None of these call a provider, so they ignore ``ALLOW_MODEL_REQUESTS``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

from stepcrew.llm import base, pricing
from stepcrew.llm.base import Model, ModelRequest, ModelResponse, ResponseUsage
from stepcrew.models import ToolCall

Turn: TypeAlias = "ModelResponse | BaseException | type[BaseException] | Callable[[ModelRequest], ModelResponse]"

_call_ids = itertools.count(1)
_call_ids_lock = threading.Lock()


def _next_call_id() -> str:
    with _call_ids_lock:
        return f"call_{next(_call_ids)}"


def _usage(model: str, input_tokens: int, output_tokens: int) -> ResponseUsage:
    return ResponseUsage(input_tokens=input_tokens, output_tokens=output_tokens,
                         cost_usd=pricing.cost_usd(model, input_tokens, output_tokens))


def reply(text: str, *, input_tokens: int = 10, output_tokens: int = 20, model: str = "scripted") -> ModelResponse:
    """A final answer (``stop_reason="end_turn"``). Cost comes from :mod:`stepcrew.llm.pricing` for ``model``
    (0 for the default ``"scripted"``)."""
    return ModelResponse(text=text, stop_reason="end_turn", model=model,
                         usage=_usage(model, input_tokens, output_tokens))


def call_tools(*calls: tuple[str, dict[str, Any]], text: str = "", input_tokens: int = 10, output_tokens: int = 20,
               model: str = "scripted") -> ModelResponse:
    """A turn asking for several tools at once: ``call_tools(("sql_query", {...}), ("stats", {...}))``. Call ids
    are ``call_<n>`` from a process-wide counter."""
    if not calls:
        raise ValueError("call_tools needs at least one (name, arguments) pair")
    return ModelResponse(
        text=text, stop_reason="tool_use", model=model,
        tool_calls=[ToolCall(call_id=_next_call_id(), name=name, arguments=dict(args)) for name, args in calls],
        usage=_usage(model, input_tokens, output_tokens))


def call_tool(name: str, arguments: dict[str, Any], call_id: str | None = None, *, text: str = "",
              input_tokens: int = 10, output_tokens: int = 20, model: str = "scripted") -> ModelResponse:
    """A turn asking for one tool (``stop_reason="tool_use"``). ``call_id`` None -> ``call_<n>``."""
    response = call_tools((name, arguments), text=text, input_tokens=input_tokens, output_tokens=output_tokens,
                          model=model)
    if call_id is not None:
        response.tool_calls[0] = ToolCall(call_id=call_id, name=name, arguments=dict(arguments))
    return response


def play(turn: Any, request: ModelRequest) -> ModelResponse:
    """Play one scripted turn: a response (copied), an exception (raised) or a callable of the request."""
    if isinstance(turn, ModelResponse):
        return turn.model_copy(deep=True)
    if isinstance(turn, BaseException) or (isinstance(turn, type) and issubclass(turn, BaseException)):
        raise turn
    if callable(turn):
        result = turn(request)
        if not isinstance(result, ModelResponse):
            raise TypeError(f"a scripted callable returned {type(result).__name__}, not ModelResponse")
        return result
    raise TypeError(f"a script turn must be a ModelResponse, an exception or a callable, not {type(turn).__name__}")


class FunctionModel(Model):
    """Answers each request with ``fn(request)`` (which may raise). Records ``requests``. Thread-safe as far as
    ``fn`` is. ``native_response_format``: what :meth:`supports_response_format` answers."""

    provider = "function"

    def __init__(self, fn: Callable[[ModelRequest], ModelResponse], *, model: str = "function",
                 native_response_format: bool = False):
        self.model = model
        self.native_response_format = native_response_format
        self.requests: list[ModelRequest] = []
        self._fn = fn
        self._lock = threading.Lock()

    def request(self, request: ModelRequest) -> ModelResponse:
        """Record the request and return ``fn(request)``; TypeError if it is not a ModelResponse."""
        with self._lock:
            self.requests.append(request)
        return play(self._fn, request)

    def supports_response_format(self) -> bool:
        """``native_response_format`` (default False: engines paste the reply schema into the prompt, as for a
        provider without a native mechanism; True plays a provider that has one)."""
        return self.native_response_format


@contextmanager
def override_allow_model_requests(allow: bool) -> Iterator[None]:
    """Set :data:`stepcrew.llm.base.ALLOW_MODEL_REQUESTS` to ``allow`` for the block, then restore it.
    Process-wide (not per thread): use it around a whole test."""
    previous = base.ALLOW_MODEL_REQUESTS
    base.ALLOW_MODEL_REQUESTS = allow
    try:
        yield
    finally:
        base.ALLOW_MODEL_REQUESTS = previous
