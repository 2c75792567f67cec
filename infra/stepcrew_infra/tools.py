"""The tool functions: every :data:`stepcrew.wiring.FUNCTIONS` entry with a ``tool`` name, one
:class:`~stepcrew_infra.functions.StepcrewFunction` each. A tool's role follows its spec: ``calculator`` and
``remember`` touch nothing but their logs; ``write_section`` reads ``RUN#*`` items only (arguments by reference); the
dataset tools read the datasets bucket (through the tenant's reader role) and their ``CACHE#*`` items only."""

from __future__ import annotations

from stepcrew_infra import constants as C
from stepcrew_infra.functions import FunctionGroup


class Tools(FunctionGroup):
    """``functions``: tool function name -> :class:`~stepcrew_infra.functions.StepcrewFunction`."""

    NAMES = C.TOOL_FUNCTIONS
