"""Request and response bodies of the HTTP API (their JSON Schemas are in ``docs/openapi.json``).

The run models themselves (:class:`~stepcrew.models.RunRequest`, :class:`~stepcrew.models.RunResult`,
:class:`~stepcrew.models.ProgressEvent`) live in :mod:`stepcrew.models`; this module only adds the API's views.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from stepcrew.memory.models import MAX_FACTS_PER_WRITE, FactIn
from stepcrew.models import CREW_NAME_PATTERN, PROVIDER_PATTERN, EventKind, RunRequest, RunStatus, Strict
from stepcrew.tools.datasets import MAX_DATASET_BYTES, upload_content_type, upload_name_error

#: A crew as the API accepts it: a packaged crew's name only (never a path: the API must not read arbitrary
#: files): CREW_NAME_PATTERN. A provider: PROVIDER_PATTERN (both from stepcrew.models).
#: The Idempotency-Key header: 1-128 characters of ``[A-Za-z0-9_.:-]`` (a UUID fits).
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
#: Longest ``goal`` shown in ``GET /runs`` (characters); ``GET /runs/{id}`` has the run's full view.
GOAL_PREVIEW_CHARS = 200
APPROVAL_COMMENT_MAX_CHARS = 1000
#: Seconds an upload URL of ``POST /datasets`` stays valid. A URL signed with temporary credentials (a Lambda role's)
#: stops working when they expire, even earlier (S3 User Guide, "Download and upload objects with presigned URLs").
UPLOAD_URL_EXPIRES_S = 900
#: Error codes a body model raises itself (``PydanticCustomError`` types), answered 400 with that code.
DATASET_ERROR_CODES = frozenset({"invalid_dataset_name", "unsupported_dataset_type", "invalid_content_type",
                                 "dataset_too_large"})


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
        if self.routing is not None:  # only the options the body set: the others keep the stage's (its chain)
            data["routing"] = self.routing.model_dump(exclude_unset=True)
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


class NewDataset(Strict):
    """Body of ``POST /datasets``: the file to upload, by name and exact size (the tenant comes from the token).

    - ``name``: 1-128 of ``[A-Za-z0-9._-]``, starting with a letter or digit, no ``..``, ending in ``.csv``,
      ``.parquet``, ``.json`` or ``.jsonl`` (what the data tools read; :func:`stepcrew.tools.datasets.upload_name_error`).
      400 ``invalid_dataset_name`` / ``unsupported_dataset_type``.
    - ``content_type``: optional; one of the suffix's types (:data:`stepcrew.tools.datasets.UPLOAD_CONTENT_TYPES`),
      default the first. 400 ``invalid_content_type``.
    - ``size_bytes``: the file's exact size, 1 to :data:`stepcrew.tools.datasets.MAX_DATASET_BYTES` (512 MiB, the
      tools' limit: Lambda's default /tmp size). It is signed into the upload URL as ``Content-Length``, so S3 refuses
      a body of any other size (SigV4 signs the header; a different value is ``SignatureDoesNotMatch``). 400
      ``dataset_too_large``.
    """

    name: str = Field(min_length=1, max_length=128, description="file name under the tenant's uploads/ folder, e.g. "
                      "sales.csv: [A-Za-z0-9._-], no '..', suffix .csv, .parquet, .json or .jsonl")
    content_type: str | None = Field(default=None, min_length=1, max_length=128,
                                     description="text/csv, application/vnd.apache.parquet, application/json or "
                                                 "application/jsonl (default: by the name's suffix)")
    size_bytes: StrictInt = Field(ge=1, json_schema_extra={"maximum": MAX_DATASET_BYTES},
                                  description="exact size of the file in bytes (the PUT must send this "
                                              f"Content-Length), at most {MAX_DATASET_BYTES} (512 MiB)")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        problem = upload_name_error(v)
        if problem is not None:
            raise PydanticCustomError(problem[0], problem[1])
        return v

    @field_validator("size_bytes")
    @classmethod
    def _not_too_large(cls, v: int) -> int:
        if v > MAX_DATASET_BYTES:
            raise PydanticCustomError("dataset_too_large", f"a dataset is at most {MAX_DATASET_BYTES} bytes")
        return v

    @model_validator(mode="after")
    def _content_type_fits(self) -> NewDataset:
        try:
            self.content_type = upload_content_type(self.name, self.content_type)
        except ValueError as exc:
            raise PydanticCustomError("invalid_content_type", str(exc)) from None
        return self


class DatasetUpload(BaseModel):
    """Answer of ``POST /datasets`` (201): PUT the file's bytes to ``upload_url`` with exactly ``headers`` within
    ``expires_in_s`` seconds, then start runs with ``data`` = ``uri``. An upload to an existing name replaces it (the
    bucket keeps the old version)."""

    uri: str = Field(description="s3://<bucket>/<tenant>/uploads/<name>: the run's data")
    upload_url: str = Field(description="presigned S3 URL for one HTTP PUT of the file")
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(description="headers the PUT must send, exactly (both are signed): "
                                                "Content-Type and Content-Length")
    expires_in_s: int = Field(description="seconds the URL is valid (less if the signing credentials expire first)")
    max_bytes: int = Field(description="the largest dataset the tools read, in bytes")


# ============================================================================================== memory
#: Longest ``user`` of the memory routes (a qualified ``<tenant>:<name>``: two ids of at most 128 characters).
MEMORY_USER_MAX_CHARS = 257
#: Error code of a fact that is not a valid memory item (``POST /memory``: empty or over-long text or subject, a
#: TTL that is negative, too short, too long or not finite, a confidence outside 0-1, an unknown field of a fact).
INVALID_MEMORY = "invalid_memory"


class NewMemory(Strict):
    """Body of ``POST /memory``: ``facts``, 1-25 facts to remember for the caller's tenant (the tenant comes from
    the token, never the body), and ``user``, the default user of the facts that name none: ``<name>`` or
    ``<tenant>:<name>`` (another tenant's is 400 ``user_outside_tenant``). Each fact (:class:`~stepcrew.memory
    .models.FactIn`): ``text`` 1-500 characters, one line, not blank; ``subject`` 1-120 (the same subject for the
    same user replaces the fact); ``kind`` fact | preference; ``user``; ``confidence`` 0-1 (default 1);
    ``ttl_s`` 60 s to 10 years, finite (default: kept until deleted or evicted). Unknown fields are rejected.
    A bad fact is 400 ``invalid_memory``, and nothing of the request is written."""

    facts: list[FactIn] = Field(min_length=1, max_length=MAX_FACTS_PER_WRITE,
                                description=f"1-{MAX_FACTS_PER_WRITE} facts; all are written, or none")
    user: str | None = Field(default=None, min_length=1, max_length=MEMORY_USER_MAX_CHARS,
                             description="default user of the facts naming none: <name> or <tenant>:<name> (the "
                                         "caller's tenant only); absent: tenant-wide facts")


class MemoryErased(BaseModel):
    """Answer of ``DELETE /memory``: how many items (facts and episodes, with their vectors) were deleted."""

    deleted: int = Field(ge=0)
