"""Errors raised by the domain functions (one per role, see :mod:`stepcrew.domain`).

The Lambda runtime reports an unhandled exception's class name as ``errorType``; the state machines' Catch
clauses and :func:`stepcrew.domain.finalize.failure_reason` read it, so the class names below are part of the
contract: do not rename them lightly. Messages are one line and carry ids and limits, never prompts or outputs.
"""

from __future__ import annotations

from stepcrew.text import describe_validation_error, one_line  # noqa: F401  (the domain imports both from here)




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


class ToolLoopError(DomainError):
    """A worker asked for the same tool call (same tool, same arguments) ``LOOP_REPEATS`` times: the sub-task ends
    with this reason instead of spending its turns (and the budget) on a loop."""


class ToolNotDeployedError(DomainError):
    """A tool the sub-task may use has no function in the agent ASL's ``tool_functions`` (a deployment that does not
    match the crew): the sub-task fails before any model call."""


class MaxTurnsExceededError(DomainError):
    """A sub-task would need more model calls than ``Budget.max_turns_per_subtask``. The sub-task fails."""


class EmptyAnswerError(DomainError):
    """A worker answered its sub-task with no text twice (it was asked once to answer again). The sub-task fails
    with this reason: an empty answer is never a finished sub-task."""


class MissingInputError(DomainError):
    """A step needs something an earlier step should have stored (plan, sub-task output, report, review)."""


class EmptyOutputError(DomainError):
    """A model returned an empty report."""


class OutputRejectedError(DomainError):
    """The output guard refused the final report (missing, empty or over the size cap). The run fails."""
