"""Input guard: the first step of every run.

:func:`guard_run` screens the run's goal and dataset and moves it QUEUED -> RUNNING; :func:`create_scheduled_run`
writes the run record of a scheduled run (EventBridge Scheduler starts the state machine with a RunRequest).
"""

from __future__ import annotations

import unicodedata

from stepcrew.crew import load_crew
from stepcrew.domain.common import emit, logger
from stepcrew.domain.errors import InputRejectedError, RunNotActiveError
from stepcrew.domain.screening import screen_input
from stepcrew.events import CreateScheduledRun, GuardOutput, RunConfig, RunRef
from stepcrew.guards.base import Guard
from stepcrew.llm import registry
from stepcrew.models import GOAL_MAX_CHARS, Run, RunStatus, utcnow
from stepcrew.service import create_run
from stepcrew.store.base import RunExistsError, RunStateConflictError, RunStore

_ALLOWED_CONTROL = {"\n", "\r", "\t"}


def screen_goal(goal: str) -> None:
    """Raise InputRejectedError unless ``goal`` is non-blank, at most GOAL_MAX_CHARS (10,000, see
    :mod:`stepcrew.models`) characters and free of control characters other than newline, carriage return and tab."""
    if not goal or not goal.strip():
        raise InputRejectedError("the goal is empty")
    if len(goal) > GOAL_MAX_CHARS:
        raise InputRejectedError(f"the goal has {len(goal)} characters, over the limit of {GOAL_MAX_CHARS}")
    for i, ch in enumerate(goal):
        if ch not in _ALLOWED_CONTROL and unicodedata.category(ch) in ("Cc", "Cs"):
            raise InputRejectedError(f"the goal holds a control character (U+{ord(ch):04X}) at position {i}")


def _check_dataset(run: Run) -> None:
    if run.data is not None:
        from stepcrew.tools.datasets import resolve_dataset

        # as the run's tenant: its prefix is checked, and deployed the read uses the tenant's IAM session
        resolve_dataset(run.data, run.tenant)  # raises DatasetError with a readable message: the run fails with it


def guard_run(ref: RunRef, store: RunStore, guard: Guard) -> GuardOutput:
    """Screen a QUEUED run and mark it RUNNING (``started_at``, ``engine``, event ``run_started``): the goal's
    shape (:func:`screen_goal`), then the guardrails of :func:`stepcrew.domain.screening.screen_input` (injection,
    denied topics, PII masked in the stored run) with ``guard``.

    Idempotent: a redelivered event for a run that is already RUNNING (or waiting for approval) returns the same
    output without writing. Raises RunNotActiveError for a terminal run, InputRejectedError for a bad or rejected
    goal, DatasetError when the dataset does not resolve, UnknownProviderError for an unknown provider,
    GuardUnavailableError when the guard cannot screen (the run fails: it never proceeds unscreened).
    """
    run = store.get_run(ref.run_id)
    if run.status.terminal:
        raise RunNotActiveError(f"run {run.run_id} is already {run.status.value}")
    screen_goal(run.goal)
    registry.check_provider(run.provider)
    engine = registry.engine_name(run.provider, "smart")
    if run.status == RunStatus.QUEUED:
        run = screen_input(run, store, guard)
        _check_dataset(run)
        try:
            run = store.update_run(run.run_id, {"status": RunStatus.RUNNING, "started_at": utcnow(), "engine": engine},
                                   expected=[RunStatus.QUEUED])
            emit(store, run.run_id, "run_started", engine=engine, provider=run.provider)
        except RunStateConflictError:
            run = store.get_run(ref.run_id)  # a concurrent delivery won the race
            if run.status.terminal:
                raise RunNotActiveError(f"run {run.run_id} is already {run.status.value}") from None
    else:
        logger.info("guard redelivered for a started run", extra={"run_id": run.run_id})
    rc = run.review_config
    return GuardOutput(run_id=run.run_id, config=RunConfig(threshold=rc.threshold, max_rounds=rc.max_rounds,
                                                           on_fail=rc.on_fail, handoff_timeout_s=rc.handoff_timeout_s,
                                                           require_approval=run.require_approval,
                                                           has_data=run.data is not None, data_uri=run.data,
                                                           tenant=run.tenant))


def create_scheduled_run(event: CreateScheduledRun, store: RunStore) -> RunRef:
    """Write the QUEUED run record of a scheduled run (run id = the execution name) from its RunRequest, with
    the crew loaded and validated. A redelivered event finds the record already written and returns it.
    Raises CrewError for a bad crew."""
    try:
        create_run(event.request, load_crew(event.request.crew), store, run_id=event.run_id)
    except RunExistsError:
        logger.info("scheduled run already written", extra={"run_id": event.run_id})
    return RunRef(run_id=event.run_id)
