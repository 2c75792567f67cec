"""S3VectorsIndex on a real ``s3vectors`` boto3 client wrapped in botocore's Stubber (no network, no AWS account).

moto 5.2.5 does not serve S3 Vectors queries (FACTS.md), so the Stubber is the test double: it checks every request
against the botocore service model (shapes, required members, list limits) and the exact parameters we expect, and
returns responses we write. What it cannot show is the service's own behaviour (ranking, filter semantics).
"""

from __future__ import annotations

import array
import math
import random

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import ANY, Stubber
from stepcrew.memory.index import ExactIndex, VectorRecord
from stepcrew.memory.models import MemoryItem
from stepcrew.memory.s3vectors import (
    INDEX_NAMES,
    MAX_DELETE_BATCH,
    MAX_PUT_BATCH,
    MAX_TOP_K,
    S3VectorsIndex,
)
from stepcrew.memory.store import InMemoryMemoryStore
from stepcrew.store.base import StoreError

BUCKET = "stepcrew-dev-memory"


@pytest.fixture
def client(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    return boto3.client("s3vectors", region_name="us-east-1")


@pytest.fixture
def stubbed(client):
    with Stubber(client) as stubber:
        yield S3VectorsIndex(BUCKET, client=client), stubber
        stubber.assert_no_pending_responses()


def f32(values):
    return array.array("f", values).tolist()


def mid(n: int) -> str:
    return f"f-{n:020x}"


def unit(rng: random.Random, dim: int = 8) -> list[float]:
    v = [rng.uniform(-1, 1) for _ in range(dim)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def query_response(hits):
    """A QueryVectors response: ``hits`` = [(key, distance, metadata)]."""
    return {"vectors": [{"key": k, "distance": d, "metadata": m} for k, d, m in hits], "distanceMetric": "cosine"}


# ------------------------------------------------------------------------------------------------- upsert
def test_upsert_of_1200_records_is_three_put_vectors_calls_of_at_most_500_float32_vectors(stubbed):
    # Given 1,200 records of one tenant (some tenant-wide, some of a user), when upserted, then PutVectors is called
    # ceil(1200/500) = 3 times (500, 500, 200) on the facts index, each vector keyed <tenant>#<id>, float32 data,
    # metadata {tenant, user or ""}.
    index, stubber = stubbed
    rng = random.Random(1)
    records = [VectorRecord(mid(i), "acme", unit(rng), user="bob" if i % 3 == 0 else None) for i in range(1200)]
    expected = [{"key": f"acme#{r.memory_id}", "data": {"float32": f32(r.vector)},
                 "metadata": {"tenant": "acme", "user": r.user or ""}} for r in records]
    assert MAX_PUT_BATCH == 500
    for start, size in ((0, 500), (500, 500), (1000, 200)):
        stubber.add_response("put_vectors", {}, {"vectorBucketName": BUCKET, "indexName": INDEX_NAMES["fact"],
                                                 "vectors": expected[start:start + size]})
    index.upsert("fact", records)


def test_upsert_skips_vectors_cosine_cannot_store_and_uses_the_episode_index(stubbed):
    # zero vectors and NaN are refused by PutVectors under cosine (service model): skipped, nothing else changes
    index, stubber = stubbed
    good = VectorRecord("e-20260101000000000000-run1", "acme", [0.1, 0.2, 0.3])
    stubber.add_response("put_vectors", {}, {"vectorBucketName": BUCKET, "indexName": "stepcrew-episodes",
                                             "vectors": [{"key": "acme#e-20260101000000000000-run1",
                                                          "data": {"float32": f32([0.1, 0.2, 0.3])},
                                                          "metadata": {"tenant": "acme", "user": ""}}]})
    index.upsert("episode", [VectorRecord(mid(1), "acme", [0.0, 0.0, 0.0]), good,
                             VectorRecord(mid(2), "acme", [float("nan"), 1.0, 0.0])])


def test_upsert_of_nothing_calls_nothing_and_an_unknown_kind_is_refused(stubbed):
    index, _ = stubbed
    index.upsert("fact", [])
    with pytest.raises(ValueError, match="kind"):
        index.upsert("document", [VectorRecord(mid(1), "acme", [1.0])])


# ------------------------------------------------------------------------------------------------- query
def test_query_filters_on_the_tenant_asks_distance_and_metadata_and_turns_distance_into_similarity(stubbed):
    index, stubber = stubbed
    q = [0.5, 0.5, 0.0]
    stubber.add_response("query_vectors", query_response([
        (f"acme#{mid(1)}", 0.1, {"tenant": "acme", "user": ""}),
        (f"acme#{mid(2)}", 0.25, {"tenant": "acme", "user": "bob"}),
        (f"acme#{mid(3)}", 1.5, {"tenant": "acme", "user": ""}),
    ]), {"vectorBucketName": BUCKET, "indexName": "stepcrew-facts", "topK": 5, "queryVector": {"float32": f32(q)},
         "filter": {"tenant": {"$eq": "acme"}}, "returnDistance": True, "returnMetadata": True})
    got = index.query("acme", "fact", q, 5)
    assert [m for m, _ in got] == [mid(1), mid(2), mid(3)]
    assert [s for _, s in got] == pytest.approx([0.9, 0.75, -0.5])  # similarity = 1 - cosine distance


def test_query_with_users_filters_on_them_with_none_meaning_tenant_wide(stubbed):
    index, stubber = stubbed
    q = [1.0, 0.0]
    stubber.add_response("query_vectors", query_response([]), {
        "vectorBucketName": BUCKET, "indexName": "stepcrew-episodes", "topK": 4, "queryVector": {"float32": q},
        "filter": {"$and": [{"tenant": {"$eq": "acme"}}, {"user": {"$in": ["", "bob"]}}]},
        "returnDistance": True, "returnMetadata": True})
    assert index.query("acme", "episode", q, 4, users={None, "bob"}) == []


def test_query_top_k_is_capped_at_the_documented_maximum(stubbed):
    index, stubber = stubbed
    assert MAX_TOP_K == 100
    stubber.add_response("query_vectors", query_response([]), {
        "vectorBucketName": BUCKET, "indexName": "stepcrew-facts", "topK": 100, "queryVector": ANY,
        "filter": ANY, "returnDistance": True, "returnMetadata": True})
    assert index.query("acme", "fact", [1.0, 2.0], 1000) == []


def test_query_without_anything_to_ask_makes_no_call(stubbed):
    index, _ = stubbed  # a pending-free Stubber raises on any call
    assert index.query("acme", "fact", [1.0], 0) == []
    assert index.query("acme", "fact", [1.0], 3, users=set()) == []
    assert index.query("acme", "fact", [0.0, 0.0], 3) == []


@pytest.mark.parametrize("key, metadata", [
    (f"other#{mid(9)}", {"tenant": "other", "user": ""}),        # another tenant's vector
    (f"other#{mid(9)}", {"tenant": "acme", "user": ""}),         # key of another tenant, metadata claiming ours
    (f"acme#{mid(9)}", {"tenant": "other", "user": ""}),         # our key prefix, metadata of another tenant
    (f"acme#{mid(9)}", {"user": ""}),                            # no tenant in the metadata
    (f"acme2#{mid(9)}", {"tenant": "acme2", "user": ""}),        # a tenant whose name starts with ours
    (f"acme2#{mid(9)}", {"tenant": "acme", "user": ""}),
    (mid(9), {"tenant": "acme", "user": ""}),                    # no tenant prefix at all
    ("acme#", {"tenant": "acme", "user": ""}),                   # no memory id
])
def test_a_result_of_another_tenant_or_with_mismatched_metadata_is_dropped(stubbed, key, metadata):
    # Given the service answers (wrongly) with a vector that is not plainly the tenant's, then it never comes out.
    index, stubber = stubbed
    stubber.add_response("query_vectors", query_response([
        (key, 0.0, metadata), (f"acme#{mid(1)}", 0.3, {"tenant": "acme", "user": ""})]),
        {"vectorBucketName": BUCKET, "indexName": "stepcrew-facts", "topK": 3, "queryVector": ANY,
         "filter": {"tenant": {"$eq": "acme"}}, "returnDistance": True, "returnMetadata": True})
    assert index.query("acme", "fact", [1.0, 0.0], 3) == [(mid(1), pytest.approx(0.7))]


def test_a_result_of_a_user_not_asked_for_is_dropped(stubbed):
    index, stubber = stubbed
    stubber.add_response("query_vectors", query_response([
        (f"acme#{mid(1)}", 0.1, {"tenant": "acme", "user": "eve"}),
        (f"acme#{mid(2)}", 0.2, {"tenant": "acme", "user": "bob"}),
        (f"acme#{mid(3)}", 0.3, {"tenant": "acme", "user": ""})]), None)
    assert [m for m, _ in index.query("acme", "fact", [1.0], 3, users={"bob"})] == [mid(2)]


# ------------------------------------------------------------------------------------------------- delete
def test_delete_sends_keys_in_batches_of_at_most_500_once_each(stubbed):
    index, stubber = stubbed
    ids = [mid(i) for i in range(1001)]
    assert MAX_DELETE_BATCH == 500
    for start, size in ((0, 500), (500, 500), (1000, 1)):
        stubber.add_response("delete_vectors", {}, {"vectorBucketName": BUCKET, "indexName": "stepcrew-facts",
                                                    "keys": [f"acme#{i}" for i in ids[start:start + size]]})
    index.delete("acme", "fact", ids + ids[:10])  # duplicates are sent once
    index.delete("acme", "fact", [])  # nothing: no call


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("operation, call", [
    ("put_vectors", lambda ix: ix.upsert("fact", [VectorRecord(mid(1), "acme", [1.0])])),
    ("query_vectors", lambda ix: ix.query("acme", "fact", [1.0], 2)),
    ("delete_vectors", lambda ix: ix.delete("acme", "fact", [mid(1)])),
])
def test_a_client_error_is_a_one_line_store_error_naming_the_operation_and_code_only(stubbed, operation, call):
    index, stubber = stubbed
    stubber.add_client_error(operation, service_error_code="AccessDeniedException",
                             service_message="User is not authorized on key secret-tenant#f-123", http_status_code=403)
    with pytest.raises(StoreError) as info:
        call(index)
    text = str(info.value)
    api = "".join(p.title() for p in operation.split("_"))
    assert api in text and "AccessDeniedException" in text and "\n" not in text
    assert "secret-tenant" not in text and "acme" not in text  # neither the service's message nor a key


def test_an_unreachable_endpoint_is_a_store_error(client):
    def boom(**_):
        raise EndpointConnectionError(endpoint_url="https://s3vectors.us-east-1.api.aws")

    client.query_vectors = boom
    with pytest.raises(StoreError, match="QueryVectors.*EndpointConnectionError"):
        S3VectorsIndex(BUCKET, client=client).query("acme", "fact", [1.0], 1)


def test_the_client_is_built_lazily_with_boto3(monkeypatch):
    built = []
    monkeypatch.setattr(boto3, "client", lambda service, **kw: built.append(service) or object())
    index = S3VectorsIndex(BUCKET)
    assert built == []
    index._get_client()
    index._get_client()
    assert built == ["s3vectors"]


def test_build_index_returns_the_s3vectors_adapter_for_its_environment():
    from stepcrew.memory.index import build_index

    index = build_index(InMemoryMemoryStore(), None, {"STEPCREW_MEMORY_INDEX": "s3vectors",
                                                      "STEPCREW_MEMORY_VECTOR_BUCKET": BUCKET})
    assert isinstance(index, S3VectorsIndex) and index.bucket == BUCKET and index.name == "s3vectors"


# ------------------------------------------------------------------------------------------------- contract
def test_s3vectors_and_the_exact_index_agree_on_the_order_of_the_same_data(stubbed):
    """Same 12 facts of one tenant (plus another tenant's, which neither may return): ExactIndex over the in-memory
    store ranks them; the stubbed S3 Vectors response is computed here independently (cosine distance by hand, in
    float64, sorted ascending, as the service ranks), filtered to the tenant and users like the request asks."""
    index, stubber = stubbed
    rng = random.Random(7)
    store = InMemoryMemoryStore()
    data = []
    for i in range(12):
        user = ("bob", None, "eve")[i % 3]
        vec = unit(rng)
        store.put_fact(MemoryItem(memory_id=mid(i), tenant="acme", user=user, subject=f"s{i}", text=f"t{i}"), vec,
                       "m")
        data.append((mid(i), user, vec))
    store.put_fact(MemoryItem(memory_id=mid(99), tenant="other", subject="x", text="y"), unit(rng), "m")
    q = unit(rng)
    users = {None, "bob"}

    def distance(v):
        a, b = f32(q), f32(v)
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return 1.0 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    hits = sorted(((f"acme#{m}", distance(v), {"tenant": "acme", "user": u or ""}) for m, u, v in data
                   if u in users), key=lambda h: h[1])[:5]
    stubber.add_response("query_vectors", query_response(hits), {
        "vectorBucketName": BUCKET, "indexName": "stepcrew-facts", "topK": 5, "queryVector": {"float32": f32(q)},
        "filter": {"$and": [{"tenant": {"$eq": "acme"}}, {"user": {"$in": ["", "bob"]}}]},
        "returnDistance": True, "returnMetadata": True})

    exact = ExactIndex(store, "m").query("acme", "fact", q, 5, users)
    managed = index.query("acme", "fact", q, 5, users)
    assert [m for m, _ in managed] == [m for m, _ in exact]
    assert [s for _, s in managed] == pytest.approx([s for _, s in exact], abs=1e-5)
    assert len(exact) == 5 and mid(99) not in {m for m, _ in exact}
