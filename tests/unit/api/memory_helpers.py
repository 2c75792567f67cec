"""Helpers of the memory API tests: a fake PII/injection guard, a vector index that records what it is told, the
tenant Memory on the test's run store, and direct reads of the table (independent of the code under test)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from stepcrew.embeddings.testing import HashingEmbeddings
from stepcrew.guards.base import Finding, Guard
from stepcrew.memory.index import ExactIndex, VectorIndex, VectorRecord
from stepcrew.memory.models import Episode
from stepcrew.memory.service import Memory, episode_id
from stepcrew.memory.store import memory_store_for
from stepcrew.memory.writer import InProcessWriter

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_OVERRIDE = re.compile(r"ignore (?:all )?previous instructions", re.IGNORECASE)


class FakeGuard(Guard):
    """E-mail addresses are PII; "ignore (all) previous instructions" is an injection. Counts its calls."""

    name = "fake"

    def __init__(self) -> None:
        self.screened: list[str] = []

    def pii(self, text: str) -> list[Finding]:
        self.screened.append(text)
        return [Finding(kind="pii", entity="EMAIL_ADDRESS", start=m.start(), end=m.end(), score=1.0)
                for m in _EMAIL.finditer(text)]

    def injection(self, text: str) -> list[Finding]:
        return [Finding(kind="injection", entity="instruction_override", start=m.start(), end=m.end(), score=1.0)
                for m in _OVERRIDE.finditer(text)]

    def topics(self, text: str, denied) -> list[Finding]:
        return []


class RecordingIndex(VectorIndex):
    """The exact index (queries read the store) that records upserts and deletes, as a managed index would get
    them: ``deleted`` is a list of (tenant, kind, ids)."""

    name = "recording"

    def __init__(self, store: Any) -> None:
        self.exact = ExactIndex(store)
        self.upserted: list[tuple[str, list[str]]] = []
        self.deleted: list[tuple[str, str, list[str]]] = []

    def upsert(self, kind: str, records: list[VectorRecord]) -> None:
        self.upserted.append((kind, [r.memory_id for r in records]))

    def query(self, tenant, kind, vector, k, users=None):
        return self.exact.query(tenant, kind, vector, k, users)

    def delete(self, tenant: str, kind: str, memory_ids: list[str]) -> None:
        self.deleted.append((tenant, kind, list(memory_ids)))

    def deleted_ids(self, tenant: str) -> set[str]:
        return {i for t, _, ids in self.deleted if t == tenant for i in ids}


def memory_parts(run_store: Any, guard: Guard | None = None) -> tuple[Memory, InProcessWriter]:
    """The Memory on ``run_store``'s table (hashing embeddings, the fake guard, a RecordingIndex as
    ``memory.index``) and the in-process writer over it."""
    store = memory_store_for(run_store)
    memory = Memory(store, embeddings=HashingEmbeddings, guard=guard or FakeGuard(), index=RecordingIndex(store))
    return memory, InProcessWriter(memory)


def add_episode(memory: Memory, tenant: str, run_id: str, *, user: str | None = None, minutes_ago: int = 0,
                goal: str = "Compare the penguin species") -> str:
    """Store an episode directly (as the memory function does at a run's end); returns its id."""
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC) - timedelta(minutes=minutes_ago)
    ep = Episode(memory_id=episode_id(at, run_id), tenant=tenant, run_id=run_id, user=user, goal=goal,
                 status="SUCCEEDED", review_overall=0.9, created_at=at)
    memory.store.put_episode(ep, HashingEmbeddings().embed([goal])[0], "hashing:sha1:256")
    return ep.memory_id


def table_snapshot(ddb: Any, table: str) -> list[str]:
    """Every item of the table as canonical text, sorted (binary vectors included): to prove nothing changed."""
    import json

    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(json.dumps(i, sort_keys=True, default=lambda b: bytes(b).hex()) for i in items)


def raw_memory_keys(ddb: Any, table: str, tenant: str) -> list[str]:
    """Sort keys of the tenant's memory items (FACT#..., EPISODE#...; META left out), read from DynamoDB directly."""
    resp = ddb.query(TableName=table, KeyConditionExpression="PK = :pk",
                     ExpressionAttributeValues={":pk": {"S": f"MEM#{tenant}"}}, ConsistentRead=True)
    return sorted(i["SK"]["S"] for i in resp["Items"] if i["SK"]["S"] != "META")


def raw_fact_texts(ddb: Any, table: str, tenant: str) -> dict[str, str]:
    """``{fact id: stored text}`` of the tenant, read from DynamoDB directly (the item's JSON body)."""
    import json

    resp = ddb.query(TableName=table, KeyConditionExpression="PK = :pk AND begins_with(SK, :f)",
                     ExpressionAttributeValues={":pk": {"S": f"MEM#{tenant}"}, ":f": {"S": "FACT#"}},
                     ConsistentRead=True)
    return {i["SK"]["S"][len("FACT#"):]: json.loads(i["body"]["S"])["text"] for i in resp["Items"]}
