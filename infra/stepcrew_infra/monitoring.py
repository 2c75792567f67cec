"""Dashboard and alarms; every alarm notifies one SNS topic (KMS-encrypted, TLS only).

Alarms (period :data:`constants.ALARM_PERIOD`):

- run failure rate: 100 * (FAILED + TIMED_OUT + ABORTED) / started executions of the run machine
  > :data:`constants.RUN_FAILURE_RATE_PERCENT` percent;
- run duration: p95 of the run machine's ExecutionTime (ms) > :data:`constants.RUN_P95_DURATION_MS`;
- DLQ depth: ApproximateNumberOfMessagesVisible > 0 on every dead-letter queue (one alarm each);
- function error rate: 100 * Errors / Invocations > :data:`constants.FUNCTION_ERROR_RATE_PERCENT` percent (one
  alarm per function).

The dashboard shows runs started/succeeded/failed and duration p50/p95 (Step Functions metrics), tokens, cost and
run outcomes from the custom namespace :data:`constants.METRICS_NAMESPACE` (metrics the functions emit with
Powertools, dimension ``service``; summed over services with a SEARCH expression), tool errors, DLQ depth and
Lambda throttles.

The topic's key is a customer managed key because CloudWatch alarms cannot publish to a topic encrypted with the
AWS managed key ``alias/aws/sns`` (its policy cannot grant cloudwatch.amazonaws.com; SNS encryption docs).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.functions import pascal


def _search(metric: str, stat: str = "Sum") -> str:
    """A SEARCH over every ``service`` of the custom namespace for one metric, summed into one line."""
    seconds = int(C.ALARM_PERIOD.to_seconds())
    return f"SUM(SEARCH('{{{C.METRICS_NAMESPACE},service}} MetricName=\"{metric}\"', '{stat}', {seconds}))"


class Monitoring(Construct):
    """``topic``, ``dashboard``, ``alarms`` (alarm construct id -> alarm)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig,
                 state_machines: dict[str, sfn.StateMachine], functions: dict[str, lambda_.IFunction],
                 queues: dict[str, sqs.Queue]) -> None:
        super().__init__(scope, construct_id)
        key = kms.Key(self, "AlarmsKey", enable_key_rotation=True, removal_policy=config.removal_policy,
                      description=f"stepcrew {config.stage}: encrypts the alarm topic")
        key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")]))
        self.topic = sns.Topic(self, "AlarmTopic", topic_name=config.resource_name("alarms"), master_key=key,
                               enforce_ssl=True, display_name=f"stepcrew {config.stage} alarms")
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}

        run = state_machines["run"]
        period = C.ALARM_PERIOD
        started = run.metric_started(period=period, statistic="Sum")
        ended_badly = {"failed": run.metric_failed(period=period, statistic="Sum"),
                       "timedout": run.metric_timed_out(period=period, statistic="Sum"),
                       "aborted": run.metric_aborted(period=period, statistic="Sum")}
        failure_rate = cw.MathExpression(
            expression="IF(started > 0, 100 * (failed + timedout + aborted) / started, 0)",
            using_metrics={"started": started, **ended_badly}, label="run failure rate (%)", period=period)
        self._alarm("RunFailureRate", failure_rate, C.RUN_FAILURE_RATE_PERCENT,
                    f"More than {C.RUN_FAILURE_RATE_PERCENT}% of runs failed, timed out or were aborted")
        p95 = run.metric_time(period=period, statistic="p95")
        self._alarm("RunDurationP95", p95, C.RUN_P95_DURATION_MS,
                    f"p95 run duration above {C.RUN_P95_DURATION_MS // 60000} min", evaluation_periods=3,
                    datapoints_to_alarm=3)
        for name, queue in sorted(queues.items()):
            depth = queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1),
                                                                        statistic="Maximum")
            self._alarm(f"Dlq{pascal(name.replace('-', '_'))}Depth", depth, 0,
                        f"Dead-letter queue {config.resource_name(name)} holds messages. Replay: "
                        f"{C.redrive_command(name)}")
        for name, fn in sorted(functions.items()):
            errors = cw.MathExpression(
                expression="IF(invocations > 0, 100 * errors / invocations, 0)",
                using_metrics={"errors": fn.metric_errors(period=period, statistic="Sum"),
                               "invocations": fn.metric_invocations(period=period, statistic="Sum")},
                label=f"{name} error rate (%)", period=period)
            self._alarm(f"{pascal(name)}ErrorRate", errors, C.FUNCTION_ERROR_RATE_PERCENT,
                        f"Function {name}: more than {C.FUNCTION_ERROR_RATE_PERCENT}% of invocations errored",
                        evaluation_periods=3, datapoints_to_alarm=2)

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=config.resource_name("dashboard"),
                                      default_interval=Duration.days(1))
        machines = sorted(state_machines.items())
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Runs", width=12, left=[
                started.with_(label="started"), run.metric_succeeded(period=period, statistic="Sum", label="succeeded"),
                ended_badly["failed"].with_(label="failed"), ended_badly["timedout"].with_(label="timed out"),
                ended_badly["aborted"].with_(label="aborted")]),
            cw.GraphWidget(title="Execution duration (ms)", width=12, left=[
                sm.metric_time(period=period, statistic=stat, label=f"{name} {stat}")
                for name, sm in machines for stat in ("p50", "p95")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Tokens", width=8, left=[
                cw.MathExpression(expression=_search(m), label=m, period=period)
                for m in ("InputTokens", "OutputTokens")]),
            cw.GraphWidget(title="Cost (USD)", width=8, left=[
                cw.MathExpression(expression=_search("CostUSD"), label="CostUSD", period=period)]),
            cw.GraphWidget(title="Run outcomes (recorded)", width=8, left=[
                cw.MathExpression(expression=_search(m), label=m, period=period)
                for m in ("RunsSucceeded", "RunsFailed")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Tool errors", width=8, left=[
                cw.MathExpression(expression=_search("ToolErrors"), label="ToolErrors (metric)", period=period),
                *[functions[n].metric_errors(period=period, statistic="Sum", label=f"{n} Lambda errors")
                  for n in C.TOOL_FUNCTIONS if n in functions]]),
            cw.GraphWidget(title="Dead-letter queue depth", width=8, left=[
                q.metric_approximate_number_of_messages_visible(period=Duration.minutes(1), statistic="Maximum",
                                                                label=name)
                for name, q in sorted(queues.items())]),
            cw.GraphWidget(title="Lambda throttles", width=8, left=[
                fn.metric_throttles(period=period, statistic="Sum", label=name)
                for name, fn in sorted(functions.items())]),
        )
        self.dashboard.add_widgets(cw.AlarmStatusWidget(
            title="Alarms", width=24, alarms=[self.alarms[k] for k in sorted(self.alarms)]))

    def _alarm(self, construct_id: str, metric: cw.IMetric, threshold: float, description: str, *,
               evaluation_periods: int = 1, datapoints_to_alarm: int = 1) -> cw.Alarm:
        alarm = cw.Alarm(self, construct_id, metric=metric, threshold=threshold,
                         comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                         evaluation_periods=evaluation_periods, datapoints_to_alarm=datapoints_to_alarm,
                         treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
        alarm.add_alarm_action(self._action)
        self.alarms[construct_id] = alarm
        return alarm
