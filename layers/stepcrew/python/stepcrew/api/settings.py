"""Environment settings of the ``api`` function, validated once at init (import) time.

Required (SettingsError at import when missing or invalid, like every role function, see :mod:`stepcrew.settings`):

- ``STEPCREW_TABLE_NAME``, ``STEPCREW_STAGE``, ``POWERTOOLS_SERVICE_NAME`` (from :class:`RoleSettings`).
- ``STEPCREW_RUN_STATE_MACHINE_ARN``: the run state machine (Standard), started once per run.

Optional:

- ``STEPCREW_TENANT_CLAIM`` (default ``custom:tenant``): the JWT claim holding the tenant; ``sub`` is used when
  the token has no such claim.
- ``STEPCREW_DATA_SCHEMES`` (default ``s3``): comma-separated URI schemes a run's ``data`` may use. On AWS only
  ``s3`` makes sense (the functions cannot read the caller's files); the local server allows ``file,s3``.
- ``STEPCREW_DEFAULT_PROVIDER`` (default ``rule``): the provider of a run whose body names none; must be a
  registered provider (:func:`stepcrew.llm.registry.known_providers`).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from stepcrew.api.auth import DEFAULT_TENANT_CLAIM
from stepcrew.models import PROVIDER_PATTERN
from stepcrew.settings import RoleSettings

STATE_MACHINE_ARN_PATTERN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"
DATA_SCHEMES = ("file", "s3")


class ApiSettings(RoleSettings):
    """Settings of the ``api`` function (see the module docstring)."""

    run_state_machine_arn: str = Field(alias="STEPCREW_RUN_STATE_MACHINE_ARN", pattern=STATE_MACHINE_ARN_PATTERN)
    tenant_claim: str = Field(default=DEFAULT_TENANT_CLAIM, alias="STEPCREW_TENANT_CLAIM", min_length=1, max_length=128)
    data_schemes: str = Field(default="s3", alias="STEPCREW_DATA_SCHEMES")
    default_provider: str = Field(default="rule", alias="STEPCREW_DEFAULT_PROVIDER", pattern=PROVIDER_PATTERN)
    tenant_rate_start: int = Field(default=30, alias="STEPCREW_TENANT_RATE_START", ge=1, le=100_000,
                                   description="POST requests (start or resume work) per tenant per minute")
    tenant_rate_read: int = Field(default=600, alias="STEPCREW_TENANT_RATE_READ", ge=1, le=1_000_000,
                                  description="other authenticated requests per tenant per minute")
    data_bucket: str | None = Field(default=None, alias="STEPCREW_DATA_BUCKET", min_length=3, max_length=63,
                                    description="the stage's datasets bucket (the stack sets it): s3:// datasets "
                                                "must be s3://<bucket>/<tenant>/...; POST /datasets signs uploads "
                                                "into it (unset: 503 uploads_unavailable)")

    @field_validator("data_schemes")
    @classmethod
    def _schemes(cls, v: str) -> str:
        schemes = [s.strip() for s in v.split(",") if s.strip()]
        unknown = [s for s in schemes if s not in DATA_SCHEMES]
        if not schemes or unknown:
            raise ValueError(f"expected a comma-separated subset of {', '.join(DATA_SCHEMES)}, got {v!r}")
        return ",".join(schemes)

    @field_validator("default_provider")
    @classmethod
    def _known_provider(cls, v: str) -> str:
        from stepcrew.llm.registry import check_provider

        check_provider(v)  # UnknownProviderError is a ValueError: pydantic reports it as this field's error
        return v

    @property
    def schemes(self) -> tuple[str, ...]:
        """``data_schemes`` as a tuple, e.g. ``("s3",)``."""
        return tuple(self.data_schemes.split(","))
