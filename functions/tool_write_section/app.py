"""Lambda handler of the ``write_section`` tool: ToolInvocation in, ToolResult out (stepcrew.tools.write_section).

A malformed event raises pydantic's ValidationError; the agent state machine catches it into a ToolFailed result.

No Powertools Tracer here, by design: this tool makes no downstream call but the rare DynamoDB read of arguments given
by reference, so the X-Ray SDK would add only its ~0.5 s import to every cold start (bench/local_run.py); the
function's active tracing (set by the stack) still records each invocation.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.tools.argrefs import ArgumentsReader
from stepcrew.tools.base import invoke_event
from stepcrew.tools.write_section import WriteSection

logger = Logger()
TOOL = WriteSection()
#: Arguments over 2 KiB come by reference: read from the run's conversation (STEPCREW_TABLE_NAME, read-only IAM on
#: RUN#* items), tenant-checked; the table client is built on the first such call only.
ARGUMENTS = ArgumentsReader()


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments ``{"heading", "summary", "bullets"?, "table"?}``).
    The arguments may be ``{"_arguments_ref": {...}}`` instead (stepcrew.tools.argrefs): resolved first, refused
    as ``ArgumentsUnavailable`` when not the run's or not the tenant's. Returns the ToolResult as JSON, content
    ``{"markdown", "words"}``, at most TOOL_OUTPUT_MAX_BYTES (8 KiB). Tool problems are ``ok: false`` results; a
    malformed event raises pydantic's ValidationError."""
    return invoke_event(TOOL, event, logger, arguments=ARGUMENTS)
