"""The ``stepcrew`` command line.

``stepcrew demo`` runs the demo goal on the bundled Palmer Penguins dataset; ``stepcrew run GOAL`` runs any goal;
``stepcrew runs list|show`` read kept runs from another process; ``stepcrew dev`` serves the HTTP API locally;
``stepcrew datasets put FILE`` stores a dataset under a tenant's prefix of the local datasets bucket;
``stepcrew memory list|add|forget|clear`` reads and edits a tenant's memory in the local state.

Runs execute the real state machines in the local runtime (moto in-process) unless ``--aws`` is given, which drives
a deployed stack (env ``STEPCREW_TABLE_NAME`` and ``STEPCREW_RUN_STATE_MACHINE_ARN``). Progress goes to stderr
(rich); ``--json`` prints exactly one JSON object (:class:`stepcrew.models.RunResult`) on stdout. Exit codes
(:data:`EXIT_CODES`): 0 the run SUCCEEDED; 1 it FAILED (or did not finish in ``--timeout``); 2 bad input (nothing
was written); 3 it NEEDS_REVIEW (its report failed review and waits for a person: ``stepcrew runs review``); 4 it
was DECLINED (the engine cannot answer this goal, and says why); 130 interrupted.
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

from stepcrew.models import DEFAULT_TENANT, ProgressEvent, RunRequest, RunResult, RunShown, RunStatus

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Crews of LLM agents on AWS Step Functions + Lambda, runnable locally.")
runs_app = typer.Typer(no_args_is_help=True, help="Runs kept by the local runtime (or a deployed stack with --aws).")
app.add_typer(runs_app, name="runs")
datasets_app = typer.Typer(no_args_is_help=True, help="Datasets of the local datasets bucket (s3://stepcrew-local-"
                                                       "datasets/<tenant>/uploads/<name>).")
app.add_typer(datasets_app, name="datasets")
tenants_app = typer.Typer(no_args_is_help=True, help="Per-tenant settings: daily and monthly $ budgets.")
app.add_typer(tenants_app, name="tenants")
memory_app = typer.Typer(no_args_is_help=True, help="A tenant's long-term memory (facts) and episodes (past runs), "
                                                     "kept by the local runtime.")
app.add_typer(memory_app, name="memory")
err = Console(stderr=True, highlight=False, soft_wrap=True)


#: Exit code per final run status (bad input is 2, an interrupt 130).
EXIT_CODES = {RunStatus.SUCCEEDED: 0, RunStatus.FAILED: 1, RunStatus.NEEDS_REVIEW: 3, RunStatus.DECLINED: 4}
#: Statuses where ``stepcrew run`` stops following: terminal, or handed to a person for review.
_STOP = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DECLINED, RunStatus.NEEDS_REVIEW}


def _counts(entities: dict | None) -> str:
    """``{"EMAIL_ADDRESS": 2}`` -> ``"2 EMAIL_ADDRESS"`` (a guard event's counts, for the progress lines)."""
    return ", ".join(f"{n} {k}" for k, n in (entities or {}).items()) or "none"


class BadInput(Exception):
    """Bad command-line input: exit 2 with a one-line message, nothing written."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# --------------------------------------------------------------------------------------------- request building
def build_request(goal: str, data: Path | None, crew: str, provider: str | None, *, review: dict | None = None,
                  budget: dict | None = None, aws: bool = False, data_uri: str | None = None,
                  require_approval: bool = False, guardrails: dict | None = None, routing: dict | None = None,
                  tenant: str | None = None, user: str | None = None, memory: str = "on",
                  allow_side_effects: bool = False):
    """Validate everything a run needs before anything is written. ``review``/``budget``/``guardrails``: fields of
    :class:`~stepcrew.models.ReviewConfig` / :class:`~stepcrew.models.Budget` /
    :class:`~stepcrew.models.GuardrailPolicy` (omitted ones keep their defaults; no ``guardrails``: the crew's).
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
                             budget=budget or {}, require_approval=require_approval, guardrails=guardrails or None,
                             routing=routing or None, memory=memory, user=user,
                             allow_side_effects=allow_side_effects, **({"tenant": tenant} if tenant else {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"invalid {where}: {first['msg']}") from exc
    try:
        crew_model.guardrails.tightened(request.guardrails)
    except ValueError as exc:  # GuardrailsLoosenedError
        raise BadInput(str(exc)) from exc
    from stepcrew.memory.models import resolve_user

    try:  # a user id of another tenant: refused before anything is written
        resolve_user(request.tenant, request.user)
    except ValueError as exc:  # UserOutsideTenantError
        raise BadInput(str(exc)) from exc
    from stepcrew.resilience.chain import ChainConfigError, effective_routing

    try:  # every provider of the chain known and configured, before anything is written
        effective_routing(request.routing, request.provider)
    except ChainConfigError as exc:
        raise BadInput(str(exc)) from exc
    roles = {crew_model.planner.name, crew_model.reviewer.name, crew_model.synthesizer.name,
             *(w.name for w in crew_model.workers)}
    unknown = sorted(set(request.routing.role_tiers) - roles) if request.routing else []
    if unknown:
        raise BadInput(f"--role-tier names no role of crew {crew_model.name!r}: {', '.join(unknown)} "
                       f"(roles: {', '.join(sorted(roles))})")
    return request, crew_model


def parse_chains(values: list[str] | None) -> dict[str, list[str]] | None:
    """``--chain anthropic,bedrock,openai`` (both tiers) or ``--chain fast=anthropic,openai`` (one tier), repeatable
    -> ``Routing.chains``. Raises BadInput."""
    if not values:
        return None
    chains: dict[str, list[str]] = {}
    for value in values:
        tier, _, names = value.rpartition("=")
        providers = [p.strip().lower() for p in names.split(",") if p.strip()]
        if not providers:
            raise BadInput(f"--chain {value!r}: name at least one provider")
        for t in ([tier] if tier else ["fast", "smart"]):
            if t not in ("fast", "smart"):
                raise BadInput(f"--chain {value!r}: unknown tier {t!r} (fast or smart)")
            chains[t] = providers
    return chains


def parse_role_tiers(values: list[str] | None) -> dict[str, str] | None:
    """``--role-tier planner=fast`` (repeatable) -> ``Routing.role_tiers``. Raises BadInput."""
    if not values:
        return None
    out = {}
    for value in values:
        role, sep, tier = value.partition("=")
        if not sep or not role.strip():
            raise BadInput(f"--role-tier {value!r}: expected ROLE=fast|smart")
        out[role.strip()] = tier.strip()
    return out


def check_tenant_budget(store, tenant: str) -> None:
    """BadInput when ``tenant`` has spent its daily or monthly $ budget (nothing is started)."""
    from datetime import UTC, datetime

    from stepcrew.resilience.tenant_budget import TenantBudgetExceededError, ledger_for

    try:
        ledger_for(store).check(tenant, datetime.now(UTC))
    except TenantBudgetExceededError as exc:
        raise BadInput(str(exc)) from None
    except ValueError as exc:  # STEPCREW_TENANT_DAILY_USD / _MONTHLY_USD malformed
        raise BadInput(str(exc)) from None


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
                           f"({d.get('chars', '?')} chars"
                           + (f", the output of sub-task {d['source']}" if d.get("source") else "") + ")",
            "review": self._review_text(d),
            "run_succeeded": "[bold green]run SUCCEEDED[/]",
            "run_failed": f"[bold red]run FAILED[/] {d.get('code', '')}",
            "run_declined": f"[bold yellow]run DECLINED[/] ({d.get('code', '')}): the engine cannot answer this goal",
            "needs_review": f"[bold yellow]report handed off for review[/] (NEEDS_REVIEW until {d.get('deadline')})",
            "review_decided": f"review decision: {'accepted' if d.get('accept') else 'rejected'}",
            "approval_requested": "[yellow]waiting for approval of the plan[/]",
            "input_flagged": f"[yellow]input guard[/]: {', '.join(d.get('families') or d.get('entities') or [])} "
                             f"({d.get('action', '')})",
            "input_masked": f"input guard: personal data masked ({_counts(d.get('entities'))})",
            "input_rejected_topic": f"[red]input guard[/]: denied topic {', '.join(d.get('topics', []))}",
            "tool_output_masked": f"{tag}guard: {d.get('name')} output masked ({_counts(d.get('entities'))})",
            "tool_output_flagged": f"{tag}[yellow]guard[/]: {d.get('name')} output holds instruction-like text "
                                   f"({', '.join(d.get('families', []))}); fenced as data",
            "degraded": f"{tag}[yellow]degraded[/]: {d.get('purpose')} → {d.get('rung')}",
            "cache_hit": f"{tag}[green]cache hit[/] ({d.get('cache')}): {d.get('purpose')}, saved "
                         f"{d.get('saved_tokens', 0)} tokens",
            "loop_detected": f"{tag}[red]loop[/]: the same tool call {d.get('repeats')} times, sub-task ended",
            "budget_exhausted": f"[yellow]budget exhausted[/] at {d.get('where')}: the report goes to a person",
            "delegated": f"{tag}manager: delegation {d.get('seq')} to {d.get('worker')}"
                         + (" (sent back)" if d.get("send_back") else ""),
            "delegation_assessed": f"{tag}manager: delegation {d.get('seq')} {d.get('verdict')}",
            "delegation_rejected": f"[yellow]manager[/]: invalid reply rejected (ask {d.get('attempt')}), asking again",
            "manager_finished": f"manager: goal met after {d.get('delegations')} delegation(s)",
            "manager_stopped": f"[red]manager stopped[/] ({d.get('code')})",
            "output_screened": f"output guard: {_counts(d.get('masked'))} masked, {d.get('removed', 0)} sentence(s) "
                               "removed",
            "replanned": f"[yellow]replanned[/] (plan v{d.get('version')}): {d.get('failed')} failed "
                         f"({d.get('code')}); kept {', '.join(d.get('kept') or []) or 'none'}",
            "replan_exhausted": f"[red]replanning exhausted[/] ({d.get('why')})",
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
        rung = d.get("rung")
        where = (f" [{d['provider']}/{d.get('tier')}]" if d.get("provider") else "")
        note = {"cached": f" [green](cache: {d.get('cache')})[/]", "rule_engine": " [yellow](rule engine)[/]",
                "handoff": " [yellow](no provider: handed off)[/]"}.get(rung or "", "")
        return (f"{tag}[dim]{d.get('purpose', 'model')} turn{where} → {d.get('stop_reason', '?')}"
                + (f", {calls} tool call(s)" if calls else "") + (f", {tokens} tokens" if tokens else "") + "[/]"
                + note)

    @staticmethod
    def _review_text(d: dict) -> str:
        if d.get("overall") is None:
            return f"review round {d.get('round')}: [red]no valid scores[/] ({d.get('error', 'error')})"
        verdict = "[green]passed[/]" if d.get("passed") else "[yellow]below threshold[/]"
        return f"review round {d.get('round')}: overall {d.get('overall', 0):.2f} {verdict}"


#: The events that close a run's progress. The finalizers write the status first and the event just after (the event
#: must not claim an outcome the conditional status write then refused), so a follower that sees the status waits up
#: to CLOSING_EVENT_GRACE_S seconds for the event.
CLOSING_EVENTS = frozenset({"run_succeeded", "run_failed", "run_declined", "needs_review"})
CLOSING_EVENT_GRACE_S = 2.0


def follow(store, run_id: str, is_done, progress: Progress, timeout_s: float, poll_s: float = 0.1,
           waits=None) -> bool:
    """Print the run's events until ``is_done()`` and all events are shown, the closing one included (waited for up
    to :data:`CLOSING_EVENT_GRACE_S`). Returns False on timeout. ``waits``: a
    :class:`stepcrew.progress_waits.ExecutionWaits` whose retries and waits are shown too (time order within a tick;
    read once more, all of it, when the run is done)."""
    from stepcrew.progress_waits import show as show_wait

    cursor = None
    deadline = time.monotonic() + timeout_s
    closing_by = None  # once done: the run's closing event may still be on its way (written after the status)
    closed = False
    while True:
        done = closing_by is not None or is_done()
        force = done and closing_by is None  # the waits are read once more, all of them, when the run is done
        if force:
            closing_by = time.monotonic() + CLOSING_EVENT_GRACE_S
        lines = []
        for cursor, event in store.list_events(run_id, after=cursor):
            lines.append((event.at, progress.show, event))
            closed = closed or event.kind in CLOSING_EVENTS
        if waits is not None and not progress.quiet:
            lines += [(n.at, lambda n: show_wait(progress.console, n), n) for n in waits.poll(force=force)]
        for _, show, item in sorted(lines, key=lambda line: line[0]):
            show(item)
        if done and (closed or time.monotonic() > closing_by):
            return True
        if not done and time.monotonic() > deadline:
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
        score = "no valid scores" if r.overall is None else f"overall {r.overall:.2f}"
        err.print(f"review round {r.round}: {score} ({'passed' if r.passed else 'not passed'})")
    if result.decline:
        err.print(f"[yellow]DECLINED ({result.decline.code}): {result.decline.reason}[/]")
    if result.status == RunStatus.NEEDS_REVIEW:
        err.print(f"[yellow]NEEDS_REVIEW: the report below failed its last review round; answer with `stepcrew runs "
                  f"review {result.run_id} --accept` or `--reject` (deployed: POST /runs/{result.run_id}/review; "
                  f"deadline {result.review.deadline}).[/]")
    u = result.usage
    err.print(f"engine {result.engine or '?'} · tokens in {u.input_tokens} / out {u.output_tokens} · "
              f"cost ${u.cost_usd:.4f}"
              + (f" · provider prompt cache: {u.cache_read_tokens} read / {u.cache_write_tokens} written of the "
                 "tokens in" if u.cache_read_tokens or u.cache_write_tokens else "")
              + (f" · cache hits {u.cache_hits} (saved {u.saved_tokens} tokens, "
                 f"${u.saved_cost_usd:.4f})" if u.cache_hits else ""))
    if result.memory is not None and (result.memory.facts or result.memory.episodes):
        similar = ", ".join(f"{e.run_id[:12]} ({e.similarity:.2f}, {e.status})" for e in result.memory.episodes)
        err.print(f"memory: {len(result.memory.facts)} fact(s)" + (f", similar runs {similar}" if similar else ""))
    if result.degradation_level != "full":
        rung = {"cached": "a cached answer", "rule_engine": "the rule engine (no provider answered)",
                "handoff": "a person (no provider available)"}[result.degradation_level]
        err.print(f"[yellow]degraded: answered by {rung}[/]")
    if result.budget_exhausted:
        err.print("[yellow]budget exhausted: the report it had is handed to a person, unreviewed[/]")
    if result.handoff_reason and not result.budget_exhausted:
        err.print(f"[yellow]handed off: {result.handoff_reason}[/]")
    versions = getattr(result, "plan_versions", [])  # RunShown: runs show / run
    if len(versions) > 1:  # replanned after a failed sub-task: every version, and why it was made
        from rich.markup import escape

        for v in versions:
            ids = ", ".join(f"{i.id}" + (f" {i.status.value}" if i.status else "") + (f" {i.error}" if i.error else "")
                            for i in v.subtasks)
            kept = f"; kept {', '.join(v.kept)}" if v.kept else ""
            err.print(escape(f"plan v{v.version}: {v.reason}{kept} — sub-tasks {ids}"))
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


# --------------------------------------------------------------------------------------------- approvals
def decisions_dir() -> Path:
    """``$STEPCREW_HOME/decisions``: where ``stepcrew runs approve`` leaves an answer for the process that runs the
    run (a local run lives in its ``stepcrew run`` process: the emulated execution cannot be reached otherwise)."""
    from stepcrew.local.state import default_state_dir

    return default_state_dir().parent / "decisions"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ApprovalWaiter:
    """While a local run waits for approval: asks on the terminal (interactive) or picks up the answer that
    ``stepcrew runs approve`` writes to ``decisions/<run_id>.approval.json``, and answers the task token through the
    same use case as the API (:func:`stepcrew.domain.decisions.answer_approval`). ``<run_id>.live`` holds this
    process's pid while it waits."""

    def __init__(self, store, resumer, run_id: str, *, interactive: bool) -> None:
        self.store, self.resumer, self.run_id, self.interactive = store, resumer, run_id, interactive
        self.folder = decisions_dir()
        self._live: Path | None = None

    def poll(self) -> None:
        from stepcrew.domain.decisions import DecisionError, answer_approval

        if self._live is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._live = self.folder / f"{self.run_id}.live"
            self._live.write_text(str(os.getpid()))
            err.print(f"run {self.run_id} waits for approval of its plan: `stepcrew runs approve {self.run_id}` "
                      "(or --reject)")
        answer: dict | None = None
        if self.interactive:
            reply = typer.prompt("approve the plan? [y/N]", default="n", err=True)
            answer = {"approved": reply.strip().lower() in ("y", "yes"), "comment": "answered at the terminal"}
        else:
            inbox = self.folder / f"{self.run_id}.approval.json"
            if inbox.is_file():
                try:
                    answer = json.loads(inbox.read_text())
                finally:
                    inbox.unlink(missing_ok=True)
        if answer is None:
            return
        try:
            answer_approval(self.store, self.resumer, self.run_id, None, bool(answer.get("approved")),
                            str(answer.get("comment") or ""))
            outcome = {"ok": True, "approved": bool(answer.get("approved"))}
        except DecisionError as exc:
            outcome = {"ok": False, "error": str(exc)}
        # written aside, then renamed: `runs approve` polls for this file and must never read it half written
        tmp = self.folder / f".{self.run_id}.approval.done.tmp"
        tmp.write_text(json.dumps(outcome))
        tmp.replace(self.folder / f"{self.run_id}.approval.done")

    def close(self) -> None:
        if self._live is not None:
            self._live.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- execution
def _aws_backend():
    from stepcrew.service import StepFunctionsStarter
    from stepcrew.store.dynamodb import DynamoRunStore

    table, arn = os.environ.get("STEPCREW_TABLE_NAME"), os.environ.get("STEPCREW_RUN_STATE_MACHINE_ARN")
    if not table or not arn:
        raise BadInput("--aws needs STEPCREW_TABLE_NAME and STEPCREW_RUN_STATE_MACHINE_ARN (the stack's outputs)")
    return DynamoRunStore(table), StepFunctionsStarter(arn)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM while a run was followed: its id, and its status after the interrupt (FAILED when this
    process cut it off; its own terminal status when it had already ended; None on AWS, where it goes on)."""

    def __init__(self, run_id: str, status: RunStatus | None) -> None:
        super().__init__(run_id)
        self.run_id, self.status = run_id, status


#: Seconds a local run's execution may take after its outcome is written (its memory is recorded then).
MEMORY_WAIT_S = 60.0


def execute(request: RunRequest | None, crew, *, aws: bool, as_json: bool, timeout_s: float, quiet: bool = False,
            resume: str | None = None, resume_orphans: bool = False, resume_tenant: str = DEFAULT_TENANT) -> int:
    """Create, start and follow one run; print its result. Returns the exit code. ``resume``: instead of creating
    a run, continue that interrupted local run of ``resume_tenant`` (:mod:`stepcrew.local.resume`; BadInput when it
    cannot be, another tenant's run answered like an unknown one).
    ``resume_orphans``: also resume the runs the start-up sweep found orphaned, and wait for them before exiting."""
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
                if runtime.swept:
                    err.print(f"[yellow]{len(runtime.swept)} run(s) left unfinished by a process that ended were "
                              f"marked FAILED: {', '.join(runtime.swept[:5])}{' ...' if len(runtime.swept) > 5 else ''}[/]")
            orphans = _resume_orphans(runtime, as_json) if resume_orphans and runtime is not None else []
            if resume is not None:
                run = _resume(runtime, resume, as_json, resume_tenant)
            else:
                check_tenant_budget(store, request.tenant)
                run = create_run(request, crew, store)
                if not as_json:
                    err.print(f"run [bold]{run.run_id}[/] — goal: {request.goal[:100]}")
                try:
                    run = start_run(run, store, starter)
                except RunStartError as exc:
                    err.print(f"[red]error:[/] {exc}")
            waiter = ApprovalWaiter(store, starter, run.run_id, interactive=not as_json and sys.stdin.isatty())

            def done() -> bool:
                status = store.get_run(run.run_id).status
                if status == RunStatus.WAITING_APPROVAL and not aws:
                    waiter.poll()
                return status in _STOP

            try:
                try:
                    from stepcrew.progress_waits import for_run

                    finished = follow(store, run.run_id, done, progress, timeout_s,
                                      waits=for_run(store, run.run_id, runtime))
                finally:
                    waiter.close()
                if not finished and runtime is not None:  # --timeout: the local run is cut off now, and says so
                    runtime.cut_off(run.run_id, f"the CLI's --timeout of {timeout_s:g} s passed before the run "
                                                "finished")
                record = store.get_run(run.run_id)
                if finished and runtime is not None and record.status.terminal and record.execution_arn:
                    # the run's outcome is written; its memory (ProposeMemory, Remember states) is recorded just
                    # after: let the execution end before the runtime (and the process) does
                    with contextlib.suppress(TimeoutError):
                        runtime.wait(record.execution_arn, timeout_s=MEMORY_WAIT_S)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: say what happened to this run, and only that
                if runtime is None:
                    raise Interrupted(run.run_id, None) from None
                status = store.get_run(run.run_id).status
                if not status.terminal and status != RunStatus.NEEDS_REVIEW:
                    runtime.cut_off(run.run_id, "interrupted (Ctrl-C or SIGTERM) before the run finished")
                    raise Interrupted(run.run_id, RunStatus.FAILED) from None
                raise Interrupted(run.run_id, status) from None
            result = run_result(store, run.run_id)
            result = RunShown.of(result, store.list_plan_versions(run.run_id))
            _wait_resumed(runtime, orphans, timeout_s, as_json)
        if not finished:
            err.print(f"[red]error:[/] run {run.run_id} did not finish within {timeout_s:.0f} s")
        print_result(result, as_json, out)
    return EXIT_CODES.get(result.status, 1) if finished else 1


def _resume(runtime, run_id: str, as_json: bool, tenant: str):
    """Resume ``tenant``'s run ``run_id`` in ``runtime`` (local only); BadInput with the one-line reason when it
    cannot be (another tenant's run: the same line as an unknown id)."""
    from stepcrew.local.resume import ResumeError, resume_run

    if runtime is None:
        raise BadInput("`stepcrew runs resume` continues local runs; a deployed run is continued with `stepcrew runs "
                       "redrive RUN_ID --aws`")
    try:
        resume_run(runtime, run_id, tenant=tenant)
    except ResumeError as exc:
        raise BadInput(str(exc)) from None
    run = runtime.store.get_run(run_id, tenant)
    if not as_json:
        err.print(f"run [bold]{run.run_id}[/] resumed — goal: {run.goal[:100]}")
    return run


def _resume_orphans(runtime, as_json: bool) -> list[str]:
    """Resume the runs the start-up sweep found orphaned; say which (stderr)."""
    from stepcrew.local.resume import resume_orphans

    resumed = resume_orphans(runtime)
    if resumed and not as_json:
        err.print(f"[yellow]resumed {len(resumed)} run(s) left unfinished by a process that ended: "
                  f"{', '.join(resumed[:5])}{' ...' if len(resumed) > 5 else ''}[/]")
    return resumed


def _wait_resumed(runtime, run_ids: list[str], timeout_s: float, as_json: bool) -> None:
    """Let the executions of resumed orphans end (they would be cut off again by this process's exit)."""
    for run_id in run_ids:
        record = runtime.store.get_run(run_id)
        if record.execution_arn:
            with contextlib.suppress(TimeoutError):
                runtime.wait(record.execution_arn, timeout_s=timeout_s)
        if not as_json:
            err.print(f"resumed run {run_id}: {runtime.store.get_run(run_id).status.value}")


GoalArg = Annotated[str, typer.Argument(help="What the crew should achieve (1-10,000 characters).")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="CSV/Parquet/JSON dataset the tools may read.")]
CrewOpt = Annotated[str, typer.Option("--crew", help="A packaged crew (default, parallel, sequential, charts, "
                                      "hierarchical, hybrid) or a crew YAML file.")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", help="rule | anthropic | openai | bedrock "
                                                                   "(default: detected from the environment)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
AwsOpt = Annotated[bool, typer.Option("--aws", envvar="STEPCREW_AWS", help="Drive a deployed stack.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the run.")]
ResumeOrphansOpt = Annotated[bool, typer.Option(
    "--resume-orphans", help="Resume the local runs a process that ended left unfinished (found at start-up) "
                             "instead of leaving them FAILED LocalRuntimeExited; waits for them before exiting.")]


def _given(**values) -> dict:
    """The options the user actually gave (None = not given: the model's default applies)."""
    return {key: value for key, value in values.items() if value is not None}


def _run(goal, data, crew, provider, as_json, aws, timeout, review=None, budget=None, data_uri=None,
         require_approval=False, guardrails=None, routing=None, tenant=None, user=None, memory="on",
         resume_orphans=False, allow_side_effects=False) -> None:
    def start() -> int:
        request, crew_model = build_request(goal, data, crew, provider, review=review, budget=budget, aws=aws,
                                            data_uri=data_uri, require_approval=require_approval,
                                            guardrails=guardrails, routing=routing() if routing else None,
                                            tenant=tenant, user=user, memory=memory,
                                            allow_side_effects=allow_side_effects)
        return execute(request, crew_model, aws=aws, as_json=as_json, timeout_s=timeout,
                       resume_orphans=resume_orphans)

    _execute_cli(start)


def _execute_cli(start) -> None:
    """Run ``start()`` (which builds, starts and follows a run, returning the exit code) with SIGTERM as Ctrl-C, and
    turn bad input and interrupts into one-line errors with their exit codes."""
    try:
        with sigterm_as_interrupt():
            code = start()
    except BadInput as exc:
        raise _fail(str(exc)) from None
    except Interrupted as exc:
        if exc.status is None:
            where = "on AWS it goes on"
        elif exc.status == RunStatus.FAILED:
            where = "the local run was marked FAILED"
        else:
            where = f"the local run had already ended {exc.status.value}"
        raise _fail(f"interrupted; {where} (see `stepcrew runs show {exc.run_id}`)", code=130) from None
    except KeyboardInterrupt:  # before the run existed: nothing was written
        raise _fail("interrupted before the run started; nothing was written", code=130) from None
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
        max_replans: Annotated[int | None, typer.Option(
            help="Times the planner may replan the remaining work after a sub-task failed (0-3, default 1; 0: a "
                 "failed sub-task fails the run).")] = None,
        on_review_fail: Annotated[str | None, typer.Option(
            "--on-review-fail", help="A report that fails its last review round: 'handoff' (default: NEEDS_REVIEW, "
                                     "exit 3) or 'fail' (FAILED ReviewFailed, exit 1).")] = None,
        handoff_timeout: Annotated[int | None, typer.Option(
            help="Seconds a hand-off waits for a person before the run fails ReviewTimedOut (default 86400).")] = None,
        require_approval: Annotated[bool, typer.Option(
            "--require-approval", help="Pause after planning until the plan is approved (asked here when "
                                       "interactive, else answer with `stepcrew runs approve RUN_ID`).")] = False,
        pii: Annotated[str | None, typer.Option(
            help="Guardrail: personal data in input, tool output and report: 'mask' or 'block' (tightens the "
                 "crew's policy; 'allow' needs a crew that allows it).")] = None,
        injection: Annotated[str | None, typer.Option(
            help="Guardrail: a goal that looks like a prompt injection: 'block' (the crew default) or 'flag'.")] = None,
        disclaimer: Annotated[bool, typer.Option("--disclaimer", help="Guardrail: end the report with an "
                                                                      "'AI-generated' line.")] = False,
        deny_topic: Annotated[list[str] | None, typer.Option(
            "--deny-topic", help="Guardrail: a term the goal may not name and the report may not mention "
                                 "(repeatable).")] = None,
        chain: Annotated[list[str] | None, typer.Option(
            "--chain", help="Fallback chain: 'anthropic,bedrock,openai' (both tiers) or 'fast=anthropic,openai' "
                            "(repeatable); default: STEPCREW_FALLBACK_CHAIN, else the provider alone.")] = None,
        tier: Annotated[str | None, typer.Option(help="Force one model tier on every role: fast or smart.")] = None,
        role_tier: Annotated[list[str] | None, typer.Option(
            "--role-tier", help="A role's tier, ROLE=fast|smart (repeatable).")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use or fill the response caches.")] = False,
        cache_ttl: Annotated[int | None, typer.Option(
            "--cache-ttl", help="Seconds the cache entries this run writes live (60-2592000, default 86400).")] = None,
        semantic_threshold: Annotated[float | None, typer.Option(
            help="Serve a cached plan of a goal at least this similar (0-1; default off: no safe threshold was "
                 "found, see bench/semantic_cache.py).")] = None,
        fallback_on_auth_error: Annotated[bool, typer.Option(
            "--fallback-on-auth-error", help="A rejected API key moves to the next provider instead of failing "
                                             "the run.")] = False,
        tenant: Annotated[str | None, typer.Option(help="The tenant the run belongs to (its memory, budgets and "
                                                        "caches; default: local).")] = None,
        user: Annotated[str | None, typer.Option(help="The user within the tenant: their remembered facts are "
                                                      "recalled too ('ann' or '<tenant>:ann').")] = None,
        no_memory: Annotated[bool, typer.Option("--no-memory", help="Recall nothing from the tenant's memory and "
                                                                    "leave nothing in it.")] = False,
        allow_side_effects: Annotated[bool, typer.Option(
            "--allow-side-effects", help="Operations tools (export_results, notify) act; without it they answer a dry run "
                                         "of what they would do.")] = False,
        resume_orphans: ResumeOrphansOpt = False,
        ) -> None:
    """Run GOAL with a crew: plan, sub-tasks side by side, tool calls, review rounds, final report. Exit 0
    SUCCEEDED, 1 FAILED (a budget passed, a failed review with --on-review-fail fail...), 3 NEEDS_REVIEW, 4
    DECLINED."""
    _run(goal, data, crew, provider, as_json, aws, timeout,
         review=_given(threshold=threshold, max_rounds=max_rounds, on_fail=on_review_fail,
                       handoff_timeout_s=handoff_timeout),
         budget=_given(max_tokens=max_tokens, max_cost_usd=max_cost, max_turns_per_subtask=max_turns,
                       max_replans=max_replans),
         data_uri=data_uri, require_approval=require_approval,
         guardrails=_given(pii=pii, injection=injection, disclaimer=disclaimer or None,
                           denied_topics=deny_topic or None),
         routing=lambda: _given(chains=parse_chains(chain), tier=tier, role_tiers=parse_role_tiers(role_tier),
                                cache=False if no_cache else None, semantic_threshold=semantic_threshold,
                                cache_ttl_s=cache_ttl,
                                fallback_on_auth_error=fallback_on_auth_error or None),
         tenant=tenant, user=user, memory="off" if no_memory else "on", resume_orphans=resume_orphans,
         allow_side_effects=allow_side_effects)


@app.command()
def demo(provider: ProviderOpt = None, as_json: JsonOpt = False, timeout: TimeoutOpt = 900.0,
         resume_orphans: ResumeOrphansOpt = False) -> None:
    """Run the demo goal on the bundled Palmer Penguins dataset (offline rule engine unless a provider is set)."""
    from stepcrew.data import DEMO_DATASET, DEMO_GOAL

    _run(DEMO_GOAL, DEMO_DATASET, "default", provider, as_json, False, timeout, resume_orphans=resume_orphans)


@contextlib.contextmanager
def _write_store(aws: bool):
    if aws:
        yield _aws_backend()[0]
        return
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.local.state import default_state_dir

    with stdout_reserved(), LocalRuntime(state_dir=default_state_dir(), store_only=True) as runtime:
        yield runtime.store


@contextlib.contextmanager
def _read_store(aws: bool):
    if aws:
        yield _aws_backend()[0]
        return
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.local.state import default_state_dir

    with stdout_reserved(), LocalRuntime(state_dir=default_state_dir(), read_only=True) as runtime:
        yield runtime.store


#: The tenant a `runs` command acts as. The CLI is an operator's tool: it reads the state folder (or, with --aws, the
#: table) with the operator's own access, and acts as tenant ``local`` unless told otherwise; `runs show`, `runs
#: review` and `runs resume` answer another tenant's run like a missing one.
TenantOpt = Annotated[str, typer.Option(help="The tenant to act as (default: local, the CLI's own runs).")]


@runs_app.command("list")
def runs_list(as_json: JsonOpt = False, aws: AwsOpt = False, tenant: TenantOpt = DEFAULT_TENANT,
              limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """List kept runs, newest first. Locally, an unfinished run no live process executes (its process was killed) is
    flagged orphaned (JSON ``"orphaned": true``): the next `stepcrew run`/`demo`/`dev` marks it FAILED, `stepcrew runs
    resume` continues it."""
    try:
        with _read_store(aws) as store:
            runs, _ = store.list_runs(tenant, limit=limit)
    except BadInput as exc:
        raise _fail(str(exc)) from None
    orphaned = set() if aws else _orphaned(runs)
    if as_json:
        print(json.dumps([{"run_id": r.run_id, "status": r.status.value, "created_at": r.created_at.isoformat(),
                           "engine": r.engine, "goal": r.goal[:200], **({} if aws else
                                                                       {"orphaned": r.run_id in orphaned})}
                          for r in runs]))
        return
    table = Table(title=f"runs of tenant {tenant}", title_justify="left")
    for col in ("run id", "status", "created (UTC)", "engine", "goal"):
        table.add_column(col)
    for r in runs:
        status = f"{r.status.value} (orphaned)" if r.run_id in orphaned else r.status.value
        table.add_row(r.run_id, status, f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.engine, r.goal[:60])
    Console().print(table)
    if orphaned:
        err.print(f"{len(orphaned)} run(s) marked (orphaned): no live process executes them (it was killed); "
                  f"`stepcrew runs resume ID --tenant {tenant}` continues one, the next `stepcrew run`, `demo` or "
                  "`dev` marks them FAILED LocalRuntimeExited")


def _orphaned(runs) -> set[str]:
    """Ids of the local ``runs`` that are unfinished and claimed by no live process (:mod:`stepcrew.local.liveness`)."""
    from stepcrew.domain.finalize import UNFINISHED_STATUSES
    from stepcrew.local.liveness import Claims
    from stepcrew.local.state import default_state_dir

    claims = Claims(default_state_dir())
    return {r.run_id for r in runs if r.status in UNFINISHED_STATUSES and not claims.owned_by_a_live_process(r.run_id)}


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="The run id.")], as_json: JsonOpt = False,
              aws: AwsOpt = False, tenant: TenantOpt = DEFAULT_TENANT) -> None:
    """Show one kept run of the tenant (default ``local``): plan, sub-tasks, review rounds, usage and the final
    report. Another tenant's run is answered like a missing one (exit 2)."""
    from stepcrew.service import run_result
    from stepcrew.store.base import RunNotFoundError

    try:
        with _read_store(aws) as store:
            result = run_result(store, run_id, tenant)
            result = RunShown.of(result, store.list_plan_versions(run_id))
            notifications = _run_notifications(store, run_id, tenant)
            delegations = store.list_delegations(run_id)  # after run_result: the run is the tenant's
        artifacts = _run_artifacts(aws, tenant, run_id)
    except RunNotFoundError:
        raise _fail(f"no run {run_id!r}") from None
    except BadInput as exc:
        raise _fail(str(exc)) from None
    if as_json:  # the RunResult plus "artifacts": [{"key", "kind", "name", "bytes", "content_type"}] (null: unknown)
        print(json.dumps({**json.loads(result.model_dump_json()), "artifacts": artifacts,
                          "notifications": notifications,
                          # a hierarchical / hybrid run: its manager's delegations (stepcrew.models.Delegation)
                          **({"delegations": [json.loads(d.model_dump_json()) for d in delegations]}
                             if delegations else {})}))
        return
    print_result(result, as_json, sys.stdout)
    _print_artifacts(run_id, artifacts)
    _print_notifications(run_id, notifications)
    _print_delegations(run_id, delegations)


def _print_delegations(run_id: str, delegations: list) -> None:
    """The manager's delegations of a hierarchical / hybrid run (stepcrew.models.Delegation), one row each."""
    if not delegations:
        return
    table = Table(title=f"delegations of {run_id} (manager)", title_justify="left")
    for col in ("#", "round", "worker", "sub-task", "kind", "verdict", "instructions / feedback"):
        table.add_column(col)
    for d in delegations:
        note = d.error if d.verdict == "rejected" else (d.feedback or d.instructions)
        table.add_row(str(d.seq), str(d.round), d.worker or "—", d.subtask_id, d.kind, d.verdict or "pending",
                      (note[:40] + "…") if len(note) > 40 else note)
    err.print(table)


def _run_notifications(store, run_id: str, tenant: str) -> list[dict]:
    """The run's ``notify`` calls from their receipts (tenant-scoped, :func:`stepcrew.tools.notify.list_notifications`):
    ``[{"subtask_id", "call_id", "status", "started_at", "published"}]``; ``published`` (subject, sizes, attributes,
    message id) is null while a receipt is PENDING (in doubt)."""
    import dataclasses

    from stepcrew.tools.notify import list_notifications

    client = getattr(store, "_client", None)
    if client is None:
        return []
    return [dataclasses.asdict(n) for n in list_notifications(client, store.table_name, run_id, tenant)]


def _print_notifications(run_id: str, notifications: list[dict]) -> None:
    if not notifications:
        return
    table = Table(title=f"notifications of {run_id} (notify tool receipts)", title_justify="left")
    for col in ("sub-task", "call", "status", "subject", "message id"):
        table.add_column(col)
    for n in notifications:
        published = n["published"] or {}
        table.add_row(n["subtask_id"], n["call_id"], n["status"] if n["published"] or n["status"] == "DONE" else
                      f"{n['status']} (in doubt)", published.get("subject", ""), published.get("message_id", ""))
    err.print(table)


def _artifact_store(aws: bool):
    """The run-artifacts store: locally the files the local runtime keeps (the datasets folder,
    :meth:`stepcrew.local.runtime.LocalRuntime.save_artifacts`); with ``--aws`` the stack's artifacts bucket (env
    ``STEPCREW_ARTIFACTS_BUCKET``, the ``ArtifactsBucket`` output), or None when it is not set."""
    from stepcrew.tools.artifacts import FolderArtifactStore, S3ArtifactStore

    if not aws:
        from stepcrew.local.runtime import default_datasets_dir

        return FolderArtifactStore(default_datasets_dir())
    bucket = os.environ.get("STEPCREW_ARTIFACTS_BUCKET")
    if not bucket:
        return None
    import boto3

    return S3ArtifactStore(boto3.client("s3"), bucket)


def _run_artifacts(aws: bool, tenant: str, run_id: str) -> list[dict] | None:
    """The run's artifacts (tenant-scoped: another tenant's run has none here), or None when they cannot be read
    (``--aws`` without ``STEPCREW_ARTIFACTS_BUCKET``)."""
    store = _artifact_store(aws)
    if store is None:
        return None
    try:
        return store.list(tenant, run_id)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _print_artifacts(run_id: str, artifacts: list[dict] | None) -> None:
    if artifacts is None:
        err.print("artifacts: not listed (--aws needs STEPCREW_ARTIFACTS_BUCKET, the stack's artifacts bucket)")
        return
    if not artifacts:
        return
    table = Table(title=f"artifacts of {run_id} (`stepcrew runs artifacts {run_id} --out DIR`)", title_justify="left")
    for col in ("kind", "name", "bytes"):
        table.add_column(col)
    for a in artifacts:
        table.add_row(a["kind"], a["name"], str(a["bytes"]))
    err.print(table)


@runs_app.command("artifacts")
def runs_artifacts(run_id: Annotated[str, typer.Argument(help="The run id.")],
                   out: Annotated[Path, typer.Option("--out", help="Folder to write them to (created).")],
                   as_json: JsonOpt = False, aws: AwsOpt = False, tenant: TenantOpt = DEFAULT_TENANT) -> None:
    """Download a run's artifacts (charts, exports) of the tenant (default ``local``) to ``OUT/<kind>/<name>``
    (existing files are overwritten). Another tenant's run is answered like a missing one (exit 2); a name that would
    land outside OUT is refused (exit 2, nothing more written). ``--json``: ``[{"kind", "name", "bytes", "path"}]``."""
    from stepcrew.service import run_result
    from stepcrew.store.base import RunNotFoundError

    try:
        with _read_store(aws) as store:
            run_result(store, run_id, tenant)  # the tenant check: the run must be this tenant's
        store = _artifact_store(aws)
        if store is None:
            raise BadInput("--aws needs STEPCREW_ARTIFACTS_BUCKET (the stack's artifacts bucket)")
        artifacts = _run_artifacts(aws, tenant, run_id) or []
        written = _download_artifacts(store, tenant, artifacts, out)
    except RunNotFoundError:
        raise _fail(f"no run {run_id!r}") from None
    except BadInput as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(written))
        return
    for w in written:
        print(f"{w['path']}\t{w['bytes']} bytes")
    err.print(f"{len(written)} artifact(s) of {run_id} in {out}")


def _download_artifacts(store, tenant: str, artifacts: list[dict], out: Path) -> list[dict]:
    """Write each artifact to ``out/<kind>/<name>`` (``out`` created). Raises BadInput for an ``out`` that is not a
    folder, a destination outside ``out`` or an artifact that vanished."""
    root = out.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise BadInput(f"--out {out} is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create {out}: {exc.strerror or exc}") from None
    written = []
    for a in artifacts:
        target = (root / a["kind"] / a["name"]).resolve()
        if root not in target.parents or a["kind"] in ("", ".", "..") or a["name"] in ("", ".", ".."):
            raise BadInput(f"refused: artifact {a['key']!r} would be written outside {out}")
        body = store.get(tenant, a["key"])
        if body is None:
            raise BadInput(f"artifact {a['key']!r} is gone")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        except OSError as exc:
            raise BadInput(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append({"kind": a["kind"], "name": a["name"], "bytes": len(body), "path": str(target)})
    return written


@runs_app.command("resume")
def runs_resume(run_id: Annotated[str, typer.Argument(help="The run id (FAILED LocalRuntimeExited).")],
                as_json: JsonOpt = False, timeout: TimeoutOpt = 900.0, tenant: TenantOpt = DEFAULT_TENANT) -> None:
    """Continue a local run of the tenant (default ``local``) its process left unfinished (killed, interrupted,
    timed out) from what it stored: no model call paid twice, no tool call repeated, except the one in flight when it
    stopped. Follows it like `stepcrew run` (same exit codes). A run that is unknown, another tenant's, finished or
    still running elsewhere: one line, exit 2."""
    _execute_cli(lambda: execute(None, None, aws=False, as_json=as_json, timeout_s=timeout, resume=run_id,
                                 resume_tenant=tenant))


@runs_app.command("redrive")
def runs_redrive(run_id: Annotated[str, typer.Argument(help="The run id (= its execution's name).")],
                 aws: AwsOpt = False, tenant: TenantOpt = DEFAULT_TENANT) -> None:
    """Redrive a deployed run whose execution ended without finishing it (aborted, timed out, failed outside its
    workflow's Catch): Step Functions RedriveExecution from the failed step, the record reopened under a conditional
    write. A run whose failure its workflow recorded, a finished or unknown run: one line, exit 2. Local runs: `stepcrew
    runs resume`."""
    import boto3
    from botocore.exceptions import BotoCoreError

    from stepcrew.domain.redrive import RedriveError, redrive_run
    from stepcrew.store.base import StoreError

    if not aws:
        raise _fail("`stepcrew runs redrive` acts on a deployed run (--aws); a local run is continued with `stepcrew "
                    "runs resume RUN_ID`")
    try:
        store = _aws_backend()[0]
        arn = redrive_run(store, boto3.client("stepfunctions"), run_id, tenant)
    except (BadInput, RedriveError) as exc:
        raise _fail_plain(str(exc)) from None
    except (BotoCoreError, StoreError) as exc:  # no region/credentials, DynamoDB unreachable: not the caller's input
        raise _fail_plain(f"AWS could not be reached: {type(exc).__name__}: {exc}", 1) from None
    err.print(f"run [bold]{run_id}[/] redriven ({arn}); follow it with `stepcrew runs show {run_id} --aws`")


@runs_app.command("approve")
def runs_approve(run_id: Annotated[str, typer.Argument(help="The run id (WAITING_APPROVAL).")],
                 reject: Annotated[bool, typer.Option("--reject", help="Reject the plan (the run FAILS).")] = False,
                 comment: Annotated[str, typer.Option(help="Why (shown as the failure reason when rejected).")] = "",
                 wait: Annotated[float, typer.Option(help="Seconds to wait for the run's process.")] = 30.0) -> None:
    """Approve (or --reject) the plan of a local run waiting for approval. A local run waits in its own `stepcrew
    run --require-approval` process; the answer is handed to that process. Exit 0 answered, 1 not answered, 2 no such
    waiting run."""
    folder = decisions_dir()
    live = folder / f"{run_id}.live"
    try:
        pid = int(live.read_text()) if live.is_file() else 0
    except ValueError:
        pid = 0
    if not pid or not _pid_alive(pid):
        raise _fail(f"no `stepcrew run` process is waiting for the approval of run {run_id!r} (a local run waits "
                    "only while its process runs; over HTTP use `stepcrew dev` and POST /runs/{id}/approval)")
    done = folder / f"{run_id}.approval.done"
    done.unlink(missing_ok=True)
    tmp = folder / f".{run_id}.approval.json.tmp"
    tmp.write_text(json.dumps({"approved": not reject, "comment": comment}))
    tmp.replace(folder / f"{run_id}.approval.json")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if done.is_file():
            outcome = json.loads(done.read_text())
            done.unlink(missing_ok=True)
            if not outcome.get("ok"):
                raise _fail(outcome.get("error", "the answer was refused"), code=1)
            err.print(f"run {run_id}: plan {'approved' if not reject else 'rejected'}")
            return
        time.sleep(0.1)
    (folder / f"{run_id}.approval.json").unlink(missing_ok=True)
    raise _fail(f"the process of run {run_id} did not take the answer within {wait:.0f} s", code=1)


@runs_app.command("review")
def runs_review(run_id: Annotated[str, typer.Argument(help="The run id (NEEDS_REVIEW).")],
                accept: Annotated[bool | None, typer.Option("--accept/--reject",
                                                            help="Accept the report (SUCCEEDED) or reject it "
                                                                 "(FAILED ReviewRejected).")] = None,
                comment: Annotated[str, typer.Option(help="Why (the failure reason when rejected).")] = "",
                report: Annotated[Path | None, typer.Option(help="A corrected report (Markdown file) to keep "
                                                                 "when accepting.")] = None,
                as_json: JsonOpt = False, tenant: TenantOpt = DEFAULT_TENANT) -> None:
    """Answer a local run handed off for review (its report failed the last review round). Exit 0 accepted
    (SUCCEEDED), 1 rejected (FAILED) or expired (FAILED ReviewTimedOut), 2 bad input (no such run, not NEEDS_REVIEW,
    no --accept/--reject)."""
    from stepcrew.domain.decisions import DecisionClosed, DecisionError, answer_review
    from stepcrew.domain.screening import output_screen
    from stepcrew.local.runtime import LocalRuntime
    from stepcrew.local.state import default_state_dir
    from stepcrew.models import ReviewDecision
    from stepcrew.service import run_result
    from stepcrew.store.base import RunNotFoundError, StoreError

    if accept is None:
        raise _fail("give --accept or --reject")
    text = None
    if report is not None:
        try:
            text = report.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read the report {report}: {exc}") from None
    code = 0
    with stdout_reserved() as out, LocalRuntime(state_dir=default_state_dir(), store_only=True) as runtime:
        try:
            answer_review(runtime.store, None, run_id, tenant, ReviewDecision(accept=accept, comment=comment), text,
                          screen=output_screen(runtime.store))
        except RunNotFoundError:
            raise _fail(f"no run {run_id!r}") from None
        except DecisionClosed as exc:
            err.print(f"[red]error:[/] {exc}")
            code = 1
        except DecisionError as exc:
            raise _fail(str(exc)) from None
        except StoreError as exc:
            raise _fail(f"the answer could not be stored, nothing changed: {exc}", code=1) from None
        result = run_result(runtime.store, run_id, tenant)
        print_result(result, as_json, out)
    raise typer.Exit(code or EXIT_CODES.get(result.status, 1))


@app.command()
def dev(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000,
        data_dir: Annotated[list[Path] | None, typer.Option(
            "--data-dir", help="A folder file:// datasets may be read from (repeat for more; the bundled datasets "
                               "are always allowed).")] = None,
        resume_orphans: ResumeOrphansOpt = False,
        runtime_for: Annotated[str | None, typer.Option(
            "--runtime-for", hidden=True, help="Internal: serve as the runtime process behind the front at this URL "
                                               "(an ephemeral port, printed on stdout).")] = None) -> None:
    """Serve the HTTP API on 127.0.0.1 with the local runtime behind it (a local token stands in for JWT).

    Two processes: this one holds the port and answers /health; the runs execute in a runtime process it starts and
    forwards every other request to (:mod:`stepcrew.local.front`)."""
    folders = tuple(data_dir or ())
    missing = [str(d) for d in folders if not d.is_dir()]
    if missing:
        raise _fail(f"--data-dir is not a folder: {', '.join(missing)}")
    if runtime_for is None:
        from stepcrew.local.front import run_front

        args = [arg for d in folders for arg in ("--data-dir", str(d))] + (["--resume-orphans"] if resume_orphans
                                                                            else [])
        try:
            code = run_front("127.0.0.1", port, args)
        except OSError as exc:  # the port is taken or not ours to bind: nothing started
            raise _fail_plain(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
        raise typer.Exit(code)
    from stepcrew.api.dev import DevConfigError, serve
    from stepcrew.local.front import exit_with_front
    from stepcrew.local.state import default_state_dir

    exit_with_front()  # the front died (even by SIGKILL): end at once, like a killed server

    def ready(server) -> None:  # the front reads the port from our first stdout line
        sys.stdout.write(f"{server.server_address[1]}\n")
        sys.stdout.flush()

    with sigterm_as_interrupt():  # SIGTERM stops it like Ctrl-C: runs in flight marked FAILED, sub-tasks closed, saved
        try:
            serve(host="127.0.0.1", port=0, state_dir=default_state_dir(), data_dirs=folders,
                  resume_orphans=resume_orphans, public_url=runtime_for, on_ready=ready)
        except DevConfigError as exc:  # e.g. STEPCREW_DEV_MAX_RUNS=abc: one line, exit 2, nothing started
            raise _fail_plain(str(exc)) from None


def put_dataset(file: Path, tenant: str, name: str | None = None, folder: Path | None = None) -> str:
    """Store ``file`` as ``tenant``'s upload ``name`` (default: the file's name) in the local datasets folder
    (``folder``, default :func:`stepcrew.local.runtime.default_datasets_dir`), as ``POST /datasets`` does on AWS:
    same name rules, same size limit, and the file is checked like a dataset before it is kept. Returns the URI
    ``s3://stepcrew-local-datasets/<tenant>/uploads/<name>``. Raises BadInput (nothing written)."""
    import re

    from stepcrew.local.runtime import LOCAL_DATA_BUCKET, default_datasets_dir, store_local_dataset
    from stepcrew.models import TENANT_PATTERN
    from stepcrew.tools.datasets import MAX_DATASET_BYTES, check_dataset_file, upload_key, upload_name_error
    from stepcrew.tools.errors import DatasetError

    if not re.fullmatch(TENANT_PATTERN, tenant):
        raise BadInput("--tenant must be 1-128 of [A-Za-z0-9_.@-], starting with a letter or digit")
    name = file.name if name is None else name
    problem = upload_name_error(name)
    if problem is not None:
        raise BadInput(problem[1])
    if not file.is_file():
        raise BadInput(f"no such file: {file}")
    size = file.stat().st_size
    if size > MAX_DATASET_BYTES:
        raise BadInput(f"{file.name} is too big: {size} bytes (limit {MAX_DATASET_BYTES} bytes)")
    try:
        check_dataset_file(file, name)  # empty, binary, not UTF-8, no header... as the tools would refuse it
    except DatasetError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"cannot read {file.name}: {exc.strerror or exc}") from None
    key = upload_key(tenant, name)
    try:
        store_local_dataset(folder or default_datasets_dir(), key, file)
    except OSError as exc:
        raise BadInput(f"cannot store the dataset: {exc.strerror or exc}") from None
    return f"s3://{LOCAL_DATA_BUCKET}/{key}"


@tenants_app.command("budget")
def tenants_budget(tenant: Annotated[str, typer.Argument(help="The tenant id.")],
                   daily: Annotated[float | None, typer.Option(help="Daily cap in USD (UTC day).")] = None,
                   monthly: Annotated[float | None, typer.Option(help="Monthly cap in USD (UTC month).")] = None,
                   clear: Annotated[bool, typer.Option("--clear", help="Remove the tenant's caps (the stage "
                                                                      "default applies).")] = False,
                   aws: AwsOpt = False, as_json: JsonOpt = False) -> None:
    """Show or set TENANT's $ budgets: a run of a tenant over a cap does not start (API 429
    tenant_budget_exceeded, CLI exit 2), and each model call reserves its maximum cost first."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from stepcrew.resilience.tenant_budget import NO_CAP, TenantBudget, check_tenant, ledger_for

    try:
        check_tenant(tenant)
        budget = None
        if clear or daily is not None or monthly is not None:
            budget = NO_CAP if clear else TenantBudget(daily_usd=daily, monthly_usd=monthly)
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise _fail(f"invalid budget: {first}") from None
    with (_write_store(aws) if budget is not None else _read_store(aws)) as store:
        ledger = ledger_for(store)
        if budget is not None:
            ledger.set_budget(tenant, budget)
        current = ledger.get_budget(tenant)
        day, month = ledger.spent(tenant, datetime.now(UTC))
    doc = {"tenant": tenant, "daily_usd": current.daily_usd, "monthly_usd": current.monthly_usd,
           "spent_today_usd": round(day, 6), "spent_this_month_usd": round(month, 6)}
    if as_json:
        print(json.dumps(doc))
        return
    cap = lambda v: "no cap" if v is None else f"${v:g}"  # noqa: E731
    err.print(f"tenant {tenant}: daily {cap(current.daily_usd)} (spent ${day:.4f}), monthly "
              f"{cap(current.monthly_usd)} (spent ${month:.4f})")


# --------------------------------------------------------------------------------------------- memory
#: Options of the memory commands. The tenant is the operator's choice (default ``local``, the CLI's own runs); the
#: user is ``<name>`` or ``<tenant>:<name>`` (another tenant's: exit 2).
MemTenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant whose memory it is (default: local).")]
MemUserOpt = Annotated[str | None, typer.Option("--user", help="A user within the tenant: NAME or TENANT:NAME.")]


def _memory_checks(tenant: str, user: str | None) -> str | None:
    """The user id within ``tenant``. Raises BadInput (bad tenant id, a user of another tenant, a bad user id)."""
    import re

    from stepcrew.memory.models import resolve_user
    from stepcrew.models import TENANT_PATTERN

    if not re.fullmatch(TENANT_PATTERN, tenant):
        raise BadInput("--tenant must be 1-128 of [A-Za-z0-9_.@-], starting with a letter or digit")
    try:
        return resolve_user(tenant, user)
    except ValueError as exc:  # UserOutsideTenantError included
        raise BadInput(str(exc)) from None


def _local_memory(store):
    """The tenant memory on the local store (read, forget, clear; writes go through :func:`_memory_writer`)."""
    from stepcrew.engines.resolve import EngineResolver
    from stepcrew.memory.wiring import memory_for

    return memory_for(EngineResolver(), store)


def _memory_writer(memory):
    """The local writer: the memory function's use case in this process, with the offline PII guard."""
    from stepcrew.memory.writer import InProcessWriter, local_guard

    return InProcessWriter(memory, guard_factory=local_guard)


def _fail_plain(message: str, code: int = 2) -> typer.Exit:
    """:func:`_fail` for a message that may hold user text (no rich markup is interpreted)."""
    from rich.markup import escape

    return _fail(escape(message), code)


@memory_app.command("list")
def memory_list(tenant: MemTenantOpt = DEFAULT_TENANT, user: MemUserOpt = None, as_json: JsonOpt = False,
                kind: Annotated[str, typer.Option(help="fact, episode or all.")] = "all",
                limit: Annotated[int, typer.Option(min=1, max=1000, help="Items of each kind at most.")] = 100
                ) -> None:
    """List the tenant's facts (oldest first) and episodes (newest first); --user: that user's only. --json prints
    one JSON object (as GET /memory)."""
    try:
        if kind not in ("fact", "episode", "all"):
            raise BadInput(f"--kind must be fact, episode or all, not {kind!r}")
        _memory_checks(tenant, user)
        with _read_store(False) as store:
            listed = _local_memory(store).list(tenant, kind, user=user, limit=limit)
    except BadInput as exc:
        raise _fail_plain(str(exc)) from None
    if as_json:
        print(listed.model_dump_json())
        return
    out = Console(highlight=False)
    if kind in ("fact", "all"):
        table = Table(title=f"facts of tenant {tenant}" + (f", user {user}" if user else ""), title_justify="left")
        table.add_column("id", no_wrap=True)
        for col in ("subject", "text", "user", "from run"):
            table.add_column(col)
        for f in listed.facts:
            table.add_row(f.memory_id, f.subject, f.text + (f" ({f.kind})" if f.kind != "fact" else ""),
                          f.user or "—", f.source_run or "(added)")
        out.print(table)
    if kind in ("episode", "all"):
        table = Table(title=f"episodes of tenant {tenant}", title_justify="left")
        table.add_column("id", no_wrap=True)
        for col in ("status", "review", "goal"):
            table.add_column(col)
        for e in listed.episodes:
            table.add_row(e.memory_id, e.status, "—" if e.review_overall is None else f"{e.review_overall:.2f}",
                          e.goal[:80])
        out.print(table)


@memory_app.command("add")
def memory_add(text: Annotated[str, typer.Argument(help="The fact, one line (1-500 characters).")],
               subject: Annotated[str | None, typer.Option(help="What it is about (the same subject replaces the "
                                                                "earlier fact); default: derived from the text.")]
               = None,
               kind: Annotated[str, typer.Option(help="fact or preference.")] = "fact",
               ttl: Annotated[float | None, typer.Option("--ttl", help="Seconds it lives (60 s to 10 years); "
                                                                       "default: until deleted or evicted.")] = None,
               confidence: Annotated[float, typer.Option(help="0-1.")] = 1.0,
               tenant: MemTenantOpt = DEFAULT_TENANT, user: MemUserOpt = None, as_json: JsonOpt = False) -> None:
    """Remember TEXT for the tenant (or one user). It passes the PII guard first: personal data is masked, a text
    that looks like a prompt injection is refused (exit 2, nothing written). --json prints what was written (as
    POST /memory)."""
    from pydantic import ValidationError

    from stepcrew.memory.models import FactIn
    from stepcrew.memory.writer import MemoryUnavailableError
    from stepcrew.text import describe_validation_error

    try:
        _memory_checks(tenant, user)
        try:
            fact = FactIn(text=text, subject=subject, kind=kind, ttl_s=ttl, confidence=confidence)
        except ValidationError as exc:
            raise BadInput(f"invalid fact: {describe_validation_error(exc)}") from None
        with _write_store(False) as store:
            result = _memory_writer(_local_memory(store)).remember(tenant, [fact], user)
    except BadInput as exc:
        raise _fail_plain(str(exc)) from None
    except MemoryUnavailableError as exc:
        raise _fail_plain(f"nothing remembered: {exc}", code=1) from None
    except ValueError as exc:  # MemoryRejectedError, UserOutsideTenantError: the writer refused it, nothing written
        raise _fail_plain(str(exc)) from None
    if as_json:
        print(result.model_dump_json())
        return
    ids = [(i, "created") for i in result.created] + [(i, "updated") for i in result.updated]
    for mid, what in ids:
        err.print(f"remembered {mid} ({what})", markup=False)
    if result.masked:
        err.print(f"personal data masked first: {_counts(result.masked)}", markup=False)
    if result.evicted:
        err.print(f"evicted by the tenant's cap: {', '.join(result.evicted)}", markup=False)


@memory_app.command("forget")
def memory_forget(memory_id: Annotated[str, typer.Argument(metavar="ID", help="The item's id (f-... or e-...).")],
                  tenant: MemTenantOpt = DEFAULT_TENANT, as_json: JsonOpt = False) -> None:
    """Delete one item of the tenant (and its vector). Exit 2 when the tenant has no such item."""
    import re

    from stepcrew.memory.models import MEMORY_ID_PATTERN

    try:
        _memory_checks(tenant, None)
        if not re.fullmatch(MEMORY_ID_PATTERN, memory_id):
            raise BadInput(f"no memory item {memory_id[:64]!r} (ids are f-<20 hex> or e-<time>-<run id>)")
        with _write_store(False) as store:
            gone = _local_memory(store).forget(tenant, memory_id)
        if not gone:
            raise BadInput(f"no memory item {memory_id!r} for tenant {tenant!r}")
    except BadInput as exc:
        raise _fail_plain(str(exc)) from None
    if as_json:
        print(json.dumps({"deleted": 1, "memory_id": memory_id}))
        return
    err.print(f"forgot {memory_id}", markup=False)


@memory_app.command("clear")
def memory_clear(tenant: MemTenantOpt = DEFAULT_TENANT, user: MemUserOpt = None, as_json: JsonOpt = False,
                 yes: Annotated[bool, typer.Option("--yes", help="Required: confirm the erase.")] = False) -> None:
    """Erase the tenant's memory (facts and episodes, with their vectors), or with --user only that user's items.
    Refused without --yes (exit 2)."""
    try:
        _memory_checks(tenant, user)
        if not yes:
            scope = f"user {user!r} of tenant {tenant!r}" if user else f"tenant {tenant!r}"
            raise BadInput(f"this erases the memory of {scope}; add --yes to confirm")
        with _write_store(False) as store:
            deleted = _local_memory(store).clear(tenant, user=user)
    except BadInput as exc:
        raise _fail_plain(str(exc)) from None
    if as_json:
        print(json.dumps({"deleted": deleted}))
        return
    err.print(f"deleted {deleted} item(s)", markup=False)


@datasets_app.command("put")
def datasets_put(
        file: Annotated[Path, typer.Argument(help="CSV/Parquet/JSON/JSON Lines file to store.")],
        tenant: Annotated[str, typer.Option(help="Tenant whose prefix holds it (stepcrew run's tenant is "
                                                 "'local').")] = "local",
        name: Annotated[str | None, typer.Option(help="Name under <tenant>/uploads/ (default: the file's "
                                                      "name).")] = None) -> None:
    """Store FILE in the local datasets bucket under the tenant's prefix and print its s3:// URI, for `stepcrew run
    GOAL --data-uri URI` (or POST /runs on `stepcrew dev`). Exit 2 for a missing, oversized or unsupported file."""
    try:
        uri = put_dataset(file, tenant, name)
    except BadInput as exc:
        from rich.markup import escape

        raise _fail(escape(str(exc))) from None
    print(uri)


@app.command("eval")
def eval_suite(
        suite: Annotated[str, typer.Argument(help="A suite YAML file, or a shipped suite's name (analyst).")],
        provider: Annotated[str, typer.Option("--provider", help="rule | anthropic | openai | bedrock (default "
                                              "rule: offline; another provider also judges each report)")] = "rule",
        as_json: JsonOpt = False,
        gate: Annotated[bool, typer.Option("--gate", help="Exit 1 when the suite's gate thresholds fail.")] = False,
        out: Annotated[Path | None, typer.Option("--out", help="Also write eval.md and eval.json here.")] = None,
        case: Annotated[list[str] | None, typer.Option("--case", help="Run only this case id (repeatable).")] = None,
        timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for each run.")] = 300.0,
) -> None:
    """Run a golden-set eval suite: every case as a real local run, scored against its expected answer (entity,
    figures, tools, or a decline). Prints a Markdown table (one JSON object with --json). Exit 0; with --gate 1
    when a threshold fails; 2 for bad input (nothing run)."""
    from stepcrew.evals.report import outcome, to_json, to_markdown
    from stepcrew.evals.runner import gate as check_gate
    from stepcrew.evals.runner import llm_judge, run_suite, select_cases
    from stepcrew.evals.suite import SuiteError, load_suite
    from stepcrew.llm import registry

    try:
        try:
            loaded = load_suite(suite)
            registry.check_provider(provider)
            selected = select_cases(loaded, case)
        except (SuiteError, registry.UnknownProviderError, ValueError) as exc:
            raise BadInput(str(exc)) from exc
        sdk = {"anthropic": "anthropic", "openai": "openai"}.get(provider)
        if sdk:
            import importlib.util

            if importlib.util.find_spec(sdk) is None:
                raise BadInput(f"provider {provider!r} needs the {sdk} SDK: pip install 'stepcrew[{sdk}]'")
        if out is not None:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BadInput(f"--out {out}: cannot create the folder: {exc.strerror or exc}") from exc
        try:
            judge = llm_judge(provider) if provider != registry.RULE else None
        except Exception as exc:  # noqa: BLE001  a provider that cannot even be built: bad input, nothing run
            raise BadInput(f"cannot build the judge for provider {provider!r}: {exc}") from exc
        done = [0]

        def progress(result) -> None:
            done[0] += 1
            err.print(f"[{done[0]}/{len(selected)}] {result.id} {result.status} {outcome(result)}"
                      + (f" ({result.error})" if result.error else ""), markup=False)

        with sigterm_as_interrupt(), stdout_reserved() as stdout:
            err.print(f"eval {loaded.name}: {len(selected)} case(s), provider {provider}", markup=False)
            report = run_suite(loaded, provider=provider, timeout_s=timeout, case_ids=case, judge=judge,
                               on_case=progress)
            failures = check_gate(report, loaded.gate)
            payload = to_json(report)
            text = json.dumps(payload) + "\n" if as_json else to_markdown(report)
            if out is not None:
                (out / "eval.md").write_text(to_markdown(report), encoding="utf-8")
                (out / "eval.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
            stdout.write(text)
    except BadInput as exc:
        from rich.markup import escape

        raise _fail(escape(str(exc))) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; the runs in flight were stopped", code=130) from None
    t = report.totals
    err.print(f"score {t.score:.2f} ({t.success + t.declined_correctly}/{t.cases}) · wrong but passed "
              f"{t.wrong_but_passed} · wall {t.wall_s:.1f} s", markup=False)
    for failure in failures:
        err.print(f"gate {'failed' if gate else '(not enforced)'}: {failure}", markup=False)
    raise typer.Exit(1 if gate and failures else 0)


def main() -> None:
    """Console-script entry point. A state folder that cannot be read is a one-line error, exit 2 (never a
    traceback)."""
    from stepcrew.local.state import StateFileError

    try:
        app()
    except StateFileError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
