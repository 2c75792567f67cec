"""notify: dry run by default, exactly one delivery across a crash after the publish, a retried invocation and a
replay; caps; tenants; the publisher contract shared by the in-memory fake and the SNS adapter on moto; the tool
template's result validation."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws
from pydantic import BaseModel

from stepcrew.models import ToolCall, ToolContext, ToolInvocation, utcnow
from stepcrew.store.schema import create_table
from stepcrew.tools.base import Tool, ToolArgs
from stepcrew.tools.notify import (
    MemoryPublisher,
    Notification,
    Notify,
    NotifyToolSettings,
    SnsPublisher,
    deduplication_id,
    list_notifications,
)
from stepcrew.tools.receipts import DynamoReceiptStore, MemoryReceiptStore, Receipt, arguments_sha256
from stepcrew.settings import SettingsError, load_settings

ARGS = {"subject": "Weekly penguin report ready", "body": "Gentoo mean mass 5076 g (n=124)."}


def invocation(*, allow=True, tenant="acme", call_id="n1", arguments=ARGS, run_id="run1", subtask_id="tell"):
    return ToolInvocation(context=ToolContext(run_id=run_id, subtask_id=subtask_id, tenant=tenant,
                                              allow_side_effects=allow),
                          call=ToolCall(call_id=call_id, name="notify", arguments=arguments))


class Crash(BaseException):
    """The Lambda dying after the publish and before it returns (not an Exception: the tool cannot catch it)."""


class CrashAfterPublish(MemoryPublisher):
    def __init__(self, crashes: int = 1, **kw) -> None:
        super().__init__(**kw)
        self.crashes = crashes

    def publish(self, message):
        message_id = super().publish(message)
        if self.crashes:
            self.crashes -= 1
            raise Crash()
        return message_id


def test_a_run_without_side_effects_gets_a_dry_run_and_nothing_is_published():
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher()
    result = Notify(receipts, publisher).invoke(invocation(allow=False))
    assert result.ok and result.content["dry_run"] is True
    body = ARGS["body"].encode()
    assert result.content["would_publish"] == {
        "subject": ARGS["subject"], "body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
        "attributes": {"run_id": "run1", "tenant": "acme", "subtask_id": "tell"}}
    assert publisher.calls == 0 and publisher.delivered == [] and receipts.items == {}


def test_a_dry_run_builds_no_adapter():
    def boom():
        raise AssertionError("a dry run must not build a client")

    assert Notify(boom, boom).invoke(invocation(allow=False)).ok


def test_an_allowed_call_publishes_once_with_the_run_and_tenant_attributes_and_a_replay_does_nothing():
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher()
    tool = Notify(receipts, publisher)
    first = tool.invoke(invocation())
    assert first.ok and first.content["published"]["message_id"] == "mem-1"
    (sent,) = publisher.delivered
    assert (sent.subject, sent.body) == (ARGS["subject"], ARGS["body"])
    assert sent.attributes == {"run_id": "run1", "tenant": "acme", "subtask_id": "tell"}
    assert sent.group_id == "run1"
    assert sent.deduplication_id == hashlib.sha256(b"RECEIPT#run1/tell#n1").hexdigest()
    again = tool.invoke(invocation())  # the ASL Retry, a redrive or a resumed run: the same call id
    assert again.ok and again.content == {**first.content, "replayed": True}
    assert publisher.calls == 1
    (receipt,) = receipts.items.values()
    assert receipt.status == "DONE" and receipt.arguments_sha256 == arguments_sha256(ARGS)


def test_a_crash_after_the_publish_then_the_retry_delivers_exactly_once_on_a_fifo_topic():
    receipts, publisher = MemoryReceiptStore(), CrashAfterPublish(fifo=True)
    tool = Notify(receipts, publisher)
    with pytest.raises(Crash):
        tool.invoke(invocation())
    (pending,) = receipts.items.values()
    assert pending.status == "PENDING"  # published, its end never recorded
    retried = tool.invoke(invocation())
    assert retried.ok and retried.content["replayed"] is True
    assert retried.content["settled_by"] == "fifo_deduplication"
    assert publisher.calls == 2 and len(publisher.delivered) == 1  # the repeat was deduplicated by the topic
    assert list(receipts.items.values())[0].status == "DONE"
    assert tool.invoke(invocation()).content["replayed"] is True and publisher.calls == 2


def test_a_pending_receipt_on_a_standard_topic_is_in_doubt_and_never_published_again():
    receipts, publisher = MemoryReceiptStore(), CrashAfterPublish(fifo=False)
    tool = Notify(receipts, publisher)
    with pytest.raises(Crash):
        tool.invoke(invocation())
    retried = tool.invoke(invocation())
    assert not retried.ok and retried.error.type == "OperationInDoubt"
    assert publisher.calls == 1 and len(publisher.delivered) == 1


def test_a_pending_receipt_older_than_the_deduplication_margin_is_in_doubt():
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher(fifo=True)
    receipts.begin(Receipt(run_id="run1", subtask_id="tell", call_id="n1", tenant="acme", tool="notify",
                           arguments_sha256=arguments_sha256(ARGS), started_at=utcnow() - timedelta(seconds=241)))
    result = Notify(receipts, publisher).invoke(invocation())
    assert not result.ok and result.error.type == "OperationInDoubt"
    assert publisher.calls == 0


@pytest.mark.parametrize("age_s, republished", [(239, True), (-59, True), (241, False), (-61, False)])
def test_only_a_pending_receipt_well_inside_the_deduplication_interval_is_published_again(age_s, republished):
    # 240 s = the 5-minute interval less 60 s for clocks; a receipt up to 60 s "in the future" is a clock difference
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher(fifo=True)
    receipts.begin(Receipt(run_id="run1", subtask_id="tell", call_id="n1", tenant="acme", tool="notify",
                           arguments_sha256=arguments_sha256(ARGS), started_at=utcnow() - timedelta(seconds=age_s)))
    result = Notify(receipts, publisher).invoke(invocation())
    assert result.ok is republished and publisher.calls == int(republished)
    if not republished:
        assert result.error.type == "OperationInDoubt"


def test_a_crash_before_the_publish_is_published_on_the_retry():
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher(fifo=True)
    receipts.begin(Receipt(run_id="run1", subtask_id="tell", call_id="n1", tenant="acme", tool="notify",
                           arguments_sha256=arguments_sha256(ARGS)))  # began, then died before publishing
    result = Notify(receipts, publisher).invoke(invocation())
    assert result.ok and len(publisher.delivered) == 1


@pytest.mark.parametrize("arguments, kind", [
    ({**ARGS, "subject": "x" * 100}, "InvalidArguments"),  # SNS: less than 100 characters
    ({**ARGS, "subject": "line one\nline two"}, "InvalidArguments"),  # no line breaks
    ({**ARGS, "subject": "caf\u00e9"}, "InvalidArguments"),  # printable ASCII only
    ({**ARGS, "body": "\u00e9" * 131_073}, "InvalidArguments"),  # 262,146 bytes of UTF-8 > 262,144
    ({**ARGS, "body": "a" * (262_144 - 10)}, "LimitExceeded"),  # fits alone, not with its attributes
    ({"subject": "hi"}, "InvalidArguments"),
])
def test_caps_are_typed_tool_errors_and_nothing_is_published(arguments, kind):
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher()
    result = Notify(receipts, publisher).invoke(invocation(arguments=arguments))
    assert not result.ok and result.error.type == kind
    assert publisher.calls == 0 and receipts.items == {}


def test_a_subject_of_99_characters_and_a_body_at_the_cap_with_attributes_are_accepted():
    attrs = len("run_id") + 6 + len("run1") + len("tenant") + 6 + len("acme") + len("subtask_id") + 6 + len("tell")
    publisher = MemoryPublisher()
    result = Notify(MemoryReceiptStore(), publisher).invoke(
        invocation(arguments={"subject": "s" * 99, "body": "b" * (262_144 - attrs)}))
    assert result.ok and len(publisher.delivered) == 1


def test_another_tenants_receipt_is_refused_and_nothing_is_published():
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher()
    tool = Notify(receipts, publisher)
    assert tool.invoke(invocation(tenant="acme")).ok
    other = tool.invoke(invocation(tenant="globex"))  # same run, sub-task and call id, another tenant
    assert not other.ok and other.error.type == "Forbidden"
    assert "Gentoo" not in other.error.message and publisher.calls == 1


def test_the_same_call_id_with_other_arguments_is_a_conflict():
    receipts, publisher = MemoryReceiptStore(), MemoryPublisher()
    tool = Notify(receipts, publisher)
    assert tool.invoke(invocation()).ok
    clash = tool.invoke(invocation(arguments={**ARGS, "body": "something else"}))
    assert not clash.ok and clash.error.type == "ReceiptConflict" and publisher.calls == 1


def _logged(logger, action) -> list[logging.LogRecord]:
    """The records ``logger`` itself emits while ``action()`` runs (a handler on that logger: a Powertools Logger
    loaded by another test may stop propagation above it or disable it)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler, level, disabled = Keep(level=logging.DEBUG), logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    try:
        action()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
    return records


def test_logs_carry_ids_never_the_message():
    from stepcrew.tools import notify as module

    records = _logged(module.logger, lambda: Notify(MemoryReceiptStore(), MemoryPublisher()).invoke(invocation()))
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in records)
    assert "notification published" in text and "n1" in text
    assert ARGS["body"] not in text and ARGS["subject"] not in text


# ------------------------------------------------------------------------------------------------ on moto
@pytest.fixture
def aws():
    with mock_aws():
        yield


def _fifo_topic_with_queue():
    """A FIFO topic and a FIFO queue subscribed with raw delivery: what the queue receives is what was delivered."""
    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="notes.fifo", Attributes={"FifoTopic": "true",
                                                            "ContentBasedDeduplication": "false"})["TopicArn"]
    queue = sqs.create_queue(QueueName="notes.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return sns, sqs, topic, queue


def _received(sqs, queue) -> list[dict]:
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                   VisibilityTimeout=600).get("Messages", [])
        if not msgs:
            return out
        out += msgs


class _MemoryTarget:
    def __init__(self):
        self.publisher = MemoryPublisher(fifo=True)

    def delivered(self):
        return [(m.body, m.attributes) for m in self.publisher.delivered]


class _SnsTarget:
    def __init__(self):
        self.sns, self.sqs, topic, self.queue = _fifo_topic_with_queue()
        self.publisher = SnsPublisher(self.sns, topic)

    def delivered(self):
        return [(m["Body"], {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()})
                for m in _received(self.sqs, self.queue)]


@pytest.fixture(params=["memory", "sns-on-moto"])
def target(request, aws):
    return _MemoryTarget() if request.param == "memory" else _SnsTarget()


def _message(dedup="d1", body="hello"):
    return Notification(subject="Hi", body=body, attributes={"run_id": "r1", "tenant": "acme"}, group_id="r1",
                        deduplication_id=dedup)


def test_contract_a_publish_is_delivered_with_its_attributes(target):
    assert target.publisher.fifo is True
    assert target.publisher.publish(_message())
    assert target.delivered() == [("hello", {"run_id": "r1", "tenant": "acme"})]


def test_contract_the_same_deduplication_id_is_delivered_once(target):
    target.publisher.publish(_message("d1", "first"))
    target.publisher.publish(_message("d1", "first"))  # a retry after a crash
    target.publisher.publish(_message("d2", "second"))
    assert [body for body, _ in target.delivered()] == ["first", "second"]


def test_the_tool_on_dynamodb_and_sns_delivers_once_across_a_crash_and_lists_the_notification(aws):
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(ddb, "runs")
    _, sqs, topic, queue = _fifo_topic_with_queue()
    publisher = SnsPublisher(boto3.client("sns", region_name="us-east-1"), topic)
    crashes = []

    def publish_then_die(message):
        message_id = SnsPublisher.publish(publisher, message)
        if not crashes:
            crashes.append(message_id)
            raise Crash()
        return message_id

    publisher.publish = publish_then_die
    tool = Notify(DynamoReceiptStore(ddb, "runs"), publisher)
    with pytest.raises(Crash):
        tool.invoke(invocation())
    retried = tool.invoke(invocation())
    assert retried.ok and retried.content["settled_by"] == "fifo_deduplication"
    assert tool.invoke(invocation()).content["replayed"] is True
    (got,) = _received(sqs, queue)
    assert got["Body"] == ARGS["body"]
    assert got["MessageAttributes"]["tenant"]["StringValue"] == "acme"
    assert got["MessageAttributes"]["run_id"]["StringValue"] == "run1"
    (record,) = list_notifications(ddb, "runs", "run1", "acme")
    assert record.status == "DONE" and record.call_id == "n1" and record.published["subject"] == ARGS["subject"]
    assert list_notifications(ddb, "runs", "run1", "globex") == []  # another tenant reads nothing
    assert deduplication_id("run1", "tell", "n1") == retried.content["published"]["deduplication_id"]


def test_settings_need_a_topic_arn(monkeypatch):
    monkeypatch.setenv("STEPCREW_TABLE_NAME", "runs")
    monkeypatch.setenv("STEPCREW_STAGE", "dev")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stepcrew-tool_notify")
    monkeypatch.delenv("STEPCREW_NOTIFY_TOPIC_ARN", raising=False)
    with pytest.raises(SettingsError, match="STEPCREW_NOTIFY_TOPIC_ARN"):
        load_settings(NotifyToolSettings)
    monkeypatch.setenv("STEPCREW_NOTIFY_TOPIC_ARN", "not-an-arn")
    with pytest.raises(SettingsError):
        load_settings(NotifyToolSettings)
    arn = "arn:aws:sns:eu-west-1:123456789012:stepcrew-dev-notifications.fifo"
    monkeypatch.setenv("STEPCREW_NOTIFY_TOPIC_ARN", arn)
    assert load_settings(NotifyToolSettings).topic_arn == arn


# ------------------------------------------------------------------------------------------------ result validation
class _Shape(BaseModel):
    value: int


class _Liar(Tool):
    name = "liar"
    description = "returns the wrong shape"
    Args = ToolArgs
    Result = _Shape

    def __init__(self, content):
        self.content = content

    def run(self, args, ctx):
        return self.content


def _call(tool):
    return tool.invoke(ToolInvocation(context=ToolContext(run_id="r1", subtask_id="s1"),
                                      call=ToolCall(call_id="c1", name="liar", arguments={})))


def test_a_result_that_does_not_match_its_model_is_a_typed_error():
    from stepcrew.tools import base

    results = []
    records = _logged(base.logger, lambda: results.append(_call(_Liar({"value": "many"}))))
    (result,) = results
    assert not result.ok and result.error.type == "ToolResultInvalid"
    assert "value" in result.error.message
    assert any(r.__dict__.get("call_id") == "c1" and r.__dict__.get("tool") == "liar" for r in records)
    ok = _call(_Liar({"value": 3}))
    assert ok.ok and ok.content == {"value": 3}


def test_export_results_and_notify_declare_their_result_models():
    from stepcrew.tools import TOOLS

    assert TOOLS["notify"].Result is not None and TOOLS["export_results"].Result is not None
    with pytest.raises(ValueError):
        TOOLS["notify"].Result.model_validate({"dry_run": True})
    json.dumps(TOOLS["notify"].spec().parameters)
