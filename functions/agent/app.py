"""Lambda handler of the worker roles' agent-loop turn (stepcrew.domain.agent): AgentTurnInput in, its output model out.

Emits ``ToolErrors`` (count of failed tool results handed back to the model this turn) as CloudWatch EMF in the
namespace of ``POWERTOOLS_METRICS_NAMESPACE``; the dashboard charts it.

Settings are validated and the store is built once per container (at import: a missing variable fails the cold
start). The domain call raises on failure; the state machine's Retry/Catch match the exception's class name.
"""

import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.domain.agent import agent_turn
from stepcrew.engines.resolve import EngineResolver
from stepcrew.events import AgentTurnInput
from stepcrew.settings import MetricsSettings, load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings(MetricsSettings)
store = DynamoRunStore(settings.table_name)
engines = EngineResolver()  # the run's provider picks its engine: the rule engine or an LLM engine
logger = Logger()
metrics = Metrics(namespace=settings.metrics_namespace)
# Most turns have no tool errors and so no metric: that is expected, not worth a warning in every log stream.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    """AgentTurnInput -> AgentTurnOutput (JSON dicts): one model turn of a sub-task. Raises pydantic
    ValidationError for a malformed event, and what :func:`agent_turn` raises."""
    inp = AgentTurnInput.model_validate(event)
    logger.append_keys(run_id=inp.run_id, subtask_id=inp.subtask_id)
    if failed := sum(not result.ok for result in inp.tool_results):
        metrics.add_metric(name="ToolErrors", unit=MetricUnit.Count, value=failed)
    return agent_turn(inp, store, engines).model_dump(mode="json")
