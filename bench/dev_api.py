"""Bounded load on ``stepcrew dev`` over loopback. References, not gates: ``/health`` p95 <= 20 ms while 8 runs
execute; ``GET /runs/{id}`` p95 <= 50 ms with 1,000 runs stored; no unanswered request.

How:
1. a temporary ``STEPCREW_HOME``; ``--stored`` runs (default 1,000 in all) are written first **through the store**
   into its state folder (:class:`stepcrew.local.runtime.LocalRuntime` ``store_only``: run record, ``run_queued``
   event, a short report, SUCCEEDED), because running 1,000 full runs would take far longer than this bench may;
2. ``stepcrew dev`` starts as a subprocess on a free port with ``STEPCREW_FAST_WAITS=1``, the offline rule engine
   (every provider key removed, ``STEPCREW_PROVIDER=rule``), ``STEPCREW_DEV_MAX_RUNS=--runs`` and per-tenant limits
   raised out of the way;
3. ``--runs`` (default 8) demo runs are posted; while they execute one client asks ``GET /health`` back to back
   (``--health-gap-ms`` apart) and another polls the runs' status every 0.5 s; -> health p95;
4. once they have ended, ``--gets`` ``GET /runs/{id}`` (default 400), one at a time, of ids drawn at random from all
   stored runs (the full runs of step 3 included); -> get_run p95;
5. the server gets SIGTERM and must exit.

Unanswered = a timeout (``--timeout-s``, default 5 s) or a connection error, on any request of the bench.
Bounded: each phase has a deadline; the whole takes about a minute here (well under 3 minutes).

Its last line is ``health_p95_ms=… get_run_p95_ms=… unanswered=…``.
Usage: ``python bench/dev_api.py [--runs 8] [--stored 1000] [--gets 400]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEALTH_REF_MS = 20.0
GET_RUN_REF_MS = 50.0
TENANT = "bench"
PROVIDER_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "AWS_BEARER_TOKEN_BEDROCK")


class Client:
    """Loopback HTTP client counting unanswered requests (timeouts, connection errors) and 5xx answers."""

    def __init__(self, base: str, timeout_s: float) -> None:
        self.base, self.timeout_s = base, timeout_s
        self.unanswered = 0
        self.server_errors = 0
        self._lock = threading.Lock()

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int | None, dict, float]:
        """``(status or None if unanswered, JSON answer, seconds)``."""
        request = urllib.request.Request(self.base + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer local:{TENANT}",
                                                  "Content-Type": "application/json"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (OSError, TimeoutError) as exc:  # URLError, ConnectionError, socket.timeout
            with self._lock:
                self.unanswered += 1
            print(f"unanswered: {method} {path} after {time.perf_counter() - t0:.1f} s: {exc!r}"[:200])
            return None, {}, time.perf_counter() - t0
        elapsed = time.perf_counter() - t0
        if status >= 500:
            with self._lock:
                self.server_errors += 1
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = {}
        return status, data, elapsed


def p95_ms(samples: list[float]) -> float:
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0] * 1000
    return statistics.quantiles(samples, n=100, method="inclusive")[94] * 1000


def store_runs(state_dir: Path, count: int) -> list[str]:
    """Write ``count`` finished runs of tenant :data:`TENANT` into ``state_dir``: the items the store writes for a run
    (its record, as :func:`stepcrew.service.create_run` builds it, then SUCCEEDED; its ``run_queued`` event; a short
    report), built with :mod:`stepcrew.store.schema` and sent 25 at a time (``BatchWriteItem``) to the kept table."""
    from stepcrew.api.dev import partition_queries
    from stepcrew.crew import load_crew
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.models import ProgressEvent, RunRequest, RunStatus, utcnow
    from stepcrew.service import create_run
    from stepcrew.store import schema
    from stepcrew.store.memory import MemoryRunStore

    crew, scratch, ids, items = load_crew("default"), MemoryRunStore(), [], []
    for i in range(count):
        run = create_run(RunRequest(goal=f"bench stored run {i}: summarise the sales", tenant=TENANT,
                                    provider="rule"), crew, scratch)
        now = utcnow()
        run = run.model_copy(update={"status": RunStatus.SUCCEEDED, "started_at": now, "finished_at": now})
        event = ProgressEvent(run_id=run.run_id, kind="run_queued", data={"provider": "rule"})
        items += [schema.run_item(run), schema.event_item(event, schema.new_event_cursor(now)),
                  schema.report_item(run.run_id, f"# Report {i}\n\nTotal sales were {1000 + i} units.\n", 1)]
        ids.append(run.run_id)
    with partition_queries(), LocalRuntime(state_dir=state_dir, store_only=True) as rt:
        store, ddb = rt.store, rt.client("dynamodb")
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": store._to_av(item)}} for item in items[start:start + 25]]
            while requests:
                left = ddb.batch_write_item(RequestItems={rt.table_name: requests}).get("UnprocessedItems", {})
                requests = left.get(rt.table_name, [])
        for run_id in ids[:: max(1, count // 20)]:  # RunNotFoundError if the writes did not land
            assert store.get_run(run_id, TENANT).status == RunStatus.SUCCEEDED
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, max_runs: int, log) -> subprocess.Popen:
    """``stepcrew dev`` in its own process; its stderr (one line per request) goes to ``log``, a file: a pipe nobody
    reads would fill and block the server."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    env.update({"STEPCREW_HOME": str(home), "STEPCREW_FAST_WAITS": "1", "STEPCREW_PROVIDER": "rule",
                "STEPCREW_DEV_MAX_RUNS": str(max_runs), "STEPCREW_TENANT_RATE_START": "100000",
                "STEPCREW_TENANT_RATE_READ": "1000000", "PYTHONPATH": os.pathsep.join(
                    [str(ROOT / "layers" / "stepcrew" / "python"), env.get("PYTHONPATH", "")])})
    return subprocess.Popen([sys.executable, "-m", "stepcrew.cli", "dev", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)


def wait_healthy(client: Client, proc: subprocess.Popen, deadline_s: float, log: Path) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < deadline_s:
        if proc.poll() is not None:
            raise RuntimeError(f"stepcrew dev exited at start: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(client.base + "/health", timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("stepcrew dev did not answer /health in time")


def health_under_runs(client: Client, runs: int, gap_s: float, deadline_s: float) -> tuple[list[float], dict]:
    """Post ``runs`` demo runs; sample /health until all have ended. Returns (health samples, run summary)."""
    from stepcrew.data import DEMO_DATASET, DEMO_GOAL

    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            status, _, elapsed = client.call("GET", "/health")
            if status == 200:
                samples.append(elapsed)
            time.sleep(gap_s)

    sampler = threading.Thread(target=sample, name="bench-health", daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    ids, post_s, poll_s = [], [], []
    for _ in range(runs):
        status, accepted, elapsed = client.call("POST", "/runs", {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri()})
        post_s.append(elapsed)
        if status == 202:
            ids.append(accepted["run_id"])
    final: dict[str, str] = {}
    peak_running = 0
    while len(final) < len(ids) and time.perf_counter() - t0 < deadline_s:
        running = 0
        for run_id in ids:
            if run_id in final:
                continue
            status, view, elapsed = client.call("GET", f"/runs/{run_id}")
            if status == 200:
                poll_s.append(elapsed)
            if status == 200 and view.get("status") in ("SUCCEEDED", "FAILED", "NEEDS_REVIEW"):
                final[run_id] = view["status"]
                if view["status"] != "SUCCEEDED":
                    error = view.get("error") or {}
                    print(f"run {run_id} ended {view['status']}: {error.get('code')} {str(error.get('message'))[:160]}")
            elif status == 200 and view.get("status") != "QUEUED":
                running += 1
        peak_running = max(peak_running, running)
        time.sleep(0.5)
    done.set()
    sampler.join(timeout=10)
    outcome = {"posted": len(ids), "ended": len(final), "succeeded": sum(s == "SUCCEEDED" for s in final.values()),
               "wall_s": time.perf_counter() - t0, "post_p95_ms": p95_ms(post_s),
               "poll_p95_ms": p95_ms(poll_s), "poll_max_ms": max(poll_s, default=0.0) * 1000,
               "peak_running": peak_running,
               "ids": ids}
    return samples, outcome


def get_runs(client: Client, ids: list[str], count: int, seed: int) -> tuple[list[float], int]:
    rng = random.Random(seed)
    samples, not_ok = [], 0
    for _ in range(count):
        status, _, elapsed = client.call("GET", f"/runs/{rng.choice(ids)}")
        if status == 200:
            samples.append(elapsed)
        else:
            not_ok += 1
    return samples, not_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="demo runs executing together (STEPCREW_DEV_MAX_RUNS)")
    parser.add_argument("--stored", type=int, default=1000, help="runs stored in all for the GET phase")
    parser.add_argument("--gets", type=int, default=400, help="GET /runs/{id} requests")
    parser.add_argument("--health-gap-ms", type=float, default=20.0)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "layers" / "stepcrew" / "python"))

    with tempfile.TemporaryDirectory(prefix="stepcrew-bench-dev-") as folder:
        home = Path(folder)
        t0 = time.perf_counter()
        stored = store_runs(home / "state", max(0, args.stored - args.runs))
        print(f"stored {len(stored)} finished runs through the store in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        log_path = home / "dev.log"
        log = log_path.open("w")
        proc = start_server(home, port, max(1, args.runs), log)
        client = Client(f"http://127.0.0.1:{port}", args.timeout_s)
        try:
            up_s = wait_healthy(client, proc, 90, log_path)
            print(f"stepcrew dev up in {up_s:.1f} s (STEPCREW_DEV_MAX_RUNS={args.runs})")
            health, outcome = health_under_runs(client, args.runs, args.health_gap_ms / 1000, deadline_s=120)
            health_p95 = p95_ms(health)
            print(f"runs: {outcome['posted']} posted, {outcome['ended']} ended ({outcome['succeeded']} SUCCEEDED) in "
                  f"{outcome['wall_s']:.1f} s; up to {outcome['peak_running']} seen executing at once; "
                  f"POST /runs p95 {outcome['post_p95_ms']:.0f} ms; GET /runs/{{id}} meanwhile p95 "
                  f"{outcome['poll_p95_ms']:.0f} ms, max {outcome['poll_max_ms']:.0f} ms")
            print(f"/health while they executed: {len(health)} answers, p50 "
                  f"{statistics.median(health) * 1000 if health else float('nan'):.1f} ms, p95 {health_p95:.1f} ms; "
                  f"reference <= {HEALTH_REF_MS:.0f} ms -> ratio {health_p95 / HEALTH_REF_MS:.2f}")
            every = stored + outcome["ids"]
            gets, not_ok = get_runs(client, every, args.gets, args.seed) if every else ([], 0)
            get_p95 = p95_ms(gets)
            print(f"GET /runs/{{id}} with {len(every)} runs stored: {len(gets)} answers "
                  f"({not_ok} not 200), p50 {statistics.median(gets) * 1000 if gets else float('nan'):.1f} ms, p95 "
                  f"{get_p95:.1f} ms; reference <= {GET_RUN_REF_MS:.0f} ms -> ratio {get_p95 / GET_RUN_REF_MS:.2f}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    print("stepcrew dev did not exit within 60 s of SIGTERM: killed")
            log.close()
        print(f"server exit code {proc.returncode}; 5xx answers {client.server_errors}")
    print(f"health_p95_ms={health_p95:.1f} get_run_p95_ms={get_p95:.1f} unanswered={client.unanswered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
