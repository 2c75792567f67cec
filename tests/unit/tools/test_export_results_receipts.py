"""export_results: dry run by default, and exactly one effect across a crash after the effect, a retried invocation
and a replay (receipts in memory and in DynamoDB on moto; artifacts in memory and in S3 on moto)."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import boto3
import pytest
from moto import mock_aws

from stepcrew.models import ToolCall, ToolContext, ToolInvocation
from stepcrew.store.schema import create_table
from stepcrew.tools.artifacts import MemoryArtifactStore, S3ArtifactStore, artifact_key
from stepcrew.tools.export_results import ExportResults
from stepcrew.tools.receipts import (
    DynamoReceiptStore,
    MemoryReceiptStore,
    OperationInDoubt,
    Receipt,
    arguments_sha256,
    exactly_once,
)

ARGS = {"name": "mass-by-species", "format": "csv", "columns": ["species", "mean_g"],
        "rows": [["Gentoo", 5076.02], ["Adelie", 3700.66], ["Chin, strap", 3733.09]]}
EXPECTED_CSV = 'species,mean_g\r\nGentoo,5076.02\r\nAdelie,3700.66\r\n"Chin, strap",3733.09\r\n'.encode()


def invocation(*, allow=True, tenant="acme", call_id="c1", arguments=ARGS, run_id="run1"):
    return ToolInvocation(context=ToolContext(run_id=run_id, subtask_id="export", tenant=tenant,
                                              allow_side_effects=allow),
                          call=ToolCall(call_id=call_id, name="export_results", arguments=arguments))


class Crash(BaseException):
    """The Lambda dying (timeout, out of memory) after the effect and before it returns: not an Exception, so the
    tool's own error handling cannot turn it into a result."""


class CrashAfterPut(MemoryArtifactStore):
    def __init__(self, crashes: int = 1) -> None:
        super().__init__()
        self.crashes = crashes

    def put(self, key, body, content_type):
        super().put(key, body, content_type)
        if self.crashes:
            self.crashes -= 1
            raise Crash()


KEY = "acme/runs/run1/exports/mass-by-species.csv"


def test_a_run_without_side_effects_gets_a_dry_run_and_nothing_is_written():
    receipts, artifacts = MemoryReceiptStore(), MemoryArtifactStore()
    result = ExportResults(receipts, artifacts).invoke(invocation(allow=False))
    assert result.ok and result.content["dry_run"] is True
    assert result.content["would_write"] == {"key": KEY, "bytes": len(EXPECTED_CSV), "rows": 3,
                                             "sha256": hashlib.sha256(EXPECTED_CSV).hexdigest()}
    assert artifacts.objects == {} and receipts.items == {}


def test_an_allowed_export_writes_the_file_once_and_a_replay_does_nothing_again():
    receipts, artifacts = MemoryReceiptStore(), MemoryArtifactStore()
    tool = ExportResults(receipts, artifacts)
    first = tool.invoke(invocation())
    assert first.ok and first.content["written"]["key"] == KEY
    assert artifacts.objects[KEY] == (EXPECTED_CSV, "text/csv; charset=utf-8")
    again = tool.invoke(invocation())  # the ASL Retry, a redrive or a resumed run: the same call id
    assert again.ok and again.content == {**first.content, "replayed": True}
    assert artifacts.puts == 1
    (receipt,) = receipts.items.values()
    assert receipt.status == "DONE" and receipt.arguments_sha256 == arguments_sha256(ARGS)


def test_json_rows_become_objects():
    artifacts = MemoryArtifactStore()
    ExportResults(MemoryReceiptStore(), artifacts).invoke(invocation(arguments={**ARGS, "format": "json"}))
    body, content_type = artifacts.objects["acme/runs/run1/exports/mass-by-species.json"]
    assert content_type == "application/json"
    assert json.loads(body) == [dict(zip(ARGS["columns"], r)) for r in ARGS["rows"]]


def test_a_crash_after_the_effect_then_the_retry_gives_exactly_one_export():
    receipts, artifacts = MemoryReceiptStore(), CrashAfterPut(crashes=1)
    tool = ExportResults(receipts, artifacts)
    with pytest.raises(Crash):
        tool.invoke(invocation())
    (pending,) = receipts.items.values()
    assert pending.status == "PENDING"  # the effect happened, its end was never recorded
    retried = tool.invoke(invocation())
    assert retried.ok and retried.content["replayed"] is True and retried.content["written"]["key"] == KEY
    assert artifacts.puts == 1  # settled by looking at the object, not written again
    assert list(receipts.items.values())[0].status == "DONE"
    assert tool.invoke(invocation()).content["replayed"] is True and artifacts.puts == 1


def test_a_crash_before_the_effect_is_done_on_the_retry():
    receipts, artifacts = MemoryReceiptStore(), MemoryArtifactStore()
    ctx, call = invocation().context, invocation().call
    receipts.begin(Receipt(run_id="run1", subtask_id="export", call_id="c1", tenant="acme", tool="export_results",
                           arguments_sha256=arguments_sha256(ARGS)))  # began, then died before writing
    result = ExportResults(receipts, artifacts).invoke(invocation())
    assert result.ok and "replayed" not in result.content and artifacts.puts == 1
    assert artifacts.head("acme", KEY)["sha256"] == hashlib.sha256(EXPECTED_CSV).hexdigest()
    assert (ctx.run_id, call.call_id) == ("run1", "c1")


def test_an_effect_that_cannot_check_itself_is_never_repeated_after_a_crash():
    receipts = MemoryReceiptStore()
    ctx, call = invocation().context, invocation().call
    sent = []

    def notify():
        sent.append("mail")
        raise Crash()

    with pytest.raises(Crash):
        exactly_once(receipts, ctx, call, notify)
    with pytest.raises(OperationInDoubt, match="not repeated"):
        exactly_once(receipts, ctx, call, lambda: sent.append("mail") or {"sent": 1})
    assert sent == ["mail"]


def test_the_same_call_id_with_other_arguments_is_a_conflict_and_writes_nothing():
    receipts, artifacts = MemoryReceiptStore(), MemoryArtifactStore()
    tool = ExportResults(receipts, artifacts)
    assert tool.invoke(invocation()).ok
    other = tool.invoke(invocation(arguments={**ARGS, "rows": ARGS["rows"][:1]}))
    assert not other.ok and other.error.type == "ReceiptConflict" and artifacts.puts == 1


def test_another_tenants_receipt_is_refused():
    receipts, artifacts = MemoryReceiptStore(), MemoryArtifactStore()
    tool = ExportResults(receipts, artifacts)
    assert tool.invoke(invocation(tenant="acme")).ok
    theirs = tool.invoke(invocation(tenant="globex"))  # same run id and call id, another tenant
    assert not theirs.ok and theirs.error.type == "Forbidden" and artifacts.puts == 1
    assert artifacts.head("globex", KEY) is None  # another tenant never sees the object either


def test_bad_arguments_are_typed_errors():
    tool = ExportResults(MemoryReceiptStore(), MemoryArtifactStore())
    ragged = tool.invoke(invocation(arguments={**ARGS, "rows": [["Gentoo"]]}))
    assert not ragged.ok and ragged.error.type == "InvalidArguments" and "row 0 has 1 cells" in ragged.error.message
    path = tool.invoke(invocation(arguments={**ARGS, "name": "../../other/x"}))
    assert not path.ok and path.error.type == "InvalidArguments"
    big = tool.invoke(invocation(arguments={**ARGS, "rows": [["x" * 60, 1]] * 5000}))
    assert not big.ok and big.error.type == "LimitExceeded"
    with pytest.raises(ValueError):
        artifact_key("acme", "run1", "exports", "../x")


@mock_aws
def test_dynamodb_receipts_and_s3_artifacts_give_one_export_across_a_crash():
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(ddb, "t")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    puts = []

    class CrashingS3(S3ArtifactStore):
        def put(self, key, body, content_type):
            super().put(key, body, content_type)
            puts.append(key)
            if len(puts) == 1:
                raise Crash()

    receipts = DynamoReceiptStore(ddb, "t")
    tool = ExportResults(receipts, CrashingS3(s3, "artifacts"))
    with pytest.raises(Crash):
        tool.invoke(invocation())
    second = tool.invoke(invocation())
    third = tool.invoke(invocation())
    assert second.ok and third.ok and second.content["written"] == third.content["written"]
    assert puts == [KEY]
    body = s3.get_object(Bucket="artifacts", Key=KEY)["Body"].read()
    assert list(csv.reader(io.StringIO(body.decode()))) == [ARGS["columns"]] + [[str(c) for c in r]
                                                                                for r in ARGS["rows"]]
    item = ddb.get_item(TableName="t", Key={"PK": {"S": "RECEIPT#run1"}, "SK": {"S": "export#c1"}})["Item"]
    assert json.loads(item["body"]["S"])["status"] == "DONE"
