"""``notify`` in a whole local run (the real run and agent ASL, the real tool Lambda handler, a scripted model, a test
crew whose writer may use it, the local runtime's FIFO topic on moto SNS with a FIFO SQS queue subscribed to count
what subscribers receive): a run without ``allow_side_effects`` publishes nothing; a run with it delivers exactly
one message even when the tool's Lambda dies right after the publish (the ASL's crash Retry runs it again; the
receipt is PENDING, so the retry publishes with the same deduplication id and the topic drops the repeat), a replay
of the same call does nothing, and a run whose process died right after the publish, then resumed, delivers one."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from stepcrew.crew import load_crew, validate_crew
from stepcrew.engines.testing import ScriptedModel, call_tool, call_tools, reply
from stepcrew.llm import registry
from stepcrew.models import RunRequest, RunStatus, ToolCall, ToolContext, ToolInvocation
from stepcrew.service import create_run, run_result, start_run
from stepcrew.tools.notify import SnsPublisher, list_notifications

pytestmark = pytest.mark.integration

PROVIDER = "scripted-notify"
ARGS = {"subject": "Six times seven", "body": "The answer is 42."}


@pytest.fixture(autouse=True)
def _unregister_scripted_provider():
    yield
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def _crew():
    crew = load_crew("default")
    writer = crew.worker("writer")
    writer = writer.model_copy(update={"tools": [*writer.tools, "notify"]})
    return validate_crew(crew.model_copy(update={"workers": [w if w.name != "writer" else writer
                                                             for w in crew.workers]}))


def _subscribe(rt) -> str:
    """A FIFO queue subscribed (raw delivery) to the local notifications topic: what subscribers receive."""
    sqs = rt.client("sqs")
    queue = sqs.create_queue(QueueName="notify-test.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rt.client("sns").subscribe(TopicArn=os.environ["STEPCREW_NOTIFY_TOPIC_ARN"], Protocol="sqs", Endpoint=arn,
                               Attributes={"RawMessageDelivery": "true"})
    return queue


def _received(rt, queue) -> list[dict]:
    out, sqs = [], rt.client("sqs")
    while True:
        msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                   VisibilityTimeout=600).get("Messages", [])
        if not msgs:
            return out
        out += msgs


def _publish_calls(rt) -> int:
    """Publish calls the emulated topic accepted (moto's SNS does not deduplicate itself: a subscribed FIFO queue does,
    on the deduplication id SNS passes on)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    return len(sns_backends[DEFAULT_ACCOUNT_ID][rt.region].topics[os.environ["STEPCREW_NOTIFY_TOPIC_ARN"]]
               .sent_notifications)


def _start(rt, allow: bool):
    plan = json.dumps({"rationale": "test plan", "subtasks": [
        {"id": "tell", "title": "Tell the team", "instructions": "Send the answer 6 times 7 to the team.",
         "depends_on": [], "expected_output": "a notification", "tools": ["notify"], "role": "writer"}]})
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan)],
        "act": [call_tool("notify", ARGS, call_id="nt1"), reply("Told the team: 42.")],
        "synthesize": [reply("# Report\nTold the team that 6 x 7 = 42.")],
        "review": [reply(json.dumps({"accuracy": 1, "completeness": 1, "relevance": 1, "feedback": "ok"}))]})
    registry.register(PROVIDER, lambda tier: scripted)
    request = RunRequest(goal="Tell the team six times seven", provider=PROVIDER, tenant="acme",
                         allow_side_effects=allow, routing={"cache": False}, memory="off")
    return start_run(create_run(request, _crew(), rt.store), rt.store, rt)


def _tool_result(rt, run_id):
    (result,) = [r for m in rt.store.get_messages(run_id, "tell") if m.role == "tool" for r in m.tool_results]
    return result


def test_without_side_effects_the_run_gets_a_dry_run_and_nothing_is_published(local_rt):
    queue = _subscribe(local_rt)
    run = _start(local_rt, allow=False)
    local_rt.wait(run.execution_arn, timeout_s=120)
    assert run_result(local_rt.store, run.run_id).status == RunStatus.SUCCEEDED
    result = _tool_result(local_rt, run.run_id)
    assert result.ok and result.content["dry_run"] is True
    assert result.content["would_publish"]["attributes"] == {"run_id": run.run_id, "tenant": "acme",
                                                             "subtask_id": "tell"}
    assert _publish_calls(local_rt) == 0 and _received(local_rt, queue) == []
    assert list_notifications(local_rt.client("dynamodb"), local_rt.table_name, run.run_id, "acme") == []


def test_a_crash_after_the_publish_then_the_retry_and_a_replay_deliver_exactly_one(local_rt, monkeypatch):
    queue = _subscribe(local_rt)
    original, calls = SnsPublisher.publish, []

    def publish_then_die(self, message):
        message_id = original(self, message)
        calls.append(message_id)
        if len(calls) == 1:
            raise SystemExit(137)  # the function dies after the effect, before it returns (Runtime.ExitError)
        return message_id

    monkeypatch.setattr(SnsPublisher, "publish", publish_then_die)
    run = _start(local_rt, allow=True)
    local_rt.wait(run.execution_arn, timeout_s=120)
    result_run = run_result(local_rt.store, run.run_id)
    assert result_run.status == RunStatus.SUCCEEDED, result_run.error
    result = _tool_result(local_rt, run.run_id)
    assert result.ok and result.content["replayed"] is True
    assert result.content["settled_by"] == "fifo_deduplication"
    # the crash was a Lambda failure the ASL retried (not a tool error the model saw)
    children = local_rt.sfn.list_executions(stateMachineArn=local_rt.state_machine_arn("agent"))["executions"]
    failures = [e for c in children for e in local_rt.sfn.get_execution_history(
        executionArn=c["executionArn"])["events"] if e["type"] == "TaskFailed"]
    assert [f["taskFailedEventDetails"]["error"] for f in failures] == ["Runtime.ExitError"]
    # a replay of the same call (a redriven or resumed run): the DONE receipt answers, nothing is published
    from stepcrew.local.hook import FUNCTION_PREFIX, resolve_handler

    handler = resolve_handler(f"{FUNCTION_PREFIX}tool_notify")
    event = ToolInvocation(context=ToolContext(run_id=run.run_id, subtask_id="tell", tenant="acme",
                                               allow_side_effects=True),
                           call=ToolCall(call_id="nt1", name="notify", arguments=ARGS))
    again = handler(event.model_dump(mode="json"), SimpleNamespace(
        function_name="tool_notify", memory_limit_in_mb=256, aws_request_id="replay",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:tool_notify"))
    assert again["ok"] and again["content"]["replayed"] is True
    assert len(calls) == 2 and _publish_calls(local_rt) == 2  # the crashed attempt and the deduplicated retry
    (delivered,) = _received(local_rt, queue)  # what subscribers got: one message
    assert delivered["Body"] == ARGS["body"]
    assert {k: v["StringValue"] for k, v in delivered["MessageAttributes"].items()} == {
        "run_id": run.run_id, "tenant": "acme", "subtask_id": "tell"}
    (record,) = list_notifications(local_rt.client("dynamodb"), local_rt.table_name, run.run_id, "acme")
    assert record.status == "DONE" and record.published["subject"] == ARGS["subject"]
    assert list_notifications(local_rt.client("dynamodb"), local_rt.table_name, run.run_id, "globex") == []


def test_a_run_whose_process_died_after_the_publish_resumes_and_delivers_exactly_one(tmp_path, monkeypatch):
    """The process dies right after the publish (no ASL retry: every execution stops), the next process resumes the
    run: its replayed call finds the PENDING receipt and publishes again with the same deduplication id."""
    from stepcrew.local.resume import resume_run
    from stepcrew.local.runtime import LocalRuntime

    original, sent = SnsPublisher.publish, []
    state = tmp_path / "state"

    def publish_then_process_dies(self, message):
        message_id = original(self, message)
        sent.append(message)
        if len(sent) == 1:  # the process is killed: no ASL retry, every execution stops where it is
            for machine in ("run", "agent"):  # the parent first: a stopped child would fail it
                for ex in rt.sfn.list_executions(stateMachineArn=rt.state_machine_arn(machine),
                                                 statusFilter="RUNNING")["executions"]:
                    rt.sfn.stop_execution(executionArn=ex["executionArn"])
            raise SystemExit(137)
        return message_id

    monkeypatch.setattr(SnsPublisher, "publish", publish_then_process_dies)
    with LocalRuntime(fast_waits=True, state_dir=state) as rt:
        queue = _subscribe(rt)
        run = _start(rt, allow=True)
        # moto ends the stopped parent ABORTED or, while its Map waits on the stopped child, FAILED States.Runtime
        # (a moto quirk); either way nothing recorded the run's end, as when the process is killed
        assert rt.wait(run.execution_arn, timeout_s=120) in ("ABORTED", "FAILED")
        assert rt.store.get_run(run.run_id).status == RunStatus.RUNNING
        assert len(_received(rt, queue)) == 1  # the first attempt's message was delivered
        (pending,) = list_notifications(rt.client("dynamodb"), rt.table_name, run.run_id, "acme")
        assert pending.status == "PENDING"  # published, its end never recorded
    # the runtime's exit marked the run FAILED LocalRuntimeExited; the next process resumes it
    with LocalRuntime(fast_waits=True, state_dir=state) as rt:
        queue = _subscribe(rt)
        # the emulated topic is new in this process; the deployed one is the same topic across processes and
        # remembers the first message's deduplication id: replay that first delivery so this topic's FIFO
        # subscriber remembers it too
        original(SnsPublisher(rt.client("sns"), os.environ["STEPCREW_NOTIFY_TOPIC_ARN"]), sent[0])
        arn = resume_run(rt, run.run_id, tenant="acme")
        rt.wait(arn, timeout_s=120)
        resumed = run_result(rt.store, run.run_id)
        assert resumed.status == RunStatus.SUCCEEDED, resumed.error
        result = _tool_result(rt, run.run_id)
        assert result.ok and result.content["settled_by"] == "fifo_deduplication"
        assert len(sent) == 2 and sent[1] == sent[0]  # the same message and MessageDeduplicationId
        (delivered,) = _received(rt, queue)  # one delivery
        assert delivered["Body"] == ARGS["body"]
        (done,) = list_notifications(rt.client("dynamodb"), rt.table_name, run.run_id, "acme")
        assert done.status == "DONE"
    # `stepcrew runs show` lists the run's notifications from their receipts, for its own tenant only
    from test_cli import stepcrew

    shown = stepcrew(tmp_path, "runs", "show", run.run_id, "--tenant", "acme", "--json")
    assert shown.returncode == 0, shown.stderr
    (listed,) = json.loads(shown.stdout)["notifications"]
    assert listed["status"] == "DONE" and listed["call_id"] == "nt1"
    assert listed["published"]["subject"] == ARGS["subject"] and ARGS["body"] not in shown.stdout
    text = stepcrew(tmp_path, "runs", "show", run.run_id, "--tenant", "acme")
    assert text.returncode == 0 and "notifications of" in text.stderr and ARGS["subject"] in text.stderr
    other = stepcrew(tmp_path, "runs", "show", run.run_id, "--tenant", "globex", "--json")
    assert other.returncode == 2 and "notifications" not in other.stdout  # another tenant's run: like a missing one


def test_one_run_with_an_export_and_a_notification_crash_retry_and_resume_gives_one_of_each(tmp_path, monkeypatch):
    """The Done-when of issue 10 in one run: one turn asks for ``export_results`` and ``notify``; the export's Lambda
    dies after its write (the ASL retry settles it), then the process dies right after the publish; the next
    process resumes the run, whose replayed turn asks for both again: one export and one delivered notification."""
    import threading
    import time

    from stepcrew.local.resume import resume_run
    from stepcrew.local.runtime import LOCAL_DATA_BUCKET, LocalRuntime
    from stepcrew.tools.artifacts import S3ArtifactStore
    from stepcrew.tools.export_results import ExportResults

    export_args = {"name": "sums", "format": "csv", "columns": ["what", "value"], "rows": [["six times seven", 42]]}
    puts, exports_done, sent = [], threading.Event(), []
    put, run_call, publish = S3ArtifactStore.put, ExportResults.run_call, SnsPublisher.publish

    def put_then_die(self, key, body, content_type):
        put(self, key, body, content_type)
        puts.append(key)
        if len(puts) == 1:
            raise SystemExit(137)  # the export's Lambda dies after the write: the ASL retries it

    def export_call(self, args, ctx, call):
        out = run_call(self, args, ctx, call)
        exports_done.set()  # an attempt that returned (the retry, settled by its receipt and the object)
        return out

    def publish_then_process_dies(self, message):
        message_id = publish(self, message)
        sent.append(message)
        if len(sent) == 1:
            exports_done.wait(timeout=30)  # the export's retry has settled (Map items may run side by side)
            time.sleep(0.2)
            for machine in ("run", "agent"):  # the parent first: a stopped child would fail it
                for ex in rt.sfn.list_executions(stateMachineArn=rt.state_machine_arn(machine),
                                                 statusFilter="RUNNING")["executions"]:
                    rt.sfn.stop_execution(executionArn=ex["executionArn"])
            raise SystemExit(137)
        return message_id

    monkeypatch.setattr(S3ArtifactStore, "put", put_then_die)
    monkeypatch.setattr(ExportResults, "run_call", export_call)
    monkeypatch.setattr(SnsPublisher, "publish", publish_then_process_dies)
    crew = load_crew("default")
    writer = crew.worker("writer")
    writer = writer.model_copy(update={"tools": [*writer.tools, "export_results", "notify"]})
    crew = validate_crew(crew.model_copy(update={"workers": [w if w.name != "writer" else writer
                                                             for w in crew.workers]}))
    plan = json.dumps({"rationale": "test plan", "subtasks": [
        {"id": "tell", "title": "Save and tell", "instructions": "Save 6 times 7 as a CSV file and tell the team.",
         "depends_on": [], "expected_output": "a file and a notification", "tools": ["export_results", "notify"],
         "role": "writer"}]})
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan)],
        "act": [call_tools(("export_results", export_args), ("notify", ARGS)), reply("Saved sums.csv; told the team.")],
        "synthesize": [reply("# Report\nSaved 6 x 7 = 42 as sums.csv and told the team.")],
        "review": [reply(json.dumps({"accuracy": 1, "completeness": 1, "relevance": 1, "feedback": "ok"}))]})
    registry.register(PROVIDER, lambda tier: scripted)
    request = RunRequest(goal="Save six times seven and tell the team", provider=PROVIDER, tenant="acme",
                         allow_side_effects=True, routing={"cache": False}, memory="off")
    state = tmp_path / "state"
    with LocalRuntime(fast_waits=True, state_dir=state) as rt:
        queue = _subscribe(rt)
        run = start_run(create_run(request, crew, rt.store), rt.store, rt)
        assert rt.wait(run.execution_arn, timeout_s=120) in ("ABORTED", "FAILED")  # see the test above
        assert rt.store.get_run(run.run_id).status == RunStatus.RUNNING
        assert len(_received(rt, queue)) == 1
    with LocalRuntime(fast_waits=True, state_dir=state) as rt:
        queue = _subscribe(rt)
        publish(SnsPublisher(rt.client("sns"), os.environ["STEPCREW_NOTIFY_TOPIC_ARN"]), sent[0])  # see above
        arn = resume_run(rt, run.run_id, tenant="acme")
        rt.wait(arn, timeout_s=120)
        resumed = run_result(rt.store, run.run_id)
        assert resumed.status == RunStatus.SUCCEEDED, resumed.error
        results = {r.name: r for m in rt.store.get_messages(run.run_id, "tell") if m.role == "tool"
                   for r in m.tool_results}
        assert results["export_results"].ok and results["export_results"].content["replayed"] is True
        assert results["notify"].ok and results["notify"].content["settled_by"] == "fifo_deduplication"
        key = f"acme/runs/{run.run_id}/exports/sums.csv"
        assert puts == [key]  # one write: the retry and the resumed run found the receipt (and the object)
        assert len(sent) == 2 and sent[1] == sent[0]  # the resumed publish had the same deduplication id
        assert len(_received(rt, queue)) == 1  # one delivered notification
        keys = [o["Key"] for o in rt.client("s3").list_objects_v2(Bucket=LOCAL_DATA_BUCKET).get("Contents", [])
                if "/exports/" in o["Key"]]
        assert keys == [key]
