"""A claim held by a process that has ended but is not reaped yet (a zombie: the runtime process of a SIGKILLed
`stepcrew dev` front until init reaps it) is not a live owner: `kill(pid, 0)` succeeds for a zombie, so the check
reads the process state too."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from stepcrew.local.liveness import _alive, _start_time

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def test_an_ended_unreaped_process_is_not_alive_and_a_running_one_is():
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{ended.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)  # not waited for: it stays a zombie
        assert not _alive(ended.pid, None)
        assert not _alive(ended.pid, _start_time(ended.pid))
        assert _alive(running.pid, _start_time(running.pid))
    finally:
        running.kill()
        running.wait()
        ended.wait()
