"""Run artifacts (exports, charts): files a tool writes for a run, under the run's tenant prefix.

Key layout: ``<tenant>/runs/<run_id>/<kind>/<name>`` — the tenant prefix is the same as the datasets' (``<tenant>/``,
:func:`stepcrew.tools.datasets.check_dataset_access`), so one IAM condition on the key prefix scopes both. Deployed:
S3 (:class:`S3ArtifactStore`, a client built once per cold start); locally the emulated S3 of the local runtime, or
:class:`MemoryArtifactStore` in tests. Every read takes the tenant and checks it against the key (a key of another
tenant is answered like a missing one).
"""

from __future__ import annotations

import hashlib
import re
import threading
from abc import ABC, abstractmethod
from typing import Any

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def artifact_key(tenant: str, run_id: str, kind: str, name: str) -> str:
    """``<tenant>/runs/<run_id>/<kind>/<name>``. ValueError for a name outside ``[a-z0-9][a-z0-9_.-]{0,63}``
    (no path separators, no ``..`` at the start)."""
    if not NAME.match(name) or ".." in name:
        raise ValueError(f"artifact name {name!r} must match {NAME.pattern} without '..'")
    return f"{tenant}/runs/{run_id}/{kind}/{name}"


def sha256(body: bytes) -> str:
    """SHA-256 of ``body`` as 64 hex characters (what :meth:`ArtifactStore.head` reports)."""
    return hashlib.sha256(body).hexdigest()


class ArtifactStore(ABC):
    """The artifacts port."""

    @abstractmethod
    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Write ``body`` at ``key`` (overwrites: callers use fixed keys so a repeat writes the same object)."""

    @abstractmethod
    def head(self, tenant: str, key: str) -> dict[str, Any] | None:
        """``{"bytes", "sha256"}`` of the object at ``key`` if it exists and is ``tenant``'s, else None."""


class MemoryArtifactStore(ArtifactStore):
    """Artifacts in a dict (tests): ``objects`` key -> (body, content type), ``puts`` counts writes."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.puts = 0
        self._lock = threading.Lock()

    def put(self, key: str, body: bytes, content_type: str) -> None:
        with self._lock:
            self.objects[key] = (body, content_type)
            self.puts += 1

    def head(self, tenant: str, key: str) -> dict[str, Any] | None:
        if not key.startswith(f"{tenant}/"):
            return None
        with self._lock:
            found = self.objects.get(key)
        return None if found is None else {"bytes": len(found[0]), "sha256": sha256(found[0])}


class S3ArtifactStore(ArtifactStore):
    """Artifacts in ``bucket``; the object's SHA-256 is stored as its ``sha256`` metadata (S3's ETag is not a
    content hash for multipart or KMS-encrypted objects)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                               Metadata={"sha256": sha256(body)})

    def head(self, tenant: str, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        if not key.startswith(f"{tenant}/"):
            return None
        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return {"bytes": meta["ContentLength"], "sha256": meta.get("Metadata", {}).get("sha256", "")}
