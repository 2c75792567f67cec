"""The notifications topic of the ``notify`` tool and its function's role (one synth per session, see conftest)."""

from __future__ import annotations

import json

import pytest
from iam_helpers import as_list
from stepcrew import wiring

pytestmark = pytest.mark.infra


def _statements(synth, name: str) -> list[dict]:
    fn = synth.resources[synth.logical_id(synth.stack.functions[name].function)]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    out = [s for p in synth.resources[role_id]["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_the_topic_is_fifo_encrypted_and_tls_only(synth):
    topic_id = synth.logical_id(synth.stack.notifications.topic)
    props = synth.resources[topic_id]["Properties"]
    assert props["FifoTopic"] is True
    assert props["ContentBasedDeduplication"] is False  # the tool sends its own deduplication id
    assert props["TopicName"] == "stepcrew-dev-notifications.fifo"
    assert props["KmsMasterKeyId"]  # server-side encryption (cdk-nag SNS2)
    policies = [p["Properties"] for p in synth.of_type("AWS::SNS::TopicPolicy").values()
                if {"Ref": topic_id} in p["Properties"]["Topics"]]
    denies = [s for p in policies for s in p["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_only_the_notify_role_may_publish_and_only_to_that_topic(synth):
    topic_id = synth.logical_id(synth.stack.notifications.topic)
    table = synth.logical_id(synth.stack.data.table)
    assert [n for n, s in wiring.FUNCTIONS.items() if s.publishes_notifications] == ["tool_notify"]
    statements = _statements(synth, "tool_notify")
    (sns,) = [s for s in statements if any(a.startswith("sns:") for a in as_list(s["Action"]))]
    assert as_list(sns["Action"]) == ["sns:Publish"]
    assert as_list(sns["Resource"]) == [{"Ref": topic_id}]
    (ddb,) = [s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert sorted(as_list(ddb["Action"])) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    assert ddb["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
    assert ddb["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RECEIPT#*"]}}
    services = {a.split(":")[0] for s in statements for a in as_list(s["Action"])}
    assert services == {"logs", "xray", "sns", "dynamodb"}  # no S3, KMS, secrets, models
    for name in wiring.FUNCTIONS:  # no other role names the topic
        if name != "tool_notify":
            assert topic_id not in json.dumps(_statements(synth, name)), name


def test_the_notify_function_gets_the_topic_and_the_table(synth):
    fn = synth.resources[synth.logical_id(synth.stack.functions["tool_notify"].function)]
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["STEPCREW_NOTIFY_TOPIC_ARN"] == {"Ref": synth.logical_id(synth.stack.notifications.topic)}
    assert env["STEPCREW_TABLE_NAME"] == {"Ref": synth.logical_id(synth.stack.data.table)}
    assert "STEPCREW_ARTIFACTS_BUCKET" not in env and "STEPCREW_DATA_BUCKET" not in env
