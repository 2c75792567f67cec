"""The data tools, over the run's dataset (``ToolContext.data_uri``) loaded as the DuckDB table ``data``:

- ``describe_dataset``: schema, null and distinct counts, numeric summary statistics, top text values;
- ``query_dataset``: one read-only SELECT, at most ``max_rows`` rows, under a time limit.

Read-only and bounded by construction. The dataset is loaded once into a DuckDB database file
(:func:`stepcrew.tools.datasets.dataset_database`); each call then runs in a child process
(:mod:`stepcrew.tools.sandbox`) that opens it ``read_only`` with no temporary folder, external access off and the
configuration locked, and only a single statement of type SELECT is executed. The limits of a call, and where they
come from:

- **time**: ``timeout_s`` (:data:`DEFAULT_TIMEOUT_S`, 10 s; env ``STEPCREW_QUERY_TIMEOUT_S``) of wall clock from the
  request to the answer, inside the 60 s timeout of the data tool Lambdas (``stepcrew.wiring.FUNCTIONS``). Past it
  the child is killed (SIGKILL), so it holds while one expression evaluates, where DuckDB's interrupt is not checked;
- **memory**: DuckDB's ``memory_limit`` (:func:`stepcrew.tools.datasets.memory_limit_mb`: 60% of the Lambda's
  1,024 MB = 614 MiB) and, for the whole child process, an address-space cap of that plus
  ``stepcrew.tools.sandbox.OVERHEAD_MB`` (870 MiB): an allocation past either fails in the child, or the child
  dies; the parent's memory is never at stake;
- **static**: functions that build huge values (``stepcrew.tools.sql_bounds``) are refused before the query runs,
  so they fail at once with a message the model can act on instead of running into the limits above.

Any of these -> ``LimitExceeded``; DuckDB's errors -> ``QueryError`` (its first line).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from pydantic import Field

from stepcrew.models import ToolContext
from stepcrew.tools import sandbox
from stepcrew.tools.base import (
    Tool,
    ToolArgs,
    fit_largest,
)
from stepcrew.tools.datasets import dataset_database, dataset_name, file_identity, memory_limit_mb
from stepcrew.tools.errors import LimitExceeded
from stepcrew.tools.sandbox import ALL_VALUES_UP_TO, MAX_TEXT_CHARS, TOP_VALUES  # noqa: F401  (their home before)

logger = logging.getLogger(__name__)

#: Seconds a query (or a describe) may run before its process is killed. 10 s by default (env
#: STEPCREW_QUERY_TIMEOUT_S): well inside the 60 s timeout of the data tool Lambdas (stepcrew.wiring.FUNCTIONS).
DEFAULT_TIMEOUT_S = float(os.environ.get("STEPCREW_QUERY_TIMEOUT_S", "10"))
MAX_SQL_CHARS = 4000
MAX_ROWS = 200


def _on_dataset(uri: str | None, seconds: float, request: dict[str, Any], tenant: str | None = None) -> dict:
    """Answer ``request`` (a :func:`stepcrew.tools.sandbox.run` request without ``db``) on the dataset in a child
    under the time and memory limits; running out of either -> LimitExceeded; the work's typed errors as they are."""
    mb = memory_limit_mb()
    limits = sandbox.Limits.for_duckdb(mb)
    db = dataset_database(uri, tenant)
    identity = file_identity(db)
    try:
        try:
            return sandbox.run({**request, "db": str(db)}, seconds, limits)
        except sandbox.DatabaseUnavailable:  # deleted by another cache's eviction, or unreadable: load it again, once
            logger.info("dataset database unavailable, loading it again")
            db = dataset_database(uri, tenant, stale=identity or (0, 0))
            return sandbox.run({**request, "db": str(db)}, seconds, limits)
    except sandbox.SandboxTimeout:
        raise LimitExceeded(f"the query ran longer than the {seconds:g} s limit: aggregate or filter more, "
                            "avoid cross joins") from None
    except sandbox.SandboxOutOfMemory as exc:
        if exc.by == "duckdb":
            raise LimitExceeded(f"the query needed more than DuckDB's {mb} MiB memory limit: aggregate or filter "
                                "more, select fewer or shorter values") from None
        died = f"; it died with {exc.signal_name}" if exc.signal_name else ""
        raise LimitExceeded(f"the query needed more than the {limits.address_space_mb} MiB memory limit of its "
                            f"process (DuckDB's {mb} MiB memory limit{died}): aggregate or filter more, select fewer "
                            "or shorter values") from None


#: SQL whose result changes between two runs over the same data: never served from the tool-result cache.
_VOLATILE_SQL = re.compile(r"\b(random|rand|uuid|gen_random_uuid|now|today|current_date|current_time|"
                           r"current_timestamp|get_current_time|get_current_timestamp|localtime|localtimestamp|"
                           r"setseed|sample|tablesample|reservoir)\b", re.IGNORECASE)


def _dataset_version(ctx: ToolContext, arguments: dict[str, Any]) -> str | None:
    """The dataset's version for the tool-result cache: its name and the SHA-256 of its content as this tool reads it
    (the tenant's access is checked first); None without a dataset or for volatile SQL (random(), now(), SAMPLE)."""
    if not ctx.data_uri:
        return None
    sql = arguments.get("sql") if isinstance(arguments, dict) else None
    if isinstance(sql, str) and _VOLATILE_SQL.search(sql):
        return None
    from stepcrew.tools.cache import file_version
    from stepcrew.tools.datasets import dataset_name, resolve_dataset

    return f"{dataset_name(ctx.data_uri)}:{file_version(resolve_dataset(ctx.data_uri, ctx.tenant))}"


class DescribeDataset(Tool):
    """``describe_dataset``: ``{columns?}`` -> ``{"dataset", "rows", "columns": [...]}``.

    Each column: ``name``, ``type`` (DuckDB type), ``nulls``, ``distinct``; numeric columns add ``min``, ``max``,
    ``mean``, ``stddev`` (sample), ``median`` (floats rounded to 4 decimal places); text/boolean columns add
    ``top``: ``{"value", "count"}`` most frequent first, every value for a column of at most 20 distinct values, else
    the 5 most frequent; date/time columns add ``min`` and ``max``.
    An unknown column raises DatasetError listing the known ones. ``columns`` None or empty = all columns.
    """

    name = "describe_dataset"
    cache_ttl_s = 86_400  # deterministic over one dataset version (its content hash is in the key)
    description = ("Profile the table `data` (the run's dataset): rows, and per column its type, null and "
                   "distinct counts, min/max/mean/stddev/median or most frequent values.")

    class Args(ToolArgs):
        columns: list[str] | None = Field(default=None, max_length=100,
                                          description="omit for all")

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def result_version(self, ctx: ToolContext, arguments: dict[str, Any]) -> str | None:
        return _dataset_version(ctx, arguments)

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        described = _on_dataset(ctx.data_uri, self.timeout_s, {"op": "describe", "columns": args.columns or None},
                                ctx.tenant)
        return {"dataset": dataset_name(ctx.data_uri or ""), "rows": described["rows"],
                "columns": described["columns"]}

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
    :func:`stepcrew.tools.datasets.memory_limit_mb` (DuckDB's) or the address-space cap of its process -> LimitExceeded
    (see the module docstring).
    """

    name = "query_dataset"
    cache_ttl_s = 86_400  # deterministic over one dataset version (its content hash is in the key)
    description = ("Run one read-only DuckDB SELECT over the table `data` (the run's dataset); aggregate in SQL "
                   "(GROUP BY, avg, quantile_cont) rather than fetch raw rows.")

    class Args(ToolArgs):
        sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS,
                         description="e.g. 'SELECT region, avg(price) FROM data GROUP BY region'")
        max_rows: int = Field(default=50, ge=1, le=MAX_ROWS, description=f"default 50, at most {MAX_ROWS}")

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def result_version(self, ctx: ToolContext, arguments: dict[str, Any]) -> str | None:
        return _dataset_version(ctx, arguments)

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        return _on_dataset(ctx.data_uri, self.timeout_s, {"op": "query", "sql": args.sql, "max_rows": args.max_rows},
                           ctx.tenant)

    def shrink(self, content: Any, max_bytes: int) -> Any | None:
        """Keep the first rows that fit; ``truncated`` is set, ``row_count`` counts the rows kept."""
        rows = content["rows"]
        return fit_largest(lambda k: {**content, "rows": rows[:k], "row_count": k, "truncated": True},
                           len(rows), max_bytes)
