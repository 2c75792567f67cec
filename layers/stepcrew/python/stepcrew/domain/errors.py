"""Errors raised by the domain functions (one per role, see :mod:`stepcrew.domain`).

The Lambda runtime reports an unhandled exception's class name as ``errorType``; the state machines' Catch
clauses and :func:`stepcrew.domain.finalize.failure_reason` read it, so the class names below are part of the
contract: do not rename them lightly. Messages are one line and carry ids and limits, never prompts or outputs.
"""

from __future__ import annotations

from pydantic import ValidationError


class DomainError(Exception):
    """Base of the errors below."""


class InputRejectedError(DomainError):
    """The run's input failed screening (goal too long, control characters...). The run fails."""


class RunNotActiveError(DomainError):
    """The run is already terminal (SUCCEEDED/FAILED) or in a status where this step cannot run."""


class SubtaskStateError(DomainError):
    """A sub-task is unknown, already failed, or its conversation does not match the event (e.g. tool results
    that answer no pending tool call)."""


class BudgetExceededError(DomainError):
    """The run's usage passed ``Budget.max_tokens`` or ``Budget.max_cost_usd``. The run fails."""


class MaxTurnsExceededError(DomainError):
    """A sub-task would need more model calls than ``Budget.max_turns_per_subtask``. The sub-task fails."""


class MissingInputError(DomainError):
    """A step needs something an earlier step should have stored (plan, sub-task output, report, review)."""


class EmptyOutputError(DomainError):
    """A model returned an empty report."""


class OutputRejectedError(DomainError):
    """The output guard refused the final report (missing, empty or over the size cap). The run fails."""


def one_line(text: str, limit: int = 4000) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space, clipped to ``limit``
    characters (an ellipsis marks the cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """The first error of a pydantic ``ValidationError`` as one readable line, e.g.
    ``"workers.0.tools.1: String should match pattern '^[a-z]...' (got 'Bad Tool'); 2 more error(s)"``."""
    errors = exc.errors(include_url=False)
    if not errors:
        return one_line(f"{prefix}{exc}")
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {one_line(repr(got), 80)})"
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return one_line(f"{prefix}{loc}: {first.get('msg', 'invalid')}{shown}{more}")
