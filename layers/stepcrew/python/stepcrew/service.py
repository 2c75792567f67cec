"""Use cases shared by the CLI and the HTTP API: start a run, and read a run back as a :class:`RunResult`.

Starting a run writes the run record (``QUEUED``) and then starts the run state machine with the run id as the
execution name. If the start fails, the run is marked ``FAILED`` with the reason, so nothing is left half-written.
"""

from __future__ import annotations

import json
import uuid
from typing import Protocol

from stepcrew.models import (
    Crew,
    MemoryView,
    PlanView,
    ProgressEvent,
    ReviewRoundView,
    ReviewView,
    Run,
    RunError,
    RunRequest,
    RunResult,
    RunStatus,
    SubtaskView,
    UsageView,
)
from stepcrew.store.base import RunStore


class RunStartError(RuntimeError):
    """The run record was written but its execution could not be started; the run is marked FAILED."""


class ExecutionStarter(Protocol):
    """Starts the run state machine for one run. Returns the execution ARN."""

    def start_run(self, run_id: str) -> str:
        """Start the execution of run ``run_id``; return its ARN. Any exception means it did not start."""
        ...


class StepFunctionsStarter:
    """Starts runs on AWS Step Functions (``StartExecution``, name = run id: a second start of the same run is
    rejected by Step Functions as ExecutionAlreadyExists, so a run cannot execute twice)."""

    def __init__(self, state_machine_arn: str, *, client=None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = client

    @property
    def client(self):
        """The ``stepfunctions`` boto3 client (the injected one, else built at first use)."""
        if self._client is None:
            import boto3

            self._client = boto3.client("stepfunctions")
        return self._client

    def start_run(self, run_id: str) -> str:
        """``StartExecution`` with input ``{"run_id"}``; returns the execution ARN. Raises botocore's ClientError
        (e.g. ExecutionAlreadyExists for a second start of the same run)."""
        resp = self.client.start_execution(stateMachineArn=self.state_machine_arn, name=run_id,
                                           input=json.dumps({"run_id": run_id}))
        return resp["executionArn"]


def new_run_id() -> str:
    """A new run id: 32 hex characters (fits RunId and, with a sub-task id, an execution name)."""
    return uuid.uuid4().hex


def create_run(request: RunRequest, crew: Crew, store: RunStore, *, run_id: str | None = None) -> Run:
    """Write the run record (QUEUED) and a ``run_queued`` event. Raises RunExistsError for a taken run id,
    :class:`stepcrew.resilience.chain.ChainConfigError` (a ValueError) for a chain naming an unknown or unconfigured
    provider and :class:`stepcrew.memory.models.UserOutsideTenantError` (a ValueError) for a user id of another
    tenant (nothing written). The crew must already be validated (:func:`stepcrew.crew.validate_crew`)."""
    from stepcrew.memory.models import resolve_user
    from stepcrew.resilience.chain import effective_routing

    user = resolve_user(request.tenant, request.user)  # UserOutsideTenantError (a ValueError): nothing written
    run = Run(run_id=run_id or new_run_id(), tenant=request.tenant, goal=request.goal, crew=crew, data=request.data,
              provider=request.provider, review_config=request.review, budget=request.budget, inputs=request.inputs,
              guardrails=crew.guardrails.tightened(request.guardrails),
              require_approval=request.require_approval,
              routing=effective_routing(request.routing, request.provider), memory=request.memory, user=user,
              allow_side_effects=request.allow_side_effects)
    store.create_run(run)
    store.add_event(ProgressEvent(run_id=run.run_id, kind="run_queued", data={"provider": run.provider}))
    return run


def start_run(run: Run, store: RunStore, starter: ExecutionStarter) -> Run:
    """Start the execution of a QUEUED run and record its ARN. On failure the run is marked FAILED with the
    reason and RunStartError is raised."""
    try:
        arn = starter.start_run(run.run_id)
    except Exception as exc:  # the start failed: record it, never leave a QUEUED orphan
        error = RunError(code=type(exc).__name__, message=f"could not start the run: {exc}")
        store.update_run(run.run_id, {"status": RunStatus.FAILED, "error": error}, expected=[RunStatus.QUEUED])
        store.add_event(ProgressEvent(run_id=run.run_id, kind="run_failed", data={"code": error.code}))
        raise RunStartError(error.message) from exc
    return store.update_run(run.run_id, {"execution_arn": arn})


def run_result(store: RunStore, run_id: str, tenant: str | None = None) -> RunResult:
    """The result view of a run (what ``--json`` prints and ``GET /runs/{id}`` returns).
    Raises RunNotFoundError for an unknown run or another tenant's run."""
    run = store.get_run(run_id, tenant)
    plan = store.get_plan(run_id)
    subtasks = store.list_subtasks(run_id) if plan else []
    reviews = store.list_reviews(run_id)
    # the report of a run that earned it, or that waits for a person's review (shown so they can judge it)
    report = store.get_report(run_id) if run.status in (RunStatus.SUCCEEDED, RunStatus.NEEDS_REVIEW) else None
    return RunResult(
        run_id=run.run_id,
        status=run.status,
        engine=run.engine,
        plan=PlanView(subtasks=[PlanView.Item(id=s.id, title=s.title, depends_on=list(s.depends_on))
                                for s in (plan.subtasks if plan else [])]),
        subtasks=[SubtaskView(id=s.subtask_id, status=s.status, tool_calls=s.tool_calls, started_at=s.started_at,
                              finished_at=s.finished_at) for s in subtasks],
        review=ReviewView(rounds=[ReviewRoundView(round=r.round, overall=r.overall, passed=r.passed, error=r.error)
                                  for r in reviews], threshold=run.review_config.threshold,
                          on_fail=run.review_config.on_fail,
                          deadline=run.review_deadline if run.status == RunStatus.NEEDS_REVIEW else None,
                          decision=run.review_decision),
        final_output=report,
        usage=UsageView(input_tokens=run.usage.input_tokens, output_tokens=run.usage.output_tokens,
                        cost_usd=round(run.usage.cost_usd, 6), cache_read_tokens=run.usage.cache_read_tokens,
                        cache_write_tokens=run.usage.cache_write_tokens, cache_hits=run.usage.cache_hits,
                        saved_tokens=run.usage.saved_tokens, saved_cost_usd=round(run.usage.saved_cost_usd, 6)),
        error=run.error,
        decline=run.decline,
        degradation_level=run.degradation_level,
        budget_exhausted=run.budget_exhausted,
        handoff_reason=run.handoff_reason,
        memory=_memory_view(store, run),
    )


def _memory_view(store: RunStore, run: Run) -> MemoryView | None:
    """What the run's plan was made with (conversation ``memory`` written by the planner), or None."""
    if run.recalled is None:
        return None
    from stepcrew.domain.recall import stored_context

    ctx = stored_context(store, run.run_id)
    if ctx is None:
        return MemoryView()
    return MemoryView(facts=[MemoryView.Fact(memory_id=f.memory_id, text=f.text) for f in ctx.facts],
                      episodes=[MemoryView.Episode(memory_id=e.memory_id, run_id=e.run_id, similarity=e.similarity,
                                                   status=e.status, review_overall=e.review_overall, goal=e.goal)
                                for e in ctx.episodes], facts_left_out=ctx.facts_left_out)
