"""Lambda handler of the ``remember`` tool: ToolInvocation in, ToolResult out (stepcrew.tools.remember).

The tool writes nothing: the run's end stores remembered facts after the PII guard (stepcrew.domain.remember).
No Powertools Tracer, as for write_section: no downstream call.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.tools.base import invoke_event
from stepcrew.tools.remember import Remember

logger = Logger()
TOOL = Remember()


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments ``{"fact", "subject"?, "kind"?}``). Returns the ToolResult
    as JSON, content ``{"queued": true, "subject", "note"}``; bad arguments are ``ok: false`` results."""
    return invoke_event(TOOL, event, logger)
