"""Lambda handler of the HTTP API (API Gateway HTTP API, payload format 2.0): routes, validation and errors live
in :mod:`stepcrew.api.app`. Settings are validated once at init (SettingsError on a cold start if incomplete)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepcrew.api.app import app_from_env

logger = Logger()
app = app_from_env()  # store, starter, task resumer and idempotency layer built once per execution environment


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    """One HTTP API v2 event -> a v2 response dict (``statusCode``, ``headers``, JSON ``body``). Never raises:
    every error is answered as ``{"error": {"code", "message"}}`` with its status (:mod:`stepcrew.api.errors`);
    bodies over 64 KiB get 413; must finish within the 29 s timeout (API Gateway gives up at 30 s)."""
    return app.resolve(event, context)
