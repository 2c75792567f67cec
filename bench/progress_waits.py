"""Cost of following a run's execution histories for retries and waits (stepcrew.progress_waits) on the local runtime.

The demo run (rule engine, demo dataset) is followed with the CLI's ``follow`` (0.1 s ticks), alternately without the
follower, with it as the CLI uses it (each history read at most every 0.5 s, 4 reads/s in all), and with it unbounded
(every history at every tick, through boto3 and moto's response serialiser), in one runtime with fast waits. Reference, not a gate: the bounded follower's median
wall time within 1.05x of none.

Prints the medians, the ratios, history reads per run, the median time of one read (both transports) and the share
of a run's wall time spent inside the bounded follower's polls (a figure the machine's load does not blur); its last line is
``poll_share=… waits_slowdown=… unbounded_slowdown=… history_calls_per_run=… history_read_ms_p50=… local_read_ms_p50=…``.
Usage: ``python bench/progress_waits.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time


def timed(fn, spent: list[float]):
    """``fn`` that adds its own wall time to ``spent[0]``."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["STEPCREW_HOME"] = home
        from rich.console import Console

        from stepcrew.cli import Progress, follow
        from stepcrew.crew import load_crew
        from stepcrew.data import DEMO_DATASET, DEMO_GOAL
        from stepcrew.local.runtime import LocalRuntime
        from moto.core import DEFAULT_ACCOUNT_ID

        from stepcrew.progress_waits import LOCAL_PAGE, ExecutionWaits, LocalHistoryClient, for_run
        from stepcrew.service import create_run, start_run
        from stepcrew.models import RunRequest
        from stepcrew.tools.datasets import dataset_uri

        walls: dict[str, list[float]] = {"none": [], "bounded": [], "unbounded": []}
        calls: list[int] = []
        reads_ms: list[float] = []
        local_reads_ms: list[float] = []
        poll_share: list[float] = []
        spent = [0.0]  # seconds inside ExecutionWaits.poll during the current run
        with LocalRuntime(fast_waits=True) as rt:
            crew = load_crew("default")
            for i in range(args.repeat * 3 + 1):
                variant = ("none", "bounded", "unbounded")[i % 3]
                request = RunRequest(goal=DEMO_GOAL, data=dataset_uri(DEMO_DATASET), provider="rule", memory="off")
                t0 = time.perf_counter()
                run = start_run(create_run(request, crew, rt.store), rt.store, rt)
                waits = None
                if variant == "bounded":
                    waits = for_run(rt.store, run.run_id, rt)
                    waits.poll = timed(waits.poll, spent)
                elif variant == "unbounded":
                    waits = ExecutionWaits(rt.sfn, lambda: rt.store.get_run(run.run_id).execution_arn,
                                           min_interval_s=0.0, max_calls_per_s=1e9)
                follow(rt.store, run.run_id, lambda: rt.store.get_run(run.run_id).status.terminal,
                       Progress(Console(file=io.StringIO())), 300, waits=waits)
                wall = time.perf_counter() - t0
                if i == 0:
                    continue  # warm-up (handlers' cold imports)
                walls[variant].append(wall)
                if variant == "bounded":
                    calls.append(waits.calls)
                    poll_share.append(spent.pop() / wall)
                spent[:] = [0.0]
                rt.wait(rt.store.get_run(run.run_id).execution_arn)
                if variant == "unbounded":
                    arn = rt.store.get_run(run.run_id).execution_arn
                    t1 = time.perf_counter()
                    rt.sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=100)
                    reads_ms.append((time.perf_counter() - t1) * 1000)
                    local = LocalHistoryClient(rt.sfn, DEFAULT_ACCOUNT_ID, rt.region)
                    t1 = time.perf_counter()
                    local.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=LOCAL_PAGE)
                    local_reads_ms.append((time.perf_counter() - t1) * 1000)
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"demo run followed: none {med['none']:.2f} s, bounded {med['bounded']:.2f} s, unbounded "
          f"{med['unbounded']:.2f} s (medians of {args.repeat})")
    slow, unbounded = med["bounded"] / med["none"], med["unbounded"] / med["none"]
    print(f"bounded / none = {slow:.3f}x (reference <= 1.05x); unbounded / none = {unbounded:.3f}x")
    api_ms, local_ms = statistics.median(reads_ms), statistics.median(local_reads_ms)
    print(f"history reads per run (bounded): {statistics.median(calls):.0f}; one read of a finished run's history: "
          f"{api_ms:.1f} ms through boto3 + moto's serialiser, {local_ms:.2f} ms for a {LOCAL_PAGE}-event page of "
          "LocalHistoryClient")
    share = statistics.median(poll_share)
    print(f"time inside the bounded follower's polls: {share * 100:.2f}% of the run's wall time")
    print(f"poll_share={share:.4f} waits_slowdown={slow:.3f} unbounded_slowdown={unbounded:.3f} "
          f"history_calls_per_run={statistics.median(calls):.0f} history_read_ms_p50={api_ms:.1f} "
          f"local_read_ms_p50={local_ms:.2f}")


if __name__ == "__main__":
    main()
