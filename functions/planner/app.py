"""Lambda handler of the planner role (stepcrew.domain.planner): PlanInput in, its output model out.

Settings are validated and the store is built once per container (at import: a missing variable fails the cold
start). The domain call raises on failure; the state machine's Retry/Catch match the exception's class name.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.domain.planner import plan_run
from stepcrew.engines.resolve import EngineResolver
from stepcrew.events import PlanInput
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings()
store = DynamoRunStore(settings.table_name)
engines = EngineResolver()  # the run's provider picks its engine: the rule engine or an LLM engine
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """PlanInput -> PlanOutput (JSON dicts); an invalid plan is an output, not an error. Raises pydantic
    ValidationError for a malformed event, and what :func:`plan_run` raises."""
    inp = PlanInput.model_validate(event)
    logger.append_keys(run_id=inp.run_id)
    return plan_run(inp, store, engines).model_dump(mode="json")
