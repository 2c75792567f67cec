"""Lambda handler of finalize (stepcrew.domain.finalize): succeed_run | fail_run | fail_subtask -> FinalizeOutput.

Emits the run metrics (RunsSucceeded/RunsFailed, RunDurationSeconds, InputTokens, OutputTokens, CostUSD; and
SubtasksFailed) as CloudWatch EMF in the namespace of ``POWERTOOLS_METRICS_NAMESPACE``. Settings are validated and
the store is built once per container (at import: a missing variable fails the cold start).
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from stepcrew.domain.finalize import finalize
from stepcrew.events import FinalizeInput
from stepcrew.settings import MetricsSettings, load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings(MetricsSettings)
store = DynamoRunStore(settings.table_name)
logger = Logger()
metrics = Metrics(namespace=settings.metrics_namespace)
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})
FINALIZE_EVENT = TypeAdapter(FinalizeInput)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    """SucceedRun | FailRun | FailSubtask (by ``action``) -> FinalizeOutput (JSON dicts). Raises pydantic
    ValidationError for a malformed event, and what :func:`finalize` raises."""
    inp = FINALIZE_EVENT.validate_python(event)
    logger.append_keys(run_id=inp.run_id, action=inp.action)
    return finalize(inp, store, metrics).model_dump(mode="json")
