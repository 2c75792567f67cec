"""The engine port: how a role's work gets done, one method per role call.

A role use case (:mod:`stepcrew.domain`) loads what it needs from the store, builds typed facts
(:mod:`stepcrew.engines.facts`) and asks its run's engine for a plan, an agent turn, a report or a review; it then
validates and records the reply. Two implementations:

- :class:`stepcrew.engines.llm.LLMEngine`: renders the facts into prompts, calls a :class:`stepcrew.llm.base.Model`
  (the port that carries messages, tool schemas and settings only) and parses the replies;
- :class:`stepcrew.engines.rules.RuleEngine`: the offline rule engine (no LLM), which reads the facts directly.

Why one method per role rather than a model behind everything: a rule engine has no use for prompts, and a model
port that carried the domain's facts "for the rule engine" would let domain shapes leak into every provider
adapter. Here the arrows point one way: ``models`` <- ``llm`` <- ``engines`` <- ``domain``.

Replies carry what the engine produced, the usage of each model call it made (:class:`EngineCall`; the rule engine
reports one zero-cost call under ``rule-engine`` so progress shows its turns) and, for replies that a model may get
wrong (a plan, a review), the parse error instead of raising, so the domain records the usage of a paid call before
it decides what to do. Errors: :class:`stepcrew.llm.base.ModelError` subclasses pass through unchanged (the state
machines' Retry/Catch match their class names).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.engines.facts import ActFacts, ManageFacts, MemoryFacts, PlanFacts, ReportFacts
from stepcrew.llm.base import StopReason, ToolSpec
from stepcrew.models import AgentRole, CriterionScores, Decline, Message, Plan



class EngineCall(BaseModel):
    """Usage of one model call: the model id that answered, tokens and cost (USD), its stop reason and tool calls."""

    model_config = ConfigDict(extra="forbid")
    model: str
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0, description="part of input_tokens read from the prompt cache")
    cache_write_tokens: int = Field(default=0, ge=0, description="part of input_tokens written to the prompt cache")
    cost_usd: float = Field(default=0.0, ge=0)
    stop_reason: StopReason = "end_turn"
    tool_calls: int = Field(default=0, ge=0)
    # Set by the resilience ladder (stepcrew.resilience.ladder): who answered and why.
    provider: str | None = None
    tier: str | None = None
    route: str | None = None
    rung: str | None = Field(default=None, description="full | cached | rule_engine | handoff")
    cache: str | None = Field(default=None, description="exact | semantic: the answer came from a cache")
    saved_tokens: int = Field(default=0, ge=0, description="a cached answer: tokens it cost when it was paid")
    budget_cut: bool = Field(default=False, description="the budget gate cut this call's output cap")
    latency_ms: int | None = Field(default=None, ge=0, description="wall time of the model request (whole ms, cache "
                                                                     "lookups and ladder fallbacks included); None "
                                                                     "for the rule engine")
    saved_cost_usd: float = Field(default=0.0, ge=0)
    # Set by the LLM engine's agent turns (short-term memory, stepcrew.memory.window): the request's prompt budget,
    # its estimated size as sent, and how many tool results were summarized and earlier turns dropped to fit.
    context_budget_tokens: int | None = Field(default=None, ge=0, description="the role's prompt budget (tokens)")
    context_tokens: int | None = Field(default=None, ge=0, description="estimated prompt tokens sent")
    context_summarized: int = Field(default=0, ge=0, description="tool results sent as a summary")
    context_dropped: int = Field(default=0, ge=0, description="earlier turns left out of the request")


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calls: list[EngineCall] = Field(default_factory=list)


class PlanReply(_Reply):
    """Exactly one of ``plan`` (to be validated by the domain), ``decline`` or ``error`` (the reply was not a plan:
    fed back to the planner on the next attempt). ``text`` is the raw reply (the ledger keeps it)."""

    plan: Plan | None = None
    decline: Decline | None = None
    error: str | None = None
    text: str = ""
    facts: list[Any] | None = Field(default=None, description="stepcrew.memory.models.FactIn items the planner "
                                    "proposed for long-term memory (PlanFacts.propose_facts); None: not asked")


class ActReply(_Reply):
    """The next assistant turn of a sub-task: its message (text and tool calls) and stop reason."""

    message: Message
    stop_reason: StopReason


class ReportReply(_Reply):
    """A Markdown report (draft or revision)."""

    text: str


class ReviewReply(_Reply):
    """Scores and feedback, or ``error`` when the reply held no valid scores (never a silent 0)."""

    scores: CriterionScores | None = None
    feedback: str = ""
    error: str | None = None
    text: str = ""


class MemoryReply(_Reply):
    """Facts a finished run proposes for the tenant's long-term memory (screened and deduplicated by
    :mod:`stepcrew.memory` before anything is stored)."""

    facts: list[Any] = Field(default_factory=list, description="stepcrew.memory.models.FactIn items")


class Assessment(BaseModel):
    """The manager's verdict on one delegation of last round: ``accept`` its answer, or ``send_back`` with
    ``feedback`` (the worker is given it and answers again)."""

    model_config = ConfigDict(extra="ignore")
    subtask_id: str
    verdict: Literal["accept", "send_back"]
    feedback: str = ""


class DelegationOrder(BaseModel):
    """A delegation the manager asks for: a sub-task of the plan, the worker to do it (the sub-task's worker), its
    instructions for this delegation and the tools it should use (a subset of that worker's tools; empty: the
    sub-task's own)."""

    model_config = ConfigDict(extra="ignore")
    subtask_id: str
    worker: str = ""
    instructions: str = ""
    tools: list[str] = Field(default_factory=list)


class ManageReply(_Reply):
    """A manager round: ``assessments`` of last round's delegations, the next ``delegations`` (one for a
    hierarchical crew, a batch of independent ones for a hybrid crew), ``done`` when the goal is met (every sub-task
    accepted) or ``give_up`` (why the goal cannot be met: the run fails with it). ``error``: the reply could not be
    read (the manager is asked again). The domain validates the rest (:mod:`stepcrew.domain.manager`)."""

    assessments: list[Assessment] = Field(default_factory=list)
    delegations: list[DelegationOrder] = Field(default_factory=list)
    done: bool = False
    give_up: str | None = None
    error: str | None = None
    text: str = ""


class Engine(ABC):
    """Plays a crew's roles. ``name`` is what a run reports as its engine (``rule-engine``, ``openai:gpt-4o``)."""

    name: str = "abstract"

    @abstractmethod
    def plan(self, facts: PlanFacts, role: AgentRole) -> PlanReply:
        """A plan for the goal, a decline, or why the reply was not a plan."""

    @abstractmethod
    def open(self, facts: ActFacts, role: AgentRole, tools: list[ToolSpec]) -> list[Message]:
        """The opening messages (system, user) of a sub-task's conversation."""

    @abstractmethod
    def act(self, facts: ActFacts, role: AgentRole, conversation: list[Message], tools: list[ToolSpec]) -> ActReply:
        """The next turn of a sub-task whose conversation so far is ``conversation`` (opening messages, assistant
        turns and tool results). Tool calls name tools of ``tools``."""

    @abstractmethod
    def synthesize(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        """The report from every sub-task's output."""

    @abstractmethod
    def improve(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        """The report revised with ``facts.feedback``."""

    @abstractmethod
    def review(self, facts: ReportFacts, role: AgentRole) -> ReviewReply:
        """Scores of ``facts.report`` on accuracy, completeness and relevance (each 0-1) with feedback."""

    def extract_memory(self, facts: MemoryFacts, role: AgentRole) -> MemoryReply:
        """Facts worth remembering from a succeeded run's goal and inputs. Default: the rules of
        :mod:`stepcrew.memory.extract` (the rule engine's; the LLM engine asks its model)."""
        from stepcrew.memory.extract import extract_facts

        return MemoryReply(facts=extract_facts(facts.goal, facts.inputs),
                           calls=[EngineCall(model="rule-engine")])

    def manage(self, facts: ManageFacts, role: AgentRole) -> ManageReply:
        """A manager round of a hierarchical / hybrid crew. Default: the rule engine's deterministic delegation
        from the plan (:func:`stepcrew.engines.rules.manager.manage`); the LLM engine asks its model."""
        from stepcrew.engines.rules.manager import manage

        return manage(facts)

    def accepted(self) -> None:
        """The domain accepted the replies of this engine's calls so far (a valid plan, a turn that is no loop, a
        report, valid scores): an engine that caches replies may keep them now. Default: nothing to do."""
