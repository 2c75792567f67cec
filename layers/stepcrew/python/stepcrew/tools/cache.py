"""The tool-result cache: deterministic tools answer a repeated call (same tool, same arguments, same dataset
version) from the run table instead of running again.

Key: ``T#<tool>#`` + SHA-256 of the arguments (canonical JSON) and the dataset's version — the SHA-256 of the
dataset file's content as the tool reads it (memoised per file path, size and mtime),
so a changed dataset never gets an old answer. Entries are the tenant's (``CACHE#<tenant>``, from the run's
``ToolContext.tenant``, checked again in the body by the store) and live the tool's ``cache_ttl_s``
(:class:`stepcrew.tools.base.Tool`): 24 hours for the dataset tools. The calculator is deterministic too but is not
cached: a DynamoDB read (~5-10 ms and a request unit) costs more than evaluating an expression, and its function
stays free of boto3 at cold start. The dataset is resolved — and the
tenant's access to it checked — before the cache is read, so a cached result is never served for a dataset the
tenant cannot read. Only successful results are cached; a cache that fails is a miss (the tool runs).

Deployed, the tool functions hold ``GetItem``/``PutItem`` on the run table for keys under ``CACHE#`` only (IAM
condition ``dynamodb:LeadingKeys``), nothing else of the table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

from stepcrew.models import ToolCall, ToolContext, ToolResult
from stepcrew.store.base import RunStore, StoreError

logger = logging.getLogger(__name__)
PREFIX = "T#"
_hashes: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def file_version(path: Path) -> str:
    """SHA-256 (hex) of a file's content, memoised per (path, size, mtime_ns)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _lock:
        found = _hashes.get(key)
    if found is None:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        found = digest.hexdigest()
        with _lock:
            _hashes[key] = found
    return found


def result_key(tool: str, arguments: dict[str, Any], version: str) -> str:
    """The cache key of one call."""
    blob = json.dumps({"args": arguments, "version": version}, sort_keys=True, separators=(",", ":"), default=str)
    return f"{PREFIX}{tool}#{hashlib.sha256(blob.encode()).hexdigest()}"


class ToolResultCache:
    """Tool results of the run's tenant on ``store`` (its ``cache_get``/``cache_put``)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def get(self, call: ToolCall, ctx: ToolContext, version: str) -> ToolResult | None:
        if not ctx.tenant:
            return None
        try:
            body = self.store.cache_get(ctx.tenant, result_key(call.name, call.arguments, version))
        except (StoreError, ValueError) as exc:
            logger.warning("tool cache read failed", extra={"tool": call.name, "error_type": type(exc).__name__})
            return None
        if body is None:
            return None
        return ToolResult(call_id=call.call_id, name=call.name, ok=True, content=body.get("content"),
                          truncated=bool(body.get("truncated")), cached=True)

    def put(self, call: ToolCall, ctx: ToolContext, version: str, result: ToolResult, ttl_s: int) -> None:
        if not ctx.tenant or not result.ok:
            return
        try:
            self.store.cache_put(ctx.tenant, result_key(call.name, call.arguments, version),
                                 {"content": result.content, "truncated": result.truncated}, ttl_s)
        except (StoreError, ValueError) as exc:
            logger.warning("tool cache write failed", extra={"tool": call.name, "error_type": type(exc).__name__})


def cache_from_env() -> ToolResultCache | None:
    """The cache on ``STEPCREW_TABLE_NAME`` (None without it, or with ``STEPCREW_TOOL_CACHE=0``)."""
    import os

    table = os.environ.get("STEPCREW_TABLE_NAME", "").strip()
    if not table or os.environ.get("STEPCREW_TOOL_CACHE", "1") == "0":
        return None
    from stepcrew.store.dynamodb import DynamoRunStore

    return ToolResultCache(DynamoRunStore(table))
