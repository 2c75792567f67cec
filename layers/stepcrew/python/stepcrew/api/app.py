"""The HTTP API: a Powertools ``APIGatewayHttpResolver`` (payload format 2.0) with pydantic validation.

Routes (schemas in ``docs/openapi.json``; errors and their statuses in :mod:`stepcrew.api.errors`):

- ``POST /runs`` (202): body :class:`~stepcrew.api.models.NewRun`; optional header ``Idempotency-Key``
  (see :mod:`stepcrew.api.idempotency`). Loads and validates the crew, checks the provider and the dataset URI,
  writes the run record (``QUEUED``) and starts the run state machine (:func:`stepcrew.service.create_run`,
  :func:`stepcrew.service.start_run`). Runs are always asynchronous: HTTP API integrations time out after 30 s.
- ``GET /runs?limit=1..100&cursor=``: the caller's runs, newest first.
- ``GET /runs/{run_id}``: the :class:`~stepcrew.models.RunResult` view (:func:`stepcrew.service.run_result`).
- ``GET /runs/{run_id}/events?after=&limit=1..1000``: progress events, oldest first.
- ``POST /runs/{run_id}/review``: ``{"accept": bool, "comment"?, "report"?}`` answers a run handed off for review
  (NEEDS_REVIEW): SUCCEEDED or FAILED ``ReviewRejected``; 409 unless the run is NEEDS_REVIEW (or after its deadline).
- ``POST /runs/{run_id}/approval``: ``{"approved": bool, "comment"?}`` resumes a run waiting on its task token
  (SendTaskSuccess, or SendTaskFailure with error ``ApprovalRejected``); 409 unless the run is
  ``WAITING_APPROVAL``.
- ``POST /datasets`` (201): body :class:`~stepcrew.api.models.NewDataset` (``name``, ``size_bytes``,
  ``content_type``?) -> :class:`~stepcrew.api.models.DatasetUpload`: a presigned S3 PUT for
  ``<tenant>/uploads/<name>`` (tenant from the token), valid :data:`~stepcrew.api.models.UPLOAD_URL_EXPIRES_S` s, with
  ``Content-Type`` and ``Content-Length`` signed (see :class:`S3Uploads`). 503 ``uploads_unavailable`` where no
  datasets bucket is configured.
- ``GET /memory?kind=fact|episode|all&user=&limit=1..1000&cursor=``: the caller's tenant memory
  (:class:`~stepcrew.memory.models.MemoryList`): facts oldest first, then episodes newest first (``limit`` per kind;
  pass ``next_cursor`` back for the next page). ``user``: only that user's items (``<name>`` or
  ``<tenant>:<name>``).
- ``POST /memory`` (201): body :class:`~stepcrew.api.models.NewMemory` (``{"facts": [...], "user"?}``, always a
  list) -> :class:`~stepcrew.memory.models.MemoryWriteResult`, through the injected
  :class:`~stepcrew.memory.writer.MemoryWriter` (deployed: the memory function, which owns the PII guard). 400
  ``invalid_memory`` / ``memory_rejected`` / ``user_outside_tenant`` / ``invalid_user`` with nothing written; 503
  ``memory_unavailable`` (``Retry-After``) when the writer cannot be reached.
- ``DELETE /memory/{memory_id}`` (204): forget one item and its vector; 404 ``memory_not_found`` for an unknown
  id, a malformed id and another tenant's item alike.
- ``DELETE /memory?user=&confirm=true``: erase the tenant's memory (facts and episodes, with their vectors), or only
  ``user``'s items -> ``{"deleted": n}``. Erasing the whole tenant needs ``confirm=true`` (400
  ``confirmation_required`` otherwise: a bare ``DELETE /memory`` must not wipe everything).
- ``GET /health``: liveness, no authentication.

Every route but ``/health`` needs JWT claims (:mod:`stepcrew.api.auth`); a run of another tenant is answered
exactly like an unknown run (404). Checks that run before routing (so before any body parsing): body size
(:data:`~stepcrew.api.errors.MAX_BODY_BYTES`, 413), body encoding (400) and authentication (401/403).

The resolver is not thread-safe (Powertools keeps the current event on the class): one request at a time per
process, as in Lambda; the local server serialises requests.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar
from pathlib import Path as PathType
from urllib.parse import urlparse

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

import stepcrew
from stepcrew.api.auth import DEFAULT_TENANT_CLAIM, tenant_from_event
from stepcrew.api.errors import (
    MAX_BODY_BYTES,
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
    error_doc,
)
from stepcrew.api.idempotency import IDEMPOTENCY_KEY_PREFIX, idempotency_config
from stepcrew.api.ratelimit import DynamoRateLimiter, RateLimiter, bucket_of
from stepcrew.api.models import (
    DATASET_ERROR_CODES,
    GOAL_PREVIEW_CHARS,
    IDEMPOTENCY_KEY_PATTERN,
    INVALID_MEMORY,
    MEMORY_USER_MAX_CHARS,
    UPLOAD_URL_EXPIRES_S,
    Approval,
    ApprovalAccepted,
    DatasetUpload,
    EventItem,
    EventPage,
    Health,
    MemoryErased,
    NewDataset,
    NewMemory,
    NewRun,
    RunAccepted,
    RunLinks,
    ReviewAnswer,
    ReviewAnswered,
    RunList,
    RunSummary,
)
from stepcrew.domain.decisions import (
    APPROVAL_REJECTED_ERROR,  # noqa: F401  (re-exported for callers of the API module)
    DecisionError,
    ReportTooLarge,
    ResumeFailed,
    TaskResumer,
    answer_approval,
    answer_review,
)
from stepcrew.logsafe import log_fields
from stepcrew.memory.models import (
    MEMORY_ID_PATTERN,
    MemoryList,
    MemoryRejectedError,
    MemoryWriteResult,
    UserOutsideTenantError,
    resolve_user,
)
from stepcrew.memory.writer import MemoryUnavailableError, MemoryWriter
from stepcrew.models import RUN_ID_PATTERN, Crew, GuardrailsLoosenedError, ReviewDecision, Run, RunRequest, RunResult
from stepcrew.service import ExecutionStarter, RunStartError, create_run, run_result, start_run
from stepcrew.store.base import RunNotFoundError, RunStateConflictError, RunStore, StoreError

logger = Logger(child=True)
_T = TypeVar("_T")

EVENT_CURSOR_MAX_CHARS = 128
#: Seconds a client should wait before retrying a memory write answered 503 ``memory_unavailable``.
MEMORY_RETRY_AFTER_S = 2
LIST_CURSOR_MAX_CHARS = 2048
_HEALTH = ("GET", "/health")
AUTH = [{"jwt": []}]
OPENAPI_TITLE = "stepcrew API"
OPENAPI_DESCRIPTION = (
    "Start crews of LLM agents as runs and follow them. Runs are asynchronous: POST /runs answers 202 and the run "
    "executes on Step Functions; poll GET /runs/{run_id}. A tenant's memory: GET/POST/DELETE /memory. Errors are "
    "JSON {\"error\": {\"code\", \"message\"}}: 400 bad input (all validation), 401/403 authentication, 404 unknown "
    f"run or memory item (also another tenant's), 409 wrong state, 413 body over {MAX_BODY_BYTES} bytes, 415 not "
    "JSON, 422 Idempotency-Key reused with another body, "
    "500 unexpected, 503 dependency failure (retry). Generated from stepcrew.api.app; regenerate with "
    "'python -m stepcrew.api.openapi --write'.")


class StepFunctionsTasks:
    """:class:`TaskResumer` on AWS Step Functions (``SendTaskSuccess`` / ``SendTaskFailure``)."""

    def __init__(self, *, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        """The boto3 ``stepfunctions`` client given at construction, else one built on first use."""
        if self._client is None:
            import boto3

            self._client = boto3.client("stepfunctions")
        return self._client

    def send_task_success(self, token: str, output: dict) -> None:
        """``SendTaskSuccess`` with ``output`` as JSON. Raises botocore's ClientError (e.g. ``TaskTimedOut``)."""
        self.client.send_task_success(taskToken=token, output=json.dumps(output))

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        """``SendTaskFailure``; ``error`` cut to 256 and ``cause`` to 32,768 characters. Raises ClientError."""
        self.client.send_task_failure(taskToken=token, error=error[:256], cause=cause[:32768])


class S3Uploads:
    """Presigned S3 PUT URLs for dataset uploads into ``bucket``.

    The URL is signed (SigV4, query parameters) with the caller's credentials - deployed, the api function's role,
    whose only S3 permission is ``s3:PutObject`` on ``<bucket>/*/uploads/*`` - for one key, the ``Content-Type`` and
    the exact ``Content-Length``: S3 recomputes the signature over the headers the PUT sends, so another key, type or
    size is refused (403 ``SignatureDoesNotMatch``). A presigned PUT cannot carry a size *range* (only a presigned
    POST policy's ``content-length-range`` can); the exact size, checked against the tools' limit before signing,
    caps it just as well and keeps the upload one plain ``PUT`` (``curl -T``). Signing is local (no AWS call).

    ``client``: a boto3 S3 client configured for SigV4 (default: built on first use); ``endpoint_url``: where the
    URLs point (``stepcrew dev`` points them at itself, path-style).
    """

    def __init__(self, bucket: str, *, client: Any = None, endpoint_url: str | None = None,
                 region: str | None = None) -> None:
        self.bucket = bucket
        self._client = client
        self._endpoint_url = endpoint_url
        self._region = region

    @property
    def client(self) -> Any:
        """The signing S3 client (SigV4; path-style when an endpoint is given)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            style = "path" if self._endpoint_url else "virtual"
            self._client = boto3.client("s3", endpoint_url=self._endpoint_url, region_name=self._region,
                                        config=Config(signature_version="s3v4", s3={"addressing_style": style}))
        return self._client

    def presign_put(self, key: str, content_type: str, size_bytes: int, expires_s: int) -> tuple[str, dict[str, str]]:
        """``(url, headers)`` of one PUT of ``size_bytes`` bytes of ``content_type`` to ``key``, valid ``expires_s``
        seconds; ``headers`` are the signed ones the PUT must send."""
        url = self.client.generate_presigned_url(
            "put_object", HttpMethod="PUT", ExpiresIn=expires_s,
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size_bytes})
        return url, {"Content-Type": content_type, "Content-Length": str(size_bytes)}


@dataclass(frozen=True)
class ApiConfig:
    """What differs between deployments. ``data_schemes``: URI schemes a run's ``data`` may use (AWS: ``s3``
    only). ``default_provider``: the provider of a run whose body names none. ``data_bucket``: the stage's datasets
    bucket (an ``s3://`` dataset must be ``s3://<data_bucket>/<tenant>/...``; None: any bucket, the tenant prefix
    still holds). ``data_dirs``: the folders a ``file://`` dataset may be in (``stepcrew dev --data-dir``; None: no
    folder restriction, for in-process use)."""

    stage: str = "local"
    tenant_claim: str = DEFAULT_TENANT_CLAIM
    data_schemes: tuple[str, ...] = ("s3",)
    default_provider: str = "rule"
    data_bucket: str | None = None
    data_dirs: tuple[PathType, ...] | None = None


def _json_loads(text: str) -> Any:
    """Strict JSON: ``NaN``/``Infinity`` are rejected (not JSON, RFC 8259), so is a number too large for a float
    (``1e400`` would become ``inf``), and nesting too deep for the parser is a decode error, not a crash. Raises
    json.JSONDecodeError."""
    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    def finite(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise ValueError(f"the number {literal[:32]} is out of range")
        return value

    try:
        return json.loads(text, parse_constant=reject, parse_float=finite)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise json.JSONDecodeError(str(exc) if isinstance(exc, ValueError) else "nested too deeply", text, 0) from None


#: An S3 bucket name (3-63 of lowercase letters, digits, dots and hyphens; S3 bucket naming rules).
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _check_dataset_uri(uri: str) -> None:
    """Reject at once a dataset URI the run could never read (instead of a run that fails later): an ``s3://``
    URI needs a valid bucket name and a key, and any dataset must end in a supported suffix
    (:data:`stepcrew.tools.datasets.SUFFIXES`). Raises BadRequest (``invalid_data_uri``); never quotes the URI."""
    from stepcrew.tools.datasets import SUFFIXES

    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        key = parsed.path.lstrip("/")
        if not _S3_BUCKET.match(parsed.netloc) or not key:
            raise BadRequest("an s3:// dataset URI needs a bucket and a key: s3://<bucket>/<key>.csv",
                             code="invalid_data_uri")
    if not parsed.path.lower().endswith(SUFFIXES):
        raise BadRequest(f"the dataset must end in {', '.join(SUFFIXES)}", code="invalid_data_uri")


def _loc(loc: Any) -> str:
    return ".".join(str(p) for p in (loc or ())) or "(request)"


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """``"body.goal: String should have at least 1 character; query.limit: ..."`` (at most 3 errors, no input
    values: a goal never ends up in an error message or a log)."""
    parts = [f"{_loc(e.get('loc'))}: {e.get('msg', 'invalid')}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _error_response(err: ApiError) -> Response:
    return Response(status_code=int(err.status), content_type=content_types.APPLICATION_JSON, body=err.body(),
                    headers=err.headers or None)


def _path(event: Mapping[str, Any]) -> str:
    """The request path without a named stage prefix (as Powertools routes it)."""
    raw = str(event.get("rawPath") or "/")
    stage = (event.get("requestContext") or {}).get("stage")
    if stage and stage != "$default" and raw.startswith(f"/{stage}/"):
        return raw[len(stage) + 1:]
    return raw


def _method(event: Mapping[str, Any]) -> str:
    return str(((event.get("requestContext") or {}).get("http") or {}).get("method") or "").upper()


def _body_bytes(event: Mapping[str, Any]) -> bytes:
    """The body as bytes (base64 decoded when ``isBase64Encoded``). Raises BadRequest for bad base64/UTF-8 and
    PayloadTooLarge above MAX_BODY_BYTES (checked on the raw text first, so a huge body is never decoded)."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadRequest("the request body must be text", code="malformed_json")
    # base64 text is 4/3 of its bytes; UTF-8 text is at least 1 byte per character
    if len(body) > (MAX_BODY_BYTES * 4 // 3 + 4 if event.get("isBase64Encoded") else MAX_BODY_BYTES):
        raise PayloadTooLarge(f"the request body exceeds {MAX_BODY_BYTES} bytes")
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the request body is not valid base64", code="malformed_json") from None
    else:
        data = body.encode("utf-8", errors="surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8 text", code="malformed_json") from None
    return data


def _check_content_type(event: Mapping[str, Any]) -> None:
    """415 for a POST whose Content-Type is not JSON (before Powertools tries to parse, e.g., a multipart body
    without a boundary, which raised). No Content-Type: the body is read as JSON."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()} if isinstance(
        event.get("headers"), Mapping) else {}
    media = str(headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if _method(event) == "POST" and media and media != "application/json" and not media.endswith("+json"):
        raise ApiError("the request body must be application/json", code="unsupported_media_type",
                       status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)


class StepcrewApi(APIGatewayHttpResolver):
    """The API resolver bound to a store, an execution starter, a task resumer and an idempotency persistence
    layer (see :func:`build_app`). ``resolve(event, context)`` answers an HTTP API v2 event."""

    def __init__(self, store: RunStore, starter: ExecutionStarter, tasks: TaskResumer,
                 idempotency: BasePersistenceLayer, config: ApiConfig | None = None,
                 limiter: RateLimiter | None = None, uploads: S3Uploads | None = None,
                 screen: Callable[[str], object] | None = None, memory: Any = None,
                 memory_writer: MemoryWriter | None = None) -> None:
        super().__init__(enable_validation=True, json_body_deserializer=_json_loads)
        self.store = store
        self.memory = memory
        self.memory_writer = memory_writer
        self.screen = screen
        self.limiter = limiter
        self.uploads = uploads
        self.starter = starter
        self.tasks = tasks
        self.config = config or ApiConfig()
        self._idempotency_config = idempotency_config()

        @idempotent_function(data_keyword_argument="data", persistence_store=idempotency,
                             config=self._idempotency_config, key_prefix=IDEMPOTENCY_KEY_PREFIX)
        def start_once(*, data: dict[str, Any], request: RunRequest, crew: Crew,
                       outcome: dict[str, bool]) -> dict[str, Any]:
            outcome["created"] = True
            return self.launch(request, crew).model_dump(mode="json")

        self._start_once = start_once
        self.configure_openapi(
            title=OPENAPI_TITLE, version=stepcrew.__version__, description=OPENAPI_DESCRIPTION,
            security_schemes={"jwt": HTTPBearer(bearerFormat="JWT", description=(
                "API Gateway's JWT authorizer validates the token; the tenant is its custom:tenant claim (or sub). "
                "Locally (stepcrew dev): 'Bearer local:<tenant>'."))})
        _register_routes(self)
        _register_error_handlers(self)

    # ------------------------------------------------------------------------------------------ entry point
    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """Answer one API Gateway HTTP API (payload format 2.0) event with a v2 response dict."""
        try:
            if not isinstance(event, Mapping) or event.get("version") != "2.0" or not _method(event) \
                    or not isinstance(event.get("rawPath"), str):
                raise BadRequest("not an API Gateway HTTP API (payload format 2.0) event", code="unsupported_event")
            self._check_method(event)
            _check_content_type(event)
            _body_bytes(event)
            if (_method(event), _path(event)) != _HEALTH:
                tenant = tenant_from_event(event, self.config.tenant_claim)
                self.append_context(tenant=tenant)
                self._check_rate(tenant, event)
        except ApiError as err:
            self.clear_context()
            return self._direct(err)
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._idempotency_config.register_lambda_context(context)
        return super().resolve(event, context)

    def _check_rate(self, tenant: str, event: Mapping[str, Any]) -> None:
        """429 ``rate_limited`` with ``Retry-After`` when the tenant is over its per-minute limit
        (:mod:`stepcrew.api.ratelimit`); a limiter that fails lets the request through (logged)."""
        if self.limiter is None:
            return
        bucket = bucket_of(_method(event))
        try:
            decision = self.limiter.hit(tenant, bucket)
        except Exception as exc:  # noqa: BLE001 - the stage throttles still hold
            logger.warning("rate limiter failed", extra=log_fields(tenant=tenant, error_type=type(exc).__name__))
            return
        if not decision.allowed:
            raise TooManyRequests(f"tenant over its limit of {decision.limit} {bucket} requests per minute; retry in "
                                  f"{decision.retry_after_s} s", headers={"Retry-After": str(decision.retry_after_s)})

    def _check_method(self, event: Mapping[str, Any]) -> None:
        """405 (with ``Allow``) for a method no route of this path has (TRACE, PUT, DELETE...); unknown paths are
        left to routing (404)."""
        path, method = _path(event), _method(event)
        allowed = sorted({r.method.upper() for r in self._static_routes + self._dynamic_routes if r.rule.match(path)})
        if allowed and method not in allowed:
            raise ApiError(f"{method} is not allowed here; allowed: {', '.join(allowed)}", code="method_not_allowed",
                           status=HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": ", ".join(allowed)})

    @staticmethod
    def _direct(err: ApiError) -> dict[str, Any]:
        """A v2 response built without routing (same shape as Powertools' HTTP API responses)."""
        return {"statusCode": int(err.status), "body": json.dumps(err.body(), separators=(",", ":")),
                "isBase64Encoded": False, "headers": {"Content-Type": content_types.APPLICATION_JSON, **err.headers},
                "cookies": []}

    @property
    def tenant(self) -> str:
        """The caller's tenant, set by :meth:`resolve` from the JWT claims (KeyError outside a request)."""
        return self.context["tenant"]

    # ------------------------------------------------------------------------------------------ use cases
    def prepare(self, tenant: str, new_run: NewRun) -> tuple[RunRequest, Crew]:
        """Check provider, dataset URI and crew; return the run request (tenant from the token, the deployment's
        default provider when the body names none) and the loaded, validated crew. Raises BadRequest; writes
        nothing."""
        from stepcrew.crew import CrewError, load_crew, packaged_crews
        from stepcrew.llm.registry import UnknownProviderError, check_provider

        provider = new_run.provider if "provider" in new_run.model_fields_set else self.config.default_provider
        try:
            check_provider(provider)
        except UnknownProviderError as exc:
            raise BadRequest(str(exc), code="unknown_provider") from None
        if new_run.data is not None:
            scheme = new_run.data.split("://", 1)[0]
            if scheme not in self.config.data_schemes:
                allowed = ", ".join(f"{s}://" for s in self.config.data_schemes)
                raise BadRequest(f"data must be a {allowed} URI here", code="invalid_data_uri")
            _check_dataset_uri(new_run.data)
            from stepcrew.tools.datasets import check_dataset_access, resolve_dataset
            from stepcrew.tools.errors import DatasetError

            try:  # another tenant's dataset is answered exactly like a missing one (checked again by the tool)
                check_dataset_access(new_run.data, tenant, bucket=self.config.data_bucket,
                                     local_dirs=self.config.data_dirs)
            except DatasetError as exc:
                raise BadRequest(str(exc), code="dataset_not_found") from None
            if scheme == "file":  # local dev server only: check the file now; an s3:// dataset is checked by the run
                try:
                    resolve_dataset(new_run.data)
                except DatasetError as exc:
                    raise BadRequest(str(exc), code="invalid_dataset") from None
        if new_run.crew not in packaged_crews():
            raise BadRequest(f"unknown crew {new_run.crew!r}; available crews: {', '.join(packaged_crews())}",
                             code="unknown_crew")
        try:
            crew = load_crew(new_run.crew)
        except CrewError:  # a packaged crew that fails validation is our bug: a 500, logged
            logger.error("packaged crew failed validation", extra={"crew": new_run.crew})
            raise
        try:
            crew.guardrails.tightened(new_run.guardrails)
        except GuardrailsLoosenedError as exc:
            raise BadRequest(str(exc), code="invalid_guardrails") from None
        from stepcrew.resilience.chain import ChainConfigError, effective_routing

        try:  # every provider of the chain known and configured in this deployment
            effective_routing(new_run.routing, provider)
        except ChainConfigError as exc:
            raise BadRequest(str(exc), code="invalid_routing") from None
        roles = {crew.planner.name, crew.reviewer.name, crew.synthesizer.name, *(w.name for w in crew.workers)}
        unknown = sorted(set(new_run.routing.role_tiers) - roles) if new_run.routing else []
        if unknown:
            raise BadRequest(f"routing.role_tiers names no role of crew {crew.name!r}: {', '.join(unknown)} "
                             f"(roles: {', '.join(sorted(roles))})", code="invalid_routing")
        from stepcrew.memory.models import resolve_user

        try:  # the run's user must be of the caller's tenant
            resolve_user(tenant, new_run.user)
        except UserOutsideTenantError as exc:
            raise BadRequest(str(exc), code="user_outside_tenant") from None
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_user") from None
        return new_run.to_request(tenant, provider=provider), crew

    def _check_tenant_budget(self, tenant: str) -> None:
        """429 ``tenant_budget_exceeded`` (the budget's name and reset time in the message, ``Retry-After`` in
        seconds) when the tenant has spent its daily or monthly $ budget (:mod:`stepcrew.resilience.tenant_budget`):
        nothing is started. A ledger that cannot be read fails closed (503)."""
        from datetime import UTC, datetime

        from stepcrew.resilience.tenant_budget import TenantBudgetExceededError, ledger_for
        from stepcrew.store.base import StoreError

        now = datetime.now(UTC)
        try:
            ledger_for(self.store).check(tenant, now)
        except TenantBudgetExceededError as exc:
            retry = max(1, int((exc.resets_at - now).total_seconds()))
            raise TooManyRequests(str(exc), code="tenant_budget_exceeded", headers={"Retry-After": str(retry)}) \
                from None
        except StoreError:
            raise ServiceUnavailable("the tenant budget could not be read; retry") from None

    def launch(self, request: RunRequest, crew: Crew) -> RunAccepted:
        """Write the run record (QUEUED) and start its execution. Raises ServiceUnavailable (``run_start_failed``)
        when the start fails: the run is then recorded as FAILED (:func:`stepcrew.service.start_run`)."""
        self._check_tenant_budget(request.tenant)  # here, not in prepare: an idempotent replay is no new run
        run = create_run(request, crew, self.store)
        try:
            run = start_run(run, self.store, self.starter)
        except RunStartError:
            logger.error("run start failed", extra=log_fields(run_id=run.run_id, tenant=request.tenant))
            raise ServiceUnavailable(f"run {run.run_id} was recorded but could not be started; it is marked "
                                     "FAILED. Retry the request.", code="run_start_failed") from None
        logger.info("run started", extra=log_fields(run_id=run.run_id, tenant=request.tenant, crew=crew.name,
                                          provider=request.provider))
        return RunAccepted(run_id=run.run_id, status=run.status, links=RunLinks.of(run.run_id))

    # ------------------------------------------------------------------------------------------ memory
    def _memory(self) -> Any:
        if self.memory is None:
            raise ServiceUnavailable("tenant memory is not configured in this deployment", code="memory_unavailable")
        return self.memory

    @staticmethod
    def memory_user(tenant: str, user: str | None) -> str | None:
        """``user`` within ``tenant`` (:func:`~stepcrew.memory.models.resolve_user`). Raises BadRequest
        ``user_outside_tenant`` (another tenant's qualified id) or ``invalid_user``."""
        try:
            return resolve_user(tenant, user)
        except UserOutsideTenantError as exc:
            raise BadRequest(str(exc), code="user_outside_tenant") from None
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_user") from None

    def list_memory(self, tenant: str, kind: str, user: str | None, limit: int, cursor: str | None) -> MemoryList:
        """A page of ``tenant``'s memory: facts first (oldest first), then episodes (newest first), ``limit`` per
        kind. The cursor is the last id of the previous page: an ``f-`` cursor continues the facts (and the
        episodes start once the facts end), an ``e-`` cursor continues the episodes. Raises BadRequest."""
        memory = self._memory()
        self.memory_user(tenant, user)
        if cursor is not None and (not re.fullmatch(MEMORY_ID_PATTERN, cursor)
                                   or (kind == "fact" and not cursor.startswith("f-"))
                                   or (kind == "episode" and not cursor.startswith("e-"))):
            raise BadRequest("invalid cursor: pass a next_cursor returned by GET /memory with the same kind",
                             code="invalid_cursor")
        out = MemoryList()
        try:
            if kind in ("fact", "all") and not (cursor or "").startswith("e-"):
                page = memory.list(tenant, "fact", user=user, limit=limit, cursor=cursor)
                out.facts, out.next_cursor = page.facts, page.next_cursor
            if kind in ("episode", "all") and out.next_cursor is None:
                page = memory.list(tenant, "episode", user=user, limit=limit,
                                   cursor=cursor if (cursor or "").startswith("e-") else None)
                out.episodes, out.next_cursor = page.episodes, page.next_cursor
        except ValueError:
            raise BadRequest("invalid cursor: pass a next_cursor returned by GET /memory", code="invalid_cursor") \
                from None
        return out

    def remember(self, tenant: str, body: NewMemory) -> MemoryWriteResult:
        """Write ``body``'s facts for ``tenant`` through the memory writer. Raises BadRequest (nothing written)
        or ServiceUnavailable ``memory_unavailable`` with ``Retry-After``."""
        if self.memory_writer is None:
            raise ServiceUnavailable("memory writes are not configured in this deployment", code="memory_unavailable")
        for user in dict.fromkeys([body.user, *(f.user for f in body.facts)]):  # a precise code here; the writer
            # checks them again
            self.memory_user(tenant, user)
        try:
            result = self.memory_writer.remember(tenant, body.facts, body.user)
        except MemoryRejectedError as exc:
            raise BadRequest(str(exc), code="memory_rejected") from None
        except UserOutsideTenantError as exc:
            raise BadRequest(str(exc), code="user_outside_tenant") from None
        except ValueError as exc:
            raise BadRequest(str(exc), code=INVALID_MEMORY) from None
        except MemoryUnavailableError as exc:
            logger.warning("memory writer unavailable", extra=log_fields(tenant=tenant))
            raise ServiceUnavailable(f"memory could not be written now; retry ({exc})", code="memory_unavailable",
                                     headers={"Retry-After": str(MEMORY_RETRY_AFTER_S)}) from None
        logger.info("memory written", extra=log_fields(tenant=tenant, facts_created=len(result.created),
                                                      facts_updated=len(result.updated),
                                                      facts_evicted=len(result.evicted)))
        return result

    def forget_memory(self, tenant: str, memory_id: str) -> None:
        """Delete one item of ``tenant`` and its vector. Raises NotFound ``memory_not_found`` for a malformed id
        (nothing is read), an unknown id and another tenant's item alike."""
        memory = self._memory()
        if not re.fullmatch(MEMORY_ID_PATTERN, memory_id) or not memory.forget(tenant, memory_id):
            raise NotFound(f"memory item {memory_id[:64]!r} not found", code="memory_not_found")
        logger.info("memory item deleted", extra=log_fields(tenant=tenant))

    def clear_memory(self, tenant: str, user: str | None, confirm: bool) -> MemoryErased:
        """Erase ``tenant``'s memory, or ``user``'s items only; the whole tenant needs ``confirm``. Raises
        BadRequest (``confirmation_required``, ``user_outside_tenant``, ``invalid_user``)."""
        memory = self._memory()
        self.memory_user(tenant, user)
        if user is None and not confirm:
            raise BadRequest("erasing all of the tenant's memory needs confirm=true (or name one user with ?user=)",
                             code="confirmation_required")
        deleted = memory.clear(tenant, user=user)
        logger.info("memory erased", extra=log_fields(tenant=tenant, deleted=deleted, scope="user" if user else
                                                     "tenant"))
        return MemoryErased(deleted=deleted)

    def get_owned_run(self, run_id: str) -> Run:
        """The caller's run, or NotFound (malformed id, unknown id, another tenant's run: all alike)."""
        return self.read_owned(run_id, self.store.get_run)

    def read_owned(self, run_id: str, read: Callable[[str, str], _T]) -> _T:
        """``read(run_id, tenant)`` for the caller's run; NotFound for a malformed id (``read`` is not called)
        and when ``read`` raises RunNotFoundError (unknown id, another tenant's run)."""
        if not re.match(RUN_ID_PATTERN, run_id):
            raise NotFound(f"run {run_id[:64]!r} not found")
        try:
            return read(run_id, self.tenant)
        except RunNotFoundError:
            raise NotFound(f"run {run_id!r} not found") from None


# ============================================================================================== routes
_ERRORS_COMMON = {
    400: error_doc("Bad input: malformed JSON, a missing/wrong-typed/out-of-range field, an unknown field"),
    401: error_doc("No JWT claims (unauthenticated)"),
    403: error_doc("The token's tenant claim is not a valid tenant id"),
    413: error_doc(f"Body larger than {MAX_BODY_BYTES} bytes"),
    429: error_doc("The tenant is over its per-minute request limit (rate_limited) or, for POST /runs, its daily or "
                   "monthly $ budget (tenant_budget_exceeded); header Retry-After: seconds"),
    500: error_doc("Unexpected error (no internals are returned)"),
}


def _responses(ok: int, ok_description: str, **extra: str) -> dict[int, Any]:
    out: dict[int, Any] = {ok: {"description": ok_description}, **_ERRORS_COMMON}
    for code, description in extra.items():
        out[int(code.lstrip("s"))] = error_doc(description)
    return dict(sorted(out.items()))


def _register_routes(app: StepcrewApi) -> None:  # noqa: C901 - one closure per route
    @app.post("/runs", status_code=202, operation_id="createRun", security=AUTH, tags=["runs"], summary="Start a run",
              description="Records the run (QUEUED) and starts its execution; poll links.self. With an "
                          "Idempotency-Key, the same tenant and key within 24 h return the first run (header "
                          "Idempotent-Replayed: true) and start no second execution.",
              responses=_responses(202, "Run accepted", s404="No such route", s409="Same Idempotency-Key still "
                                   "being processed", s415="Body is not application/json",
                                   s422="Idempotency-Key reused with a different body", s503="The run could not be "
                                   "started (recorded as FAILED) or a dependency failed; retry"))
    def create_run_route(
        body: Annotated[NewRun, Body(description="the run request (the tenant comes from the token)")],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN,
                                                      description="optional; 1-128 of [A-Za-z0-9_.:-]; same "
                                                                  "tenant + key within 24 h = same run")] = None,
    ) -> Response[RunAccepted]:
        tenant = app.tenant
        replayed = False
        request, crew = app.prepare(tenant, body)  # bad input is rejected before any write
        if idempotency_key is None:
            accepted = app.launch(request, crew)
        else:
            outcome: dict[str, bool] = {}
            data = {"tenant": tenant, "key": idempotency_key, "request": body.model_dump(mode="json")}
            try:
                stored = app._start_once(data=data, request=request, crew=crew, outcome=outcome)
            except IdempotencyValidationError:
                raise Unprocessable("this Idempotency-Key was already used with a different request body; use a "
                                    "new key for a new run") from None
            except IdempotencyAlreadyInProgressError:
                raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly",
                               code="idempotency_in_progress", headers={"Retry-After": "1"}) from None
            accepted = RunAccepted.model_validate(stored)
            replayed = not outcome.get("created")
            if replayed:  # answer with the run's current status
                run = app.store.get_run(accepted.run_id, tenant)
                accepted = RunAccepted(run_id=run.run_id, status=run.status, links=RunLinks.of(run.run_id))
                logger.info("idempotent replay", extra=log_fields(run_id=run.run_id, tenant=tenant))
        headers = {"Location": accepted.links.self}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(status_code=HTTPStatus.ACCEPTED, content_type=content_types.APPLICATION_JSON, body=accepted,
                        headers=headers)

    @app.get("/runs", operation_id="listRuns", security=AUTH, tags=["runs"],
             summary="List the caller's runs, newest first",
             responses=_responses(200, "A page of runs"))
    def list_runs_route(
        limit: Annotated[int, Query(ge=1, le=100, description="page size, 1-100")] = 20,
        cursor: Annotated[str | None, Query(max_length=LIST_CURSOR_MAX_CHARS,
                                            description="next_cursor of the previous page")] = None,
    ) -> RunList:
        try:
            runs, next_cursor = app.store.list_runs(app.tenant, limit=limit, cursor=cursor)
        except ValueError:
            raise BadRequest("invalid cursor: pass a next_cursor returned by GET /runs", code="invalid_cursor") \
                from None
        return RunList(runs=[_summary(r) for r in runs], next_cursor=next_cursor)

    @app.get("/runs/<run_id>", operation_id="getRun", security=AUTH, tags=["runs"], summary="A run's result view",
             responses=_responses(200, "The run", s404="Unknown run (or another tenant's)"))
    def get_run_route(
        run_id: Annotated[str, Path(description="run id (an unknown or malformed id is a 404)")],
    ) -> RunResult:
        return app.read_owned(run_id, partial(run_result, app.store))  # run_result reads the run itself

    @app.get("/runs/<run_id>/events", operation_id="listRunEvents", security=AUTH, tags=["runs"],
             summary="A run's progress events, oldest first",
             responses=_responses(200, "Events", s404="Unknown run (or another tenant's)"))
    def list_events_route(
        run_id: Annotated[str, Path(description="run id (an unknown or malformed id is a 404)")],
        after: Annotated[str | None, Query(max_length=EVENT_CURSOR_MAX_CHARS,
                                           description="only events after this cursor")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many events, 1-1000")] = 500,
    ) -> EventPage:
        app.get_owned_run(run_id)
        events = app.store.list_events(run_id, after=after, limit=limit)
        items = [EventItem(cursor=c, kind=e.kind, at=e.at, subtask_id=e.subtask_id, data=e.data) for c, e in events]
        return EventPage(run_id=run_id, events=items, next_after=items[-1].cursor if items else after)

    @app.post("/runs/<run_id>/approval", operation_id="decideApproval", security=AUTH, tags=["runs"],
              summary="Approve or reject a run waiting for approval",
              responses=_responses(200, "Decision recorded; the run resumes", s404="Unknown run (or another "
                                   "tenant's)", s409="The run is not waiting for approval, or its approval task "
                                   "closed", s415="Body is not application/json", s503="Step Functions failed; "
                                   "retry"))
    def approval_route(run_id: Annotated[str, Path(description="run id (an unknown or malformed id is a 404)")],
                       body: Annotated[Approval, Body(description="the decision")]) -> ApprovalAccepted:
        app.get_owned_run(run_id)
        try:
            run = answer_approval(app.store, app.tasks, run_id, app.tenant, body.approved, body.comment or "")
        except DecisionError as exc:
            raise _decision_error(exc) from None
        return ApprovalAccepted(run_id=run_id, approved=body.approved, status=run.status, links=RunLinks.of(run_id))

    @app.post("/runs/<run_id>/review", operation_id="answerReview", security=AUTH, tags=["runs"],
              summary="Accept or reject the report of a run handed off for review (NEEDS_REVIEW)",
              description="A run whose report failed its last review round waits in NEEDS_REVIEW (review.on_fail "
                          "handoff). accept: true (optionally with a corrected report) ends it SUCCEEDED; false ends "
                          "it FAILED ReviewRejected with the comment. An answer after the deadline is a 409 and the "
                          "run is FAILED ReviewTimedOut.",
              responses=_responses(200, "Decision recorded; the run resumes", s404="Unknown run (or another "
                                   "tenant's)", s409="The run is not NEEDS_REVIEW, or its hand-off closed or "
                                   "expired", s415="Body is not application/json", s503="Step Functions failed; "
                                   "retry"))
    def review_route(run_id: Annotated[str, Path(description="run id (an unknown or malformed id is a 404)")],
                     body: Annotated[ReviewAnswer, Body(description="the decision")]) -> ReviewAnswered:
        app.get_owned_run(run_id)
        decision = ReviewDecision(accept=body.accept, comment=body.comment)
        try:
            run = answer_review(app.store, app.tasks, run_id, app.tenant, decision, body.report, screen=app.screen)
        except DecisionError as exc:
            raise _decision_error(exc) from None
        return ReviewAnswered(run_id=run_id, accept=body.accept, status=run.status, links=RunLinks.of(run_id))

    @app.post("/datasets", status_code=201, operation_id="createDatasetUpload", security=AUTH, tags=["datasets"],
              summary="Get an upload URL for a dataset under the caller's tenant",
              description="Answers a presigned S3 PUT for s3://<bucket>/<tenant>/uploads/<name> (tenant from the "
                          "token, never the body), valid expires_in_s seconds. PUT the file with exactly the "
                          "returned headers (Content-Type and Content-Length are signed: another size or type is "
                          "refused by S3), then start runs with data = uri. The same name again replaces the file.",
              responses=_responses(201, "Upload URL issued", s404="No such route", s415="Body is not "
                                   "application/json", s503="Uploads are not configured here"))
    def create_dataset_upload_route(
        body: Annotated[NewDataset, Body(description="the file to upload (the tenant comes from the token)")],
    ) -> Response[DatasetUpload]:
        from stepcrew.tools.datasets import MAX_DATASET_BYTES, check_dataset_access, upload_key
        from stepcrew.tools.errors import DatasetError

        tenant = app.tenant
        if app.uploads is None:
            raise ServiceUnavailable("dataset uploads are not configured in this deployment",
                                     code="uploads_unavailable")
        key = upload_key(tenant, body.name)  # validated already; raises ValueError only on a bug (500)
        uri = f"s3://{app.uploads.bucket}/{key}"
        try:  # never sign outside the caller's prefix (the data tools check reads the same way)
            check_dataset_access(uri, tenant, bucket=app.config.data_bucket or app.uploads.bucket)
        except DatasetError:
            logger.error("upload key outside the tenant's prefix", extra=log_fields(tenant=tenant))
            raise
        url, headers = app.uploads.presign_put(key, body.content_type or "", body.size_bytes, UPLOAD_URL_EXPIRES_S)
        logger.info("dataset upload issued", extra=log_fields(tenant=tenant, bytes=body.size_bytes))
        return Response(status_code=HTTPStatus.CREATED, content_type=content_types.APPLICATION_JSON,
                        body=DatasetUpload(uri=uri, upload_url=url, headers=headers, expires_in_s=UPLOAD_URL_EXPIRES_S,
                                           max_bytes=MAX_DATASET_BYTES))

    @app.get("/memory", operation_id="listMemory", security=AUTH, tags=["memory"],
             summary="List the caller's tenant memory: facts, then episodes",
             description="Facts oldest first, then episodes (finished runs) newest first, at most limit of each "
                         "kind per page; pass next_cursor as ?cursor= for the next page (null: the last page). "
                         "user: only that user's items (<name> or <tenant>:<name>; another tenant's is 400 "
                         "user_outside_tenant).",
             responses=_responses(200, "A page of memory items", s503="Memory is not configured here"))
    def list_memory_route(
        kind: Annotated[Literal["fact", "episode", "all"], Query(description="fact, episode or all")] = "all",
        user: Annotated[str | None, Query(min_length=1, max_length=MEMORY_USER_MAX_CHARS,
                                          description="only this user's items: <name> or <tenant>:<name>")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="items per kind, 1-1000")] = 100,
        cursor: Annotated[str | None, Query(max_length=LIST_CURSOR_MAX_CHARS,
                                            description="next_cursor of the previous page")] = None,
    ) -> MemoryList:
        return app.list_memory(app.tenant, kind, user, limit, cursor)

    @app.post("/memory", status_code=201, operation_id="addMemory", security=AUTH, tags=["memory"],
              summary="Remember facts for the caller's tenant (screened by the PII guard first)",
              description="Every fact passes the PII guard before it is stored (personal data is masked; a fact "
                          "that looks like a prompt injection is refused: 400 memory_rejected). The same subject for "
                          "the same user replaces the earlier fact (updated), else it is created; over the tenant's "
                          "cap the lowest-confidence, least recently updated facts are evicted. All or nothing: a "
                          "bad fact (400 invalid_memory) writes none of the request.",
              responses=_responses(201, "Facts written: ids created, updated, evicted; PII masked",
                                   s404="No such route", s415="Body is not application/json",
                                   s503="The memory writer cannot be reached (memory_unavailable; header "
                                        "Retry-After) or is not configured"))
    def add_memory_route(
        body: Annotated[NewMemory, Body(description="the facts (the tenant comes from the token)")],
    ) -> Response[MemoryWriteResult]:
        result = app.remember(app.tenant, body)
        return Response(status_code=HTTPStatus.CREATED, content_type=content_types.APPLICATION_JSON, body=result)

    @app.delete("/memory/<memory_id>", operation_id="forgetMemory", security=AUTH, tags=["memory"],
                summary="Forget one memory item (and its vector)",
                responses=_responses(204, "Deleted (no body)", s404="No such item (also a malformed id or another "
                                     "tenant's item)", s503="Memory is not configured here"))
    def forget_memory_route(
        memory_id: Annotated[str, Path(description="f-<20 hex> (a fact) or e-<time>-<run id> (an episode); a "
                                                   "malformed id is a 404")],
    ) -> Response[None]:
        app.forget_memory(app.tenant, memory_id)
        return Response(status_code=HTTPStatus.NO_CONTENT, body=None)

    @app.delete("/memory", operation_id="eraseMemory", security=AUTH, tags=["memory"],
                summary="Erase the caller's tenant memory, or one user's",
                description="Deletes every fact and episode of the tenant (with their vectors), or with ?user= only "
                            "that user's. Erasing the whole tenant needs ?confirm=true (400 confirmation_required "
                            "otherwise).",
                responses=_responses(200, "Erased: how many items", s503="Memory is not configured here"))
    def erase_memory_route(
        user: Annotated[str | None, Query(min_length=1, max_length=MEMORY_USER_MAX_CHARS,
                                          description="erase only this user's items: <name> or "
                                                      "<tenant>:<name>")] = None,
        confirm: Annotated[bool, Query(description="true: required to erase the whole tenant's memory")] = False,
    ) -> MemoryErased:
        return app.clear_memory(app.tenant, user, confirm)

    @app.get("/health", operation_id="health", tags=["health"], summary="Liveness (no authentication)",
             responses={200: {"description": "The API is up"}, 500: error_doc("Unexpected error")})
    def health_route() -> Health:
        return Health(status="ok", stage=app.config.stage, version=stepcrew.__version__)


def _decision_error(exc: DecisionError) -> ApiError:
    """The API error of a decision that cannot be applied: 409 (not waiting, closed), 400 (too large), 503."""
    if isinstance(exc, ResumeFailed):
        return ServiceUnavailable(str(exc))
    if isinstance(exc, ReportTooLarge):
        return BadRequest(str(exc), code=exc.code)
    return Conflict(str(exc), code=exc.code)


def _summary(run: Run) -> RunSummary:
    goal = run.goal if len(run.goal) <= GOAL_PREVIEW_CHARS else run.goal[: GOAL_PREVIEW_CHARS - 1] + "…"
    return RunSummary(run_id=run.run_id, status=run.status, goal=goal, crew=run.crew.name, provider=run.provider,
                      engine=run.engine, created_at=run.created_at, updated_at=run.updated_at,
                      finished_at=run.finished_at, links=RunLinks.of(run.run_id))


# ============================================================================================== errors
def _register_error_handlers(app: StepcrewApi) -> None:
    @app.exception_handler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return _error_response(err)

    @app.exception_handler(RequestValidationError)
    def _validation(err: RequestValidationError) -> Response:
        errors = list(err.errors())
        invalid = [e for e in errors if e.get("type") == "json_invalid"]
        if invalid:  # the decoder's reason (a position or "the number 1e400 is out of range"), never the body
            why = str((invalid[0].get("ctx") or {}).get("error") or "")[:120]
            return _error_response(BadRequest("the request body is not valid JSON" + (f": {why}" if why else ""),
                                              code="malformed_json"))
        if any(e.get("type") == "missing" and tuple(e.get("loc") or ()) == ("body",) for e in errors):
            return _error_response(BadRequest("a JSON body is required"))
        own = [e for e in errors if e.get("type") in DATASET_ERROR_CODES]  # a body model's own code, first one
        if own:
            return _error_response(BadRequest(_validation_message(own), code=str(own[0]["type"])))
        facts = [e for e in errors if tuple(e.get("loc") or ())[:2] == ("body", "facts") and len(e["loc"]) > 2]
        if facts:  # POST /memory: one of the facts is not a valid memory item
            return _error_response(BadRequest(_validation_message(facts), code=INVALID_MEMORY))
        return _error_response(BadRequest(_validation_message(errors)))

    @app.exception_handler(RequestUnsupportedContentType)
    def _media_type(err: RequestUnsupportedContentType) -> Response:
        return _error_response(ApiError("the request body must be application/json", code="unsupported_media_type",
                                        status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE))

    @app.not_found
    def _no_route(err: NotFoundError) -> Response:
        return _error_response(ApiError("no such route", code="route_not_found", status=HTTPStatus.NOT_FOUND))

    @app.exception_handler(RunNotFoundError)
    def _run_not_found(err: RunNotFoundError) -> Response:
        return _error_response(NotFound("run not found"))

    @app.exception_handler(RunStateConflictError)
    def _state_conflict(err: RunStateConflictError) -> Response:
        return _error_response(Conflict("the run changed state; reload it", code="run_state_conflict"))

    @app.exception_handler(Exception)
    def _unexpected(err: Exception) -> Response:
        # ids only: no message (it may quote input), just the type and the stack frames
        stack = "".join(traceback.format_tb(err.__traceback__))[-4000:]
        dependency = isinstance(err, StoreError) or type(err).__name__ in (
            "ClientError", "EndpointConnectionError", "IdempotencyPersistenceLayerError", "ReadTimeoutError")
        logger.error("unhandled error", extra=log_fields(error_type=type(err).__name__, stack=stack,
                                               tenant=app.context.get("tenant")))
        if dependency:
            return _error_response(ServiceUnavailable("a dependency failed; retry later"))
        return _error_response(ApiError("internal error", code="internal_error",
                                        status=HTTPStatus.INTERNAL_SERVER_ERROR))


# ============================================================================================== builders
def build_app(store: RunStore, starter: ExecutionStarter, tasks: TaskResumer, idempotency: BasePersistenceLayer,
              config: ApiConfig | None = None, limiter: RateLimiter | None = None,
              uploads: S3Uploads | None = None, screen: Callable[[str], object] | None = None,
              memory: Any = None, memory_writer: MemoryWriter | None = None) -> StepcrewApi:
    """The API bound to its collaborators (all injected: tests pass fakes or moto-backed ones; no ``limiter``: no
    per-tenant limit; no ``uploads``: ``POST /datasets`` answers 503 ``uploads_unavailable``; ``screen``: the output
    guard for a hand-off answered after its execution is gone (the local server; deployed, the state machine's
    GuardAcceptedReport screens it); ``memory``: the :class:`~stepcrew.memory.service.Memory` the memory routes read
    and delete with, ``memory_writer``: what ``POST /memory`` writes through (none: those routes answer 503
    ``memory_unavailable``))."""
    return StepcrewApi(store, starter, tasks, idempotency, config, limiter, uploads, screen, memory, memory_writer)


def app_from_env() -> StepcrewApi:
    """The API as deployed: settings from the environment (:class:`stepcrew.api.settings.ApiSettings`, raises
    SettingsError when incomplete), the DynamoDB store and idempotency layer sharing one client, Step Functions."""
    import boto3
    from botocore.config import Config

    from stepcrew.api.idempotency import dynamodb_persistence
    from stepcrew.api.settings import ApiSettings
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.memory.wiring import memory_for
    from stepcrew.memory.writer import writer_from_env
    from stepcrew.service import StepFunctionsStarter
    from stepcrew.settings import load_settings
    from stepcrew.store.dynamodb import DynamoRunStore

    settings = load_settings(ApiSettings)
    retries = Config(retries={"mode": "standard", "max_attempts": 5})
    dynamodb = boto3.client("dynamodb", config=retries)
    sfn = boto3.client("stepfunctions", config=retries)
    store = DynamoRunStore(settings.table_name, client=dynamodb)
    memory = memory_for(EngineResolver(), store)  # reads and deletes with it; writes go through the writer
    return build_app(
        store,
        StepFunctionsStarter(settings.run_state_machine_arn, client=sfn),
        StepFunctionsTasks(client=sfn),
        dynamodb_persistence(settings.table_name, client=dynamodb),
        ApiConfig(stage=settings.stage, tenant_claim=settings.tenant_claim, data_schemes=settings.schemes,
                  default_provider=settings.default_provider, data_bucket=settings.data_bucket),
        DynamoRateLimiter(dynamodb, settings.table_name, {"start": settings.tenant_rate_start,
                                                          "read": settings.tenant_rate_read}),
        S3Uploads(settings.data_bucket) if settings.data_bucket else None,
        memory=memory,
        memory_writer=writer_from_env(memory),  # STEPCREW_MEMORY_FUNCTION (set by the stack): the memory function
    )
