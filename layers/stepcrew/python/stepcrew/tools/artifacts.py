"""Run artifacts (exports, charts): files a tool writes for a run, under the run's tenant prefix.

Key layout: ``<tenant>/runs/<run_id>/<kind>/<name>`` — the tenant prefix is the same as the datasets' (``<tenant>/``,
:func:`stepcrew.tools.datasets.check_dataset_access`), so one IAM condition on the key prefix scopes both. Deployed:
S3 (:class:`S3ArtifactStore`, a client built once per cold start); locally the emulated S3 of the local runtime, or
:class:`MemoryArtifactStore` in tests. Every read takes the tenant and checks it against the key (a key of another
tenant is answered like a missing one).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
import threading
from pathlib import Path
from abc import ABC, abstractmethod
from typing import Any

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")  # tenants and run ids (models.TENANT_PATTERN)
#: At most this many artifacts are listed for one run (a run writes a handful: each tool call names one file).
MAX_LISTED = 1000


def artifact_key(tenant: str, run_id: str, kind: str, name: str) -> str:
    """``<tenant>/runs/<run_id>/<kind>/<name>``. ValueError for a name outside ``[a-z0-9][a-z0-9_.-]{0,63}``
    (no path separators, no ``..`` at the start)."""
    if not NAME.match(name) or ".." in name:
        raise ValueError(f"artifact name {name!r} must match {NAME.pattern} without '..'")
    return f"{tenant}/runs/{run_id}/{kind}/{name}"


def sha256(body: bytes) -> str:
    """SHA-256 of ``body`` as 64 hex characters (what :meth:`ArtifactStore.head` reports)."""
    return hashlib.sha256(body).hexdigest()


def run_prefix(tenant: str, run_id: str) -> str:
    """``<tenant>/runs/<run_id>/``. ValueError for a tenant or run id that is not one safe path segment."""
    for label, value in (("tenant", tenant), ("run id", run_id)):
        if not SEGMENT.match(value) or ".." in value:
            raise ValueError(f"{label} {value!r} is not a valid key segment")
    return f"{tenant}/runs/{run_id}/"


def owns(tenant: str, key: str) -> bool:
    """True if ``key`` is a run artifact of ``tenant`` (``<tenant>/runs/<run>/<kind>/<name>``)."""
    parts = key.split("/")
    return (bool(SEGMENT.match(tenant)) and len(parts) == 5 and parts[0] == tenant and parts[1] == "runs"
            and all(parts) and ".." not in key)


def describe(key: str, size: int, content_type: str) -> dict[str, Any]:
    """One listing entry: ``{"key", "kind", "name", "bytes", "content_type"}`` of ``<t>/runs/<r>/<kind>/<name>``."""
    parts = key.split("/")
    return {"key": key, "kind": parts[3], "name": parts[4], "bytes": size, "content_type": content_type}


class ArtifactStore(ABC):
    """The artifacts port."""

    @abstractmethod
    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Write ``body`` at ``key`` (overwrites: callers use fixed keys so a repeat writes the same object)."""

    @abstractmethod
    def head(self, tenant: str, key: str) -> dict[str, Any] | None:
        """``{"bytes", "sha256"}`` of the object at ``key`` if it exists and is ``tenant``'s, else None."""

    @abstractmethod
    def list(self, tenant: str, run_id: str) -> list[dict[str, Any]]:
        """The artifacts of run ``run_id`` of ``tenant`` (keys under ``<tenant>/runs/<run_id>/``), sorted by key, at
        most :data:`MAX_LISTED`: ``[{"key", "kind", "name", "bytes", "content_type"}]`` (``kind`` = ``exports`` or
        ``charts``...). Another tenant's run is simply not under this prefix: ``[]``, like an unknown run. ValueError
        for a tenant or run id that is not one path segment."""

    @abstractmethod
    def get(self, tenant: str, key: str) -> bytes | None:
        """The bytes at ``key`` if it exists and is one of ``tenant``'s run artifacts (``<tenant>/runs/...``), else
        None (another tenant's key is answered like a missing one)."""


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

    def list(self, tenant: str, run_id: str) -> list[dict[str, Any]]:
        prefix = run_prefix(tenant, run_id)
        with self._lock:
            found = sorted((k, v) for k, v in self.objects.items() if k.startswith(prefix) and owns(tenant, k))
        return [describe(k, len(body), ctype) for k, (body, ctype) in found[:MAX_LISTED]]

    def get(self, tenant: str, key: str) -> bytes | None:
        if not owns(tenant, key):
            return None
        with self._lock:
            found = self.objects.get(key)
        return None if found is None else found[0]


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

    def list(self, tenant: str, run_id: str) -> list[dict[str, Any]]:
        """ListObjectsV2 under the run's prefix (paginated, at most :data:`MAX_LISTED` keys), then a HeadObject per
        key for its content type (a run has a handful of artifacts)."""
        from botocore.exceptions import ClientError

        prefix = run_prefix(tenant, run_id)
        keys: list[tuple[str, int]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [(o["Key"], o["Size"]) for o in page.get("Contents", []) if owns(tenant, o["Key"])]
            if len(keys) >= MAX_LISTED:
                break
        out = []
        for key, size in sorted(keys)[:MAX_LISTED]:
            try:
                ctype = self.client.head_object(Bucket=self.bucket, Key=key).get("ContentType", "")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    continue  # deleted between the listing and the head
                raise
            out.append(describe(key, size, ctype))
        return out

    def get(self, tenant: str, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        if not owns(tenant, key):
            return None
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise


class FolderArtifactStore(ArtifactStore):
    """Artifacts as files of a folder (the local runtime's: key = path under it, like the local datasets bucket's
    folder, :func:`stepcrew.local.runtime.default_datasets_dir`), so a later process (``stepcrew runs show``, ``runs
    artifacts``) reads what a run wrote. The content type is guessed from the name (``.png`` image/png, ``.csv``
    text/csv, ``.json`` application/json); the SHA-256 is computed from the file."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if len(parts) != 5 or any(p in ("", ".", "..") for p in parts) or "\\" in key:
            raise ValueError(f"not an artifact key: {key!r}")
        return self.folder.joinpath(*parts)

    def put(self, key: str, body: bytes, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".artifact-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def head(self, tenant: str, key: str) -> dict[str, Any] | None:
        body = self.get(tenant, key)
        return None if body is None else {"bytes": len(body), "sha256": sha256(body)}

    def list(self, tenant: str, run_id: str) -> list[dict[str, Any]]:
        root = self.folder / run_prefix(tenant, run_id)
        if not root.is_dir():
            return []
        out = []
        for path in sorted(root.glob("*/*")):
            key = path.relative_to(self.folder).as_posix()
            if path.is_file() and not path.name.startswith(".") and owns(tenant, key):
                out.append(describe(key, path.stat().st_size, content_type_of(path.name)))
        return out[:MAX_LISTED]

    def get(self, tenant: str, key: str) -> bytes | None:
        if not owns(tenant, key):
            return None
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None


def content_type_of(name: str) -> str:
    """The content type a file name implies (``application/octet-stream`` when unknown)."""
    if name.endswith(".csv"):
        return "text/csv; charset=utf-8"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
