"""The ``export_results`` operations tool: writes a table (columns and rows, e.g. a query result) as CSV or JSON under
the run's tenant prefix (``<tenant>/runs/<run_id>/exports/<name>``, :mod:`stepcrew.tools.artifacts`).

- **Dry run by default**: unless the run allows side effects (``ToolContext.allow_side_effects``), nothing is written
  and the result says what would be (``dry_run: true``, the key, the bytes).
- **Exactly once** (:func:`stepcrew.tools.receipts.exactly_once`): a receipt keyed on run, sub-task and call id is
  written before the object and completed after. A retried Lambda, a redriven or resumed run or a replayed Map finds
  it: a DONE receipt returns the first result (``replayed: true``); a PENDING one (an attempt died after starting)
  is settled by looking at the object (same key, same SHA-256: done; absent: written now). The key is fixed by the
  run, the sub-task's call id is not in it: two calls with the same name overwrite, the second one's receipt says so.
- Limits: at most :data:`MAX_EXPORT_BYTES` (256 KiB) written, 50 columns, 5,000 rows (arguments travel in the
  workflow state, capped per call by the agent: :data:`stepcrew.models.TOOL_ARGUMENTS_MAX_BYTES`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stepcrew.models import ToolCall, ToolContext
from stepcrew.tools.artifacts import ArtifactStore, artifact_key, sha256
from stepcrew.tools.base import LimitExceeded, Tool, ToolArgs
from stepcrew.tools.receipts import ReceiptStore, exactly_once

MAX_EXPORT_BYTES = 256 * 1024
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}

Cell = str | int | float | bool | None


class ExportArgs(ToolArgs):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$", description="file name without extension")
    format: Literal["csv", "json"] = "csv"
    columns: list[str] = Field(min_length=1, max_length=50)
    rows: list[list[Cell]] = Field(max_length=5000)

    @model_validator(mode="after")
    def _widths(self) -> ExportArgs:
        bad = next((i for i, r in enumerate(self.rows) if len(r) != len(self.columns)), None)
        if bad is not None:
            raise ValueError(f"row {bad} has {len(self.rows[bad])} cells for {len(self.columns)} columns")
        return self


class ExportSummary(BaseModel):
    """What an export writes (or would): the key, its size in bytes, the rows and the SHA-256 (hex) of the bytes."""

    model_config = ConfigDict(extra="forbid")
    key: str
    bytes: int = Field(ge=0, le=MAX_EXPORT_BYTES)
    rows: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ExportResult(BaseModel):
    """The tool's result (:attr:`ExportResults.Result`): ``{"dry_run": true, "would_write", "note"}`` or
    ``{"written"}``, with ``replayed: true`` when an earlier attempt of the same call did it."""

    model_config = ConfigDict(extra="forbid")
    dry_run: Literal[True] | None = None
    would_write: ExportSummary | None = None
    note: str | None = None
    written: ExportSummary | None = None
    replayed: bool | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> ExportResult:
        if (self.would_write is None) == (self.written is None) or (self.dry_run is True) != (self.written is None):
            raise ValueError("exactly one of a dry run (dry_run, would_write) or written")
        return self


def render(args: ExportArgs) -> bytes:
    """The file's bytes: CSV (header row, RFC 4180 quoting, ``\\r\\n``) or JSON (a list of objects)."""
    if args.format == "json":
        return json.dumps([dict(zip(args.columns, r, strict=True)) for r in args.rows], ensure_ascii=False,
                          allow_nan=False).encode()
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(args.columns)
    writer.writerows(args.rows)
    return buf.getvalue().encode()


class ExportResults(Tool):
    name = "export_results"
    description = ("Save a table (columns, rows) as a CSV or JSON file of this run. Dry run unless the run allows "
                   "side effects: it then says what it would write.")
    Args: ClassVar[type[ExportArgs]] = ExportArgs
    Result: ClassVar[type[ExportResult]] = ExportResult

    def __init__(self, receipts: ReceiptStore | Callable[[], ReceiptStore],
                 artifacts: ArtifactStore | Callable[[], ArtifactStore]) -> None:
        """``receipts`` and ``artifacts``: the stores, or factories called at the first real export (a dry run
        builds no client)."""
        self._receipts, self._artifacts = receipts, artifacts

    def _stores(self) -> tuple[ReceiptStore, ArtifactStore]:
        if not isinstance(self._receipts, ReceiptStore):
            self._receipts = self._receipts()
        if not isinstance(self._artifacts, ArtifactStore):
            self._artifacts = self._artifacts()
        return self._receipts, self._artifacts

    def run(self, args: ExportArgs, ctx: ToolContext) -> dict[str, Any]:  # pragma: no cover - run_call is used
        raise NotImplementedError("export_results needs its call: Tool.invoke calls run_call")

    def run_call(self, args: ExportArgs, ctx: ToolContext, call: ToolCall) -> dict[str, Any]:
        body = render(args)
        if len(body) > MAX_EXPORT_BYTES:
            raise LimitExceeded(f"the export would be {len(body)} bytes, over the limit of {MAX_EXPORT_BYTES}: "
                                "export fewer rows or columns")
        tenant = ctx.tenant or "default"
        key = artifact_key(tenant, ctx.run_id, "exports", f"{args.name}.{args.format}")
        summary = {"key": key, "bytes": len(body), "rows": len(args.rows), "sha256": sha256(body)}
        if not ctx.allow_side_effects:
            return {"dry_run": True, "would_write": summary,
                    "note": "side effects are off for this run: nothing was written"}
        receipts, artifacts = self._stores()

        def effect() -> dict[str, Any]:
            artifacts.put(key, body, CONTENT_TYPES[args.format])
            return {"written": summary}

        def verify() -> dict[str, Any] | None:
            seen = artifacts.head(tenant, key)
            return {"written": summary} if seen and seen["sha256"] == summary["sha256"] else None

        return exactly_once(receipts, ctx, call, effect, verify=verify)
