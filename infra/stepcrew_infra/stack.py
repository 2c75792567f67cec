"""The stepcrew stack (``stepcrew-<stage>``) and the app around it.

Build order follows the data flow: data -> guard, memory index -> functions (roles, tools) -> state machines -> API ->
invocations between functions -> schedules -> monitoring. :func:`build_app` is what ``infra/app.py`` and the tests
call; it adds cdk-nag's AwsSolutionsChecks as a validation plugin, so ``app.synth()`` raises on any finding not
acknowledged (see :mod:`stepcrew_infra.nag`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from constructs import Construct
from stepcrew import wiring

from stepcrew_infra import constants as C
from stepcrew_infra.agents import Agents
from stepcrew_infra.api import Api
from stepcrew_infra.charts import CHART_FUNCTIONS, Charts
from stepcrew_infra.config import StageConfig
from stepcrew_infra.data import Data
from stepcrew_infra.functions import FunctionResources, build_layers, wire_invocations
from stepcrew_infra.guard import Guard
from stepcrew_infra.memory import MemoryIndex
from stepcrew_infra.monitoring import Monitoring
from stepcrew_infra.network import IsolatedNetwork
from stepcrew_infra.notifications import Notifications
from stepcrew_infra.orchestration import Orchestration
from stepcrew_infra.queues import dead_letter_queue
from stepcrew_infra.schedules import Schedules
from stepcrew_infra.sweeper import SWEEPER_FUNCTION, Sweeper
from stepcrew_infra.tools import Tools


#: CDK feature flags this app relies on (set in code so `python infra/app.py`, the tests and the CDK CLI agree).
#: serverAccessLogsUseBucketPolicy: S3 log delivery is granted by a bucket policy instead of the deprecated ACL.
FEATURE_FLAGS: dict[str, Any] = {"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True}


class StepcrewStack(cdk.Stack):
    """Everything of one stage. Attributes: ``config``, ``data``, ``guard`` (the guard layer and, with
    ``guard_backend=bedrock``, the guardrail), ``memory`` (the memory index: with ``memory_index=s3vectors`` the vector
    bucket and its indexes), ``functions`` (name -> StepcrewFunction),
    ``orchestration``, ``api``, ``schedules``, ``monitoring``, ``queues`` (DLQ name -> queue)."""

    def __init__(self, scope: Construct, config: StageConfig, *, schedules_file: Path = C.SCHEDULES_FILE,
                 **kwargs: Any) -> None:
        super().__init__(scope, config.stack_name, description=f"stepcrew ({config.stage}): crews of LLM agents "
                         "on Lambda + Step Functions + DynamoDB", **kwargs)
        self.config = config
        cdk.Tags.of(self).add("app", C.APP_NAME)
        cdk.Tags.of(self).add("stage", config.stage)
        self.queues: dict[str, sqs.Queue] = {}

        self.data = Data(self, "Data", config=config)
        layers = build_layers(self)  # [shared package layer, deps layer]
        self.guard = Guard(self, "Guard", config=config, shared_layer=layers[0])
        self.memory = MemoryIndex(self, "Memory", config=config)
        resources = FunctionResources(config=config, layers=layers, table=self.data.table,
                                      datasets=self.data.datasets, secrets=dict(self.data.secrets),
                                      artifacts=self.data.artifacts)
        self.notifications = Notifications(self, "Notifications", config=config)  # the notify tool's FIFO topic
        resources.notifications = self.notifications.topic
        if any(spec.isolated_network for spec in wiring.FUNCTIONS.values()):  # run_python: no route out
            resources.isolated_network = IsolatedNetwork(self, "IsolatedNetwork", config=config)
        for name in C.SCREENING_FUNCTIONS:
            resources.add_extras(name, self.guard.extras)
        self.charts = Charts(self, "Charts", shared_layer=layers[0])  # matplotlib for make_chart only
        for name in CHART_FUNCTIONS:
            resources.add_extras(name, self.charts.extras)
        for name, spec in wiring.FUNCTIONS.items():
            extras = self.memory.extras_for(spec)
            if extras is not None:
                resources.add_extras(name, extras)
        async_dlqs = {name: dead_letter_queue(self, f"AsyncDlq-{name}", name=f"{name}-dlq", config=config,
                                              registry=self.queues, purpose=f"failed async invocations of {name}")
                      for name in sorted(C.ASYNC_FUNCTIONS)}
        Agents(self, "Agents", resources=resources, dead_letter_queues=async_dlqs)
        Tools(self, "Tools", resources=resources, dead_letter_queues=async_dlqs)
        self.orchestration = Orchestration(
            self, "Orchestration", config=config, queues=self.queues,
            functions={name: fn.function for name, fn in resources.functions.items()})
        run = self.orchestration.state_machines["run"]
        self.api = Api(self, "Api", config=config, resources=resources, run_state_machine=run)
        self.functions = resources.functions
        missing = sorted(wiring.FUNCTIONS.keys() - self.functions.keys())
        if missing:
            raise RuntimeError(f"no construct built function(s) {', '.join(missing)}")
        wire_invocations(self.functions)
        self.sweeper = Sweeper(self, "Sweeper", config=config, function=self.functions[SWEEPER_FUNCTION],
                               run_state_machine=run, table=self.data.table)
        self.schedules = Schedules(self, "Schedules", config=config, path=schedules_file, run_state_machine=run,
                                   datasets=self.data.datasets, queues=self.queues)
        self.monitoring = Monitoring(self, "Monitoring", config=config,
                                     state_machines=self.orchestration.state_machines,
                                     functions={n: f.function for n, f in self.functions.items()},
                                     queues=self.queues)

        for key, value, description in [
            ("TableName", self.data.table.table_name, "DynamoDB run table"),
            ("DatasetsBucket", self.data.datasets.bucket_name, "S3 bucket for datasets (s3:// URIs in runs)"),
            ("ArtifactsBucket", self.data.artifacts.bucket_name,
             "S3 bucket of run artifacts (exports, charts): STEPCREW_ARTIFACTS_BUCKET for `stepcrew runs ... --aws`"),
            ("RunStateMachineArn", run.state_machine_arn, "Run state machine"),
            ("AgentStateMachineArn", self.orchestration.state_machines["agent"].state_machine_arn,
             "Agent-loop state machine"),
            ("AlarmTopicArn", self.monitoring.topic.topic_arn, "SNS topic of every alarm"),
            ("NotificationsTopicArn", self.notifications.topic.topic_arn,
             "SNS FIFO topic of the notify tool (subscribe an SQS queue)"),
            ("RunFailuresQueueUrl", self.orchestration.run_failures.queue_url, "Runs that ended without success"),
            *[(f"{p.title()}SecretArn", s.secret_arn, f"Secret holding the {p} API key (put the key here)")
              for p, s in sorted(self.data.secrets.items())],
        ]:
            cdk.CfnOutput(self, key, value=value, description=description)
        if self.memory.bucket_name:
            cdk.CfnOutput(self, "MemoryVectorBucket", value=self.memory.bucket_name,
                          description="S3 Vectors bucket of the tenant memory (memory_index=s3vectors)")


def build_app(context: dict[str, Any] | None = None, outdir: str | Path | None = None,
              env: dict[str, str] | None = None, nag: bool = True) -> tuple[cdk.App, StepcrewStack]:
    """The CDK app with one :class:`StepcrewStack` for the stage from context/``env`` (see
    :mod:`stepcrew_infra.config`), synthesizing into ``outdir`` (default ``CDK_OUTDIR`` or ``infra/cdk.out``).
    ``nag``: add cdk-nag's AwsSolutionsChecks (synth then fails on any unacknowledged finding)."""
    env = dict(os.environ) if env is None else env
    outdir = outdir or env.get("CDK_OUTDIR") or C.DEFAULT_OUTDIR
    app = cdk.App(outdir=str(outdir), context={**FEATURE_FLAGS, **(context or {})})
    config = StageConfig.from_context(app, env=env)
    account, region = env.get("CDK_DEFAULT_ACCOUNT"), env.get("CDK_DEFAULT_REGION")
    stack_env = cdk.Environment(account=account, region=region) if account and region else None
    stack = StepcrewStack(app, config, env=stack_env)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack
