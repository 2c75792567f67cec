"""`stepcrew dev` handles SIGTERM like `stepcrew run` (issue 12, part 3): a run waiting in it is marked FAILED with its
sub-tasks closed and saved, not left WAITING_APPROVAL forever."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from test_cli import cli_env, stepcrew

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": "Bearer local:acme", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def test_sigterm_stops_the_dev_server_and_fails_its_waiting_run(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stepcrew.cli", "dev", "--port", str(port)], env=cli_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _call(base + "/health")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read() if proc.poll() is not None else "no /health") from None
                time.sleep(0.2)
        run_id = _call(base + "/runs", "POST", {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri(),
                                                "require_approval": True})["run_id"]
        while (status := _call(f"{base}/runs/{run_id}")["status"]) != "WAITING_APPROVAL":
            assert time.monotonic() < deadline and status in ("QUEUED", "RUNNING"), status
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert "stopping" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    shown = json.loads(stepcrew(tmp_path, "runs", "show", run_id, "--tenant", "acme", "--json").stdout)
    assert shown["status"] == "FAILED" and shown["error"]["code"] == "LocalRuntimeExited"
    assert all(s["status"] in ("SUCCEEDED", "FAILED") for s in shown["subtasks"])
