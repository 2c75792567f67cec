"""Admission control for local executions: at most ``max_runs`` runs execute at once; the others wait, in order.

:class:`AdmissionStarter` wraps an :class:`stepcrew.service.ExecutionStarter` (the :class:`LocalRuntime` in
``stepcrew dev``). Why a queue rather than answering ``POST /runs`` with 429 at once:

- the run record is written (QUEUED) *before* the starter is asked (:func:`stepcrew.service.create_run` then
  :func:`stepcrew.service.start_run`), so refusing in the starter would leave a FAILED record for a request the
  client is told to retry; queuing keeps the record honest: it *is* queued, and it starts later;
- a client posting a burst (a script, an eval) gets every run done without a retry loop of its own, and the order it
  posted them in is the order they start (FIFO);
- the queue itself is bounded (``max_queued``): beyond it the dev server refuses ``POST /runs`` with 429 and
  ``Retry-After`` *before* anything is written (:meth:`full`, checked by the server), so memory and the table stay
  bounded under a flood.

What counts as in flight: every RUNNING execution of the run state machine in this process (``running()``), whoever
started it (runs started by a scheduled event too). A run waiting for approval holds its slot (its execution waits
on a task token): approve or reject it to free the slot.

No per-run polling: one daemon thread for the whole server (:meth:`start`) wakes when a run is queued, and while
runs wait for a slot it asks ``running()`` once per ``tick_s`` (one ``ListExecutions`` for all runs); with nothing
queued it sleeps until notified. ``start_run`` itself only enqueues, so a request never waits on an execution start
(moto re-parses the definition at every start, 125-190 ms).

Start failures of a queued run: the run is marked FAILED with the reason, as :func:`stepcrew.service.start_run`
does for a synchronous start. At :meth:`close` (server exit) queued runs that never started are marked FAILED
``LocalRuntimeExited`` (:data:`stepcrew.local.runtime.CUT_OFF_CODE`), like the runs whose executions the runtime's
exit stops, so none stays QUEUED forever.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

LOG = logging.getLogger(__name__)

#: ``STEPCREW_DEV_MAX_RUNS`` default and accepted range (runs executing at once).
DEFAULT_MAX_RUNS = 4
MAX_RUNS_LIMIT = 64
#: ``STEPCREW_DEV_MAX_QUEUED`` default and accepted range (runs waiting for a slot).
DEFAULT_MAX_QUEUED = 100
MAX_QUEUED_LIMIT = 10_000
#: How often the dispatcher looks for a free slot while runs wait (seconds).
TICK_S = 0.2
#: RunError code and message of a queued run that never started because the server stopped.
NEVER_STARTED_MESSAGE = ("the local server stopped before this queued run could start (it waited for a free slot: "
                         "STEPCREW_DEV_MAX_RUNS); start the run again")


class AdmissionClosed(RuntimeError):
    """The admission is closed (the server is stopping): no run is accepted any more."""


def parse_limit(name: str, raw: str | None, default: int, upper: int) -> int:
    """The integer value of environment variable ``name`` (``raw``; None or blank: ``default``), 1..``upper``.
    Raises ValueError with a one-line message naming the variable for anything else."""
    if raw is None or not raw.strip():
        return default
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= upper:
        raise ValueError(f"{name} must be a whole number from 1 to {upper} (got {raw!r})")
    return int(text)


class AdmissionStarter:
    """An :class:`~stepcrew.service.ExecutionStarter` that starts at most ``max_runs`` executions at once, FIFO.

    - ``starter``: the real starter (``start_run(run_id) -> execution ARN``).
    - ``store``: the run store (marks a run FAILED when its deferred start fails, or at :meth:`close`).
    - ``running()``: ids (execution names = run ids) of the run state machine's RUNNING executions.
    - ``arn_of(run_id)``: the ARN the run's execution will have (name = run id), returned by :meth:`start_run`
      for a run that is only queued.
    - ``max_runs`` 1..:data:`MAX_RUNS_LIMIT`, ``max_queued`` 1..:data:`MAX_QUEUED_LIMIT` (ValueError otherwise).
    - ``tick_s``: seconds between looks for a free slot while runs wait.

    Thread-safe. Call :meth:`start` to run the dispatcher thread (tests may call :meth:`pump` instead).
    """

    def __init__(self, starter: Any, store: Any, *, running: Callable[[], Iterable[str]],
                 arn_of: Callable[[str], str], max_runs: int = DEFAULT_MAX_RUNS,
                 max_queued: int = DEFAULT_MAX_QUEUED, tick_s: float = TICK_S) -> None:
        if not 1 <= max_runs <= MAX_RUNS_LIMIT:
            raise ValueError(f"max_runs must be 1-{MAX_RUNS_LIMIT} (got {max_runs})")
        if not 1 <= max_queued <= MAX_QUEUED_LIMIT:
            raise ValueError(f"max_queued must be 1-{MAX_QUEUED_LIMIT} (got {max_queued})")
        self.starter = starter
        self.store = store
        self.max_runs = max_runs
        self.max_queued = max_queued
        self.tick_s = tick_s
        self._running = running
        self._arn_of = arn_of
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._pump_lock = threading.Lock()  # one dispatch pass at a time (thread, close, tests)
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ starter
    def start_run(self, run_id: str) -> str:
        """Queue run ``run_id`` (its record QUEUED) for a start as soon as a slot is free; return the ARN its
        execution will have. Raises :class:`AdmissionClosed` once closed (the run is then marked FAILED by
        :func:`stepcrew.service.start_run`)."""
        with self._cond:
            if self._closed:
                raise AdmissionClosed("the local server is stopping: no new run is started")
            self._queue.append(run_id)
            self._cond.notify_all()
        return self._arn_of(run_id)

    # ------------------------------------------------------------------------------------------ views
    def position(self, run_id: str) -> int | None:
        """1-based place of ``run_id`` in the queue (1 = starts next), None when it is not queued."""
        with self._cond:
            try:
                return self._queue.index(run_id) + 1
            except ValueError:
                return None

    def queued(self) -> list[str]:
        """The queued run ids, next first."""
        with self._cond:
            return list(self._queue)

    def full(self) -> bool:
        """Whether the queue holds ``max_queued`` runs (a new run should be refused before it is written)."""
        with self._cond:
            return len(self._queue) >= self.max_queued

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------------------------------ dispatch
    def pump(self) -> list[str]:
        """One dispatch pass: while runs are queued and fewer than ``max_runs`` executions run, start the next
        one. Returns the ids started (or failed to start) in this pass, in order."""
        handled: list[str] = []
        with self._pump_lock:
            if not self.queued():
                return handled
            busy = len(set(self._running()))
            while busy < self.max_runs:
                with self._cond:
                    if self._closed or not self._queue:
                        break
                    run_id = self._queue.popleft()
                handled.append(run_id)
                if self._start(run_id):
                    busy += 1
        return handled

    def _start(self, run_id: str) -> bool:
        """Start one dequeued run; on failure mark it FAILED with the reason. True when it started."""
        try:
            arn = self.starter.start_run(run_id)
        except Exception as exc:  # noqa: BLE001 - recorded on the run, never a silent QUEUED orphan
            LOG.error("queued run %s could not start: %s", run_id, type(exc).__name__)
            self._fail(run_id, type(exc).__name__, f"could not start the run: {exc}")
            return False
        if arn != self._arn_of(run_id):  # the record names the ARN start_run predicted; keep it true
            try:
                self.store.update_run(run_id, {"execution_arn": arn})
            except Exception as exc:  # noqa: BLE001 - the run executes anyway
                LOG.warning("could not record the execution ARN of run %s: %s", run_id, type(exc).__name__)
        return True

    def _fail(self, run_id: str, code: str, message: str) -> bool:
        """Mark a still-QUEUED run FAILED (``error``, ``finished_at``, event ``run_failed``). False when the run
        was no longer QUEUED (or the store failed: logged)."""
        from stepcrew.models import ProgressEvent, RunError, RunStatus, utcnow
        from stepcrew.store.base import RunNotFoundError, RunStateConflictError, StoreError

        try:
            self.store.update_run(run_id, {"status": RunStatus.FAILED, "finished_at": utcnow(),
                                           "error": RunError(code=code, message=message)},
                                  expected=[RunStatus.QUEUED])
            self.store.add_event(ProgressEvent(run_id=run_id, kind="run_failed", data={"code": code}))
        except (RunNotFoundError, RunStateConflictError):
            return False
        except StoreError as exc:
            LOG.error("could not mark run %s FAILED: %s", run_id, exc)
            return False
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if not self._queue:
                    self._cond.wait()  # woken by start_run or close
                    continue
            try:
                started = self.pump()
            except Exception as exc:  # noqa: BLE001 - e.g. ListExecutions failed: try again at the next tick
                LOG.warning("admission pass failed: %s", type(exc).__name__)
                started = []
            with self._cond:
                if self._queue and not self._closed and not started:
                    self._cond.wait(self.tick_s)  # every slot busy: look again in tick_s (or when notified)

    def start(self) -> None:
        """Run the dispatcher in one daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="stepcrew-dev-admission", daemon=True)
            self._thread.start()

    def close(self, message: str = NEVER_STARTED_MESSAGE) -> list[str]:
        """Stop admitting: later :meth:`start_run` calls raise :class:`AdmissionClosed`, the dispatcher thread ends
        (joined), and every run still queued is marked FAILED ``LocalRuntimeExited`` with ``message`` (those it
        could mark are returned, queue order). Idempotent. Call it before the runtime stops its executions."""
        from stepcrew.local.runtime import CUT_OFF_CODE

        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._pump_lock, self._cond:
            left = list(self._queue)
            self._queue.clear()
        failed = [run_id for run_id in left if self._fail(run_id, CUT_OFF_CODE, message)]
        if failed:
            LOG.warning("%d queued run(s) never started: marked FAILED", len(failed))
        return failed
