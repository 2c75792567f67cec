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
- ``guard_backend``: ``local`` (default: Presidio and stepcrew's rules inside the guard function, no AWS charge) or
  ``bedrock`` (the stack creates an Amazon Bedrock guardrail and a version of it; the guard function calls
  ``ApplyGuardrail``, billed per text unit).
- ``guard_denied_topics``: with ``bedrock``, the guardrail's denied topics, a JSON list of
  ``{"name", "definition", "examples"?}`` (Bedrock's limits: at most 30 topics; name 1-100 characters of
  ``[0-9a-zA-Z-_ !?.]``; definition 1-200 characters (classic tier); at most 5 examples of 1-100 characters;
  CreateGuardrail API). Default none: stepcrew analyses datasets for any domain, so no topic is denied for every
  deployment, and a topic policy costs per text unit on every screened text. Per-run denied terms are matched by the
  guard itself (:func:`stepcrew.guards.bedrock.term_findings`), not configured here.
- ``memory_index``: the tenant memory's vector index (:mod:`stepcrew_infra.memory`): ``exact`` (default: brute-force
  cosine over the run table's items, no other resource, no charge beyond DynamoDB reads) or ``s3vectors`` (the stack
  creates an Amazon S3 Vectors bucket and one index per memory kind, billed per request and stored vector; for
  tenants too large to load). Case and surrounding spaces are ignored.
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
    guard_backend: str = "local"
    guard_denied_topics: tuple[DeniedTopic, ...] = ()
    #: ``STEPCREW_FALLBACK_CHAIN`` of the stage (stepcrew.resilience.chain): "anthropic,bedrock,openai" or JSON per
    #: tier; empty = each run's provider alone.
    fallback_chain: str = ""
    #: Default per-tenant $ budgets (stepcrew.resilience.tenant_budget); None = no cap.
    tenant_daily_usd: float | None = None
    tenant_monthly_usd: float | None = None
    #: ``exact`` | ``s3vectors`` (module docstring).
    memory_index: str = "exact"

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
        if self.guard_backend not in C.GUARD_BACKENDS:
            raise ConfigError(f"guard_backend {self.guard_backend!r} must be one of {', '.join(C.GUARD_BACKENDS)}")
        if len(self.guard_denied_topics) > MAX_DENIED_TOPICS:
            raise ConfigError(f"guard_denied_topics: at most {MAX_DENIED_TOPICS} topics, got "
                              f"{len(self.guard_denied_topics)}")
        names = [t.name for t in self.guard_denied_topics]
        if len(set(names)) != len(names):
            raise ConfigError("guard_denied_topics: topic names must be unique")
        if self.fallback_chain:
            from stepcrew.resilience.chain import ChainConfigError, stage_routing

            try:
                stage_routing({"STEPCREW_FALLBACK_CHAIN": self.fallback_chain})
            except ChainConfigError as exc:
                raise ConfigError(f"fallback_chain: {exc}") from None
        if self.memory_index not in C.MEMORY_INDEXES:
            raise ConfigError(f"memory_index {self.memory_index!r} must be one of {', '.join(C.MEMORY_INDEXES)}")
        for key in ("tenant_daily_usd", "tenant_monthly_usd"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, int | float) and 0 < value <= 1_000_000):
                raise ConfigError(f"{key} must be a number in (0, 1000000], got {value!r}")

    @property
    def resilience_environment(self) -> dict[str, str]:
        """The stage's fallback chain and default tenant budgets as the functions' environment variables."""
        env = {}
        if self.fallback_chain:
            env["STEPCREW_FALLBACK_CHAIN"] = self.fallback_chain
        if self.tenant_daily_usd is not None:
            env["STEPCREW_TENANT_DAILY_USD"] = repr(float(self.tenant_daily_usd))
        if self.tenant_monthly_usd is not None:
            env["STEPCREW_TENANT_MONTHLY_USD"] = repr(float(self.tenant_monthly_usd))
        return env

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
                   alarm_email=ctx("alarm_email") or None,
                   guard_backend=str(ctx("guard_backend") or "local").lower(),
                   guard_denied_topics=_denied_topics(ctx("guard_denied_topics")),
                   fallback_chain=str(ctx("fallback_chain") or "").strip(),
                   tenant_daily_usd=_money(ctx("tenant_daily_usd"), "tenant_daily_usd"),
                   tenant_monthly_usd=_money(ctx("tenant_monthly_usd"), "tenant_monthly_usd"),
                   memory_index=str(ctx("memory_index") or "").strip().lower() or "exact")


def _money(value: Any, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None


#: Bedrock limits of a denied topic (CreateGuardrail: topicsConfig 1-30; name 1-100 of the pattern; definition
#: 1-200 characters in the classic tier; 0-5 examples of 1-100 characters).
MAX_DENIED_TOPICS = 30
TOPIC_NAME_PATTERN = r"^[0-9a-zA-Z-_ !?.]{1,100}$"
TOPIC_DEFINITION_MAX = 200
TOPIC_EXAMPLES_MAX = 5
TOPIC_EXAMPLE_MAX = 100


@dataclass(frozen=True)
class DeniedTopic:
    """One denied topic of the Bedrock guardrail (see ``guard_denied_topics`` in the module docstring)."""

    name: str
    definition: str
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.match(TOPIC_NAME_PATTERN, self.name):
            raise ConfigError(f"denied topic name {self.name!r} must match {TOPIC_NAME_PATTERN}")
        if not isinstance(self.definition, str) or not 1 <= len(self.definition) <= TOPIC_DEFINITION_MAX:
            raise ConfigError(f"denied topic {self.name!r}: definition must have 1-{TOPIC_DEFINITION_MAX} characters")
        if len(self.examples) > TOPIC_EXAMPLES_MAX or not all(
                isinstance(e, str) and 1 <= len(e) <= TOPIC_EXAMPLE_MAX for e in self.examples):
            raise ConfigError(f"denied topic {self.name!r}: at most {TOPIC_EXAMPLES_MAX} examples of "
                              f"1-{TOPIC_EXAMPLE_MAX} characters")


def _denied_topics(value: Any) -> tuple[DeniedTopic, ...]:
    """``guard_denied_topics`` context -> topics: a list of objects, or its JSON text."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"guard_denied_topics must be a JSON list, got {value!r}") from None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError("guard_denied_topics must be a list of {\"name\", \"definition\", \"examples\"?} objects")
    topics = []
    for t in value:
        unknown = sorted(set(t) - {"name", "definition", "examples"})
        if unknown:
            raise ConfigError(f"guard_denied_topics: unknown key(s) {', '.join(unknown)}")
        examples = t.get("examples") or ()
        if not isinstance(examples, list | tuple):
            raise ConfigError("guard_denied_topics: examples must be a list of strings")
        topics.append(DeniedTopic(name=t.get("name"), definition=t.get("definition"), examples=tuple(examples)))
    return tuple(topics)


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
