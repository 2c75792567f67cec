"""Contract of the local hook (stepcrew.local.hook) with moto's ASL interpreter.

The hook patches moto internals (pinned moto==5.2.5); these tests are the guard. Each one runs a SMALL state
machine written here, with plain Python handlers registered on the runtime, and asserts what AWS would do:
Task output = handler return, Retry/Catch on the exception class name, ``startExecution.sync(:2)``, task
tokens, fast waits, state persistence, and that the real ASL files are accepted after rendering.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import random
import threading
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from stepcrew import wiring
from stepcrew.local import hook
from stepcrew.local.runtime import LocalRuntime
from stepcrew.local.durable import StateDB
from stepcrew.local.state import default_state_dir

pytestmark = pytest.mark.integration

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


class FlakyError(Exception):
    """Raised by a handler that fails a few times, then works."""


class BudgetExceededError(Exception):
    """A custom error name that a Catch matches."""


# ---------------------------------------------------------------------------------------------------- helpers


def task(function: str, *, end: bool = True, next_: str | None = None, **extra) -> dict:
    state = {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": function, "Payload.$": "$"},
             "OutputPath": "$.Payload", **extra}
    if next_:
        state["Next"] = next_
    else:
        state["End"] = end
    return state


def machine(rt: LocalRuntime, states: dict, start: str | None = None) -> str:
    definition = {"StartAt": start or next(iter(states)), "States": states}
    name = f"t-{uuid.uuid4().hex[:12]}"
    return rt.sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=rt.role_arn)[
        "stateMachineArn"]


def execute(rt: LocalRuntime, arn: str, payload: dict | None = None) -> tuple[str, dict]:
    """Run to the end; returns (status, describe_execution output with ``output`` parsed)."""
    execution = rt.sfn.start_execution(stateMachineArn=arn, name=uuid.uuid4().hex,
                                       input=json.dumps(payload or {}))["executionArn"]
    status = rt.wait(execution, timeout_s=60, poll_s=0.01)
    described = rt.sfn.describe_execution(executionArn=execution)
    described["output"] = json.loads(described["output"]) if described.get("output") else None
    return status, described


# ---------------------------------------------------------------------------------------------------- (a) output


def test_task_output_is_the_handler_return_and_context_is_lambda_like(local_rt):
    seen = {}

    def echo(event, context):
        seen.update(event=event, name=context.function_name, arn=context.invoked_function_arn,
                    remaining=context.get_remaining_time_in_millis(), request=context.aws_request_id,
                    memory=context.memory_limit_in_mb, log_group=context.log_group_name)
        return {"doubled": event["n"] * 2, "tags": ["a", "b"]}

    local_rt.register_handler("echo", echo)
    status, out = execute(local_rt, machine(local_rt, {"T": task("echo")}), {"n": 21})

    assert status == "SUCCEEDED"
    assert out["output"] == {"doubled": 42, "tags": ["a", "b"]}
    assert seen["event"] == {"n": 21}
    assert seen["name"] == "echo" and seen["arn"].endswith(":function:echo")
    assert seen["remaining"] > 0 and seen["memory"] > 0 and seen["request"] and seen["log_group"] == "/aws/lambda/echo"


def test_bare_function_arn_resource_and_full_name_override(local_rt):
    local_rt.register_handler("stepcrew-local-guard", lambda event, context: {"guarded": event["run_id"]})
    arn = machine(local_rt, {"T": {"Type": "Task", "Resource": local_rt.function_arn("guard"), "End": True}})

    status, out = execute(local_rt, arn, {"run_id": "r1"})

    assert status == "SUCCEEDED"
    assert out["output"] == {"guarded": "r1"}


def test_real_function_is_loaded_by_path_with_a_powertools_compatible_context(local_rt):
    # The real calculator handler (Powertools Logger.inject_lambda_context) rejects a malformed event with
    # pydantic's ValidationError: reaching validation proves the module loaded and the context was accepted.
    states = {"T": {**task(local_rt.function_arn("tool_calculator")),
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]},
              "Caught": {"Type": "Pass", "End": True}}
    status, out = execute(local_rt, machine(local_rt, states), {"not": "a tool invocation"})

    assert status == "SUCCEEDED"
    assert out["output"]["error"]["Error"] == "ValidationError"
    assert hook.resolve_handler("stepcrew-local-tool_calculator").__module__ == "stepcrew_fn_tool_calculator"
    assert hook.resolve_handler("no_such_function") is None


# ---------------------------------------------------------------------------------------------------- (b) retry


def test_retry_on_exception_class_name_then_success(local_rt):
    calls = []

    def flaky(event, context):
        calls.append(event)
        if len(calls) <= 2:
            raise FlakyError(f"attempt {len(calls)}")
        return {"attempts": len(calls)}

    local_rt.register_handler("flaky", flaky)
    retry = [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}]
    arn = machine(local_rt, {"T": task("flaky", Retry=retry)})

    status, out = execute(local_rt, arn, {"k": 1})

    assert status == "SUCCEEDED"
    assert out["output"] == {"attempts": 3}
    assert len(calls) == 3
    failed = [e["taskFailedEventDetails"] for e in local_rt.execution_history(out["executionArn"])
              if e["type"] == "TaskFailed"]
    assert [f["error"] for f in failed] == ["FlakyError", "FlakyError"]
    assert json.loads(failed[0]["cause"]) == {"errorType": "FlakyError", "errorMessage": "attempt 1"}


def test_retry_exhausted_fails_the_execution_with_the_class_name(local_rt):
    def always(event, context):
        raise FlakyError("still failing")

    local_rt.register_handler("always", always)
    arn = machine(local_rt, {"T": task("always", Retry=[{"ErrorEquals": ["FlakyError"], "MaxAttempts": 2}])})

    status, out = execute(local_rt, arn)

    assert status == "FAILED"
    assert out["error"] == "FlakyError"


# ---------------------------------------------------------------------------------------------------- (c, d) catch


def test_catch_routes_a_custom_exception_name_to_its_catcher(local_rt):
    def spend(event, context):
        raise BudgetExceededError("over by 3 USD")

    local_rt.register_handler("spend", spend)
    catch = [{"ErrorEquals": ["FlakyError"], "ResultPath": "$.error", "Next": "Wrong"},
             {"ErrorEquals": ["BudgetExceededError"], "ResultPath": "$.error", "Next": "OverBudget"}]
    states = {"T": task("spend", Catch=catch), "Wrong": {"Type": "Fail", "Error": "WrongCatcher"},
              "OverBudget": {"Type": "Pass", "End": True}}

    status, out = execute(local_rt, machine(local_rt, states), {"run_id": "r1"})

    assert status == "SUCCEEDED"
    assert out["output"]["run_id"] == "r1"
    assert out["output"]["error"]["Error"] == "BudgetExceededError"
    assert json.loads(out["output"]["error"]["Cause"])["errorMessage"] == "over by 3 USD"


def test_states_all_catches_any_exception_and_unknown_functions(local_rt):
    local_rt.register_handler("boom", lambda event, context: {}["missing"])
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
    caught = {"Type": "Pass", "End": True}

    status, out = execute(local_rt, machine(local_rt, {"T": task("boom", Catch=catch), "Caught": caught}))
    assert status == "SUCCEEDED"
    assert out["output"]["error"]["Error"] == "KeyError"

    status, out = execute(local_rt, machine(local_rt, {"T": task("nobody_home", Catch=catch), "Caught": caught}))
    assert status == "SUCCEEDED"
    assert out["output"]["error"]["Error"] == "Lambda.ResourceNotFoundException"


def test_unserialisable_return_is_a_marshal_error(local_rt):
    local_rt.register_handler("bad_return", lambda event, context: {"when": object()})

    status, out = execute(local_rt, machine(local_rt, {"T": task("bad_return")}))

    assert status == "FAILED"
    assert out["error"] == "Runtime.MarshalError"


# ---------------------------------------------------------------------------------------------------- (e) sfn


def _parent_and_child(rt: LocalRuntime, resource: str, child_fn: str) -> str:
    child = machine(rt, {"Child": task(child_fn)})
    parent = {"Start": {"Type": "Task", "Resource": resource,
                        "Parameters": {"StateMachineArn": child, "Name.$": "States.Format('{}-child', $.id)",
                                       "Input": {"n.$": "$.n"}},
                        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ChildFailed"}],
                        "End": True},
              "ChildFailed": {"Type": "Pass", "End": True}}
    return machine(rt, parent)


def test_start_execution_sync2_returns_the_child_output_as_json(local_rt):
    local_rt.register_handler("square", lambda event, context: {"square": event["n"] ** 2})
    arn = _parent_and_child(local_rt, "arn:aws:states:::states:startExecution.sync:2", "square")

    status, out = execute(local_rt, arn, {"id": "p1", "n": 7})

    assert status == "SUCCEEDED"
    assert out["output"]["Status"] == "SUCCEEDED"
    assert out["output"]["Output"] == {"square": 49}
    assert out["output"]["ExecutionArn"].endswith(":p1-child")
    assert isinstance(out["output"]["StartDate"], int)  # epoch ms, JSON-safe


def test_start_execution_sync_returns_the_child_output_as_a_string(local_rt):
    local_rt.register_handler("square", lambda event, context: {"square": event["n"] ** 2})
    arn = _parent_and_child(local_rt, "arn:aws:states:::states:startExecution.sync", "square")

    status, out = execute(local_rt, arn, {"id": "p2", "n": 3})

    assert status == "SUCCEEDED"
    assert json.loads(out["output"]["Output"]) == {"square": 9}


def test_a_failing_child_fails_the_parent_task_and_its_catch_fires(local_rt):
    def child_fails(event, context):
        raise BudgetExceededError("child over budget")

    local_rt.register_handler("child_fails", child_fails)
    arn = _parent_and_child(local_rt, "arn:aws:states:::states:startExecution.sync:2", "child_fails")

    status, out = execute(local_rt, arn, {"id": "p3", "n": 1})

    assert status == "SUCCEEDED"
    error = out["output"]["error"]
    assert error["Error"] == "States.TaskFailed"
    cause = json.loads(error["Cause"])
    assert cause["Status"] == "FAILED" and cause["Error"] == "BudgetExceededError"


@pytest.mark.parametrize("container", ["Map", "Parallel"])
def test_states_errors_propagate_out_of_map_and_parallel(local_rt, container):
    # The shape of run.asl.json's RunWaves: a failed child execution inside a Map; the Catch on the Map must
    # see States.TaskFailed (moto 5.2.5 turned it into States.Runtime).
    def child_fails(event, context):
        raise BudgetExceededError("no")

    local_rt.register_handler("child_fails", child_fails)
    child = machine(local_rt, {"Child": task("child_fails")})
    run_child = {"StartAt": "Run", "States": {"Run": {
        "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": child, "Input": {}}, "End": True}}}
    inner = ({"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"},
                                                                        **run_child}}
             if container == "Map" else {"Type": "Parallel", "Branches": [run_child]})
    states = {"Outer": {**inner, "End": True,
                        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Caught"}]},
              "Caught": {"Type": "Pass", "End": True}}

    status, out = execute(local_rt, machine(local_rt, states), {"items": [1]})

    assert status == "SUCCEEDED"
    assert out["output"]["error"]["Error"] == "States.TaskFailed"


def test_plain_start_execution_returns_the_arn_and_unnamed_starts_do_not_collide(local_rt):
    local_rt.register_handler("square", lambda event, context: {"square": 1})
    child = machine(local_rt, {"Child": task("square")})
    parent = machine(local_rt, {"Start": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                                          "Parameters": {"StateMachineArn": child, "Input": {}}, "End": True}})

    outputs = [execute(local_rt, parent)[1]["output"] for _ in range(2)]

    assert all(o["ExecutionArn"].startswith(child.replace(":stateMachine:", ":execution:")) for o in outputs)
    assert outputs[0]["ExecutionArn"] != outputs[1]["ExecutionArn"]


# ---------------------------------------------------------------------------------------------------- task token


def test_wait_for_task_token_resumes_on_success_and_on_failure(local_rt):
    tokens: list[str] = []
    arrived = threading.Event()

    def approval(event, context):
        tokens.append(event["token"])
        arrived.set()
        return {"status": "WAITING_APPROVAL"}

    local_rt.register_handler("approval_test", approval)
    states = {"Wait": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                       "Parameters": {"FunctionName": "approval_test", "Payload": {"token.$": "$$.Task.Token"}},
                       "ResultPath": "$.approval", "End": True,
                       "Catch": [{"ErrorEquals": ["RejectedError"], "ResultPath": "$.error", "Next": "Rejected"}]},
              "Rejected": {"Type": "Pass", "End": True}}
    arn = machine(local_rt, states)

    for outcome in ("success", "failure"):
        arrived.clear()
        execution = local_rt.sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        assert arrived.wait(30)
        if outcome == "success":
            local_rt.send_task_success(tokens[-1], {"approved": True})
        else:
            local_rt.send_task_failure(tokens[-1], "RejectedError", "not this time")
        assert local_rt.wait(execution, timeout_s=60, poll_s=0.01) == "SUCCEEDED"
        output = json.loads(local_rt.sfn.describe_execution(executionArn=execution)["output"])
        if outcome == "success":
            assert output == {"approval": {"approved": True}}
        else:
            assert output == {"error": {"Error": "RejectedError", "Cause": "not this time"}}


# ---------------------------------------------------------------------------------------------------- (f) waits


@pytest.fixture
def sleeps(monkeypatch):
    """Record the Retry sleeps instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(hook, "_real_sleep", recorded.append)
    return recorded


def test_fast_waits_shorten_retry_intervals(local_rt, sleeps):
    calls = []

    def once(event, context):
        calls.append(1)
        if len(calls) == 1:
            raise FlakyError("first")
        return {"ok": True}

    local_rt.register_handler("once", once)
    retry = [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 30, "MaxAttempts": 2}]

    status, _ = execute(local_rt, machine(local_rt, {"T": task("once", Retry=retry)}))

    assert status == "SUCCEEDED"
    assert sleeps == [hook.FAST_WAIT_S]


def test_fast_waits_shorten_wait_states(local_rt):
    states = {"W": {"Type": "Wait", "Seconds": 3600, "Next": "T"}, "T": {"Type": "Pass", "End": True}}

    status, _ = execute(local_rt, machine(local_rt, states), {"x": 1})  # would take an hour without the switch

    assert status == "SUCCEEDED"


def test_without_fast_waits_retry_follows_backoff_max_delay_and_full_jitter(sleeps, monkeypatch):
    with LocalRuntime(fast_waits=False) as rt:
        attempts = []

        def failing(event, context):
            attempts.append(1)
            raise FlakyError("no")

        rt.register_handler("failing", failing)
        plain = [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 30, "BackoffRate": 2.0, "MaxAttempts": 3,
                  "MaxDelaySeconds": 45}]
        assert execute(rt, machine(rt, {"T": task("failing", Retry=plain)}))[0] == "FAILED"
        assert sleeps == [30, 45, 45]  # 30, 60 -> 45, 120 -> 45: what AWS would wait (the recorder never sleeps)
        assert len(attempts) == 4

        sleeps.clear()
        monkeypatch.setattr(random, "uniform", lambda low, high: (low + high) / 2)
        jitter = [{**plain[0], "JitterStrategy": "FULL"}]
        assert execute(rt, machine(rt, {"T": task("failing", Retry=jitter)}))[0] == "FAILED"
        assert sleeps == [15, 22.5, 22.5]  # FULL jitter: uniform(0, capped interval)


# ---------------------------------------------------------------------------------------------------- (g) state


def _put(client, table: str, pk: str, sk: str, **attrs) -> None:
    client.put_item(TableName=table, Item={"PK": {"S": pk}, "SK": {"S": sk}, **attrs})


def _keys(client, table: str) -> set[tuple[str, str]]:
    return {(i["PK"]["S"], i["SK"]["S"]) for i in client.scan(TableName=table)["Items"]}


def test_local_state_round_trips_items_through_a_new_mock(tmp_path):
    # "inputs" is user data whose keys may be anything, including DynamoDB's own type tags
    item = {"n": {"N": "1.5"}, "m": {"M": {"l": {"L": [{"S": "x"}, {"BOOL": True}, {"B": b"\x01"}]}}},
            "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x02", b"\x03"]}, "ss": {"SS": ["a", "b"]}, "nul": {"NULL": True},
            "inputs": {"M": {"B": {"S": "not binary"}, "BS": {"S": "nor this"}, "M": {"M": {"B": {"B": b"\x04"}}}}}}
    with LocalRuntime(state_dir=tmp_path, read_only=False, fast_waits=True) as rt:
        _put(rt.client("dynamodb"), rt.table_name, "RUN#a", "META", **item)
        # durable before the call returned: another process's view of the folder already holds it
        assert StateDB(tmp_path, writable=False).count(rt.table_name) == 1

    with LocalRuntime(state_dir=tmp_path, read_only=True) as rt:
        got = rt.client("dynamodb").get_item(TableName=rt.table_name, Key={"PK": {"S": "RUN#a"}, "SK": {"S": "META"}})
    assert got["Item"] == {"PK": {"S": "RUN#a"}, "SK": {"S": "META"}, **item}


def test_local_state_keeps_writes_and_deletes_across_runtimes(tmp_path):
    with LocalRuntime(state_dir=tmp_path, fast_waits=True) as rt:
        ddb = rt.client("dynamodb")
        _put(ddb, rt.table_name, "RUN#a", "META", v={"S": "mine"})
        _put(ddb, rt.table_name, "RUN#b", "META", v={"S": "theirs"})

    with LocalRuntime(state_dir=tmp_path, fast_waits=True) as rt:
        ddb = rt.client("dynamodb")
        assert _keys(ddb, rt.table_name) == {("RUN#a", "META"), ("RUN#b", "META")}
        ddb.delete_item(TableName=rt.table_name, Key={"PK": {"S": "RUN#a"}, "SK": {"S": "META"}})
        _put(ddb, rt.table_name, "RUN#c", "META")

    with LocalRuntime(state_dir=tmp_path, read_only=True) as rt:
        assert _keys(rt.client("dynamodb"), rt.table_name) == {("RUN#b", "META"), ("RUN#c", "META")}


def test_a_run_cut_off_by_the_runtimes_exit_is_saved_failed_with_the_reason(tmp_path, monkeypatch):
    # Given a run whose first Task (the guard) is still running when the runtime exits (as on Ctrl-C)
    from stepcrew.local import runtime as runtime_module
    from stepcrew.models import AgentRole, Crew, Run, RunStatus

    started, release = threading.Event(), threading.Event()

    def stuck_guard(event, context):
        started.set()
        release.wait(30)
        return {}

    real_active = hook.active_invocations

    def active_invocations():  # the exit path has stopped the executions: let the stuck handler return
        release.set()
        return real_active()

    monkeypatch.setattr(hook, "active_invocations", active_invocations)
    role = AgentRole(name="r", role="r", goal="g")
    run = Run(run_id="cut-off-run", tenant="local", goal="g",
              crew=Crew(name="c", planner=role, workers=[role], reviewer=role, synthesizer=role))
    with LocalRuntime(state_dir=tmp_path, fast_waits=True) as rt:
        rt.register_handler("guard", stuck_guard)
        rt.store.create_run(run)
        rt.start_run(run.run_id)
        assert started.wait(30)
    # When the saved table is read by another runtime
    with LocalRuntime(state_dir=tmp_path, read_only=True) as rt:
        saved = rt.store.get_run(run.run_id)
        events = [e.kind for _, e in rt.store.list_events(run.run_id)]
    # Then the run is FAILED with a clear reason, not RUNNING/QUEUED forever
    assert saved.status == RunStatus.FAILED
    assert saved.error.code == runtime_module.CUT_OFF_CODE and "exited before the run finished" in saved.error.message
    assert saved.finished_at is not None and events[-1] == "run_failed"


def test_read_only_runtime_saves_nothing(tmp_path):
    with LocalRuntime(state_dir=tmp_path, read_only=True) as rt:
        _put(rt.client("dynamodb"), rt.table_name, "RUN#x", "META")
    assert not (tmp_path / "table.db").exists()


def test_default_state_dir_follows_stepcrew_home(monkeypatch, tmp_path):
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "state"
    monkeypatch.delenv("STEPCREW_HOME")
    assert default_state_dir() == Path.home() / ".stepcrew" / "state"


# ---------------------------------------------------------------------------------------------------- (h) real ASL


def test_real_asl_is_rendered_with_the_wiring_and_accepted(local_rt):
    for name in wiring.STATE_MACHINES:
        definition = local_rt.sfn.describe_state_machine(stateMachineArn=local_rt.state_machine_arn(name))[
            "definition"]
        assert "${" not in definition
        values = wiring.substitutions(name, local_rt.function_arn, local_rt.state_machine_arn)
        assert values and all(arn in definition for arn in values.values())
    run_definition = json.loads(local_rt.sfn.describe_state_machine(
        stateMachineArn=local_rt.state_machine_arn("run"))["definition"])
    assert "RunWaves" in run_definition["States"]
    assert local_rt.state_machine_arn("agent") in json.dumps(run_definition)


def test_invalid_asl_is_rejected_by_create_state_machine(local_rt):
    # moto's parser checks syntax and values (not the graph: a Next to a missing state is accepted), and its
    # InvalidDefinition error comes back with an empty code: match the message.
    with pytest.raises(ClientError, match="ASLParserException"):
        machine(local_rt, {"T": {"Type": "Tsk", "End": True}})
    with pytest.raises(ClientError, match="IntervalSeconds"):
        machine(local_rt, {"T": task("x", Retry=[{"ErrorEquals": ["A"], "IntervalSeconds": 0}])})


# ---------------------------------------------------------------------------------------------------- guards


def test_uninstall_restores_moto():
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    original_invoke = LambdaSimpleBackend.invoke
    with LocalRuntime(fast_waits=True):
        assert hook.is_installed() and LambdaSimpleBackend.invoke is not original_invoke
    assert not hook.is_installed()
    assert LambdaSimpleBackend.invoke is original_invoke
    assert "_normalise_response" not in StateTaskServiceSfn.__dict__
    assert retrier_decl.time is time


def test_runtime_restores_the_environment(monkeypatch):
    monkeypatch.setenv("STEPCREW_TABLE_NAME", "before")
    monkeypatch.delenv("STEPCREW_STAGE", raising=False)
    with LocalRuntime(table_name="stepcrew-other", extra_env={"STEPCREW_EXTRA": "1"}) as rt:
        assert (os.environ["STEPCREW_TABLE_NAME"], os.environ["STEPCREW_STAGE"]) == ("stepcrew-other", "local")
        assert os.environ["STEPCREW_EXTRA"] == "1"
        assert rt.client("dynamodb").describe_table(TableName="stepcrew-other")["Table"]["TableStatus"] == "ACTIVE"
    assert os.environ["STEPCREW_TABLE_NAME"] == "before"
    assert "STEPCREW_STAGE" not in os.environ and "STEPCREW_EXTRA" not in os.environ


def test_one_runtime_at_a_time(local_rt):
    with pytest.raises(RuntimeError, match="already active"):
        LocalRuntime().__enter__()
    assert local_rt.sfn.describe_state_machine(stateMachineArn=local_rt.state_machine_arn("run"))["status"] == "ACTIVE"


def test_other_moto_versions_are_refused(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "5.3.0")
    with pytest.raises(hook.MotoVersionError, match="moto==5.2.5"):
        LocalRuntime().__enter__()
    assert not hook.is_installed()


def test_metrics_left_by_an_invocation_are_dropped_when_metrics_are_disabled(local_rt):
    # The local runtime disables EMF output; without a flush Powertools would keep every metric forever.
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace="stepcrew-test")

    def emits(event, context):
        metrics.add_metric(name="ToolErrors", unit=MetricUnit.Count, value=1)
        return {"ok": True}

    local_rt.register_handler("emits", emits)
    for _ in range(3):
        local_rt.client("lambda").invoke(FunctionName=local_rt.function_arn("finalize").replace("finalize", "emits"),
                                         Payload=b"{}")
    assert dict(metrics.provider.metric_set) == {}
