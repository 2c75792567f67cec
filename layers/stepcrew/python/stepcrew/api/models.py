"""Request and response bodies of the HTTP API (their JSON Schemas are in ``docs/openapi.json``).

The run models themselves (:class:`~stepcrew.models.RunRequest`, :class:`~stepcrew.models.RunResult`,
:class:`~stepcrew.models.ProgressEvent`) live in :mod:`stepcrew.models`; this module only adds the API's views.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic.json_schema import SkipJsonSchema

from stepcrew.models import CREW_NAME_PATTERN, PROVIDER_PATTERN, EventKind, RunRequest, RunStatus, Strict

#: A crew as the API accepts it: a packaged crew's name only (never a path: the API must not read arbitrary
#: files): CREW_NAME_PATTERN. A provider: PROVIDER_PATTERN (both from stepcrew.models).
#: The Idempotency-Key header: 1-128 characters of ``[A-Za-z0-9_.:-]`` (a UUID fits).
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
#: Longest ``goal`` shown in ``GET /runs`` (characters); ``GET /runs/{id}`` has the run's full view.
GOAL_PREVIEW_CHARS = 200
APPROVAL_COMMENT_MAX_CHARS = 1000


class NewRun(RunRequest):
    """Body of ``POST /runs``: a run request without ``tenant`` (the tenant is taken from the caller's JWT
    claims, never from the body). Top-level fields are strictly typed (``"true"`` is not a boolean, ``1`` is not
    a string); unknown fields are rejected. Limits: ``goal`` 1-10,000 characters and not blank; ``inputs`` at
    most 32 string pairs; ``data`` a ``s3://`` URI on AWS (``file://`` too with the local server)."""

    model_config = ConfigDict(strict=True)

    tenant: SkipJsonSchema[None] = Field(default=None, exclude=True)  # type: ignore[assignment]
    crew: str = Field(default="default", pattern=CREW_NAME_PATTERN, description="name of a packaged crew")
    provider: str = Field(default="rule", pattern=PROVIDER_PATTERN,
                          description="a registered provider ('rule' = the offline rule engine); when omitted, the "
                                      "deployment's default (STEPCREW_DEFAULT_PROVIDER, else 'rule')")

    @field_validator("tenant", mode="before")
    @classmethod
    def _no_tenant(cls, v: Any) -> None:
        if v is not None:
            raise ValueError("tenant is taken from the token's claims and must not be sent in the body")
        return None

    def to_request(self, tenant: str, *, provider: str | None = None) -> RunRequest:
        """The :class:`RunRequest` for ``tenant`` (``provider`` replaces the body's when given)."""
        data = self.model_dump(exclude={"tenant"})
        if provider is not None:
            data["provider"] = provider
        return RunRequest.model_validate({**data, "tenant": tenant})


class RunLinks(BaseModel):
    """Paths of a run's resources, relative to the API's base URL."""

    self: str = Field(description="GET: the run's result view")
    events: str = Field(description="GET: the run's progress events")
    approval: str = Field(description="POST: approve or reject a run waiting for approval")
    review: str = Field(description="POST: accept or reject the report of a run handed off for review")

    @classmethod
    def of(cls, run_id: str) -> RunLinks:
        """The links of ``run_id``: ``/runs/<id>``, ``/runs/<id>/events``, ``/approval``, ``/review``."""
        return cls(self=f"/runs/{run_id}", events=f"/runs/{run_id}/events", approval=f"/runs/{run_id}/approval",
                   review=f"/runs/{run_id}/review")


class RunAccepted(BaseModel):
    """Answer of ``POST /runs`` (202): the run is recorded and its execution started; poll ``links.self``."""

    run_id: str
    status: RunStatus
    links: RunLinks


class RunSummary(BaseModel):
    run_id: str
    status: RunStatus
    goal: str = Field(description=f"the goal's first {GOAL_PREVIEW_CHARS} characters")
    crew: str
    provider: str
    engine: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    links: RunLinks


class RunList(BaseModel):
    """A page of the caller's runs, newest first. ``next_cursor`` is null on the last page."""

    runs: list[RunSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; opaque")


class EventItem(BaseModel):
    cursor: str = Field(description="pass as ?after= to get only later events")
    kind: EventKind
    at: datetime
    subtask_id: str | None
    data: dict[str, Any] = Field(description="ids, names and numbers only (never prompts or outputs)")


class EventPage(BaseModel):
    """Events of one run, oldest first. Poll with ``?after=<next_after>`` for newer ones."""

    run_id: str
    events: list[EventItem]
    next_after: str | None = Field(description="the last event's cursor (or the ?after= given when none)")


class Approval(Strict):
    """Body of ``POST /runs/{id}/approval``. ``approved`` must be a JSON boolean."""

    approved: StrictBool
    comment: str | None = Field(default=None, max_length=APPROVAL_COMMENT_MAX_CHARS,
                                description="shown as the run's failure reason when rejected")


class ApprovalAccepted(BaseModel):
    run_id: str
    approved: bool
    status: RunStatus = Field(description="RUNNING: the run resumed (a rejected run then ends FAILED)")
    links: RunLinks


class ReviewAnswer(Strict):
    """Body of ``POST /runs/{id}/review``: ``accept`` (a JSON boolean), an optional ``comment`` (the failure reason
    when rejected) and, when accepting, an optional corrected ``report`` (Markdown; the request body is capped at
    64 KiB, so at most 60,000 characters here: a longer correction goes through ``stepcrew runs review --report``)."""

    accept: StrictBool
    comment: str = Field(default="", max_length=APPROVAL_COMMENT_MAX_CHARS)
    report: str | None = Field(default=None, min_length=1, max_length=60_000)


class ReviewAnswered(BaseModel):
    run_id: str
    accept: bool
    status: RunStatus = Field(description="RUNNING: the run resumed (accepted: then SUCCEEDED; rejected: FAILED)")
    links: RunLinks


class Health(BaseModel):
    status: Literal["ok"]
    stage: str
    version: str
