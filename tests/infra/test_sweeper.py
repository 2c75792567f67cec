"""The deployed orphan sweep in the template: the schedule, the sweeper's least-privilege role, its DLQ and alarms, and
the replay command of the run-failures alarm (``stepcrew runs redrive``)."""

from __future__ import annotations

import json

import pytest
from iam_helpers import allows, as_list
from stepcrew import wiring

from stepcrew_infra import constants as C

pytestmark = pytest.mark.infra


def _function_id(synth) -> str:
    return synth.logical_id(synth.stack.functions["sweeper"].function)


def _statements(synth) -> list[dict]:
    fn = synth.resources[_function_id(synth)]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    return [st for p in synth.of_type("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
            for st in p["Properties"]["PolicyDocument"]["Statement"]]


def test_an_eventbridge_rule_invokes_the_sweeper_every_15_minutes(synth):
    rules = [r["Properties"] for r in synth.of_type("AWS::Events::Rule").values()
             if r["Properties"].get("ScheduleExpression")]
    targets = [(r["ScheduleExpression"], t) for r in rules for t in r["Targets"]
               if t["Arn"] == {"Fn::GetAtt": [_function_id(synth), "Arn"]}]
    assert [expr for expr, _ in targets] == ["rate(15 minutes)"]
    assert targets[0][1]["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    permissions = [p["Properties"] for p in synth.of_type("AWS::Lambda::Permission").values()
                   if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [_function_id(synth), "Arn"]}]
    assert [p["Principal"] for p in permissions] == ["events.amazonaws.com"]


def test_the_sweeper_may_describe_run_executions_and_scan_gsi1_only(synth):
    statements = _statements(synth)
    states = [st for st in statements if any(a.startswith("states:") for a in as_list(st["Action"]))]
    assert [as_list(st["Action"]) for st in states] == [["states:DescribeExecution"]]
    resource = json.dumps(states[0]["Resource"])
    assert ":execution:stepcrew-dev-run:*" in resource and "stepcrew-dev-agent" not in resource
    for action in ("states:StartExecution", "states:StopExecution", "states:RedriveExecution",
                   "states:SendTaskSuccess", "dynamodb:DeleteTable", "dynamodb:CreateTable"):
        assert not any(allows(st, action) for st in statements), action
    scans = [st for st in statements if allows(st, "dynamodb:Scan")]
    assert len(scans) == 1 and len(as_list(scans[0]["Resource"])) == 1
    assert json.dumps(scans[0]["Resource"]).endswith('/index/GSI1"]}') or "/index/GSI1" in json.dumps(scans[0])
    assert "/index/GSI1" in json.dumps(scans[0]["Resource"])  # never the table itself
    for st in statements:  # no other statement allows a Scan (the table users' grant has none)
        if st is not scans[0]:
            assert not allows(st, "dynamodb:Scan"), st
    env = synth.resources[_function_id(synth)]["Properties"]["Environment"]["Variables"]
    assert env["STEPCREW_RUN_STATE_MACHINE_ARN"] == {"Ref": synth.logical_id(synth.stack.orchestration.state_machines["run"])}
    assert wiring.FUNCTIONS["sweeper"].sweeps_runs and [n for n, s in wiring.FUNCTIONS.items() if s.sweeps_runs] == ["sweeper"]


def test_the_sweeper_has_a_dead_letter_queue_with_a_depth_alarm_and_an_error_alarm(synth):
    assert "sweeper" in C.ASYNC_FUNCTIONS
    queue = synth.stack.queues["sweeper-dlq"]
    fn = synth.resources[_function_id(synth)]["Properties"]
    assert fn["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [synth.logical_id(queue), "Arn"]}}
    descriptions = [a["Properties"]["AlarmDescription"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()]
    dlq = [d for d in descriptions if "stepcrew-dev-sweeper-dlq" in d]
    assert len(dlq) == 1 and "aws lambda invoke --function-name <function> --invocation-type Event" in dlq[0]
    assert any(d.startswith("Function sweeper:") for d in descriptions)


def test_the_run_failures_alarm_replays_with_stepcrew_runs_redrive(synth):
    descriptions = [a["Properties"]["AlarmDescription"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()]
    run_failures = [d for d in descriptions if "stepcrew-dev-run-failures" in d]
    assert len(run_failures) == 1
    assert "stepcrew runs redrive <Body.detail.name> --aws" in run_failures[0]
    assert "aws stepfunctions redrive-execution" not in run_failures[0]
