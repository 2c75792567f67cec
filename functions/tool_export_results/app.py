"""Lambda handler of the ``export_results`` operations tool: ToolInvocation in, ToolResult out
(stepcrew.tools.export_results). Dry run unless the run allows side effects; exactly once through a receipt in the run
table (stepcrew.tools.receipts). The clients are built at the first real export, once per cold start (a dry run
builds none).

A malformed event raises pydantic's ValidationError; the agent state machine catches it into a ToolFailed result.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.settings import OperationsToolSettings, load_settings
from stepcrew.tools.base import invoke_event
from stepcrew.tools.export_results import ExportResults

logger = Logger()
SETTINGS = load_settings(OperationsToolSettings)  # SettingsError at init: no silent defaults


def _receipts():
    import boto3

    from stepcrew.tools.receipts import DynamoReceiptStore

    return DynamoReceiptStore(boto3.client("dynamodb"), SETTINGS.table_name)


def _artifacts():
    import boto3

    from stepcrew.tools.artifacts import S3ArtifactStore

    return S3ArtifactStore(boto3.client("s3"), SETTINGS.artifacts_bucket)


TOOL = ExportResults(_receipts, _artifacts)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments ``{"name", "format", "columns", "rows"}``, ``context`` with the
    run's ``allow_side_effects``). Returns the ToolResult as JSON: ``{"dry_run", "would_write"}``, or ``{"written"}``
    (``replayed: true`` when an earlier attempt of the same call did it). Errors the model reads: InvalidArguments,
    LimitExceeded (over 256 KiB), ReceiptConflict, Forbidden, OperationInDoubt."""
    return invoke_event(TOOL, event, logger)
