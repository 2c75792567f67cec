"""Retries and waits of a run as they happen, read from its Step Functions execution history (the CLI's progress view).

Why the execution history, and not an event the retried Lambda writes: an ASL ``Retry`` is decided and slept by Step
Functions, not by our code. The history records it where it happens, the same deployed and locally: a failed attempt is
a ``TaskFailed`` (``LambdaFunctionFailed`` / ``...TimedOut`` for other Task forms) with its ``error`` and ``cause``,
and the next attempt is the ``TaskScheduled`` that follows it (its ``previousEventId`` is the failure). moto's ASL
interpreter writes the same events, live, so one follower serves ``stepcrew run`` (moto, in-process) and
``stepcrew run --aws`` (the deployed execution) through the same boto3 ``stepfunctions`` calls. A Lambda emitting a
``retrying`` progress event at ``$$.State.RetryCount > 0`` would only say so once the wait is over; a model call that
keeps failing would be silent until then. The delay of the next attempt is not in the history: it is computed from the
state's ``Retry`` in the definition Step Functions runs (``DescribeStateMachine``, read once per state machine), as
AWS documents it: ``IntervalSeconds * BackoffRate ** (n - 1)`` for retry ``n`` of a retrier, capped by
``MaxDelaySeconds``, each retrier counting its own attempts (defaults 1 s, 3 attempts, rate 2.0); with
``JitterStrategy: FULL`` the real delay is random in ``[0, that]``, so the view says "≤ N s". The retrier that
applies is the first whose ``ErrorEquals`` holds the error, ``States.ALL``, or ``States.TaskFailed`` (any error but
``States.Timeout``); an exhausted retrier means no retry (the Catch, if any, takes over).

Locally with fast waits (:mod:`stepcrew.local.hook`) every Retry interval and Wait sleeps at most ``fast_wait_cap``
seconds: the view gives the interval Step Functions would wait and says it was shortened to that cap. When the next
attempt is already in the history, the line also says after how long it really started (the two timestamps).

Which call: the state's name (``CallModel``, ``Plan``, ``Calculator``...), its role (:data:`STATE_ROLES`), the sub-task
(the ``subtask_id`` of the agent execution's input, or of the Map item that starts it) and the tool
(``Payload.call.name`` of a tool Task's parameters). The sub-tasks' agent executions are found in the run's history
(the ``ExecutionArn`` in the output of a ``states:startExecution`` Task) and followed too. Nothing else of the
payloads is kept or shown: arguments, prompts and outputs are read only to pick those names. The error message is
shown cut to :data:`MESSAGE_CHARS` characters on one line. Wait states are shown when entered (``Seconds``; a
``SecondsPath`` / timestamp wait as "waiting"). A run waiting for a person is shown by the run's own progress events
(``approval_requested``: waiting for approval of the plan; ``needs_review``: handed off for review until the
deadline), not here.

Cost (``bench/progress_waits.py``, the demo run followed with and without this): each execution's history is read at
most every ``min_interval_s`` (0.5 s) and all reads share a token bucket of ``max_calls_per_s`` (4/s, burst 4), so a
run with 8 sub-tasks costs at most 4 calls a second, a fifth of the account's ``GetExecutionHistory`` refill of 20/s
(bucket 400; "Quotas related to API action throttling", Step Functions developer guide; shared by every caller of the
account and Region). Only new events are read and parsed: pages newest first (``reverseOrder``, ``maxResults`` 100
deployed) down to the last event already seen, and an execution is no longer read once its ``Execution*`` end event
was seen. Locally the read goes through :class:`LocalHistoryClient` (same contract, moto's in-process event list):
through boto3, moto's response serialiser took 73-120 ms per read of a finished demo run's 111 events and made the
run 1.25-1.35x slower when every history was read at every tick; a 20-event page of the local client takes ~0.3 ms,
and the bounded follower's polls took ~2 % of the run's wall time, the run's wall time within the machine's noise.
A final read of every open execution (:meth:`ExecutionWaits.poll`
with ``force=True``) happens when the run ends, so no retry is left out. A ``ClientError`` (e.g. ``AccessDenied`` for
a CLI user without ``states:GetExecutionHistory``) turns the follower off with one notice; the run's progress events go
on as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

#: Events per page read locally (:class:`LocalHistoryClient` copies one page per read; deployed: 100).
LOCAL_PAGE = 20
#: Error messages are cut to this many characters (one line) in the view.
MESSAGE_CHARS = 160
#: Role of the states of statemachines/*.asl.json that call a model (others: the state's name alone).
STATE_ROLES = {"Plan": "planner", "Replan": "planner", "Synthesize": "synthesizer", "Improve": "synthesizer",
               "ProposeMemory": "synthesizer", "Review": "reviewer", "ReviewAgain": "reviewer",
               "ReviewRoundFailed": "reviewer", "ReviewAgainRoundFailed": "reviewer", "CallModel": "worker",
               "ReturnResults": "worker", "RunSubtask": "sub-task execution", "WaitForApproval": "approval",
               "HandOff": "review hand-off", "ReplanAfterFailure": "planner", "ReplanAfterFailureAgain": "planner",
               "ReplanFailed": "planner",
               "Manage": "manager", "RunDelegation": "delegated sub-task execution"}
_FAILED = {"TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed", "LambdaFunctionFailed",
           "LambdaFunctionTimedOut", "LambdaFunctionStartFailed", "LambdaFunctionScheduleFailed",
           "ActivityFailed", "ActivityTimedOut", "ActivityScheduleFailed"}
_SCHEDULED = {"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"}
_ENDED = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}


# ------------------------------------------------------------------------------------------------- the ASL side
@dataclass(frozen=True)
class Retrier:
    """One ASL retrier. Seconds; ``max_delay_s`` None = no cap; ``jitter`` ``NONE`` or ``FULL``."""

    error_equals: tuple[str, ...]
    interval_s: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_s: float | None = None
    jitter: str = "NONE"

    @classmethod
    def from_asl(cls, d: dict) -> Retrier:
        """From an ASL ``Retry`` entry (missing fields take the ASL defaults)."""
        return cls(error_equals=tuple(d.get("ErrorEquals", ())), interval_s=float(d.get("IntervalSeconds", 1)),
                   max_attempts=int(d.get("MaxAttempts", 3)), backoff_rate=float(d.get("BackoffRate", 2.0)),
                   max_delay_s=float(d["MaxDelaySeconds"]) if "MaxDelaySeconds" in d else None,
                   jitter=str(d.get("JitterStrategy", "NONE")))

    def matches(self, error: str) -> bool:
        """Whether ``error`` is one of this retrier's ``ErrorEquals`` (with ``States.ALL`` / ``States.TaskFailed``)."""
        return (error in self.error_equals or "States.ALL" in self.error_equals
                or ("States.TaskFailed" in self.error_equals and error != "States.Timeout"))

    def delay_s(self, retry: int) -> float:
        """Seconds before retry ``retry`` (1-based) without jitter: the upper bound with ``FULL`` jitter."""
        delay = self.interval_s * self.backoff_rate ** max(0, retry - 1)
        return min(delay, self.max_delay_s) if self.max_delay_s is not None else delay


@dataclass(frozen=True)
class StatePolicies:
    """Per state name: its retriers and, for a Wait state, its ``Seconds`` (None: a path or timestamp wait)."""

    retriers: dict[str, tuple[Retrier, ...]] = field(default_factory=dict)
    waits: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def from_definition(cls, definition: dict) -> StatePolicies:
        """Walk an ASL definition, its Map ``ItemProcessor``/``Iterator`` and Parallel ``Branches`` included."""
        policies = cls()

        def walk(states: dict) -> None:
            for name, state in states.items():
                if state.get("Retry"):
                    policies.retriers[name] = tuple(Retrier.from_asl(r) for r in state["Retry"])
                if state.get("Type") == "Wait":
                    seconds = state.get("Seconds")
                    policies.waits[name] = float(seconds) if isinstance(seconds, int | float) else None
                for key in ("ItemProcessor", "Iterator"):
                    if isinstance(state.get(key), dict):
                        walk(state[key].get("States", {}))
                for branch in state.get("Branches", []):
                    walk(branch.get("States", {}))

        walk(definition.get("States", {}))
        return policies


# ----------------------------------------------------------------------------------------------- what is shown
NoticeKind = Literal["retry_scheduled", "retry_started", "not_retried", "wait", "unavailable"]


@dataclass(frozen=True)
class WaitNotice:
    """One retry or wait to show. ``at``: UTC time of the history event. ``attempt``: the attempt that failed (1 =
    the first try). ``retry``/``max_retries``: the retry about to happen and its retrier's ``MaxAttempts``.
    ``delay_s``: the delay Step Functions applies (upper bound with ``jitter == "FULL"``); ``shortened_to``: the cap of
    local fast waits, None when waits are real; ``started_after_s``: how long after the failure the retry really
    started, when known; ``policy_known``: False when the state machine definition could not be read."""

    kind: NoticeKind
    at: datetime
    state: str = ""
    subtask_id: str | None = None
    tool: str | None = None
    error: str = ""
    message: str = ""
    attempt: int = 0
    retry: int = 0
    max_retries: int = 0
    delay_s: float | None = None
    jitter: str = "NONE"
    shortened_to: float | None = None
    started_after_s: float | None = None
    policy_known: bool = True


def _secs(value: float) -> str:
    return f"{value:g} s" if value >= 1 or value == 0 else f"{value:.2g} s"


def call_name(n: WaitNotice) -> str:
    """``[calc] CallModel (worker)``, ``Plan (planner)``, ``[calc] tool calculator (Calculator)``."""
    tag = f"[cyan]{n.subtask_id}[/] " if n.subtask_id else ""
    if n.tool:
        return f"{tag}tool [magenta]{n.tool}[/] ({n.state})"
    role = STATE_ROLES.get(n.state)
    return f"{tag}{n.state}" + (f" ({role})" if role else "")


def _delay_text(n: WaitNotice) -> str:
    if n.delay_s is None:
        return "soon"
    notes = ["full jitter"] if n.jitter == "FULL" else []
    if n.shortened_to is not None and n.delay_s > n.shortened_to:
        notes.append(f"shortened to ≤ {_secs(n.shortened_to)} by fast waits")
    return (f"in {'≤ ' if n.jitter == 'FULL' else ''}{_secs(n.delay_s)}"
            + (f" [dim]({'; '.join(notes)})[/]" if notes else ""))


def render(n: WaitNotice) -> str:
    """One line of rich markup for ``n`` (without the time, which :func:`show` prefixes)."""
    if n.kind == "unavailable":
        return f"[dim]retries and waits not shown: {n.message}[/]"
    if n.kind == "wait":
        what = f"waiting {_delay_text(n).removeprefix('in ')}" if n.delay_s is not None else "waiting"
        return f"[yellow]Wait state {n.state}[/]: {what}"
    failure = f"{call_name(n)} attempt {n.attempt} [red]failed[/]: [bold]{n.error}[/]" + (
        f" ({n.message})" if n.message else "")
    if n.kind == "retry_started":
        return (f"{call_name(n)} retry {n.retry}" + (f" of {n.max_retries}" if n.max_retries else "")
                + f" started{_after(n)}")
    if n.kind == "not_retried":
        return failure + ("; no retry left" if n.retry else "; not retried (no Retry for this error)")
    if not n.policy_known:
        return failure + "; retried by the state's Retry (its policy could not be read)" + _after(n, ",")
    return failure + f"; [yellow]retry {n.retry} of {n.max_retries}[/] {_delay_text(n)}" + _after(n, ",")


def _after(n: WaitNotice, sep: str = "") -> str:
    """`` after 1.30 s`` (a retry_started line) or ``, started after 1.30 s`` (a failure line), or nothing."""
    if n.started_after_s is None:
        return ""
    return f" after {n.started_after_s:.2f} s" if not sep else f"{sep} started after {n.started_after_s:.2f} s"


def show(console: Any, notice: WaitNotice) -> None:
    """Print ``notice`` like a progress event: ``HH:MM:SS`` (UTC, as the events) and its line."""
    console.print(f"[dim]{notice.at:%H:%M:%S}[/] {render(notice)}")


# ---------------------------------------------------------------------------------------------- the history side
@dataclass
class _Task:
    state: str
    subtask_id: str | None
    tool: str | None = None
    failures: list[tuple[str, int]] = field(default_factory=list)  # (error, retrier index or -1)


@dataclass
class _Execution:
    arn: str
    subtask_id: str | None
    last_id: int = 0
    ended: bool = False
    polled_at: float = float("-inf")
    tasks: dict[int, _Task] = field(default_factory=dict)  # event id (entered/scheduled/started/failed) -> task
    latest: _Task | None = None
    pending: dict[int, tuple[WaitNotice, datetime]] = field(default_factory=dict)  # failed id -> (notice, at)


def _details(event: dict) -> dict:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # moto's in-process events keep ISO 8601 strings
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return datetime.now(UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _machine_arn(execution_arn: str) -> str:
    """``arn:aws:states:<r>:<a>:execution:<machine>:<name>`` -> ``arn:aws:states:<r>:<a>:stateMachine:<machine>``."""
    parts = execution_arn.split(":")
    return ":".join(parts[:5] + ["stateMachine", parts[6]]) if len(parts) >= 7 else execution_arn


class ExecutionWaits:
    """Follows a run's execution (and its sub-tasks' agent executions) for retries and waits (module docstring).

    - ``sfn``: a boto3 ``stepfunctions`` client (local: the runtime's, on moto; ``--aws``: a real one), or a callable
      returning one (created at the first poll).
    - ``execution_arn``: the run's execution ARN, or a callable returning it (None until the run has one).
    - ``fast_wait_cap``: seconds the local fast waits cap every Retry interval / Wait at; None when waits are real.
    - ``min_interval_s``: least seconds between two reads of one execution's history; ``max_calls_per_s``: the
      token bucket (burst = rate) all reads share; ``page_size``: events per newest-first page (the API's
      ``maxResults``, at most 1,000).

    :meth:`poll` never raises for AWS errors: the first ClientError turns the follower off with an
    ``unavailable`` notice.
    """

    def __init__(self, sfn: Any, execution_arn: str | Callable[[], str | None] | None, *,
                 fast_wait_cap: float | None = None, min_interval_s: float = 0.5, max_calls_per_s: float = 4.0,
                 page_size: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self._sfn_source = sfn
        self._sfn: Any = None if callable(sfn) and not hasattr(sfn, "get_execution_history") else sfn
        self._arn_source = execution_arn
        self.fast_wait_cap = fast_wait_cap
        self.min_interval_s = min_interval_s
        self.max_calls_per_s = max_calls_per_s
        self.page_size = page_size
        self._clock = clock
        self._tokens = max(1.0, max_calls_per_s)
        self._refilled = clock()
        self._executions: dict[str, _Execution] = {}
        self._policies: dict[str, StatePolicies | None] = {}
        self.calls = 0  #: GetExecutionHistory calls made (pages count one each)
        self.disabled = False

    # -------------------------------------------------------------------------------------------- polling
    def poll(self, force: bool = False) -> list[WaitNotice]:
        """Read the histories that are due (all open ones when ``force``, e.g. once the run ended), oldest read
        first, within the call budget (``force`` ignores it). Returns the new notices in time order."""
        if self.disabled:
            return []
        if not self._executions:
            arn = self._arn_source() if callable(self._arn_source) else self._arn_source
            if not arn:
                return []
            self._executions[arn] = _Execution(arn, None)
        now = self._clock()
        self._tokens = min(max(1.0, self.max_calls_per_s),
                           self._tokens + (now - self._refilled) * self.max_calls_per_s)
        self._refilled = now
        notices: list[WaitNotice] = []
        due = sorted((e for e in self._executions.values()
                      if not e.ended and (force or now - e.polled_at >= self.min_interval_s)),
                     key=lambda e: e.polled_at)
        from botocore.exceptions import BotoCoreError, ClientError

        for execution in due:
            if not force and self._tokens < 1:
                break
            try:
                events = self._read_new(execution)
            except (ClientError, BotoCoreError) as exc:
                self.disabled = True
                code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
                return [*notices, WaitNotice(kind="unavailable", at=datetime.now(UTC),
                                             message=_one_line(f"{code or type(exc).__name__} reading the execution "
                                                               "history"))]
            execution.polled_at = now
            notices.extend(self._parse(execution, events))
        return sorted(notices, key=lambda n: n.at)

    def _client(self) -> Any:
        if self._sfn is None:
            self._sfn = self._sfn_source() if self._sfn_source is not None else _default_client()
        return self._sfn

    def _read_new(self, execution: _Execution) -> list[dict]:
        """The events after ``execution.last_id``, oldest first: newest-first pages down to a seen id."""
        sfn, fresh, token = self._client(), [], None
        while True:
            kwargs = {"executionArn": execution.arn, "reverseOrder": True, "maxResults": self.page_size,
                      "includeExecutionData": True}
            if token:
                kwargs["nextToken"] = token
            page = sfn.get_execution_history(**kwargs)
            self.calls += 1
            self._tokens -= 1
            events = page.get("events", [])
            fresh.extend(e for e in events if e.get("id", 0) > execution.last_id)
            token = page.get("nextToken")
            # moto answers every event in ascending order at once (no reverseOrder, no pages)
            if not token or any(e.get("id", 0) <= execution.last_id for e in events):
                break
        fresh.sort(key=lambda e: e.get("id", 0))
        return fresh

    def _policy(self, execution_arn: str) -> StatePolicies | None:
        machine = _machine_arn(execution_arn)
        if machine not in self._policies:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                definition = self._client().describe_state_machine(stateMachineArn=machine)["definition"]
                self._policies[machine] = StatePolicies.from_definition(json.loads(definition))
            except (ClientError, BotoCoreError, KeyError, ValueError):
                self._policies[machine] = None
        return self._policies[machine]

    # -------------------------------------------------------------------------------------------- parsing
    def _parse(self, ex: _Execution, events: list[dict]) -> list[WaitNotice]:
        out: list[WaitNotice] = []
        policy = self._policy(ex.arn)
        for event in events:
            eid, kind, prev = event.get("id", 0), event.get("type", ""), event.get("previousEventId", 0)
            ex.last_id = max(ex.last_id, eid)
            d, at = _details(event), _utc(event.get("timestamp"))
            if kind == "ExecutionStarted" and ex.subtask_id is None:
                started = _json(d.get("input"))
                if isinstance(started, dict) and isinstance(started.get("subtask_id"), str):
                    ex.subtask_id = started["subtask_id"][:64]
            elif kind in _ENDED:
                ex.ended = True
            elif kind == "TaskStateEntered":
                ex.latest = ex.tasks[eid] = _Task(d.get("name", "?"), ex.subtask_id)
            elif kind == "WaitStateEntered":
                name = d.get("name", "?")
                seconds = policy.waits.get(name) if policy else None
                out.append(WaitNotice(kind="wait", at=at, state=name, subtask_id=ex.subtask_id, delay_s=seconds,
                                      shortened_to=self.fast_wait_cap))
            elif kind in _SCHEDULED:
                task = ex.tasks.get(prev) or ex.latest
                if task is None:
                    continue
                ex.tasks[eid] = task
                self._name_call(task, d)
                if prev in ex.pending:  # the retry of a failure already shown (or about to be)
                    notice, failed_at = ex.pending.pop(prev)
                    after = max(0.0, (at - failed_at).total_seconds())
                    same = next((i for i, n in enumerate(out) if n is notice), None)
                    if same is not None:  # failure and retry in the same read: one line
                        out[same] = replace(notice, started_after_s=after)
                    else:
                        out.append(replace(notice, kind="retry_started", at=at, started_after_s=after))
            elif kind in ("TaskStarted", "TaskSubmitted", "TaskSucceeded", "LambdaFunctionStarted"):
                task = ex.tasks.get(prev) or ex.latest
                if task is not None:
                    ex.tasks[eid] = task
                if kind in ("TaskSubmitted", "TaskSucceeded") and str(d.get("resource", "")).startswith(
                        "startExecution"):
                    self._add_child(d, task)
            elif kind in _FAILED:
                task = ex.tasks.get(prev) or ex.latest
                if task is None:
                    continue
                ex.tasks[eid] = task
                notice = self._failure(task, d, at, policy)
                out.append(notice)
                if notice.kind == "retry_scheduled":
                    ex.pending[eid] = (notice, at)
            elif kind == "TaskStateExited":
                ex.latest = None
        return out

    @staticmethod
    def _name_call(task: _Task, details: dict) -> None:
        params = _json(details.get("parameters"))
        if not isinstance(params, dict):
            return
        payload = params.get("Payload") if isinstance(params.get("Payload"), dict) else params.get("Input")
        if isinstance(payload, dict):
            call = payload.get("call")
            if isinstance(call, dict) and isinstance(call.get("name"), str):
                task.tool = call["name"][:64]
            if task.subtask_id is None and isinstance(payload.get("subtask_id"), str):
                task.subtask_id = payload["subtask_id"][:64]

    def _add_child(self, details: dict, task: _Task | None) -> None:
        output = _json(details.get("output"))
        arn = output.get("ExecutionArn") if isinstance(output, dict) else None
        if isinstance(arn, str) and arn not in self._executions:
            self._executions[arn] = _Execution(arn, task.subtask_id if task else None)

    def _failure(self, task: _Task, details: dict, at: datetime, policy: StatePolicies | None) -> WaitNotice:
        error = str(details.get("error") or "States.TaskFailed")
        cause = details.get("cause") or ""
        parsed = _json(cause)
        message = _one_line(parsed.get("errorMessage", "") if isinstance(parsed, dict) else cause)
        attempt = len(task.failures) + 1
        base = WaitNotice(kind="retry_scheduled", at=at, state=task.state, subtask_id=task.subtask_id,
                          tool=task.tool, error=error, message=message, attempt=attempt,
                          shortened_to=self.fast_wait_cap)
        if policy is None:
            task.failures.append((error, -1))
            return replace(base, policy_known=False)
        retriers = policy.retriers.get(task.state, ())
        index = next((i for i, r in enumerate(retriers) if r.matches(error)), -1)
        task.failures.append((error, index))
        if index < 0:
            return replace(base, kind="not_retried")
        retrier = retriers[index]
        retry = sum(1 for _, i in task.failures if i == index)
        if retry > retrier.max_attempts:
            return replace(base, kind="not_retried", retry=retry - 1, max_retries=retrier.max_attempts)
        return replace(base, retry=retry, max_retries=retrier.max_attempts, delay_s=retrier.delay_s(retry),
                       jitter=retrier.jitter)


def _default_client() -> Any:
    import boto3

    return boto3.client("stepfunctions")


class LocalHistoryClient:
    """The local transport of ``GetExecutionHistory``: the same contract (events in the API's shape, ``reverseOrder``
    pages of ``maxResults`` with a ``nextToken``), served from moto's in-process event list of the execution instead
    of through boto3 and moto's response serialiser, which took ~120 ms for the 111 events (93 KB) of a finished demo
    run here (``bench/progress_waits.py``); only the page asked for is copied. Every other call, and any execution
    this cannot read (moto's internals not as expected, an unknown ARN), goes to ``sfn``, the runtime's client.
    ``tests/integration/test_progress_waits.py`` checks it against the client's answer."""

    def __init__(self, sfn: Any, account: str, region: str) -> None:
        self._sfn, self._account, self._region = sfn, account, region

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sfn, name)

    def get_execution_history(self, *, executionArn: str, reverseOrder: bool = False, maxResults: int = 100,
                              nextToken: str | None = None, includeExecutionData: bool = True) -> dict:
        import copy

        try:
            from moto.stepfunctions.responses import get_backend

            worker = get_backend(self._account, self._region).describe_execution(executionArn).exec_worker
            manager = worker.env.event_manager if worker is not None and worker.env is not None else None
            lock, history = (manager._mutex, manager._history_event_list) if manager is not None else (None, [])
        except Exception:  # noqa: BLE001 - any surprise: the API call, as on AWS
            return self._sfn.get_execution_history(executionArn=executionArn, reverseOrder=reverseOrder,
                                                   maxResults=maxResults, includeExecutionData=includeExecutionData,
                                                   **({"nextToken": nextToken} if nextToken else {}))
        start, size = int(nextToken or 0), max(1, min(int(maxResults), 1000))
        with lock or _NO_LOCK:
            total = len(history)
            if reverseOrder:
                chunk = list(reversed(history[max(0, total - start - size): total - start]))
            else:
                chunk = history[start:start + size]
            chunk = copy.deepcopy(chunk)
        more = start + len(chunk) < total
        return {"events": chunk, **({"nextToken": str(start + len(chunk))} if more else {})}


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def for_run(store: Any, run_id: str, runtime: Any = None) -> ExecutionWaits:
    """The follower of run ``run_id``: on the local ``runtime`` (its moto client and fast-waits cap), else (``--aws``)
    a boto3 ``stepfunctions`` client made at the first poll. The execution ARN is read from the run record (the
    caller's store, already scoped to its run) until it is set."""
    def arn() -> str | None:
        return store.get_run(run_id).execution_arn

    if runtime is None:
        return ExecutionWaits(_default_client, arn)
    from moto.core import DEFAULT_ACCOUNT_ID

    from stepcrew.local import hook

    return ExecutionWaits(LocalHistoryClient(runtime.sfn, DEFAULT_ACCOUNT_ID, runtime.region), arn,
                          fast_wait_cap=hook.FAST_WAIT_S if runtime.fast_waits else None, page_size=LOCAL_PAGE)
