"""Typed tool failures. :meth:`stepcrew.tools.base.Tool.invoke` turns each into a ``ToolError`` whose ``type`` is
the class's ``type`` attribute and whose ``message`` is ``str(exc)``: write messages the model can act on (one line,
no traceback, no secrets)."""

from __future__ import annotations


class ToolFailure(Exception):
    """Base of the failures a tool reports to the model. ``type`` becomes ``ToolError.type``."""

    type: str = "ToolFailed"


class CalculationError(ToolFailure):
    """The calculator could not evaluate the expression (syntax, forbidden construct, domain, overflow)."""

    type = "CalculationError"


class QueryError(ToolFailure):
    """The SQL was rejected (not a single SELECT) or DuckDB raised; the message is DuckDB's first line."""

    type = "QueryError"


class DatasetError(ToolFailure):
    """The run's dataset is missing, unreadable, of an unsupported kind or too big, or a column is unknown."""

    type = "DatasetError"


class LimitExceeded(ToolFailure):
    """A resource limit was hit (query time or memory limit)."""

    type = "LimitExceeded"
