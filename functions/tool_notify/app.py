"""Lambda handler of the ``notify`` operations tool: ToolInvocation in, ToolResult out (stepcrew.tools.notify).
Dry run unless the run allows side effects; exactly once through a receipt in the run table (stepcrew.tools.receipts)
and, on the FIFO notifications topic, the same MessageDeduplicationId on every attempt of a call. The clients are
built at the first real publish, once per cold start (a dry run builds none).

A malformed event raises pydantic's ValidationError; the agent state machine catches it into a ToolFailed result.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.settings import load_settings
from stepcrew.tools.base import invoke_event
from stepcrew.tools.notify import Notify, NotifyToolSettings

logger = Logger()
SETTINGS = load_settings(NotifyToolSettings)  # SettingsError at init: no silent defaults


def _receipts():
    import boto3

    from stepcrew.tools.receipts import DynamoReceiptStore

    return DynamoReceiptStore(boto3.client("dynamodb"), SETTINGS.table_name)


def _publisher():
    import boto3

    from stepcrew.tools.notify import SnsPublisher

    return SnsPublisher(boto3.client("sns"), SETTINGS.topic_arn)


TOOL = Notify(_receipts, _publisher)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments ``{"subject", "body"}``, ``context`` with the run's
    ``allow_side_effects``). Returns the ToolResult as JSON: ``{"dry_run", "would_publish"}``, or ``{"published"}``
    (``replayed: true`` when an earlier attempt of the same call did it). Errors the model reads: InvalidArguments
    (subject over 99 ASCII characters, body over 256 KiB), LimitExceeded (body + attributes over 256 KiB),
    ReceiptConflict, Forbidden, OperationInDoubt, ToolResultInvalid."""
    return invoke_event(TOOL, event, logger)
