"""The ONE mapping from ASL ``${...}`` substitution keys to functions and state machines.

Both the CDK stack (``infra/``) and the local runtime (:mod:`stepcrew.local.runtime`) build their
``definition_substitutions`` from :data:`SUBSTITUTIONS` and :func:`substitutions`, so the two cannot drift; a
test fails if an ASL file holds a placeholder that is not mapped here, or if a mapped function has no folder
under ``functions/``.

Every Lambda function is described once in :data:`FUNCTIONS` (folder ``functions/<name>/app.py``, handler
``app.handler``), with what it touches, so the CDK stack can grant each role only that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: Repository root when running from a checkout (``layers/stepcrew/python/stepcrew/wiring.py`` -> root).
REPO_ROOT = Path(__file__).resolve().parents[4]


def _find_root() -> Path:
    """The folder holding ``statemachines/`` and ``functions/``: the checkout, or the copy shipped inside the
    package (``stepcrew/_bundle``) when installed non-editable."""
    for candidate in (REPO_ROOT, Path(__file__).resolve().parent / "_bundle"):
        if (candidate / "statemachines").is_dir() and (candidate / "functions").is_dir():
            return candidate
    return REPO_ROOT


ROOT = _find_root()
STATEMACHINES_DIR = ROOT / "statemachines"
FUNCTIONS_DIR = ROOT / "functions"


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function. ``touches_table``: reads/writes the run table; ``reads_data``: reads datasets
    (S3 on AWS); ``calls_models``: calls LLM providers (needs provider secrets); ``starts_runs``: starts
    executions of the run state machine (the API); ``emits_events``: publishes EventBridge events to the default bus
    (the approval function: ``stepcrew.run.needs_review``); ``caches_results``: a deterministic tool that reads and
writes its results in the tool-result cache (``CACHE#<tenant>`` items of the run table only). Memory in MB, timeout
in seconds (Lambda max 900)."""

    name: str
    description: str
    touches_table: bool = False
    reads_data: bool = False
    calls_models: bool = False
    starts_runs: bool = False
    emits_events: bool = False
    caches_results: bool = False
    #: ``reads_arguments``: a tool whose calls may come by reference (``Tool.arguments_by_reference``,
    #: stepcrew.tools.argrefs): it reads the run's META and conversation items (``RUN#*`` keys, read-only).
    reads_arguments: bool = False
    #: Memory (stepcrew.memory): ``screens`` = builds the PII guard in-process (the guard layer and
    #: ``STEPCREW_GUARD_BACKEND``); ``vector_index`` = what it does on the S3 Vectors index when the stage has one
    #: (``read``: QueryVectors/GetVectors; ``write``: also PutVectors/DeleteVectors; ``delete``: DeleteVectors only);
    #: ``invokes`` = functions it calls synchronously (``lambda:InvokeFunction``; the API -> memory).
    screens: bool = False
    #: ``sweeps_runs``: the deployed orphan sweep (stepcrew.domain.sweep): reads run records of every tenant (a Scan of
    #: GSI1 only) and the status of the run state machine's executions (``states:DescribeExecution`` only).
    sweeps_runs: bool = False
    #: ``embeds``: embeds texts (memory writes) without calling models: Bedrock InvokeModel on the Titan embeddings
    #: model only, and the embeddings environment (model callers have both anyway).
    embeds: bool = False
    #: ``isolated_network``: runs untrusted code (``run_python``): the CDK stack puts it in a VPC with isolated subnets
    #: only (no NAT, internet gateway or VPC endpoint) and a security group without egress (stepcrew_infra.network);
    #: only such a function may have it, and it must touch nothing else (every other flag False).
    isolated_network: bool = False
    #: ``writes_artifacts``: an operations tool (``export_results``): its exactly-once receipts in the run table
    #: (``RECEIPT#*`` partitions only) and its artifacts in the datasets bucket under ``<tenant>/runs/*/exports/``.
    writes_artifacts: bool = False
    #: ``publishes_notifications``: the ``notify`` operations tool: ``sns:Publish`` on the stack's notifications topic
    #: only (``STEPCREW_NOTIFY_TOPIC_ARN``) and its exactly-once receipts in the run table (``RECEIPT#*`` partitions).
    publishes_notifications: bool = False
    #: ``writes_charts``: the chart tool (``make_chart``): ``s3:PutObject`` on the artifacts bucket under
    #: ``<tenant>/runs/*/charts/`` only (no table, no read); ``STEPCREW_ARTIFACTS_BUCKET``.
    writes_charts: bool = False
    vector_index: Literal["", "read", "write", "delete"] = ""
    invokes: tuple[str, ...] = ()
    memory_mb: int = 512
    timeout_s: int = 60
    tool: str | None = None  # tool name when this function is a tool

    @property
    def folder(self) -> Path:
        return FUNCTIONS_DIR / self.name


FUNCTIONS: dict[str, FunctionSpec] = {f.name: f for f in [
    FunctionSpec("guard", "Guardrails: screens the input (marks the run RUNNING), tool output and the report",
                 touches_table=True, reads_data=True, memory_mb=1024),
    FunctionSpec("planner", "Planner role: goal -> validated DAG of sub-tasks (recalls the tenant's memory)",
                 touches_table=True, calls_models=True, timeout_s=300, vector_index="read"),
    FunctionSpec("manager", "Manager role (hierarchical / hybrid crews): assesses the last delegations, delegates "
                 "the next sub-task(s) or ends the loop", touches_table=True, calls_models=True, timeout_s=300),
    FunctionSpec("approval", "Stores the task token of a run waiting for a person (approval, review hand-off)",
                 touches_table=True, emits_events=True),
    FunctionSpec("agent", "Worker roles: one agent-loop turn (model call) of a sub-task", touches_table=True,
                 calls_models=True, timeout_s=300),
    FunctionSpec("synthesizer", "Synthesizer role: sub-task outputs -> report; improves it on feedback; proposes "
                 "a succeeded run's facts for memory",
                 touches_table=True, calls_models=True, timeout_s=300),
    FunctionSpec("reviewer", "Reviewer role: scores the report (accuracy, completeness, relevance)",
                 touches_table=True, calls_models=True, timeout_s=300),
    FunctionSpec("finalize", "Records the terminal status, usage and result of a run or sub-task",
                 touches_table=True),
    FunctionSpec("tool_calculator", "Tool: safe arithmetic expressions", tool="calculator", memory_mb=256,
                 timeout_s=10),
    FunctionSpec("tool_describe_dataset", "Tool: dataset schema and summary statistics (also profiles a run's "
                 "dataset before planning)", tool="describe_dataset",
                 reads_data=True, memory_mb=1024, timeout_s=60, caches_results=True),
    FunctionSpec("tool_query_dataset", "Tool: read-only SQL over CSV/Parquet with DuckDB", tool="query_dataset",
                 reads_data=True, memory_mb=1024, timeout_s=60, caches_results=True),
    FunctionSpec("memory", "Memory: a finished run -> episode and facts; screened fact writes (POST /memory)",
                 touches_table=True, embeds=True, screens=True, vector_index="write", memory_mb=1024,
                 timeout_s=60),
    FunctionSpec("tool_remember", "Tool: remember a fact for the tenant (written at the run's end, screened)",
                 tool="remember", memory_mb=256, timeout_s=10),
    FunctionSpec("tool_write_section", "Tool: writes a report section in Markdown", tool="write_section",
                 reads_arguments=True, memory_mb=256, timeout_s=10),
    FunctionSpec("tool_run_python", "Tool: Python in a sandboxed child process; no data, table or secret access; "
                 "isolated VPC, no egress; 1024 MB (the child's 512 MiB cap plus the parent), 45 s (the 30 s "
                 "timeout_s cap plus start and teardown)", tool="run_python", isolated_network=True,
                 memory_mb=1024, timeout_s=45),
    FunctionSpec("tool_export_results", "Tool: saves a table as CSV/JSON under the run's tenant prefix; dry run "
                 "unless the run allows side effects; exactly once (receipts)", tool="export_results",
                 writes_artifacts=True, memory_mb=256, timeout_s=30),
    FunctionSpec("tool_notify", "Tool: publishes a short notification to the stack's notifications topic (SNS FIFO); "
                 "dry run unless the run allows side effects; exactly once (receipts + deduplication id)",
                 tool="notify", publishes_notifications=True, memory_mb=256, timeout_s=30),
    FunctionSpec("tool_make_chart", "Tool: renders a chart to PNG (matplotlib Agg) under the run's charts/ artifacts; "
                 "1024 MB (matplotlib's import and rendering)", tool="make_chart", writes_charts=True, memory_mb=1024,
                 timeout_s=30),
    FunctionSpec("api", "HTTP API: start, list and show runs; approvals; memory", touches_table=True,
                 starts_runs=True, vector_index="delete", invokes=("memory",), timeout_s=29),
    FunctionSpec("sweeper", "Scheduled sweep: open runs whose execution ended without a terminal record end FAILED",
                 touches_table=True, sweeps_runs=True, memory_mb=256, timeout_s=300),
]}

#: The state machines: name -> ASL file (Standard type for both; see README "Why both are Standard").
STATE_MACHINES: dict[str, Path] = {
    "run": STATEMACHINES_DIR / "run.asl.json",
    "agent": STATEMACHINES_DIR / "agent.asl.json",
}


@dataclass(frozen=True)
class Target:
    kind: Literal["function", "state_machine"]
    name: str


#: ASL substitution key -> the function or state machine whose ARN replaces ``${key}``.
SUBSTITUTIONS: dict[str, Target] = {
    "GuardFunctionArn": Target("function", "guard"),
    "PlannerFunctionArn": Target("function", "planner"),
    "ApprovalFunctionArn": Target("function", "approval"),
    "ManagerFunctionArn": Target("function", "manager"),
    "AgentFunctionArn": Target("function", "agent"),
    "SynthesizerFunctionArn": Target("function", "synthesizer"),
    "ReviewerFunctionArn": Target("function", "reviewer"),
    "FinalizeFunctionArn": Target("function", "finalize"),
    "CalculatorToolFunctionArn": Target("function", "tool_calculator"),
    "DescribeDatasetToolFunctionArn": Target("function", "tool_describe_dataset"),
    "QueryDatasetToolFunctionArn": Target("function", "tool_query_dataset"),
    "WriteSectionToolFunctionArn": Target("function", "tool_write_section"),
    "RememberToolFunctionArn": Target("function", "tool_remember"),
    "RunPythonToolFunctionArn": Target("function", "tool_run_python"),
    "ExportResultsToolFunctionArn": Target("function", "tool_export_results"),
    "NotifyToolFunctionArn": Target("function", "tool_notify"),
    "MakeChartToolFunctionArn": Target("function", "tool_make_chart"),
    "MemoryFunctionArn": Target("function", "memory"),
    "AgentStateMachineArn": Target("state_machine", "agent"),
}

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def placeholders(state_machine: str) -> set[str]:
    """The ``${...}`` keys used by one ASL file."""
    return set(PLACEHOLDER.findall(STATE_MACHINES[state_machine].read_text()))


def substitutions(state_machine: str, function_arn: Callable[[str], str],
                  state_machine_arn: Callable[[str], str]) -> dict[str, str]:
    """``{key: arn}`` for the placeholders of one ASL file. ``function_arn(name)`` and
    ``state_machine_arn(name)`` are supplied by the caller (CDK tokens, or local ARNs).
    Raises KeyError naming any placeholder that :data:`SUBSTITUTIONS` does not map."""
    used = placeholders(state_machine)
    missing = sorted(used - SUBSTITUTIONS.keys())
    if missing:
        raise KeyError(f"{STATE_MACHINES[state_machine].name}: unmapped substitution(s): {', '.join(missing)}")
    out = {}
    for key in sorted(used):
        target = SUBSTITUTIONS[key]
        out[key] = function_arn(target.name) if target.kind == "function" else state_machine_arn(target.name)
    return out


def render(state_machine: str, values: dict[str, str]) -> str:
    """The ASL text with every ``${key}`` replaced (what CloudFormation does with DefinitionSubstitutions).
    Raises ValueError if a placeholder is left."""
    text = STATE_MACHINES[state_machine].read_text()
    text = PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    left = PLACEHOLDER.findall(text)
    if left:
        raise ValueError(f"unresolved substitution(s) in {state_machine}: {', '.join(sorted(set(left)))}")
    return text


#: Tool name -> function name. The agent ASL names each tool's function in its ``tool_functions`` constant (one
#: substitution per tool); the agent function hands every call out with it and the tool Map invokes it directly.
TOOL_FUNCTIONS: dict[str, str] = {f.tool: f.name for f in FUNCTIONS.values() if f.tool}


def tool_functions(function_arn: Callable[[str], str]) -> dict[str, str]:
    """``{tool name: function_arn(function name)}``: what the agent ASL's ``tool_functions`` constant holds once its
    substitutions are filled (for callers of the agent function outside a state machine: tests, sample events)."""
    return {tool: function_arn(name) for tool, name in TOOL_FUNCTIONS.items()}


STATE_MACHINE_FUNCTIONS = sorted({t.name for t in SUBSTITUTIONS.values() if t.kind == "function"})
