"""Child execution names on the local runtime (moto's interpreter with stepcrew's hook).

The run ASL names each sub-task's child execution ``<run_id>-w<wave index>-<index in the wave>-r<redrive count>``
(RunSubtask in statemachines/run.asl.json). moto's context object has no ``$$.Execution.RedriveCount``: the hook adds
it (0: there is no redrive locally) and checks execution names as StartExecution does (1-80 characters), so a run
whose ids are the longest the models allow must still succeed, with those names.
"""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError
from stepcrew import wiring
from stepcrew.crew import load_crew
from stepcrew.engines.testing import ScriptedModel, reply
from stepcrew.llm import registry
from stepcrew.models import RunRequest, RunStatus, SubtaskStatus
from stepcrew.service import create_run, run_result, start_run

pytestmark = pytest.mark.integration

PROVIDER = "scripted_child_names"


@pytest.fixture(autouse=True)
def _unregister_provider():
    yield
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def _machine(rt, states: dict) -> str:
    definition = {"StartAt": next(iter(states)), "States": states}
    return rt.sfn.create_state_machine(name=f"t-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition),
                                       roleArn=rt.role_arn)["stateMachineArn"]


def _output(rt, arn: str, execution_input: dict) -> dict:
    execution = rt.sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))["executionArn"]
    assert rt.wait(execution, timeout_s=30) == "SUCCEEDED", rt.sfn.describe_execution(executionArn=execution)
    return json.loads(rt.sfn.describe_execution(executionArn=execution)["output"])


def _subtask(id_: str, depends_on: list[str] | None = None) -> dict:
    return {"id": id_, "title": "Sub-task", "instructions": "Answer.", "depends_on": depends_on or [],
            "expected_output": "a sentence", "tools": []}


def test_a_run_with_the_longest_ids_succeeds_and_names_its_children_per_wave_and_redrive(local_rt):
    # Given: a 39-character run id and 40-character sub-task ids (the longest RunId / SubtaskId allow), two in the
    # first wave and one after them
    run_id = ("lr" + uuid.uuid4().hex + "-longest")[:39]
    a, b, c = ("alpha_" + "x" * 34), ("beta_" + "y" * 35), ("gamma_" + "z" * 34)
    assert {len(a), len(b), len(c)} == {40}
    plan = json.dumps({"subtasks": [_subtask(a), _subtask(b), _subtask(c, [a, b])], "rationale": "test"})
    model = ScriptedModel(by_purpose={"plan": [reply(plan)], "act": [reply("done")] * 3,
                                      "synthesize": [reply("# Report\ndone")],
                                      "review": [reply(json.dumps({"accuracy": 1, "completeness": 1, "relevance": 1,
                                                                   "feedback": "ok"}))]})
    registry.register(PROVIDER, lambda tier: model)
    request = RunRequest(goal="Answer three questions", provider=PROVIDER, routing={"cache": False})
    run = create_run(request, load_crew("default"), local_rt.store, run_id=run_id)
    # When
    run = start_run(run, local_rt.store, local_rt)
    local_rt.wait(run.execution_arn, timeout_s=120)
    # Then: the run succeeded, every sub-task ran as its own child execution, named by its place in the waves
    result = run_result(local_rt.store, run_id)
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert all(s.status == SubtaskStatus.SUCCEEDED for s in result.subtasks)
    agent = local_rt.state_machine_arn("agent")
    children = [e for page in local_rt.sfn.get_paginator("list_executions").paginate(stateMachineArn=agent)
                for e in page["executions"] if e["name"].startswith(f"{run_id}-")]
    by_name = {}
    for child in children:
        described = local_rt.sfn.describe_execution(executionArn=child["executionArn"])
        assert described["status"] == "SUCCEEDED"
        by_name[child["name"]] = json.loads(described["input"])["subtask_id"]
    assert by_name == {f"{run_id}-w0-0-r0": a, f"{run_id}-w0-1-r0": b, f"{run_id}-w1-0-r0": c}
    assert max(len(n) for n in by_name) <= 80


def test_the_context_object_has_a_redrive_count_of_0_at_every_level(local_rt):
    # the top level, a Map iteration and a child execution started by startExecution.sync:2 (AWS: 0 until redriven)
    child = _machine(local_rt, {"P": {"Type": "Pass", "Parameters": {"n.$": "$$.Execution.RedriveCount"},
                                      "End": True}})
    parent = _machine(local_rt, {
        "Top": {"Type": "Pass", "Parameters": {"n.$": "$$.Execution.RedriveCount"}, "ResultPath": "$.top",
                "Next": "Each"},
        "Each": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.each",
                 "ItemSelector": {"n.$": "$$.Execution.RedriveCount"},
                 "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Child", "States": {
                     "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                               "Parameters": {"StateMachineArn": child, "Input": {"from_map.$": "$.n"}},
                               "ResultSelector": {"from_map.$": "$.Input.from_map", "child.$": "$.Output.n"},
                               "End": True}}},
                 "End": True}})
    out = _output(local_rt, parent, {"items": [1, 2]})
    assert out["top"] == {"n": 0}
    assert out["each"] == [{"from_map": 0, "child": 0}, {"from_map": 0, "child": 0}]


def test_the_real_child_name_differs_for_redrive_count_1(local_rt):
    # moto cannot redrive: evaluate the real Name expression with the redrive count taken from the input instead
    # of the context object, in moto's intrinsic functions, for a first attempt and a redrive
    run = json.loads(wiring.STATE_MACHINES["run"].read_text())
    wave = run["States"]["RunWaves"]["ItemProcessor"]["States"]["RunWave"]
    expression = wave["ItemProcessor"]["States"]["RunSubtask"]["Parameters"]["Name.$"]
    assert "$$.Execution.RedriveCount" in expression
    arn = _machine(local_rt, {"Name": {"Type": "Pass", "End": True, "Parameters": {
        "name.$": expression.replace("$$.Execution.RedriveCount", "$.redrive_count")}}})
    names = [_output(local_rt, arn, {"run_id": "run-a", "wave": 1, "index": 2, "subtask_id": "s", "redrive_count": n})
             ["name"] for n in (0, 1)]
    assert names == ["run-a-w1-2-r0", "run-a-w1-2-r1"]


def test_execution_names_are_checked_as_start_execution_does(local_rt):
    arn = _machine(local_rt, {"P": {"Type": "Pass", "End": True}})
    ok = local_rt.sfn.start_execution(stateMachineArn=arn, name="n" * 80, input="{}")["executionArn"]
    assert ok.endswith(":" + "n" * 80)
    with pytest.raises(ClientError) as too_long:
        local_rt.sfn.start_execution(stateMachineArn=arn, name="n" * 81, input="{}")
    assert too_long.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as invalid:
        local_rt.sfn.start_execution(stateMachineArn=arn, name="a:b", input="{}")
    assert invalid.value.response["Error"]["Code"] == "InvalidName"
