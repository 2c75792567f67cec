"""events/api_*.json are real API Gateway HTTP API v2 events (JWT authorizer context), one per route, and
events/schedule_*.json real EventBridge Scheduler inputs of the run state machine.

Given each file, then it parses as Powertools' HTTP API v2 model, names a route of the app, carries a body valid
for that route, and the handler answers it with the route's success status (never a 5xx) on a moto table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_helpers import RecordingTasks
from memory_helpers import memory_parts

from stepcrew.api.app import ApiConfig, S3Uploads, build_app
from stepcrew.api.auth import tenant_from_event
from stepcrew.api.dev import RouteTable
from stepcrew.api.models import Approval, NewDataset, NewMemory, NewRun, ReviewAnswer
from stepcrew.crew import load_crew
from stepcrew.events import CreateScheduledRun
from stepcrew.memory.models import FactIn
from stepcrew.models import Run, RunStatus
from stepcrew.wiring import REPO_ROOT, STATE_MACHINES

EVENTS_DIR = REPO_ROOT / "events"
API_EVENTS = sorted(EVENTS_DIR.glob("api_*.json"))
SCHEDULE_EVENTS = sorted(EVENTS_DIR.glob("schedule_*.json"))
BODY_MODELS = {"POST /runs": NewRun, "POST /runs/{run_id}/approval": Approval,
               "POST /runs/{run_id}/review": ReviewAnswer, "POST /datasets": NewDataset, "POST /memory": NewMemory}
SUCCESS = {"POST /runs": 202, "POST /datasets": 201, "POST /memory": 201, "DELETE /memory/{memory_id}": 204}
ROUTES = RouteTable.from_app(build_app(None, None, None, None))  # type: ignore[arg-type]


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_is_an_event_for_every_route():
    from stepcrew.api.openapi import openapi_document

    doc = json.loads(openapi_document())
    routes = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    assert {load(p)["routeKey"] for p in API_EVENTS} == routes
    assert SCHEDULE_EVENTS, "no scheduled-run event"


@pytest.mark.parametrize("path", API_EVENTS, ids=lambda p: p.name)
def test_api_event_is_a_valid_http_api_v2_event_for_its_route(path):
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

    event = load(path)
    parsed = APIGatewayProxyEventV2Model.model_validate(event)
    assert parsed.version == "2.0" and event["requestContext"]["routeKey"] == event["routeKey"]
    route_key, params = ROUTES.match(parsed.requestContext.http.method, parsed.rawPath)
    assert route_key == event["routeKey"]
    assert (event.get("pathParameters") or {}) == params
    assert all(k == k.lower() for k in event["headers"])
    if route_key in BODY_MODELS:
        BODY_MODELS[route_key].model_validate_json(event["body"])
        assert int(event["headers"]["content-length"]) == len(event["body"].encode())
    if route_key != "GET /health":
        assert tenant_from_event(event) == "acme"
        assert event["requestContext"]["authorizer"]["jwt"]["claims"]["iss"].startswith("https://cognito-idp.")


@pytest.mark.parametrize("path", API_EVENTS, ids=lambda p: p.name)
def test_handler_answers_each_api_event(api, path):
    event = load(path)
    run_id = "5f0c8e2a9b7d4c61a3e2f1d0b9c8a7e6"
    waiting = RunStatus.NEEDS_REVIEW if path.name == "api_post_run_review.json" else RunStatus.WAITING_APPROVAL
    api.store.create_run(Run(run_id=run_id, tenant="acme", goal="Compare the penguin species",
                             crew=load_crew("default"), status=waiting, approval_token="token-from-the-approval-task"))
    api.tasks = RecordingTasks()
    memory, writer = memory_parts(api.store)
    memory.add_facts("acme", [FactIn(text="report currency is EUR", subject="report currency")])  # the item to delete
    app = build_app(api.store, api.starter, api.tasks, api.persistence, ApiConfig(stage="prod"),
                    uploads=S3Uploads("stepcrew-prod-datasets"), memory=memory, memory_writer=writer)
    api.app = app

    status, _, body = api.call(event)

    assert status == SUCCESS.get(event["routeKey"], 200), body
    if event["routeKey"] == "POST /runs":
        assert api.store.get_run(body["run_id"]).tenant == "acme"
    if event["routeKey"] == "POST /runs/{run_id}/approval":
        assert api.tasks.answers and api.tasks.answers[0][:2] == ("success", "token-from-the-approval-task")
    if event["routeKey"] == "POST /datasets":
        assert body["uri"] == "s3://stepcrew-prod-datasets/acme/uploads/sales-2026-q3.csv"
        assert body["headers"] == {"Content-Type": "text/csv", "Content-Length": "48213"}


@pytest.mark.parametrize("path", SCHEDULE_EVENTS, ids=lambda p: p.name)
def test_schedule_event_is_a_scheduled_run_input(path):
    event = load(path)
    assert set(event) == {"request", "source"} and event["source"] == "schedule"
    # what the run state machine's CreateScheduledRun task builds from it (run id = the execution name)
    inp = CreateScheduledRun.model_validate({"request": event["request"], "run_id": "3f1c0e5a-7b2d-4c8e-9a6f-0d1e2f3a4b5c"})
    assert inp.request.tenant == "acme" and inp.request.data.startswith("s3://")
    load_crew(inp.request.crew)
    # and the state machine routes it there: only API/CLI inputs carry a run_id
    route = json.loads(STATE_MACHINES["run"].read_text())["States"]["RouteInput"]
    assert route["Choices"][0]["Variable"] == "$.run_id" and "run_id" not in event
    assert route["Default"] == "CreateScheduledRun"
