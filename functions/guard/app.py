"""Lambda handler of the input guard (stepcrew.domain.guard).

Two events: ``{"run_id"}`` (RunRef) screens the run and marks it RUNNING -> GuardOutput; a scheduled run's
``{"action": "create_scheduled_run", "request", "run_id"}`` writes its run record -> RunRef. Settings are validated
and the store is built once per container (at import: a missing variable fails the cold start).
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from stepcrew.domain.guard import create_scheduled_run, guard_run
from stepcrew.events import CreateScheduledRun, RunRef
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings()
store = DynamoRunStore(settings.table_name)
logger = Logger()
tracer = Tracer()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})
GUARD_EVENT = TypeAdapter(CreateScheduledRun | RunRef)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """RunRef -> GuardOutput, or CreateScheduledRun -> RunRef (JSON dicts). Raises pydantic ValidationError
    for another shape, and what :func:`guard_run` / :func:`create_scheduled_run` raise."""
    inp = GUARD_EVENT.validate_python(event)
    logger.append_keys(run_id=inp.run_id)
    if isinstance(inp, CreateScheduledRun):
        return create_scheduled_run(inp, store).model_dump(mode="json")
    return guard_run(inp, store).model_dump(mode="json")
