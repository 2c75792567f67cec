"""Lambda handler of the waits for a person (stepcrew.domain.approval): the plan approval gate and the review
hand-off (which also publishes ``stepcrew.run.needs_review`` to EventBridge). ApprovalInput in, its output out.

Settings are validated and the store is built once per container (at import: a missing variable fails the cold
start). The domain call raises on failure; the state machine's Retry/Catch match the exception's class name.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.domain.approval import request_approval
from stepcrew.events import ApprovalInput
from stepcrew.notify import EventBridgePublisher
from stepcrew.settings import EventSettings, load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings(EventSettings)
store = DynamoRunStore(settings.table_name)
publisher = EventBridgePublisher(settings.event_bus)  # stepcrew.run.needs_review on a review hand-off
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """ApprovalInput (with the task token) -> ApprovalOutput (JSON dicts). Raises pydantic ValidationError for a
    malformed event, and what :func:`request_approval` raises."""
    inp = ApprovalInput.model_validate(event)
    logger.append_keys(run_id=inp.run_id)
    return request_approval(inp, store, publisher).model_dump(mode="json")
