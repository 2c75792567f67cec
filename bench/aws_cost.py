"""AWS cost of one demo run, LLM tokens excluded (issue 11 part 6). A reference, not a gate: the issue measured
$0.00194 per run and targets <= $0.0005.

Method: the demo goal (``stepcrew demo``: the default crew, the bundled dataset, the offline rule engine) runs
in-process on the local runtime (:class:`stepcrew.local.runtime.LocalRuntime`: the real ASL and handlers under moto),
each run in a fresh runtime, like ``bench/local_run.py`` (fast waits: Retry intervals shortened, which changes no
count unless a failure depends on timing). Whatever ``statemachines/*.asl.json`` holds at run time is what runs and
is counted: no state count is written here. Counting rules (with their AWS sources) are in
``bench/aws_cost_counters.py``:

- Step Functions (Standard): transitions = every ``*StateEntered`` event + every retry (a Task's ``TaskScheduled``
  after its first), from ``get_execution_history`` of the run execution and of every child (agent-loop) execution.
- Lambda: requests = every Lambda Task invocation in those histories (retries included). The demo path (the CLI)
  writes the run and starts its execution itself: no API Lambda; ``POST /runs`` would add one api request (printed
  apart). Duration of each invocation = its measured wall time here (warm: handler modules are imported before the
  run; init not counted; the meter's own reads subtracted) + ``--model-latency-ms`` per model call it made (calls
  into the engine: the offline rule engine answers at once, a real model does not), rounded up to 1 ms as Lambda
  bills; GB-s = that x the function's MemorySize from the synthesized CDK template (architecture from the template
  too: the matching price).
- DynamoDB (on-demand): WRU/RRU counted per call on every DynamoDB client the run's code builds (botocore events of
  boto3's default session), item sizes read from the table before/after each write.
- Express alternative for the child executions: per child, 1 request + its measured duration (start to stop here, +
  the model latency of its model calls), rounded up to 100 ms, x 64 MB (the smallest billed memory chunk; the
  definition and payloads of an agent loop are far below it); the children's Standard transitions then drop.

``--model-latency-ms`` default 0: the platform floor (what the run costs with an instant model); the bench also
prints what each second of model latency per model call adds, so any latency can be priced from one run.

Prices (:data:`PRICES`): from /work/shared/FACTS.md, "reported, from AWS pricing pages as of late 2025" (us-east-1,
first tier), recorded there on 2026-12-01: re-check before quoting. Not counted: S3 (the demo reads a local file),
EventBridge, CloudWatch Logs/metrics, X-Ray, API Gateway, Secrets Manager, data transfer, free tiers.

Approximate: local handler wall times (moto answers AWS calls in-process, faster or slower than AWS), number sizes
(the docs' own approximation), item sizes under concurrent writes to one item, the Express memory (64 MB assumed).

The last line is ``usd_per_run=… transitions=… lambda_requests=… wru=… rru=… usd_express_children=…`` (per-run
averages over ``--runs``). Exit 0; 1 if a run does not reach SUCCEEDED (no figures then).
Usage: ``python bench/aws_cost.py [--runs 1] [--model-latency-ms 0] [--refresh-synth]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aws_cost_counters as C

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_USD = 0.00194  # issue 11 "Why": the demo run measured before the issue
TARGET_USD = 0.0005  # issue 11 "Done when"
PRICES_SOURCE = ("/work/shared/FACTS.md 'Prices (reported, from AWS pricing pages as of late 2025)', recorded "
                 "2026-12-01; us-east-1 first tier")
PRICES = {
    "sfn_transition": 0.025 / 1000,  # Standard, per state transition
    "express_request": 1.00 / 1e6,
    "express_gb_s": 0.00001667,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": {"arm64": 0.0000133334, "x86_64": 0.0000166667},
    "wru": 0.625 / 1e6,
    "rru": 0.125 / 1e6,
}
EXPRESS_MEMORY_MB = 64
MODEL_METHODS = ("plan", "act", "synthesize", "improve", "review", "extract_memory")


# ------------------------------------------------------------------------------------------------ template facts
_SYNTH_CODE = r"""
import json, os, sys, tempfile, warnings
sys.path.insert(0, sys.argv[1])
from stepcrew_infra.stack import build_app
with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
    warnings.simplefilter("ignore")
    app, stack = build_app(outdir=out, env={}, nag=False)
    tpl = json.loads(json.dumps(app.synth().get_stack_by_name(stack.stack_name).template))
res = tpl["Resources"].values()
facts = {
    "functions": {r["Properties"]["FunctionName"]: {"memory_mb": r["Properties"].get("MemorySize", 128),
                                                    "arch": (r["Properties"].get("Architectures") or ["x86_64"])[0]}
                  for r in res if r["Type"] == "AWS::Lambda::Function"},
    "state_machines": {r["Properties"].get("StateMachineName", "?"): r["Properties"].get("StateMachineType", "STANDARD")
                       for r in res if r["Type"] == "AWS::StepFunctions::StateMachine"},
    "tables": [{"keys": [k["AttributeName"] for k in r["Properties"]["KeySchema"]],
                "gsis": r["Properties"].get("GlobalSecondaryIndexes", []),
                "billing": r["Properties"].get("BillingMode")} for r in res if r["Type"] == "AWS::DynamoDB::Table"],
}
print("FACTS=" + json.dumps(facts))
"""


def _source_hash() -> str:
    h = hashlib.sha256()
    files = [p for p in sorted((ROOT / "infra").rglob("*")) if p.is_file() and "cdk.out" not in p.parts
             and "__pycache__" not in p.parts]
    package = ROOT / "layers/stepcrew/python/stepcrew"
    files += [package / "wiring.py", package / "store/schema.py"]
    for p in files:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def template_facts(refresh: bool) -> tuple[dict[str, Any], str]:
    """Lambda MemorySize/architecture, state machine types and the table's keys/GSIs of the synthesized stack (the
    ``dev`` stage, every context default), cached in the temp folder keyed on the infra sources. Falls back to
    :data:`stepcrew.wiring.FUNCTIONS` (and says so) when the synth fails."""
    cache = Path(tempfile.gettempdir()) / f"stepcrew-aws-cost-template-{_source_hash()}.json"
    if cache.is_file() and not refresh:
        return json.loads(cache.read_text()), f"synthesized CDK template (cached {cache})"
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    for var in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION", "STEPCREW_STAGE"):
        env.pop(var, None)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _SYNTH_CODE, str(ROOT / "infra")], capture_output=True, text=True,
                         env=env, check=False, timeout=600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("FACTS=")), None)
    if out.returncode or line is None:
        from stepcrew import wiring
        from stepcrew.store import schema

        reason = (out.stderr.strip().splitlines() or ["?"])[-1][:160]
        facts = {"functions": {f"stepcrew-dev-{n}": {"memory_mb": s.memory_mb, "arch": "arm64"}
                               for n, s in wiring.FUNCTIONS.items()},
                 "state_machines": {}, "tables": [{"keys": [schema.PK, schema.SK], "gsis": [{
                     "IndexName": schema.GSI1_NAME, "KeySchema": [{"AttributeName": schema.GSI1_PK},
                                                                  {"AttributeName": schema.GSI1_SK}],
                     "Projection": {"ProjectionType": "ALL"}}], "billing": "PAY_PER_REQUEST"}]}
        return facts, f"stepcrew.wiring.FUNCTIONS (CDK synth failed: {reason}; arm64 assumed)"
    facts = json.loads(line.removeprefix("FACTS="))
    cache.write_text(json.dumps(facts))
    return facts, f"synthesized CDK template (synth {time.perf_counter() - t0:.0f} s, cached in {cache})"


def function_specs(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Short function name (a key of :data:`stepcrew.wiring.FUNCTIONS`) -> {memory_mb, arch}."""
    from stepcrew import wiring

    out = {}
    for full, spec in facts["functions"].items():
        for name in wiring.FUNCTIONS:
            if full.endswith(f"-{name}") and full.count("-") == 2 + name.count("-"):
                out[name] = spec
    return out


# ------------------------------------------------------------------------------------------------ one run
class _Invocations:
    """Timed handler invocations (thread-safe): per invocation its function, payload, wall ms and model calls."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.local = threading.local()

    def wrap(self, name: str, real: Any) -> Any:
        def handler(event: Any, context: Any) -> Any:
            self.local.model_calls = 0
            t0, m0 = time.perf_counter(), C.meter_seconds()
            try:
                return real(event, context)
            finally:  # the meter's own reads are not the handler's time
                metered = (C.meter_seconds() - m0) * 1000
                ms = (time.perf_counter() - t0) * 1000 - metered
                with self.lock:
                    self.records.append({"name": name, "payload": json.dumps(event, sort_keys=True), "ms": ms,
                                         "meter_ms": metered,
                                         "model_calls": getattr(self.local, "model_calls", 0)})
        return handler

    def count_model_call(self) -> None:
        self.local.model_calls = getattr(self.local, "model_calls", 0) + 1


def _patch_engine(inv: _Invocations) -> Any:
    """Count every engine call (one model call each on a real model) into the invocation running in this thread.
    Returns the undo function."""
    from stepcrew.engines.rules.engine import RuleEngine

    saved = {m: RuleEngine.__dict__.get(m) for m in MODEL_METHODS}
    for method in MODEL_METHODS:
        original = getattr(RuleEngine, method)

        def counted(self: Any, *a: Any, _original: Any = original, **kw: Any) -> Any:
            inv.count_model_call()
            return _original(self, *a, **kw)

        setattr(RuleEngine, method, counted)

    def undo() -> None:
        for method, value in saved.items():
            if value is None:
                delattr(RuleEngine, method)
            else:
                setattr(RuleEngine, method, value)
    return undo


def one_run(meter_box: dict[str, Any], schema: Any, proxy: _MeterProxy) -> dict[str, Any]:
    """Run the demo once in a fresh local runtime; return its histories, invocations and DynamoDB tally."""
    import boto3
    from stepcrew import wiring
    from stepcrew.crew import load_crew
    from stepcrew.data import DEMO_DATASET, DEMO_GOAL
    from stepcrew.local import hook
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.models import RunRequest
    from stepcrew.service import create_run, start_run
    from stepcrew.tools.datasets import dataset_uri

    inv = _Invocations()
    undo = _patch_engine(inv)
    try:
        with LocalRuntime(fast_waits=True) as rt:
            # moto's mock replaces boto3's default session: meter the one the runtime and handlers use now, and
            # the runtime's own client (built on enter, before this registration copied into new clients)
            if boto3.DEFAULT_SESSION is None:
                boto3.setup_default_session()
            for events in (boto3.DEFAULT_SESSION.events, rt.client("dynamodb").meta.events):
                events.register("before-parameter-build.dynamodb", proxy._before, unique_id="aws-cost-before")
                events.register("after-call.dynamodb", proxy._after, unique_id="aws-cost-after")
            shadow = boto3.session.Session().client("dynamodb", region_name=rt.region)  # unmetered
            meter = C.DynamoMeter(shadow, schema)
            for name in wiring.STATE_MACHINE_FUNCTIONS:  # imported now: the run's invocations are warm
                real = hook.resolve_handler(name)
                if real is not None:
                    rt.register_handler(name, inv.wrap(name, real))
            meter_box["meter"] = meter
            request = RunRequest(goal=DEMO_GOAL, data=dataset_uri(DEMO_DATASET), provider="rule")
            run = start_run(create_run(request, load_crew("default"), rt.store), rt.store, rt)
            status = rt.wait(run.execution_arn, timeout_s=300)
            meter_box["meter"] = None
            if status != "SUCCEEDED":
                raise RuntimeError(f"the demo run ended {status}")
            children = []
            pages = rt.sfn.get_paginator("list_executions").paginate(stateMachineArn=rt.state_machine_arn("agent"))
            for ex in (e for p in pages for e in p["executions"]):
                d = rt.sfn.describe_execution(executionArn=ex["executionArn"])
                ms = ((d.get("stopDate") or d["startDate"]) - d["startDate"]).total_seconds() * 1000
                children.append({"arn": ex["executionArn"], "ms": ms, "status": d["status"],
                                 "history": rt.execution_history(ex["executionArn"])})
            return {"run": rt.execution_history(run.execution_arn), "children": children,
                    "invocations": inv.records, "dynamo": meter.tally}
    finally:
        undo()


class _MeterProxy:
    """Registered once on boto3's default session; forwards to the meter of the run in progress (none between
    runs, so runtime set-up and teardown are not counted)."""

    def __init__(self, box: dict[str, Any]) -> None:
        self.box = box

    def _before(self, **kw: Any) -> None:
        if self.box.get("meter") is not None:
            self.box["meter"]._before(**kw)

    def _after(self, **kw: Any) -> None:
        if self.box.get("meter") is not None and "aws_cost_params" in kw.get("context", {}):
            self.box["meter"]._after(**kw)


# ------------------------------------------------------------------------------------------------ figures
def figures(result: dict[str, Any], specs: dict[str, dict[str, Any]], latency_ms: float) -> dict[str, float]:
    """Counts and USD of one run."""
    pool: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in result["invocations"]:
        pool[(r["name"], r["payload"])].append(r)
    all_ms = [r["ms"] for r in result["invocations"]] or [0.0]
    fallback = {"ms": sorted(all_ms)[len(all_ms) // 2], "model_calls": 0, "meter_ms": 0.0}
    unmatched = 0

    def lambda_part(history: list[dict]) -> dict[str, float]:
        nonlocal unmatched
        out = {"requests": 0, "gb_s": 0.0, "model_calls": 0, "model_gb_per_s": 0.0, "usd_gb_s": 0.0,
               "meter_ms": 0.0}
        for name, payload in C.lambda_invocations(history):
            short = name.removeprefix("stepcrew-local-")
            spec = specs.get(short, {"memory_mb": 128, "arch": "x86_64"})
            found = pool.get((short, json.dumps(payload, sort_keys=True)))
            rec = found.pop(0) if found else None
            if rec is None:
                unmatched += 1
                rec = fallback
            billed_ms = math.ceil(rec["ms"] + latency_ms * rec["model_calls"])
            gb = spec["memory_mb"] / 1024
            out["requests"] += 1
            out["gb_s"] += gb * billed_ms / 1000
            out["usd_gb_s"] += gb * billed_ms / 1000 * PRICES["lambda_gb_s"][spec["arch"]]
            out["model_calls"] += rec["model_calls"]
            out["meter_ms"] += rec["meter_ms"]
            out["model_gb_per_s"] += gb * rec["model_calls"] * PRICES["lambda_gb_s"][spec["arch"]]  # USD / 1 s
        return out

    run_entered, run_retries = C.transitions(result["run"])
    lam_run = lambda_part(result["run"])
    child_tr, express_usd, express_per_s = 0, 0.0, 0.0
    lam_children = {"requests": 0, "gb_s": 0.0, "model_calls": 0, "model_gb_per_s": 0.0, "usd_gb_s": 0.0,
                    "meter_ms": 0.0}
    child_ms = 0.0
    for child in result["children"]:
        entered, retries = C.transitions(child["history"])
        child_tr += entered + retries
        part = lambda_part(child["history"])
        for k in lam_children:
            lam_children[k] += part[k]
        ms = max(0.0, child["ms"] - part["meter_ms"])  # the meter's reads in its invocations are not its time
        child_ms += ms
        billed_ms = math.ceil((ms + latency_ms * part["model_calls"]) / 100) * 100
        express_usd += PRICES["express_request"] + EXPRESS_MEMORY_MB / 1024 * billed_ms / 1000 * PRICES["express_gb_s"]
        express_per_s += EXPRESS_MEMORY_MB / 1024 * part["model_calls"] * PRICES["express_gb_s"]
    tally = result["dynamo"]
    run_tr = run_entered + run_retries
    lam_req = lam_run["requests"] + lam_children["requests"]
    usd = {
        "sfn_run": run_tr * PRICES["sfn_transition"],
        "sfn_children": child_tr * PRICES["sfn_transition"],
        "lambda_requests": lam_req * PRICES["lambda_request"],
        "lambda_gb_s": lam_run["usd_gb_s"] + lam_children["usd_gb_s"],
        "wru": tally.wru * PRICES["wru"],
        "rru": tally.rru * PRICES["rru"],
    }
    return {
        **{f"usd_{k}": v for k, v in usd.items()},
        "usd_total": sum(usd.values()),
        "usd_express_children": sum(usd.values()) - usd["sfn_children"] + express_usd,
        "usd_express_only": express_usd,
        "transitions_run": run_tr, "retries_run": run_retries, "transitions_children": child_tr,
        "children": len(result["children"]), "lambda_requests": lam_req,
        "lambda_requests_children": lam_children["requests"],
        "gb_s": lam_run["gb_s"] + lam_children["gb_s"],
        "model_calls": lam_run["model_calls"] + lam_children["model_calls"],
        "usd_per_model_s": lam_run["model_gb_per_s"] + lam_children["model_gb_per_s"],
        "usd_per_model_s_express": express_per_s,
        "wru": tally.wru, "rru": tally.rru, "wru_gsi": sum(v for k, v in tally.wru_by_target.items() if k != "table"),
        "dynamo_calls": sum(tally.calls.values()), "largest_item": tally.largest_item,
        **{f"op_calls_{k}": v for k, v in tally.calls.items()},
        **{f"op_units_{k}": v for k, v in tally.units_by_op.items()}, "invocations_timed": len(result["invocations"]),
        "unmatched": unmatched, "child_ms": child_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="demo runs to average (default 1)")
    parser.add_argument("--model-latency-ms", type=float, default=0.0,
                        help="wall time added to every model call (default 0: the platform floor)")
    parser.add_argument("--refresh-synth", action="store_true", help="synthesize the CDK template again")
    args = parser.parse_args()
    if args.runs < 1 or args.model_latency_ms < 0:
        parser.error("--runs must be >= 1 and --model-latency-ms >= 0")

    facts, facts_source = template_facts(args.refresh_synth)
    specs = function_specs(facts)
    table = facts["tables"][0]
    gsis = [C.Gsi.from_cfn(g) for g in table["gsis"]]
    keys = tuple(table["keys"])

    def schema(_table_name: str) -> tuple[tuple[str, ...], list[C.Gsi]]:
        return keys, gsis

    box: dict[str, Any] = {"meter": None}
    proxy = _MeterProxy(box)

    rows = []
    with tempfile.TemporaryDirectory() as home:
        os.environ["STEPCREW_HOME"] = home  # never ~/.stepcrew
        for _ in range(args.runs):
            try:
                rows.append(figures(one_run(box, schema, proxy), specs, args.model_latency_ms))
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
    names = {k for r in rows for k in r}
    avg = {k: sum(r.get(k, 0) for r in rows) / len(rows) for k in sorted(names)}
    arches = sorted({s["arch"] for s in specs.values()})
    types = ", ".join(f"{n}={t}" for n, t in sorted(facts["state_machines"].items())) or "not in the template facts"
    total = avg["usd_total"]

    def pct(x: float) -> str:
        return f"{100 * x / total:5.1f} %" if total else "  -  "

    print(f"demo run AWS cost, LLM tokens excluded: {args.runs} run(s) averaged, model latency "
          f"{args.model_latency_ms:g} ms per model call")
    print(f"memory/architecture from {facts_source}; Lambda architecture {'/'.join(arches)}; state machines {types}")
    print(f"prices: {PRICES_SOURCE}")
    def row(label: str, figure: str, usd: float) -> None:
        print(f"  {label:<32}{figure:<40}${usd:.7f}  {pct(usd)}")

    row("Step Functions run execution", f"{avg['transitions_run']:.1f} transitions ({avg['retries_run']:.1f} retries)",
        avg["usd_sfn_run"])
    row(f"Step Functions children ({avg['children']:.0f})", f"{avg['transitions_children']:.1f} transitions",
        avg["usd_sfn_children"])
    row("Lambda requests", f"{avg['lambda_requests']:.1f} ({avg['lambda_requests_children']:.1f} in children)",
        avg["usd_lambda_requests"])
    row("Lambda duration", f"{avg['gb_s']:.3f} GB-s", avg["usd_lambda_gb_s"])
    row("DynamoDB writes", f"{avg['wru']:.1f} WRU ({avg['wru_gsi']:.1f} of them on GSIs)", avg["usd_wru"])
    row("DynamoDB reads", f"{avg['rru']:.1f} RRU", avg["usd_rru"])
    ops = sorted((k.removeprefix("op_calls_") for k in avg if k.startswith("op_calls_")),
                 key=lambda op: -avg.get(f"op_units_{op}", 0))
    print("    DynamoDB by operation: " + ", ".join(
        f"{op} {avg[f'op_calls_{op}']:.0f} calls {avg.get(f'op_units_{op}', 0):.1f} "
        f"{'WRU' if op in ('PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems') else 'RRU'}"
        for op in ops) + f"; largest item written {avg['largest_item'] / 1024:.1f} KB")
    print(f"  {'total':<72}${total:.7f}  "
          f"= {total / REFERENCE_USD:.2f}x the issue's ${REFERENCE_USD} reference, {total / TARGET_USD:.2f}x the "
          f"${TARGET_USD} target")
    print(f"model calls: {avg['model_calls']:.1f} per run; each second of model latency per model call adds "
          f"${avg['usd_per_model_s']:.7f} of Lambda duration per run (Express children: +"
          f"${avg['usd_per_model_s_express']:.7f} more)")
    print(f"children as Express (1 request + measured duration {avg['child_ms'] / max(avg['children'], 1):.0f} ms "
          f"each on average, rounded up to 100 ms, x {EXPRESS_MEMORY_MB} MB): children ${avg['usd_express_only']:.7f} "
          f"instead of ${avg['usd_sfn_children']:.7f}; run total ${avg['usd_express_children']:.7f} = "
          f"{avg['usd_express_children'] / TARGET_USD:.2f}x the target")
    api = specs.get("api", {"memory_mb": 512, "arch": "arm64"})
    print(f"not on the demo path: POST /runs would add 1 api Lambda request (${PRICES['lambda_request']:.7f}) + "
          f"${api['memory_mb'] / 1024 * 0.1 * PRICES['lambda_gb_s'][api['arch']]:.7f} per 100 ms of it "
          f"({api['memory_mb']} MB)")
    print(f"checks: {avg['dynamo_calls']:.0f} DynamoDB data calls metered; {avg['invocations_timed']:.0f} handler "
          f"invocations timed; {avg['unmatched']:.0f} history invocations without a timed match (median used)")
    print(f"usd_per_run={total:.7f} transitions={avg['transitions_run'] + avg['transitions_children']:.0f} "
          f"lambda_requests={avg['lambda_requests']:.0f} wru={avg['wru']:.0f} rru={avg['rru']:.1f} "
          f"usd_express_children={avg['usd_express_children']:.7f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
