"""Lambda handler of the memory function (stepcrew.domain.remember, stepcrew.memory.service).

Events: ``{"action": "record_run", "run_id"}`` (RecordRun, from the run state machine's Remember states) ->
RecordRunResult; ``{"action": "remember", "tenant", "facts", "user"?}`` (RememberFacts, from the API's
``POST /memory``) -> RememberOutput. The only writer of tenant memory: every text passes the PII guard built here
(``STEPCREW_GUARD_BACKEND``, at import: a missing library fails the cold start, nothing is stored unscreened).
It calls no model (the guard layer has no provider SDK): a succeeded run's proposed facts were stored by the
synthesizer function's ``propose_memory``. Settings are validated and the store, guard and memory are built once per
container.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from stepcrew.domain.remember import record_run_memory, remember_facts
from stepcrew.engines.resolve import EngineResolver
from stepcrew.events import MemoryInput, RecordRun
from stepcrew.guards.factory import GuardSettings, build_guard
from stepcrew.memory.wiring import memory_for
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings(GuardSettings)
store = DynamoRunStore(settings.table_name)
memory = memory_for(EngineResolver(), store, build_guard(settings))  # the resolver holds the embeddings port
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})
MEMORY_EVENT = TypeAdapter(MemoryInput)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """RecordRun | RememberFacts (by ``action``) -> RecordRunResult | RememberOutput (JSON dicts). Raises pydantic
    ValidationError for a malformed event; a client mistake in RememberFacts is an ``ok: false`` answer."""
    inp = MEMORY_EVENT.validate_python(event)
    if isinstance(inp, RecordRun):
        logger.append_keys(run_id=inp.run_id, action=inp.action)
        return record_run_memory(inp, store, memory).model_dump(mode="json")
    logger.append_keys(tenant=inp.tenant, action=inp.action)
    return remember_facts(inp, memory).model_dump(mode="json")
