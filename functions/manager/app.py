"""Lambda handler of the manager role (stepcrew.domain.manager): ManageInput in, ManageOutput out.

Hierarchical and hybrid crews only: one round of the manager loop of the run state machine (assess the last
delegations, decide the next ones or that the goal is met). Settings are validated and the store is built once per
container (at import). The domain call raises on failure; the state machine's Retry/Catch match the class name.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.domain.manager import ManageInput, manage_round
from stepcrew.engines.resolve import EngineResolver
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings()
store = DynamoRunStore(settings.table_name)
engines = EngineResolver()  # the run's provider picks its engine: the rule engine or an LLM engine
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """ManageInput -> ManageOutput (JSON dicts). Raises pydantic ValidationError for a malformed event, and what
    :func:`manage_round` raises."""
    inp = ManageInput.model_validate(event)
    logger.append_keys(run_id=inp.run_id)
    return manage_round(inp, store, engines).model_dump(mode="json")
