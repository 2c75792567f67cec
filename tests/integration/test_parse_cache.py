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
