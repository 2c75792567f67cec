"""The API's error contract: every error is JSON ``{"error": {"code": ..., "message": ...}}`` with its status.

Status codes (one rule for every route, also written in ``docs/openapi.json``):

=====  ==============================  ==========================================================================
400    ``malformed_json``              the body is not JSON (or not UTF-8, or bad base64, or nested too deeply,
                                       or holds a number too large for a float such as ``1e400``)
400    ``validation_error``            a field is missing, of the wrong type or out of range; unknown fields;
                                       bad query parameters or headers (one status for all bad input: 400)
400    ``unknown_crew``                ``crew`` names no packaged crew (or the crew fails validation)
400    ``unknown_provider``            ``provider`` names no registered provider
400    ``invalid_guardrails``          ``guardrails`` would loosen the crew's policy (or adds too many topics)
400    ``invalid_data_uri``            ``data`` uses a scheme this deployment does not read (AWS: ``s3://`` only),
                                       an ``s3://`` URI without a valid bucket and a key, or an unsupported suffix
400    ``invalid_cursor``              a ``cursor`` that this API did not hand out to this tenant
400    ``dataset_not_found``           ``data`` names no dataset this tenant may read (the same answer for a
                                       missing one and one of another tenant: existence is not disclosed)
400    ``invalid_dataset``             the dataset file is not a readable CSV/Parquet/JSON within the limits
400    ``invalid_dataset_name``        ``POST /datasets``: a name with a path, ``..``, odd characters or > 128
400    ``unsupported_dataset_type``    ``POST /datasets``: an extension other than .csv, .parquet, .json
400    ``invalid_content_type``        ``POST /datasets``: a content type that does not match the extension
400    ``dataset_too_large``           ``POST /datasets``: ``size_bytes`` over the tools' dataset size limit
400    ``unsupported_event``           the Lambda received an event that is not an HTTP API (v2) request
400    ``invalid_memory``              ``POST /memory``: a fact that is no valid memory item (empty, blank, multi-
                                       line or over 500 characters; subject over 120; TTL negative, under 60 s,
                                       over 10 years or not finite; confidence outside 0-1; an unknown field)
400    ``memory_rejected``             ``POST /memory``: the PII/injection guard refused a fact (nothing written)
400    ``user_outside_tenant``         a ``user`` qualified with another tenant (``other:bob``)
400    ``invalid_user``                a ``user`` that is not a user id (``<name>`` or ``<tenant>:<name>``)
400    ``confirmation_required``       ``DELETE /memory`` of the whole tenant without ``confirm=true``
401    ``unauthorized``                no JWT claims on the request (no authorizer ran, or no tenant claim)
403    ``invalid_tenant``              the tenant claim is not a valid tenant id
404    ``run_not_found``               unknown run id, malformed run id, or a run of another tenant
404    ``memory_not_found``            ``DELETE /memory/{id}``: unknown id, malformed id, or another tenant's item
404    ``route_not_found``             no such route
405    ``method_not_allowed``          a known route with another method (TRACE included); ``Allow`` lists them
409    ``run_not_waiting``             approval for a run that is not ``WAITING_APPROVAL``
409    ``approval_closed``             the run's approval task no longer accepts an answer (timed out/finished)
409    ``idempotency_in_progress``     the first request with this Idempotency-Key is still being processed
409    ``run_state_conflict``          the run changed state between reading and writing it (reload, retry)
409    ``report_not_screened``         a corrected report for a hand-off whose execution is gone, where no output
                                       guard can screen it (accept without one, or answer with `stepcrew runs review`)
413    ``payload_too_large``           body over :data:`MAX_BODY_BYTES`
415    ``unsupported_media_type``      a body that is not ``application/json``
422    ``idempotency_key_reused``      the Idempotency-Key was used (within 24 h) with a different body
429    ``rate_limited``                the tenant is over its per-minute request limit; ``Retry-After`` says when
429    ``tenant_budget_exceeded``      ``POST /runs``: the tenant spent its daily or monthly $ budget (the message
                                       names it and its reset time; ``Retry-After`` until the reset)
400    ``invalid_routing``             ``POST /runs``: a fallback chain names an unknown or unconfigured provider
500    ``internal_error``              an unexpected failure; the message never carries internals
503    ``run_start_failed``            the run was recorded but its execution could not be started (it is
                                       marked FAILED); retrying with the same Idempotency-Key starts a new run
503    ``service_unavailable``         a dependency (Step Functions, DynamoDB) failed; safe to retry
503    ``uploads_unavailable``         ``POST /datasets`` on a deployment without a datasets bucket configured
503    ``memory_unavailable``          the memory writer (the memory function) could not be reached or failed
                                       (``Retry-After``; a retry is safe), or memory is not configured here
=====  ==============================  ==========================================================================

Why 400 for validation (and not 422): one status for "the request is wrong", whatever the reason; 422 is kept
for the one case the Idempotency-Key draft assigns it (draft-ietf-httpapi-idempotency-key-header-06, "Error
Scenarios": reuse of a key with a different request payload -> 422; a retry while the first request is still
being processed -> 409).
"""

from __future__ import annotations

from http import HTTPStatus

from pydantic import BaseModel, Field

#: Largest request body accepted (bytes, after base64 decoding). stepcrew's own cap: a run request is at most
#: ~12 KB of text (goal <= 10,000 characters, 32 inputs...); 64 KiB leaves room for JSON overhead while keeping the
#: run record far below DynamoDB's 400 KB item limit. API Gateway HTTP APIs accept up to 10 MB
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html), so the cap is ours.
MAX_BODY_BYTES = 64 * 1024


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable error code, e.g. 'run_not_found'")
    message: str = Field(description="one line for humans; never internals, never request bodies")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``. ``headers`` are added to the
    response (e.g. ``Retry-After``)."""

    status: int = HTTPStatus.BAD_REQUEST
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict:
        """The response body: :func:`error_body` of ``code`` and ``message``."""
        return error_body(self.code, self.message)


class BadRequest(ApiError):
    status, code = HTTPStatus.BAD_REQUEST, "validation_error"


class Unauthorized(ApiError):
    status, code = HTTPStatus.UNAUTHORIZED, "unauthorized"


class Forbidden(ApiError):
    status, code = HTTPStatus.FORBIDDEN, "invalid_tenant"


class NotFound(ApiError):
    status, code = HTTPStatus.NOT_FOUND, "run_not_found"


class Conflict(ApiError):
    status, code = HTTPStatus.CONFLICT, "run_not_waiting"


class PayloadTooLarge(ApiError):
    status, code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large"


class Unprocessable(ApiError):
    status, code = HTTPStatus.UNPROCESSABLE_ENTITY, "idempotency_key_reused"


class TooManyRequests(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"


class ServiceUnavailable(ApiError):
    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable"


def error_body(code: str, message: str) -> dict:
    """``{"error": {"code": code, "message": message}}``."""
    return {"error": {"code": code, "message": message}}


def error_doc(description: str) -> dict:
    """An OpenAPI response entry whose body is :class:`ErrorResponse` (for route ``responses=``)."""
    return {"description": description, "content": {"application/json": {"model": ErrorResponse}}}
