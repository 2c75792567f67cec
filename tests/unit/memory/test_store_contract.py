"""The memory-store port's contract, for both adapters (in memory; DynamoDB on moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from stepcrew.memory.models import Episode, MemoryItem
from stepcrew.memory.store import DynamoMemoryStore, memory_pk, pack_vector, unpack_vector


def fact(tenant: str, n: int, **kw) -> MemoryItem:
    return MemoryItem(memory_id=f"f-{n:020x}", tenant=tenant, subject=f"s{n}", text=f"fact {n}", **kw)


def episode(tenant: str, n: int, run_id: str | None = None) -> Episode:
    return Episode(memory_id=f"e-{20260101000000000000 + n}-{run_id or f'run{n}'}", tenant=tenant,
                   run_id=run_id or f"run{n}", goal=f"goal {n}", status="SUCCEEDED")


def test_put_counts_new_items_once_and_replaces_by_id(mstore):
    assert mstore.put_fact(fact("a", 1), [1.0, 0.0], "m") is True
    assert mstore.put_fact(fact("a", 1).model_copy(update={"text": "new"}), [0.0, 1.0], "m") is False
    assert mstore.put_episode(episode("a", 1), None, None) is True
    counts = mstore.counts("a")
    assert (counts.facts, counts.episodes) == (1, 1)
    got = mstore.get("a", fact("a", 1).memory_id)
    assert got.item.text == "new" and got.vector == pytest.approx([0.0, 1.0]) and got.vector_model == "m"


def test_version_changes_on_every_write_and_delete(mstore):
    v0 = mstore.counts("a").version
    mstore.put_fact(fact("a", 1), None, None)
    v1 = mstore.counts("a").version
    mstore.put_fact(fact("a", 1), None, None)
    v2 = mstore.counts("a").version
    mstore.delete("a", fact("a", 1).memory_id)
    assert v0 < v1 < v2 < mstore.counts("a").version


def test_tenants_never_meet(mstore):
    mstore.put_fact(fact("a", 1), [1.0], "m")
    mstore.put_episode(episode("a", 1), [1.0], "m")
    assert mstore.get("b", fact("a", 1).memory_id) is None
    assert mstore.get("b", episode("a", 1).memory_id) is None
    assert mstore.scan("b", "fact")[0] == [] and mstore.scan("b", "episode")[0] == []
    assert mstore.delete("b", fact("a", 1).memory_id) is False
    assert mstore.get("a", fact("a", 1).memory_id) is not None  # still there
    assert mstore.counts("b").facts == 0


def test_scan_orders_pages_and_filters_kinds(mstore):
    for n in range(5):
        mstore.put_episode(episode("a", n), None, None)
        mstore.put_fact(fact("a", n), None, None)
    oldest, cursor = mstore.scan("a", "episode", limit=2)
    assert [s.item.run_id for s in oldest] == ["run0", "run1"] and cursor is not None
    rest, cursor2 = mstore.scan("a", "episode", limit=10, cursor=cursor)
    assert [s.item.run_id for s in rest] == ["run2", "run3", "run4"] and cursor2 is None
    newest, _ = mstore.scan("a", "episode", limit=1, oldest_first=False)
    assert newest[0].item.run_id == "run4"
    assert all(isinstance(s.item, MemoryItem) for s in mstore.scan("a", "fact")[0])
    with pytest.raises(ValueError):
        mstore.scan("a", "fact", cursor="e-nope")


def test_expired_facts_are_never_returned(mstore):
    past = datetime.now(UTC) - timedelta(seconds=1)
    mstore.put_fact(fact("a", 1, expires_at=past), None, None)
    mstore.put_fact(fact("a", 2, expires_at=datetime.now(UTC) + timedelta(days=1)), None, None)
    assert mstore.get("a", fact("a", 1).memory_id) is None
    assert [s.item.memory_id for s in mstore.scan("a", "fact")[0]] == [fact("a", 2).memory_id]


def test_vectors_round_trip_as_float32():
    v = [0.1, -0.5, 0.25]
    data = pack_vector(v)
    assert len(data) == 4 * len(v)
    assert unpack_vector(data) == pytest.approx(v, abs=1e-7)


def test_dynamo_item_of_another_tenant_in_a_partition_is_ignored(moto_dynamodb):
    from stepcrew.store.dynamodb import DynamoRunStore
    from stepcrew.store.schema import create_table

    create_table(moto_dynamodb, "t-forged")
    store = DynamoMemoryStore(DynamoRunStore("t-forged", client=moto_dynamodb))
    forged = fact("b", 9)  # an item of tenant b written into tenant a's partition (a bug elsewhere, or a forgery)
    moto_dynamodb.put_item(TableName="t-forged", Item={
        "PK": {"S": memory_pk("a")}, "SK": {"S": "FACT#" + forged.memory_id}, "tenant": {"S": "b"},
        "body": {"S": forged.model_dump_json()}})
    assert store.get("a", forged.memory_id) is None
    assert store.scan("a", "fact")[0] == []


def test_delete_many_deletes_in_batches_within_the_tenant(mstore):
    for n in range(60):  # more than two BatchWriteItem calls of 25
        mstore.put_episode(episode("a", n), None, None)
    mstore.put_episode(episode("b", 1), None, None)
    ids = [s.item.memory_id for s in mstore.scan("a", "episode")[0]]
    assert mstore.delete_many("a", "episode", ids[:55]) == 55
    assert [s.item.run_id for s in mstore.scan("a", "episode")[0]] == [f"run{n}" for n in range(55, 60)]
    assert mstore.counts("a").episodes == 5
    mstore.delete_many("a", "episode", [episode("b", 1).memory_id])  # b's id, but in a's partition:
    assert mstore.get("b", episode("b", 1).memory_id) is not None  # b's item is untouched
