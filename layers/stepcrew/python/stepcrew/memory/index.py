"""The vector index port: top-k nearest items of one tenant's memory, and the exact adapter over the store.

DynamoDB (:mod:`stepcrew.memory.store`) is the source of truth for items and vectors; an index answers "which
``k`` items of this tenant (and these users) are nearest to this vector". Adapters:

- :class:`ExactIndex` (default, ``STEPCREW_MEMORY_INDEX=exact``): brute-force cosine over the tenant's vectors,
  loaded from the store and kept in process per (tenant, kind) until the tenant's ``META.version`` changes (one
  GetItem per query when nothing changed). Exact, no extra service; a reload reads every item of the kind (cost
  grows with the tenant: see ``bench/memory.py``), so it suits small tenants.
- :class:`stepcrew.memory.s3vectors.S3VectorsIndex` (``STEPCREW_MEMORY_INDEX=s3vectors``): Amazon S3 Vectors for
  tenants too large to load (the stack creates the vector bucket and indexes with CDK context
  ``memory_index=s3vectors``).

Contract (every adapter): :meth:`VectorIndex.query` returns at most ``k`` ``(memory_id, cosine)`` pairs, best
first, only of ``tenant`` and, when ``users`` is given, of items whose user is in ``users`` (``None`` in the set
= tenant-wide items); ``upsert``/``delete`` are idempotent. An adapter never trusts the index alone for the tenant:
results are checked against the tenant again (key prefix and metadata).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from stepcrew.memory.store import MemoryStore

Kind = str  # "fact" | "episode"


@dataclass(frozen=True)
class VectorRecord:
    """One item's vector for the index: its id, the tenant, the user (None: tenant-wide) and the vector."""

    memory_id: str
    tenant: str
    vector: list[float]
    user: str | None = None


class VectorIndex(ABC):
    """Port: nearest neighbours within one tenant's memory."""

    name: str = "abstract"

    @abstractmethod
    def upsert(self, kind: Kind, records: list[VectorRecord]) -> None:
        """Add or replace vectors (a no-op for an index that reads the store)."""

    @abstractmethod
    def query(self, tenant: str, kind: Kind, vector: list[float], k: int,
              users: set[str | None] | None = None) -> list[tuple[str, float]]:
        """Up to ``k`` ``(memory_id, cosine)`` of ``tenant``'s items of ``kind``, best first (see the contract)."""

    @abstractmethod
    def delete(self, tenant: str, kind: Kind, memory_ids: list[str]) -> None:
        """Remove vectors (unknown ids are ignored)."""


@dataclass
class _Loaded:
    version: int
    model: str | None
    ids: list[str] = field(default_factory=list)
    users: list[str | None] = field(default_factory=list)
    user_set: frozenset = frozenset()
    matrix: Any = None  # numpy array (n, dim) of unit vectors, or a list of lists without numpy


class ExactIndex(VectorIndex):
    """Exact cosine search over the store's vectors (module docstring). ``model``: only vectors made by this
    embeddings ``name`` are compared (a vector of another model is not comparable)."""

    name = "exact"

    def __init__(self, store: MemoryStore, model: str | None = None) -> None:
        self.store = store
        self.model = model
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], _Loaded] = {}
        self.reloads = 0

    def upsert(self, kind: Kind, records: list[VectorRecord]) -> None:
        return None  # the vectors are in the store's items

    def delete(self, tenant: str, kind: Kind, memory_ids: list[str]) -> None:
        return None  # deleting the item deletes its vector; the version change drops the cache

    def _load(self, tenant: str, kind: Kind) -> _Loaded:
        version = self.store.counts(tenant).version
        key = (tenant, kind)
        with self._lock:
            loaded = self._cache.get(key)
            if loaded is not None and loaded.version == version:
                return loaded
        items, _ = self.store.scan(tenant, kind, vectors=True)
        ids, users, vectors = [], [], []
        for st in items:
            if st.vector is None or (self.model and st.vector_model != self.model):
                continue
            if st.item.tenant != tenant:  # checked by the store already; twice by design
                continue
            ids.append(st.item.memory_id)
            users.append(getattr(st.item, "user", None))
            vectors.append(st.vector)
        try:
            import numpy as np

            matrix = np.asarray(vectors, dtype=np.float32) if vectors else None
            if matrix is not None:
                norms = np.linalg.norm(matrix, axis=1, keepdims=True)
                matrix = matrix / np.where(norms > 0, norms, 1.0)
        except ImportError:  # pragma: no cover - numpy comes with wordllama
            matrix = vectors
        loaded = _Loaded(version=version, model=self.model, ids=ids, users=users, user_set=frozenset(users),
                         matrix=matrix)
        with self._lock:
            self._cache[key] = loaded
            self.reloads += 1
        return loaded

    def query(self, tenant: str, kind: Kind, vector: list[float], k: int,
              users: set[str | None] | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        loaded = self._load(tenant, kind)
        if not loaded.ids:
            return []
        # no copy of the matrix when every loaded item's user is asked for (bench/memory.py: 16 -> 12 ms p50 at 10k)
        keep = None if users is None or loaded.user_set <= users else [
            i for i, u in enumerate(loaded.users) if u in users]
        try:
            import numpy as np
        except ImportError:  # pragma: no cover
            np = None
        if np is not None and not isinstance(loaded.matrix, list):
            q = np.asarray(vector, dtype=np.float32)
            norm = float(np.linalg.norm(q))
            if norm == 0.0:
                return []
            m = loaded.matrix if keep is None else loaded.matrix[keep]
            ids = loaded.ids if keep is None else [loaded.ids[i] for i in keep]
            if not ids:
                return []
            scores = m @ (q / norm)
            n = min(k, len(ids))
            top = np.argpartition(-scores, n - 1)[:n]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(ids[i], float(max(-1.0, min(1.0, scores[i])))) for i in top]
        from stepcrew.embeddings.base import top_k

        idx = range(len(loaded.ids)) if keep is None else keep
        return top_k(vector, [(loaded.ids[i], loaded.matrix[i]) for i in idx], k)


def build_index(store: MemoryStore, model: str | None, env: Any = None) -> VectorIndex:
    """The index named by ``STEPCREW_MEMORY_INDEX`` (``exact``, the default, or ``s3vectors`` with
    ``STEPCREW_MEMORY_VECTOR_BUCKET``). Raises ValueError (one line) for another value or a missing bucket."""
    import os

    env = os.environ if env is None else env
    name = (env.get("STEPCREW_MEMORY_INDEX") or "exact").strip().lower()
    if name == "exact":
        return ExactIndex(store, model)
    if name == "s3vectors":
        bucket = (env.get("STEPCREW_MEMORY_VECTOR_BUCKET") or "").strip()
        if not bucket:
            raise ValueError("STEPCREW_MEMORY_INDEX=s3vectors needs STEPCREW_MEMORY_VECTOR_BUCKET")
        from stepcrew.memory.s3vectors import S3VectorsIndex

        return S3VectorsIndex(bucket=bucket)
    raise ValueError(f"STEPCREW_MEMORY_INDEX must be exact or s3vectors, not {name!r}")
