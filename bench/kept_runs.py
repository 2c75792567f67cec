"""Benchmark: does a local run slow down as runs pile up in the state folder? (issue 12: within 1.2x with 200 kept
runs, and the runtime's start-up must not grow with them.)

Method: one real demo run (``stepcrew demo``, offline rule engine, fast waits) fills a seed folder; a second folder
gets ``--kept`` copies of that run's partition (``RUN#<id>``, every item: META, plan, sub-tasks, conversations,
events, report, reviews — ~the real size per run) written straight into its state database with new run ids. Then,
side by side and interleaved (empty, kept, empty, kept, ...; ``--pairs`` pairs), the demo is run as a user runs it
(a fresh ``stepcrew demo`` process) in a copy of each folder, and the local runtime's start-up (``LocalRuntime``
enter + exit, in a fresh process) is timed the same way. Not copied: the tenant's memory and cache partitions
(they grow with runs too, but are bounded by their own caps: 10,000 episodes, the cache's TTL).

Prints each pair, the medians and ratios; its last line is ``kept_runs=… slowdown=… startup_ratio=…``.
Usage: ``python bench/kept_runs.py [--kept 200] [--pairs 3]``. Takes ~1-2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTUP = ("import time; t=time.perf_counter(); from stepcrew.local.runtime import LocalRuntime; "
           "from stepcrew.local.state import default_state_dir\n"
           "with LocalRuntime(state_dir=default_state_dir(), fast_waits=True): pass\n"
           "print(time.perf_counter()-t)")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(STEPCREW_HOME=str(home), STEPCREW_FAST_WAITS="1", STEPCREW_PROVIDER="rule")
    return env


def demo(home: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "stepcrew.cli", "demo"], env=_env(home), capture_output=True,
                          text=True, timeout=600)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"demo failed in {home}: {proc.stderr[-800:]}")
    return took


def startup(home: Path) -> float:
    proc = subprocess.run([sys.executable, "-c", STARTUP], env=_env(home), capture_output=True, text=True,
                          timeout=120, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def seed(seed_home: Path, kept_home: Path, kept: int) -> int:
    """Copy the seed's run partition ``kept`` times into ``kept_home``; returns the number of items written."""
    from stepcrew.local.durable import StateDB, _typed_json
    from stepcrew.local.state import _decode, _encode

    source = StateDB(seed_home / "state", writable=False)
    table = "stepcrew-local-runs"
    run_pks = [pk for (pk,) in source.conn.execute(
        "SELECT DISTINCT pk FROM items WHERE tbl = ? AND pk LIKE '%RUN#%'", (table,))]
    items = [i for pk in run_pks for i in source.rows(table, pk)]
    old_id = items[0]["PK"]["S"].removeprefix("RUN#")
    target = StateDB(kept_home / "state", writable=True)
    written = 0
    for n in range(kept):
        new_id = uuid.uuid4().hex
        with target.transaction():
            for item in items:
                copy = _decode(json.loads(json.dumps(_encode(item)).replace(old_id, new_id)))
                pk = _typed_json(copy["PK"])
                keys = [("GSI1", _typed_json(copy["GSI1PK"]))] if "GSI1PK" in copy else []
                target.put(table, pk, _typed_json(copy["SK"]), copy, keys)
                written += 1
            target.bump(table, _typed_json({"S": f"RUN#{new_id}"}))
    target.close()
    source.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stepcrew-kept-") as tmp:
        tmp = Path(tmp)
        seed_home, kept_home = tmp / "seed", tmp / "kept"
        demo(seed_home)
        items = seed(seed_home, kept_home, args.kept)
        size = (kept_home / "state" / "table.db").stat().st_size
        print(f"seeded {args.kept} runs ({items} items, {size / 1e6:.1f} MB state database)")
        empty_s, kept_s, empty_up, kept_up = [], [], [], []
        for pair in range(args.pairs):
            for label, source, out, up in (("empty", None, empty_s, empty_up), ("kept", kept_home, kept_s, kept_up)):
                home = tmp / f"{label}-{pair}"
                if source is not None:
                    shutil.copytree(source, home)
                else:
                    home.mkdir()
                up.append(startup(home))
                out.append(demo(home))
            print(f"pair {pair + 1}: demo empty {empty_s[-1]:.2f} s, kept {kept_s[-1]:.2f} s; start-up empty "
                  f"{empty_up[-1] * 1000:.0f} ms, kept {kept_up[-1] * 1000:.0f} ms")
        slowdown = statistics.median(kept_s) / statistics.median(empty_s)
        startup_ratio = statistics.median(kept_up) / statistics.median(empty_up)
        print(f"median demo: empty {statistics.median(empty_s):.2f} s, kept {statistics.median(kept_s):.2f} s "
              f"(reference: within 1.2x); median start-up ratio {startup_ratio:.2f}")
        print(f"kept_runs={args.kept} slowdown={slowdown:.2f} startup_ratio={startup_ratio:.2f}")


if __name__ == "__main__":
    main()
