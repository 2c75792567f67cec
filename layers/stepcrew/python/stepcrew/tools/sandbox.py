"""DuckDB in a child process the parent can kill: the bounds of the data tools that hold while one expression runs.

DuckDB's own limits do not bound everything a query can do: its interrupt is not checked while some expressions
evaluate (``regexp_replace`` over a 100 MB ``printf`` result ran 10.8 s against a 1.5 s limit here), and its
``memory_limit`` covers the buffer manager, not every allocation (``string_split`` of that string grew to 14 GB RSS
against a 614 MiB limit; ``repeat('x', 500000000)`` to 1,069 MB). Static checks (:mod:`stepcrew.tools.sql_bounds`)
cannot name every such function. So every query, describe and dataset load runs in a fresh interpreter
(``python -m stepcrew.tools.sandbox``, started with :mod:`subprocess`: a new program, never ``os.fork`` of the
multithreaded parent) that

- sets ``RLIMIT_AS`` (:attr:`Limits.address_space_mb`) as its first act, before DuckDB is imported, hard limit too:
  an allocation past it fails (DuckDB: ``Out of Memory Error: Allocation failure``; Python: ``MemoryError``) or kills
  the child, never the parent;
- creates an in-memory DuckDB with ``memory_limit`` :attr:`Limits.memory_mb` (below the address-space cap by
  :data:`OVERHEAD_MB`), :attr:`Limits.threads` threads and no temporary folder, then says ``ready``;
- reads one JSON request on stdin, attaches the dataset's database file ``READ_ONLY`` as its current database,
  switches external access off and locks the configuration (the settings of
  :func:`stepcrew.tools.datasets.open_dataset`), does the work, writes one JSON answer on its own copy of stdout
  (fd 1 is pointed at stderr, so nothing DuckDB prints can corrupt the answer) and exits.

The parent (:func:`run`) waits with a wall-clock deadline and sends SIGKILL past it (:class:`SandboxTimeout`); a
child that ran out of memory (DuckDB's OutOfMemory, MemoryError, or death by a signal it did not get from the
parent) is :class:`SandboxOutOfMemory`; garbage, a crash or a child that does not start is :class:`SandboxFailed`;
typed errors of the work (QueryError, LimitExceeded, DatasetError) come back as those exceptions. The parent reads at
most :data:`MAX_ANSWER_BYTES` of answer and :data:`MAX_STDERR_BYTES` of stderr: nothing the child does takes the
parent's memory beyond that. The child gets a minimal environment (no AWS credentials: SQL never runs where a secret
is), and two backstops if the parent dies mid-query: ``alarm`` and ``RLIMIT_CPU`` a few seconds past the deadline.

Cost (``bench/sql_sandbox.py``, 2 shared cores): a child takes 60-95 ms from spawn to ready (~90 ms of CPU: the
interpreter ~15, DuckDB's C extension ~30, its instance ~35, these modules); attaching the file is ~2 ms. Children
are started ahead (:data:`SPARES`) and wait for their request, so a query with a spare ready costs ~25-30 ms more
than in-process DuckDB, ~45 ms back to back, ~115 ms with none. A spare idles at 53 MB resident, 14 MB of it its own
(the rest: the DuckDB library's pages, shared), and exits when the parent does (its stdin closes). On a 1,024 MB
data tool Lambda the parent (the handler, no DuckDB) peaks at ~70 MB, a spare adds 14 MB, a query's child at most
870 MiB of address space.

Imports here stay minimal (json, os, sys, resource, signal, DuckDB's C extension - see :func:`_import_duckdb` -;
:mod:`stepcrew.tools.errors` and :mod:`stepcrew.tools.sql_bounds`, both standard library only): the child's start is
part of every query's cost (check with ``python -X importtime -m stepcrew.tools.sandbox``).
The parent-side code imports :mod:`subprocess` and :mod:`selectors` lazily.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from typing import Any

from stepcrew.tools.jsonable import to_jsonable as jsonable  # stdlib only: cheap in the child

#: MiB of address space the child needs beyond DuckDB's memory_limit: the interpreter, the DuckDB library's mappings,
#: thread stacks (DuckDB starts 8 threads even with threads=1: 8 MiB of reserved stack each) and the Python objects
#: of the answer. Seen here (Python 3.11, DuckDB 2.0.1, ``MALLOC_ARENA_MAX=1``; without it each thread's malloc arena
#: reserves 64 MiB): 168 MiB of address space, 53 MiB resident, when ready; 175 MiB after a small query.
OVERHEAD_MB = 256
#: DuckDB threads in the child (env ``STEPCREW_DUCKDB_THREADS``): the data tool Lambdas have 1,024 MB, which is
#: ~0.58 vCPU (Lambda gives one vCPU per 1,769 MB), so more threads buy nothing and cost memory.
DEFAULT_THREADS = 1
#: Children kept started ahead (env ``STEPCREW_SANDBOX_SPARES``; 0 = start one per request): 1 on Lambda (one
#: invocation at a time, with the state machine's transitions between two), 2 elsewhere (the local runtime runs a
#: turn's tool calls side by side, and back to back). A spare holds ~14 MB of its own (53 MB resident, 39 MB of it
#: the DuckDB library's pages, shared with the other children).
SPARES = int(os.environ.get("STEPCREW_SANDBOX_SPARES", "").strip() or (1 if os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
                                                                    else 2))
#: Seconds a child may take to start (interpreter + ``import duckdb``) before it counts as failed; not part of the
#: query's time limit. Generous for a cold Lambda reading its layers.
START_TIMEOUT_S = 20.0
#: Largest answer the parent reads (bytes of JSON); a query's rows past it are dropped by the child
#: (``truncated``), any other answer past it is :class:`SandboxFailed`. The tool output is capped at 8 KiB anyway.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: stderr kept from a child (its end), for the log line of a failure.
MAX_STDERR_BYTES = 16 * 1024
#: Seconds past the deadline after which an orphaned child stops itself (alarm, RLIMIT_CPU).
BACKSTOP_S = 5
#: A text value longer than this is clipped in tool output (``query_dataset`` rows, ``describe_dataset`` top values).
MAX_TEXT_CHARS = 200
TOP_VALUES = 5
#: A text column with at most this many distinct values lists them all in ``top`` (a category's every value is
#: then known to a planner: "the Coastal region" is found even when it is not among the 5 most frequent).
ALL_VALUES_UP_TO = 20
_READY = b"ready\n"


# ---------------------------------------------------------------------------------------------------- errors
class SandboxError(Exception):
    """Base of what :func:`run` raises when the child gave no typed answer."""


class SandboxTimeout(SandboxError):
    """The child ran past its deadline and was killed (SIGKILL)."""


class SandboxOutOfMemory(SandboxError):
    """The child ran out of memory. ``by``: ``duckdb`` (DuckDB's memory_limit), ``process`` (the address-space cap:
    an allocation failed) or ``signal`` (the child died by a signal, e.g. the kernel's OOM killer); ``signal_name``
    for the last."""

    def __init__(self, by: str, signal_name: str | None = None) -> None:
        super().__init__(by if signal_name is None else f"{by} ({signal_name})")
        self.by = by
        self.signal_name = signal_name


class SandboxFailed(SandboxError):
    """The child did not start, crashed, or answered something that is not an answer."""


class DatabaseUnavailable(SandboxError):
    """The child could not open the database file (deleted by another process's cache, an older format): the caller
    may rebuild it and retry once."""


class Limits:
    """A child's limits. ``memory_mb``: DuckDB's ``memory_limit``; ``address_space_mb``: the child's ``RLIMIT_AS``
    (the whole process); ``threads``: DuckDB's threads. (A plain class: ``dataclasses`` costs the child ~8 ms.)"""

    __slots__ = ("address_space_mb", "memory_mb", "threads")

    def __init__(self, memory_mb: int, address_space_mb: int, threads: int = DEFAULT_THREADS) -> None:
        self.memory_mb = int(memory_mb)
        self.address_space_mb = int(address_space_mb)
        self.threads = int(threads)

    def _key(self) -> tuple[int, int, int]:
        return (self.memory_mb, self.address_space_mb, self.threads)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Limits(memory_mb={self.memory_mb}, address_space_mb={self.address_space_mb}, "
                f"threads={self.threads})")

    @classmethod
    def for_duckdb(cls, memory_mb: int) -> Limits:
        """DuckDB's ``memory_mb`` plus :data:`OVERHEAD_MB` for the process; threads from env
        ``STEPCREW_DUCKDB_THREADS`` (default :data:`DEFAULT_THREADS`). On a 1,024 MB data tool Lambda
        (``stepcrew.wiring.FUNCTIONS``): DuckDB 614 MiB (:func:`stepcrew.tools.datasets.memory_limit_mb`), the child
        870 MiB of address space (resident memory stays below it: ~110 MiB of it are library mappings and
        reserved stacks)."""
        threads = os.environ.get("STEPCREW_DUCKDB_THREADS", "").strip()
        return cls(memory_mb=memory_mb, address_space_mb=memory_mb + OVERHEAD_MB,
                   threads=max(1, int(threads)) if threads.isdigit() else DEFAULT_THREADS)


# ---------------------------------------------------------------------------------------------- the child's work
def clip(value: Any) -> Any:
    """A text value longer than :data:`MAX_TEXT_CHARS` cut to it, ending in ``…``."""
    return value[: MAX_TEXT_CHARS - 1] + "…" if isinstance(value, str) and len(value) > MAX_TEXT_CHARS else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _kind(dtype: str) -> str | None:
    """``numeric``, ``temporal`` or ``text`` for a DuckDB type name; None for lists, structs, blobs..."""
    import re

    kinds = {
        "numeric": r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|FLOAT|DOUBLE|REAL|DECIMAL(\(\d+,\s*\d+\))?)$",
        "temporal": r"^(DATE|TIME|TIMESTAMP(_S|_MS|_NS)?|INTERVAL)( WITH TIME ZONE)?$",
        "text": r"^(VARCHAR|BOOLEAN|UUID|ENUM\(.*\))$",
    }
    return next((kind for kind, pattern in kinds.items() if re.match(pattern, dtype)), None)


def _round(value: Any) -> Any:
    value = jsonable(value)
    return round(value, 4) if isinstance(value, float) else value


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _single_select(con: Any, duckdb: Any, sql: str) -> Any:
    from stepcrew.tools.errors import QueryError
    from stepcrew.tools.sql_bounds import check_sql_bounds  # both imported before the child says ready

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryError(f"only SELECT queries are allowed (read-only), got {kind.name}")
    check_sql_bounds(con, sql)  # LimitExceeded for values that would only hit the limits after a long while
    return statements[0]


def _query(con: Any, duckdb: Any, request: dict) -> dict:
    """``{sql, max_rows}`` -> ``{"columns", "rows", "row_count", "truncated"}`` (rows JSON-safe, text clipped; rows
    past :data:`MAX_ANSWER_BYTES` of JSON dropped, ``truncated`` then true)."""
    max_rows = int(request["max_rows"])
    con.execute(_single_select(con, duckdb, request["sql"]))
    columns = [d[0] for d in con.description or []]
    fetched = con.fetchmany(max_rows + 1)
    more = len(fetched) > max_rows
    rows, size = [], 0
    for raw in fetched[:max_rows]:
        row = [clip(jsonable(v)) for v in raw]
        size += len(json.dumps(row)) + 2
        if size > MAX_ANSWER_BYTES - 64 * 1024:
            more = True
            break
        rows.append(row)
    return {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": more}


def _describe(con: Any, duckdb: Any, request: dict) -> dict:
    """``{columns}`` -> ``{"rows", "columns": [...]}``: see :class:`stepcrew.tools.dataset.DescribeDataset`."""
    from stepcrew.tools.errors import DatasetError

    schema = [(r[0], r[1]) for r in con.execute("DESCRIBE data").fetchall()]
    columns = schema
    wanted = request.get("columns")
    if wanted:
        by_name = {n: (n, t) for n, t in schema} | {n.lower(): (n, t) for n, t in schema}
        picked = [by_name.get(c) or by_name.get(c.lower()) for c in wanted]
        unknown = [c for c, p in zip(wanted, picked, strict=True) if p is None]
        if unknown:
            raise DatasetError(f"unknown column(s): {', '.join(unknown)}; "
                               f"known columns: {', '.join(n for n, _ in schema)}")
        columns = list(dict.fromkeys(picked))
    rows = con.execute("SELECT count(*) FROM data").fetchone()[0]
    return {"rows": rows, "columns": _statistics(con, columns)}


def _statistics(con: Any, columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
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
    values = iter(con.execute(f"SELECT {', '.join(exprs)} FROM data").fetchone() if exprs else ())
    out = []
    for (name, dtype), kind in zip(columns, kinds, strict=True):
        col: dict[str, Any] = {"name": name, "type": dtype, "nulls": next(values), "distinct": next(values)}
        if kind == "numeric":
            col.update((k, _round(next(values))) for k in numeric)
        elif kind == "temporal":
            col.update(min=jsonable(next(values)), max=jsonable(next(values)))
        elif kind == "text":
            q = _quote(name)
            limit = ALL_VALUES_UP_TO if (col["distinct"] or 0) <= ALL_VALUES_UP_TO else TOP_VALUES
            top = con.execute(f"SELECT {q} AS v, count(*) AS n FROM data WHERE {q} IS NOT NULL GROUP BY v "
                              f"ORDER BY n DESC, v LIMIT {limit}").fetchall()
            col["top"] = [{"value": clip(jsonable(v)), "count": n} for v, n in top]
        out.append(col)
    return out


def _load(duckdb: Any, request: dict, limits: Limits) -> dict:
    """``{source, target, load_sql}``: a new database file ``target`` holding table ``data`` loaded by ``load_sql``
    (one ``?``: ``source``) -> ``{"rows", "columns"}``. Loading reads the source file, so external access stays on;
    the SQL is stepcrew's, never the model's."""
    con = duckdb.connect(request["target"], config={"threads": limits.threads})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET temp_directory = ''")
        con.execute(f"SET memory_limit = '{limits.memory_mb}MiB'")
        try:
            con.execute(request["load_sql"], [request["source"]])
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as exc:
            return {"load_error": _first_line(exc)}
        rows = con.execute("SELECT count(*) FROM data").fetchone()[0]
        columns = [r[0] for r in con.execute("DESCRIBE data").fetchall()]
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {"rows": rows, "columns": columns}


def _instance(duckdb: Any, limits: Limits) -> Any:
    """The child's DuckDB, made before it says ready (creating an instance is most of opening a database: ~25 ms
    here, attaching one ~2 ms): in memory, ``limits.threads`` threads, no extension autoloading, no progress bar, no
    temporary folder (``temp_directory=''``: DuckDB otherwise adds ``<cwd>/.tmp`` to the folders SQL may read, and
    spills there), DuckDB's memory cap."""
    con = duckdb.connect(":memory:", config={"threads": limits.threads, "autoload_known_extensions": False,
                                             "autoinstall_known_extensions": False})
    con.execute("SET enable_progress_bar = false")
    con.execute("SET temp_directory = ''")
    con.execute(f"SET memory_limit = '{limits.memory_mb}MiB'")
    return con


def _attach(con: Any, path: str) -> None:
    """Open the dataset's database file ``read_only`` as the current database (so ``data`` is its table), then
    switch external access off and lock the configuration (order matters: the paths SQL may read are fixed when
    external access is switched off; DuckDB keeps the database's own file among them)."""
    con.execute(f"ATTACH '{path.replace(chr(39), chr(39) * 2)}' AS dataset (READ_ONLY)")
    con.execute("USE dataset")


def _lock(con: Any) -> None:
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _answer(duckdb: Any, con: Any, request: dict, limits: Limits) -> dict:
    """The JSON answer to one request on the child's instance ``con`` (never raises for the work's errors)."""
    from stepcrew.tools.errors import ToolFailure

    op = request.get("op")
    try:
        if op == "load":
            return {"ok": _load(duckdb, request, limits)}
        if op not in ("query", "describe"):
            return {"failed": f"unknown op {op!r}"}
        try:
            _attach(con, str(request["db"]))
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as exc:
            return {"unavailable": _first_line(exc)}
        _lock(con)
        return {"ok": (_query if op == "query" else _describe)(con, duckdb, request)}
    except ToolFailure as exc:
        return {"error": {"type": exc.type, "message": str(exc)}}
    except duckdb.OutOfMemoryException as exc:
        message = _first_line(exc)
        return {"memory": "process" if "Allocation failure" in message else "duckdb", "message": message}
    except MemoryError:
        return {"memory": "process", "message": "MemoryError"}
    except duckdb.Error as exc:
        return {"error": {"type": "QueryError", "message": _first_line(exc)}}


def _import_duckdb() -> Any:
    """DuckDB's C extension itself when it is the top-level ``_duckdb`` (DuckDB >= 1.4): ~20 ms to import here,
    against ~85 ms for the ``duckdb`` package, which wraps it in Python helpers a query never uses (relations,
    expressions, its version from importlib.metadata). The package otherwise (older layouts)."""
    try:
        import _duckdb

        if all(hasattr(_duckdb, name) for name in ("connect", "Error", "OutOfMemoryException", "StatementType")):
            return _duckdb
    except ImportError:
        pass
    import duckdb

    return duckdb


def child_main(argv: list[str]) -> None:
    """The child: ``--memory-mb M --address-space-mb A --threads T``. Caps its address space first, imports DuckDB,
    says ``ready``, answers one request from stdin, exits."""
    import resource

    args = dict(zip(argv[0::2], argv[1::2], strict=False))
    limits = Limits(memory_mb=int(args["--memory-mb"]), address_space_mb=int(args["--address-space-mb"]),
                    threads=int(args["--threads"]))
    cap = limits.address_space_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    answer_fd = os.dup(1)  # the answer's own pipe; fd 1 (what C code and print write to) goes to stderr
    os.dup2(2, 1)
    duckdb = _import_duckdb()
    import signal

    import stepcrew.tools.errors
    import stepcrew.tools.sql_bounds  # noqa: F401  (what a request needs is imported before it comes)

    con = _instance(duckdb, limits)
    os.write(answer_fd, _READY)
    line = sys.stdin.buffer.readline()
    if not line:
        os._exit(0)  # the parent went away (a spare that was never used)
    try:
        request = json.loads(line)
        backstop = math.ceil(float(request.get("timeout_s", 60))) + BACKSTOP_S
        signal.alarm(backstop)  # SIGALRM's default action ends the process, inside DuckDB's C code too
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = math.ceil(used.ru_utime + used.ru_stime) + backstop
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        answer = _answer(duckdb, con, request, limits)
        data = json.dumps(answer, allow_nan=False).encode()
    except MemoryError:
        data = b'{"memory": "process", "message": "MemoryError"}'
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, never half-written
        data = json.dumps({"failed": f"{type(exc).__name__}: {_first_line(exc)}"[:500]}).encode()
    if len(data) > MAX_ANSWER_BYTES:
        data = json.dumps({"failed": f"answer of {len(data)} bytes, more than {MAX_ANSWER_BYTES}"}).encode()
    view = memoryview(data + b"\n")
    while view:
        view = view[os.write(answer_fd, view):]
    os._exit(0)  # no interpreter teardown: the answer is out, the process's memory goes with it


# ---------------------------------------------------------------------------------------------- the parent's side
def child_argv(limits: Limits) -> list[str]:
    """The child's command line: this interpreter, no user site folder (``-s``), no current folder on ``sys.path``
    (``-P``), this module as the program."""
    return [sys.executable, "-s", "-P", "-m", "stepcrew.tools.sandbox", "--memory-mb", str(limits.memory_mb),
            "--address-space-mb", str(limits.address_space_mb), "--threads", str(limits.threads)]


_python_path_cache: dict[str, str] = {}


def _python_path() -> str:
    """PYTHONPATH for the child: the folders holding ``stepcrew`` and ``duckdb`` (found without importing DuckDB),
    then the parent's PYTHONPATH (a Lambda's layers are there). Computed once per inherited PYTHONPATH."""
    inherited = os.environ.get("PYTHONPATH", "")
    cached = _python_path_cache.get(inherited)
    if cached is None:
        import importlib.util
        from pathlib import Path

        import stepcrew

        folders = [str(Path(stepcrew.__file__).resolve().parents[1])]
        spec = importlib.util.find_spec("duckdb")
        if spec is not None and spec.origin:
            folders.append(str(Path(spec.origin).resolve().parents[1]))
        folders += [p for p in inherited.split(os.pathsep) if p]
        cached = _python_path_cache[inherited] = os.pathsep.join(dict.fromkeys(folders))
    return cached


def _child_env() -> dict[str, str]:
    """What the child's environment holds: no credentials, nothing the parent was configured with beyond the
    locale and time zone (DuckDB's TIMESTAMPTZ values depend on it)."""
    env = {"PYTHONPATH": _python_path(), "MALLOC_ARENA_MAX": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for name in ("TZ", "LANG", "LC_ALL", "LC_CTYPE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class _Child:
    """One started child and its pipes."""

    def __init__(self, limits: Limits) -> None:
        import subprocess
        import tempfile

        self.limits = limits
        # cwd: the system temp folder, where nothing of the project's is relative to it
        self.proc = subprocess.Popen(child_argv(limits), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=_child_env(), cwd=tempfile.gettempdir(),
                                     close_fds=True, start_new_session=True)  # a terminal's Ctrl-C: the parent's
        self.out = bytearray()
        self.err = bytearray()
        self.killed = False
        self.out_closed = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pump(self, deadline: float, lines: int) -> bool:
        """Read stdout/stderr until stdout holds ``lines`` complete lines (True), stdout closes or ``deadline``
        (time.monotonic) passes (False). Reads at most :data:`MAX_ANSWER_BYTES` + 1 of stdout."""
        import selectors

        with selectors.DefaultSelector() as sel:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None and not pipe.closed and not (pipe is self.proc.stdout and self.out_closed):
                    sel.register(pipe, selectors.EVENT_READ)
            while self.out.count(b"\n") < lines:
                if self.out_closed or len(self.out) > MAX_ANSWER_BYTES:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 65536)
                    if key.fileobj is self.proc.stdout:
                        if not chunk:
                            self.out_closed = True
                            sel.unregister(key.fileobj)
                        self.out += chunk
                    else:
                        if not chunk:
                            sel.unregister(key.fileobj)
                        self.err = (self.err + chunk)[-MAX_STDERR_BYTES:]
        return True

    def kill(self) -> None:
        """SIGKILL (when still running), then reap."""
        if self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
        self.finish()

    def finish(self, grace_s: float = 2.0) -> None:
        """Reap the child (waiting up to ``grace_s`` for it to exit, then SIGKILL) and close its pipes."""
        import subprocess

        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.killed = True
            self.proc.kill()
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:  # stuck past SIGKILL: the kernel's; do not hang the parent
                pass
        self.close_pipes()

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


_pool_lock = threading.Lock()
_spares: list[_Child] = []  # started ahead, oldest first
_exiting: list[tuple[_Child, float]] = []  # answered, exiting by themselves: reaped later, (child, since)


def _reap_exited() -> None:
    """Reap the answered children that have exited; SIGKILL one still there after :data:`BACKSTOP_S` (never seen:
    a child exits right after its answer). Called with ``_pool_lock`` held."""
    now = time.monotonic()
    for entry in list(_exiting):
        child, since = entry
        if child.proc.poll() is not None or now - since > BACKSTOP_S:
            _exiting.remove(entry)
            child.kill()


def _take(limits: Limits) -> _Child:
    """A started child for ``limits``: the oldest matching spare, else a new one; then spares are started up to
    :data:`SPARES`, so the next request finds one ready (or nearly)."""
    with _pool_lock:
        _reap_exited()
        child = None
        while _spares and child is None:
            spare = _spares.pop(0)
            if spare.limits == limits and spare.alive():
                child = spare
            else:
                spare.kill()
        if child is None:
            child = _Child(limits)
        while len(_spares) < SPARES:
            _spares.append(_Child(limits))
    return child


def _release(child: _Child) -> None:
    """A child that answered: its pipes closed now, its exit reaped at a later :func:`_take` (waiting for it would
    add its teardown, ~5-10 ms, to every query)."""
    child.close_pipes()
    with _pool_lock:
        _exiting.append((child, time.monotonic()))


def shutdown() -> None:
    """Stop the spare children and reap the exiting ones (at exit; tests)."""
    with _pool_lock:
        children = list(_spares) + [child for child, _ in _exiting]
        _spares.clear()
        _exiting.clear()
    for child in children:
        child.kill()


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run(request: dict, timeout_s: float, limits: Limits) -> dict:
    """Answer ``request`` in a child under ``limits`` within ``timeout_s`` seconds (from the request's sending; the
    child's start has its own :data:`START_TIMEOUT_S`). ``request``: ``{"op": "query", "db", "sql", "max_rows"}``,
    ``{"op": "describe", "db", "columns"}`` or ``{"op": "load", "source", "target", "load_sql"}``.

    Returns the work's result (a dict; a load's may be ``{"load_error": ...}``). Raises QueryError, LimitExceeded or
    DatasetError for the work's typed errors, :class:`SandboxTimeout`, :class:`SandboxOutOfMemory`,
    :class:`DatabaseUnavailable` or :class:`SandboxFailed`."""
    from stepcrew.tools import errors

    child = _take(limits)
    try:
        if not child.pump(time.monotonic() + START_TIMEOUT_S, 1) or not child.out.startswith(_READY):
            if child.out_closed:  # exiting by itself
                child.finish()
            else:  # alive and not ready
                child.kill()
            raise _death(child, "did not start")
        data = (json.dumps({**request, "timeout_s": timeout_s}) + "\n").encode()
        try:
            assert child.proc.stdin is not None
            child.proc.stdin.write(data)
            child.proc.stdin.close()
        except OSError:  # BrokenPipeError: it died after saying ready
            child.finish()
            raise _death(child, "closed its input") from None
        if not child.pump(time.monotonic() + timeout_s, 2):
            if len(child.out) > MAX_ANSWER_BYTES:
                child.kill()
                raise SandboxFailed(f"the query process answered more than {MAX_ANSWER_BYTES} bytes")
            if not child.out_closed:
                child.kill()
                raise SandboxTimeout(f"killed after {timeout_s:g} s")
            child.finish()
            raise _death(child, "gave no answer")
        _release(child)
    except BaseException:
        child.kill()
        raise
    line = bytes(child.out[len(_READY):]).split(b"\n", 1)[0]
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise SandboxFailed(f"the query process answered something that is not JSON ({len(line)} bytes)")
    if "ok" in answer and isinstance(answer["ok"], dict):
        return answer["ok"]
    if "memory" in answer:
        raise SandboxOutOfMemory("duckdb" if answer["memory"] == "duckdb" else "process")
    if "unavailable" in answer:
        raise DatabaseUnavailable(str(answer["unavailable"]))
    error = answer.get("error")
    if isinstance(error, dict):
        kind = {"QueryError": errors.QueryError, "LimitExceeded": errors.LimitExceeded,
                "DatasetError": errors.DatasetError}.get(str(error.get("type")))
        if kind is not None:
            raise kind(str(error.get("message", ""))[:2000])
    raise SandboxFailed(f"the query process failed: {str(answer.get('failed', answer))[:300]}")


def _death(child: _Child, what: str) -> SandboxError:
    """Why a child that gave no answer died: a signal it did not get from the parent or a MemoryError on stderr ->
    SandboxOutOfMemory; otherwise SandboxFailed (with the end of its stderr)."""
    code = child.proc.returncode
    if code is not None and code < 0 and not child.killed:
        return SandboxOutOfMemory("signal", _signal_name(-code))
    if b"MemoryError" in child.err or b"std::bad_alloc" in child.err:
        return SandboxOutOfMemory("process")
    tail = child.err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return SandboxFailed(f"the query process {what} (exit {code}): {tail[0][:300]}")


def _at_exit() -> None:
    shutdown()


if __name__ == "__main__":
    child_main(sys.argv[1:])
else:
    import atexit

    atexit.register(_at_exit)
