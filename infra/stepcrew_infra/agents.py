"""The role functions (guard, planner, approval, agent, synthesizer, reviewer, finalize, memory): every
:data:`stepcrew.wiring.FUNCTIONS` entry that is neither a tool nor the HTTP API handler, one
:class:`~stepcrew_infra.functions.StepcrewFunction` each."""

from __future__ import annotations

from stepcrew_infra import constants as C
from stepcrew_infra.functions import FunctionGroup


class Agents(FunctionGroup):
    """``functions``: role function name -> :class:`~stepcrew_infra.functions.StepcrewFunction`."""

    NAMES = C.ROLE_FUNCTIONS
