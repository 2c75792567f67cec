"""Lambda handler of the ``run_python`` tool: ToolInvocation in, ToolResult out (stepcrew.tools.run_python).

The code runs in a child process with an empty environment and resource limits (stepcrew.tools.python_sandbox);
the deployed function has a role that grants nothing but its logs, X-Ray and its VPC network interfaces, runs in
isolated subnets with no egress, and gets no dataset (``STEPCREW_PYTHON_DATASET=off``; the sandbox module's deployed
design). A malformed event raises pydantic's ValidationError; the agent state machine catches it into a
ToolFailed result.

No Powertools Tracer and no tool-result cache, by design: no downstream call, and code may be nondeterministic.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.tools.base import invoke_event
from stepcrew.tools.run_python import RunPython

logger = Logger()
TOOL = RunPython()


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments ``{"code", "timeout_s"?}``, dataset ``context.data_uri``).
    Returns the ToolResult as JSON, content ``{"stdout", "stdout_truncated", "stderr"?, "result"?}``, at most
    TOOL_OUTPUT_MAX_BYTES (8 KiB). Tool problems (limits, refusals, the code's exceptions) are ``ok: false``
    results; a malformed event raises pydantic's ValidationError."""
    return invoke_event(TOOL, event, logger)
