"""Shapes of stepcrew's memory (:mod:`stepcrew.memory`): long-term facts, episodes, what a run recalled.

Limits and their sources:

- ``FACT_MAX_CHARS`` (500 characters) and ``SUBJECT_MAX_CHARS`` (120): stepcrew's caps. A fact is one statement
  ("report currency EUR"); a longer text is a document, not a memory. An item is far below DynamoDB's 400 KB item
  quota (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html), vector included.
- ``MAX_FACTS_PER_TENANT`` (1,000) and ``MAX_EPISODES_PER_TENANT`` (10,000): stepcrew's caps, enforced at write by
  eviction (:mod:`stepcrew.memory.service` documents the rule).
- ``MAX_MEMORY_TTL_S`` (10 years): a TTL must be a finite number of seconds, 60 s to 10 years.

User ids: a fact may belong to one user within its tenant. A user id is ``<name>`` (taken within the caller's
tenant) or ``<tenant>:<name>`` (qualified); a qualified id naming another tenant is a client error
(:class:`UserOutsideTenantError`, API 400 ``user_outside_tenant``, CLI exit 2): tenants never meet.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from stepcrew.models import Score, Strict, Tenant, utcnow

FACT_MAX_CHARS = 500
SUBJECT_MAX_CHARS = 120
MAX_FACTS_PER_TENANT = 1_000
MAX_EPISODES_PER_TENANT = 10_000
MIN_MEMORY_TTL_S = 60
MAX_MEMORY_TTL_S = 10 * 365 * 86_400
#: Facts one write request may carry (``POST /memory``, a run's end).
MAX_FACTS_PER_WRITE = 25

USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"
UserId = Annotated[str, StringConstraints(pattern=USER_PATTERN)]
#: A user id as a client may give it: ``<name>`` or ``<tenant>:<name>`` (see :func:`resolve_user`).
QualifiedUserId = Annotated[str, StringConstraints(
    pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}:)?[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")]
#: ``f-<20 hex>`` for a fact, ``e-<20 digits UTC time>-<run id>`` for an episode (sorts by time).
MEMORY_ID_PATTERN = r"^(?:f-[0-9a-f]{20}|e-[0-9]{20}-[A-Za-z0-9][A-Za-z0-9_-]{0,38})$"
MemoryId = Annotated[str, StringConstraints(pattern=MEMORY_ID_PATTERN)]
MemoryKind = Literal["fact", "preference"]
Origin = Literal["explicit", "tool", "extracted"]
MemoryMode = Literal["on", "off"]

_QUALIFIED = re.compile(r"^(?P<tenant>[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}):(?P<user>.+)$")


class UserOutsideTenantError(ValueError):
    """A user id qualified with another tenant (``other:bob``). A client error: 400 / exit 2."""


class MemoryRejectedError(ValueError):
    """A memory write the guard refused (it looks like a prompt injection: a remembered fact is put into later
    prompts) or that is empty once masked. A client error: 400 ``memory_rejected`` / exit 2; nothing written."""


def resolve_user(tenant: str, user: str | None) -> str | None:
    """The user id within ``tenant``: ``bob`` and ``<tenant>:bob`` give ``bob``; ``other:bob`` raises
    UserOutsideTenantError; None stays None (tenant-wide). Raises ValueError for an id outside
    :data:`USER_PATTERN`."""
    if user is None:
        return None
    m = _QUALIFIED.fullmatch(user)
    if m:
        if m.group("tenant") != tenant:
            raise UserOutsideTenantError(f"user {user!r} belongs to tenant {m.group('tenant')!r}, not to {tenant!r}")
        user = m.group("user")
    if not re.fullmatch(USER_PATTERN[1:-1], user):
        raise ValueError(f"user id {user!r} must match {USER_PATTERN}")
    return user


class FactIn(Strict):
    """One fact or preference to remember (``stepcrew memory add``, ``POST /memory``, the ``remember`` tool, a run's
    end). ``subject``: what it is about ("report currency", "column rev"); a second fact with the same subject (same
    user) *replaces* the first. Without a subject, one is derived from the text (:func:`stepcrew.memory.dedup
    .subject_of`). ``ttl_s``: seconds it lives (60 s - 10 years; None: until deleted or evicted)."""

    text: str = Field(min_length=1, max_length=FACT_MAX_CHARS)
    subject: str | None = Field(default=None, min_length=1, max_length=SUBJECT_MAX_CHARS)
    kind: MemoryKind = "fact"
    user: QualifiedUserId | None = None
    confidence: Score = 1.0
    ttl_s: float | None = Field(default=None, description="seconds; finite, 60 s to 10 years")

    @field_validator("text", "subject")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.strip():
            raise ValueError("must not be empty")
        if any((ord(ch) < 32 and ch != "\t") or 0x7f <= ord(ch) < 0xa0 or ch in "\u2028\u2029" for ch in v):
            raise ValueError("must be one line of text (no line breaks or control characters)")
        return v

    @field_validator("ttl_s")
    @classmethod
    def _ttl(cls, v: float | None) -> float | None:
        if v is None:
            return v
        if not math.isfinite(v):
            raise ValueError("ttl_s must be a finite number of seconds")
        if not MIN_MEMORY_TTL_S <= v <= MAX_MEMORY_TTL_S:
            raise ValueError(f"ttl_s must be {MIN_MEMORY_TTL_S} to {MAX_MEMORY_TTL_S} seconds, got {v:g}")
        return v


class MemoryItem(Strict):
    """A stored long-term fact (``MEM#<tenant> / FACT#<id>``). ``source_run``: the run that taught it (None: added by
    a person); ``expires_at``: None = no TTL."""

    memory_id: MemoryId
    tenant: Tenant
    user: UserId | None = None
    kind: MemoryKind = "fact"
    subject: str
    text: str
    origin: Origin = "explicit"
    confidence: Score = 1.0
    source_run: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None


class PlanShape(Strict):
    """The plan of an episode, compact: sub-task ids with their role, tools and dependencies."""

    class Step(Strict):
        id: str
        title: str = ""
        role: str = ""
        tools: list[str] = Field(default_factory=list)
        depends_on: list[str] = Field(default_factory=list)

    steps: list[Step] = Field(default_factory=list)


class Episode(Strict):
    """A finished run as the tenant's memory keeps it (``MEM#<tenant> / EPISODE#<id>``): its goal (as screened), the
    dataset's fingerprint (file name and column names/types, hashed), the plan's shape, the tools used, the outcome
    (terminal status and error or decline code), the last review round's scores and feedback (one line), cost."""

    memory_id: MemoryId
    tenant: Tenant
    run_id: str
    user: UserId | None = None
    goal: str
    dataset: str | None = Field(default=None, description="dataset file name")
    dataset_fingerprint: str | None = None
    plan: PlanShape = Field(default_factory=PlanShape)
    tools_used: list[str] = Field(default_factory=list)
    status: str
    error_code: str | None = None
    reason: str | None = Field(default=None, max_length=500, description="why it failed, declined or was sent back")
    review_overall: Score | None = None
    review_passed: bool | None = None
    feedback: str | None = Field(default=None, max_length=500)
    cost_usd: float = Field(default=0.0, ge=0)
    engine: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class RecalledFact(Strict):
    memory_id: str
    subject: str
    text: str
    kind: MemoryKind = "fact"
    similarity: float | None = None


class RecalledEpisode(Strict):
    memory_id: str
    run_id: str
    similarity: float
    goal: str
    status: str
    plan: list[str] = Field(default_factory=list, description="'id (role: tools) <- deps' per sub-task")
    review_overall: float | None = None
    reason: str | None = None


class MemoryContext(Strict):
    """What a run recalled at planning (conversation ``memory`` of the run; the planner's and workers' prompts)."""

    facts: list[RecalledFact] = Field(default_factory=list)
    episodes: list[RecalledEpisode] = Field(default_factory=list)
    facts_tokens: int = Field(default=0, ge=0, description="estimated prompt tokens of the facts block")
    facts_budget_tokens: int = Field(default=0, ge=0)
    facts_left_out: int = Field(default=0, ge=0, description="relevant facts left out by the token budget")
    index: str = ""

    @property
    def empty(self) -> bool:
        return not self.facts and not self.episodes


class MemoryList(Strict):
    """``GET /memory`` / ``stepcrew memory list --json``."""

    facts: list[MemoryItem] = Field(default_factory=list)
    episodes: list[Episode] = Field(default_factory=list)
    next_cursor: str | None = None


class MemoryWriteResult(Strict):
    """Ids written: ``created`` (new items), ``updated`` (same subject: replaced), ``evicted`` (removed by the
    cap), ``masked``: PII entity -> how many values were masked before anything was stored."""

    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    evicted: list[str] = Field(default_factory=list)
    masked: dict[str, int] = Field(default_factory=dict)


class RecordRunResult(Strict):
    run_id: str
    episode: str | None = None
    facts: MemoryWriteResult = Field(default_factory=MemoryWriteResult)
    skipped: str | None = Field(default=None, description="why nothing was recorded (memory off, not terminal)")

