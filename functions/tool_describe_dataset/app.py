"""Lambda handler of the ``describe_dataset`` tool: ToolInvocation in, ToolResult out (stepcrew.tools.dataset).

A malformed event raises pydantic's ValidationError; the agent state machine catches it into a ToolFailed result.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.tools.base import invoke_event
from stepcrew.tools.cache import cache_from_env
from stepcrew.tools.dataset import DescribeDataset

logger = Logger()
TOOL = DescribeDataset()
CACHE = cache_from_env()  # the tool-result cache on the run table (CACHE#<tenant> keys only), or None


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments ``{"columns"?}``, dataset ``context.data_uri``). Returns
    the ToolResult as JSON, content ``{"dataset", "rows", "columns"}``, at most TOOL_OUTPUT_MAX_BYTES (8 KiB).
    Tool problems are ``ok: false`` results; a malformed event raises pydantic's ValidationError."""
    return invoke_event(TOOL, event, logger, CACHE)
