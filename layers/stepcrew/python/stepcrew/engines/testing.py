"""Test models shipped with the library (like pydantic-ai's ``TestModel`` / ``FunctionModel``).

- :class:`ScriptedModel` plays given turns in order: responses, exceptions to raise, or callables of the request.
  Separate scripts per purpose (plan/act/synthesize/improve/review) and per sub-task keep tests deterministic
  when sub-tasks run in parallel threads.
- :class:`FunctionModel` answers every request with a function.
- :func:`reply`, :func:`call_tool`, :func:`call_tools` build responses; :func:`override_allow_model_requests`
  flips the real-request switch for a block.

None of these call a provider, so they ignore ``ALLOW_MODEL_REQUESTS``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

from stepcrew.llm import base, pricing
from stepcrew.llm.base import Model, ModelRequest, ModelResponse, ResponseUsage
from stepcrew.models import ToolCall

Turn: TypeAlias = "ModelResponse | BaseException | type[BaseException] | Callable[[ModelRequest], ModelResponse]"
Script: TypeAlias = "Sequence[Turn]"

_call_ids = itertools.count(1)
_call_ids_lock = threading.Lock()


class ScriptExhaustedError(AssertionError):
    """A :class:`ScriptedModel` was asked for more turns than its script holds (the test under-scripted, or the
    code under test made more model calls than expected)."""


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


def _play(turn: Any, request: ModelRequest) -> ModelResponse:
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


class ScriptedModel(Model):
    """Plays scripted turns, one per request, in order. Thread-safe.

    Which script a request reads, first match wins: ``by_subtask[request.context["subtask_id"]]`` for
    ``purpose == "act"``; ``by_purpose[request.purpose]``; ``turns`` (the default script). Each turn is a
    :class:`ModelResponse` (returned as a copy), an exception instance or class (raised), or a callable
    ``(ModelRequest) -> ModelResponse``. A script that runs out raises :class:`ScriptExhaustedError` naming it.
    ``requests`` records every request received, in arrival order.
    """

    provider = "scripted"

    def __init__(self, turns: Script = (), *, by_purpose: Mapping[str, Script] | None = None,
                 by_subtask: Mapping[str, Script] | None = None, model: str = "scripted"):
        self.model = model
        self.requests: list[ModelRequest] = []
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Any]] = {"default": list(turns)}
        self._scripts.update({f"purpose:{p}": list(s) for p, s in (by_purpose or {}).items()})
        self._scripts.update({f"subtask:{t}": list(s) for t, s in (by_subtask or {}).items()})
        self._played: dict[str, int] = dict.fromkeys(self._scripts, 0)

    def _script_for(self, request: ModelRequest) -> str:
        subtask = request.context.get("subtask_id")
        if request.purpose == "act" and f"subtask:{subtask}" in self._scripts:
            return f"subtask:{subtask}"
        if f"purpose:{request.purpose}" in self._scripts:
            return f"purpose:{request.purpose}"
        return "default"

    def request(self, request: ModelRequest) -> ModelResponse:
        """Play the next turn of the matching script. Raises the scripted exception, or ScriptExhaustedError."""
        with self._lock:
            self.requests.append(request)
            name = self._script_for(request)
            script = self._scripts[name]
            if not script:
                raise ScriptExhaustedError(
                    f"ScriptedModel script {name!r} is exhausted after {self._played[name]} turn(s) "
                    f"(purpose={request.purpose!r}, subtask_id={request.context.get('subtask_id')!r})")
            turn = script.pop(0)
            self._played[name] += 1
        return _play(turn, request)

    def remaining(self) -> dict[str, int]:
        """Unplayed turns per script (``default``, ``purpose:<p>``, ``subtask:<id>``): all 0 once fully used."""
        with self._lock:
            return {name: len(script) for name, script in self._scripts.items()}

    def requests_for(self, purpose: str) -> list[ModelRequest]:
        """The recorded requests of one purpose, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.purpose == purpose]


class FunctionModel(Model):
    """Answers each request with ``fn(request)`` (which may raise). Records ``requests``. Thread-safe as far as
    ``fn`` is."""

    provider = "function"

    def __init__(self, fn: Callable[[ModelRequest], ModelResponse], *, model: str = "function"):
        self.model = model
        self.requests: list[ModelRequest] = []
        self._fn = fn
        self._lock = threading.Lock()

    def request(self, request: ModelRequest) -> ModelResponse:
        """Record the request and return ``fn(request)``; TypeError if it is not a ModelResponse."""
        with self._lock:
            self.requests.append(request)
        return _play(self._fn, request)


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
