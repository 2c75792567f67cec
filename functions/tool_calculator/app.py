"""Lambda handler of the ``calculator`` tool: ToolInvocation in, ToolResult out (stepcrew.tools.calculator).

A malformed event raises pydantic's ValidationError; the agent state machine catches it into a ToolFailed result.

No Powertools Tracer here, by design: this tool makes no downstream call, so the X-Ray SDK would add only its
~0.5 s import to every cold start (bench/local_run.py); the function's active tracing (set by the stack) still
records each invocation.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.tools.base import invoke_event
from stepcrew.tools.calculator import Calculator

logger = Logger()
TOOL = Calculator()


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments ``{"expression"}``). Returns the ToolResult as JSON,
    content ``{"expression", "value"}``, at most TOOL_OUTPUT_MAX_BYTES (8 KiB). Tool problems are ``ok: false``
    results; a malformed event raises pydantic's ValidationError."""
    return invoke_event(TOOL, event, logger)
