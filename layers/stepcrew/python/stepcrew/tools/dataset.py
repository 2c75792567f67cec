"""The data tools, over the run's dataset (``ToolContext.data_uri``) loaded as the DuckDB table ``data``:

- ``describe_dataset``: schema, null and distinct counts, numeric summary statistics, top text values;
- ``query_dataset``: one read-only SELECT, at most ``max_rows`` rows, under a time limit.

Read-only and bounded by construction (see :mod:`stepcrew.tools.datasets`): the table lives in an in-memory
database with no spilling to disk, a memory cap, external access off and configuration locked, and only a single
statement of type SELECT is executed.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import Field

from stepcrew.models import ToolContext
from stepcrew.tools.base import (
    DatasetError,
    LimitExceeded,
    QueryError,
    Tool,
    ToolArgs,
    fit_largest,
    to_jsonable,
)
from stepcrew.tools.datasets import dataset_name, first_line, memory_limit_mb, open_dataset
from stepcrew.tools.sql_bounds import check_sql_bounds

#: Seconds a query (or a describe) may run before it is interrupted. 10 s by default (env
#: STEPCREW_QUERY_TIMEOUT_S): well inside the 60 s timeout of the data tool Lambdas (stepcrew.wiring.FUNCTIONS).
DEFAULT_TIMEOUT_S = float(os.environ.get("STEPCREW_QUERY_TIMEOUT_S", "10"))
MAX_SQL_CHARS = 4000
MAX_ROWS = 200
TOP_VALUES = 5
#: A text column with at most this many distinct values lists them all in ``top`` (a category's every value is
#: then known to a planner: "the Coastal region" is found even when it is not among the 5 most frequent).
ALL_VALUES_UP_TO = 20
MAX_TEXT_CHARS = 200  # a text value longer than this is clipped in tool output

_KINDS = {
    "numeric": re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|FLOAT|DOUBLE|REAL|DECIMAL(\(\d+,\s*\d+\))?)$"),
    "temporal": re.compile(r"^(DATE|TIME|TIMESTAMP(_S|_MS|_NS)?|INTERVAL)( WITH TIME ZONE)?$"),
    "text": re.compile(r"^(VARCHAR|BOOLEAN|UUID|ENUM\(.*\))$"),
}

T = TypeVar("T")


def _kind(dtype: str) -> str | None:
    """``numeric``, ``temporal`` or ``text`` for a DuckDB type name; None for lists, structs, blobs..."""
    return next((kind for kind, pattern in _KINDS.items() if pattern.match(dtype)), None)


def _clip(value: Any) -> Any:
    return value[: MAX_TEXT_CHARS - 1] + "…" if isinstance(value, str) and len(value) > MAX_TEXT_CHARS else value


def _round(value: Any) -> Any:
    value = to_jsonable(value)
    return round(value, 4) if isinstance(value, float) else value


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


@contextmanager
def _time_limit(cursor: Any, seconds: float) -> Iterator[None]:
    """Interrupt ``cursor`` after ``seconds``; a DuckDB InterruptException inside becomes LimitExceeded."""
    import duckdb

    timer = threading.Timer(seconds, cursor.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise LimitExceeded(f"the query ran longer than the {seconds:g} s limit: aggregate or filter more, "
                            "avoid cross joins") from None
    finally:
        timer.cancel()


def _on_dataset(uri: str | None, seconds: float, work: Callable[[Any], T], tenant: str | None = None) -> T:
    """Run ``work(cursor)`` on the dataset under the time and memory limits; running out of either ->
    LimitExceeded, other DuckDB errors -> QueryError (first line)."""
    import duckdb

    cursor = open_dataset(uri, tenant)
    try:
        with _time_limit(cursor, seconds):
            return work(cursor)
    except duckdb.OutOfMemoryException:
        raise LimitExceeded(f"the query needed more than DuckDB's {memory_limit_mb()} MiB memory limit: aggregate "
                            "or filter more, select fewer or shorter values") from None
    except duckdb.Error as exc:
        raise QueryError(first_line(exc)) from None
    finally:
        cursor.close()


class DescribeDataset(Tool):
    """``describe_dataset``: ``{columns?}`` -> ``{"dataset", "rows", "columns": [...]}``.

    Each column: ``name``, ``type`` (DuckDB type), ``nulls``, ``distinct``; numeric columns add ``min``, ``max``,
    ``mean``, ``stddev`` (sample), ``median`` (floats rounded to 4 decimal places); text/boolean columns add
    ``top``: ``{"value", "count"}`` most frequent first, every value for a column of at most 20 distinct values, else
    the 5 most frequent; date/time columns add ``min`` and ``max``.
    An unknown column raises DatasetError listing the known ones. ``columns`` None or empty = all columns.
    """

    name = "describe_dataset"
    description = ("Describe the run's dataset (a table named `data`): row count, and per column its type, null "
                   "and distinct counts, min/max/mean/stddev/median for numbers, most frequent values for text. "
                   "Call this first to learn the column names.")

    class Args(ToolArgs):
        columns: list[str] | None = Field(default=None, max_length=100,
                                          description="columns to describe; omit for all columns")

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        def work(cur: Any) -> dict[str, Any]:
            schema = [(r[0], r[1]) for r in cur.execute("DESCRIBE data").fetchall()]
            columns = schema
            if args.columns:
                by_name = {n: (n, t) for n, t in schema} | {n.lower(): (n, t) for n, t in schema}
                picked = [by_name.get(c) or by_name.get(c.lower()) for c in args.columns]
                unknown = [c for c, p in zip(args.columns, picked, strict=True) if p is None]
                if unknown:
                    raise DatasetError(f"unknown column(s): {', '.join(unknown)}; "
                                       f"known columns: {', '.join(n for n, _ in schema)}")
                columns = list(dict.fromkeys(picked))
            rows = cur.execute("SELECT count(*) FROM data").fetchone()[0]
            return {"dataset": dataset_name(ctx.data_uri or ""), "rows": rows, "columns": self._columns(cur, columns)}

        return _on_dataset(ctx.data_uri, self.timeout_s, work, ctx.tenant)

    @staticmethod
    def _columns(cur: Any, columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Statistics of ``columns`` ((name, DuckDB type) pairs): one scan for all counts and numeric/temporal
        statistics, then one GROUP BY per text column for its top values."""
        numeric = ("min", "max", "mean", "stddev", "median")
        kinds = [_kind(dtype) for _, dtype in columns]
        exprs = []
        for (name, _), kind in zip(columns, kinds, strict=True):
            q = _quote(name)
            exprs += [f"count(*) - count({q})", f"count(DISTINCT {q})"]
            if kind == "numeric":
                exprs += [f"min({q})", f"max({q})", f"avg({q})", f"stddev_samp({q})", f"median({q})"]
            elif kind == "temporal":
                exprs += [f"min({q})", f"max({q})"]
        values = iter(cur.execute(f"SELECT {', '.join(exprs)} FROM data").fetchone() if exprs else ())
        out = []
        for (name, dtype), kind in zip(columns, kinds, strict=True):
            col: dict[str, Any] = {"name": name, "type": dtype, "nulls": next(values), "distinct": next(values)}
            if kind == "numeric":
                col.update((k, _round(next(values))) for k in numeric)
            elif kind == "temporal":
                col.update(min=to_jsonable(next(values)), max=to_jsonable(next(values)))
            elif kind == "text":
                q = _quote(name)
                limit = ALL_VALUES_UP_TO if (col["distinct"] or 0) <= ALL_VALUES_UP_TO else TOP_VALUES
                top = cur.execute(f"SELECT {q} AS v, count(*) AS n FROM data WHERE {q} IS NOT NULL GROUP BY v "
                                  f"ORDER BY n DESC, v LIMIT {limit}").fetchall()
                col["top"] = [{"value": _clip(to_jsonable(v)), "count": n} for v, n in top]
            out.append(col)
        return out

    def shrink(self, content: Any, max_bytes: int) -> Any | None:
        """Drop trailing columns (``columns_omitted`` says how many)."""
        cols = content["columns"]
        return fit_largest(lambda k: {**content, "columns": cols[:k], "columns_omitted": len(cols) - k},
                           len(cols), max_bytes)


class QueryDataset(Tool):
    """``query_dataset``: ``{sql, max_rows=50}`` -> ``{"columns", "rows", "row_count", "truncated"}``.

    ``sql`` must be exactly one SELECT (also WITH/VALUES/FROM-first/DESCRIBE/SUMMARIZE, which DuckDB types as
    SELECT) over the table ``data``; anything else raises QueryError. At most ``max_rows`` (1-200) rows are
    returned; ``truncated`` is true when the query had more rows or rows/long text were cut to fit the 8 KiB
    tool output cap. ``row_count`` is the number of rows returned. DuckDB errors -> QueryError with DuckDB's first
    line; a query running longer than ``timeout_s`` or needing more memory than
:func:`stepcrew.tools.datasets.memory_limit_mb` -> LimitExceeded.
    """

    name = "query_dataset"
    description = ("Run ONE read-only DuckDB SQL SELECT over the run's dataset, a table named `data` (call "
                   "describe_dataset first for column names). Aggregate in SQL (GROUP BY, avg, count, "
                   "quantile_cont...) rather than fetching raw rows. Returns at most max_rows rows.")

    class Args(ToolArgs):
        sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS,
                         description="one SELECT over table `data`, e.g. "
                                     "'SELECT species, avg(body_mass_g) FROM data GROUP BY species'")
        max_rows: int = Field(default=50, ge=1, le=MAX_ROWS, description="rows to return at most")

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        def work(cur: Any) -> dict[str, Any]:
            statement = self._single_select(cur, args.sql)
            cur.execute(statement)
            columns = [d[0] for d in cur.description or []]
            rows = cur.fetchmany(args.max_rows + 1)
            more = len(rows) > args.max_rows
            rows = [[_clip(to_jsonable(v)) for v in r] for r in rows[: args.max_rows]]
            return {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": more}

        return _on_dataset(ctx.data_uri, self.timeout_s, work, ctx.tenant)

    @staticmethod
    def _single_select(cur: Any, sql: str) -> Any:
        import duckdb

        try:
            statements = cur.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(first_line(exc)) from None
        if len(statements) != 1:
            raise QueryError(f"give exactly one SQL statement, got {len(statements)}")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise QueryError(f"only SELECT queries are allowed (read-only), got {kind.name}")
        check_sql_bounds(cur, sql)  # LimitExceeded for values no time or memory limit can stop
        return statements[0]

    def shrink(self, content: Any, max_bytes: int) -> Any | None:
        """Keep the first rows that fit; ``truncated`` is set, ``row_count`` counts the rows kept."""
        rows = content["rows"]
        return fit_largest(lambda k: {**content, "rows": rows[:k], "row_count": k, "truncated": True},
                           len(rows), max_bytes)
