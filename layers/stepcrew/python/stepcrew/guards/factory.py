"""Which guard backend a function uses: :class:`GuardSettings` (validated at cold start) -> :func:`build_guard`.

- ``STEPCREW_GUARD_BACKEND``: ``local`` (:class:`~stepcrew.guards.local.LocalGuard`, offline; the local runtime's
  and the default stack's) or ``bedrock`` (:class:`~stepcrew.guards.bedrock.BedrockGuard`, Amazon Bedrock
  Guardrails' ``ApplyGuardrail``; the stack creates the guardrail when its stage config says ``guard_backend:
  bedrock``). Required: no silent default.
- ``STEPCREW_GUARDRAIL_ID``, ``STEPCREW_GUARDRAIL_VERSION``: the guardrail, required with ``bedrock``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stepcrew.guards.base import Guard
from stepcrew.settings import RoleSettings


class GuardSettings(RoleSettings):
    """Settings of the guard function (the role settings plus the backend; see the module docstring)."""

    guard_backend: Literal["local", "bedrock"] = Field(alias="STEPCREW_GUARD_BACKEND")
    guardrail_id: str | None = Field(default=None, alias="STEPCREW_GUARDRAIL_ID", min_length=1, max_length=2048)
    guardrail_version: str | None = Field(default=None, alias="STEPCREW_GUARDRAIL_VERSION",
                                          pattern=r"^(?:[1-9][0-9]{0,7}|DRAFT)$")

    @model_validator(mode="after")
    def _bedrock_needs_guardrail(self) -> GuardSettings:
        if self.guard_backend == "bedrock" and not (self.guardrail_id and self.guardrail_version):
            raise ValueError("STEPCREW_GUARD_BACKEND=bedrock needs STEPCREW_GUARDRAIL_ID and "
                             "STEPCREW_GUARDRAIL_VERSION")
        return self


def build_guard(settings: GuardSettings) -> Guard:
    """The configured backend, built once per container. Raises GuardUnavailableError when the local backend's
    libraries are missing (the function then fails its cold start: no run proceeds unscreened)."""
    if settings.guard_backend == "bedrock":
        import boto3

        from stepcrew.guards.bedrock import BedrockGuard

        return BedrockGuard(client=boto3.client("bedrock-runtime"), guardrail_id=settings.guardrail_id or "",
                            guardrail_version=settings.guardrail_version or "")
    from stepcrew.guards.local import LocalGuard

    return LocalGuard()
