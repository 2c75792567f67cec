"""Pydantic v2 models for everything that crosses a boundary in stepcrew.

Every Lambda event, every store item and every CLI/API payload is one of these models. They are the single
place where shapes, units and limits are written down; handlers parse into them and fail closed on bad input.

Limits and their sources:
- ``GOAL_MAX_CHARS`` (10,000 characters): stepcrew's own cap, keeps a run request far below the 256 KiB Step
  Functions payload quota (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
- ``MAX_SUBTASKS`` (8): a plan is a DAG of 1-8 sub-tasks, so one dependency wave always fits an inline Map
  (inline Map runs at most 40 iterations concurrently, same quota page).
- ``TOOL_OUTPUT_MAX_BYTES`` (8 KiB): a tool result is capped so that a Map over up to ``MAX_TOOL_CALLS_PER_TURN``
  tool calls stays far below the 256 KiB state cap; larger outputs are truncated and flagged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator

GOAL_MAX_CHARS = 10_000
MAX_SUBTASKS = 8
MAX_TOOL_CALLS_PER_TURN = 8
TOOL_OUTPUT_MAX_BYTES = 8 * 1024
FINAL_OUTPUT_MAX_CHARS = 200_000  # DynamoDB items are capped at 400 KB; the report item keeps headroom.
#: The report in UTF-8 bytes at most (DynamoDB counts bytes: 200,000 CJK characters are 600 KB): the report item and
#: the synthesizer's ledger entry (the reply JSON) both stay under the 400 KB item quota.
FINAL_OUTPUT_MAX_BYTES = 300_000
#: One tool call's arguments (UTF-8 JSON) at most, and all calls of one turn: they travel in the agent loop's state
#: (256 KiB quota, Step Functions quotas page) next to up to 8 results of 8 KiB. Beyond, the call is answered with
#: ``InvalidArguments`` / ``LimitExceeded`` the model can act on, never a States.DataLimitExceeded.
TOOL_ARGUMENTS_MAX_BYTES = 16 * 1024
TOOL_ARGUMENTS_TURN_MAX_BYTES = 64 * 1024
DEFAULT_TENANT = "local"

#: Identifier patterns, one source for these models and the HTTP API's checks (stepcrew.api).
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}$"
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"
PROVIDER_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
CREW_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"

SubtaskId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
# Run ids are at most 39 characters so that a sub-task's child execution name, "<run_id>-w<wave>-<index>-r<redrive
# count>" (run.asl.json), fits a Step Functions execution name (80).
RunId = Annotated[str, StringConstraints(pattern=RUN_ID_PATTERN)]
ToolName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Tenant = Annotated[str, StringConstraints(pattern=TENANT_PATTERN)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
#: A run input's name and value (``RunRequest.inputs``): an empty or odd key would be written, then break every later
#: read of the tenant's runs (and the local state save).
InputKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
InputValue = Annotated[str, StringConstraints(max_length=2000)]


def utcnow() -> datetime:
    """Timezone-aware UTC now (all stepcrew timestamps are UTC, ISO 8601)."""
    return datetime.now(UTC)


class Strict(BaseModel):
    """Base for boundary models: unknown fields are an error, strings are stripped."""

    # defer_build: schemas are built on first use, so a handler importing this module pays only for the models it
    # validates (building all of them at import cost ~0.2 s of every cold start).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class RunStatus(StrEnum):
    """A run's status. Terminal: SUCCEEDED (the report passed review, or a person accepted it), FAILED (with a
    reason), DECLINED (the engine said it cannot answer this goal, and why). Waiting for a person: WAITING_APPROVAL
    (the plan) and NEEDS_REVIEW (the report failed its last review round and was handed off)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    DECLINED = "DECLINED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DECLINED)


class SubtaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


# --------------------------------------------------------------------------------------------- guardrails
#: Denied topics per policy at most, and the length of one (characters): a topic is a term or a short phrase.
MAX_DENIED_TOPICS = 32
DENIED_TOPIC_MAX_CHARS = 80
_PII_ORDER = {"allow": 0, "mask": 1, "block": 2}
_INJECTION_ORDER = {"flag": 0, "block": 1}
DenyTopic = Annotated[str, StringConstraints(min_length=2, max_length=DENIED_TOPIC_MAX_CHARS,
                                             pattern=r"^[^\x00-\x1f]+$")]


class GuardrailPolicy(Strict):
    """What the guards do with what they find (per crew, tightened per run; see :meth:`tightened`).

    - ``pii``: personal data (e-mail, SSN, card, IBAN, IP, phone, keys) in the goal, the inputs, tool output and the
      report: ``mask`` (default: replaced by ``[ENTITY]`` before it is prompted), ``block`` (a goal or
      input that holds any is rejected, ``InputRejected``; tool output and the report are masked), ``allow``.
    - ``injection``: a goal or input that looks like a prompt injection: ``block`` (default: the run is rejected,
      ``InputRejected`` naming the family, never the text) or ``flag`` (recorded as an event, the run goes on).
      Tool output is never obeyed either way: it is flagged, and fenced as data in every prompt.
    - ``disclaimer``: add :data:`DISCLAIMER` as the report's last line.
    - ``denied_topics``: terms or short phrases: a goal that names one is rejected; sentences of the report that name
      one are removed (event ``output_filtered``).
    """

    pii: Literal["mask", "block", "allow"] = "mask"
    injection: Literal["block", "flag"] = "block"
    disclaimer: bool = False
    denied_topics: list[DenyTopic] = Field(default_factory=list, max_length=MAX_DENIED_TOPICS)

    def tightened(self, other: GuardrailOverrides | None) -> GuardrailPolicy:
        """This policy (a crew's) with the fields ``other`` (a run's) sets: a run may only make it stricter (``pii``
        allow < mask < block, ``injection`` flag < block, a disclaimer added, denied topics added). Fields the run
        does not set keep the crew's value. Raises GuardrailsLoosenedError for a looser value or more than
        MAX_DENIED_TOPICS topics in all (a run never gets less than it asked for, silently)."""
        if other is None:
            return self
        if other.pii is not None and _PII_ORDER[other.pii] < _PII_ORDER[self.pii]:
            raise GuardrailsLoosenedError(f"guardrails.pii {other.pii!r} would loosen the crew's {self.pii!r}; a "
                                          "run may only tighten its crew's policy")
        if other.injection is not None and _INJECTION_ORDER[other.injection] < _INJECTION_ORDER[self.injection]:
            raise GuardrailsLoosenedError(f"guardrails.injection {other.injection!r} would loosen the crew's "
                                          f"{self.injection!r}; a run may only tighten its crew's policy")
        topics = list(dict.fromkeys([*self.denied_topics, *other.denied_topics]))
        if len(topics) > MAX_DENIED_TOPICS:
            raise GuardrailsLoosenedError(f"the crew's and the run's denied topics are {len(topics)} together, over "
                                          f"the limit of {MAX_DENIED_TOPICS}")
        return GuardrailPolicy(pii=other.pii or self.pii, injection=other.injection or self.injection,
                               disclaimer=self.disclaimer or bool(other.disclaimer), denied_topics=topics)


class GuardrailsLoosenedError(ValueError):
    """A run's guardrails would loosen its crew's policy (or hold too many topics). A client error: API 400
    ``invalid_guardrails``, CLI exit 2."""


class GuardrailOverrides(Strict):
    """A run's guardrails (``RunRequest.guardrails``): only the fields given apply, and only to tighten the crew's
    :class:`GuardrailPolicy` (see :meth:`GuardrailPolicy.tightened`)."""

    pii: Literal["mask", "block", "allow"] | None = None
    injection: Literal["block", "flag"] | None = None
    disclaimer: bool | None = None
    denied_topics: list[DenyTopic] = Field(default_factory=list, max_length=MAX_DENIED_TOPICS)


#: The disclaimer line a policy with ``disclaimer: true`` adds to the report.
DISCLAIMER = ("_This report was generated by AI agents from the data provided; check its figures before you rely "
              "on them._")


# --------------------------------------------------------------------------------------------- run request
#: Longest a hand-off may wait for a person (seconds): a Standard execution lasts at most one year (Step Functions
#: quotas page); stepcrew caps the wait at 30 days.
HANDOFF_TIMEOUT_MAX_S = 30 * 24 * 3600


def _score_precision(v: float) -> float:
    """Scores are kept to 6 decimals: finer is meaningless, and DynamoDB numbers stop at 1e-130 (5e-324 would be an
    error in a later write, not now)."""
    return round(float(v), 6)


class ReviewConfig(Strict):
    """Reflection loop settings: stop when ``overall >= threshold`` or after ``max_rounds`` review rounds.

    ``on_fail``: what a report below the threshold after the last round becomes: ``handoff`` (default: the run
    waits in NEEDS_REVIEW for a person, at most ``handoff_timeout_s`` seconds, then FAILED ``ReviewTimedOut``) or
    ``fail`` (FAILED ``ReviewFailed`` with the scores). Never SUCCEEDED."""

    threshold: Score = 0.8
    max_rounds: int = Field(default=2, ge=1, le=5, description="review rounds at most (each failing round but "
                                                                "the last is followed by one improvement)")
    on_fail: Literal["handoff", "fail"] = Field(default="handoff", description="a report that fails its last review "
                                                "round: hand off to a person (NEEDS_REVIEW) or fail the run")
    handoff_timeout_s: int = Field(default=86_400, ge=1, le=HANDOFF_TIMEOUT_MAX_S,
                                   description="seconds a hand-off waits for a person before the run fails "
                                               "(ReviewTimedOut); default 24 h")

    @field_validator("threshold")
    @classmethod
    def _threshold_precision(cls, v: float) -> float:
        return _score_precision(v)


#: Budget bounds: what a run and the store can hold (DynamoDB numbers: 38 digits, 1e-130 to 1e125), and beyond any
#: sensible run: a billion tokens, a million dollars; costs are counted to a millionth of a dollar.
MAX_BUDGET_TOKENS = 10**9
MAX_BUDGET_USD = 1_000_000.0
MIN_BUDGET_USD = 0.000001


#: Replans after a failed sub-task (``Budget.max_replans``): default 1, at most 3 (stepcrew's cap: every replan is
#: another planner call, and a run's plan versions stay few enough to show).
DEFAULT_MAX_REPLANS = 1
MAX_REPLANS = 3


class Budget(Strict):
    """Caps for one run. ``None`` means no cap. Exceeding a cap fails the run with ``BudgetExceededError``."""

    max_tokens: int | None = Field(default=None, ge=1, le=MAX_BUDGET_TOKENS,
                                   description="input + output tokens, all models")
    max_cost_usd: float | None = Field(default=None, ge=MIN_BUDGET_USD, le=MAX_BUDGET_USD,
                                       description="USD, from the price table")
    max_turns_per_subtask: int = Field(default=8, ge=1, le=50, description="model calls per sub-task")
    max_replans: int = Field(default=DEFAULT_MAX_REPLANS, ge=0, le=MAX_REPLANS,
                             description="times the planner may replan the remaining work after a sub-task "
                                         "failed (0: a failed sub-task fails the run)")


# --------------------------------------------------------------------------------------------- routing, ladder
Tier = Literal["fast", "smart"]
ProviderName = Annotated[str, StringConstraints(pattern=PROVIDER_PATTERN)]
#: Rungs of the degradation ladder, best first (see :mod:`stepcrew.resilience.ladder`): the full service (a
#: provider of the chain answered), a cached answer (exact, then semantic), the rule engine, a person (hand-off).
DegradationLevel = Literal["full", "cached", "rule_engine", "handoff"]
DEGRADATION_ORDER: tuple[str, ...] = ("full", "cached", "rule_engine", "handoff")
MAX_CHAIN_PROVIDERS = 4
#: Longest a cache entry may live (seconds): 30 days. Default 24 h.
MAX_CACHE_TTL_S = 30 * 86_400


class Routing(Strict):
    """How a run's model calls are routed and what may stand in when providers fail.

    ``chains``: per tier (``fast`` | ``smart``) the ordered providers tried after the ASL's retries of the one
    before are spent (or its breaker is open); a tier without a chain uses ``[run.provider]``. ``tier`` forces one
    tier on every role; ``role_tiers`` sets it per role name (``planner``, ``reviewer``, a worker's name);
    ``by_complexity`` lets a sub-task's complexity score move a worker's tier (:mod:`stepcrew.resilience.routing`).
    ``fallback_on_auth_error``: a rejected key moves to the next provider instead of failing the run.
    ``cache`` / ``semantic_cache``: use the response caches (tenant-scoped); ``semantic_threshold`` in [0, 1]
    (None: :data:`stepcrew.embeddings.DEFAULT_SEMANTIC_THRESHOLD`); ``cache_ttl_s``: seconds an entry this run
    writes lives (60 s - 30 days)."""

    chains: dict[Tier, list[ProviderName]] = Field(default_factory=dict)
    tier: Tier | None = None
    role_tiers: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")], Tier] = Field(
        default_factory=dict, max_length=16)
    by_complexity: bool = True
    fallback_on_auth_error: bool = False
    cache: bool = True
    semantic_cache: bool = True
    semantic_threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    cache_ttl_s: int = Field(default=86_400, ge=60, le=MAX_CACHE_TTL_S)

    @field_validator("chains")
    @classmethod
    def _chains(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for tier, chain in v.items():
            if not 1 <= len(chain) <= MAX_CHAIN_PROVIDERS:
                raise ValueError(f"chain of tier {tier!r} must name 1-{MAX_CHAIN_PROVIDERS} providers")
            if len(set(chain)) != len(chain):
                raise ValueError(f"chain of tier {tier!r} names a provider twice")
            if "rule" in chain:
                raise ValueError("'rule' is the rule engine, the ladder's own rung after every chain: "
                                 "it is not a chain provider")
        return v

    def chain(self, tier: str, provider: str) -> list[str]:
        """The providers tried for ``tier``: its chain, else ``[provider]``."""
        return list(self.chains.get(tier) or [provider])


class RunRequest(Strict):
    """What a user asks for: ``stepcrew run GOAL`` or ``POST /runs``.

    ``data`` is a dataset URI (``file:///abs/path.csv`` locally, ``s3://bucket/key.parquet`` on AWS) or None.
    ``provider`` is a provider name from :mod:`stepcrew.llm.registry` (``rule`` is the offline rule engine).
    """

    goal: str = Field(min_length=1, max_length=GOAL_MAX_CHARS)
    crew: str = Field(default="default", min_length=1, max_length=64, description="crew name")
    data: str | None = Field(default=None, max_length=2048)
    provider: str = Field(default="rule", pattern=PROVIDER_PATTERN)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    budget: Budget = Field(default_factory=Budget)
    inputs: dict[InputKey, InputValue] = Field(default_factory=dict, max_length=32,
                                               description="named inputs for the crew: keys 1-64 of [A-Za-z0-9_.-], "
                                                           "values up to 2,000 characters")
    tenant: Tenant = DEFAULT_TENANT
    require_approval: bool = Field(default=False, description="pause after planning until approved "
                                                              "(POST /runs/{id}/approval)")
    guardrails: GuardrailOverrides | None = Field(default=None, description="tightens the crew's guardrail "
                                                  "policy (a run cannot loosen it)")
    routing: Routing | None = Field(default=None, description="tiers, fallback chains and caches (default: the "
                                                               "stage's, see STEPCREW_FALLBACK_CHAIN)")
    memory: Literal["on", "off"] = Field(default="on", description="off: the run recalls nothing from the "
                                         "tenant's memory and leaves nothing in it (no episode, no facts)")
    allow_side_effects: bool = Field(default=False, description="operations tools (export_results, notify) act; "
                                     "without it they answer a dry run (what they would do) and change nothing")
    user: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,255}$")] | None = Field(
        default=None, description="the user within the tenant (memory: this user's facts are recalled and "
                                  "written too); '<tenant>:<user>' of another tenant is refused")

    @field_validator("goal")
    @classmethod
    def _goal_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("goal must not be empty")
        return v

    @field_validator("data")
    @classmethod
    def _data_uri(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(file|s3)://", v):
            raise ValueError("data must be a file:// or s3:// URI")
        return v


# --------------------------------------------------------------------------------------------- crew
class AgentRole(Strict):
    """One role of a crew, as data (the default crew is ``stepcrew/crew/default.yaml``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    role: str = Field(min_length=1, max_length=200)
    goal: str = Field(min_length=1, max_length=2000)
    backstory: str = Field(default="", max_length=4000)
    expertise: list[str] = Field(default_factory=list, max_length=20)
    output_rules: list[str] = Field(default_factory=list, max_length=20)
    tools: list[ToolName] = Field(default_factory=list, max_length=16)
    model_tier: Literal["fast", "smart"] = "smart"
    context_tokens: int | None = Field(default=None, ge=500, le=1_000_000, description="short-term memory: the "
                                       "prompt-token budget of each of this role's model calls (None: stepcrew's "
                                       "default, stepcrew.memory.window.DEFAULT_CONTEXT_TOKENS)")


#: Hard cap on a manager's delegations per run (stepcrew's own bound: 4 per sub-task of the largest plan, 8).
MAX_DELEGATIONS_CAP = 4 * MAX_SUBTASKS


def default_max_delegations(subtasks: int) -> int:
    """Delegations a manager may issue when the crew sets no ``max_delegations``: twice the plan's sub-tasks, at most
    :data:`MAX_DELEGATIONS_CAP`."""
    return min(2 * subtasks, MAX_DELEGATIONS_CAP)


class Crew(Strict):
    """A crew: one planner, >= 1 worker roles, one reviewer, one synthesizer. Tool names are checked against
    the tool registry by :func:`stepcrew.crew.validate_crew` (the model alone cannot know the registry)."""

    name: str = Field(pattern=CREW_NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    planner: AgentRole
    workers: list[AgentRole] = Field(min_length=1, max_length=8)
    reviewer: AgentRole
    synthesizer: AgentRole
    guardrails: GuardrailPolicy = Field(default_factory=GuardrailPolicy,
                                        description="the crew's guardrail policy; runs may only tighten it")
    process: Literal["parallel", "sequential", "hierarchical", "hybrid"] = Field(
        default="parallel", description="parallel: the plan's DAG in waves, independent sub-tasks side by side; "
                                        "sequential: the sub-tasks one at a time in plan order, each seeing every "
                                        "earlier output; hierarchical / hybrid: a manager delegates (needs manager)")
    manager: AgentRole | None = Field(default=None, description="the manager role of a hierarchical or hybrid crew")
    max_delegations: int | None = Field(default=None, ge=1, le=MAX_DELEGATIONS_CAP, description="hierarchical / "
                                        "hybrid: delegations the manager may issue per run (None: twice the plan's "
                                        "sub-tasks); past it the run fails with ManagerLimitExceeded")
    report_from: str | None = Field(default=None, max_length=40, description="a worker's name: the output of its "
                                    "last sub-task in plan order is the report's first draft (no synthesizer draft "
                                    "call; the reviewer reviews it, the synthesizer writes every revision). None: "
                                    "the synthesizer drafts the report from every sub-task's output")

    @model_validator(mode="after")
    def _unique_worker_names(self) -> Crew:
        names = [w.name for w in self.workers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate worker names: {', '.join(dupes)}")
        if self.process in ("hierarchical", "hybrid") and self.manager is None:
            raise ValueError(f"process {self.process!r} needs a manager role")
        if self.process in ("parallel", "sequential") and self.manager is not None:
            raise ValueError(f"process {self.process!r} has no manager: remove it, or use process hierarchical")
        if self.report_from is not None and self.report_from not in names:
            raise ValueError(f"report_from {self.report_from!r} is not a worker; workers: {', '.join(names)}")
        if self.manager is not None and self.manager.name in names:
            raise ValueError(f"the manager {self.manager.name!r} is also a worker: give it its own name")
        return self

    def worker(self, name: str) -> AgentRole:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(name)


# --------------------------------------------------------------------------------------------- plan
class SubTask(Strict):
    """One node of the plan DAG."""

    id: SubtaskId
    title: str = Field(min_length=1, max_length=120)
    instructions: str = Field(min_length=1, max_length=4000)
    depends_on: list[SubtaskId] = Field(default_factory=list, max_length=MAX_SUBTASKS)
    expected_output: str = Field(default="", max_length=1000)
    tools: list[ToolName] = Field(default_factory=list, max_length=16, description="allowed tools")
    role: str = Field(default="", max_length=40, description="worker role name; empty = first worker")


class PlanValidationError(ValueError):
    """A plan broke a rule (ids, dependencies, cycle, size, tools, roles). The message goes back to the planner."""


class Plan(Strict):
    """A DAG of 1-8 sub-tasks. Structural rules are checked by :meth:`validate_rules`, which raises
    :class:`PlanValidationError` (not at parse time, so the planner can be told exactly what was wrong)."""

    subtasks: list[SubTask] = Field(min_length=1, max_length=MAX_SUBTASKS)
    rationale: str = Field(default="", max_length=2000)

    def validate_rules(self, known_tools: set[str], known_roles: set[str] | None = None) -> None:
        ids = [s.id for s in self.subtasks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise PlanValidationError(f"duplicate sub-task ids: {', '.join(dupes)}")
        idset = set(ids)
        for s in self.subtasks:
            unknown = [d for d in s.depends_on if d not in idset]
            if unknown:
                raise PlanValidationError(f"sub-task {s.id!r} depends on unknown sub-task(s): {', '.join(unknown)}")
            if s.id in s.depends_on:
                raise PlanValidationError(f"sub-task {s.id!r} depends on itself")
            bad_tools = [t for t in s.tools if t not in known_tools]
            if bad_tools:
                raise PlanValidationError(
                    f"sub-task {s.id!r} names unknown tool(s): {', '.join(bad_tools)}; "
                    f"known tools: {', '.join(sorted(known_tools))}")
            if known_roles is not None and s.role and s.role not in known_roles:
                raise PlanValidationError(
                    f"sub-task {s.id!r} names unknown role {s.role!r}; known roles: {', '.join(sorted(known_roles))}")
        self.waves()  # raises on a cycle

    def waves(self) -> list[list[str]]:
        """Dependency waves (Kahn's algorithm): wave k holds the sub-tasks whose dependencies all lie in waves
        < k; sub-tasks within a wave are independent and run in parallel. Raises PlanValidationError on a cycle."""
        remaining = {s.id: set(s.depends_on) for s in self.subtasks}
        order = [s.id for s in self.subtasks]
        done: set[str] = set()
        waves: list[list[str]] = []
        while remaining:
            wave = [i for i in order if i in remaining and remaining[i] <= done]
            if not wave:
                raise PlanValidationError(f"dependency cycle among sub-tasks: {', '.join(sorted(remaining))}")
            waves.append(wave)
            done.update(wave)
            for i in wave:
                del remaining[i]
        return waves

    def sequential(self) -> Plan:
        """The plan as a chain (a crew with ``process: sequential``): its sub-tasks in dependency order (waves
        flattened, plan order within a wave), each depending on every earlier one, so they run one at a time and
        each sees every earlier output. Raises PlanValidationError on a cycle."""
        order = [i for wave in self.waves() for i in wave]
        by_id = {s.id: s for s in self.subtasks}
        return self.model_copy(update={"subtasks": [
            by_id[i].model_copy(update={"depends_on": order[:k]}) for k, i in enumerate(order)]})

    def get(self, subtask_id: str) -> SubTask:
        for s in self.subtasks:
            if s.id == subtask_id:
                return s
        raise KeyError(subtask_id)


#: ``-v<n>`` at the end of a sub-task id: the version suffix a replanned sub-task gets when its id was used before.
_VERSION_SUFFIX = re.compile(r"-v[0-9]+$")


def base_subtask_id(subtask_id: str) -> str:
    """The sub-task id without a plan-version suffix (``query-v2`` -> ``query``; ``query`` unchanged)."""
    return _VERSION_SUFFIX.sub("", subtask_id)


def versioned_subtask_id(subtask_id: str, version: int) -> str:
    """``<base id>-v<version>``, the base cut so that the id stays a :data:`SubtaskId` (40 characters at most):
    the id a replanned sub-task gets when plan ``version`` reuses an id an earlier version had (its conversation
    and record are kept apart). Deterministic."""
    suffix = f"-v{version}"
    return base_subtask_id(subtask_id)[: 40 - len(suffix)].rstrip("-_") + suffix


class PlanVersionItem(Strict):
    """A sub-task a plan version added: id, title, dependencies; ``status`` and ``error`` (its error code) are what
    it had when a later version replaced or kept it (None while the version is the current one)."""

    id: SubtaskId
    title: str = Field(min_length=1, max_length=120)
    depends_on: list[SubtaskId] = Field(default_factory=list, max_length=MAX_SUBTASKS)
    status: SubtaskStatus | None = None
    error: Annotated[str, StringConstraints(max_length=128)] | None = None


class PlanVersion(Strict):
    """One version of a run's plan (``RUN#<id> / PLANVER#<version:03d>``): v1 is the plan the planner made first;
    each later one replanned the remaining work after a sub-task failed (``Budget.max_replans``).

    ``reason``: why this version exists (``initial plan``, or the failure: ``sub-task <id> failed: <code>: ...``);
    ``failure``: that failure (None for v1); ``subtasks``: the sub-tasks this version added; ``kept``: the done
    (SUCCEEDED) sub-tasks of earlier versions it keeps, outputs and all; ``replaced``: the sub-tasks of the version
    before it that it dropped (the failed one and those not run); ``waves``: the dependency waves it ran (its own
    sub-tasks only); ``wave_offset``: the run's waves before it (its child executions are numbered after them, so
    names never collide); ``superseded_at``: when a later version replaced it."""

    run_id: RunId
    version: int = Field(ge=1, le=MAX_REPLANS + 1)
    reason: Annotated[str, _clip(2000)]
    failure: RunError | None = None
    subtasks: list[PlanVersionItem] = Field(min_length=1, max_length=MAX_SUBTASKS)
    kept: list[SubtaskId] = Field(default_factory=list, max_length=MAX_SUBTASKS)
    replaced: list[SubtaskId] = Field(default_factory=list, max_length=MAX_SUBTASKS)
    waves: list[list[SubtaskId]] = Field(default_factory=list)
    wave_offset: int = Field(default=0, ge=0)
    rationale: Annotated[str, _clip(2000)] = ""
    created_at: datetime = Field(default_factory=utcnow)
    superseded_at: datetime | None = None


# --------------------------------------------------------------------------------------------- tools and turns
class ToolCall(Strict):
    """A model's request to run one tool. ``arguments`` are validated by the tool's own pydantic model."""

    call_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)


def _clip(limit: int):
    def clip(v: Any) -> Any:
        return v[: limit - 1] + "…" if isinstance(v, str) and len(v) > limit else v
    return BeforeValidator(clip)


class ToolError(Strict):
    """A typed error the model can read: ``type`` is e.g. InvalidArguments, QueryError, LimitExceeded,
    UnknownTool, ToolFailed. Never a traceback. ``message`` is clipped to 2,000 characters."""

    type: str = Field(max_length=64)
    message: Annotated[str, _clip(2000)]


class ToolScreen(Strict):
    """What the tool-output guard found in one tool result: ``injection`` = the families of text that looks like
    instructions (the result is then datamarked in prompts as well as fenced), ``masked`` = PII entity -> how many
    values were masked."""

    injection: list[str] = Field(default_factory=list, max_length=8)
    masked: dict[str, int] = Field(default_factory=dict, max_length=16)


class ToolResult(Strict):
    """Outcome of one tool call. Exactly one of ``content`` (ok) or ``error`` (not ok) is set.
    ``content`` is JSON-serialisable and at most ``TOOL_OUTPUT_MAX_BYTES`` once serialised."""

    call_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    ok: bool
    content: Any = None
    error: ToolError | None = None
    truncated: bool = False
    cached: bool = Field(default=False, description="served from the tool-result cache (stepcrew.tools.cache)")
    screened: ToolScreen | None = Field(default=None, description="what the tool-output guard found and did "
                                        "(None: not screened yet)")

    @model_validator(mode="after")
    def _ok_xor_error(self) -> ToolResult:
        if self.ok and self.error is not None:
            raise ValueError("an ok tool result carries no error")
        if not self.ok and self.error is None:
            raise ValueError("a failed tool result needs an error")
        return self


class ToolContext(Strict):
    """What a tool may know of its run. The dataset is chosen by the run, never by the model; ``tenant`` (the run's,
    from the state machine) is what a data tool checks the dataset against (defence in depth after the API)."""

    run_id: RunId
    subtask_id: SubtaskId
    data_uri: str | None = None
    tenant: Tenant | None = None
    allow_side_effects: bool = Field(default=False, description="the run allows operations tools to act (else they "
                                                                "answer a dry run: what they would do)")


class ToolInvocation(Strict):
    """Event of every tool Lambda (one item of the agent loop's tool Map)."""

    context: ToolContext
    call: ToolCall


class Message(Strict):
    """One turn of a conversation, provider-neutral. ``tool`` messages carry ``tool_results``;
    ``assistant`` messages may carry ``tool_calls``."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------- usage, review
class ModelUsage(Strict):
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)


class Usage(Strict):
    """Tokens and cost of a run: totals plus a breakdown per model id. ``cost_usd`` in US dollars.
    ``input_tokens`` counts every prompt token, provider prompt-cache reads and writes included;
    ``cache_read_tokens`` / ``cache_write_tokens`` are those parts (:class:`stepcrew.llm.base.ResponseUsage`)."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0, description="prompt tokens read from a provider's prompt cache")
    cache_write_tokens: int = Field(default=0, ge=0, description="prompt tokens written to a provider's prompt "
                                                                 "cache")
    by_model: dict[str, ModelUsage] = Field(default_factory=dict)
    cache_hits: int = Field(default=0, ge=0, description="model calls and tool calls served from a cache")
    saved_tokens: int = Field(default=0, ge=0, description="tokens the cached answers cost when first paid")
    saved_cost_usd: float = Field(default=0.0, ge=0, description="USD the cached answers cost when first paid")

    def add(self, model: str, input_tokens: int, output_tokens: int, cost_usd: float, *, cache_read_tokens: int = 0,
            cache_write_tokens: int = 0) -> Usage:
        by_model = dict(self.by_model)
        cur = by_model.get(model, ModelUsage())
        by_model[model] = ModelUsage(input_tokens=cur.input_tokens + input_tokens,
                                     output_tokens=cur.output_tokens + output_tokens,
                                     cost_usd=cur.cost_usd + cost_usd,
                                     cache_read_tokens=cur.cache_read_tokens + cache_read_tokens,
                                     cache_write_tokens=cur.cache_write_tokens + cache_write_tokens)
        return Usage(input_tokens=self.input_tokens + input_tokens, output_tokens=self.output_tokens + output_tokens,
                     cost_usd=self.cost_usd + cost_usd, cache_read_tokens=self.cache_read_tokens + cache_read_tokens,
                     cache_write_tokens=self.cache_write_tokens + cache_write_tokens, by_model=by_model,
                     cache_hits=self.cache_hits, saved_tokens=self.saved_tokens, saved_cost_usd=self.saved_cost_usd)


class Decline(Strict):
    """The engine cannot answer the goal: ``code`` (forecast, cause, unknown_column, unknown_value, no_rule,
    no_dataset, unsupported) and a one-line ``reason`` naming what it could not do (the run ends DECLINED)."""

    code: Literal["forecast", "cause", "unknown_column", "unknown_value", "no_rule", "no_dataset", "unsupported"]
    reason: Annotated[str, _clip(2000)] = Field(min_length=1)


class CriterionScores(Strict):
    accuracy: Score
    completeness: Score
    relevance: Score


class Review(Strict):
    """One review round of the final report. ``overall`` in [0, 1] (the mean of the scores); ``passed`` =
    overall >= threshold. A round whose reviewer gave no valid scores (after the state machine's retries) has
    ``scores`` and ``overall`` None, ``passed`` false and ``error`` saying why: never a silent 0."""

    round: int = Field(ge=1)
    scores: CriterionScores | None = None
    overall: Score | None = None
    passed: bool
    feedback: str = Field(default="", max_length=4000)
    error: Annotated[str, _clip(2000)] | None = None


class ReviewDecision(Strict):
    """A person's answer to a hand-off (``POST /runs/{id}/review``, ``stepcrew runs review``)."""

    accept: bool
    comment: str = Field(default="", max_length=2000)
    at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------------------------- records
class RunError(Strict):
    """Why a run or sub-task failed: ``code`` is the error type (e.g. PlanInvalidError, ModelAuthError)."""

    code: Annotated[str, _clip(128)]
    message: Annotated[str, _clip(4000)]


class Run(Strict):
    """The run record (``RUN#<id> / META``)."""

    run_id: RunId
    tenant: Tenant = DEFAULT_TENANT
    goal: str
    crew: Crew
    data: str | None = None
    provider: str = "rule"
    engine: str = Field(default="", description="what produced the output, e.g. 'rule-engine' or "
                                                 "'anthropic:claude-sonnet-4-5'")
    review_config: ReviewConfig = Field(default_factory=ReviewConfig)
    budget: Budget = Field(default_factory=Budget)
    inputs: dict[str, str] = Field(default_factory=dict)
    guardrails: GuardrailPolicy = Field(default_factory=GuardrailPolicy,
                                        description="the effective policy: the crew's, tightened by the request's")
    require_approval: bool = False
    approval_token: str | None = Field(default=None, description="Step Functions task token while waiting for a "
                                                                  "person (approval or review hand-off)")
    review_deadline: datetime | None = Field(default=None, description="NEEDS_REVIEW: when the hand-off expires")
    review_decision: ReviewDecision | None = None
    decline: Decline | None = None
    status: RunStatus = RunStatus.QUEUED
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: RunError | None = None
    usage: Usage = Field(default_factory=Usage)
    execution_arn: str | None = None
    routing: Routing = Field(default_factory=Routing)
    degradation_level: DegradationLevel = Field(default="full", description="the lowest rung any role call of "
                                                "the run reached (full > cached > rule_engine > handoff)")
    engine_override: Literal["rule"] | None = Field(default=None, description="'rule': the planner fell back to "
                                                    "the rule engine, which plays every later role of the run")
    handoff_reason: str | None = Field(default=None, max_length=500, description="why the run must go to a "
                                       "person whatever its review says (e.g. 'no provider available')")
    budget_exhausted: bool = Field(default=False, description="a budget ran out after the report existed: the "
                                   "run ends with the best report it has, handed to a person")
    memory: Literal["on", "off"] = "on"
    allow_side_effects: bool = Field(default=False, description="operations tools act (else dry runs only)")
    user: str | None = Field(default=None, max_length=128, description="the user within the tenant (memory)")
    recalled: RecallSummary | None = Field(default=None, description="what the planner recalled from the "
                                           "tenant's memory (ids and scores; the texts are in conversation "
                                           "'memory')")


class RecallSummary(Strict):
    """What a run recalled at planning, by id: facts, and episodes as ``{memory_id, run_id, similarity, status}``."""

    facts: list[str] = Field(default_factory=list, max_length=64)
    episodes: list[dict[str, Any]] = Field(default_factory=list, max_length=8)
    facts_tokens: int = 0
    facts_left_out: int = 0


class SubtaskRecord(Strict):
    """A sub-task's state (``RUN#<id> / TASK#<sub>``). ``output`` is the worker's final answer (by reference
    from state: Step Functions only ever sees ``summary``)."""

    run_id: RunId
    subtask_id: SubtaskId
    status: SubtaskStatus = SubtaskStatus.PENDING
    turns: int = Field(default=0, ge=0)
    tool_calls: int = Field(default=0, ge=0)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: str | None = None
    error: RunError | None = None


EventKind = Literal[
    "run_queued", "run_started", "plan_ready", "plan_invalid", "subtask_started", "model_turn", "tool_call",
    "tool_result", "subtask_finished", "subtask_failed", "synthesized", "review", "run_succeeded", "run_failed",
    "run_declined", "needs_review", "review_decided", "approval_requested",
    # guardrails (stepcrew.domain.screening): entity names, families and counts only
    "input_flagged", "input_masked", "input_rejected_topic", "tool_output_masked", "tool_output_flagged",
    "output_screened",
    # resilience (stepcrew.resilience): rungs, providers and counts only
    "degraded", "cache_hit", "loop_detected", "budget_exhausted",
    # memory (stepcrew.memory): ids, counts and scores only
    "memory_recalled", "memory_recorded",
    # durability (stepcrew.local.resume): a run continued after its process ended
    "run_resumed",
    # the manager of a hierarchical / hybrid crew (stepcrew.domain.manager): ids, workers, verdicts and counts only
    "delegated", "delegation_assessed", "delegation_rejected", "manager_finished", "manager_stopped",
    # replanning after a failed sub-task (stepcrew.domain.replan): versions, ids and error codes only
    "replanned", "replan_exhausted",
]


#: Longest instructions (or feedback) a manager may give one delegation (characters; stepcrew's bound, well inside a
#: prompt and a stored item).
DELEGATION_INSTRUCTIONS_MAX_CHARS = 2000
DelegationVerdict = Literal["accepted", "sent_back", "failed", "rejected"]


class Delegation(Strict):
    """One delegation of a manager (hierarchical / hybrid crews), as recorded in the store: ``seq`` (1-based, unique
    in the run; the child execution's name carries it), the manager ``round`` that issued it, the ``worker`` and
    ``subtask_id``, ``kind`` (``delegate`` or ``send_back`` with the manager's ``feedback``), the instructions
    (at most DELEGATION_INSTRUCTIONS_MAX_CHARS; longer ones are refused) and their digest (sha256, 16 hex), and once the manager assessed the result its ``verdict``
    (``accepted``, ``sent_back``, ``failed``) or, for a delegation that never ran, ``rejected`` with ``error`` (why
    validation refused it; the manager was asked again)."""

    run_id: RunId
    seq: int = Field(ge=1, le=10_000)
    round: int = Field(ge=0, le=10_000)
    worker: str = Field(default="", max_length=40)
    subtask_id: str = Field(max_length=64)
    kind: Literal["delegate", "send_back"] = "delegate"
    instructions: Annotated[str, _clip(DELEGATION_INSTRUCTIONS_MAX_CHARS)] = ""
    instructions_digest: str = Field(default="", max_length=64)
    tools: list[str] = Field(default_factory=list, max_length=16)
    feedback: Annotated[str, _clip(DELEGATION_INSTRUCTIONS_MAX_CHARS)] = ""
    verdict: DelegationVerdict | None = None
    error: Annotated[str, _clip(500)] | None = None
    at: datetime = Field(default_factory=utcnow)


class ProgressEvent(Strict):
    """A progress event (``RUN#<id> / EVENT#<ts>#<n>``). ``data`` holds ids, names and numbers only: never
    prompts, outputs or PII (they would end up in logs and API responses)."""

    run_id: RunId
    kind: EventKind
    at: datetime = Field(default_factory=utcnow)
    subtask_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------- the result view
class PlanView(Strict):
    class Item(Strict):
        id: str
        title: str
        depends_on: list[str]

    subtasks: list[Item]


class SubtaskView(Strict):
    id: str
    status: SubtaskStatus
    tool_calls: int
    started_at: datetime | None
    finished_at: datetime | None


class ReviewRoundView(Strict):
    round: int
    overall: Score | None
    passed: bool
    error: str | None = None


class ReviewView(Strict):
    """Review rounds; ``threshold`` and ``on_fail`` of the run; ``decision``: a person's answer to a hand-off."""

    rounds: list[ReviewRoundView]
    threshold: Score = 0.8
    on_fail: Literal["handoff", "fail"] = "handoff"
    deadline: datetime | None = None
    decision: ReviewDecision | None = None


class UsageView(Strict):
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cache_read_tokens: int = Field(default=0, description="part of input_tokens read from a provider's prompt cache")
    cache_write_tokens: int = Field(default=0, description="part of input_tokens written to a provider's prompt "
                                                           "cache")
    cache_hits: int = 0
    saved_tokens: int = 0
    saved_cost_usd: float = 0.0


class RunResult(Strict):
    """What ``stepcrew run --json`` and ``runs show --json`` print: one JSON object."""

    run_id: str
    status: RunStatus
    engine: str
    plan: PlanView
    subtasks: list[SubtaskView]
    review: ReviewView
    final_output: str | None
    usage: UsageView
    error: RunError | None = None
    decline: Decline | None = None
    degradation_level: DegradationLevel = "full"
    budget_exhausted: bool = False
    handoff_reason: str | None = None
    memory: MemoryView | None = Field(default=None, description="what the run recalled from its tenant's memory")


class RunShown(RunResult):
    """What ``stepcrew runs show`` (and ``stepcrew run``) print: the result view plus the plan's versions (v1, then
    one per replan after a failed sub-task, :mod:`stepcrew.domain.replan`)."""

    plan_versions: list[PlanVersion] = Field(default_factory=list)

    @classmethod
    def of(cls, result: RunResult, versions: list[PlanVersion]) -> RunShown:
        return cls.model_validate({**result.model_dump(), "plan_versions": versions})


class MemoryView(Strict):
    """The memory a run's plan was made with: remembered facts (subject and text) and similar past runs."""

    class Fact(Strict):
        memory_id: str
        text: str

    class Episode(Strict):
        memory_id: str
        run_id: str
        similarity: float
        status: str
        review_overall: float | None = None
        goal: str = ""

    facts: list[Fact] = Field(default_factory=list)
    episodes: list[Episode] = Field(default_factory=list)
    facts_left_out: int = 0
