"""Test models that play the roles' turns per purpose and per sub-task (like pydantic-ai's ``TestModel``).

:class:`ScriptedModel` is a :class:`~stepcrew.llm.base.Model` (it goes through the LLM engine, its prompts and its
parsing), one layer above :mod:`stepcrew.llm.testing` because it tells the roles' prompts apart with
:func:`stepcrew.engines.prompts.describe` (the model port carries no label). :func:`label` gives that label to a
test's own callables. None of these call a provider, so they ignore ``ALLOW_MODEL_REQUESTS``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from stepcrew.engines.prompts import CallLabel, describe
from stepcrew.llm.base import Model, ModelRequest, ModelResponse
from stepcrew.llm.testing import FunctionModel, Turn, call_tool, call_tools, play, reply

__all__ = ["FunctionModel", "ScriptExhaustedError", "ScriptedModel", "call_tool", "call_tools", "label", "reply"]

Script: TypeAlias = "Sequence[Turn]"


def label(request: ModelRequest) -> CallLabel:
    """Which role call ``request`` is: ``.purpose`` (plan, act, synthesize, improve, review) and ``.subtask_id``."""
    return describe(request)


class ScriptExhaustedError(AssertionError):
    """A :class:`ScriptedModel` was asked for more turns than its script holds (the test under-scripted, or the
    code under test made more model calls than expected)."""


class ScriptedModel(Model):
    """Plays scripted turns, one per request, in order. Thread-safe.

    Which script a request reads, first match wins: ``by_subtask[<sub-task id>]`` for act turns;
    ``by_purpose[<purpose>]``; ``turns`` (the default script), where the purpose and sub-task come from
    :func:`label`. Each turn is a :class:`ModelResponse` (returned as a copy), an exception instance or class
    (raised), or a callable ``(ModelRequest) -> ModelResponse``. A script that runs out raises
    :class:`ScriptExhaustedError` naming it. ``requests`` records every request received, in arrival order.
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

    def _script_for(self, call: CallLabel) -> str:
        if call.purpose == "act" and f"subtask:{call.subtask_id}" in self._scripts:
            return f"subtask:{call.subtask_id}"
        if f"purpose:{call.purpose}" in self._scripts:
            return f"purpose:{call.purpose}"
        return "default"

    def request(self, request: ModelRequest) -> ModelResponse:
        """Play the next turn of the matching script. Raises the scripted exception, or ScriptExhaustedError."""
        call = label(request)
        with self._lock:
            self.requests.append(request)
            name = self._script_for(call)
            script = self._scripts[name]
            if not script:
                raise ScriptExhaustedError(
                    f"ScriptedModel script {name!r} is exhausted after {self._played[name]} turn(s) "
                    f"(purpose={call.purpose!r}, subtask_id={call.subtask_id!r})")
            turn = script.pop(0)
            self._played[name] += 1
        return play(turn, request)

    def remaining(self) -> dict[str, int]:
        """Unplayed turns per script (``default``, ``purpose:<p>``, ``subtask:<id>``): all 0 once fully used."""
        with self._lock:
            return {name: len(script) for name, script in self._scripts.items()}

    def requests_for(self, purpose: str) -> list[ModelRequest]:
        """The recorded requests of one purpose, in arrival order."""
        with self._lock:
            return [r for r in self.requests if label(r).purpose == purpose]
