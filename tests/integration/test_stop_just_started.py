"""The local runtime's exit stops an execution started a moment before (moto builds an execution's environment in
the execution's own thread; stopping it before then raised AttributeError in moto and left it running after moto
stopped: seen when `stepcrew dev` got SIGTERM just after POST /runs).

Given an execution whose thread is held before it builds its environment, when the runtime exits, then the exit
raises nothing, the execution is stopped and the run is marked FAILED LocalRuntimeExited."""

from __future__ import annotations

import threading

import pytest
from stepcrew.crew import load_crew
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.local.runtime import LocalRuntime
from stepcrew.models import RunRequest, RunStatus
from stepcrew.service import create_run, start_run

pytestmark = pytest.mark.integration


def test_the_runtime_exit_stops_an_execution_that_has_not_built_its_environment(tmp_path, monkeypatch):
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    release, held = threading.Event(), threading.Event()
    original = ExecutionWorker._get_evaluation_entrypoint

    def slow_entrypoint(self):  # the execution's thread, before `self.env` exists
        held.set()
        release.wait(timeout=30)
        return original(self)

    monkeypatch.setattr(ExecutionWorker, "_get_evaluation_entrypoint", slow_entrypoint)
    state = tmp_path / "state"
    runtime = LocalRuntime(state_dir=state, fast_waits=True)
    with runtime as rt:
        run = start_run(create_run(RunRequest(goal=DEMO_GOAL, data=DEMO_DATASET.as_uri()), load_crew("default"),
                                   rt.store), rt.store, rt)
        assert held.wait(timeout=30)
        timer = threading.Timer(0.3, release.set)  # the thread goes on while the exit is already stopping it
        timer.start()
    timer.join()
    with LocalRuntime(state_dir=state, store_only=True) as rt:
        kept = rt.store.get_run(run.run_id)
    assert kept.status == RunStatus.FAILED and kept.error.code == "LocalRuntimeExited"
