"""`stepcrew dev` under load (issue 12, part 4): at most STEPCREW_DEV_MAX_RUNS runs execute at once, later ones wait
QUEUED in order (their place in a header) and start as executions end, a full queue is a 429 that writes nothing,
/health answers while the resolver is busy, and queued runs that never started end FAILED at shutdown.

Slots are held deterministically by runs waiting for approval (their executions stay in flight until answered)."""

from __future__ import annotations

import threading

import pytest
from devserver_helpers import dev_server, http, start_waiting_run, wait_for_status

from stepcrew.api.dev import QUEUE_POSITION_HEADER
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.local.admission import NEVER_STARTED_MESSAGE
from stepcrew.local.runtime import LocalRuntime

from test_cli import stepcrew

pytestmark = pytest.mark.integration

WAITING = {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri(), "require_approval": True}


def kept_run(state_dir, run_id: str):
    with LocalRuntime(state_dir=state_dir, read_only=True) as rt:
        run = rt.store.get_run(run_id)
        events = [e.kind for _, e in rt.store.list_events(run_id)]
    return run, events


def test_runs_beyond_the_maximum_queue_in_order_and_the_rest_fail_at_shutdown(tmp_path):
    state = tmp_path / "state"
    with dev_server(state, max_runs=1, max_queued=2) as server:
        base = server.url
        first = start_waiting_run(base)  # holds the only slot until approved

        status, headers, second = http(f"{base}/runs", "POST", WAITING)
        assert status == 202 and second["status"] == "QUEUED" and headers[QUEUE_POSITION_HEADER] == "1"
        status, headers, third = http(f"{base}/runs", "POST", WAITING)
        assert status == 202 and headers[QUEUE_POSITION_HEADER] == "2"

        status, headers, refused = http(f"{base}/runs", "POST", WAITING)  # queue full: refused, nothing written
        assert status == 429 and refused["error"]["code"] == "dev_queue_full" and int(headers["Retry-After"]) >= 1
        assert {r["run_id"] for r in http(f"{base}/runs")[2]["runs"]} == {first, second["run_id"], third["run_id"]}

        status, headers, view = http(f"{base}/runs/{third['run_id']}")
        assert status == 200 and view["status"] == "QUEUED" and headers[QUEUE_POSITION_HEADER] == "2"
        status, headers, _ = http(f"{base}/runs/{third['run_id']}", tenant="other")  # another tenant learns nothing
        assert status == 404 and QUEUE_POSITION_HEADER not in headers
        status, headers, view = http(f"{base}/runs/{first}")
        assert view["status"] == "WAITING_APPROVAL" and QUEUE_POSITION_HEADER not in headers

        assert http(f"{base}/runs/{first}/approval", "POST", {"approved": True})[0] == 200
        assert wait_for_status(base, first, {"SUCCEEDED", "FAILED"})["status"] == "SUCCEEDED"
        # its slot went to the next in line, not the last one
        wait_for_status(base, second["run_id"], {"WAITING_APPROVAL"})
        status, headers, view = http(f"{base}/runs/{third['run_id']}")
        assert view["status"] == "QUEUED" and headers[QUEUE_POSITION_HEADER] == "1"

    never, events = kept_run(state, third["run_id"])
    assert never.status.value == "FAILED" and never.error.code == "LocalRuntimeExited"
    assert never.error.message == NEVER_STARTED_MESSAGE and never.finished_at is not None
    assert events[-1] == "run_failed"
    cut_off, _ = kept_run(state, second["run_id"])  # started, then stopped by the runtime's exit
    assert cut_off.status.value == "FAILED" and cut_off.error.code == "LocalRuntimeExited"
    assert cut_off.error.message != NEVER_STARTED_MESSAGE
    assert kept_run(state, first)[0].status.value == "SUCCEEDED"


def test_health_answers_while_the_resolver_is_busy_and_a_run_is_in_flight(tmp_path):
    with dev_server(tmp_path / "state", max_runs=2) as server:
        base = server.url
        start_waiting_run(base)
        expected = http(f"{base}/health", tenant=None)
        assert expected[0] == 200 and expected[2]["status"] == "ok" and expected[2]["stage"] == "local"

        answers: dict[str, tuple] = {}

        def get(name: str, path: str) -> None:
            answers[name] = http(f"{base}{path}", timeout_s=30)

        with server._lock:  # a request holding the resolver (as a slow POST /runs would)
            health = threading.Thread(target=get, args=("health", "/health"))
            runs = threading.Thread(target=get, args=("runs", "/runs"))
            health.start()
            runs.start()
            health.join(timeout=20)
            assert "health" in answers and answers["health"][0] == 200  # answered while the lock was held
            assert answers["health"][2] == expected[2]
            assert "runs" not in answers  # other routes do wait for the resolver
        runs.join(timeout=30)
        assert answers["runs"][0] == 200


def test_a_bad_maximum_is_a_one_line_error_exit_2(tmp_path):
    result = stepcrew(tmp_path, "dev", "--port", "0", env={"STEPCREW_DEV_MAX_RUNS": "lots"}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "STEPCREW_DEV_MAX_RUNS" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
