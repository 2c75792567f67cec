"""Environment settings of the Lambda handlers, validated once at init (import) time.

No silent defaults: every variable below is required, and a missing or empty one raises :class:`SettingsError`
at import with the names of all missing variables, so a misconfigured function fails on its first cold start
instead of writing to the wrong table. The CDK stack sets these variables on every role function.

The models are plain pydantic models validated from ``os.environ`` (by alias, exact case), not pydantic-settings:
for a handful of string variables that library's import cost ~45-90 ms of every cold start (bench/local_run.py).
"""

from __future__ import annotations

import os
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stepcrew.text import describe_validation_error


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid. Raised at handler import."""


class RoleSettings(BaseModel):
    """Settings of every role function (guard, planner, approval, agent, synthesizer, reviewer, finalize).

    - ``STEPCREW_TABLE_NAME``: the DynamoDB run table (3-255 characters, DynamoDB's table-name limit).
    - ``STEPCREW_STAGE``: deployment stage, e.g. ``dev`` or ``prod``.
    - ``POWERTOOLS_SERVICE_NAME``: service name in logs, traces and metric dimensions.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=False)

    table_name: str = Field(alias="STEPCREW_TABLE_NAME", min_length=3, max_length=255,
                            pattern=r"^[A-Za-z0-9_.-]+$")
    stage: str = Field(alias="STEPCREW_STAGE", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1, max_length=128)


class MetricsSettings(RoleSettings):
    """Settings of role functions that also emit CloudWatch metrics (EMF): finalize (run metrics) and agent
    (ToolErrors).

    - ``POWERTOOLS_METRICS_NAMESPACE``: the CloudWatch metrics namespace, e.g. ``stepcrew``.
    """

    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1, max_length=255)


class EventSettings(RoleSettings):
    """Settings of role functions that publish EventBridge events (approval: ``stepcrew.run.needs_review``).

    - ``STEPCREW_EVENT_BUS``: the event bus name or ARN (``default`` for the account's default bus).
    """

    event_bus: str = Field(alias="STEPCREW_EVENT_BUS", min_length=1, max_length=1600)


class OperationsToolSettings(RoleSettings):
    """Settings of an operations tool (export_results): its receipts live in the run table (``RECEIPT#*`` keys), its
    artifacts in a bucket under the tenant's prefix.

    - ``STEPCREW_ARTIFACTS_BUCKET``: the bucket of run artifacts (3-63 characters, S3's bucket-name rule).
    """

    artifacts_bucket: str = Field(alias="STEPCREW_ARTIFACTS_BUCKET", min_length=3, max_length=63,
                                  pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")


S = TypeVar("S", bound=RoleSettings)


def load_settings(cls: type[S] = RoleSettings) -> S:  # type: ignore[assignment]
    """Read and validate ``cls`` from ``os.environ`` (names are the fields' aliases, case-sensitive; other
    variables are ignored). Raises SettingsError naming every missing variable, or the first invalid one."""
    try:
        return cls.model_validate(dict(os.environ))
    except ValidationError as exc:
        missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing"]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}") from None
        raise SettingsError(describe_validation_error(exc, prefix="invalid environment variable ")) from None


__all__ = ["MetricsSettings", "OperationsToolSettings", "RoleSettings", "SettingsError", "load_settings"]
