"""Fault benchmark of the resilience ladder on the local runtime (a benchmark, not a test: it prints, it gates nothing).

What it does:

1. Starts two loopback OpenAI-compatible Chat Completions fakes on 127.0.0.1 (``bench/fault_fakes.py``): the
   primary is provider ``openai`` (``OPENAI_BASE_URL``, a placeholder key, model ``gpt-4o-mini`` so usage is
   priced); the second is registered in-process as provider ``backup``
   (``registry.register("backup", lambda tier: OpenAIModel("gpt-4o-mini", api_key=..., base_url=<fake2>/v1))``).
   The primary answers ``--fault-rate`` of its requests with a fault, drawn from a seeded RNG among HTTP 429, HTTP
   500, HTTP 503 and a "timeout". The adapter's timeout is ``ModelSettings.timeout_s`` (60 s by default, not
   settable per role), far too long to sleep for each fault, so a timeout is played as a short stall
   (``--stall-s``, 0.2 s) followed by a TCP reset (SO_LINGER 0): the SDK raises ``APIConnectionError``, which
   the adapter maps to ``ModelUnavailableError`` exactly as it maps ``APITimeoutError`` (its subclass). The second
   fake injects faults at ``--backup-fault-rate`` (default 5 %). With ``--all-down`` both answer every request
   with HTTP 503 (``--down-mode 503``) or refuse connections (``--down-mode refuse``: the base URLs point at
   loopback ports that nobody listens on).
2. Injects tool crashes at ``--tool-crash-rate``: every tool function (``tool_*`` of ``stepcrew.wiring.FUNCTIONS``)
   is loaded from its ``functions/<name>/app.py`` like the local hook does and registered with
   ``LocalRuntime.register_handler`` behind a wrapper that raises ``InjectedToolCrash`` (before the tool runs) for
   that fraction of agent-loop tool invocations. The local hook turns the exception into the Lambda error payload;
   the agent ASL's tool Task does not retry it (not a ``Lambda.*`` error) and catches it into a ``ToolFailed``
   result that goes back to the model. The run state machine's own dataset profile (``DescribeData``, sub-task id
   ``dataset``) is spared unless ``--crash-profile`` (its Catch fails the run).
3. Runs ``--runs`` runs of the default crew (goals cycled over the bundled datasets, each with ``dataset_uri``),
   ``--concurrency`` at a time (threads; at most 6), with ASL waits shortened (``STEPCREW_FAST_WAITS=1`` /
   ``LocalRuntime(fast_waits=True)``), model requests allowed (``ALLOW_MODEL_REQUESTS``) and only the loopback
   fakes configured. No run starts after ``--time-limit-s``.

Each run's goal ends with a marker ``(bench ref fxNNNN)``, so the fakes count requests, faults and successful
responses per run (every prompt quotes the goal). One consequence: no two runs send the same request, so the exact
response cache (and the plan cache's normalised-goal key) can only hit within a run; the cache hits counted
(``usage.cache_hits``) come from the tool-result cache (the dataset profile read again by the ``profile`` sub-task,
the same SQL over the same dataset in another run).

The reviewer's fake always passes the report; a run that degrades to the rule engine is reviewed by the rule engine.
With ``--all-down`` the reference counts runs on the rule engine (SUCCEEDED/DECLINED) and runs handed to a person
(NEEDS_REVIEW: for want of a provider, or because the report failed its review rounds) and fails on any run FAILED
for want of a provider.

Checks per run, after it ended: status, ``degradation_level``, error; **orphaned** = the execution ended (or the
run timed out in the bench) with the run still not terminal (a run waiting in NEEDS_REVIEW is a hand-off, counted
apart, not an orphan); **duplicates** = model calls recorded more often than the fakes answered them (``model_turn``
events with a provider and no cache, and ``usage.input_tokens`` / 100 tokens per fake answer), a tool call id
stored twice in a conversation, two assistant turns in a row, a tool message answering nothing or an answer
given twice, a one-shot role's ledger key stored twice, a ``tool_call``/``tool_result`` event repeated for the same
call id. Model answers the fakes gave that were never recorded are reported as **unrecorded** (paid, not billed to
the run). Breaker openings are counted by each model function's ``Breakers.openings`` (the CLOSED/HALF_OPEN ->
OPEN transitions its calls made); the BREAKER items of the table are printed at the end.

Cost: the local runtime is one process (one GIL) and CPU-bound; on a 2-CPU machine a run of the default crew under
these faults costs ~4-6 s of it, so 100 runs take ~8-10 minutes at ``--concurrency 6`` (more when the machine is
shared; ``--time-limit-s``, default 600, stops the starts, and the summary says how many ran). Two things keep the cost
flat: the bench reads a run's status by GetItem, and it deletes the items of each run that ended once its checks are
done, with the cache entries no later run can hit (exact-cache ``R#`` and plan-cache ``S#plan#`` entries written
before the oldest run in flight started: their keys hold a finished run's marker; tool results ``T#`` are kept)
(``--keep-runs`` keeps everything): on moto 5.2.5 every Query sorts every item of the table (``Table.query`` ->
``all_items()``), so each finished run's ~90 items would slow every later Query of every run down. ``--verbose`` also
prints per run when it ended, the table's size, live executions, the time spent in the garbage collector and the RSS.

The last line is ``runs=<n> terminal_pct=<x> succeeded_pct=<y> orphaned=<k> duplicates=<d> degraded=<level:count,...>
breaker_openings=<b> cache_hits=<c>``.

Usage: ``.venv/bin/python bench/faults.py [--runs 100] [--fault-rate 0.3] [--tool-crash-rate 0.1]
[--second-provider/--no-second-provider] [--all-down] [--time-limit-s 600] [--seed 7] [--verbose]``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/fault_fakes.py

from fault_fakes import GOALS, FakeProvider, refused_base_url

MODEL = "gpt-4o-mini"  # priced (stepcrew.llm.pricing), so the runs' costs are real numbers
TOKENS_IN = 100  # what each fake answer reports as usage (see fault_fakes.FakeProvider)
MODEL_FUNCTIONS = ("planner", "agent", "synthesizer", "reviewer")
MAX_CONCURRENCY = 6
POLL_S = 0.5  # the bench's polls of a run cost the runtime's CPU (one process, one GIL): poll gently
MODEL_ERRORS = {"ModelThrottledError", "ModelUnavailableError", "CircuitOpenError", "ChainExhaustedError"}


class GcClock:
    """Seconds the process spent in the cyclic garbage collector (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._t0


GC = GcClock()


class InjectedToolCrash(RuntimeError):
    """Raised by a tool function the bench made crash (its errorType reaches the ASL as the class name)."""


# ------------------------------------------------------------------------------------------------ tool crashes
class ToolCrasher:
    """Wraps tool handlers: a seeded fraction of invocations raise :class:`InjectedToolCrash` before the tool runs."""

    def __init__(self, rate: float, seed: int, crash_profile: bool) -> None:
        self.rate, self.crash_profile = rate, crash_profile
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.by_tool: Counter = Counter()
        self.by_run: Counter = Counter()
        self.invocations = 0

    def wrap(self, name: str, handler: Any) -> Any:
        def crashing(event: dict, context: Any) -> Any:
            ctx = event.get("context") or {}
            spared = ctx.get("subtask_id") == "dataset" and not self.crash_profile  # the run's dataset profile
            with self._lock:
                self.invocations += 0 if spared else 1
                crash = not spared and self._rng.random() < self.rate
                if crash:
                    self.by_tool[name] += 1
                    self.by_run[ctx.get("run_id")] += 1
            if crash:
                raise InjectedToolCrash(f"bench: injected crash of {name}")
            return handler(event, context)

        return crashing


def load_function(name: str) -> Any:
    """``functions/<name>/app.py`` as a fresh module (what the local hook does lazily), under a bench name."""
    from stepcrew import wiring

    path = wiring.FUNCTIONS_DIR / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"bench_faults_fn_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def breaker_openings(modules: dict[str, Any]) -> dict[str, int]:
    """Openings seen by each model function's circuit breakers (its resolver keeps them per store object)."""
    out = {}
    for name, module in modules.items():
        resolver = getattr(module, "engines", None)
        parts = list(getattr(resolver, "per_store", {}).values()) if resolver is not None else []
        out[name] = sum(getattr(p.get("breakers"), "openings", 0) for p in parts)
    return out


# ------------------------------------------------------------------------------------------------ one run
@dataclass
class RunRecord:
    index: int
    tag: str
    goal_key: str
    run_id: str = ""
    execution_arn: str = ""
    exec_status: str = ""
    bench_outcome: str = ""  # ended | needs_review | timeout | start_failed
    elapsed_s: float = 0.0
    status: str = ""
    level: str = ""
    error: str = ""
    handoff_reason: str | None = None
    cache_hits: int = 0
    usage_in: int = 0
    provider_turns: int = 0
    turns_by_provider: Counter = field(default_factory=Counter)
    served: int = 0
    faults: int = 0
    crashes: int = 0
    duplicates: list[str] = field(default_factory=list)
    unrecorded: int = 0
    orphaned: bool = False
    faults_by_provider: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    deleted_items: int = 0
    table_items: int = 0
    live_executions: int = 0


def execute(index: int, rt: Any, crew: Any, args: argparse.Namespace, routing: Any, deadline: float,
            fakes: list[FakeProvider], crasher: ToolCrasher) -> RunRecord | None:
    """Create, start and follow run ``index`` (None: not started, the time limit was reached)."""
    if time.monotonic() >= deadline:
        return None
    spec = GOALS[index % len(GOALS)]
    rec = RunRecord(index=index, tag=f"fx{index:04d}", goal_key=spec.key)
    t0 = time.monotonic()
    ACTIVE.enter(index)
    try:
        _follow(rec, spec, rt, crew, args, routing, t0)
    except Exception as exc:  # noqa: BLE001 - a bench problem is recorded on the run, the bench goes on
        rec.bench_outcome, rec.error = "bench_error", f"{type(exc).__name__}: {exc}"
    rec.elapsed_s = time.monotonic() - t0
    checked(rec, rt, fakes, crasher)
    ACTIVE.leave(index)
    if not args.keep_runs and rec.run_id and rec.bench_outcome in ("ended", "needs_review"):
        rec.deleted_items = delete_run_items(rt, rec.run_id)  # checked: its items only slow later Queries down
        prune_cache(rt, ACTIVE.oldest())
    rec.table_items = rt.client("dynamodb").describe_table(TableName=rt.table_name)["Table"]["ItemCount"]
    rec.live_executions = live_executions(rt)
    return rec


def live_executions(rt: Any) -> int:
    """Executions of the run and agent state machines still RUNNING (in-flight runs, runs waiting for a person)."""
    n = 0
    for name in ("run", "agent"):
        pages = rt.sfn.get_paginator("list_executions").paginate(stateMachineArn=rt.state_machine_arn(name),
                                                                statusFilter="RUNNING")
        n += sum(len(p["executions"]) for p in pages)
    return n


def checked(rec: RunRecord, rt: Any, fakes: list[FakeProvider], crasher: ToolCrasher) -> None:
    try:
        analyse(rec, rt, fakes, crasher)
    except Exception as exc:  # noqa: BLE001 - reported with the run
        rec.error = f"{rec.error} (bench analysis failed: {type(exc).__name__}: {exc})".strip()


def run_status(rt: Any, run_id: str) -> str | None:
    """The run's status from its META item by GetItem (``store.get_run`` also Queries the usage items, and a Query
    on the local runtime costs O(items in the table): moto 5.2.5's ``Table.query`` sorts ``all_items()``)."""
    from stepcrew.store import schema as s

    item = rt.client("dynamodb").get_item(TableName=rt.table_name, ConsistentRead=True,
                                          Key={s.PK: {"S": s.run_pk(run_id)}, s.SK: {"S": s.META_SK}},
                                          ProjectionExpression="#st", ExpressionAttributeNames={"#st": "status"})
    return item.get("Item", {}).get("status", {}).get("S")


class ActiveRuns:
    """Wall-clock start of each run the bench follows now (for :func:`prune_cache`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}

    def enter(self, index: int) -> None:
        with self._lock:
            self._started[index] = time.time()

    def leave(self, index: int) -> None:
        with self._lock:
            self._started.pop(index, None)

    def oldest(self) -> float:
        with self._lock:
            return min(self._started.values(), default=time.time())


ACTIVE = ActiveRuns()
#: Cache keys no later run can hit: every prompt (so every exact-cache key, ``R#``) and every normalised goal (the
#: plan cache, ``S#plan#``) holds its run's marker. Tool results (``T#``) are shared across runs and kept.
UNREACHABLE_CACHE_PREFIXES = ("R#", "S#plan#")


def prune_cache(rt: Any, before: float) -> int:
    """Delete the cache entries written before ``before`` (wall time: the start of the oldest run in flight) under
    :data:`UNREACHABLE_CACHE_PREFIXES`: they belong to runs that ended. Written at = ``expires_at`` - the runs'
    ``cache_ttl_s`` (default 24 h). Returns how many."""
    from stepcrew.models import DEFAULT_TENANT, Routing
    from stepcrew.store import schema as s

    ttl = Routing().cache_ttl_s
    ddb, keys, start = rt.client("dynamodb"), [], None
    while True:
        kw = {"ExclusiveStartKey": start} if start else {}
        resp = ddb.query(TableName=rt.table_name, KeyConditionExpression="#pk = :pk",
                         ProjectionExpression="#pk, #sk, expires_at", ExpressionAttributeNames={"#pk": s.PK,
                                                                                                 "#sk": s.SK},
                         ExpressionAttributeValues={":pk": {"S": s.cache_pk(DEFAULT_TENANT)}}, **kw)
        for item in resp.get("Items", []):
            written = int(item.get("expires_at", {}).get("N", "0")) - ttl
            if item[s.SK]["S"].startswith(UNREACHABLE_CACHE_PREFIXES) and written < before - 1:
                keys.append({s.PK: item[s.PK], s.SK: item[s.SK]})
        start = resp.get("LastEvaluatedKey")
        if not start:
            break
    _delete_keys(ddb, rt.table_name, keys)
    return len(keys)


def _delete_keys(ddb: Any, table: str, keys: list[dict]) -> None:
    """BatchWriteItem deletes of ``keys``, 25 per call (DynamoDB's limit per BatchWriteItem)."""
    for i in range(0, len(keys), 25):
        ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": k}} for k in keys[i:i + 25]]})


def delete_run_items(rt: Any, run_id: str) -> int:
    """Delete every item of the run's partition (after its checks). Returns how many."""
    from stepcrew.store import schema as s

    ddb, keys, start = rt.client("dynamodb"), [], None
    while True:
        kw = {"ExclusiveStartKey": start} if start else {}
        resp = ddb.query(TableName=rt.table_name, KeyConditionExpression="#pk = :pk", ProjectionExpression="#pk, #sk",
                         ExpressionAttributeNames={"#pk": s.PK, "#sk": s.SK},
                         ExpressionAttributeValues={":pk": {"S": s.run_pk(run_id)}}, **kw)
        keys += resp.get("Items", [])
        start = resp.get("LastEvaluatedKey")
        if not start:
            break
    _delete_keys(ddb, rt.table_name, keys)
    return len(keys)


def _follow(rec: RunRecord, spec: Any, rt: Any, crew: Any, args: argparse.Namespace, routing: Any,
            t0: float) -> None:
    from stepcrew.models import RunRequest, RunStatus
    from stepcrew.service import create_run, start_run
    from stepcrew.tools.datasets import dataset_uri

    tag = rec.tag
    request = RunRequest(goal=f"{spec.goal} (bench ref {tag})", data=dataset_uri(spec.path), provider="openai",
                         routing=routing)
    run = create_run(request, crew, rt.store)
    rec.run_id = run.run_id
    try:
        run = start_run(run, rt.store, rt)
    except Exception as exc:  # noqa: BLE001 - recorded, the bench goes on
        rec.bench_outcome, rec.error = "start_failed", f"{type(exc).__name__}: {exc}"
        return
    rec.execution_arn = run.execution_arn
    limit = t0 + args.run_timeout_s
    while True:
        ex = rt.sfn.describe_execution(executionArn=rec.execution_arn)["status"]
        status = run_status(rt, rec.run_id)
        if ex != "RUNNING":
            rec.exec_status, rec.bench_outcome = ex, "ended"
            break
        if status == RunStatus.NEEDS_REVIEW:  # waits for a person (task token): not an orphan, not terminal
            rec.exec_status, rec.bench_outcome = ex, "needs_review"
            break
        if time.monotonic() >= limit:
            rec.exec_status, rec.bench_outcome = ex, "timeout"
            break
        time.sleep(POLL_S)


# ------------------------------------------------------------------------------------------------ checks
def all_events(store: Any, run_id: str) -> list[Any]:
    out, after = [], None
    while True:
        page = store.list_events(run_id, after=after, limit=500)
        out.extend(e for _, e in page)
        if len(page) < 500:
            return out
        after = page[-1][0]


def conversation_duplicates(messages: list[Any], name: str) -> list[str]:
    """Structural duplicates in one agent conversation (see the module docstring)."""
    found, seen_calls, answered = [], Counter(), Counter()
    prev = None
    for i, m in enumerate(messages):
        if m.role == "assistant":
            for c in m.tool_calls:
                seen_calls[c.call_id] += 1
            if prev is not None and prev.role == "assistant":
                found.append(f"{name}: two assistant turns in a row at message {i}")
        if m.role == "tool":
            pending = {c.call_id for c in prev.tool_calls} if prev is not None and prev.role == "assistant" else set()
            for r in m.tool_results:
                answered[r.call_id] += 1
                if r.call_id not in pending:
                    found.append(f"{name}: tool result {r.call_id} answers no pending call (message {i})")
        prev = m
    found += [f"{name}: tool call id {cid} stored {n} times" for cid, n in seen_calls.items() if n > 1]
    found += [f"{name}: tool call {cid} answered {n} times" for cid, n in answered.items() if n > 1]
    return found


def ledger_duplicates(messages: list[Any], name: str) -> list[str]:
    keys = Counter(m.content for m in messages if m.role == "user")
    return [f"{name}: exchange {k.split(' ')[0]} stored {n} times" for k, n in keys.items() if n > 1]


def analyse(rec: RunRecord, rt: Any, fakes: list[FakeProvider], crasher: ToolCrasher) -> None:
    from stepcrew.service import run_result

    if not rec.run_id:
        return
    store = rt.store
    result = run_result(store, rec.run_id)
    rec.status = str(result.status.value if hasattr(result.status, "value") else result.status)
    rec.level = result.degradation_level or ""
    rec.error = f"{result.error.code}: {result.error.message}" if result.error else rec.error
    rec.handoff_reason = result.handoff_reason
    rec.cache_hits = result.usage.cache_hits
    rec.usage_in = result.usage.input_tokens
    # not terminal although its execution ended, the bench gave up on it, or it never started: nobody finishes it
    rec.orphaned = rec.bench_outcome != "needs_review" and not result.status.terminal
    events = all_events(store, rec.run_id)
    for e in events:
        if e.kind == "model_turn" and e.data.get("provider") and not e.data.get("cache"):
            rec.provider_turns += 1
            rec.turns_by_provider[e.data["provider"]] += 1
    for kind in ("tool_call", "tool_result"):
        ids = Counter((e.subtask_id, e.data.get("call_id")) for e in events if e.kind == kind)
        rec.duplicates += [f"event {kind} for call {cid} of {sub} {n} times" for (sub, cid), n in ids.items() if n > 1]
    finished = Counter(e.subtask_id for e in events if e.kind == "subtask_finished")
    rec.duplicates += [f"event subtask_finished of {s} {n} times" for s, n in finished.items() if n > 1]
    for e in events:
        if e.kind == "degraded":
            rec.notes.append(f"degraded {e.data.get('purpose')}{' of ' + e.subtask_id if e.subtask_id else ''} "
                             f"to {e.data.get('rung')}")
    rec.served = sum(f.per_run[rec.tag]["ok"] for f in fakes)
    rec.faults_by_provider = {f.name: f.per_run[rec.tag]["fault"] for f in fakes}
    rec.faults = sum(f.per_run[rec.tag]["fault"] for f in fakes)
    rec.crashes = crasher.by_run.get(rec.run_id, 0)
    if rec.provider_turns > rec.served:
        rec.duplicates.append(f"{rec.provider_turns} model_turn events for {rec.served} model answers")
    if rec.usage_in > TOKENS_IN * rec.served:
        rec.duplicates.append(f"usage {rec.usage_in} input tokens for {rec.served} answers of {TOKENS_IN}")
    rec.unrecorded = max(0, rec.served - rec.provider_turns)
    plan = store.get_plan(rec.run_id)
    for sub in (plan.subtasks if plan else []):
        conversation = store.get_messages(rec.run_id, sub.id)
        rec.duplicates += conversation_duplicates(conversation, sub.id)
        rec.notes += [f"{sub.id}: {m.content[:400]}" for m in conversation
                      if m.role == "assistant" and m.content.startswith("Not done:")]
    for name in ("planner", "synthesizer", "reviewer"):
        rec.duplicates += ledger_duplicates(store.get_messages(rec.run_id, name), name)


def table_census(rt: Any) -> Counter:
    """Items left in the run table by kind of partition (``RUN#``, ``CACHE#``...) and, for the cache, kind of key."""
    ddb, out, start = rt.client("dynamodb"), Counter(), None
    while True:
        kw = {"ExclusiveStartKey": start} if start else {}
        resp = ddb.scan(TableName=rt.table_name, ProjectionExpression="PK, SK", **kw)
        for item in resp.get("Items", []):
            pk, sk = item["PK"]["S"], item["SK"]["S"]
            kind = pk.split("#")[0]
            out[f"{kind}#{sk.split('#')[0]}#" if kind == "CACHE" else kind] += 1
        start = resp.get("LastEvaluatedKey")
        if not start:
            return out


def breaker_items(rt: Any) -> list[dict]:
    from stepcrew.store import schema as s

    ddb = rt.client("dynamodb")
    resp = ddb.query(TableName=rt.table_name, KeyConditionExpression="PK = :pk",
                     ExpressionAttributeValues={":pk": {"S": s.BREAKER_PK}})
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in resp.get("Items", [])]


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--fault-rate", type=float, default=0.3, help="primary's share of faulty answers (0-1)")
    p.add_argument("--backup-fault-rate", type=float, default=0.05, help="second provider's share (0-1)")
    p.add_argument("--tool-crash-rate", type=float, default=0.1)
    p.add_argument("--crash-profile", action="store_true",
                   help="also crash the run's dataset profile (DescribeData), not only agent tool calls")
    p.add_argument("--second-provider", action=argparse.BooleanOptionalAction, default=True,
                   help="chain openai -> backup for both tiers (default on)")
    p.add_argument("--all-down", action="store_true", help="both providers answer every request with a fault")
    p.add_argument("--down-mode", choices=("503", "refuse"), default="503")
    p.add_argument("--stall-s", type=float, default=0.2, help="stall before the reset of a 'timeout' fault")
    p.add_argument("--time-limit-s", type=float, default=600, help="no run starts after this many seconds")
    p.add_argument("--run-timeout-s", type=float, default=300, help="longest the bench follows one run")
    p.add_argument("--concurrency", type=int, default=6, help=f"runs at a time (1-{MAX_CONCURRENCY})")
    p.add_argument("--keep-runs", action="store_true",
                   help="keep each run's items and its cache entries in the table after its checks (default: "
                        "delete them; every Query of the local runtime costs O(items in the table))")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--verbose", action="store_true", help="one line per run")
    args = p.parse_args(argv)
    for name in ("fault_rate", "backup_fault_rate", "tool_crash_rate"):
        if not 0 <= getattr(args, name) <= 1:
            p.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        p.error(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    if args.runs < 1:
        p.error("--runs must be >= 1")
    return args


def configure_env(home: str, primary_url: str) -> None:
    """Only the loopback fakes are configured; model requests allowed; short ASL waits; nothing under ~."""
    for name in ("ANTHROPIC_API_KEY", "STEPCREW_ANTHROPIC_SECRET", "STEPCREW_OPENAI_SECRET", "STEPCREW_PROVIDER",
                 "STEPCREW_FALLBACK_CHAIN", "STEPCREW_MODEL_FAST", "STEPCREW_MODEL_SMART"):
        os.environ.pop(name, None)
    os.environ.update({
        "STEPCREW_HOME": home,
        "OPENAI_BASE_URL": primary_url,
        "OPENAI_API_KEY": "bench-placeholder-key",
        "OPENAI_MODEL": MODEL,
        # a provider registered in code has no default model ids: both tiers of every provider use MODEL
        "STEPCREW_MODEL_FAST": MODEL,
        "STEPCREW_MODEL_SMART": MODEL,
        "STEPCREW_ALLOW_MODEL_REQUESTS": "1",
        "STEPCREW_FAST_WAITS": "1",
    })


def _pct(n: int, d: int) -> float:
    return round(100.0 * n / d, 1) if d else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    down = args.all_down
    primary = FakeProvider("openai", fault_rate=1.0 if down else args.fault_rate, seed=rng.randrange(2**31),
                           stall_s=args.stall_s, kinds=("503",) if down else None)
    backup = FakeProvider("backup", fault_rate=1.0 if down else args.backup_fault_rate, seed=rng.randrange(2**31),
                          stall_s=args.stall_s, kinds=("503",) if down else None)
    fakes = [primary, backup]
    refuse = down and args.down_mode == "refuse"
    if not refuse:
        for f in fakes:
            f.start()
    primary_url = refused_base_url() if refuse else primary.base_url
    backup_url = refused_base_url() if refuse else backup.base_url
    for url in (primary_url, backup_url):
        assert url.startswith("http://127.0.0.1:"), url  # model requests go to loopback fakes only

    home = tempfile.mkdtemp(prefix="stepcrew-faults-")
    configure_env(home, primary_url)

    import stepcrew.llm.base as llm_base
    from stepcrew.crew import load_crew
    from stepcrew.llm import registry
    from stepcrew.llm.openai import OpenAIModel
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.models import Routing
    from stepcrew.wiring import FUNCTIONS

    llm_base.ALLOW_MODEL_REQUESTS = True  # for this process: the only providers configured are the fakes above
    registry.clear_cache()
    registry.register("backup", lambda tier: OpenAIModel(MODEL, api_key="bench-placeholder-key", base_url=backup_url))
    routing = Routing(chains={"fast": ["openai", "backup"], "smart": ["openai", "backup"]}) \
        if args.second_provider else None
    crasher = ToolCrasher(args.tool_crash_rate, rng.randrange(2**31), args.crash_profile)
    crew = load_crew("default")

    print(f"fault bench: runs={args.runs} concurrency={args.concurrency} fault_rate={args.fault_rate} "
          f"backup_fault_rate={args.backup_fault_rate if args.second_provider else '-'} "
          f"tool_crash_rate={args.tool_crash_rate}{' (+ dataset profile)' if args.crash_profile else ''} "
          f"second_provider={args.second_provider} all_down={down}{f' ({args.down_mode})' if down else ''} "
          f"seed={args.seed} time_limit_s={args.time_limit_s}")
    print(f"primary openai at {primary_url}, backup at {backup_url}; 'timeout' faults = {args.stall_s} s stall + "
          "TCP reset (the adapter's request timeout is ModelSettings.timeout_s = 60 s)")
    records: list[RunRecord] = []
    t_start = time.monotonic()
    with LocalRuntime(fast_waits=True) as rt:
        modules = {}
        for name in MODEL_FUNCTIONS:
            modules[name] = load_function(name)
            rt.register_handler(name, modules[name].handler)
        for name, spec in FUNCTIONS.items():
            if spec.tool:
                rt.register_handler(name, crasher.wrap(name, load_function(name).handler))
        deadline = time.monotonic() + args.time_limit_s
        with ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="bench-run") as pool:
            futures = [pool.submit(execute, i, rt, crew, args, routing, deadline, fakes, crasher)
                       for i in range(args.runs)]
            for fut in as_completed(futures):
                rec = fut.result()
                if rec is None:
                    continue
                records.append(rec)
                if args.verbose:
                    print(f"  [{rec.index:3d}] {rec.tag} {rec.goal_key:<16} {rec.status or '-':<13} "
                          f"exec={rec.exec_status:<9} {rec.bench_outcome:<12} {rec.elapsed_s:5.1f} s "
                          f"at {time.monotonic() - t_start:5.0f} s (run items {rec.deleted_items}, table "
                          f"{rec.table_items}, live executions {rec.live_executions}, gc {sum(GC.seconds):.1f} s, "
                          f"rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB)", flush=True)
        wall = time.monotonic() - t_start
        records.sort(key=lambda r: r.index)
        for rec in records:
            if rec.bench_outcome not in ("ended", "needs_review"):  # given up on, or kept: look again at the end
                rec.duplicates, rec.turns_by_provider, rec.provider_turns = [], Counter(), 0
                checked(rec, rt, fakes, crasher)
        openings = breaker_openings(modules)
        breakers = breaker_items(rt)
        table = table_census(rt)
    for f in fakes:
        f.stop()
    return report(args, records, fakes, crasher, openings, breakers, wall, table)


def report(args: argparse.Namespace, records: list[RunRecord], fakes: list[FakeProvider], crasher: ToolCrasher,
           openings: dict[str, int], breakers: list[dict], wall: float, table: Counter) -> int:
    n = len(records)
    statuses = Counter(r.status for r in records)
    levels = Counter(r.level for r in records)
    terminal = sum(r.status in ("SUCCEEDED", "FAILED", "DECLINED") for r in records)
    succeeded = statuses.get("SUCCEEDED", 0)
    orphaned = [r for r in records if r.orphaned]
    dup_runs = [r for r in records if r.duplicates]
    duplicates = sum(len(r.duplicates) for r in records)
    cache_hits = sum(r.cache_hits for r in records)
    opened = sum(openings.values())
    print()
    if args.verbose:
        print("per run (index tag goal status level faults crashes provider-turns/served elapsed):")
        for r in records:
            by = ",".join(f"{k}:{v}" for k, v in sorted(r.turns_by_provider.items()))
            print(f"  [{r.index:3d}] {r.tag} {r.goal_key:<16} {r.status:<12} {r.level:<11} faults={r.faults:<2} "
                  f"crashes={r.crashes} turns={r.provider_turns}/{r.served} ({by}) cache={r.cache_hits} "
                  f"{r.elapsed_s:5.1f} s{'  ' + r.error[:100] if r.error else ''}")
    print(f"ran {n} of {args.runs} runs in {wall:.0f} s (time limit {args.time_limit_s:.0f} s; "
          f"{args.runs - n} not started)")
    print(f"terminal: {terminal}/{n} ({_pct(terminal, n)} %), succeeded: {succeeded}/{n} ({_pct(succeeded, n)} %)")
    print("by status: " + ", ".join(f"{k}={v}" for k, v in sorted(statuses.items())))
    print("by degradation_level: " + ", ".join(f"{k}={v}" for k, v in sorted(levels.items())))
    for r in records:
        if r.status == "NEEDS_REVIEW":
            print(f"  handed off: [{r.index}] {r.run_id} level={r.level} reason={r.handoff_reason!r} faults "
                  f"{r.faults_by_provider}")
        elif r.status == "FAILED":
            print(f"  failed: [{r.index}] {r.run_id} level={r.level} {r.error[:300]}")
        else:
            continue
        for note in r.notes[:6]:
            print(f"    {note}")
    for r in records:
        if r.status not in ("NEEDS_REVIEW", "FAILED") and r.notes:
            print(f"  degraded: [{r.index}] {r.status} level={r.level}: " + "; ".join(r.notes[:4]))
    print(f"orphaned: {len(orphaned)}" + "".join(f"\n  orphan: [{r.index}] {r.run_id} status={r.status} "
                                                  f"exec={r.exec_status} bench={r.bench_outcome}" for r in orphaned))
    print(f"duplicates: {duplicates} in {len(dup_runs)} runs" +
          "".join(f"\n  [{r.index}] {r.run_id}: " + "; ".join(r.duplicates[:5]) for r in dup_runs[:20]))
    unrec = sum(r.unrecorded for r in records)
    print(f"model answers given by the fakes but not recorded on their run: {unrec}"
          + (f" (runs {', '.join(str(r.index) for r in records if r.unrecorded)})" if unrec else ""))
    if args.all_down and args.down_mode == "refuse":
        print("providers openai and backup: connection refused on every request (nothing listens on their ports)")
    for f in fakes:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(f.faults.items())) or "none"
        print(f"provider {f.name}: {f.requests} requests, {f.ok} answered, faults injected: {faults}"
              f"{', fake errors: ' + str(f.fake_errors) if f.fake_errors else ''}")
    print(f"tool crashes injected: {sum(crasher.by_tool.values())} of {crasher.invocations} tool invocations that "
          f"could crash{'' if crasher.crash_profile else ' (agent tool calls; the dataset profiles are spared)'}"
          + (" (" + ", ".join(f"{k}={v}" for k, v in sorted(crasher.by_tool.items())) + ")" if crasher.by_tool else ""))
    turns = Counter()
    for r in records:
        turns.update(r.turns_by_provider)
    print("recorded provider calls: " + (", ".join(f"{k}={v}" for k, v in sorted(turns.items())) or "none")
          + f"; cache hits: {cache_hits}")
    print("breaker openings: " + ", ".join(f"{k}={v}" for k, v in openings.items()) + f" (total {opened})")
    for b in breakers:
        print(f"  breaker item {b.get('SK')}: " + ", ".join(f"{k}={v}" for k, v in sorted(b.items())
                                                           if k not in ("PK", "SK")))

    print(f"run table at the end: {sum(table.values())} items (" + ", ".join(f"{k} {v}" for k, v in table.most_common())
          + ")" + ("" if args.keep_runs else "; the items of each run that ended, and the cache entries no later run "
                    "could hit, were deleted after its checks"))

    # references
    model_failed = [r for r in records if r.status == "FAILED" and r.error.split(":")[0] in MODEL_ERRORS]
    print("references:")
    if args.all_down:
        on_rule = [r for r in records if r.level == "rule_engine" and r.status in ("SUCCEEDED", "DECLINED")]
        no_provider = [r for r in records if r.status == "NEEDS_REVIEW" and r.handoff_reason]
        by_review = [r for r in records if r.status == "NEEDS_REVIEW" and not r.handoff_reason]
        met = len(on_rule) + len(no_provider) + len(by_review) == n and not model_failed
        print(f"  all down: 100 % on the rule engine (SUCCEEDED/DECLINED) or handed off: "
              f"{_pct(len(on_rule) + len(no_provider) + len(by_review), n)} % (rule engine {len(on_rule)}, handed "
              f"off for want of a provider {len(no_provider)}, handed off because the report failed its review "
              f"{len(by_review)}); FAILED for want of a provider: {len(model_failed)} -> {'met' if met else 'NOT met'}")
        if by_review:
            crashed = sum(1 for r in by_review if r.crashes)
            print(f"    {crashed} of the {len(by_review)} runs handed off by review had an injected tool crash (the "
                  "rule engine calls each tool once and does not retry a ToolFailed result)")
    else:
        same = (args.fault_rate == 0.3 and args.tool_crash_rate == 0.1 and args.second_provider)
        note = "" if same else " (the reference is for 30 % faults, 10 % tool crashes and a second provider)"
        checks = [("100 % terminal", terminal == n), ("succeeded >= 99 %", _pct(succeeded, n) >= 99),
                  ("0 orphaned", not orphaned), ("0 duplicates", duplicates == 0)]
        for label, good in checks:
            print(f"  {label}: {'met' if good else 'NOT met'}{note}")
    degraded = ",".join(f"{k}:{levels.get(k, 0)}" for k in ("full", "cached", "rule_engine", "handoff"))
    print(f"runs={n} terminal_pct={_pct(terminal, n)} succeeded_pct={_pct(succeeded, n)} orphaned={len(orphaned)} "
          f"duplicates={duplicates} degraded={degraded} breaker_openings={opened} cache_hits={cache_hits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
