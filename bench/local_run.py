"""Benchmark of the local runtime. References, not gates: demo <= 3 s, <= 15 ms per Task, every handler's cold
import <= 1.5x ``import boto3``.

Prints:
1. the demo run's wall time (in-process: local runtime up, demo run created, executed to a terminal status);
2. the overhead per Task state: an execution of N ``lambda:invoke`` Tasks (no-op handler through the hook) against
   an execution of N Pass states, as a ratio and as milliseconds per Task over the Pass chain;
3. each handler's cold import time in fresh interpreters (median of ``--repeat``) as a ratio to ``import boto3``.

Its last line is ``demo_run_s=… task_overhead_ms=… handler_init_ratio_max=…``.
Usage: ``python bench/local_run.py [--chain 20] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo_run_s() -> tuple[float, str]:
    from stepcrew.crew import load_crew
    from stepcrew.data import DEMO_DATASET, DEMO_GOAL
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.models import RunRequest
    from stepcrew.service import create_run, start_run
    from stepcrew.tools.datasets import dataset_uri

    t0 = time.perf_counter()
    with LocalRuntime() as rt:
        request = RunRequest(goal=DEMO_GOAL, data=dataset_uri(DEMO_DATASET), provider="rule")
        run = start_run(create_run(request, load_crew("default"), rt.store), rt.store, rt)
        status = rt.wait(run.execution_arn, timeout_s=300)
    elapsed = time.perf_counter() - t0
    if status != "SUCCEEDED":
        raise RuntimeError(f"bench demo run ended {status}")
    return elapsed, status


def _chain(n: int, kind: str, fn_arn: str) -> str:
    states = {}
    for i in range(n):
        name, nxt = f"S{i}", f"S{i + 1}"
        state = ({"Type": "Pass"} if kind == "pass" else
                 {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Parameters": {"FunctionName": fn_arn, "Payload.$": "$"}, "ResultSelector": {"i.$": "$.Payload.i"}})
        state.update({"End": True} if i == n - 1 else {"Next": nxt})
        states[name] = state
    return json.dumps({"StartAt": "S0", "States": states})


def task_overhead(n: int, repeat: int) -> tuple[float, float]:
    """(ms per Task over a Pass, ratio Task chain / Pass chain), medians over ``repeat`` executions."""
    from stepcrew.local.runtime import LocalRuntime

    with LocalRuntime() as rt:
        rt.register_handler("finalize", lambda event, context: {"i": 1})  # any mapped function name works
        fn_arn = rt.function_arn("finalize")
        role = "arn:aws:iam::123456789012:role/bench"
        arns = {kind: rt.sfn.create_state_machine(name=f"bench-{kind}", roleArn=role,
                                                  definition=_chain(n, kind, fn_arn))["stateMachineArn"]
                for kind in ("pass", "task")}
        times: dict[str, list[float]] = {"pass": [], "task": []}
        for i in range(repeat + 1):  # the first round warms up
            for kind, arn in arns.items():
                t0 = time.perf_counter()
                ex = rt.sfn.start_execution(stateMachineArn=arn, name=f"{kind}-{i}", input="{}")["executionArn"]
                status = rt.wait(ex, timeout_s=120, poll_s=0.005)
                if status != "SUCCEEDED":
                    raise RuntimeError(f"bench {kind} chain ended {status}")
                if i:
                    times[kind].append(time.perf_counter() - t0)
    t_pass, t_task = statistics.median(times["pass"]), statistics.median(times["task"])
    return (t_task - t_pass) / n * 1000, t_task / t_pass


def _cold_import(code: str, env: dict[str, str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def handler_init_ratios(repeat: int) -> dict[str, float]:
    from stepcrew.wiring import FUNCTIONS

    env = {**os.environ, "STEPCREW_TABLE_NAME": "bench", "STEPCREW_STAGE": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "POWERTOOLS_SERVICE_NAME": "bench", "POWERTOOLS_METRICS_NAMESPACE": "bench",
           "STEPCREW_RUN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "POWERTOOLS_TRACE_DISABLED": "true"}
    base = _cold_import("import time; t=time.perf_counter(); import boto3; print(time.perf_counter()-t)", env, repeat)
    ratios = {}
    for name, spec in FUNCTIONS.items():
        code = ("import time, importlib.util as u; t=time.perf_counter(); "
                f"s=u.spec_from_file_location('app', {str(spec.folder / 'app.py')!r}); m=u.module_from_spec(s); "
                "s.loader.exec_module(m); print(time.perf_counter()-t)")
        ratios[name] = _cold_import(code, env, repeat) / base
    print(f"import boto3 (fresh interpreter, median of {repeat}): {base * 1000:.0f} ms")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=int, default=20, help="states per chain (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["STEPCREW_HOME"] = home  # for every measurement (and the child interpreters): never ~/.stepcrew
        demo_s, status = demo_run_s()
        print(f"demo run: {demo_s:.2f} s ({status}); reference <= 3 s -> ratio {demo_s / 3:.2f}")
        overhead_ms, ratio = task_overhead(args.chain, args.repeat)
        print(f"task overhead: {overhead_ms:.1f} ms per Task over a Pass state ({args.chain}-state chains; Task "
              f"chain / Pass chain = {ratio:.2f}x); reference <= 15 ms -> ratio {overhead_ms / 15:.2f}")
        ratios = handler_init_ratios(args.repeat)
    for name, r in sorted(ratios.items(), key=lambda kv: -kv[1]):
        print(f"  cold import {name:<24} {r:5.2f}x import boto3{'  (over the 1.5x reference)' if r > 1.5 else ''}")
    print(f"demo_run_s={demo_s:.2f} task_overhead_ms={overhead_ms:.1f} "
          f"handler_init_ratio_max={max(ratios.values()):.2f}")


if __name__ == "__main__":
    main()
