"""`stepcrew dev` is two processes (stepcrew.local.front): the front holds the port and answers /health; the runtime
process executes the runs and answers every other request, forwarded unchanged.

Given `stepcrew dev` started as a user starts it (its own process, a free port, STEPCREW_HOME in tmp_path):
- /health is answered with the runtime's own body; API answers keep their status, headers and body through the
  front (a 202 with Location, a 401, a 404, a HEAD, a query string, a chunked body refused with 411);
- a signed upload URL points at the front and its PUT verifies through it (Host forwarded);
- SIGKILL of the front ends the runtime process too (no process left holding the state) and its run is an orphan
  the next start sweeps; SIGKILL of the runtime stops the front with 128+9 and a one-line reason;
- a port already taken: exit 2, one line, nothing started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from devserver_helpers import children, dev_process, kill_dev

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the runtime process in /proc")]

TOKEN = {"Authorization": "Bearer local:acme"}


def _http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_health_and_api_answers_pass_through_the_front(tmp_path):
    with dev_process(tmp_path / "home") as (proc, base):
        runtime = children(proc.pid)
        assert len(runtime) == 1, "one runtime process behind the front"
        status, _, body = _http("GET", base + "/health")
        assert status == 200 and json.loads(body)["stage"] == "local"
        # a 202 with its Location header, forwarded from the runtime
        status, headers, body = _http("POST", base + "/runs", json.dumps({"goal": "What is the total?"}).encode(),
                                      {**TOKEN, "Content-Type": "application/json"})
        answer = json.loads(body)
        assert status == 202 and headers["Location"] == f"/runs/{answer['run_id']}"
        status, _, body = _http("GET", f"{base}/runs/{answer['run_id']}", headers=TOKEN)
        assert status == 200 and json.loads(body)["run_id"] == answer["run_id"]
        # errors keep their status and body
        status, headers, body = _http("GET", base + "/runs", headers={"Authorization": "Bearer not-a-local-token"})
        assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
        status, _, body = _http("GET", base + "/runs/0123456789abcdef0123456789abcdef", headers=TOKEN)
        assert status == 404 and json.loads(body)["error"]["code"]
        # a query string reaches the API (a bad limit is refused there, not by the front)
        status, _, body = _http("GET", base + "/runs?limit=abc", headers=TOKEN)
        assert status == 400, body
        # HEAD is the API's to answer (it has no HEAD route: 405), with no body
        status, headers, body = _http("HEAD", base + "/health")
        assert status == 405 and body == b"" and int(headers["Content-Length"]) > 0
        # a chunked body: the runtime's 411, the connection closed
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=30) as sock:
            sock.sendall(b"POST /runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer local:acme\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 411"), reply[:80]
        assert b"length_required" in reply


def test_a_signed_upload_url_points_at_the_front_and_verifies_through_it(tmp_path):
    data = b"region,revenue\nnorth,10\nsouth,32\n"
    home = tmp_path / "home"
    with dev_process(home) as (proc, base):
        status, _, body = _http("POST", base + "/datasets",
                                json.dumps({"name": "sales.csv", "size_bytes": len(data)}).encode(),
                                {**TOKEN, "Content-Type": "application/json"})
        grant = json.loads(body)
        assert status == 201 and grant["upload_url"].startswith(f"{base}/"), grant
        status, _, body = _http("PUT", grant["upload_url"], data + b"x",
                                {**grant["headers"], "Content-Length": str(len(data) + 1)})
        assert status == 403 and b"SignatureDoesNotMatch" in body
        status, _, _ = _http("PUT", grant["upload_url"], data, grant["headers"])
        assert status == 200
    assert (home / "datasets" / "acme" / "uploads" / "sales.csv").read_bytes() == data


def test_sigkill_of_the_front_ends_the_runtime_and_leaves_an_orphan_for_the_next_start(tmp_path):
    home = tmp_path / "home"
    with dev_process(home) as (proc, base):
        runtime = children(proc.pid)
        assert len(runtime) == 1
        status, _, body = _http("POST", base + "/runs", json.dumps({"goal": "What is the total?",
                                                                    "require_approval": True}).encode(),
                                {**TOKEN, "Content-Type": "application/json"})
        run_id = json.loads(body)["run_id"]
        assert status == 202
        kill_dev(proc)  # returns once the runtime process has ended too
    with dev_process(home, stderr=subprocess.PIPE) as (proc, base):
        status, _, body = _http("GET", f"{base}/runs/{run_id}", headers=TOKEN)
        shown = json.loads(body)
        assert status == 200 and shown["status"] == "FAILED", shown
        assert shown["error"]["code"] == "LocalRuntimeExited"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_sigkill_of_the_runtime_stops_the_front_with_its_reason(tmp_path):
    with dev_process(tmp_path / "home", stderr=subprocess.PIPE) as (proc, base):
        runtime = children(proc.pid)
        assert len(runtime) == 1
        os.kill(runtime[0], signal.SIGKILL)
        assert proc.wait(timeout=30) == 128 + signal.SIGKILL
        err = proc.stderr.read()
        assert "the runtime process ended unexpectedly (exit code 137)" in err
        assert "Traceback" not in err


def test_a_port_already_taken_is_one_line_exit_2(tmp_path):
    from test_cli import cli_env

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "stepcrew.cli", "dev", "--port", str(port)],
                                env=cli_env(tmp_path / "home"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], result.stderr
    assert not (tmp_path / "home" / "state").exists(), "nothing started"
