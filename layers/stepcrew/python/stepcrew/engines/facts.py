"""The structured facts of a model call (``ModelRequest.context``), one model per purpose.

The domain builds these and renders the same facts into the prompts (:mod:`stepcrew.domain.prompts`); real
providers read the prompts, the rule engine (:mod:`stepcrew.llm.rule_engine`), which has no language model,
reads these models. Contents are the run's own data (goal, tool results, outputs): they go to the model and
the store, never to logs or progress events.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolFact(_Facts):
    """One successful tool call: its name, arguments and result ``content`` (tool-specific JSON)."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    content: Any = None


class WorkerInfo(_Facts):
    """A worker role as the planner sees it."""

    name: str
    role: str
    tools: list[str]


class SubtaskFacts(_Facts):
    """A sub-task of the plan with what is known of it: its output and successful tool results once done."""

    id: str
    title: str
    instructions: str = ""
    expected_output: str = ""
    role: str = ""
    tools: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    output: str | None = None
    tool_results: list[ToolFact] = Field(default_factory=list)


class PlanContext(_Facts):
    """purpose ``plan``: the goal, whether a dataset is attached, the workers and the known tools."""

    goal: str
    has_dataset: bool
    inputs: dict[str, str] = Field(default_factory=dict)
    workers: list[WorkerInfo]
    tools: list[str]
    attempt: int = 1
    previous_error: str | None = None


class ActContext(_Facts):
    """purpose ``act``: one sub-task of a worker; ``dependencies`` are all its ancestors in the plan (in plan
    order) with their outputs and successful tool results. The allowed tools are the request's ``tools``.
    ``subtask_id`` repeats ``subtask.id`` at the top level (test models route scripts on it)."""

    goal: str
    has_dataset: bool
    subtask_id: str
    subtask: SubtaskFacts
    dependencies: list[SubtaskFacts] = Field(default_factory=list)


class ReportContext(_Facts):
    """purposes ``synthesize``, ``improve`` and ``review``: every sub-task with its output and tool results.
    ``report`` is the current report (improve, review), ``feedback`` the review to apply (improve) and
    ``tool_numbers`` the numbers found in the tool results (review: what the report's figures are checked
    against)."""

    goal: str
    has_dataset: bool
    subtasks: list[SubtaskFacts]
    report: str | None = None
    feedback: str | None = None
    tool_numbers: list[float] = Field(default_factory=list)
