"""``stepcrew runs resume``: continue a local run that its process left unfinished.

A local run is interrupted when its process ends before the run does (killed, Ctrl-C, ``--timeout``, the machine
stopped): the runtime's exit, or the next runtime's orphan sweep, marks it FAILED :data:`CUT_OFF_CODE` with its open
sub-tasks. Its emulated execution died with the process, but everything it wrote is kept
(:mod:`stepcrew.local.durable`). :func:`resume_run` reopens the record and starts the run state machine again for
it; every step is Retry-safe against what is stored, so the new execution replays instead of repeating:

- the one-shot roles (plan, synthesis, review, memory proposal) reuse the reply stored for the same exchange
  (:func:`stepcrew.domain.modelcall.exchange`): no model call is paid twice;
- a sub-task replays from its stored conversation (:func:`stepcrew.domain.agent.agent_turn`: the conversation is
  its ledger): a stored answer ends it without a call, stored tool results are not asked for again, and a finished
  sub-task stays finished;
- usage is added per model call when the call is made, so a replay adds none.

What can be repeated: the one request in flight when the process died (a model call whose reply was not stored
yet, a tool call whose result was not recorded): a kill -9 loses at most that (and tools with side effects carry
their own idempotency receipts).

Reopening is conditional (:meth:`stepcrew.store.base.RunStore.reopen_run`: the status, error code and
``finished_at`` read): a run that another process
resumed or finished meanwhile is left alone. Sub-tasks closed by the cut-off go back to RUNNING when they had started
(their conversation goes on) and to PENDING when they had not
(:func:`stepcrew.domain.finalize.reopen_cut_off_subtasks`, shared with ``stepcrew runs redrive``); one that failed on
its own (a tool, the turn limit) stays FAILED.
"""

from __future__ import annotations

from typing import Any

from stepcrew.domain.finalize import reopen_cut_off_subtasks
from stepcrew.local.runtime import CUT_OFF_CODE
from stepcrew.models import ProgressEvent, RunStatus


class ResumeError(ValueError):
    """The run cannot be resumed (unknown, terminal, or run by a live process): one line, nothing changed."""


def check_resumable(runtime: Any, run_id: str, *, tenant: str | None) -> Any:
    """The run record (a :class:`stepcrew.models.Run`) if ``run_id`` of ``tenant`` can be resumed now, else
    :class:`ResumeError` (one line). The run is read through the store with ``tenant``
    (:meth:`stepcrew.store.base.RunStore.get_run`): another tenant's run is answered exactly like an unknown one
    (``no local run …``), so its existence is not revealed. ``tenant=None`` reads any tenant's run: only for the
    local operator's :func:`resume_orphans`."""
    from stepcrew.store.base import RunNotFoundError

    try:
        run = runtime.store.get_run(run_id, tenant)
    except (RunNotFoundError, ValueError):
        raise ResumeError(f"no local run {run_id!r} (see `stepcrew runs list`)") from None
    if run.status == RunStatus.FAILED and run.error is not None and run.error.code == CUT_OFF_CODE:
        return run
    if not run.status.terminal and run.status != RunStatus.NEEDS_REVIEW:
        raise ResumeError(f"run {run_id} is {run.status.value} and still being run by a live process: nothing to "
                          "resume")
    if run.status == RunStatus.NEEDS_REVIEW:
        raise ResumeError(f"run {run_id} waits for a person's review: answer it with `stepcrew runs review "
                          f"{run_id}`")
    why = f" ({run.error.code})" if run.error is not None else ""
    raise ResumeError(f"run {run_id} ended {run.status.value}{why}: only a run its process left unfinished "
                      f"(FAILED {CUT_OFF_CODE}) can be resumed; start it again with `stepcrew run`")


def resume_run(runtime: Any, run_id: str, starter: Any = None, *, tenant: str | None) -> str:
    """Reopen an interrupted run of ``tenant`` (another tenant's run: :class:`ResumeError` as for an unknown id,
    nothing changed; ``None``: any tenant's, for :func:`resume_orphans` only) (FAILED :data:`CUT_OFF_CODE` ->
    RUNNING, error and ``finished_at`` cleared; its cut-off sub-tasks -> RUNNING if started, else PENDING), emit
    ``run_resumed`` ``{"after", "subtasks_reopened"}`` and start a new execution of the run state machine for it.
    Returns the execution ARN. Raises :class:`ResumeError` when it cannot be resumed (nothing changed) and
    RunStateConflictError when another process changed the run between the check and the write. ``starter``: what
    starts the execution (an :class:`stepcrew.service.ExecutionStarter`; default the runtime itself; ``stepcrew
    dev`` passes its admission queue)."""
    from stepcrew.store.base import RunStateConflictError

    run = check_resumable(runtime, run_id, tenant=tenant)
    store = runtime.store
    try:
        store.reopen_run(run_id, run)  # one conditional write: still FAILED, same error code and finished_at
    except RunStateConflictError:
        raise ResumeError(f"run {run_id} changed while it was being resumed: see `stepcrew runs show {run_id}`") \
            from None
    # the sub-tasks the cut-off closed (RunFailed naming it): RUNNING if started, else PENDING; one that failed on
    # its own stays FAILED
    reopened = reopen_cut_off_subtasks(store, run_id, (CUT_OFF_CODE,))
    store.add_event(ProgressEvent(run_id=run_id, kind="run_resumed",
                                  data={"after": run.error.code, "subtasks_reopened": len(reopened)}))
    arn = (starter or runtime).start_run(run_id)
    store.update_run(run_id, {"execution_arn": arn})
    return arn


def resume_orphans(runtime: Any, starter: Any = None) -> list[str]:
    """Resume the runs this runtime's start-up sweep found orphaned (:attr:`LocalRuntime.swept`); returns the ids
    resumed (a run that cannot be resumed any more is skipped).

    Cross-tenant on purpose: the sweep found these runs among all tenants of the local state folder, and resuming
    what the last process left unfinished is the local operator's action (``stepcrew run|dev --resume-orphans``),
    not a tenant's request; it reads no run by an id a tenant gave. A tenant's own resume is :func:`resume_run`
    with its ``tenant``."""
    resumed = []
    for run_id in runtime.swept:
        try:
            resume_run(runtime, run_id, starter, tenant=None)
        except ResumeError:
            continue
        resumed.append(run_id)
    return resumed
