"""The typed facts an engine receives for one role call (the engine boundary's input).

The domain (:mod:`stepcrew.domain`) reads the store and builds these; an engine (:mod:`stepcrew.engines`) turns them
into a plan, an agent turn, a report or a review. The LLM engine renders them into prompts
(:mod:`stepcrew.engines.prompts`); the rule engine (:mod:`stepcrew.engines.rules`) reads them directly. Contents are
the run's own data (goal, tool results, outputs): they go to the model and the store, never to logs or events.

Shapes only, plus pure helpers over :mod:`stepcrew.models` types: this module imports nothing above ``models``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.engines.numbers import NON_SOURCE_TOOLS, numbers_in_json
from stepcrew.memory.models import MemoryContext
from stepcrew.models import Message, SubTask


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolFact(_Facts):
    """One successful tool call: its name, arguments and result ``content`` (tool-specific JSON). ``source`` names
    the call as ``<subtask id>/<call id>`` (how a report cites it)."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    content: Any = None
    source: str = ""


class WorkerInfo(_Facts):
    """A worker role as the planner sees it."""

    name: str
    role: str
    tools: list[str]


class ColumnProfile(BaseModel):
    """One column of a ``describe_dataset`` result (:class:`stepcrew.tools.dataset.DescribeDataset`): DuckDB type,
    null and distinct counts; numbers add min/max/mean/stddev/median; dates min/max; text the top values."""

    model_config = ConfigDict(extra="ignore")
    name: str
    type: str = ""
    nulls: int | None = None
    distinct: int | None = None
    min: Any = None
    max: Any = None
    mean: float | None = None
    stddev: float | None = None
    median: float | None = None
    top: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def numeric(self) -> bool:
        return self.mean is not None or _base_type(self.type) in _NUMERIC_TYPES

    @property
    def temporal(self) -> bool:
        """A date, time or timestamp column."""
        return _base_type(self.type).startswith(("DATE", "TIME", "INTERVAL"))


_NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL"}


def _base_type(dtype: str) -> str:
    return dtype.upper().split("(", 1)[0].strip()


class DatasetProfile(BaseModel):
    """The run's dataset as ``describe_dataset`` returned it before planning: file name, rows, columns."""

    model_config = ConfigDict(extra="ignore")
    dataset: str = "the dataset"
    rows: int | None = None
    columns: list[ColumnProfile] = Field(default_factory=list)
    columns_omitted: int = 0

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)


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


class KeptSubtask(_Facts):
    """A done sub-task a replan keeps: id, title, role, tools and the start of its output (``summary``)."""

    id: str
    title: str
    role: str = ""
    tools: list[str] = Field(default_factory=list)
    summary: str = ""


class ReplanFacts(_Facts):
    """Replanning after a sub-task failed: the new plan's ``version`` (2, 3...), the failed sub-task, the failure
    (``error``: its type, e.g. ToolLoopError; ``cause``: one short line with e-mail addresses, IP addresses and long
    digit runs masked), the done sub-tasks the run keeps (the new plan may depend on them by id) and the
    sub-tasks it must replace (the failed one and those not run: their definitions). ``used_ids``: every sub-task
    id the run has had (a new sub-task reusing one is renamed ``<id>-v<version>``)."""

    version: int = Field(ge=2)
    failed_subtask: str
    error: str
    cause: str = ""
    kept: list[KeptSubtask] = Field(default_factory=list)
    replaced: list[SubtaskFacts] = Field(default_factory=list)
    used_ids: list[str] = Field(default_factory=list)


class PlanFacts(_Facts):
    """Planning: the goal, the dataset's profile (None without a dataset), the workers and the known tools; on a
    retry the attempt number and the previous plan's validation error; ``replan``: set when the plan replaces the
    remaining work of a run whose sub-task failed (the reply then lists the new sub-tasks only)."""

    goal: str
    has_dataset: bool
    dataset: DatasetProfile | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    workers: list[WorkerInfo]
    tools: list[str]
    attempt: int = 1
    previous_error: str | None = None
    memory: MemoryContext | None = Field(default=None, description="what the tenant's memory recalled for the goal")
    replan: ReplanFacts | None = None
    propose_facts: bool = Field(default=False, description="the reply also lists the durable facts the goal and "
                                "inputs state (a run with memory on): the memory step then needs no model call")


class MemoryFacts(_Facts):
    """A succeeded run's person-written parts, for the facts it proposes to remember: goal and inputs."""

    goal: str
    inputs: dict[str, str] = Field(default_factory=dict)


class ActFacts(_Facts):
    """One sub-task of a worker; ``dependencies`` are all its ancestors in the plan (in plan order) with their
    outputs and successful tool results."""

    goal: str
    has_dataset: bool
    dataset: DatasetProfile | None = None
    subtask: SubtaskFacts
    dependencies: list[SubtaskFacts] = Field(default_factory=list)
    memory: MemoryContext | None = Field(default=None, description="the run's recalled memory (its facts are prompted)")


class DelegationFact(_Facts):
    """A delegation the manager issued last round and must now assess: the sub-task, the worker, ``status``
    (``SUCCEEDED``: an answer to accept or send back; ``FAILED``: the child failed, ``error`` says why) and the
    worker's ``output``."""

    seq: int
    subtask_id: str
    worker: str
    status: str
    output: str | None = None
    error: str | None = None


class ManageFacts(_Facts):
    """A manager round (hierarchical / hybrid crews): the goal, the process, every sub-task of the plan with its
    output once accepted, which are ``accepted``, the delegations of last round to assess (``results``), the
    workers and their tools, the delegations still allowed (``delegations_left``) and, when the manager is asked
    again, why its previous reply was rejected (``previous_error``)."""

    goal: str
    process: str
    round: int
    subtasks: list[SubtaskFacts]
    accepted: list[str] = Field(default_factory=list)
    results: list[DelegationFact] = Field(default_factory=list)
    workers: list[WorkerInfo]
    delegations_left: int
    previous_error: str | None = None


class ReportFacts(_Facts):
    """Synthesize, improve and review: every sub-task with its output and tool results. ``report`` is the current
    report (improve, review), ``feedback`` the review to apply (improve), ``tool_numbers`` the numbers of the source
    tool results at full precision (review: what the report's figures are checked against)."""

    goal: str
    has_dataset: bool
    dataset: DatasetProfile | None = None
    subtasks: list[SubtaskFacts]
    report: str | None = None
    feedback: str | None = None
    tool_numbers: list[float] = Field(default_factory=list)


# ----------------------------------------------------------------------------------------------- pure helpers
def tool_facts(messages: list[Message], subtask_id: str = "") -> list[ToolFact]:
    """Successful tool results of a conversation, each with the arguments of the call that produced it and its
    source ``<subtask_id>/<call id>``."""
    arguments = {c.call_id: c.arguments for m in messages for c in m.tool_calls}
    return [ToolFact(name=r.name, arguments=arguments.get(r.call_id, {}), content=r.content,
                     source=f"{subtask_id}/{r.call_id}" if subtask_id else r.call_id)
            for m in messages for r in m.tool_results if r.ok]


def facts_of(s: SubTask, output: str | None = None, tool_results: list[ToolFact] | None = None) -> SubtaskFacts:
    """A sub-task's definition as facts, with its ``output`` and successful ``tool_results`` when known."""
    return SubtaskFacts(id=s.id, title=s.title, instructions=s.instructions, expected_output=s.expected_output,
                        role=s.role, tools=list(s.tools), depends_on=list(s.depends_on), output=output,
                        tool_results=tool_results or [])


def tool_numbers(facts: list[SubtaskFacts]) -> list[float]:
    """Distinct numbers in the sub-tasks' source tool results (not write_section prose), list lengths included,
    in order, at full precision."""
    seen: dict[float, None] = {}
    for f in facts:
        for t in f.tool_results:
            if t.name not in NON_SOURCE_TOOLS:
                seen.update(dict.fromkeys(numbers_in_json(t.content, with_lengths=True)))
    return list(seen)
