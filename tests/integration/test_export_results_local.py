"""``export_results`` in a whole local run (the real run and agent ASL, the real tool Lambda handler, a scripted
model, a test crew whose writer may use it): a run without ``allow_side_effects`` gets a dry run and writes nothing;
a run with it writes exactly one export even when the tool's Lambda dies right after the write (the ASL's crash
Retry runs it again, the receipt settles it), and a later replay of the same call (a resumed or redriven run) does
nothing again."""

from __future__ import annotations

import csv
import io
import json

import pytest

from stepcrew.crew import load_crew, validate_crew
from stepcrew.engines.testing import ScriptedModel, call_tool, reply
from stepcrew.llm import registry
from stepcrew.local.runtime import LOCAL_DATA_BUCKET
from stepcrew.models import RunRequest, RunStatus, ToolCall, ToolContext, ToolInvocation
from stepcrew.service import create_run, run_result, start_run
from stepcrew.tools.artifacts import S3ArtifactStore

pytestmark = pytest.mark.integration

PROVIDER = "scripted-export"
ARGS = {"name": "sums", "format": "csv", "columns": ["what", "value"], "rows": [["six times seven", 42]]}


@pytest.fixture(autouse=True)
def _unregister_scripted_provider():
    yield
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def _crew():
    crew = load_crew("default")
    writer = crew.worker("writer")
    assert "export_results" not in writer.tools  # the default crew is unchanged
    writer = writer.model_copy(update={"tools": [*writer.tools, "export_results"]})
    return validate_crew(crew.model_copy(update={"workers": [w if w.name != "writer" else writer
                                                             for w in crew.workers]}))


def _run(rt, allow: bool):
    plan = json.dumps({"rationale": "test plan", "subtasks": [
        {"id": "save", "title": "Save the figure", "instructions": "Save 6 times 7 as a CSV file.",
         "depends_on": [], "expected_output": "the file", "tools": ["export_results"], "role": "writer"}]})
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan)],
        "act": [call_tool("export_results", ARGS, call_id="exp1"), reply("Saved sums.csv (42).")],
        "synthesize": [reply("# Report\nSaved 6 x 7 = 42 as sums.csv.")],
        "review": [reply(json.dumps({"accuracy": 1, "completeness": 1, "relevance": 1, "feedback": "ok"}))]})
    registry.register(PROVIDER, lambda tier: scripted)
    request = RunRequest(goal="Save six times seven as a file", provider=PROVIDER, tenant="acme",
                         allow_side_effects=allow, routing={"cache": False}, memory="off")
    run = start_run(create_run(request, _crew(), rt.store), rt.store, rt)
    rt.wait(run.execution_arn, timeout_s=120)
    result = run_result(rt.store, run.run_id)
    (tool_result,) = [r for m in rt.store.get_messages(run.run_id, "save") if m.role == "tool" for r in m.tool_results]
    return run.run_id, result, tool_result


def _exports(rt) -> dict[str, bytes]:
    s3 = rt.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LOCAL_DATA_BUCKET).get("Contents", [])
            if "/exports/" in o["Key"]]
    return {k: s3.get_object(Bucket=LOCAL_DATA_BUCKET, Key=k)["Body"].read() for k in keys}


def test_without_side_effects_the_run_gets_a_dry_run_and_nothing_is_written(local_rt):
    run_id, result, tool_result = _run(local_rt, allow=False)
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert tool_result.ok and tool_result.content["dry_run"] is True
    assert tool_result.content["would_write"]["key"] == f"acme/runs/{run_id}/exports/sums.csv"
    assert _exports(local_rt) == {}


def test_a_crash_after_the_write_then_the_retry_and_a_replay_give_exactly_one_export(local_rt, monkeypatch):
    puts = []
    original = S3ArtifactStore.put

    def put_then_die(self, key, body, content_type):
        original(self, key, body, content_type)
        puts.append(key)
        if len(puts) == 1:
            raise SystemExit(137)  # the function dies after the effect, before it returns (Runtime.ExitError)

    monkeypatch.setattr(S3ArtifactStore, "put", put_then_die)
    run_id, result, tool_result = _run(local_rt, allow=True)
    assert result.status == RunStatus.SUCCEEDED, result.error
    key = f"acme/runs/{run_id}/exports/sums.csv"
    assert tool_result.ok and tool_result.content["written"]["key"] == key
    assert tool_result.content["replayed"] is True  # the retried attempt found the receipt and the object
    assert puts == [key]
    body = _exports(local_rt)[key]
    assert list(csv.reader(io.StringIO(body.decode()))) == [["what", "value"], ["six times seven", "42"]]
    # the crash was a Lambda failure the ASL retried (not a tool error the model saw)
    children = local_rt.sfn.list_executions(stateMachineArn=local_rt.state_machine_arn("agent"))["executions"]
    failures = [e for c in children for e in local_rt.sfn.get_execution_history(
        executionArn=c["executionArn"])["events"] if e["type"] == "TaskFailed"]
    assert [f["taskFailedEventDetails"]["error"] for f in failures] == ["Runtime.ExitError"]
    # a resumed or redriven run replays the same call: the receipt answers, nothing is written again
    from stepcrew.local.hook import FUNCTION_PREFIX, resolve_handler

    handler = resolve_handler(f"{FUNCTION_PREFIX}tool_export_results")
    event = ToolInvocation(context=ToolContext(run_id=run_id, subtask_id="save", tenant="acme",
                                               allow_side_effects=True),
                           call=ToolCall(call_id="exp1", name="export_results", arguments=ARGS))
    from types import SimpleNamespace

    again = handler(event.model_dump(mode="json"), SimpleNamespace(
        function_name="tool_export_results", memory_limit_in_mb=256, aws_request_id="replay",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:tool_export_results"))
    assert again["ok"] and again["content"]["replayed"] is True and puts == [key]
