"""`stepcrew dev` handles SIGTERM like `stepcrew run` (issue 12, part 3): a run waiting in it is marked FAILED with its
sub-tasks closed and saved, not left WAITING_APPROVAL forever."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from devserver_helpers import dev_process, start_waiting_run

from test_cli import stepcrew

pytestmark = pytest.mark.integration


def test_sigterm_stops_the_dev_server_and_fails_its_waiting_run(tmp_path):
    with dev_process(tmp_path, stderr=subprocess.PIPE) as (proc, base):
        run_id = start_waiting_run(base)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert "stopping" in proc.stderr.read()
    shown = json.loads(stepcrew(tmp_path, "runs", "show", run_id, "--tenant", "acme", "--json").stdout)
    assert shown["status"] == "FAILED" and shown["error"]["code"] == "LocalRuntimeExited"
    assert all(s["status"] in ("SUCCEEDED", "FAILED") for s in shown["subtasks"])
