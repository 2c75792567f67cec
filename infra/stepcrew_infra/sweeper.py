"""The deployed orphan sweep: an EventBridge rule invokes the ``sweeper`` function (:mod:`stepcrew.domain.sweep`)
every :data:`SWEEP_RATE`, asynchronously (Lambda retries a failed invocation, then sends it to the function's
``sweeper-dlq``, alarmed on depth like every DLQ; :data:`constants.ASYNC_FUNCTIONS`).

The function is built with the role functions (its spec: ``touches_table``, ``sweeps_runs``); once the run state
machine exists, :class:`Sweeper` gives it ``STEPCREW_RUN_STATE_MACHINE_ARN`` and exactly two more permissions:
``states:DescribeExecution`` on the executions of the run state machine (named per run, hence ``<machine>:*``) and
``dynamodb:Scan`` on GSI1 only (the sparse index of run records; the table's other items are never scanned).
Cost per tick: one GSI1 Scan (every run record read once, see ``DynamoRunStore.open_run_ids``), plus one GetItem and
one DescribeExecution per open record past the grace period.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from stepcrew.store import schema

from stepcrew_infra.config import StageConfig
from stepcrew_infra.functions import StepcrewFunction
from stepcrew_infra.nag import acknowledge

#: How often the sweep runs. A run whose execution ended unrecorded is marked FAILED within about this plus the
#: sweep's grace period (stepcrew.domain.sweep.GRACE_S).
SWEEP_RATE = Duration.minutes(15)
SWEEPER_FUNCTION = "sweeper"


class Sweeper(Construct):
    """``rule``: the schedule invoking ``function`` (the sweeper's :class:`StepcrewFunction`)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, function: StepcrewFunction,
                 run_state_machine: sfn.StateMachine, table: dynamodb.ITable) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        run_name = config.resource_name("run")
        executions = stack.format_arn(service="states", resource="execution", resource_name=f"{run_name}:*",
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)
        function.function.add_environment("STEPCREW_RUN_STATE_MACHINE_ARN", run_state_machine.state_machine_arn)
        function.role.add_to_policy(iam.PolicyStatement(
            sid="DescribeRunExecutions", actions=["states:DescribeExecution"], resources=[executions]))
        function.role.add_to_policy(iam.PolicyStatement(
            sid="ScanRunRecords", actions=["dynamodb:Scan"],
            resources=[f"{table.table_arn}/index/{schema.GSI1_NAME}"]))
        acknowledge(function.role.node.find_child("DefaultPolicy"),
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                    f"execution:{run_name}:*]",
                    "sweeper: run executions are named by run id, so DescribeExecution must name every execution of "
                    "the run state machine (and of no other machine); it is the only Step Functions action allowed.")
        self.rule = events.Rule(self, "Schedule", schedule=events.Schedule.rate(SWEEP_RATE),
                                description="stepcrew: sweep open runs whose execution ended without a record")
        self.rule.add_target(targets.LambdaFunction(function.function, retry_attempts=2,
                                                    max_event_age=Duration.hours(1)))
