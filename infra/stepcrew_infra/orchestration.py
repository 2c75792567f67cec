"""The agent and run state machines, from the SAME ASL files the local runtime runs.

Each definition is ``statemachines/<name>.asl.json`` inlined with ``DefinitionBody.from_string`` (so the template,
cfn-lint and the tests see it) and ``definition_substitutions`` from :func:`stepcrew.wiring.substitutions` (the one
mapping the local runtime uses too). The agent machine is built first: the run machine needs its ARN.

Both are Standard workflows: tool side effects must run exactly once (Express is at-least-once), the run waits
for a human with ``.waitForTaskToken`` and follows agent loops with ``.sync:2`` (neither exists in Express), and
runs last longer than Express' 5-minute cap (Step Functions quotas page). Logging level ALL (with execution data)
to a log group per machine, X-Ray tracing on.

Roles: each machine's role may invoke exactly the functions its ASL names. The run role may also start, describe
and stop executions of the agent machine and manage the rule ``.sync:2`` uses
(:data:`constants.SYNC_EVENTS_RULE`).

"Runs that fail to record": an EventBridge rule sends every run execution that ends FAILED, TIMED_OUT or ABORTED
(Step Functions "Execution Status Change" events) to the ``run-failures`` queue. The run ASL catches every error
into RecordFailure, so a message there means the run's terminal status may be missing from the table.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from stepcrew import wiring

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.nag import acknowledge
from stepcrew_infra.queues import dead_letter_queue

TIMEOUTS = {"run": C.RUN_TIMEOUT, "agent": C.AGENT_TIMEOUT}


class Orchestration(Construct):
    """``state_machines``: ``{"agent": ..., "run": ...}``; ``run_failures``: the run-failures queue."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig,
                 functions: dict[str, lambda_.IFunction], queues: dict[str, sqs.Queue]) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self._functions = functions
        self.state_machines: dict[str, sfn.StateMachine] = {}
        for name in ("agent", "run"):  # agent first: the run machine's ASL names the agent machine's ARN
            self.state_machines[name] = self._state_machine(name)
        self._allow_child_executions(self.state_machines["run"], self.state_machines["agent"])
        self.run_failures = dead_letter_queue(
            self, "RunFailures", name="run-failures", config=config, registry=queues,
            purpose="run executions that ended FAILED/TIMED_OUT/ABORTED, from an EventBridge rule")
        rule = events.Rule(self, "RunFailedRule", description="stepcrew run executions that ended without success",
                           event_pattern=events.EventPattern(
                               source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
                               detail={"status": list(C.FAILED_EXECUTION_STATUSES),
                                       "stateMachineArn": [self.state_machines["run"].state_machine_arn]}))
        rule.add_target(targets.SqsQueue(self.run_failures))

    # ---------------------------------------------------------------------------------------- machines
    def _function_arn(self, name: str) -> str:
        return self._functions[name].function_arn

    def _state_machine_arn(self, name: str) -> str:
        return self.state_machines[name].state_machine_arn

    def _state_machine(self, name: str) -> sfn.StateMachine:
        config = self.config
        subs = wiring.substitutions(name, self._function_arn, self._state_machine_arn)
        used_functions = sorted(wiring.SUBSTITUTIONS[key].name for key in subs
                                if wiring.SUBSTITUTIONS[key].kind == "function")
        prefix = name.title()
        log_group = logs.LogGroup(self, f"{prefix}Logs",
                                  log_group_name=f"/aws/vendedlogs/states/{config.resource_name(name)}",
                                  retention=config.log_retention, removal_policy=config.removal_policy)
        role = iam.Role(self, f"{prefix}Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                        description=f"stepcrew {config.stage} {name} state machine")
        role.add_to_policy(iam.PolicyStatement(
            sid="InvokeOwnFunctions", actions=["lambda:InvokeFunction"],
            resources=sorted({self._function_arn(f) for f in used_functions}, key=str)))
        machine = sfn.StateMachine(
            self, f"{prefix}StateMachine", state_machine_name=config.resource_name(name),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(wiring.STATE_MACHINES[name].read_text()),
            definition_substitutions=subs, role=role, timeout=TIMEOUTS[name], tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            removal_policy=config.removal_policy,
        )
        acknowledge(role.node.find_child("DefaultPolicy"), "AwsSolutions-IAM5[Resource::*]",
                    f"{name} state machine: CloudWatch Logs delivery (logs:CreateLogDelivery etc.) and X-Ray "
                    "(xray:PutTraceSegments etc.) accept no resource-level permissions, so they need Resource '*'.")
        return machine

    def _allow_child_executions(self, run: sfn.StateMachine, agent: sfn.StateMachine) -> None:
        """``states:startExecution.sync:2`` in the run ASL: start/describe/stop agent executions and manage the
        managed events rule that reports their completion."""
        stack = Stack.of(self)
        executions = stack.format_arn(service="states", resource="execution",
                                      resource_name=f"{self.config.resource_name('agent')}:*",
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)
        run.role.add_to_principal_policy(iam.PolicyStatement(
            sid="StartAgentLoops", actions=["states:StartExecution"], resources=[agent.state_machine_arn]))
        run.role.add_to_principal_policy(iam.PolicyStatement(
            sid="FollowAgentLoops", actions=["states:DescribeExecution", "states:StopExecution"],
            resources=[executions]))
        run.role.add_to_principal_policy(iam.PolicyStatement(
            sid="SyncEventsRule", actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[stack.format_arn(service="events", resource="rule", resource_name=C.SYNC_EVENTS_RULE)]))
        acknowledge(run.role.node.find_child("DefaultPolicy"),
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                    f"execution:{self.config.resource_name('agent')}:*]",
                    "run state machine: the agent-loop executions it starts are named per run, sub-task and redrive "
                    "(<run_id>-w<wave>-<index>-r<redrive count>), so describe/stop must name all executions of the "
                    "agent machine only.")
