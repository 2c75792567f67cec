"""Counting rules of bench/aws_cost.py (bench/aws_cost_counters.py): DynamoDB item sizes and request units on items of
known sizes, index writes, transitions and Lambda invocations of small known histories, and the meter on moto.
Expected figures are worked out by hand in each test from the AWS rules, not by the code under test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import aws_cost_counters as C

KEYS = ("PK", "SK")
GSI1 = C.Gsi(name="GSI1", keys=("GSI1PK", "GSI1SK"), projection="ALL")


def s(text: str) -> dict:
    return {"S": text}


# ------------------------------------------------------------------------------------------------ item size
def test_item_size_follows_the_documented_per_type_rules():
    # name "a" (1) + "héllo" (6 UTF-8 bytes: é is 2) = 7
    assert C.item_size({"a": s("héllo")}) == 7
    # "n" (1) + 12345 (5 significant digits -> ceil(5/2)=3, +1) = 5; 0.0100 trims to "1" -> 1 + 1 = 2, + "m" 1
    assert C.item_size({"n": {"N": "12345"}}) == 5
    assert C.item_size({"m": {"N": "0.0100"}}) == 3
    # "b" 1 + 3 raw bytes; "t" 1 + BOOL 1; "z" 1 + NULL 1
    assert C.item_size({"b": {"B": b"\x00\x01\x02"}, "t": {"BOOL": True}, "z": {"NULL": True}}) == 4 + 2 + 2
    # list "l": 1 + 3 overhead + ("ab" 2 + 1) + (N "7" 2 + 1) = 10
    assert C.item_size({"l": {"L": [s("ab"), {"N": "7"}]}}) == 10
    # map "mm": 2 + 3 + (key "k" 1 + "v" 1 + 1) = 8; empty map "e": 1 + 3 = 4
    assert C.item_size({"mm": {"M": {"k": s("v")}}, "e": {"M": {}}}) == 8 + 4


@pytest.mark.parametrize(("size", "units"), [(1, 1), (1024, 1), (1025, 2), (5000, 5), (0, 1)])
def test_write_units_round_up_per_kilobyte(size, units):
    assert C.wru(size) == units


def test_read_units_round_up_per_4kb_halved_when_eventually_consistent():
    assert C.rru(3500, consistent=True) == 1.0
    assert C.rru(8192, consistent=True) == 2.0
    assert C.rru(8193, consistent=False) == 1.5  # 3 units halved
    assert C.rru(0, consistent=False) == 0.5  # an item not found still costs the minimum
    assert C.rru(8192, consistent=True, transactional=True) == 4.0


# ------------------------------------------------------------------------------------------------ writes
def _item(pk: str, body_bytes: int, gsi: bool = True, **extra: dict) -> dict:
    item = {"PK": s(pk), "SK": s("META"), "body": s("x" * body_bytes), **extra}
    if gsi:
        item |= {"GSI1PK": s("TENANT#t"), "GSI1SK": s("2026#r")}
    return item


def test_new_item_projected_to_a_gsi_costs_a_table_and_an_index_write():
    item = _item("RUN#r", 2000)
    # size: PK 2+5, SK 2+4, body 4+2000, GSI1PK 6+8, GSI1SK 6+6 = 2043 bytes -> 2 WRU on the table and on GSI1
    assert C.item_size(item) == 2043
    assert C.write_units(None, item, table_keys=KEYS, gsis=[GSI1]) == {"table": 2, "GSI1": 2}


def test_update_takes_the_larger_item_and_index_writes_follow_what_changed():
    old = _item("RUN#r", 2000)  # 2043 bytes
    new = _item("RUN#r", 3500)  # 3543 bytes -> 4 WRU
    # projected attributes changed, index keys did not: one index write of the larger entry
    assert C.write_units(old, new, table_keys=KEYS, gsis=[GSI1]) == {"table": 4, "GSI1": 4}
    # the index key changed: a delete of the old entry (2 WRU) plus a put of the new one (2 WRU)
    moved = dict(old, GSI1SK=s("2027#r"))
    assert C.write_units(old, moved, table_keys=KEYS, gsis=[GSI1]) == {"table": 2, "GSI1": 4}
    # an item without the index keys never touches the sparse index
    plain = _item("RUN#r", 100, gsi=False)
    assert C.write_units(plain, dict(plain, body=s("y" * 100)), table_keys=KEYS, gsis=[GSI1]) == {"table": 1}


def test_keys_only_index_is_not_written_when_only_non_key_attributes_change():
    keys_only = C.Gsi(name="G", keys=("GSI1PK", "GSI1SK"), projection="KEYS_ONLY")
    old, new = _item("RUN#r", 100), _item("RUN#r", 5000)
    assert C.write_units(old, new, table_keys=KEYS, gsis=[keys_only]) == {"table": 5}
    # its entry (PK 7 + SK 6 + GSI1PK 14 + GSI1SK 12 = 39 bytes) is 1 WRU when the item is created
    assert C.write_units(None, new, table_keys=KEYS, gsis=[keys_only]) == {"table": 5, "G": 1}


def test_transactional_writes_count_double_and_a_failed_condition_costs_the_existing_item():
    item = _item("RUN#r", 1500)  # 1543 bytes -> 2
    assert C.write_units(None, item, table_keys=KEYS, gsis=[GSI1], transactional=True) == {"table": 4, "GSI1": 4}
    assert C.write_units(item, item, table_keys=KEYS, gsis=[GSI1], condition_failed=True) == {"table": 2}


# ------------------------------------------------------------------------------------------------ histories
def _ev(i: int, kind: str, prev: int, **details) -> dict:
    return {"id": i, "type": kind, "previousEventId": prev, **details}


def _scheduled(i: int, prev: int, fn: str, payload: dict) -> dict:
    return _ev(i, "TaskScheduled", prev, taskScheduledEventDetails={
        "resourceType": "lambda", "resource": "invoke",
        "parameters": json.dumps({"FunctionName": f"arn:aws:lambda:us-east-1:1:function:{fn}", "Payload": payload})})


def test_transitions_count_states_entered_and_each_retry():
    # Choice -> Task (fails once, retried, succeeds) -> Succeed: 3 states entered + 1 retry = 4 transitions
    events = [
        _ev(1, "ExecutionStarted", 0),
        _ev(2, "ChoiceStateEntered", 1), _ev(3, "ChoiceStateExited", 2),
        _ev(4, "TaskStateEntered", 3),
        _scheduled(5, 4, "stepcrew-local-agent", {"turn": 1}), _ev(6, "TaskStarted", 5), _ev(7, "TaskFailed", 6),
        _scheduled(8, 7, "stepcrew-local-agent", {"turn": 1}), _ev(9, "TaskStarted", 8), _ev(10, "TaskSucceeded", 9),
        _ev(11, "TaskStateExited", 10),
        _ev(12, "SucceedStateEntered", 11), _ev(13, "SucceedStateExited", 12), _ev(14, "ExecutionSucceeded", 13),
    ]
    assert C.transitions(events) == (3, 1)
    # two Lambda requests (the retry is an invocation too), function name from the ARN, payload as sent
    assert C.lambda_invocations(events) == [("stepcrew-local-agent", {"turn": 1})] * 2


def test_map_iterations_count_every_state_they_enter():
    # Map entered once, two iterations of one Task each: 3 transitions, no retry
    events = [_ev(1, "ExecutionStarted", 0), _ev(2, "MapStateEntered", 1), _ev(3, "MapStateStarted", 2)]
    for n, base in enumerate((10, 20)):
        events += [_ev(base, "MapIterationStarted", 3), _ev(base + 1, "TaskStateEntered", base),
                   _scheduled(base + 2, base + 1, "stepcrew-local-tool_calculator", {"i": n}),
                   _ev(base + 3, "TaskSucceeded", base + 2), _ev(base + 4, "TaskStateExited", base + 3)]
    events.append(_ev(30, "MapStateExited", 24))
    assert C.transitions(events) == (3, 0)
    assert [name for name, _ in C.lambda_invocations(events)] == ["stepcrew-local-tool_calculator"] * 2


# ------------------------------------------------------------------------------------------------ the meter
def test_meter_counts_writes_reads_and_index_writes_on_moto():
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        metered = boto3.session.Session(region_name="us-east-1")
        shadow = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        meter = C.DynamoMeter(shadow, lambda table: (KEYS, [GSI1]))
        meter.install(metered)
        ddb = metered.client("dynamodb")
        ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                                               for a in ("PK", "SK", "GSI1PK", "GSI1SK")],
                         KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                    {"AttributeName": "SK", "KeyType": "RANGE"}],
                         GlobalSecondaryIndexes=[{"IndexName": "GSI1", "Projection": {"ProjectionType": "ALL"},
                                                  "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                                                                {"AttributeName": "GSI1SK", "KeyType": "RANGE"}]}])
        item = _item("RUN#r", 2000)  # 2043 bytes
        ddb.put_item(TableName="t", Item=item)  # table 2 + GSI1 2 = 4 WRU
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):  # existing 2043 bytes: 2 WRU
            ddb.put_item(TableName="t", Item=item, ConditionExpression="attribute_not_exists(PK)")
        ddb.get_item(TableName="t", Key={"PK": s("RUN#r"), "SK": s("META")}, ConsistentRead=True,
                     ProjectionExpression="PK")  # whole item 2043 bytes, strongly consistent: 1 RRU
        ddb.get_item(TableName="t", Key={"PK": s("RUN#none"), "SK": s("META")})  # not found, eventual: 0.5
        small = _item("RUN#r", 10, gsi=False, SK=s("EVENT#1"))  # PK 7 + SK 2+7 + body 4+10 = 30 bytes
        ddb.put_item(TableName="t", Item=small)  # 1 WRU, no index entry
        ddb.query(TableName="t", KeyConditionExpression="PK = :p", ConsistentRead=True,
                  ExpressionAttributeValues={":p": s("RUN#r")})  # 2043 + 30 bytes summed -> 1 RRU
        assert C.item_size(small) == 30
        assert meter.tally.wru == 4 + 2 + 1
        assert meter.tally.wru_by_target == {"table": 5, "GSI1": 2}
        assert meter.tally.rru == 1 + 0.5 + 1
        assert meter.tally.calls == {"PutItem": 3, "GetItem": 2, "Query": 1}
