"""The HTTP API against the local runtime: the real resolver, the real run/agent state machines and functions in
moto, the offline rule engine, the demo dataset.

Given the API bound to a LocalRuntime, when a tenant starts runs through it, then they really execute and the API
shows them; Idempotency-Key replays start one execution only; the approval gate resumes through real task tokens;
the real scheduled event creates and runs a run; and ``stepcrew dev`` (``serve``) answers over 127.0.0.1."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from devserver_helpers import dev_server

from stepcrew.api.app import ApiConfig, build_app
from stepcrew.api.dev import RouteTable, api_lambda_context, build_event
from stepcrew.api.idempotency import dynamodb_persistence
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunStatus
from stepcrew.wiring import REPO_ROOT

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 180


class Client:
    """Calls the resolver with events built by the local server's own event builder."""

    def __init__(self, rt: LocalRuntime) -> None:
        self.rt = rt
        self.app = build_app(rt.store, rt, rt, dynamodb_persistence(rt.table_name, client=rt.client("dynamodb")),
                             ApiConfig(stage="local", data_schemes=("file", "s3")))
        self.routes = RouteTable.from_app(self.app)

    def __call__(self, method: str, target: str, body: dict | None = None, *, tenant: str = "acme",
                 headers: dict | None = None) -> tuple[int, dict, dict]:
        hdrs = [("Content-Type", "application/json"), *(headers or {}).items()]
        event = build_event(method=method, target=target, headers=hdrs, routes=self.routes,
                            body=json.dumps(body).encode() if body is not None else None,
                            claims={"sub": f"user-{tenant}", "custom:tenant": tenant})
        resp = self.app.resolve(event, api_lambda_context())
        return resp["statusCode"], {k.lower(): v for k, v in resp["headers"].items()}, json.loads(resp["body"])


@pytest.fixture
def client(local_rt) -> Client:
    return Client(local_rt)


def wait_for_status(rt: LocalRuntime, run_id: str, statuses: set[RunStatus], timeout_s: float = RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = rt.store.get_run(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {rt.store.get_run(run_id).status} after {timeout_s} s")


def executions(rt: LocalRuntime) -> list[dict]:
    return rt.sfn.list_executions(stateMachineArn=rt.state_machine_arn("run"))["executions"]


def test_a_run_started_over_the_api_finishes_and_replays_start_one_execution(client, local_rt):
    body = {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri(), "provider": "rule"}
    status, _, accepted = client("POST", "/runs", body, headers={"Idempotency-Key": "demo-1"})
    assert status == 202 and accepted["status"] == "QUEUED"
    run_id = accepted["run_id"]

    status, headers, replay = client("POST", "/runs", body, headers={"Idempotency-Key": "demo-1"})
    assert status == 202 and replay["run_id"] == run_id and headers["idempotent-replayed"] == "true"
    status, _, reused = client("POST", "/runs", {**body, "goal": "another goal"}, headers={"Idempotency-Key": "demo-1"})
    assert status == 422 and reused["error"]["code"] == "idempotency_key_reused"

    run = local_rt.store.get_run(run_id)
    assert local_rt.wait(run.execution_arn, timeout_s=RUN_TIMEOUT_S) == "SUCCEEDED"
    assert [e["name"] for e in executions(local_rt)] == [run_id]  # ONE execution for three requests

    status, _, result = client("GET", f"/runs/{run_id}")
    assert status == 200
    assert result["status"] == "SUCCEEDED" and result["engine"] == "rule-engine"
    assert result["final_output"] and "rule engine" in result["final_output"].lower()
    assert result["plan"]["subtasks"] and all(s["status"] == "SUCCEEDED" for s in result["subtasks"])

    status, _, events = client("GET", f"/runs/{run_id}/events")
    kinds = [e["kind"] for e in events["events"]]
    outcome = [k for k in kinds if k != "memory_recorded"]  # the run's memory is recorded after its outcome
    assert status == 200 and kinds[0] == "run_queued" and outcome[-1] == "run_succeeded"
    assert "memory_recorded" not in kinds or kinds.index("memory_recorded") > kinds.index("run_succeeded")
    status, _, listed = client("GET", "/runs")
    assert [r["run_id"] for r in listed["runs"]] == [run_id] and listed["runs"][0]["status"] == "SUCCEEDED"
    assert client("GET", f"/runs/{run_id}", tenant="globex")[0] == 404


def test_the_approval_gate_waits_then_a_rejection_fails_the_run(client, local_rt):
    status, _, accepted = client("POST", "/runs", {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri(),
                                                   "require_approval": True})
    assert status == 202
    run_id = accepted["run_id"]
    run = wait_for_status(local_rt, run_id, {RunStatus.WAITING_APPROVAL, RunStatus.FAILED})
    assert run.status == RunStatus.WAITING_APPROVAL and run.approval_token

    assert client("POST", f"/runs/{run_id}/approval", {"approved": False}, tenant="globex")[0] == 404
    status, _, decided = client("POST", f"/runs/{run_id}/approval", {"approved": False, "comment": "not now"})
    assert status == 200 and decided["approved"] is False

    assert local_rt.wait(run.execution_arn, timeout_s=RUN_TIMEOUT_S) in ("FAILED", "SUCCEEDED")
    _, _, result = client("GET", f"/runs/{run_id}")
    assert result["status"] == "FAILED" and result["final_output"] is None
    assert result["error"]["code"] == "ApprovalRejected" and "not now" in result["error"]["message"]
    status, _, again = client("POST", f"/runs/{run_id}/approval", {"approved": True})
    assert status == 409 and again["error"]["code"] == "run_not_waiting"


def test_the_real_scheduled_event_creates_and_runs_a_run(local_rt):
    event = json.loads((REPO_ROOT / "events" / "schedule_weekly_report.json").read_text())
    bucket, key = event["request"]["data"][len("s3://"):].split("/", 1)
    s3 = local_rt.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=DEMO_DATASET.read_bytes())
    # EventBridge Scheduler's templated target starts the execution without a name, so Step Functions names it
    # with a UUID (36 characters, with dashes); the run id is that name
    name = str(uuid.uuid4())

    arn = local_rt.sfn.start_execution(stateMachineArn=local_rt.state_machine_arn("run"), name=name,
                                       input=json.dumps(event))["executionArn"]

    assert local_rt.wait(arn, timeout_s=RUN_TIMEOUT_S) == "SUCCEEDED"
    run = local_rt.store.get_run(name)
    assert run.tenant == "acme" and run.goal == event["request"]["goal"] and run.status == RunStatus.SUCCEEDED


def _http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_serve_answers_over_http_and_keeps_state(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STEPCREW_DEV_ALLOW_ANONYMOUS", raising=False)
    with dev_server(tmp_path) as server:
        base = server.url
        assert base.startswith("http://127.0.0.1:")
        status, _, health = _http("GET", f"{base}/health")
        assert status == 200 and health["status"] == "ok" and health["stage"] == "local"

        assert _http("GET", f"{base}/runs")[0] == 401  # no token, anonymous off
        status, _, bad = _http("GET", f"{base}/runs", headers={"Authorization": "Bearer real.jwt.token"})
        assert status == 401 and "local:<tenant>" in bad["error"]["message"]

        auth = {"Authorization": "Bearer local:dev-tenant"}
        status, headers, accepted = _http("POST", f"{base}/runs", {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri()},
                                          auth)
        assert status == 202, accepted
        run_id = accepted["run_id"]
        assert headers["Location"] == f"/runs/{run_id}"
        assert _http("POST", f"{base}/runs", {"goal": ""}, auth)[0] == 400

        deadline = time.monotonic() + RUN_TIMEOUT_S
        result: dict = {}
        while time.monotonic() < deadline:
            status, _, result = _http("GET", f"{base}/runs/{run_id}", headers=auth)
            assert status == 200
            if result["status"] in ("SUCCEEDED", "FAILED"):
                break
            time.sleep(0.2)
        assert result["status"] == "SUCCEEDED", result.get("error")
        assert _http("GET", f"{base}/runs/{run_id}", headers={"Authorization": "Bearer local:someone-else"})[0] == 404

    assert "AUTH IS FAKED" in capsys.readouterr().err
    with LocalRuntime(state_dir=tmp_path, read_only=True) as kept:  # what `stepcrew runs list` reads
        run = kept.store.get_run(run_id)
        assert run.tenant == "dev-tenant" and run.status == RunStatus.SUCCEEDED
