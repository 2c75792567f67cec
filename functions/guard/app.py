"""Lambda handler of the guard (stepcrew.domain.guard, stepcrew.domain.screening).

Events: ``{"run_id"}`` (RunRef) screens the run's input and marks it RUNNING -> GuardOutput;
``{"action": "screen_tool_results", ...}`` (ScreenToolResults) -> ScreenedToolResults; ``{"action": "screen_output",
"run_id"}`` (ScreenOutput) -> ScreenOutputResult; a scheduled run's ``{"action": "create_scheduled_run", "request",
"run_id"}`` writes its run record -> RunRef. Settings are validated and the store and the guard backend
(``STEPCREW_GUARD_BACKEND``) are built once per container (at import: a missing variable or library fails the cold
start, so nothing runs unscreened).
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from stepcrew.domain.guard import create_scheduled_run, guard_run
from stepcrew.domain.screening import screen_output, screen_tool_results
from stepcrew.events import CreateScheduledRun, RunRef, ScreenOutput, ScreenToolResults
from stepcrew.guards.factory import GuardSettings, build_guard
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings(GuardSettings)
store = DynamoRunStore(settings.table_name)
guard = build_guard(settings)
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})
GUARD_EVENT = TypeAdapter(CreateScheduledRun | ScreenToolResults | ScreenOutput | RunRef)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """One of the events above (JSON dict) -> its output (JSON dict). Raises pydantic ValidationError for another
    shape, and what the use-case functions raise (InputRejectedError, GuardUnavailableError, ...)."""
    inp = GUARD_EVENT.validate_python(event)
    logger.append_keys(run_id=inp.run_id)
    if isinstance(inp, CreateScheduledRun):
        return create_scheduled_run(inp, store).model_dump(mode="json")
    if isinstance(inp, ScreenToolResults):
        return screen_tool_results(inp, store, guard).model_dump(mode="json")
    if isinstance(inp, ScreenOutput):
        return screen_output(inp, store, guard).model_dump(mode="json")
    return guard_run(inp, store, guard).model_dump(mode="json")
