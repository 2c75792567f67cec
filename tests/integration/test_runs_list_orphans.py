"""`stepcrew runs list` flags an unfinished local run that no live process executes (orphaned), before any sweep:
a run claimed by a live process, a finished run and a run waiting for a person's review are not flagged.

Given runs kept in a state folder as a killed process leaves them (RUNNING with a dead process's claim, RUNNING
with no claim), one RUNNING claimed by a live process, one SUCCEEDED and one NEEDS_REVIEW, when `runs list --json`
runs (read only), then exactly the first two say ``"orphaned": true`` and nothing is changed; the table marks them
and says how to continue one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from stepcrew.local.liveness import FOLDER, _start_time
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunStatus
from test_cli import stepcrew
from test_orphan_sweep import _kept_run

pytestmark = pytest.mark.integration


def test_runs_list_flags_the_runs_no_live_process_executes(tmp_path):
    home = tmp_path / "home"
    state = home / "state"
    dead, unclaimed, live = (_kept_run(state, RunStatus.RUNNING, plan=False) for _ in range(3))
    done = _kept_run(state, RunStatus.SUCCEEDED, plan=False)
    review = _kept_run(state, RunStatus.NEEDS_REVIEW, plan=False)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        (state / FOLDER).mkdir(parents=True, exist_ok=True)
        (state / FOLDER / live).write_text(f"{sleeper.pid} {_start_time(sleeper.pid) or '-'}\n")
        (state / FOLDER / dead).write_text(f"{gone.pid} -\n")
        listed = stepcrew(home, "runs", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        flags = {r["run_id"]: (r["status"], r["orphaned"]) for r in json.loads(listed.stdout)}
        assert flags == {dead: ("RUNNING", True), unclaimed: ("RUNNING", True), live: ("RUNNING", False),
                         done: ("SUCCEEDED", False), review: ("NEEDS_REVIEW", False)}
        table = stepcrew(home, "runs", "list", env={"COLUMNS": "250"})
        assert table.returncode == 0
        assert table.stdout.count("RUNNING (orphaned)") == 2
        assert "2 run(s) marked (orphaned)" in table.stderr and "stepcrew runs resume ID --tenant local" in table.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    with LocalRuntime(state_dir=state, read_only=True) as rt:  # listing changed nothing
        assert rt.store.get_run(dead).status == RunStatus.RUNNING
