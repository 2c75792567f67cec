"""Per-stage settings, read once from CDK context (``-c key=value`` or ``cdk.json``) and the environment.

Context keys (all optional):

- ``stage``: the stage name (else env ``STEPCREW_STAGE``, else ``dev``); pattern :data:`constants.STAGE_PATTERN`.
- ``log_level``: Powertools log level of every function (``DEBUG``/``INFO``/``WARNING``/``ERROR``); default
  ``INFO`` (``DEBUG`` is never the default: it logs more than a production stage should keep).
- ``reserved_concurrency``: a JSON object ``{"<function name>": <int >= 1>}``, or one int for every function.
  Unset means the function shares the account's unreserved pool (Lambda keeps at least 100 unreserved, so a new
  account with the default 1,000 concurrency quota can reserve at most 900 in total; Lambda quotas page).
- ``jwt_issuer`` and ``jwt_audience`` (comma-separated): an existing OIDC issuer for the API's JWT authorizer.
  When both are absent the stack creates a Cognito user pool and app client and uses them instead.
- ``alarm_email``: an address subscribed to the alarm topic (it must confirm the subscription).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct
from stepcrew import wiring

from stepcrew_infra import constants as C

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A context value or environment variable is invalid; the message names it."""


@dataclass(frozen=True)
class StageConfig:
    """Settings of one stage. Build it with :meth:`from_context`."""

    stage: str = C.DEFAULT_STAGE
    log_level: str = "INFO"
    reserved_concurrency: dict[str, int] = field(default_factory=dict)
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    alarm_email: str | None = None

    def __post_init__(self) -> None:
        if not re.match(C.STAGE_PATTERN, self.stage):
            raise ConfigError(f"stage {self.stage!r} must match {C.STAGE_PATTERN}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level {self.log_level!r} must be one of {', '.join(LOG_LEVELS)}")
        unknown = sorted(set(self.reserved_concurrency) - wiring.FUNCTIONS.keys())
        if unknown:
            raise ConfigError(f"reserved_concurrency names unknown function(s): {', '.join(unknown)}")
        for name, value in self.reserved_concurrency.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"reserved_concurrency[{name!r}] must be an integer >= 1, got {value!r}")
        if bool(self.jwt_issuer) != bool(self.jwt_audience):
            raise ConfigError("give both jwt_issuer and jwt_audience, or neither (a Cognito user pool is created)")
        if self.jwt_issuer and not self.jwt_issuer.startswith("https://"):
            raise ConfigError(f"jwt_issuer must be an https:// URL, got {self.jwt_issuer!r}")

    # ---------------------------------------------------------------------------------------- derived
    @property
    def is_prod(self) -> bool:
        """True for the stages of :data:`constants.PROD_STAGES`."""
        return self.stage in C.PROD_STAGES

    @property
    def stack_name(self) -> str:
        """``stepcrew-<stage>``."""
        return f"{C.APP_NAME}-{self.stage}"

    def resource_name(self, name: str) -> str:
        """``stepcrew-<stage>-<name>``: the physical name of a named resource."""
        return f"{self.stack_name}-{name}"

    @property
    def removal_policy(self) -> RemovalPolicy:
        """RETAIN for prod stages (data outlives the stack), DESTROY otherwise."""
        return RemovalPolicy.RETAIN if self.is_prod else RemovalPolicy.DESTROY

    @property
    def log_retention(self) -> logs.RetentionDays:
        """How long log groups keep events: one year for prod stages, one month otherwise."""
        return C.PROD_LOG_RETENTION if self.is_prod else C.LOG_RETENTION

    # ---------------------------------------------------------------------------------------- loading
    @classmethod
    def from_context(cls, scope: Construct, env: dict[str, str] | None = None) -> StageConfig:
        """Read the settings from ``scope``'s CDK context and ``env`` (default ``os.environ``).
        Raises ConfigError naming the first invalid value."""
        env = dict(os.environ) if env is None else env

        def ctx(key: str) -> Any:
            return scope.node.try_get_context(key)

        stage = ctx("stage") or env.get("STEPCREW_STAGE") or C.DEFAULT_STAGE
        audience = ctx("jwt_audience") or ()
        if isinstance(audience, str):
            audience = tuple(a.strip() for a in audience.split(",") if a.strip())
        return cls(stage=str(stage), log_level=str(ctx("log_level") or "INFO").upper(),
                   reserved_concurrency=_reserved(ctx("reserved_concurrency")),
                   jwt_issuer=ctx("jwt_issuer") or None, jwt_audience=tuple(audience),
                   alarm_email=ctx("alarm_email") or None)


def _reserved(value: Any) -> dict[str, int]:
    """``reserved_concurrency`` context -> ``{function: int}``: a dict, its JSON text, or one int for all."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"reserved_concurrency must be JSON (an object or an integer), got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return {name: value for name in wiring.FUNCTIONS}
    if not isinstance(value, dict):
        raise ConfigError(f"reserved_concurrency must be an object or an integer, got {value!r}")
    return dict(value)
