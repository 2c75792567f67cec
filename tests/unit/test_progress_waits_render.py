"""The retry/wait lines of the progress view (stepcrew.progress_waits): rendering, the ASL retry arithmetic, and the
history follower against an AWS-shaped fake client (newest-first pages, a child execution, an exhausted retrier)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from stepcrew.progress_waits import ExecutionWaits, Retrier, StatePolicies, WaitNotice, render, show

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
RUN_ARN = "arn:aws:states:eu-west-1:111122223333:execution:stepcrew-run:r1"
AGENT_ARN = "arn:aws:states:eu-west-1:111122223333:execution:stepcrew-agent:r1-calc"
THROTTLE_RETRY = {"ErrorEquals": ["ModelThrottledError"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 2.0,
                  "MaxDelaySeconds": 5, "JitterStrategy": "FULL"}
RUN_DEF = {"StartAt": "Plan", "States": {
    "Plan": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Retry": [THROTTLE_RETRY], "Next": "Pause"},
    "Pause": {"Type": "Wait", "Seconds": 30, "Next": "RunWaves"},
    "RunWaves": {"Type": "Map", "ItemProcessor": {"StartAt": "RunSubtask", "States": {
        "RunSubtask": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "End": True}}},
        "End": True}}}
AGENT_DEF = {"StartAt": "RunToolCalls", "States": {"RunToolCalls": {"Type": "Map", "ItemProcessor": {
    "StartAt": "Calculator", "States": {"Calculator": {"Type": "Task", "Resource": "arn:aws:lambda:x", "End": True,
                                                       "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1}]}}},
    "End": True}}}


def line(notice: WaitNotice) -> str:
    buf = io.StringIO()
    show(Console(file=buf, width=400, force_terminal=False), notice)
    return buf.getvalue().strip()


# ------------------------------------------------------------------------------------------------ rendering
def test_a_scheduled_retry_names_the_call_the_error_and_the_next_attempt():
    n = WaitNotice(kind="retry_scheduled", at=T0, state="CallModel", subtask_id="calc", error="ModelThrottledError",
                   message="anthropic rate limit (HTTP 429)", attempt=1, retry=1, max_retries=3, delay_s=2.0,
                   jitter="FULL")
    assert line(n) == ("10:00:00 calc CallModel (worker) attempt 1 failed: ModelThrottledError (anthropic rate limit "
                       "(HTTP 429)); retry 1 of 3 in ≤ 2 s (full jitter)")


def test_fast_waits_say_the_real_interval_and_that_it_was_shortened():
    n = WaitNotice(kind="retry_scheduled", at=T0, state="Plan", error="ModelThrottledError", attempt=2, retry=2,
                   max_retries=3, delay_s=4.0, jitter="NONE", shortened_to=0.01, started_after_s=0.012)
    assert line(n) == ("10:00:00 Plan (planner) attempt 2 failed: ModelThrottledError; retry 2 of 3 in 4 s "
                       "(shortened to ≤ 0.01 s by fast waits), started after 0.01 s")


def test_a_tool_call_a_started_retry_an_exhausted_retrier_and_a_wait():
    tool = dict(at=T0, state="Calculator", subtask_id="calc", tool="calculator", error="Lambda.ServiceException")
    assert render(WaitNotice(kind="retry_started", retry=1, max_retries=3, started_after_s=1.5, **tool)) == (
        "[cyan]calc[/] tool [magenta]calculator[/] (Calculator) retry 1 of 3 started after 1.50 s")
    assert render(WaitNotice(kind="not_retried", attempt=4, retry=3, max_retries=3, **tool)).endswith(
        "attempt 4 [red]failed[/]: [bold]Lambda.ServiceException[/]; no retry left")
    assert render(WaitNotice(kind="not_retried", attempt=1, **tool)).endswith("not retried (no Retry for this error)")
    assert line(WaitNotice(kind="wait", at=T0, state="Pause", delay_s=30.0)) == "10:00:00 Wait state Pause: waiting 30 s"


# ------------------------------------------------------------------------------------------------ the ASL rules
def test_retrier_delays_follow_the_asl_formula_with_the_cap():
    r = Retrier.from_asl(THROTTLE_RETRY)
    assert [r.delay_s(n) for n in (1, 2, 3)] == [3.0, 5.0, 5.0]  # 3, 3*2=6 capped at 5, 12 capped at 5
    defaults = Retrier.from_asl({"ErrorEquals": ["X"]})
    assert (defaults.interval_s, defaults.max_attempts, defaults.backoff_rate, defaults.max_delay_s) == (1, 3, 2, None)
    assert [defaults.delay_s(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert Retrier(("States.TaskFailed",)).matches("ModelThrottledError")
    assert not Retrier(("States.TaskFailed",)).matches("States.Timeout")
    assert not Retrier(("Lambda.ServiceException",)).matches("ModelThrottledError")


def test_policies_are_found_inside_map_item_processors():
    p = StatePolicies.from_definition(AGENT_DEF)
    assert p.retriers["Calculator"][0].error_equals == ("States.ALL",)
    assert StatePolicies.from_definition(RUN_DEF).waits == {"Pause": 30.0}


# ------------------------------------------------------------------------------------------------ the follower
def ev(id_, type_, prev, secs, **details):
    key = type_[0].lower() + type_[1:]
    key = {"TaskStateEntered": "stateEnteredEventDetails", "WaitStateEntered": "stateEnteredEventDetails",
           "TaskStateExited": "stateExitedEventDetails"}.get(type_, key + "EventDetails")
    return {"id": id_, "type": type_, "previousEventId": prev, "timestamp": T0 + timedelta(seconds=secs),
            key: details}


def lam_params(payload):
    return json.dumps({"FunctionName": "arn:aws:lambda:eu-west-1:111122223333:function:f", "Payload": payload})


class FakeSfn:
    """AWS-shaped: newest-first pages of ``page`` events with a nextToken; histories grow between polls."""

    def __init__(self, page: int = 2):
        self.histories: dict[str, list[dict]] = {RUN_ARN: [], AGENT_ARN: []}
        self.page, self.calls = page, []

    def get_execution_history(self, executionArn, reverseOrder=False, maxResults=100, nextToken=None,
                              includeExecutionData=True):
        self.calls.append(executionArn)
        events = sorted(self.histories[executionArn], key=lambda e: e["id"], reverse=reverseOrder)
        start = int(nextToken or 0)
        chunk = events[start:start + min(maxResults, self.page)]
        more = start + len(chunk) < len(events)
        return {"events": chunk, **({"nextToken": str(start + len(chunk))} if more else {})}

    def describe_state_machine(self, stateMachineArn):
        name = stateMachineArn.rsplit(":", 1)[1]
        return {"definition": json.dumps({"stepcrew-run": RUN_DEF, "stepcrew-agent": AGENT_DEF}[name])}


def throttled(id_, prev, secs):
    return ev(id_, "TaskFailed", prev, secs, error="ModelThrottledError",
              cause=json.dumps({"errorType": "ModelThrottledError", "errorMessage": "rate limit (HTTP 429)"}))


def test_the_follower_reads_only_new_events_and_follows_child_executions():
    sfn, clock = FakeSfn(), [0.0]
    waits = ExecutionWaits(sfn, lambda: RUN_ARN, max_calls_per_s=100, clock=lambda: clock[0])
    sfn.histories[RUN_ARN] = [ev(1, "ExecutionStarted", 0, 0, input="{}"),
                              ev(2, "TaskStateEntered", 1, 0, name="Plan"),
                              ev(3, "TaskScheduled", 2, 0, parameters=lam_params({"run_id": "r1"})),
                              ev(4, "TaskStarted", 3, 0), throttled(5, 4, 1)]
    (first,) = waits.poll()
    assert (first.kind, first.state, first.error, first.message, first.attempt) == (
        "retry_scheduled", "Plan", "ModelThrottledError", "rate limit (HTTP 429)", 1)
    assert (first.retry, first.max_retries, first.delay_s, first.jitter) == (1, 2, 3.0, "FULL")
    assert waits.poll() == []  # not due yet (0.5 s per execution)

    sfn.histories[RUN_ARN] += [ev(6, "TaskScheduled", 5, 3.5, parameters=lam_params({})), ev(7, "TaskStarted", 6, 3.5),
                               throttled(8, 7, 4)]
    clock[0] = 1.0
    sfn.calls.clear()
    started, second = waits.poll()
    assert sfn.calls == [RUN_ARN, RUN_ARN]  # two pages of 2 reached event 5, the last one seen: no more
    assert (started.kind, started.retry, started.started_after_s) == ("retry_started", 1, 2.5)
    assert (second.attempt, second.retry, second.delay_s) == (2, 2, 5.0)  # 3 * 2 = 6, capped at 5

    sfn.histories[RUN_ARN] += [
        ev(9, "TaskScheduled", 8, 6, parameters=lam_params({})), ev(10, "TaskStarted", 9, 6), throttled(11, 10, 7),
        ev(12, "WaitStateEntered", 11, 8, name="Pause"),
        ev(13, "TaskStateEntered", 12, 9, name="RunSubtask"),
        ev(14, "TaskScheduled", 13, 9, parameters=json.dumps({"Input": {"run_id": "r1", "subtask_id": "calc"}})),
        ev(15, "TaskStarted", 14, 9),
        ev(16, "TaskSubmitted", 15, 9, resource="startExecution.sync:2", output=json.dumps({"ExecutionArn": AGENT_ARN}))]
    sfn.histories[AGENT_ARN] = [
        ev(1, "ExecutionStarted", 0, 9, input=json.dumps({"run_id": "r1", "subtask_id": "calc"})),
        ev(2, "TaskStateEntered", 1, 9, name="Calculator"),
        ev(3, "LambdaFunctionScheduled", 2, 9, parameters=lam_params({"call": {"name": "calculator", "arguments": {}}})),
        ev(4, "LambdaFunctionStarted", 3, 9),
        ev(5, "LambdaFunctionFailed", 4, 10, error="Lambda.ServiceException", cause="boom"),
        ev(6, "LambdaFunctionScheduled", 5, 10.25, parameters=lam_params({"call": {"name": "calculator"}})),
        ev(7, "ExecutionSucceeded", 6, 11)]
    clock[0] = 2.0
    kinds = [(n.kind, n.state, n.subtask_id, n.tool) for n in waits.poll()]
    assert kinds == [("retry_started", "Plan", None, None), ("not_retried", "Plan", None, None),
                     ("wait", "Pause", None, None)]  # the child is found in this read, read from the next one
    clock[0] = 3.0
    (tool,) = waits.poll()
    assert (tool.kind, tool.subtask_id, tool.tool, tool.error, tool.message, tool.started_after_s) == (
        "retry_scheduled", "calc", "calculator", "Lambda.ServiceException", "boom", 0.25)
    sfn.calls.clear()
    clock[0] = 4.0
    waits.poll(force=True)
    assert sfn.calls == [RUN_ARN]  # the child ended: never read again


def test_the_call_budget_is_shared_by_every_execution():
    sfn, clock = FakeSfn(page=100), [0.0]
    waits = ExecutionWaits(sfn, RUN_ARN, max_calls_per_s=1.0, clock=lambda: clock[0])
    from stepcrew.progress_waits import _Execution

    waits._executions = {RUN_ARN: _Execution(RUN_ARN, None), AGENT_ARN: _Execution(AGENT_ARN, "calc")}
    waits.poll()
    assert len(sfn.calls) == 1  # one token: one of the two due executions
    clock[0] = 1.0
    waits.poll()
    assert sfn.calls == [RUN_ARN, AGENT_ARN]  # the one read longest ago goes first
    waits.poll(force=True)
    assert len(sfn.calls) == 4  # the final read takes every open execution, whatever the budget


def test_an_access_error_turns_the_follower_off_with_one_notice():
    class Denied(FakeSfn):
        def get_execution_history(self, **kwargs):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetExecutionHistory")

    waits = ExecutionWaits(Denied(), RUN_ARN)
    (notice,) = waits.poll()
    assert notice.kind == "unavailable" and "AccessDeniedException" in render(notice)
    assert waits.poll(force=True) == []


@pytest.mark.parametrize("fast", [True, False])
def test_a_definition_that_cannot_be_read_still_shows_the_failure(fast):
    class NoDescribe(FakeSfn):
        def describe_state_machine(self, stateMachineArn):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeStateMachine")

    sfn = NoDescribe()
    sfn.histories[RUN_ARN] = [ev(1, "TaskStateEntered", 0, 0, name="Plan"), ev(2, "TaskScheduled", 1, 0),
                              ev(3, "TaskStarted", 2, 0), throttled(4, 3, 1)]
    (n,) = ExecutionWaits(sfn, RUN_ARN, fast_wait_cap=0.01 if fast else None).poll()
    assert not n.policy_known and "ModelThrottledError" in render(n) and "could not be read" in render(n)
