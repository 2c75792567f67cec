"""The managed vector index: Amazon S3 Vectors, for tenants too large for :class:`~stepcrew.memory.index.ExactIndex`.

Selected with ``STEPCREW_MEMORY_INDEX=s3vectors`` and ``STEPCREW_MEMORY_VECTOR_BUCKET=<vector bucket name>``
(:func:`stepcrew.memory.index.build_index`); the stack creates the vector bucket and the two indexes with CDK context
``memory_index=s3vectors`` (``infra/stepcrew_infra/memory.py``). DynamoDB stays the source of truth
(:mod:`stepcrew.memory.store`): this index only answers "which ``k`` items are nearest"; the caller reads the items
from the store (which checks the tenant again).

Layout
------
- One vector bucket per stage, one index per kind (:data:`INDEX_NAMES`): ``stepcrew-facts``, ``stepcrew-episodes``;
  ``float32``, distance metric ``cosine``, dimension = the stage's embeddings dimension (``STEPCREW_EMBEDDINGS_DIM``,
  set by the stack; a vector of another dimension is refused by the service: ``ValidationException`` ->
  :class:`~stepcrew.store.base.StoreError`).
- Vector key ``<tenant>#<memory_id>`` (:func:`vector_key`; VectorKey is 1-1,024 characters, botocore service model;
  a tenant is at most 128 characters and a memory id ~62, so it fits).
- Metadata ``{"tenant": <tenant>, "user": <user id or "">}``, both filterable (S3 Vectors makes every metadata key
  filterable unless the index lists it as non-filterable; the stack lists none). ``""`` is a tenant-wide item.

Tenant isolation: every query carries the filter ``{"tenant": {"$eq": tenant}}`` (and the users), and every result
is checked again here: its key must start with ``<tenant>#`` AND its metadata ``tenant`` must equal the tenant, else
it is dropped (defence in depth: a wrong filter, a bug in the service or a key written by mistake never reaches
another tenant). Error messages name the operation and the AWS error code only, never a key or a vector.

Limits and their sources
------------------------
- :data:`MAX_PUT_BATCH` = 500 vectors per ``PutVectors`` and :data:`MAX_DELETE_BATCH` = 500 keys per
  ``DeleteVectors`` (botocore service model ``s3vectors/2025-07-15``: ``PutVectorsInputList`` /
  ``DeleteVectorsInputList`` max 500; AWS "Limitations and restrictions",
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-limitations.html).
- :data:`MAX_TOP_K` = 100 results per ``QueryVectors`` (same AWS page: "Top-K results per QueryVectors request: Up to
  100"; it said 30 during the preview; the service model has ``TopK`` min 1 and no max). A larger ``k`` is capped.
- Dimension 1-4,096; request payload up to 20 MiB (500 vectors x 1,024 float32 ~ 2 MiB: far below); filterable
  metadata up to 2 KB per vector (ours: two short strings) (same AWS page).
- Filter syntax (AWS "Metadata filtering",
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-metadata-filtering.html): ``$eq``, ``$in``
  (non-empty array), ``$and`` (non-empty array of filters), among others.
- Permissions (botocore service model, QueryVectors documentation): ``s3vectors:QueryVectors`` alone returns keys and
  distances only; a metadata filter or ``returnMetadata=true`` also needs ``s3vectors:GetVectors`` (else
  ``AccessDeniedException``). Hence the stack's "read" grant is QueryVectors + GetVectors.
- Cosine: ``distance`` is the cosine distance; similarity = ``1 - distance`` (clamped to [-1, 1]), the scale of
  :class:`~stepcrew.memory.index.ExactIndex`. For cosine, zero vectors and NaN/Infinity are refused by PutVectors
  (service model, ``VectorData``): such a record is skipped here (it could never rank by similarity anyway).
- Values are sent as float32 (the service stores float32 and converts wider values, PutVectors documentation): each
  value is rounded through ``array("f")`` first, so what is stored is what was sent.

Why S3 Vectors rather than OpenSearch Serverless
------------------------------------------------
- Cost shape: S3 Vectors has no infrastructure to provision ("without provisioning any infrastructure", AWS "S3
  Vectors best practices", https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-best-practices.html) and
  is billed for storage and requests, so an idle stage costs its stored vectors only. OpenSearch Serverless bills OCUs
  that exist even with no indexing or search activity (AWS "Managing capacity limits for Amazon OpenSearch
  Serverless": by default four OCUs, two for indexing and two for search; at least 1 + 1 OCU (0.5 x 2 each) for a
  vector collection with redundancy), an always-on floor far above a small deployment's memory traffic.
- It is in the S3 family (IAM actions ``s3vectors:*`` on bucket/index ARNs, CloudFormation ``AWS::S3Vectors::*``, no
  VPC, no collection or network/encryption policies to manage) and has filterable metadata, which the tenant filter
  needs.
- Scale and latency: up to 2 billion vectors per index (limitations page; 50 million during the preview) with
  "sub-second query performance for cold queries and as low as 100 milliseconds for warm queries" (best-practices
  page, China-Region copy). Memory recall is a few queries per run, not sustained high QPS, which is S3 Vectors' fit.
  No AWS page found by our search quotes a latency at exactly 10 million vectors.
- Limitations: approximate nearest neighbours (not exact like ExactIndex); in an index's CLASSIC mode a filter is
  applied during the search, so a very selective filter (one small tenant among many) may return fewer than ``k``
  results; AWS suggests one index per tenant for multi-tenant workloads (best-practices page), which would need an
  index created per tenant at onboarding (at most 10,000 indexes per bucket): stepcrew keeps one index per kind with
  the tenant filter and the re-check above. moto 5.2.5 does not implement S3 Vectors queries, so this adapter is
  unit-tested with botocore's ``Stubber`` on a real client (``tests/unit/memory/test_s3vectors.py``), which checks
  every request against the service model but not the service's behaviour.
"""

from __future__ import annotations

import array
import math
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from stepcrew.memory.index import Kind, VectorIndex, VectorRecord
from stepcrew.store.base import StoreError

#: Index name per kind (3-63 characters of a-z, 0-9, ``-`` and ``.``; AWS "Vector indexes" naming requirements).
#: The stack creates these indexes (``infra/stepcrew_infra/memory.py`` reads this constant).
INDEX_NAMES: dict[str, str] = {"fact": "stepcrew-facts", "episode": "stepcrew-episodes"}
#: Vectors per PutVectors call and keys per DeleteVectors call (see the module docstring for the sources).
MAX_PUT_BATCH = 500
MAX_DELETE_BATCH = 500
#: Results per QueryVectors request at most (see the module docstring).
MAX_TOP_K = 100
#: Metadata keys (both filterable).
TENANT_KEY = "tenant"
USER_KEY = "user"
KEY_SEPARATOR = "#"


def vector_key(tenant: str, memory_id: str) -> str:
    """The vector key of an item: ``<tenant>#<memory_id>``."""
    return f"{tenant}{KEY_SEPARATOR}{memory_id}"


def _float32(vector: Iterable[float]) -> list[float] | None:
    """The vector as float32-rounded Python floats, or None when it cannot be stored under cosine (empty, zero, NaN
    or infinite values)."""
    values = array.array("f", vector).tolist()
    if not values or not all(math.isfinite(v) for v in values) or not any(values):
        return None
    return values


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class S3VectorsIndex(VectorIndex):
    """Amazon S3 Vectors adapter (module docstring). ``bucket``: the vector bucket's name; ``client``: an
    ``s3vectors`` boto3 client to use as is (tests wrap one in a ``Stubber``), else one is built on first use;
    ``index_names``: kind -> index name (default :data:`INDEX_NAMES`).

    Every method raises :class:`~stepcrew.store.base.StoreError` (one line: operation and AWS error code) when the
    service refuses or cannot be reached, and ValueError for a kind without an index."""

    name = "s3vectors"

    def __init__(self, bucket: str, *, client: Any = None, index_names: dict[str, str] | None = None) -> None:
        if not bucket:
            raise ValueError("S3VectorsIndex needs a vector bucket name")
        self.bucket = bucket
        self.index_names = dict(INDEX_NAMES if index_names is None else index_names)
        self._client = client
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ plumbing
    def _get_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3  # lazy: ~0.4 s with a client (FACTS.md "Import cost")

                    self._client = boto3.client("s3vectors")
        return self._client

    def _index(self, kind: Kind) -> str:
        try:
            return self.index_names[kind]
        except KeyError:
            raise ValueError(f"no S3 Vectors index for memory kind {kind!r}") from None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One API call; AWS errors become a StoreError naming the operation and the error code only (a service
        message may quote a key, i.e. a tenant's name: it is not repeated)."""
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            EndpointConnectionError,
            HTTPClientError,
            NoCredentialsError,
        )

        client = self._get_client()
        api = "".join(part.title() for part in operation.split("_"))
        try:
            return getattr(client, operation)(vectorBucketName=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") or "Unknown"
            raise StoreError(f"S3 Vectors {api} on index {kwargs.get('indexName')!r} failed: {code}") from None
        except (EndpointConnectionError, ConnectionError, HTTPClientError, NoCredentialsError) as exc:
            raise StoreError(f"S3 Vectors {api} on index {kwargs.get('indexName')!r} failed: "
                             f"{type(exc).__name__}") from None

    # ------------------------------------------------------------------------------------------ the port
    def upsert(self, kind: Kind, records: list[VectorRecord]) -> None:
        """PutVectors in batches of :data:`MAX_PUT_BATCH` (the same key replaces the vector and its metadata).
        A record whose vector cannot be stored under cosine (zero, NaN, infinite) is skipped."""
        index = self._index(kind)
        vectors = []
        for record in records:
            data = _float32(record.vector)
            if data is None:
                continue
            vectors.append({"key": vector_key(record.tenant, record.memory_id), "data": {"float32": data},
                            "metadata": {TENANT_KEY: record.tenant, USER_KEY: record.user or ""}})
        for batch in _chunks(vectors, MAX_PUT_BATCH):
            self._call("put_vectors", indexName=index, vectors=batch)

    def query(self, tenant: str, kind: Kind, vector: list[float], k: int,
              users: set[str | None] | None = None) -> list[tuple[str, float]]:
        """QueryVectors with ``topK = min(k, MAX_TOP_K)``, the tenant filter (and ``user`` ``$in`` the users, None
        meaning ``""``), distances and metadata; every result re-checked for the tenant (module docstring).
        Returns ``[(memory_id, 1 - cosine distance)]`` best first. An empty ``users`` set, ``k <= 0`` or a zero
        query vector: ``[]`` without a call."""
        index = self._index(kind)
        if k <= 0 or (users is not None and not users):
            return []
        data = _float32(vector)
        if data is None:
            return []
        tenant_filter: dict[str, Any] = {TENANT_KEY: {"$eq": tenant}}
        if users is None:
            query_filter = tenant_filter
        else:
            values = sorted({u or "" for u in users})
            query_filter = {"$and": [tenant_filter, {USER_KEY: {"$in": values}}]}
        resp = self._call("query_vectors", indexName=index, topK=min(k, MAX_TOP_K), queryVector={"float32": data},
                          filter=query_filter, returnDistance=True, returnMetadata=True)
        prefix = vector_key(tenant, "")
        out: list[tuple[str, float]] = []
        seen: set[str] = set()
        for hit in resp.get("vectors", []):
            key, meta, distance = hit.get("key") or "", hit.get("metadata") or {}, hit.get("distance")
            if not key.startswith(prefix) or not isinstance(meta, dict) or meta.get(TENANT_KEY) != tenant:
                continue  # another tenant's vector, or metadata that does not match its key: never returned
            if users is not None and (meta.get(USER_KEY) or None) not in users:
                continue
            memory_id = key[len(prefix):]
            if not memory_id or memory_id in seen or not isinstance(distance, int | float) or \
                    not math.isfinite(distance):
                continue
            seen.add(memory_id)
            out.append((memory_id, max(-1.0, min(1.0, 1.0 - float(distance)))))
        out.sort(key=lambda pair: -pair[1])  # stable: the service's order among equal scores is kept
        return out[:k]

    def delete(self, tenant: str, kind: Kind, memory_ids: list[str]) -> None:
        """DeleteVectors by key in batches of :data:`MAX_DELETE_BATCH`; duplicates are sent once. Unknown ids are
        sent like the others: the DeleteVectors reference documents no error for a key that is not in the index
        (its NotFoundException is for a missing bucket or index), so none is expected - not verified against the
        service, which cannot be reached from the tests."""
        index = self._index(kind)
        keys = list(dict.fromkeys(vector_key(tenant, mid) for mid in memory_ids if mid))
        for batch in _chunks(keys, MAX_DELETE_BATCH):
            self._call("delete_vectors", indexName=index, keys=batch)
