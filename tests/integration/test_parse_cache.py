"""The local hook parses each state machine definition once per process (moto 5.2.5 parses it at CreateStateMachine
and again at every execution start), and executions sharing the parsed program stay independent.

Given a fresh definition (a Map over its input, a Pass with Parameters from the input), when a state machine is
created with it and three executions with different inputs run at the same time, then the parser ran once for that
definition, every later parse was answered from the cache, and each execution's output is computed from its own
input only."""

from __future__ import annotations

import json
import uuid

import pytest
from stepcrew.local import hook
from stepcrew.local.runtime import LocalRuntime

pytestmark = pytest.mark.integration


def test_a_definition_is_parsed_once_and_its_executions_stay_independent():
    definition = json.dumps({
        "Comment": f"parse-cache {uuid.uuid4()}",  # a definition no other test has parsed in this process
        "StartAt": "Each",
        "States": {
            "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 4,
                     "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Tag",
                                       "States": {"Tag": {"Type": "Pass", "End": True,
                                                          "Parameters": {"value.$": "$"}}}},
                     "ResultPath": "$.tagged", "Next": "Done"},
            "Done": {"Type": "Pass", "End": True, "Parameters": {"who.$": "$.who", "tagged.$": "$.tagged"}},
        },
    })
    with LocalRuntime(fast_waits=True) as rt:
        before = hook._parsed.cache_info()
        arn = rt.sfn.create_state_machine(name=f"parse-cache-{uuid.uuid4().hex[:8]}", definition=definition,
                                          roleArn=rt.role_arn, type="STANDARD")["stateMachineArn"]
        inputs = {f"caller-{n}": list(range(n, n + 3)) for n in range(3)}
        started = {who: rt.sfn.start_execution(stateMachineArn=arn, input=json.dumps({"who": who, "items": items}))
                   ["executionArn"] for who, items in inputs.items()}
        outputs = {}
        for who, execution in started.items():
            assert rt.wait(execution, timeout_s=120) == "SUCCEEDED"
            outputs[who] = json.loads(rt.sfn.describe_execution(executionArn=execution)["output"])
        after = hook._parsed.cache_info()
    assert after.misses - before.misses == 1, "parsed more than once"
    assert after.hits - before.hits >= len(inputs), "an execution start parsed the definition again"
    assert outputs == {who: {"who": who, "tagged": [{"value": v} for v in items]} for who, items in inputs.items()}


def test_a_parsed_program_is_kept_on_disk_and_a_bad_file_is_parsed_anew(tmp_path, monkeypatch):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path))
    original = AmazonStateLanguageParser.parse
    if hasattr(original, "__func__"):
        original = original.__func__
    calls = []

    def counting(definition):
        calls.append(definition)
        return original(definition)

    definition = json.dumps({"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True,
                                                                    "Parameters": {"got.$": "$.x"}}}})
    first = hook._disk_cached(counting)(definition)  # parsed and written
    (path,) = (tmp_path / "cache" / "asl").glob("*.pickle")
    program, tree = hook._disk_cached(counting)(definition)  # a new process's cache: loaded, not parsed
    assert len(calls) == 1 and tree is None and first[1] is not None
    assert type(program) is type(first[0])
    path.write_bytes(b"not a pickle")
    again = hook._disk_cached(counting)(definition)
    assert len(calls) == 2 and again[1] is not None  # parsed anew, and the file rewritten
    assert hook._disk_cached(counting)(definition)[1] is None and len(calls) == 2
    monkeypatch.setenv(hook.ASL_CACHE_ENV, "off")
    hook._disk_cached(counting)(definition)
    assert len(calls) == 3
    with pytest.raises(Exception):  # a definition that does not parse raises, and nothing is kept for it
        hook._disk_cached(counting)('{"StartAt": "Nowhere", "States": {')
    assert len(list((tmp_path / "cache" / "asl").glob("*.pickle"))) == 1


def test_an_execution_runs_from_a_program_loaded_from_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path))
    definition = json.dumps({"Comment": f"disk {uuid.uuid4()}", "StartAt": "Echo",
                             "States": {"Echo": {"Type": "Pass", "End": True, "Parameters": {"got.$": "$.x"}}}})
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    hook._disk_cached(AmazonStateLanguageParser.parse)(definition)  # as an earlier process left it
    with LocalRuntime(fast_waits=True) as rt:
        arn = rt.sfn.create_state_machine(name=f"disk-{uuid.uuid4().hex[:8]}", definition=definition,
                                          roleArn=rt.role_arn, type="STANDARD")["stateMachineArn"]
        run = rt.sfn.start_execution(stateMachineArn=arn, input=json.dumps({"x": 41}))["executionArn"]
        assert rt.wait(run) == "SUCCEEDED"
        assert json.loads(rt.sfn.describe_execution(executionArn=run)["output"]) == {"got": 41}
