"""The ``make_chart`` generation tool: renders a bar, line, scatter or histogram chart to PNG (matplotlib's Agg
backend: no browser, no display) and stores it as a run artifact at ``<tenant>/runs/<run_id>/charts/<name>.png``
(:func:`stepcrew.tools.artifacts.artifact_key`, through the :class:`~stepcrew.tools.artifacts.ArtifactStore` port).

Data, one of three shapes:

- ``x`` + ``series`` (``[{"label", "values"}]``, each as long as ``x``): bar (grouped; ``x`` are categories), line
  (numeric ``x`` on a number axis, else categories), scatter (``x`` numbers); at most 30 category labels are drawn
  (20 characters each);
- ``values``: the numbers of a histogram (``bins`` buckets);
- ``columns`` + ``rows`` (a query result, e.g. ``query_dataset``'s) with ``x_column`` and ``y_columns`` (histogram:
  ``y_columns`` only, one column); the y cells must be numbers.

Not gated by ``allow_side_effects``: a chart writes only this run's own artifact (a fixed key under the run, never
outside it), like a report section; the run's operations tools (``export_results``) are the gated ones. With one
matplotlib version the same arguments give the same PNG bytes (fixed size, dpi and style; no ``Software`` metadata),
so a retried Lambda or a replayed Map overwrites the same object with the same content.

Result: ``{"key", "kind", "bytes", "width", "height", "sha256", "markdown"}``; ``width``/``height`` are the PNG's pixels
(``width_px``/``height_px``, rendered at :data:`DPI`), ``markdown`` is the reference a report carries:
``![<title>](artifact://charts/<name>.png)`` (``artifact://`` = relative to the run's artifacts:
``stepcrew runs artifacts RUN_ID`` downloads ``charts/<name>.png``).

Limits (sources: the agent's 16 KiB per call argument cap, :data:`stepcrew.models.TOOL_ARGUMENTS_MAX_BYTES`, makes
these generous; the PNG cap keeps an artifact small enough to download in one GET): width 320-1600 px, height
240-1200 px, at most :data:`MAX_SERIES` series of :data:`MAX_POINTS` points, :data:`MAX_HIST_VALUES` histogram values,
1-100 bins, title 120 and labels 60 characters, a PNG of at most :data:`MAX_PNG_BYTES`. Bad arguments are an
``InvalidArguments`` error naming the field; a PNG over the cap is ``LimitExceeded``.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from stepcrew.models import ToolContext
from stepcrew.tools.artifacts import ArtifactStore, artifact_key, sha256
from stepcrew.tools.base import LimitExceeded, Tool, ToolArgs

DPI = 100
MAX_SERIES = 8
MAX_POINTS = 1000
MAX_HIST_VALUES = 5000
MAX_ROWS = 5000
MAX_PNG_BYTES = 1024 * 1024
MAX_TICK_LABELS = 30
CONTENT_TYPE = "image/png"
Number = float  # JSON integers are accepted (pydantic lax mode): one "number" in the schema
Cell = str | int | float | bool | None
XValue = str | int | float

#: rcParams fixed for every chart (the rest are matplotlib's defaults): no mathtext parsing of labels (a ``$`` in a
#: title is a dollar sign), the bundled DejaVu Sans font, so a chart looks the same on every machine.
_RC = {"text.parse_math": False, "font.family": "DejaVu Sans", "axes.grid": True, "grid.alpha": 0.3}
_LOCK = threading.Lock()  # rcParams are process-global: the local runtime may run tool calls in threads


class Series(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)
    label: str = Field(default="", max_length=40)
    values: list[Number] = Field(min_length=1, max_length=MAX_POINTS)


class ChartArgs(ToolArgs):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$", description="file name without extension")
    kind: Literal["bar", "line", "scatter", "histogram"]
    title: str = Field(default="", max_length=120)
    x_label: str = Field(default="", max_length=60)
    y_label: str = Field(default="", max_length=60)
    x: list[XValue] | None = Field(default=None, max_length=MAX_POINTS)
    series: list[Series] | None = Field(default=None, min_length=1, max_length=MAX_SERIES)
    values: list[Number] | None = Field(default=None, min_length=1, max_length=MAX_HIST_VALUES,
                                        description="histogram")
    bins: int = Field(default=10, ge=1, le=100, description="histogram")
    columns: list[str] | None = Field(default=None, min_length=1, max_length=50, description="query result")
    rows: list[list[Cell]] | None = Field(default=None, max_length=MAX_ROWS, description="query result")
    x_column: str | None = None
    y_columns: list[str] | None = Field(default=None, min_length=1, max_length=MAX_SERIES)
    width_px: int = Field(default=800, ge=320, le=1600)
    height_px: int = Field(default=480, ge=240, le=1200)

    _x: list[XValue] = PrivateAttr(default_factory=list)
    _series: list[tuple[str, list[float]]] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _data(self) -> ChartArgs:
        shapes = [n for n, given in (("x/series", self.x is not None or self.series is not None),
                                     ("values", self.values is not None),
                                     ("columns/rows", self.columns is not None or self.rows is not None)) if given]
        if len(shapes) != 1:
            raise ValueError("give exactly one of: x and series, values (histogram), columns and rows (a query "
                             f"result); got {', '.join(shapes) or 'none'}")
        if shapes[0] == "columns/rows":
            self._from_table()
        elif shapes[0] == "values":
            if self.kind != "histogram":
                raise ValueError("values is for kind 'histogram': give x and series for a bar, line or scatter")
            self._series = [("", [float(v) for v in self.values])]
        else:
            if self.kind == "histogram":
                if self.x is not None or self.series is None or len(self.series) != 1:
                    raise ValueError("a histogram takes values, or one series without x")
                self._series = [(self.series[0].label, [float(v) for v in self.series[0].values])]
                return self
            if self.x is None or self.series is None:
                raise ValueError(f"a {self.kind} chart needs both x and series")
            for i, s in enumerate(self.series):
                if len(s.values) != len(self.x):
                    raise ValueError(f"series {i} has {len(s.values)} values for {len(self.x)} x values")
            self._x = list(self.x)
            self._series = [(s.label, [float(v) for v in s.values]) for s in self.series]
        if self.kind == "scatter" and not all(_is_number(v) for v in self._x):
            raise ValueError("a scatter chart needs numeric x values")
        return self

    def _from_table(self) -> None:
        if self.columns is None or self.rows is None:
            raise ValueError("a query result needs both columns and rows")
        if not self.y_columns:
            raise ValueError("name the y_columns to plot")
        index = {c: i for i, c in enumerate(self.columns)}
        unknown = [c for c in [*(self.y_columns or []), *([self.x_column] if self.x_column else [])] if c not in index]
        if unknown:
            raise ValueError(f"unknown column(s) {', '.join(map(repr, unknown))}; columns: {', '.join(self.columns)}")
        bad = next((i for i, r in enumerate(self.rows) if len(r) != len(self.columns)), None)
        if bad is not None:
            raise ValueError(f"row {bad} has {len(self.rows[bad])} cells for {len(self.columns)} columns")
        if not self.rows:
            raise ValueError("the query result has no rows to plot")
        if self.kind == "histogram":
            if len(self.y_columns) != 1 or self.x_column:
                raise ValueError("a histogram takes one y_column and no x_column")
        else:
            if not self.x_column:
                raise ValueError(f"a {self.kind} chart needs x_column")
            if len(self.rows) > MAX_POINTS:
                raise ValueError(f"{len(self.rows)} rows is over the limit of {MAX_POINTS} points per series")
        series = []
        for col in self.y_columns:
            values = []
            for r, row in enumerate(self.rows):
                cell = row[index[col]]
                if not _is_number(cell) or not math.isfinite(cell):
                    raise ValueError(f"row {r} column {col!r} is {cell!r}, not a finite number")
                values.append(float(cell))
            series.append((col, values))
        self._series = series
        if self.x_column:
            xs = [row[index[self.x_column]] for row in self.rows]
            if any(v is None or isinstance(v, bool) for v in xs):
                raise ValueError(f"column {self.x_column!r} has empty or boolean cells: it cannot be x")
            self._x = xs


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render(args: ChartArgs) -> bytes:
    """The chart as PNG bytes, ``width_px`` x ``height_px`` pixels (figure size in inches = pixels / :data:`DPI`).
    Deterministic: the same arguments give the same bytes (no ``Software`` metadata, fixed style)."""
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "stepcrew-matplotlib"))  # Lambda: /tmp
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(args.width_px / DPI, args.height_px / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        labelled = any(label for label, _ in args._series)
        if args.kind == "histogram":
            label, values = args._series[0]
            ax.hist(values, bins=args.bins, label=label or None)
        else:
            numeric = args.kind != "bar" and all(_is_number(v) for v in args._x)  # bars: x are categories
            positions = list(args._x) if numeric else list(range(len(args._x)))
            n = len(args._series)
            for i, (label, values) in enumerate(args._series):
                if args.kind == "bar":
                    width = 0.8 / n
                    offset = (i - (n - 1) / 2) * width
                    ax.bar([p + offset for p in positions], values, width=width, label=label or None)
                elif args.kind == "line":
                    ax.plot(positions, values, marker="o" if len(values) <= 50 else None, label=label or None)
                else:
                    ax.scatter(positions, values, s=16, label=label or None)
            if not numeric:  # category labels (20 characters each), at most MAX_TICK_LABELS of them
                step = math.ceil(len(positions) / MAX_TICK_LABELS)
                many = len(positions) > 8
                ax.set_xticks(positions[::step], [str(v)[:20] for v in args._x[::step]],
                              rotation=45 if many else 0, ha="right" if many else "center")
        if args.title:
            ax.set_title(args.title)
        if args.x_label:
            ax.set_xlabel(args.x_label)
        if args.y_label:
            ax.set_ylabel(args.y_label)
        if labelled:
            ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def png_size(body: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk. ValueError if ``body`` is not a PNG."""
    if body[:8] != b"\x89PNG\r\n\x1a\n" or body[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", body[16:24])


def markdown(title: str, name: str) -> str:
    """The report's reference to a chart: ``![<title>](artifact://charts/<name>.png)`` (brackets and line breaks of
    the title dropped so the link stays one valid Markdown image)."""
    alt = " ".join(title.replace("[", "").replace("]", "").split()) or name
    return f"![{alt}](artifact://charts/{name}.png)"


class MakeChart(Tool):
    name = "make_chart"
    description = ("Draw a bar, line, scatter or histogram chart as a PNG file of this run, from x and series, "
                   "histogram values, or a query result (columns, rows, x_column, y_columns). Returns a Markdown "
                   "image reference to put in the report.")
    Args: ClassVar[type[ChartArgs]] = ChartArgs

    def __init__(self, artifacts: ArtifactStore | Callable[[], ArtifactStore]) -> None:
        """``artifacts``: the store, or a factory called at the first chart (built once)."""
        self._artifacts = artifacts

    def _store(self) -> ArtifactStore:
        if not isinstance(self._artifacts, ArtifactStore):
            self._artifacts = self._artifacts()
        return self._artifacts

    def run(self, args: ChartArgs, ctx: ToolContext) -> dict[str, Any]:
        body = render(args)
        if len(body) > MAX_PNG_BYTES:
            raise LimitExceeded(f"the chart would be {len(body)} bytes, over the limit of {MAX_PNG_BYTES}: plot "
                                "fewer points or a smaller size")
        tenant = ctx.tenant or "default"
        key = artifact_key(tenant, ctx.run_id, "charts", f"{args.name}.png")
        width, height = png_size(body)
        self._store().put(key, body, CONTENT_TYPE)
        return {"key": key, "kind": args.kind, "bytes": len(body), "width": width, "height": height,
                "sha256": sha256(body), "markdown": markdown(args.title, args.name)}
