"""The ``stepcrew`` command line.

``stepcrew demo`` runs the demo goal on the bundled Palmer Penguins dataset; ``stepcrew run GOAL`` runs any goal;
``stepcrew runs list|show`` read kept runs from another process; ``stepcrew dev`` serves the HTTP API locally.

Runs execute the real state machines in the local runtime (moto in-process) unless ``--aws`` is given, which drives
a deployed stack (env ``STEPCREW_TABLE_NAME`` and ``STEPCREW_RUN_STATE_MACHINE_ARN``). Progress goes to stderr
(rich); ``--json`` prints exactly one JSON object (:class:`stepcrew.models.RunResult`) on stdout. Exit codes:
0 the run SUCCEEDED; 1 the run FAILED (or did not finish in ``--timeout``); 2 bad input (nothing was written).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from stepcrew.models import ProgressEvent, RunRequest, RunResult, RunStatus

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Crews of LLM agents on AWS Step Functions + Lambda, runnable locally.")
runs_app = typer.Typer(no_args_is_help=True, help="Runs kept by the local runtime (or a deployed stack with --aws).")
app.add_typer(runs_app, name="runs")
err = Console(stderr=True, highlight=False, soft_wrap=True)


class BadInput(Exception):
    """Bad command-line input: exit 2 with a one-line message, nothing written."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# --------------------------------------------------------------------------------------------- request building
def build_request(goal: str, data: Path | None, crew: str, provider: str | None, *, review: dict | None = None,
                  budget: dict | None = None, aws: bool = False, data_uri: str | None = None):
    """Validate everything a run needs before anything is written. ``review``/``budget``: fields of
    :class:`~stepcrew.models.ReviewConfig` / :class:`~stepcrew.models.Budget` (omitted ones keep their defaults).
    Returns (RunRequest, Crew). Raises BadInput with a one-line message."""
    from pydantic import ValidationError

    from stepcrew.crew import CrewError, load_crew
    from stepcrew.llm import registry
    from stepcrew.tools.datasets import DatasetError, dataset_uri

    try:
        crew_model = load_crew(crew)  # validated against the tool registry too
    except CrewError as exc:
        raise BadInput(str(exc)) from exc
    name = provider or registry.detect_provider()
    try:
        registry.check_provider(name)
    except registry.UnknownProviderError as exc:
        raise BadInput(str(exc)) from exc
    sdk = {"anthropic": "anthropic", "openai": "openai"}.get(name)
    if sdk:
        import importlib.util

        if importlib.util.find_spec(sdk) is None:
            raise BadInput(f"provider {name!r} needs the {sdk} SDK: pip install 'stepcrew[{sdk}]'")
    uri = data_uri
    if data is not None:
        if aws:
            raise BadInput("with --aws, give the dataset as an s3:// URI (--data-uri), not a local path")
        try:
            uri = dataset_uri(data)
        except DatasetError as exc:
            raise BadInput(str(exc)) from exc
    try:
        request = RunRequest(goal=goal, crew=crew_model.name, data=uri, provider=name, review=review or {},
                             budget=budget or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"invalid {where}: {first['msg']}") from exc
    return request, crew_model


# --------------------------------------------------------------------------------------------- progress
class Progress:
    """Renders progress events (plan, sub-tasks side by side, tool calls, review rounds) on stderr."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.titles: dict[str, str] = {}

    def show(self, event: ProgressEvent) -> None:
        """Print one event as one line (a plan as one line per wave); unknown kinds print their kind."""
        if self.quiet:
            return
        d, sub = event.data, event.subtask_id
        tag = f"[cyan]{sub}[/] " if sub else ""
        text = {
            "run_queued": f"run queued (provider {d.get('provider', '?')})",
            "run_started": f"run started — engine [bold]{d.get('engine', '?')}[/]",
            "plan_ready": self._plan_text(d),
            "plan_invalid": f"[yellow]plan rejected[/] (attempt {d.get('attempt')}); "
                            + ("asking the planner again" if d.get("retry") else "no attempts left"),
            "subtask_started": f"{tag}started — {self.titles.get(sub or '', '')}",
            "model_turn": self._turn_text(tag, d),
            "tool_call": f"{tag}→ tool [magenta]{d.get('name')}[/]",
            "tool_result": f"{tag}← {d.get('name')} {'ok' if d.get('ok') else '[red]error[/]'}",
            "subtask_finished": f"{tag}[green]done[/]",
            "subtask_failed": f"{tag}[red]failed[/] {d.get('code', '')}",
            "synthesized": f"report {'revised' if d.get('mode') == 'improve' else 'drafted'} "
                           f"({d.get('chars', '?')} chars)",
            "review": self._review_text(d),
            "run_succeeded": "[bold green]run SUCCEEDED[/]",
            "run_failed": f"[bold red]run FAILED[/] {d.get('code', '')}",
        }.get(event.kind, event.kind)
        self.console.print(f"[dim]{event.at:%H:%M:%S}[/] {text}")

    def _plan_text(self, d: dict) -> str:
        subtasks = d.get("subtasks", [])
        for s in subtasks:
            self.titles[s.get("id", "")] = s.get("title", "")
        lines = [f"plan: {len(subtasks)} sub-tasks in {len(d.get('waves', []))} wave(s)"]
        for i, wave in enumerate(d.get("waves", []), 1):
            lines.append(f"    wave {i}: " + " ‖ ".join(wave))
        return "\n".join(lines)

    @staticmethod
    def _turn_text(tag: str, d: dict) -> str:
        tokens = d.get("input_tokens", 0) + d.get("output_tokens", 0)
        calls = d.get("tool_calls", 0)
        return (f"{tag}[dim]{d.get('purpose', 'model')} turn → {d.get('stop_reason', '?')}"
                + (f", {calls} tool call(s)" if calls else "") + (f", {tokens} tokens" if tokens else "") + "[/]")

    @staticmethod
    def _review_text(d: dict) -> str:
        verdict = "[green]passed[/]" if d.get("passed") else "[yellow]below threshold[/]"
        return f"review round {d.get('round')}: overall {d.get('overall', 0):.2f} {verdict}"


def follow(store, run_id: str, is_done, progress: Progress, timeout_s: float, poll_s: float = 0.1) -> bool:
    """Print the run's events until ``is_done()`` and all events are shown. Returns False on timeout."""
    cursor = None
    deadline = time.monotonic() + timeout_s
    while True:
        done = is_done()
        for cursor, event in store.list_events(run_id, after=cursor):
            progress.show(event)
        if done:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)


def print_result(result: RunResult, as_json: bool, out) -> None:
    """``--json``: one JSON object on ``out``. Otherwise a summary on stderr and the report on ``out``."""
    if as_json:
        out.write(result.model_dump_json() + "\n")
        out.flush()
        return
    table = Table(title=f"run {result.run_id} — {result.status.value}", title_justify="left")
    for col in ("sub-task", "status", "tool calls", "depends on"):
        table.add_column(col)
    deps = {s.id: s.depends_on for s in result.plan.subtasks}
    for s in result.subtasks:
        table.add_row(s.id, s.status.value, str(s.tool_calls), ", ".join(deps.get(s.id, [])) or "—")
    err.print(table)
    for r in result.review.rounds:
        err.print(f"review round {r.round}: overall {r.overall:.2f} ({'passed' if r.passed else 'not passed'})")
    u = result.usage
    err.print(f"engine {result.engine or '?'} · tokens in {u.input_tokens} / out {u.output_tokens} · "
              f"cost ${u.cost_usd:.4f}")
    if result.error:
        err.print(f"[red]{result.error.code}: {result.error.message}[/]")
    if result.final_output:
        Console(file=out, highlight=False).print(Markdown(result.final_output))


@contextlib.contextmanager
def stdout_reserved():
    """Keep the real stdout for the one JSON object: everything else written to fd 1 (Powertools logs and
    metrics of in-process handlers, library prints) goes to stderr while the run executes."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(os.dup(saved), "w")
    try:
        yield out
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        out.flush()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Turn SIGTERM (e.g. ``kill``, a CI job cancel) into KeyboardInterrupt in the main thread, so an interrupted run
    goes through the same cleanup as Ctrl-C: the local runtime marks it FAILED (LocalRuntimeExited) and saves."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------- execution
def _aws_backend():
    from stepcrew.service import StepFunctionsStarter
    from stepcrew.store.dynamodb import DynamoRunStore

    table, arn = os.environ.get("STEPCREW_TABLE_NAME"), os.environ.get("STEPCREW_RUN_STATE_MACHINE_ARN")
    if not table or not arn:
        raise BadInput("--aws needs STEPCREW_TABLE_NAME and STEPCREW_RUN_STATE_MACHINE_ARN (the stack's outputs)")
    return DynamoRunStore(table), StepFunctionsStarter(arn)


def execute(request: RunRequest, crew, *, aws: bool, as_json: bool, timeout_s: float, quiet: bool = False) -> int:
    """Create, start and follow one run; print its result. Returns the exit code."""
    from stepcrew.service import RunStartError, create_run, run_result, start_run

    with stdout_reserved() as out:
        progress = Progress(err, quiet=quiet)
        if aws:
            store, starter = _aws_backend()
            runtime_cm = contextlib.nullcontext()
        else:
            from stepcrew.local.runtime import LocalRuntime
            from stepcrew.local.state import default_state_dir

            runtime_cm = LocalRuntime(state_dir=default_state_dir())
        with runtime_cm as runtime:
            if runtime is not None:
                store, starter = runtime.store, runtime
            run = create_run(request, crew, store)
            if not as_json:
                err.print(f"run [bold]{run.run_id}[/] — goal: {request.goal[:100]}")
            try:
                run = start_run(run, store, starter)
            except RunStartError as exc:
                err.print(f"[red]error:[/] {exc}")
            finished = follow(store, run.run_id, lambda: store.get_run(run.run_id).status.terminal, progress,
                              timeout_s)
            result = run_result(store, run.run_id)
        if not finished:
            err.print(f"[red]error:[/] run {run.run_id} did not finish within {timeout_s:.0f} s")
        print_result(result, as_json, out)
    return 0 if result.status == RunStatus.SUCCEEDED else 1


GoalArg = Annotated[str, typer.Argument(help="What the crew should achieve (1-10,000 characters).")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="CSV/Parquet/JSON dataset the tools may read.")]
CrewOpt = Annotated[str, typer.Option("--crew", help="'default' or a crew YAML file.")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", help="rule | anthropic | openai | bedrock "
                                                                   "(default: detected from the environment)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
AwsOpt = Annotated[bool, typer.Option("--aws", envvar="STEPCREW_AWS", help="Drive a deployed stack.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the run.")]


def _given(**values) -> dict:
    """The options the user actually gave (None = not given: the model's default applies)."""
    return {key: value for key, value in values.items() if value is not None}


def _run(goal, data, crew, provider, as_json, aws, timeout, review=None, budget=None, data_uri=None) -> None:
    try:
        request, crew_model = build_request(goal, data, crew, provider, review=review, budget=budget, aws=aws,
                                            data_uri=data_uri)
        with sigterm_as_interrupt():
            code = execute(request, crew_model, aws=aws, as_json=as_json, timeout_s=timeout)
    except BadInput as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        where = "on AWS it goes on" if aws else "the local run was marked FAILED"
        raise _fail(f"interrupted; {where} (see `stepcrew runs list`)", code=130) from None
    raise typer.Exit(code)


@app.command()
def run(goal: GoalArg, data: DataOpt = None, crew: CrewOpt = "default", provider: ProviderOpt = None,
        as_json: JsonOpt = False, aws: AwsOpt = False, timeout: TimeoutOpt = 900.0,
        threshold: Annotated[float | None, typer.Option(help="Review pass threshold, 0-1 (default 0.8).")] = None,
        max_rounds: Annotated[int | None, typer.Option(help="Review rounds at most (default 2).")] = None,
        data_uri: Annotated[str | None, typer.Option("--data-uri", help="s3:// dataset (with --aws).")] = None,
        max_tokens: Annotated[int | None, typer.Option(help="Budget: input + output tokens of the whole run.")] = None,
        max_cost: Annotated[float | None, typer.Option(help="Budget: USD for the whole run (price table).")] = None,
        max_turns: Annotated[int | None, typer.Option(help="Budget: model calls per sub-task (default 8).")] = None,
        ) -> None:
    """Run GOAL with a crew: plan, sub-tasks side by side, tool calls, review rounds, final report. A run that
    passes a budget ends FAILED with BudgetExceededError or MaxTurnsExceededError."""
    _run(goal, data, crew, provider, as_json, aws, timeout, review=_given(threshold=threshold, max_rounds=max_rounds),
         budget=_given(max_tokens=max_tokens, max_cost_usd=max_cost, max_turns_per_subtask=max_turns),
         data_uri=data_uri)


@app.command()
def demo(provider: ProviderOpt = None, as_json: JsonOpt = False, timeout: TimeoutOpt = 900.0) -> None:
    """Run the demo goal on the bundled Palmer Penguins dataset (offline rule engine unless a provider is set)."""
    from stepcrew.data import DEMO_DATASET, DEMO_GOAL

    _run(DEMO_GOAL, DEMO_DATASET, "default", provider, as_json, False, timeout)


@contextlib.contextmanager
def _read_store(aws: bool):
    if aws:
        yield _aws_backend()[0]
        return
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.local.state import default_state_dir

    with stdout_reserved(), LocalRuntime(state_dir=default_state_dir(), read_only=True) as runtime:
        yield runtime.store


@runs_app.command("list")
def runs_list(as_json: JsonOpt = False, aws: AwsOpt = False,
              tenant: Annotated[str, typer.Option(help="Tenant whose runs to list.")] = "local",
              limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """List kept runs, newest first."""
    try:
        with _read_store(aws) as store:
            runs, _ = store.list_runs(tenant, limit=limit)
    except BadInput as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps([{"run_id": r.run_id, "status": r.status.value, "created_at": r.created_at.isoformat(),
                           "engine": r.engine, "goal": r.goal[:200]} for r in runs]))
        return
    table = Table(title=f"runs of tenant {tenant}", title_justify="left")
    for col in ("run id", "status", "created (UTC)", "engine", "goal"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.run_id, r.status.value, f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.engine, r.goal[:60])
    Console().print(table)


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="The run id.")], as_json: JsonOpt = False,
              aws: AwsOpt = False) -> None:
    """Show one kept run: plan, sub-tasks, review rounds, usage and the final report."""
    from stepcrew.service import run_result
    from stepcrew.store.base import RunNotFoundError

    try:
        with _read_store(aws) as store:
            result = run_result(store, run_id)
    except RunNotFoundError:
        raise _fail(f"no run {run_id!r}") from None
    except BadInput as exc:
        raise _fail(str(exc)) from None
    print_result(result, as_json, sys.stdout)


@app.command()
def dev(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000) -> None:
    """Serve the HTTP API on 127.0.0.1 with the local runtime behind it (a local token stands in for JWT)."""
    from stepcrew.api.dev import serve
    from stepcrew.local.state import default_state_dir

    serve(host="127.0.0.1", port=port, state_dir=default_state_dir())


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
