"""``stepcrew dev``: the HTTP API on 127.0.0.1, the very same handler as on AWS, the local runtime behind it.

Each HTTP request becomes an API Gateway HTTP API event, payload format 2.0 (``version``, ``routeKey``,
``rawPath``, ``rawQueryString``, ``cookies``, lower-cased ``headers`` with repeated headers joined by commas,
``queryStringParameters``, ``pathParameters``, ``requestContext.http``, ``requestContext.authorizer.jwt``,
``body``/``isBase64Encoded``), as described in "Working with AWS Lambda proxy integrations for HTTP APIs" (API
Gateway developer guide); the handler's v2 response becomes the HTTP response. Runs really execute: the run
state machine and every function run in-process (:class:`stepcrew.local.runtime.LocalRuntime`), and every write to
the table is durable in ``state_dir`` before it returns (:mod:`stepcrew.local.durable`), so ``stepcrew runs list`` in
another terminal sees the runs as they run. Runs a process that ended left unfinished are marked FAILED at start, or
resumed with ``resume_orphans`` (``stepcrew dev --resume-orphans``), through the admission queue.

Under load: at most ``STEPCREW_DEV_MAX_RUNS`` runs (default 4) execute at once; later runs wait QUEUED, in order, up
to ``STEPCREW_DEV_MAX_QUEUED`` (default 100), beyond which ``POST /runs`` answers 429 ``dev_queue_full`` with
``Retry-After`` and writes nothing (:mod:`stepcrew.local.admission`; why a queue: see there). The answers about a
queued run carry its place (:data:`QUEUE_POSITION_HEADER`). ``GET /health`` is answered without waiting for the
resolver (:class:`DevServer`). At exit, queued runs that never started are marked FAILED ``LocalRuntimeExited``. Tenant memory (``/memory``) is read and deleted on the
same table and written in this process through :class:`stepcrew.memory.writer.InProcessWriter` with the offline
guard (deployed, ``POST /memory`` invokes the memory function), so ``stepcrew memory list`` sees it too.

Authentication: there is no JWT authorizer locally. A **local token switch** stands in for it and says so on
stderr at startup:

- ``Authorization: Bearer local:<tenant>`` -> the claims ``{"sub": <tenant>, "custom:tenant": <tenant>}``
  (``<tenant>`` must be a valid tenant id). Anyone who can reach the port can claim any tenant: this is why the
  server only binds loopback addresses.
- No ``Authorization`` header -> no claims (the API answers 401), unless ``STEPCREW_DEV_ALLOW_ANONYMOUS`` is
  ``1``/``true``/``yes``/``on`` (or ``allow_anonymous=True``): then the tenant is ``local`` (the tenant of runs
  started with ``stepcrew run``).
- Any other ``Authorization`` value -> 401 from the server itself (API Gateway's authorizer would reject it too);
  ``GET /health`` needs no token.

Differences from AWS: bodies over :data:`GATEWAY_MAX_BODY_BYTES` (API Gateway's 10 MB payload quota) are refused
by the server with 413 without reading them; datasets may be ``file://`` URIs as well as ``s3://``; the default
provider is :func:`stepcrew.llm.registry.detect_provider` (``rule`` when no provider key is set).

Uploads: ``POST /datasets`` answers URLs that point at this server, path-style
(``http://127.0.0.1:<port>/stepcrew-local-datasets/<tenant>/uploads/<name>?X-Amz-...``), signed by the same code as
on AWS (:class:`stepcrew.api.app.S3Uploads`). The server stands in for S3 on that path (:class:`LocalUploads`): it
checks the SigV4 query signature, the signed headers and the expiry as S3 does (403 ``SignatureDoesNotMatch`` /
``AccessDenied``, S3's XML error body), then stores the file in the runtime's datasets bucket and folder
(:meth:`stepcrew.local.runtime.LocalRuntime.put_dataset`), where later runs and processes read it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import inspect
import ipaddress
import json
import os
import re
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

from stepcrew.api.auth import TENANT_PATTERN
from stepcrew.api.errors import error_body
from stepcrew.api.ratelimit import DynamoRateLimiter
from stepcrew.api.settings import DATA_SCHEMES
from stepcrew.data import DEMO_DATASET
from stepcrew.local.hook import FUNCTION_PREFIX, LambdaContext
from stepcrew.local.priority import interactive
from stepcrew.wiring import FUNCTIONS

#: The bundled datasets' folder: always readable by ``file://`` runs of the dev server.
DATA_DIR = DEMO_DATASET.parent

#: API Gateway HTTP API payload quota (10 MB, "Amazon API Gateway quotas for HTTP APIs"); the handler's own cap
#: (64 KiB, :data:`stepcrew.api.errors.MAX_BODY_BYTES`) applies below it.
GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024
#: The interpreter's thread switch interval while serving (seconds; CPython's default is 0.005). Runs execute in
#: this process's threads: a request thread waits for the GIL behind them, so a shorter interval answers requests
#: sooner (bench/dev_api.py: /health p50 ~12 ms instead of ~20 ms, p95 ~45 ms instead of ~65-85 ms with 8 runs
#: executing on a busy 2-core machine; run wall time unchanged).
SWITCH_INTERVAL_S = 0.001
LOCAL_TOKEN_PREFIX = "local:"
ANONYMOUS_TENANT = "local"
ACCOUNT_ID = "123456789012"
_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_lambda_context() -> LambdaContext:
    """A fresh Lambda context of the ``api`` function for one request (new request id; memory and timeout from
    :data:`stepcrew.wiring.FUNCTIONS`, so ``get_remaining_time_in_millis`` starts at its timeout, 29,000 ms)."""
    spec = FUNCTIONS["api"]
    name = f"{FUNCTION_PREFIX}{spec.name}"
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}"
    return LambdaContext(function_name=name, invoked_function_arn=arn, memory_limit_in_mb=spec.memory_mb,
                         timeout_s=spec.timeout_s)


class RouteTable:
    """``(method, template)`` pairs of the API (e.g. ``("GET", "/runs/{run_id}")``), matched against a path to
    give the v2 ``routeKey`` and ``pathParameters``."""

    def __init__(self, routes: list[tuple[str, str]]) -> None:
        self._routes = []
        for method, template in routes:
            escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", escaped)
            self._routes.append((method.upper(), template, re.compile(f"^{pattern}$")))

    @classmethod
    def from_app(cls, app: Any) -> RouteTable:
        """The routes of a Powertools resolver, read from its OpenAPI document."""
        paths = app.get_openapi_schema().paths or {}
        routes = []
        for template, item in paths.items():
            for method in ("get", "post", "put", "patch", "delete"):
                if getattr(item, method, None) is not None:
                    routes.append((method.upper(), template))
        return cls(routes)

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        """(routeKey, pathParameters); ``("$default", {})`` when no route matches (API Gateway would answer 404
        itself; the handler answers it here)."""
        for route_method, template, regex in self._routes:
            m = regex.match(path)
            if m and route_method == method.upper():
                return f"{route_method} {template}", {k: unquote(v) for k, v in m.groupdict().items()}
        return "$default", {}


def claims_for(authorization: str | None, allow_anonymous: bool) -> dict[str, str] | None:
    """The JWT claims the local token switch grants, None for no identity. Raises ValueError for an
    ``Authorization`` value the switch does not accept."""
    if authorization is None or not authorization.strip():
        return {"sub": ANONYMOUS_TENANT, "custom:tenant": ANONYMOUS_TENANT} if allow_anonymous else None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(LOCAL_TOKEN_PREFIX):
        raise ValueError("the local server accepts only 'Authorization: Bearer local:<tenant>'")
    tenant = token[len(LOCAL_TOKEN_PREFIX):]
    if not TENANT_PATTERN.match(tenant):
        raise ValueError("invalid tenant in the local token: 1-128 of [A-Za-z0-9_.@-], starting alphanumeric")
    return {"sub": tenant, "custom:tenant": tenant, "iss": "stepcrew-dev-local-token-switch"}


def build_event(*, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None,
                routes: RouteTable, claims: dict[str, str] | None, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for one request. ``target``: the request target
    (path and query, as received). Text bodies (JSON, text/*, form) are passed as text, others base64."""
    split = urlsplit(target)
    raw_path = split.path or "/"
    lowered: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    cookies = [c.strip() for c in lowered.pop("cookie", "").split(";") if c.strip()]
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    route_key, path_params = routes.match(method, unquote(raw_path))
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": split.query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": lowered.get("host", "127.0.0.1").split(".")[0],
            "http": {"method": method.upper(), "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": lowered.get("user-agent", "")},
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if body:
        content_type = lowered.get("content-type", "application/json").lower()
        text = None
        if content_type.startswith(_TEXT_TYPES):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is not None:
            event["body"] = text
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def _error(code: str, message: str) -> bytes:
    return json.dumps(error_body(code, message)).encode()


# ------------------------------------------------------------------------------------------------ S3 uploads
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                   "X-Amz-Signature")
#: Longest validity of a SigV4 presigned URL (7 days, S3 User Guide "Download and upload objects with presigned URLs").
PRESIGN_MAX_EXPIRES_S = 604_800


class S3Refusal(Exception):
    """What S3 would answer: ``status``, ``code`` (S3's error code) and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def xml(self) -> bytes:
        """S3's error body: ``<Error><Code>..</Code><Message>..</Message></Error>``."""
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code><Message>'
                f"{xml_escape(self.message)}</Message></Error>").encode()


def check_presigned(method: str, url: str, headers: Mapping[str, str], credentials: Any,
                    now: datetime | None = None) -> None:
    """Check a SigV4 query-signed request as S3 does: the six ``X-Amz-*`` parameters present, not expired
    (``X-Amz-Date`` + ``X-Amz-Expires``), signed with ``credentials``' access key, every signed header sent, and the
    signature recomputed over ``method``, the path, the query and those headers (payload ``UNSIGNED-PAYLOAD``)
    equal. ``url``: ``http://<Host header><request target>``; ``credentials``: botocore's (``access_key``,
    ``secret_key``, ``token``). Raises :class:`S3Refusal` (403)."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    split = urlsplit(url)
    pairs = parse_qsl(split.query, keep_blank_values=True)
    params = dict(pairs)
    if any(k not in params for k in _PRESIGN_PARAMS) or params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        raise S3Refusal(403, "AccessDenied", "a presigned (AWS4-HMAC-SHA256 query) URL is required")
    try:
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(params["X-Amz-Expires"])
        access_key, _, region, service, _ = params["X-Amz-Credential"].split("/")
    except ValueError:
        raise S3Refusal(403, "AuthorizationQueryParametersError", "malformed X-Amz-* query parameters") from None
    if not 1 <= expires <= PRESIGN_MAX_EXPIRES_S or service != "s3":
        raise S3Refusal(403, "AuthorizationQueryParametersError", "X-Amz-Expires must be 1-604800, service s3")
    if (now or datetime.now(UTC)) > signed_at + timedelta(seconds=expires):
        raise S3Refusal(403, "AccessDenied", "Request has expired")
    if access_key != credentials.access_key:
        raise S3Refusal(403, "InvalidAccessKeyId", "the access key of this URL is not this server's")
    sent = {str(k).lower(): str(v) for k, v in headers.items()}
    signed = params["X-Amz-SignedHeaders"].split(";")
    if any(h != "host" and h not in sent for h in signed):
        raise S3Refusal(403, "SignatureDoesNotMatch", "a signed header was not sent")
    query = "&".join(part for part in split.query.split("&") if not part.startswith("X-Amz-Signature="))
    request = AWSRequest(method=method.upper(), url=urlunsplit(split._replace(query=query)),
                         headers={h: sent[h] for h in signed if h != "host"})
    request.context["timestamp"] = params["X-Amz-Date"]
    auth = S3SigV4QueryAuth(credentials, "s3", region, expires=expires)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        raise S3Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                      "signature you provided")


class LocalUploads:
    """The dev server's stand-in for S3 on ``PUT /<bucket>/<key>?X-Amz-...`` (see the module docstring).
    ``store(key, file) -> uri`` keeps the file (the runtime's :meth:`~stepcrew.local.runtime.LocalRuntime.put_dataset`);
    ``credentials``: what the upload URLs are signed with (the process's AWS credentials, fake ones locally)."""

    def __init__(self, bucket: str, store: Callable[[str, Path], str], credentials: Any,
                 max_bytes: int | None = None) -> None:
        from stepcrew.tools.datasets import MAX_DATASET_BYTES

        self.bucket = bucket
        self.store = store
        self.credentials = credentials
        self.max_bytes = MAX_DATASET_BYTES if max_bytes is None else max_bytes

    def handles(self, method: str, path: str) -> bool:
        """Whether a request is an upload to this server's bucket (``PUT /<bucket>/...``)."""
        return method == "PUT" and path.startswith(f"/{self.bucket}/")

    def receive(self, method: str, target: str, headers: Mapping[str, str], body: BinaryIO) -> tuple[int, dict, bytes]:
        """Check and store one upload: ``(status, headers, body)`` as S3 answers it (200 with an ``ETag``; 403 bad
        signature or expired; 411 no ``Content-Length``; 400 ``EntityTooLarge`` / ``IncompleteBody``). The body is
        read only once the signature holds."""
        try:
            sent = {str(k).lower(): str(v) for k, v in headers.items()}
            if "chunked" in sent.get("transfer-encoding", "").lower() or "content-length" not in sent:
                raise S3Refusal(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
            check_presigned(method, f"http://{sent.get('host', '')}{target}", sent, self.credentials)
            try:
                size = int(sent["content-length"])
            except ValueError:
                raise S3Refusal(400, "InvalidArgument", "invalid Content-Length") from None
            if size < 0 or size > self.max_bytes:
                raise S3Refusal(400, "EntityTooLarge", f"uploads are at most {self.max_bytes} bytes here")
            key = unquote(urlsplit(target).path)[len(f"/{self.bucket}/"):]
            digest = hashlib.md5(usedforsecurity=False)
            with tempfile.TemporaryDirectory(prefix="stepcrew-upload-") as folder:
                part = Path(folder) / "body"
                with part.open("wb") as out:
                    left = size
                    while left:
                        chunk = body.read(min(left, 1024 * 1024))
                        if not chunk:
                            raise S3Refusal(400, "IncompleteBody", "You did not provide the number of bytes specified "
                                                                   "by the Content-Length HTTP header.")
                        digest.update(chunk)
                        out.write(chunk)
                        left -= len(chunk)
                try:
                    self.store(key, part)
                except ValueError as exc:
                    raise S3Refusal(400, "InvalidArgument", str(exc)) from None
        except S3Refusal as refusal:
            return refusal.status, {"Content-Type": "application/xml"}, refusal.xml()
        return 200, {"ETag": f'"{digest.hexdigest()}"'}, b""


class _Handler(BaseHTTPRequestHandler):
    server: DevServer
    protocol_version = "HTTP/1.1"
    server_version = "stepcrew-dev"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET  # noqa: N815

    def __getattr__(self, name: str):
        """Any other method (TRACE, PROPFIND...) goes to the API too, which answers 405 (http.server: 501)."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              cookies: list[str] | None = None) -> None:
        self.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        for cookie in cookies or []:
            self.send_header("Set-Cookie", cookie)
        if "content-type" not in sent:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        srv = self.server
        if srv.uploads is not None and srv.uploads.handles(self.command, urlsplit(self.path).path):
            status, headers, body = srv.uploads.receive(self.command, self.path, self.headers, self.rfile)
            if status >= 400:
                self.close_connection = True  # the body may be unread
            return self._send(status, body, headers)
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return self._send(411, _error("length_required", "send a Content-Length (chunked bodies are not read)"))
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length else 0
            if size < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return self._send(400, _error("validation_error", "invalid Content-Length"))
        if size > GATEWAY_MAX_BODY_BYTES:
            self.close_connection = True
            return self._send(413, _error("payload_too_large", f"body over {GATEWAY_MAX_BODY_BYTES} bytes"))
        body = self.rfile.read(size) if size else None
        path = urlsplit(self.path).path
        if srv.health is not None and (self.command, path) == ("GET", "/health"):
            return self._send(*srv.health)  # no lock: answered while the resolver is busy
        try:
            claims = claims_for(self.headers.get("Authorization"), srv.allow_anonymous)
        except ValueError as exc:
            if (self.command, path) != ("GET", "/health"):
                return self._send(401, _error("unauthorized", str(exc)), {"WWW-Authenticate": "Bearer"})
            claims = None
        event = build_event(method=self.command, target=self.path, headers=list(self.headers.items()), body=body,
                            routes=srv.routes, claims=claims, source_ip=self.client_address[0])
        try:
            with interactive():  # its DynamoDB requests go before the executions' (stepcrew.local.priority)
                response = srv.invoke(event)
        except Exception as exc:  # the resolver answers every error itself; this is a bug in the server
            sys.stderr.write(f"stepcrew dev: handler crashed ({type(exc).__name__})\n")
            return self._send(500, _error("internal_error", "internal error"))
        raw = response.get("body") or ""
        data = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
        self._send(int(response.get("statusCode", 500)), data, response.get("headers") or {},
                   response.get("cookies") or [])

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.quiet:
            return
        status = args[1] if len(args) > 1 else ""
        sys.stderr.write(f"stepcrew dev: {self.command} {urlsplit(self.path).path} -> {status}\n")


class DevServer(ThreadingHTTPServer):
    """The threading HTTP server; requests reach the (not thread-safe) resolver one at a time.

    ``GET /health`` is answered by the server itself, without the resolver's lock, with the resolver's own answer
    computed once at start (:attr:`health`): it answers while other requests or runs keep the resolver busy.
    With ``admission`` (:class:`stepcrew.local.admission.AdmissionStarter`, the app's starter): ``POST /runs`` is
    refused with 429 ``dev_queue_full`` (``Retry-After``: :data:`QUEUE_FULL_RETRY_AFTER_S`) before anything is
    written when its queue is full, and the answers of ``POST /runs`` (202) and ``GET /runs/{run_id}`` (200) of a
    queued run carry :data:`QUEUE_POSITION_HEADER` (1 = starts next)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Any, *, allow_anonymous: bool, quiet: bool = False,
                 on_tick: Callable[[], None] | None = None, uploads: LocalUploads | None = None,
                 admission: Any = None) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.uploads = uploads
        self.admission = admission
        self.routes = RouteTable.from_app(app)
        self.allow_anonymous = allow_anonymous
        self.quiet = quiet
        self._lock = threading.Lock()
        self._on_tick = on_tick
        self.health = self._health_answer()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def _health_answer(self) -> tuple[int, bytes, dict[str, str]] | None:
        """``(status, body, headers)`` of the resolver's ``GET /health`` (constant: status, stage, version); None
        when it does not answer 200 (then /health goes through the resolver like any request)."""
        event = build_event(method="GET", target="/health", headers=[], body=None, routes=self.routes, claims=None)
        with self._lock:
            response = self.app.resolve(event, api_lambda_context())
        if int(response.get("statusCode", 500)) != 200 or response.get("isBase64Encoded"):
            return None
        return 200, str(response.get("body") or "").encode("utf-8"), dict(response.get("headers") or {})

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the handler on one v2 event (serialised); with an admission, the queue-full refusal and the queue
        position header (see the class docstring)."""
        route = event.get("routeKey")
        with self._lock:  # checked under the lock: only requests under it add to the queue
            if (self.admission is not None and route == "POST /runs" and "authorizer" in event["requestContext"]
                    and self.admission.full()):
                return queue_full_response(self.admission.max_queued)
            response = self.app.resolve(event, api_lambda_context())
        if self.admission is not None and route in ("POST /runs", "GET /runs/{run_id}"):
            self._add_queue_position(route, event, response)
        return response

    def _add_queue_position(self, route: str, event: dict[str, Any], response: dict[str, Any]) -> None:
        status = int(response.get("statusCode", 500))
        run_id = None
        if route == "GET /runs/{run_id}" and status == 200:  # the resolver checked the tenant: 200 = the caller's
            run_id = (event.get("pathParameters") or {}).get("run_id")
        elif route == "POST /runs" and status == 202:
            try:
                run_id = json.loads(response.get("body") or "{}").get("run_id")
            except (ValueError, AttributeError):
                run_id = None
        position = self.admission.position(run_id) if isinstance(run_id, str) else None
        if position is not None:
            response["headers"] = {**(response.get("headers") or {}), QUEUE_POSITION_HEADER: str(position)}

    def service_actions(self) -> None:  # called by serve_forever about every poll interval
        if self._on_tick is not None:
            self._on_tick()


#: Header of the answers about a queued run: its 1-based place in the dev server's queue.
QUEUE_POSITION_HEADER = "X-Stepcrew-Queue-Position"
#: ``Retry-After`` (seconds) of a ``POST /runs`` refused because the queue is full.
QUEUE_FULL_RETRY_AFTER_S = 10


def queue_full_response(max_queued: int) -> dict[str, Any]:
    """The v2 answer to ``POST /runs`` when the dev server's queue is full: 429 ``dev_queue_full``, ``Retry-After``
    :data:`QUEUE_FULL_RETRY_AFTER_S`, nothing written."""
    message = (f"the local server already has {max_queued} runs waiting for a slot (STEPCREW_DEV_MAX_QUEUED); "
               f"retry in {QUEUE_FULL_RETRY_AFTER_S} s")
    return {"statusCode": 429, "body": json.dumps(error_body("dev_queue_full", message), separators=(",", ":")),
            "isBase64Encoded": False, "headers": {"Content-Type": "application/json",
                                                  "Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)}, "cookies": []}


class DevConfigError(ValueError):
    """A setting of ``stepcrew dev`` is invalid (host, provider, STEPCREW_DEV_MAX_RUNS...): a one-line message,
    raised before anything starts."""


def dev_admission_limits(max_runs: int | None = None, max_queued: int | None = None) -> tuple[int, int]:
    """``(max_runs, max_queued)``: the given values, else env ``STEPCREW_DEV_MAX_RUNS`` (runs executing at once,
    1-64, default 4) and ``STEPCREW_DEV_MAX_QUEUED`` (runs waiting for a slot, 1-10000, default 100). Raises
    :class:`DevConfigError` for a value that is not a whole number in range."""
    from stepcrew.local import admission as adm

    try:
        runs = adm.parse_limit("STEPCREW_DEV_MAX_RUNS", os.environ.get("STEPCREW_DEV_MAX_RUNS") if max_runs is None
                               else str(max_runs), adm.DEFAULT_MAX_RUNS, adm.MAX_RUNS_LIMIT)
        queued = adm.parse_limit("STEPCREW_DEV_MAX_QUEUED", os.environ.get("STEPCREW_DEV_MAX_QUEUED")
                                 if max_queued is None else str(max_queued), adm.DEFAULT_MAX_QUEUED,
                                 adm.MAX_QUEUED_LIMIT)
    except ValueError as exc:
        raise DevConfigError(str(exc)) from None
    return runs, queued


def _running_runs(runtime: Any) -> list[str]:
    """Names (= run ids) of the RUNNING executions of the runtime's run state machine: one ListExecutions."""
    pages = runtime.sfn.get_paginator("list_executions").paginate(stateMachineArn=runtime.state_machine_arn("run"),
                                                                  statusFilter="RUNNING")
    return [e["name"] for page in pages for e in page["executions"]]


def _execution_arn(runtime: Any, run_id: str) -> str:
    """The ARN Step Functions gives the execution named ``run_id`` of the run state machine
    (``arn:aws:states:<region>:<account>:execution:<machine>:<name>``)."""
    return runtime.state_machine_arn("run").replace(":stateMachine:", ":execution:", 1) + f":{run_id}"


@contextlib.contextmanager
def partition_queries() -> Iterator[None]:
    """While active, moto's DynamoDB answers a Query on a table's own key from that partition only.

    moto 5.2.5's ``Table.query`` (``moto/dynamodb/models/table.py``) builds its candidates from *every* item of the
    table (``[item for item in self.all_items() if item.hash_key == hash_key]``), so each ``GET /runs/{id}`` (five
    Queries/GetItems) cost time in proportion to all the runs kept. moto keeps items by partition
    (``Table.items[hash_key][range_key]``): for a Query without ``IndexName`` this hands the query that partition's
    items as its candidates (the same ones the comprehension keeps, in the same order; moto then sorts, pages and
    filters them as before). Index Queries, Scans and everything else are untouched. Undone on exit.
    """
    from moto.dynamodb.models.table import Table

    original_query, original_all_items = Table.query, Table.all_items
    signature = inspect.signature(original_query)
    hint = threading.local()

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") or arguments.get("hash_key") is None:
            return original_query(self, *args, **kwargs)
        hint.partition = (self, arguments["hash_key"])
        try:
            return original_query(self, *args, **kwargs)
        finally:
            hint.partition = None

    def all_items(self: Any) -> Any:
        partition = getattr(hint, "partition", None)
        if partition is None or partition[0] is not self:
            return original_all_items(self)
        hint.partition = None  # used once: the query's own candidate list
        items = self.items.get(partition[1])
        if items is None:
            return []
        return list(items.values()) if self.range_key_attr else [items]

    Table.query, Table.all_items = query, all_items
    try:
        yield
    finally:
        Table.query, Table.all_items = original_query, original_all_items


def banner(url: str, state_dir: Path | None, allow_anonymous: bool, fronted: bool = False) -> str:
    """What ``serve`` prints on stderr at startup: where it listens and how authentication is faked."""
    anonymous = (f"requests without a token act as tenant '{ANONYMOUS_TENANT}' (STEPCREW_DEV_ALLOW_ANONYMOUS is on)"
                 if allow_anonymous else "requests without a token get 401 (set STEPCREW_DEV_ALLOW_ANONYMOUS=1 to "
                                         f"act as tenant '{ANONYMOUS_TENANT}')")
    where = ("runs execute in a second process; the first holds the port and answers /health" if fronted
             else "runs execute in this process")
    return (
        f"stepcrew dev: serving the stepcrew API on {url} (local runtime; {where})\n"
        f"stepcrew dev: state: {state_dir if state_dir is not None else 'not kept'}\n"
        "stepcrew dev: AUTH IS FAKED: no JWT authorizer runs here. A local token switch stands in for it:\n"
        "stepcrew dev:   'Authorization: Bearer local:<tenant>' acts as <tenant>, unchecked; "
        f"{anonymous}.\n"
        f"stepcrew dev: try: curl -s -X POST {url}/runs -H 'Authorization: Bearer local:me' "
        "-H 'Content-Type: application/json' -d '{\"goal\": \"...\"}'\n"
    )


def _dev_limits() -> dict[str, int]:
    """Per-tenant limits of the dev server: the deployed defaults, or env STEPCREW_TENANT_RATE_START / _READ."""
    out = {}
    for bucket in ("start", "read"):
        raw = os.environ.get(f"STEPCREW_TENANT_RATE_{bucket.upper()}", "").strip()
        if raw.isdigit() and int(raw) > 0:
            out[bucket] = int(raw)
    return out


def serve(host: str = "127.0.0.1", port: int = 3000, state_dir: Path | str | None = None, *,
          allow_anonymous: bool | None = None, fast_waits: bool | None = None, quiet: bool = False,
          on_ready: Callable[[DevServer], None] | None = None, data_dirs: tuple[Path | str, ...] = (),
          max_runs: int | None = None, max_queued: int | None = None, resume_orphans: bool = False,
          public_url: str | None = None) -> None:
    """Serve the API on ``host:port`` until interrupted (Ctrl-C) or ``server.shutdown()`` (blocking).

    - ``host``: a loopback address only (:class:`DevConfigError`, a ValueError, otherwise: the local token switch
      trusts any caller).
    - ``port``: 0 picks a free port (read it from the server given to ``on_ready``).
    - ``state_dir``: where the table is kept (None: :func:`stepcrew.local.state.default_state_dir`, the folder
      ``stepcrew runs list`` reads).
    - ``allow_anonymous``: None reads ``STEPCREW_DEV_ALLOW_ANONYMOUS``.
    - ``fast_waits``: passed to :class:`LocalRuntime` (None reads ``STEPCREW_FAST_WAITS``).
    - ``data_dirs``: folders a ``file://`` dataset may be in (besides the bundled datasets), symlinks resolved.
    - ``on_ready(server)``: called once listening (tests use it to learn the port and to stop the server).
    - ``public_url``: the address clients use when this server runs behind ``stepcrew dev``'s front process
      (:mod:`stepcrew.local.front`): upload URLs are signed for it and the banner shows it. None: this server's.
    - ``max_runs`` / ``max_queued``: runs executing at once / waiting for a slot (None: env
      ``STEPCREW_DEV_MAX_RUNS``, default 4 / ``STEPCREW_DEV_MAX_QUEUED``, default 100; see
      :mod:`stepcrew.local.admission`). A bad value is a :class:`DevConfigError` before anything starts.

    Runs beyond ``max_runs`` wait QUEUED and start in the order they were posted as executions end; at exit the
    queued runs that never started are marked FAILED ``LocalRuntimeExited`` (before the runtime stops the executions
    still running and marks those the same way).
    """
    runs_limit, queue_limit = dev_admission_limits(max_runs, max_queued)
    if not is_loopback(host):
        raise DevConfigError(f"stepcrew dev binds loopback addresses only (got {host!r}): its local token switch "
                         "lets any caller act as any tenant")
    import boto3

    from stepcrew.api.app import ApiConfig, S3Uploads, build_app
    from stepcrew.api.idempotency import dynamodb_persistence
    from stepcrew.domain.screening import output_screen
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.local.admission import AdmissionStarter
    from stepcrew.llm.registry import UnknownProviderError, check_provider, detect_provider
    from stepcrew.local.runtime import LOCAL_DATA_BUCKET, LocalRuntime
    from stepcrew.local.state import default_state_dir
    from stepcrew.memory.wiring import memory_for
    from stepcrew.memory.writer import InProcessWriter, local_guard

    anonymous = _truthy(os.environ.get("STEPCREW_DEV_ALLOW_ANONYMOUS")) if allow_anonymous is None else allow_anonymous
    folder = Path(state_dir) if state_dir is not None else default_state_dir()
    provider = detect_provider()
    try:
        check_provider(provider)
    except UnknownProviderError as exc:
        raise DevConfigError(f"STEPCREW_PROVIDER names an {exc}") from None
    with partition_queries(), LocalRuntime(state_dir=folder, fast_waits=fast_waits) as runtime:
        # tenant memory: read and deleted on the runtime's table; written in this process with the offline guard
        memory = memory_for(EngineResolver(), runtime.store)
        admission = AdmissionStarter(runtime, runtime.store, running=lambda: _running_runs(runtime),
                                     arn_of=lambda run_id: _execution_arn(runtime, run_id), max_runs=runs_limit,
                                     max_queued=queue_limit)
        app = build_app(runtime.store, admission, runtime,
                        dynamodb_persistence(runtime.table_name, client=runtime.client("dynamodb")),
                        ApiConfig(stage="local", data_schemes=DATA_SCHEMES, default_provider=provider,
                                  data_dirs=(DATA_DIR, *(Path(d) for d in data_dirs))),
                        DynamoRateLimiter(runtime.client("dynamodb"), runtime.table_name, _dev_limits()),
                        screen=output_screen(runtime.store), memory=memory,
                        memory_writer=InProcessWriter(memory, guard_factory=local_guard))
        credentials = boto3.Session(region_name=runtime.region).get_credentials().get_frozen_credentials()
        uploads = LocalUploads(LOCAL_DATA_BUCKET, runtime.put_dataset, credentials)
        server = DevServer((host, port), app, allow_anonymous=anonymous, quiet=quiet, uploads=uploads,
                           admission=admission)
        # upload URLs point here (known once bound), signed like on AWS
        url = public_url or server.url
        app.uploads = S3Uploads(LOCAL_DATA_BUCKET, endpoint_url=url, region=runtime.region)
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        admission.start()
        try:
            sys.stderr.write(banner(url, folder, anonymous, fronted=public_url is not None))
            sys.stderr.write(f"stepcrew dev: at most {runs_limit} run(s) execute at once (STEPCREW_DEV_MAX_RUNS); "
                             f"up to {queue_limit} more wait QUEUED (STEPCREW_DEV_MAX_QUEUED), then POST /runs "
                             "answers 429\n")
            if runtime.swept and resume_orphans:
                from stepcrew.local.resume import resume_orphans as resume

                resumed = resume(runtime, admission)
                sys.stderr.write(f"stepcrew dev: {len(resumed)} run(s) left unfinished by a process that ended were "
                                 f"resumed ({', '.join(resumed[:5])})\n")
            elif runtime.swept:
                sys.stderr.write(f"stepcrew dev: {len(runtime.swept)} run(s) left unfinished by a process that ended "
                                 f"were marked FAILED ({', '.join(runtime.swept[:5])}; `stepcrew runs resume ID` "
                                 "continues one, `stepcrew dev --resume-orphans` all)\n")
            sys.stderr.flush()
            if on_ready is not None:
                on_ready(server)
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            sys.stderr.write("stepcrew dev: stopping (executions still running are stopped and marked FAILED; `stepcrew runs resume` continues them)\n")
        finally:
            server.server_close()
            sys.setswitchinterval(switch_interval)
            never_started = admission.close()
            if never_started:
                sys.stderr.write(f"stepcrew dev: {len(never_started)} queued run(s) never started were marked FAILED "
                                 f"({', '.join(never_started[:5])})\n")
