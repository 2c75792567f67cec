"""Events and responses of the Lambda functions that the state machines call.

This module is the contract between ``statemachines/*.asl.json`` and ``functions/*/app.py``: each Task state's
``Parameters`` build one of the ``*Input`` models below, and each handler returns the matching ``*Output`` with
``model_dump(mode="json")``. State carries ids and small summaries only (claim-check): plans, conversations,
outputs and reports live in the store. Files in ``events/`` are validated against these models by a test.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from stepcrew.memory.models import MAX_FACTS_PER_WRITE, FactIn
from stepcrew.models import (
    DEFAULT_TENANT,
    RunId,
    RunRequest,
    Score,
    Strict,
    SubtaskId,
    SubtaskStatus,
    Tenant,
    ToolCall,
    ToolResult,
)

MAX_PLAN_ATTEMPTS = 3  # the first try plus at most 2 more with the validation error fed back (issue #2)
#: ``MaxAttempts`` of the state machines' Retry for ModelThrottledError / ModelUnavailableError on every model Task
#: (checked against the ASL by tests/unit/test_events.py). The model Tasks pass ``$$.State.RetryCount`` as
#: ``retry_count``: at ``retry_count == MODEL_RETRY_ATTEMPTS`` no retry is left and the ladder moves down its chain.
MODEL_RETRY_ATTEMPTS = 3
RetryCount = Annotated[int, Field(ge=0, le=100)]


class RunRef(Strict):
    """Input of the run state machine and of the guard function: the run record already exists."""

    run_id: RunId


class CreateScheduledRun(Strict):
    """First Task of a scheduled run: EventBridge Scheduler starts the run state machine with
    ``{"request": RunRequest, "source": "schedule"}``; the guard writes the run record with
    ``run_id`` = the execution name and returns :class:`RunRef`."""

    action: Literal["create_scheduled_run"] = "create_scheduled_run"
    request: RunRequest
    run_id: RunId


class RunConfig(Strict):
    """The small slice of the run record that the run state machine's Choice states read: the review threshold and
    rounds, what a failed last round becomes (``on_fail``), the hand-off's timeout (seconds), whether the plan
    needs approval, and whether the run has a dataset (then it is profiled before planning)."""

    threshold: Score
    max_rounds: int = Field(ge=1)
    on_fail: Literal["handoff", "fail"] = "handoff"
    handoff_timeout_s: int = Field(default=86_400, ge=1)
    require_approval: bool = False
    has_data: bool = False
    data_uri: str | None = None
    tenant: Tenant = DEFAULT_TENANT


class DatasetSlot(Strict):
    """Where the run state machine keeps the dataset's describe_dataset result (``$.guard.profile.result``): None
    until the DescribeData state fills it (and for runs without a dataset)."""

    result: ToolResult | None = None


class GuardOutput(Strict):
    run_id: RunId
    config: RunConfig
    profile: DatasetSlot = Field(default_factory=DatasetSlot)


class ScreenToolResults(Strict):
    """Guard function, between a turn's tool calls and the next model call (agent state machine, GuardToolResults;
    run state machine, GuardProfile for the dataset profile): screen each result for PII (masked per the run's
    policy) and injection (flagged). ``subtask_id`` ``dataset`` is the profile."""

    action: Literal["screen_tool_results"]
    run_id: RunId
    subtask_id: SubtaskId
    tool_results: list[ToolResult] = Field(default_factory=list, max_length=16)


class ScreenedToolResults(Strict):
    """The same results, masked, each with ``screened`` set (with the ids, so the agent loop's next state needs
    nothing else)."""

    run_id: RunId
    subtask_id: SubtaskId
    tool_results: list[ToolResult]


class ScreenOutput(Strict):
    """Guard function, after each report version (GuardReport, GuardImprovedReport): redact PII in the report and
    the sub-task outputs, remove sentences on denied topics, add the disclaimer (per the run's policy)."""

    action: Literal["screen_output"]
    run_id: RunId


class ScreenOutputResult(Strict):
    """``chars``: the screened report's length; ``masked``: PII entity -> values masked (report and outputs);
    ``removed``: sentences removed for denied topics."""

    run_id: RunId
    chars: int = Field(ge=0)
    masked: dict[str, int] = Field(default_factory=dict)
    removed: int = Field(default=0, ge=0)


class PlanInput(Strict):
    """``dataset``: the describe_dataset result the run state machine got before planning (None without data)."""

    run_id: RunId
    attempt: int = Field(default=1, ge=1, le=MAX_PLAN_ATTEMPTS)
    previous_error: str | None = Field(default=None, max_length=4000)
    dataset: ToolResult | None = None
    retry_count: RetryCount = 0


class PlanOutput(Strict):
    """``valid`` false and ``retry`` true: the state machine calls the planner again with ``next_attempt`` and
    ``error``; ``declined`` true: the engine cannot answer the goal (``error`` says why) and the run ends DECLINED;
    ``valid`` false otherwise: the run fails with ``PlanInvalidError: <error>``."""

    run_id: RunId
    valid: bool
    attempt: int
    next_attempt: int
    retry: bool
    declined: bool = False
    error: str | None = None
    waves: list[list[SubtaskId]] = Field(default_factory=list)
    subtask_count: int = 0
    process: Literal["parallel", "sequential", "hierarchical", "hybrid"] = Field(
        default="parallel", description="the crew's process: CheckPlan sends hierarchical / hybrid runs to the manager")


class ApprovalInput(Strict):
    """``kind``: ``approval`` (the plan gate) or ``review`` (the hand-off of a report that failed review)."""

    run_id: RunId
    task_token: str = Field(min_length=1, max_length=4096)
    kind: Literal["approval", "review"] = "approval"


class ApprovalOutput(Strict):
    run_id: RunId
    status: Literal["WAITING_APPROVAL", "NEEDS_REVIEW"] = "WAITING_APPROVAL"


class AgentStart(Strict):
    """Input of the agent state machine (one execution per sub-task)."""

    run_id: RunId
    subtask_id: SubtaskId
    AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: str | None = None


class AgentTurnInput(Strict):
    """One agent-loop turn. ``tool_results`` are the results of the previous turn's tool calls (empty on the
    first turn); the agent function appends them to the stored conversation before calling the model."""

    run_id: RunId
    subtask_id: SubtaskId
    tool_results: list[ToolResult] = Field(default_factory=list)
    tool_functions: dict[str, str] = Field(
        default_factory=dict, description="tool name -> the ARN of its Lambda, a constant of the agent ASL filled "
                                          "from stepcrew.wiring.SUBSTITUTIONS (the one mapping): each runnable call "
                                          "is handed out with its function, so the tool Map invokes it without a "
                                          "routing Choice")
    AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: str | None = None
    retry_count: RetryCount = 0


class ToolDispatch(Strict):
    """One item of the agent loop's tool Map: the call and the Lambda that runs it (``function``, an ARN from
    :attr:`AgentTurnInput.tool_functions`; the Map's Task invokes ``FunctionName.$: $.function``)."""

    function: str = Field(min_length=1)
    call: ToolCall


class AgentTurnOutput(Strict):
    """``stop_reason == "tool_use"``: the state machine maps over ``tool_calls`` (each with its function); anything
    else ends the loop (the sub-task's output is already stored and its status is ``status``)."""

    run_id: RunId
    subtask_id: SubtaskId
    turn: int = Field(ge=1)
    stop_reason: Literal["tool_use", "end_turn", "max_tokens", "max_turns"]
    tool_calls: list[ToolDispatch] = Field(default_factory=list)
    data_uri: str | None = None
    tenant: Tenant = DEFAULT_TENANT
    allow_side_effects: bool = Field(default=False, description="the run's: copied into every tool call's context "
                                                                "by the tool Map (operations tools act only then)")
    status: SubtaskStatus

    @property
    def calls(self) -> list[ToolCall]:
        """The handed-out calls without their functions."""
        return [d.call for d in self.tool_calls]


class SynthInput(Strict):
    run_id: RunId
    mode: Literal["draft", "improve"] = "draft"
    round: int = Field(default=0, ge=0, description="review round whose feedback to apply (improve mode)")
    retry_count: RetryCount = 0


class SynthOutput(Strict):
    run_id: RunId
    mode: Literal["draft", "improve"]
    chars: int = Field(ge=0)


class StepFunctionsError(Strict):
    """What a Catch with ``ResultPath: "$.error"`` puts in state: ``{"Error": ..., "Cause": ...}``."""

    Error: str = "States.TaskFailed"
    Cause: str | None = None


class ReviewInput(Strict):
    """``failed``: the state machine's retries of this round ended in this error (ReviewReplyError): record the
    round as failed instead of reviewing."""

    run_id: RunId
    round: int = Field(default=1, ge=1)
    failed: StepFunctionsError | None = None
    retry_count: RetryCount = 0


class ReviewOutput(Strict):
    """``overall`` None: the round gave no valid scores (recorded as failed, ``passed`` false)."""

    run_id: RunId
    round: int = Field(ge=1)
    next_round: int
    overall: Score | None
    passed: bool
    budget_exhausted: bool = False
    handoff: bool = Field(default=False, description="the run must go to a person whatever the score (budget "
                                                      "exhausted, or a sub-task no provider could do)")


class SucceedRun(Strict):
    action: Literal["succeed_run"] = "succeed_run"
    run_id: RunId


class FailRun(Strict):
    action: Literal["fail_run"] = "fail_run"
    run_id: RunId
    error: StepFunctionsError


class DeclineRun(Strict):
    action: Literal["decline_run"] = "decline_run"
    run_id: RunId


class FailSubtask(Strict):
    action: Literal["fail_subtask"] = "fail_subtask"
    run_id: RunId
    subtask_id: SubtaskId
    error: StepFunctionsError


FinalizeInput = Annotated[SucceedRun | FailRun | FailSubtask | DeclineRun, Field(discriminator="action")]


class FinalizeOutput(Strict):
    run_id: RunId
    status: str
    subtask_id: str | None = None


def dump(model: Strict) -> dict[str, Any]:
    """JSON-mode dump used by every handler's return."""
    return model.model_dump(mode="json")


class ProposeMemory(Strict):
    """Event of the synthesizer function after a run SUCCEEDED (the run state machine's ProposeMemory state): the
    run's engine proposes facts from its goal and inputs (stored in the ledger; the memory function screens and
    writes them). ``retry_count``: ``$$.State.RetryCount``, for the ladder."""

    action: Literal["propose_memory"]
    run_id: RunId
    retry_count: RetryCount = 0


class ProposeMemoryOutput(Strict):
    run_id: RunId
    facts: int = Field(ge=0)
    by: Literal["model", "planner", "rules", "stored", "skipped"]


class RecordRun(Strict):
    """Event of the memory function at a run's end (the run state machine's Remember states): the finished run
    becomes an episode of its tenant and proposes facts (:func:`stepcrew.domain.remember.record_run_memory`)."""

    action: Literal["record_run"] = "record_run"
    run_id: RunId


class RememberFacts(Strict):
    """Event of the memory function from the API (``POST /memory``): facts of ``tenant`` (the caller's, from the
    token) to screen and store. At most 25 facts."""

    action: Literal["remember"] = "remember"
    tenant: Tenant
    facts: list[FactIn] = Field(min_length=1, max_length=MAX_FACTS_PER_WRITE)
    user: str | None = Field(default=None, max_length=256)


MemoryInput = Annotated[RecordRun | RememberFacts, Field(discriminator="action")]


class RememberOutput(Strict):
    """The memory function's answer to RememberFacts: ``result`` (ok), or ``error`` (``type``: MemoryRejectedError,
    UserOutsideTenantError, ValueError; a client mistake the API answers 400) with nothing written."""

    ok: bool
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
