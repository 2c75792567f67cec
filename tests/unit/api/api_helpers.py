"""Helpers of the API unit tests (fixtures in conftest.py): fakes for Step Functions, an HTTP API v2 event builder
with a JWT authorizer context, and a wrapper that calls the resolver and decodes its answer."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from stepcrew.api.app import StepcrewApi
from stepcrew.store.dynamodb import DynamoRunStore

TABLE = "stepcrew-test-runs"
TENANT = "acme"


class RecordingStarter:
    """ExecutionStarter that records run ids; ``fail`` makes the next starts raise (like a throttled API)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.fail: Exception | None = None

    def start_run(self, run_id: str) -> str:
        if self.fail is not None:
            raise self.fail
        self.started.append(run_id)
        return f"arn:aws:states:us-east-1:123456789012:execution:stepcrew-run:{run_id}"


class RecordingTasks:
    """TaskResumer that records answers; ``fail`` makes the next answer raise."""

    def __init__(self) -> None:
        self.answers: list[tuple] = []
        self.fail: Exception | None = None

    def send_task_success(self, token: str, output: dict) -> None:
        if self.fail is not None:
            raise self.fail
        self.answers.append(("success", token, output))

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.answers.append(("failure", token, error, cause))


@dataclass
class Api:
    app: StepcrewApi
    store: DynamoRunStore
    starter: RecordingStarter
    tasks: RecordingTasks
    ddb: Any
    persistence: Any
    table: str

    @classmethod
    def build(cls, aws: tuple, config: Any = None, limiter: Any = None) -> Api:
        """The API on a moto table ``aws`` = (client, table name) with recording fakes for Step Functions."""
        from stepcrew.api.app import ApiConfig, build_app
        from stepcrew.api.idempotency import dynamodb_persistence
        from stepcrew.store.dynamodb import DynamoRunStore

        ddb, table = aws
        store = DynamoRunStore(table, client=ddb)
        starter, tasks = RecordingStarter(), RecordingTasks()
        persistence = dynamodb_persistence(table, client=ddb)
        app = build_app(store, starter, tasks, persistence, config or ApiConfig(stage="test"), limiter)
        return cls(app=app, store=store, starter=starter, tasks=tasks, ddb=ddb, persistence=persistence, table=table)

    def table_items(self) -> list[str]:
        """Every item of the table, canonical JSON, sorted (to prove that nothing changed)."""
        items = self.ddb.scan(TableName=self.table)["Items"]
        return sorted(json.dumps(i, sort_keys=True) for i in items)

    def call(self, event: dict) -> tuple[int, dict, Any]:
        """(status, headers lower-cased, decoded JSON body)."""
        resp = self.app.resolve(event, FakeContext())
        body = resp.get("body")
        return resp["statusCode"], {k.lower(): v for k, v in (resp.get("headers") or {}).items()}, (
            json.loads(body) if body else None)


class FakeContext:
    function_name = "stepcrew-test-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepcrew-test-api"
    aws_request_id = "c0ffee00-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def http_event(method: str, path: str, *, body: Any = None, tenant: str | None = TENANT, claims: dict | None = None,
               headers: dict | None = None, query: dict | None = None, raw_body: str | None = None,
               base64_body: bool = False) -> dict:
    """An API Gateway HTTP API v2 event with a JWT authorizer context (claims ``sub`` and ``custom:tenant``)."""
    hdrs = {"content-type": "application/json", "host": "api.example.com", "user-agent": "pytest"}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()), "headers": hdrs,
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9",
                                    "userAgent": "pytest"},
                           "requestId": "req", "routeKey": f"{method} {path}", "stage": "$default",
                           "time": "22/Nov/2026:10:00:00 +0000", "timeEpoch": 1795341600000},
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if claims is None and tenant is not None:
        claims = {"sub": f"user-of-{tenant}", "custom:tenant": tenant, "token_use": "id"}
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    if text is not None:
        if base64_body:
            event["body"] = base64.b64encode(text.encode()).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event



def start(api: Api, body: dict | None = None, **kw) -> str:
    """POST /runs and return the new run id (asserts 202)."""
    status, _, data = api.call(http_event("POST", "/runs", body=body or {"goal": "Sum 2 and 3"}, **kw))
    assert status == 202, data
    return data["run_id"]
