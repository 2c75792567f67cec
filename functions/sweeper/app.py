"""Lambda handler of the sweeper (stepcrew.domain.sweep), invoked by an EventBridge schedule (asynchronously: a
failed invocation is retried by Lambda, then lands in its dead-letter queue): open run records whose execution ended
without recording the run's outcome end FAILED ``ExecutionEndedWithoutRecord`` with their open sub-tasks. Settings
are validated and the clients built once per container (at import: a missing variable fails the cold start).
"""

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.domain.sweep import SweepRequest, SweeperSettings, sweep
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings(SweeperSettings)
store = DynamoRunStore(settings.table_name)
sfn = boto3.client("stepfunctions")
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """A Scheduled Event (or ``{}``, ``{"grace_s": ..., "max_runs": ...}``) -> SweepReport (JSON dict). Raises pydantic
    ValidationError for a malformed event."""
    report = sweep(store, sfn, settings.run_state_machine_arn, SweepRequest.model_validate(event))
    logger.info("sweep done", extra={"candidates": report.candidates, "live": report.live,
                                     "swept": len(report.swept), "errors": report.errors})
    return report.model_dump(mode="json")
