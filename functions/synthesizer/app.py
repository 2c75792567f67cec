"""Lambda handler of the synthesizer role (stepcrew.domain.synthesizer): SynthInput in, its output model out; and
the memory proposal of a succeeded run (stepcrew.domain.remember.propose_memory).

Settings are validated and the store is built once per container (at import: a missing variable fails the cold
start). The domain call raises on failure; the state machine's Retry/Catch match the exception's class name.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from pydantic import TypeAdapter

from stepcrew.domain.remember import propose_memory
from stepcrew.domain.synthesizer import synthesize
from stepcrew.engines.resolve import EngineResolver
from stepcrew.events import ProposeMemory, SynthInput
from stepcrew.settings import load_settings
from stepcrew.store.dynamodb import DynamoRunStore

settings = load_settings()
store = DynamoRunStore(settings.table_name)
engines = EngineResolver()  # the run's provider picks its engine: the rule engine or an LLM engine
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"stepcrew"})
SYNTH_EVENT = TypeAdapter(ProposeMemory | SynthInput)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """SynthInput -> SynthOutput (JSON dicts; the report itself goes to the store), or ProposeMemory (``action:
    propose_memory``, after a run succeeded) -> ProposeMemoryOutput. Raises pydantic ValidationError for a malformed
    event, and what :func:`synthesize` / :func:`propose_memory` raise."""
    inp = SYNTH_EVENT.validate_python(event)
    logger.append_keys(run_id=inp.run_id)
    if isinstance(inp, ProposeMemory):
        return propose_memory(inp, store, engines).model_dump(mode="json")
    return synthesize(inp, store, engines).model_dump(mode="json")
