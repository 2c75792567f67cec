"""Benchmark of the local runtime. References, not gates (issue "Lean by design"): demo <= 3 s on a quiet machine,
local runtime start-up <= 0.5 s, <= 5 ms per Task over a Pass state, every handler's cold import <= 1.5x
``import boto3``.

Prints:
0. the local runtime's start-up: a fresh interpreter importing :mod:`stepcrew.local.runtime` and entering
   ``LocalRuntime()`` (moto up, table, bucket, functions and state machines created), median of ``--repeat``, and
   the part of it that is the ``with`` alone;
1. the demo run's wall time (in-process: local runtime up, demo run created, executed to a terminal status);
2. the overhead per Task state: an execution of N ``lambda:invoke`` Tasks (no-op handler through the hook) against
   an execution of N Pass states, as a ratio and as milliseconds per Task over the Pass chain;
3. each handler's cold import (``functions/<name>/app.py`` run as a module, settings validated, clients and stores
   built: what a Lambda init runs) as a ratio to ``import boto3``. Each sample is a fresh interpreter, timed from
   inside it (interpreter start-up excluded on both sides). The boto3 baseline is interleaved with every handler
   (baseline, handler, handler, baseline, ... so neither always runs first) and each handler is divided by the
   median of its OWN baselines: one noisy baseline cannot swing every ratio. Medians of ``--import-repeat`` (>= 5).

Its last line is ``startup_s=… demo_run_s=… task_overhead_ms=… handler_init_ratio_max=…`` (with ``--imports-only``:
``boto3_import_ms=… handler_init_ratio_max=…``; with ``--no-imports`` the ratio is left out).
Usage: ``python bench/local_run.py [--chain 20] [--repeat 3] [--import-repeat 5] [--imports-only | --no-imports]``.
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


_STARTUP = """
import time
t0 = time.perf_counter()
from stepcrew.local.runtime import LocalRuntime
t1 = time.perf_counter()
with LocalRuntime():
    t2 = time.perf_counter()
print(f"{t2 - t0:.4f} {t2 - t1:.4f}")
"""


def startup_s(repeat: int) -> tuple[float, float]:
    """(import + enter, enter alone) of the local runtime in fresh interpreters: medians of ``repeat``."""
    totals, enters = [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _STARTUP], capture_output=True, text=True, check=True,
                             env={**os.environ, "STEPCREW_ALLOW_MODEL_REQUESTS": "0"}).stdout.split()
        totals.append(float(out[-2]))
        enters.append(float(out[-1]))
    return statistics.median(totals), statistics.median(enters)


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


#: The handlers' environment: the variables the tests give handlers (tests/unit/domain/test_domain_handlers.py,
#: tests/unit/api/test_handler.py) plus tracing disabled, fake credentials and a region, as on a Lambda.
HANDLER_ENV = {"STEPCREW_TABLE_NAME": "stepcrew-runs", "STEPCREW_STAGE": "test",
               "POWERTOOLS_SERVICE_NAME": "stepcrew-bench", "POWERTOOLS_METRICS_NAMESPACE": "stepcrew-bench",
               "STEPCREW_EVENT_BUS": "default", "STEPCREW_GUARD_BACKEND": "local",
               "STEPCREW_RUN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
               "POWERTOOLS_TRACE_DISABLED": "true"}
BOTO3_CODE = "import time; t=time.perf_counter(); import boto3; print(time.perf_counter()-t)"


def _handler_code(app: Path) -> str:
    return ("import time, importlib.util as u; t=time.perf_counter(); "
            f"s=u.spec_from_file_location('app', {str(app)!r}); m=u.module_from_spec(s); "
            "s.loader.exec_module(m); print(time.perf_counter()-t)")


def _sample(code: str, env: dict[str, str]) -> float:
    """Seconds the code reports, run in a fresh interpreter. Raises RuntimeError with the child's last stderr line."""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"cold import failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(out.stdout.strip().splitlines()[-1])


def handler_init_ratios(repeat: int) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(ratio per handler, handler median seconds, its own boto3 baseline median seconds), ``repeat`` samples each.
    Rounds go over every handler (so slow drift of the machine spreads over all of them); within a round each
    handler is paired with a fresh baseline, alternating which of the two runs first."""
    from stepcrew.wiring import FUNCTIONS

    env = {**os.environ, **HANDLER_ENV}
    handler_s: dict[str, list[float]] = {name: [] for name in FUNCTIONS}
    base_s: dict[str, list[float]] = {name: [] for name in FUNCTIONS}
    for i in range(repeat):
        for j, (name, spec) in enumerate(FUNCTIONS.items()):
            code = _handler_code(spec.folder / "app.py")
            if (i + j) % 2:
                handler_s[name].append(_sample(code, env))
                base_s[name].append(_sample(BOTO3_CODE, env))
            else:
                base_s[name].append(_sample(BOTO3_CODE, env))
                handler_s[name].append(_sample(code, env))
    med_h = {name: statistics.median(v) for name, v in handler_s.items()}
    med_b = {name: statistics.median(v) for name, v in base_s.items()}
    return {name: med_h[name] / med_b[name] for name in FUNCTIONS}, med_h, med_b


def print_import_sweep(repeat: int) -> tuple[float, float]:
    """Run the sweep and print one line per handler, worst first. Returns (max ratio, median boto3 import s)."""
    ratios, med_h, med_b = handler_init_ratios(repeat)
    base = statistics.median(med_b.values())
    print(f"import boto3 (fresh interpreters, median of {repeat} per handler, interleaved): {base * 1000:.0f} ms "
          f"(per-handler baselines {min(med_b.values()) * 1000:.0f}-{max(med_b.values()) * 1000:.0f} ms)")
    for name, r in sorted(ratios.items(), key=lambda kv: -kv[1]):
        print(f"  cold import {name:<24} {med_h[name] * 1000:6.0f} ms / {med_b[name] * 1000:4.0f} ms = {r:5.2f}x "
              f"import boto3{'  (over the 1.5x reference)' if r > 1.5 else ''}")
    print(" ".join(f"ratio_{name}={r:.2f}" for name, r in ratios.items()))
    return max(ratios.values()), base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=int, default=20, help="states per chain (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="executions per chain measurement (default 3)")
    parser.add_argument("--import-repeat", type=int, default=5,
                        help="fresh interpreters per handler and per its baseline (default 5, at least 5)")
    parser.add_argument("--imports-only", action="store_true", help="only the handler import sweep (no demo)")
    parser.add_argument("--no-imports", action="store_true", help="everything but the handler import sweep")
    args = parser.parse_args()
    if args.import_repeat < 5:
        parser.error("--import-repeat must be at least 5")
    with tempfile.TemporaryDirectory() as home:
        os.environ["STEPCREW_HOME"] = home  # for every measurement (and the child interpreters): never ~/.stepcrew
        if args.imports_only:
            ratio_max, base = print_import_sweep(args.import_repeat)
            print(f"boto3_import_ms={base * 1000:.0f} handler_init_ratio_max={ratio_max:.2f}")
            return
        start_total, start_enter = startup_s(args.repeat)
        print(f"local runtime start-up: {start_total:.2f} s in a fresh interpreter (import {start_total - start_enter:.2f} s"
              f" + LocalRuntime() {start_enter:.2f} s); reference <= 0.5 s -> ratio {start_total / 0.5:.2f}")
        demo_s, status = demo_run_s()
        print(f"demo run: {demo_s:.2f} s ({status}); reference <= 3 s -> ratio {demo_s / 3:.2f}")
        overhead_ms, ratio = task_overhead(args.chain, args.repeat)
        print(f"task overhead: {overhead_ms:.1f} ms per Task over a Pass state ({args.chain}-state chains; Task "
              f"chain / Pass chain = {ratio:.2f}x); reference <= 5 ms -> ratio {overhead_ms / 5:.2f}")
        if args.no_imports:
            print(f"startup_s={start_total:.2f} demo_run_s={demo_s:.2f} task_overhead_ms={overhead_ms:.1f}")
            return
        ratio_max, _ = print_import_sweep(args.import_repeat)
    print(f"startup_s={start_total:.2f} demo_run_s={demo_s:.2f} task_overhead_ms={overhead_ms:.1f} "
          f"handler_init_ratio_max={ratio_max:.2f}")


if __name__ == "__main__":
    main()
