"""The data tools' SQL runs in a child process (stepcrew.tools.sandbox): killed at the time limit while one expression
evaluates, capped in memory as a whole process, answering exactly what in-process DuckDB answered; the parent
survives a child that answers garbage, floods its output, hangs or dies."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from stepcrew.tools import datasets, sandbox
from stepcrew.tools.base import to_jsonable
from stepcrew.tools.dataset import QueryDataset
from stepcrew.tools.datasets import open_dataset
from stepcrew.tools.sql_bounds import check_sql_bounds

# Values built without any function sql_bounds refuses (printf and replace, not repeat)
_P8 = "printf('%0100000000d', 1)"  # a 100 MB string
_X5 = "replace(replace(replace(replace('xxxxxxxxxx','x','xxxxxxxxxx'),'x','xxxxxxxxxx'),'x','xxxxxxxxxx'),'x','xxxxxxxxxx')"
#: one expression of ~10 s here: in-process, DuckDB's interrupt (cursor.interrupt() after 1 s) did not stop it
LONG_EXPRESSION = f"SELECT length(regexp_replace({_P8}, '0', '', 'g')) AS n"
#: allocations past a 512 MiB process: one 900 MB string; an O(n*m) matrix of 10^10 cells; a list of 10^8 strings
#: (in-process, that one grew to 14 GB RSS against DuckDB's 614 MiB memory_limit)
MEMORY_BOMBS = ["SELECT length(printf('%0900000000d', 1)) AS n",
                f"SELECT damerau_levenshtein({_X5}, replace({_X5}, 'x', 'y')) AS d",
                f"SELECT length(string_split({_P8}, '0')) AS n"]


def _query(make_invocation, uri, sql, tool=None, **arguments):
    return (tool or QueryDataset()).invoke(make_invocation("query_dataset", {"sql": sql, **arguments}, uri))


def _rss_mb() -> float:
    """This process's resident memory now (MiB), from /proc when there is one, else its peak."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------ time
def test_one_long_expression_is_killed_at_the_time_limit(make_invocation, penguins_uri):
    # Given a query the static bounds let through, whose single expression runs far past the limit
    cur = open_dataset(penguins_uri)
    try:
        check_sql_bounds(cur, LONG_EXPRESSION)  # not refused statically
    finally:
        cur.close()
    tool = QueryDataset(timeout_s=1.5)
    # When
    start = time.monotonic()
    result = _query(make_invocation, penguins_uri, LONG_EXPRESSION, tool=tool)
    elapsed = time.monotonic() - start
    # Then it is stopped by the time limit (not run to its end, ~10 s), with the limit's message
    assert result.error.type == "LimitExceeded"
    assert result.error.message.startswith("the query ran longer than the 1.5 s limit")
    assert elapsed < 10
    # and the dataset still answers afterwards
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]


def test_a_long_describe_is_killed_too(make_invocation, penguins_uri, monkeypatch):
    # Given a describe whose child will not finish in time (its request never arrives at DuckDB in time)
    from stepcrew.tools.dataset import DescribeDataset

    monkeypatch.setattr(sandbox, "SPARES", 0)
    sandbox.shutdown()
    _query(make_invocation, penguins_uri, "SELECT 1")  # the database file exists
    monkeypatch.setattr(sandbox, "child_argv", lambda limits: _fake(HANG_AFTER_READY))
    # When
    result = DescribeDataset(timeout_s=0.5).invoke(make_invocation("describe_dataset", {}, penguins_uri))
    # Then
    assert result.error.type == "LimitExceeded"
    assert "0.5 s limit" in result.error.message


# ------------------------------------------------------------------------------------------------ memory
@pytest.mark.parametrize("sql", MEMORY_BOMBS)
def test_a_memory_bomb_is_stopped_and_the_parent_does_not_grow(make_invocation, penguins_uri, monkeypatch, sql):
    # Given DuckDB capped at 256 MiB, so its process at 512 MiB of address space
    monkeypatch.setenv("STEPCREW_DUCKDB_MEMORY_MB", "256")
    _query(make_invocation, penguins_uri, "SELECT 1")
    before = _rss_mb()
    # When a query allocates ~1 GB outside DuckDB's buffer manager
    result = _query(make_invocation, penguins_uri, sql, tool=QueryDataset(timeout_s=30))
    # Then it fails with a limit error naming the memory limit, and this process did not take the memory
    assert result.error.type == "LimitExceeded"
    assert "MiB memory limit" in result.error.message
    assert "512 MiB memory limit of its process" in result.error.message
    assert _rss_mb() - before < 100
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]


def test_the_child_runs_under_an_address_space_cap(penguins_uri, monkeypatch):
    # Given a started child
    if not Path("/proc/self/limits").exists():
        pytest.skip("no /proc")
    limits = sandbox.Limits.for_duckdb(300)
    child = sandbox._Child(limits)
    try:
        assert child.pump(time.monotonic() + 20, 1)
        # Then its address space is capped (soft and hard) at DuckDB's limit plus the overhead
        line = next(ln for ln in Path(f"/proc/{child.proc.pid}/limits").read_text().splitlines()
                    if ln.startswith("Max address space"))
        cap = (300 + sandbox.OVERHEAD_MB) * 1024 * 1024
        assert line.split()[3:5] == [str(cap), str(cap)]
        # and its environment holds no credentials of the parent's
        environ = Path(f"/proc/{child.proc.pid}/environ").read_bytes().decode().split("\0")
        assert os.environ.get("AWS_SECRET_ACCESS_KEY") and not any(v.startswith("AWS_") for v in environ)
    finally:
        child.kill()


def test_limits_come_from_duckdbs_memory_limit(monkeypatch):
    monkeypatch.delenv("STEPCREW_DUCKDB_MEMORY_MB", raising=False)
    monkeypatch.delenv("STEPCREW_DUCKDB_THREADS", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    limits = sandbox.Limits.for_duckdb(datasets.memory_limit_mb())
    assert (limits.memory_mb, limits.address_space_mb, limits.threads) == (614, 870, 1)


# ------------------------------------------------------------------------------------------------ same answers
SAME_QUERIES = [
    "SELECT * FROM data",
    "SELECT species, count(*) AS n, avg(body_mass_g) AS mass FROM data GROUP BY species ORDER BY mass DESC",
    "SUMMARIZE data",
    "DESCRIBE data",
    ("SELECT DATE '2009-11-05' AS d, TIMESTAMP '2009-11-05 10:30:00' AS ts, 12.50::DECIMAL(6,2) AS dec, "
     "'nan'::DOUBLE AS nan_value, NULL AS nothing, [1, 2] AS list, {'a': 1} AS struct"),
    ("SELECT TIMESTAMPTZ '2020-01-01 10:00:00+02' AS tz, INTERVAL 3 DAY AS i, TIME '10:11:12' AS t, 'ab'::BLOB AS b, "
     "'00000000-0000-0000-0000-000000000001'::UUID AS u, 1e308 * 10 AS inf, "
     "170141183460469231731687303715884105727::HUGEINT AS h, MAP {'k': 1} AS m, 'é' || repeat('x', 300) AS long"),
    "SELECT quantile_cont(body_mass_g, 0.5), 1 / 3 AS third FROM data",
]


@pytest.mark.parametrize("sql", SAME_QUERIES)
@pytest.mark.parametrize("max_rows", [1, 200])
def test_answers_are_what_in_process_duckdb_gives(make_invocation, penguins_uri, sql, max_rows):
    # Given the rows an in-process DuckDB cursor gives, made JSON-safe and clipped as the tool did before
    cur = open_dataset(penguins_uri)
    try:
        cur.execute(sql)
        columns = [d[0] for d in cur.description]
        fetched = cur.fetchmany(max_rows + 1)
    finally:
        cur.close()
    rows = [[sandbox.clip(to_jsonable(v)) for v in r] for r in fetched[:max_rows]]
    expected = {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": len(fetched) > max_rows}
    # When the tool runs it in its child
    result = QueryDataset().invoke(make_invocation("query_dataset", {"sql": sql, "max_rows": max_rows},
                                                   penguins_uri))
    # Then the content is the same (before the 8 KiB cap shrinks it)
    assert result.ok
    if not result.truncated:
        assert result.content == to_jsonable(expected)
    else:
        assert result.content["rows"] == to_jsonable(expected)["rows"][: result.content["row_count"]]


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 2**70, 1.5, float("nan"), float("inf"), -0.0, "x", Decimal("1.50"), Decimal("2.00"),
    Decimal("NaN"), dt.date(2020, 1, 2), dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC), dt.time(1, 2),
    dt.timedelta(days=1, seconds=3), uuid.UUID(int=5), b"\x00\xff", bytearray(b"ab"), [1, (2, 3)], {1: {"a": [None]}},
    frozenset({1}), object,
])
def test_the_childs_jsonable_is_to_jsonable(value):
    assert sandbox.jsonable is to_jsonable  # one conversion (stepcrew.tools.jsonable), not a copy to keep in step
    expected = to_jsonable(value)
    got = sandbox.jsonable(value)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
    if isinstance(expected, float):
        assert math.copysign(1, got) == math.copysign(1, expected)


# ------------------------------------------------------------------------------------------------ the database file
def test_the_dataset_is_loaded_once_into_a_database_file(make_invocation, penguins_uri, monkeypatch):
    # Given one query
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]
    files = list(datasets.CACHE_DIR.glob("*.duckdb"))
    assert len(files) == 1 and not list(datasets.CACHE_DIR.glob("*.part"))

    # When more follow, and loading would fail
    def no_load(*_a, **_k):
        raise AssertionError("loaded again")

    monkeypatch.setattr(datasets, "_load_database", no_load)
    # Then they read the same file
    for _ in range(3):
        assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]


def test_a_changed_file_is_loaded_again(make_invocation, tmp_path):
    # Given a dataset queried once
    path = tmp_path / "small.csv"
    path.write_text("name,n\na,1\nb,2\n")
    assert _query(make_invocation, path.as_uri(), "SELECT sum(n) FROM data").content["rows"] == [[3]]
    # When it changes
    path.write_text("name,n\na,1\nb,2\nc,30\n")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    # Then the next query sees the new content
    assert _query(make_invocation, path.as_uri(), "SELECT sum(n) FROM data").content["rows"] == [[33]]


def test_a_database_file_that_cannot_be_opened_is_loaded_again_once(make_invocation, penguins_uri):
    # Given the database file, then overwritten with garbage (another process's cache, a bad disk...)
    assert _query(make_invocation, penguins_uri, "SELECT 1").ok
    (db,) = datasets.CACHE_DIR.glob("*.duckdb")
    db.write_bytes(b"not a database" * 100)
    # When / Then the query still answers, from a reloaded file
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]
    assert db.read_bytes()[:20] != b"not a database" * 2


def test_a_load_past_its_time_limit_is_a_dataset_error(make_invocation, penguins_uri, monkeypatch):
    monkeypatch.setattr(datasets, "LOAD_TIMEOUT_S", 0.0)
    result = _query(make_invocation, penguins_uri, "SELECT 1")
    assert result.error.type == "DatasetError"
    assert result.error.message == "cannot load dataset penguins.csv: loading took longer than 0 s"
    assert not list(datasets.CACHE_DIR.glob("*.duckdb")) and not list(datasets.CACHE_DIR.glob("*.part*"))


def test_queries_from_many_threads(make_invocation, penguins_uri):
    # Given the local runtime's shape: tool calls in threads of one process
    results: list = [None] * 6

    def work(i: int) -> None:
        results[i] = _query(make_invocation, penguins_uri, f"SELECT count(*) + {i} FROM data")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then every one answered its own
    assert [r.content["rows"] for r in results] == [[[344 + i]] for i in range(6)]


# ------------------------------------------------------------------------------------------------ hostile children
READY = "import os, sys; os.write(1, b'ready\\n'); sys.stdin.buffer.readline(); "
HANG_AFTER_READY = READY + "import time; time.sleep(60)"


def _fake(script: str) -> list[str]:
    return [sys.executable, "-c", script]


@pytest.fixture
def fake_child(monkeypatch, penguins_uri, make_invocation):
    """``fake_child(script)``: the next children run ``script`` (python -c) instead of the sandbox; no spares."""
    monkeypatch.setattr(sandbox, "SPARES", 0)
    sandbox.shutdown()
    _query(make_invocation, penguins_uri, "SELECT 1")  # the database file exists

    def use(script: str) -> None:
        monkeypatch.setattr(sandbox, "child_argv", lambda limits: _fake(script))

    yield use
    sandbox.shutdown()


@pytest.mark.parametrize(("script", "error_type", "message"), [
    (READY + "print('this is not json')", "ToolFailed", "query_dataset failed with SandboxFailed"),
    (READY + "print('[1, 2]')", "ToolFailed", "query_dataset failed with SandboxFailed"),
    (READY + "print('{\"error\": {\"type\": \"Exploit\", \"message\": \"x\"}}')", "ToolFailed",
     "query_dataset failed with SandboxFailed"),
    (READY + "sys.exit(3)", "ToolFailed", "query_dataset failed with SandboxFailed"),
    ("import sys; sys.exit(1)", "ToolFailed", "query_dataset failed with SandboxFailed"),
    (READY + "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "LimitExceeded", "it died with SIGSEGV"),
    (READY + "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "LimitExceeded", "it died with SIGKILL"),
    (READY + "raise MemoryError", "LimitExceeded", "memory limit of its process"),
    (READY + "print('{\"memory\": \"duckdb\"}')", "LimitExceeded", "DuckDB's"),
    (READY + "print('{\"error\": {\"type\": \"QueryError\", \"message\": \"Parser Error: x\"}}')", "QueryError",
     "Parser Error: x"),
    (HANG_AFTER_READY, "LimitExceeded", "the query ran longer than the 1 s limit"),
])
def test_the_parent_survives_a_child_that_misbehaves(make_invocation, penguins_uri, fake_child, script, error_type,
                                                      message):
    fake_child(script)
    start = time.monotonic()
    result = _query(make_invocation, penguins_uri, "SELECT 1", tool=QueryDataset(timeout_s=1))
    assert result.error.type == error_type
    assert message in result.error.message
    assert time.monotonic() - start < 8


def test_a_child_that_floods_its_output_is_cut_off(make_invocation, penguins_uri, fake_child, monkeypatch):
    # Given a child writing 64 MB on its answer pipe, and a 1 MiB answer cap
    monkeypatch.setattr(sandbox, "MAX_ANSWER_BYTES", 1024 * 1024)
    fake_child(READY + "chunk = b'x' * 1048576\nfor _ in range(64): os.write(1, chunk)")
    before = _rss_mb()
    # When / Then the parent stops reading at the cap
    result = _query(make_invocation, penguins_uri, "SELECT 1", tool=QueryDataset(timeout_s=10))
    assert result.error.type == "ToolFailed"
    assert _rss_mb() - before < 32


def test_a_child_that_does_not_start_is_a_failure(make_invocation, penguins_uri, fake_child, monkeypatch):
    monkeypatch.setattr(sandbox, "START_TIMEOUT_S", 0.5)
    fake_child("import time; time.sleep(30)")
    with pytest.raises(sandbox.SandboxFailed, match="did not start"):
        sandbox.run({"op": "query", "db": "x", "sql": "SELECT 1", "max_rows": 1}, 1.0, sandbox.Limits(64, 320))


def test_a_killed_child_is_reaped(make_invocation, penguins_uri, fake_child):
    # Given a child that hangs, killed at the limit
    fake_child(HANG_AFTER_READY)
    children: list = []
    real = sandbox._Child

    class Spy(real):
        def __init__(self, limits):
            super().__init__(limits)
            children.append(self)

    sandbox._Child = Spy
    try:
        _query(make_invocation, penguins_uri, "SELECT 1", tool=QueryDataset(timeout_s=0.3))
    finally:
        sandbox._Child = real
    # Then it is gone (killed by SIGKILL, reaped), not left running
    (child,) = children
    assert child.proc.returncode == -signal.SIGKILL
