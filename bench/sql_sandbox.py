"""Benchmark of the SQL sandbox (``stepcrew.tools.sandbox``): what running each query in its own child costs.
A reference, not a gate: target < 300 ms per query.

Prints, on the bundled penguins dataset (medians of ``--repeat``):
1. ``child_start_ms``: a new child from spawn to ready (interpreter, DuckDB's C extension, an in-memory instance);
2. ``query_ms_warm``: a ``query_dataset`` call when a spare child is ready (calls a little apart, as in a run);
3. ``query_ms_burst``: calls back to back (the spare started by the previous call is not ready yet);
4. ``query_ms_cold``: with no spare (``SPARES = 0``): start + attach + query;
5. ``inprocess_ms``: the same query on an in-process DuckDB cursor (how queries ran before the sandbox);
6. ``describe_ms``: a ``describe_dataset`` call (warm);
7. ``load_ms``: the first call on a dataset: its load into a database file in a child, then the query;
8. ``timebomb_stop_s``: a single expression that runs ~10 s (``regexp_replace`` over a 100 MB ``printf`` result;
   in-process, DuckDB's interrupt did not stop it) under a 1 s limit: seconds until LimitExceeded;
9. ``membomb`` / ``parent_rss_growth_mb``: a query allocating past the child's address-space cap (``string_split``
   of that string into 10^8 strings; DuckDB's limit set to 256 MiB, so 512 MiB for the process): its error type,
   and how much the parent's peak RSS grew.

Its last line is ``key=value`` pairs of all of them. Usage: ``python bench/sql_sandbox.py [--repeat 15]``; well
under 60 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "stepcrew" / "python"))

from stepcrew.data import DEMO_DATASET
from stepcrew.models import ToolCall, ToolContext, ToolInvocation
from stepcrew.tools import datasets, sandbox
from stepcrew.tools.dataset import DescribeDataset, QueryDataset

SQL = "SELECT species, count(*) AS n, avg(body_mass_g) AS mass FROM data GROUP BY species ORDER BY mass DESC"
_P8 = "printf('%0100000000d', 1)"
TIME_BOMB = f"SELECT length(regexp_replace({_P8}, '0', '', 'g'))"
MEMORY_BOMB = f"SELECT length(string_split({_P8}, '0'))"


def _invocation(name: str, arguments: dict, uri: str) -> ToolInvocation:
    return ToolInvocation(context=ToolContext(run_id="bench", subtask_id="t1", data_uri=uri),
                          call=ToolCall(call_id="c1", name=name, arguments=arguments))


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _query(uri: str, sql: str = SQL, tool: QueryDataset | None = None):
    result = (tool or QueryDataset()).invoke(_invocation("query_dataset", {"sql": sql}, uri))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    n = parser.parse_args().repeat
    uri = DEMO_DATASET.as_uri()
    datasets.CACHE_DIR = Path(tempfile.mkdtemp(prefix="stepcrew-bench-"))
    out: dict[str, str] = {}

    limits = sandbox.Limits.for_duckdb(datasets.memory_limit_mb())
    starts = []
    for _ in range(n):
        t0 = time.perf_counter()
        child = sandbox._Child(limits)
        child.pump(time.monotonic() + 20, 1)
        starts.append((time.perf_counter() - t0) * 1000)
        child.kill()
    out["child_start_ms"] = f"{statistics.median(starts):.0f}"

    load = _ms(lambda: _query(uri))  # the first call: load + query
    out["load_ms"] = f"{load:.0f}"
    assert _query(uri).ok

    warm = []
    for _ in range(n):
        time.sleep(0.25)  # the spare started by the previous call gets ready
        warm.append(_ms(lambda: _query(uri)))
    out["query_ms_warm"] = f"{statistics.median(warm):.0f}"
    burst = [_ms(lambda: _query(uri)) for _ in range(n)]
    out["query_ms_burst"] = f"{statistics.median(burst):.0f}"
    time.sleep(0.25)
    describe = []
    for _ in range(max(3, n // 3)):
        time.sleep(0.25)
        describe.append(_ms(lambda: DescribeDataset().invoke(_invocation("describe_dataset", {}, uri))))
    out["describe_ms"] = f"{statistics.median(describe):.0f}"

    spares, sandbox.SPARES = sandbox.SPARES, 0
    sandbox.shutdown()
    cold = [_ms(lambda: _query(uri)) for _ in range(n)]
    sandbox.SPARES = spares
    out["query_ms_cold"] = f"{statistics.median(cold):.0f}"

    def in_process() -> None:
        cur = datasets.open_dataset(uri)
        cur.execute(SQL).fetchmany(51)
        cur.close()

    in_process()
    out["inprocess_ms"] = f"{statistics.median(_ms(in_process) for _ in range(n)):.1f}"

    t0 = time.perf_counter()
    bomb = _query(uri, TIME_BOMB, QueryDataset(timeout_s=1.0))
    out["timebomb_stop_s"] = f"{time.perf_counter() - t0:.2f}"
    out["timebomb"] = bomb.error.type if bomb.error else "ran"

    os.environ["STEPCREW_DUCKDB_MEMORY_MB"] = "256"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bomb = _query(uri, MEMORY_BOMB, QueryDataset(timeout_s=20))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    os.environ.pop("STEPCREW_DUCKDB_MEMORY_MB")
    sandbox.shutdown()
    datasets.reset_caches()
    shutil.rmtree(datasets.CACHE_DIR, ignore_errors=True)
    out["membomb"] = bomb.error.type if bomb.error else "ran"
    out["parent_rss_growth_mb"] = f"{(after - before) / 1024:.1f}"

    for key in ("child_start_ms", "query_ms_warm", "query_ms_burst", "query_ms_cold", "inprocess_ms",
                "describe_ms", "load_ms"):
        print(f"{key:>16}: {out[key]} ms")
    print(f"time bomb (1 s limit): {out['timebomb']} after {out['timebomb_stop_s']} s")
    print(f"memory bomb: {out['membomb']}, parent peak RSS grew {out['parent_rss_growth_mb']} MB")
    print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
