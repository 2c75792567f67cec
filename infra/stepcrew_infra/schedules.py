"""Scheduled runs: ``infra/schedules.yaml`` -> one EventBridge Scheduler schedule per entry.

File shape (validated by :class:`ScheduleFile`; unknown keys are errors)::

    schedules:
      - name: weekly-penguins          # 1-38 of [A-Za-z0-9_-]; the schedule is stepcrew-<stage>-<name>
        schedule: cron(0 7 ? * MON *)  # or rate(1 day); EventBridge Scheduler expression syntax
        timezone: Europe/Berlin        # IANA zone for cron expressions (default UTC)
        enabled: false                 # default true
        description: ...               # optional, <= 512 characters
        goal: ...                      # the RunRequest fields (stepcrew.models.RunRequest): goal, crew,
        crew: default                  #   inputs, tenant, data, provider, review, budget, require_approval
        inputs: {}
        tenant: scheduled
        data: s3://{datasets_bucket}/penguins.csv   # {datasets_bucket}: the stack's datasets bucket

Each schedule starts the run state machine (Scheduler's templated Step Functions ``StartExecution`` target) with
input ``{"request": {<RunRequest fields>}, "source": "schedule"}``, through a role that may only start that
machine and write to the schedules DLQ. Retries: :data:`constants.SCHEDULE_MAX_RETRY_ATTEMPTS` attempts within
:data:`constants.SCHEDULE_MAX_EVENT_AGE_S` seconds; then the event goes to the ``schedule-dlq`` queue.

Run id of a scheduled run: the run ASL's ``CreateScheduledRun`` takes it from ``$$.Execution.Name``. The templated
target calls StartExecution without a name, so Step Functions names each execution with a UUID (36 characters of
hex and dashes), a valid :data:`stepcrew.models.RunId` (at most 39). Keep the templated target: the universal
``aws-sdk:sfn:startExecution`` target would pass its own ``Name``, which then has to be a RunId too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from stepcrew.models import RunRequest

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.queues import dead_letter_queue

#: EventBridge Scheduler expressions: ``cron(<6 fields>)`` or ``rate(<n> minute(s)|hour(s)|day(s))``
#: (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html).
SCHEDULE_EXPRESSION = re.compile(r"^(cron\((\S+ ){5}\S+\)|rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\))$")
DATASETS_BUCKET_PLACEHOLDER = "{datasets_bucket}"
_SCHEDULE_KEYS = {"name", "schedule", "timezone", "enabled", "description"}


class ScheduleConfig(BaseModel):
    """One scheduled run: when (``schedule``, ``timezone``), whether (``enabled``) and what (``request``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,37}$")  # stepcrew-<stage<=16>-<name> <= 64
    schedule: str
    timezone: str = "UTC"
    enabled: bool = True
    description: str = Field(default="", max_length=512)
    request: RunRequest

    @model_validator(mode="before")
    @classmethod
    def _split_request(cls, data: Any) -> Any:
        """The file lists RunRequest fields next to the schedule's own keys; gather them into ``request``."""
        if isinstance(data, dict) and "request" not in data:
            data = dict(data)
            data["request"] = {k: data.pop(k) for k in list(data) if k not in _SCHEDULE_KEYS}
        return data

    @field_validator("schedule")
    @classmethod
    def _expression(cls, v: str) -> str:
        if not SCHEDULE_EXPRESSION.match(v.strip()):
            raise ValueError(f"schedule must be cron(<6 fields>) or rate(<n> <minutes|hours|days>), got {v!r}")
        return v.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v

    def target_input(self, datasets_bucket: str) -> dict[str, Any]:
        """The execution input: ``{"request": {...all RunRequest fields...}, "source": "schedule"}``, with
        ``{datasets_bucket}`` in ``data`` replaced by ``datasets_bucket``."""
        request = self.request.model_dump(mode="json")
        if request.get("data"):
            request["data"] = request["data"].replace(DATASETS_BUCKET_PLACEHOLDER, datasets_bucket)
        return {"request": request, "source": "schedule"}


class ScheduleFile(BaseModel):
    """The whole ``schedules.yaml``: ``schedules`` (names unique)."""

    model_config = ConfigDict(extra="forbid")

    schedules: list[ScheduleConfig] = Field(default_factory=list)

    @field_validator("schedules")
    @classmethod
    def _unique(cls, v: list[ScheduleConfig]) -> list[ScheduleConfig]:
        names = [s.name for s in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate schedule name(s): {', '.join(dupes)}")
        return v

    @classmethod
    def load(cls, path: Path) -> ScheduleFile:
        """Parse and validate ``path`` (missing or empty file: no schedules). Raises pydantic's ValidationError."""
        doc = yaml.safe_load(path.read_text()) if path.is_file() else None
        return cls.model_validate(doc or {})


class Schedules(Construct):
    """``schedules``: name -> ``CfnSchedule``; ``dlq`` and ``role`` (None without schedules)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, path: Path,
                 run_state_machine: sfn.StateMachine, datasets: s3.IBucket, queues: dict[str, sqs.Queue]) -> None:
        super().__init__(scope, construct_id)
        self.file = ScheduleFile.load(path)
        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        self.dlq: sqs.Queue | None = None
        self.role: iam.Role | None = None
        if not self.file.schedules:
            return
        self.dlq = dead_letter_queue(self, "Dlq", name="schedule-dlq", config=config, registry=queues,
                                     purpose="scheduled run starts that failed after the Scheduler retry policy")
        stack = Stack.of(self)
        self.role = iam.Role(self, "Role", description=f"stepcrew {config.stage}: EventBridge Scheduler -> run",
                             assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={
                                 "StringEquals": {"aws:SourceAccount": stack.account}}))
        self.role.add_to_policy(iam.PolicyStatement(sid="StartRuns", actions=["states:StartExecution"],
                                                    resources=[run_state_machine.state_machine_arn]))
        self.role.add_to_policy(iam.PolicyStatement(sid="DeadLetters", actions=["sqs:SendMessage"],
                                                    resources=[self.dlq.queue_arn]))
        for entry in self.file.schedules:
            self.schedules[entry.name] = scheduler.CfnSchedule(
                self, f"Schedule-{entry.name}", name=config.resource_name(entry.name),
                description=entry.description or None,
                schedule_expression=entry.schedule, schedule_expression_timezone=entry.timezone,
                state="ENABLED" if entry.enabled else "DISABLED",
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=run_state_machine.state_machine_arn, role_arn=self.role.role_arn,
                    input=stack.to_json_string(entry.target_input(datasets.bucket_name)),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_retry_attempts=C.SCHEDULE_MAX_RETRY_ATTEMPTS,
                        maximum_event_age_in_seconds=C.SCHEDULE_MAX_EVENT_AGE_S),
                    dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=self.dlq.queue_arn)),
            )


def example_input() -> str:
    """The target input of the first entry of ``infra/schedules.yaml`` (bucket left as the placeholder), as JSON:
    a doc/test helper showing exactly what a scheduled execution receives."""
    entry = ScheduleFile.load(C.SCHEDULES_FILE).schedules[0]
    return json.dumps(entry.target_input(DATASETS_BUCKET_PLACEHOLDER), indent=2)
