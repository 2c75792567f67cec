"""The orphan sweep (issue 12, part 3): a run whose local process ended without finishing it (SIGKILL, a crash) is
found when a local runtime starts again and marked FAILED with its sub-tasks; a run that a live process is executing,
and a run waiting for a person's review, are left alone."""

from __future__ import annotations

import subprocess
import sys

import pytest
from devserver_helpers import dev_process, kill_dev, start_waiting_run
from stepcrew.crew import load_crew
from stepcrew.local.liveness import FOLDER, _start_time
from stepcrew.local.runtime import ORPHAN_MESSAGE, LocalRuntime
from stepcrew.models import RunRequest, RunStatus, SubtaskStatus
from stepcrew.service import create_run


pytestmark = pytest.mark.integration


def _kept_run(state, status: RunStatus, plan: bool = True) -> str:
    """A run left in the saved state with ``status`` and (optionally) a plan of PENDING sub-tasks, as a killed
    process leaves it."""
    from stepcrew.models import Plan, SubTask

    with LocalRuntime(state_dir=state, store_only=True) as rt:
        run = create_run(RunRequest(goal="Compute 6 times 7"), load_crew("default"), rt.store)
        if plan:
            rt.store.put_plan(run.run_id, Plan(subtasks=[SubTask(id="a", title="A", instructions="Do A.")]))
        rt.store.update_run(run.run_id, {"status": status})
    return run.run_id


def test_a_run_left_running_by_a_dead_process_is_failed_at_the_next_start(tmp_path):
    state = tmp_path / "state"
    orphan = _kept_run(state, RunStatus.RUNNING)
    waiting = _kept_run(state, RunStatus.NEEDS_REVIEW)
    with LocalRuntime(state_dir=state, fast_waits=True) as rt:
        assert rt.swept == [orphan]
        run = rt.store.get_run(orphan)
        assert run.status == RunStatus.FAILED and run.error.code == "LocalRuntimeExited"
        assert run.error.message == ORPHAN_MESSAGE
        assert [s.status for s in rt.store.list_subtasks(orphan)] == [SubtaskStatus.FAILED]
        assert rt.store.get_run(waiting).status == RunStatus.NEEDS_REVIEW  # answerable without an execution
    with LocalRuntime(state_dir=state, read_only=True) as rt:  # saved
        assert rt.store.get_run(orphan).status == RunStatus.FAILED


def test_a_run_claimed_by_a_live_process_is_not_swept_and_a_dead_claim_is(tmp_path):
    state = tmp_path / "state"
    live, dead = _kept_run(state, RunStatus.RUNNING), _kept_run(state, RunStatus.WAITING_APPROVAL)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        (state / FOLDER).mkdir(parents=True, exist_ok=True)
        (state / FOLDER / live).write_text(f"{sleeper.pid} {_start_time(sleeper.pid) or '-'}\n")
        (state / FOLDER / dead).write_text(f"{gone.pid} -\n")
        with LocalRuntime(state_dir=state, fast_waits=True) as rt:
            assert rt.swept == [dead]
            assert rt.store.get_run(live).status == RunStatus.RUNNING
    finally:
        sleeper.kill()


def test_a_killed_dev_server_leaves_no_orphan_after_a_restart(tmp_path):
    with dev_process(tmp_path) as (proc, base):
        run_id = start_waiting_run(base)
        kill_dev(proc)  # SIGKILL, no cleanup at all: every write was already durable
    with LocalRuntime(state_dir=tmp_path / "state", fast_waits=True) as rt:
        assert run_id in rt.swept
        assert rt.store.get_run(run_id).status == RunStatus.FAILED


def test_a_dev_server_with_resume_orphans_finishes_the_runs_a_killed_one_left(tmp_path):
    from devserver_helpers import call, wait_for_status
    from stepcrew.data import DEMO_DATASET, DEMO_GOAL

    # Given a dev server killed while a run executes (its status is whatever it reached: no cleanup at all)
    with dev_process(tmp_path) as (proc, base):
        run_id = call(base + "/runs", "POST", {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri()})["run_id"]
        wait_for_status(base, run_id, {"RUNNING"})
        kill_dev(proc)
    with LocalRuntime(state_dir=tmp_path / "state", read_only=True) as rt:
        left = rt.store.get_run(run_id).status
    # When it restarts with --resume-orphans
    with dev_process(tmp_path, args=("--resume-orphans",)) as (_, base):
        view = wait_for_status(base, run_id, {"SUCCEEDED", "FAILED", "DECLINED", "NEEDS_REVIEW"})
    # Then the run it left unfinished ends SUCCEEDED (or was already finished when it was killed)
    assert view["status"] == "SUCCEEDED", (left, view.get("error"))


@pytest.mark.parametrize("content,words", [("garbage{", "not valid JSON"),
                                           ('{"version": 99, "items": []}', "newer stepcrew")])
def test_a_corrupt_or_newer_state_file_is_one_line_exit_2_and_left_as_it_was(tmp_path, content, words):
    from test_cli import stepcrew

    state = tmp_path / "state"
    state.mkdir()
    (state / "table.json").write_text(content)
    for args in (("runs", "list"), ("memory", "list"), ("run", "Compute 6 times 7")):
        proc = stepcrew(tmp_path, *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert words in proc.stderr and str(state) in proc.stderr and "Traceback" not in proc.stderr, lines
    assert (state / "table.json").read_text() == content  # nothing overwritten
