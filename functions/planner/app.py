"""Lambda handler of the planner role (stepcrew.domain.planner, and replanning after a failed sub-task:
stepcrew.domain.replan): PlanInput or a replan event in, its output model out.

Settings are validated and the store is built once per container (at import: a missing variable fails the cold
start). The domain call raises on failure; the state machine's Retry/Catch match the exception's class name.
"""

from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Discriminator, Tag, TypeAdapter

from stepcrew.domain.planner import plan_run
from stepcrew.domain.replan import ReplanFailedInput, ReplanInput, replan_after_failure, replan_failed
from stepcrew.engines.resolve import EngineResolver
from stepcrew.events import PlanInput
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings()
store = DynamoRunStore(settings.table_name)
engines = EngineResolver()  # the run's provider picks its engine: the rule engine or an LLM engine
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})


#: The planner's events: a first plan (PlanInput, no ``action``), a replan after a failed sub-task
#: (``replan_after_failure``) or the end of one whose Task failed (``replan_failed``), told apart by ``action``.
PlannerEvent = TypeAdapter(Annotated[
    Annotated[PlanInput, Tag("plan")] | Annotated[ReplanInput, Tag("replan_after_failure")]
    | Annotated[ReplanFailedInput, Tag("replan_failed")],
    Discriminator(lambda v: (v.get("action") or "plan") if isinstance(v, dict) else getattr(v, "action", "plan"))])


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """PlanInput -> PlanOutput, ReplanInput / ReplanFailedInput -> ReplanOutput (JSON dicts); an invalid plan is an
    output, not an error. Raises pydantic ValidationError for a malformed event, and what :func:`plan_run` or
    :func:`replan_after_failure` raises."""
    inp = PlannerEvent.validate_python(event)
    logger.append_keys(run_id=inp.run_id)
    if isinstance(inp, ReplanInput):
        return replan_after_failure(inp, store, engines).model_dump(mode="json")
    if isinstance(inp, ReplanFailedInput):
        return replan_failed(inp, store).model_dump(mode="json")
    return plan_run(inp, store, engines).model_dump(mode="json")
