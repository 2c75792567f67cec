"""Lambda handler of the ``make_chart`` generation tool: ToolInvocation in, ToolResult out (stepcrew.tools.make_chart).
Renders a PNG with matplotlib's Agg backend (imported at the first chart, never at init: the cold start stays the
shared layer's) and stores it under ``<tenant>/runs/<run_id>/charts/<name>.png`` of the artifacts bucket. Not gated by
``allow_side_effects``: it writes only the run's own artifact. The S3 client is built at the first chart, once per
cold start.

A malformed event raises pydantic's ValidationError; the agent state machine catches it into a ToolFailed result.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.settings import load_settings
from stepcrew.tools.base import invoke_event
from stepcrew.tools.make_chart import MakeChart


class ChartToolSettings(BaseModel):
    """The chart tool's environment (it touches no table, so not :class:`stepcrew.settings.RoleSettings`): the
    ``STEPCREW_STAGE`` and ``POWERTOOLS_SERVICE_NAME`` of every function and ``STEPCREW_ARTIFACTS_BUCKET`` (S3's
    bucket-name rule, as :class:`stepcrew.settings.OperationsToolSettings`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=False)

    stage: str = Field(alias="STEPCREW_STAGE", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1, max_length=128)
    artifacts_bucket: str = Field(alias="STEPCREW_ARTIFACTS_BUCKET", min_length=3, max_length=63,
                                  pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")


logger = Logger()
SETTINGS = load_settings(ChartToolSettings)  # SettingsError at init: no silent defaults


def _artifacts():
    import boto3

    from stepcrew.tools.artifacts import S3ArtifactStore

    return S3ArtifactStore(boto3.client("s3"), SETTINGS.artifacts_bucket)


TOOL = MakeChart(_artifacts)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """``event``: a ToolInvocation as JSON (arguments: ``{"name", "kind", ...}``, see stepcrew.tools.make_chart).
    Returns the ToolResult as JSON: ``{"key", "kind", "bytes", "width", "height", "sha256", "markdown"}``. Errors the
    model reads: InvalidArguments (bad shapes, mismatched lengths, over a cap), LimitExceeded (PNG over 1 MiB)."""
    return invoke_event(TOOL, event, logger)
