"""Run an eval suite: every case as a real run through the local runtime, scored against its expectations.

:func:`run_suite` creates one run per case (the default crew, the case's dataset, review ``on_fail: fail`` so no
run waits for a person), waits for it, reads its result, its ``tool_call`` progress events and its sub-task
records, and scores it with :func:`score_case`, a pure function of those inputs. :func:`summarize` adds the cases
up into an :class:`EvalReport`; :func:`gate` checks a report against the suite's thresholds.

Scoring, per case:

- the report's *answer* is its title and first section (:func:`answer_text`): an answerable case's ``entity`` and
  ``entities`` must appear there (case-insensitive), its ``figures`` anywhere in the report (absolute values
  within ``tolerance``); ``task_success`` = SUCCEEDED, entity ok and every figure found;
- an unanswerable case is correct when the run DECLINED; an answerable one that DECLINED is ``declined_wrongly``;
- ``wrong_but_passed``: a wrong report that passed review (answerable, passed review, not a task success), or an
  unanswerable case that SUCCEEDED;
- ``tool_accuracy`` 1 when every expected tool was called and no call named an unknown tool, else 0.
"""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.evals.suite import Case, Gate, Suite
from stepcrew.models import RunResult, RunStatus
from stepcrew.text import one_line

#: ``judge(goal, expected, report) -> score in [0, 1]``; raise (e.g. :class:`JudgeError`) when there is no score.
Judge = Callable[[str, dict, str], float | None]

#: Lines of a report taken as its answer when it has too few headings to find the first section.
ANSWER_FALLBACK_LINES = 15
#: Runs of the suite executing at the same time. 1: with the rule engine, overlapping runs only compete for the
#: GIL (the shipped suite took 55 s one at a time, 65-68 s with 2-3 at a time).
DEFAULT_WORKERS = 1


class JudgeError(RuntimeError):
    """The judge gave no usable score (unparseable reply, no number, out of range)."""


class CaseResult(BaseModel):
    """The outcome of one case. Answerable-only fields (entity, figures) are None/0 for unanswerable cases."""

    model_config = ConfigDict(extra="forbid")
    id: str
    type: str
    answerable: bool
    run_id: str | None = None
    status: str = Field(description="the run's status (SUCCEEDED, FAILED, DECLINED, NEEDS_REVIEW, ...), or ERROR "
                                    "when the case could not be run")
    declined: bool = False
    declined_correctly: bool = False
    declined_wrongly: bool = False
    entity_ok: bool | None = None
    figures_found: int = 0
    figures_total: int = 0
    figures_missing: list[str] = Field(default_factory=list)
    task_success: bool = False
    correct: bool = Field(default=False, description="task success or a correct decline")
    passed_review: bool = False
    wrong_but_passed: bool = False
    tools_called: list[str] = Field(default_factory=list)
    unknown_tools: list[str] = Field(default_factory=list)
    tools_missing: list[str] = Field(default_factory=list)
    tool_accuracy: float = 0.0
    turns: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    error: str | None = None
    judge_score: float | None = None
    notes: list[str] = Field(default_factory=list)


class Totals(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: int
    answerable: int
    unanswerable: int
    success: int = Field(description="answerable cases answered right")
    declined_correctly: int
    declined_wrongly: int
    score: float = Field(description="(success + declined_correctly) / cases")
    figures_found: int
    figures_total: int
    figure_accuracy: float | None = Field(description="figures found / expected, over answerable cases (None: no "
                                                      "figures expected)")
    tool_accuracy: float
    wrong_but_passed: int
    turns: int
    tokens: int
    cost_usd: float
    wall_s: float = Field(description="wall time of the whole suite (cases may run at the same time)")
    judge_score: float | None = Field(default=None, description="mean judge score of the judged cases")
    judged: int = 0
    errors: int = Field(default=0, description="cases that could not be run (status ERROR)")


class TypeScore(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: int
    correct: int
    score: float


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suite: str
    provider: str
    totals: Totals
    by_type: dict[str, TypeScore]
    cases: list[CaseResult]


# --------------------------------------------------------------------------------------------- scoring
def answer_text(report: str) -> str:
    """The answer part of a report, as the rule engine's rubric reads it
    (:func:`stepcrew.engines.rules.rubric.answer_part`): its title and first section; a report with too few
    headings: its first :data:`ANSWER_FALLBACK_LINES` lines."""
    from stepcrew.engines.rules.rubric import answer_part

    return answer_part(report or "", ANSWER_FALLBACK_LINES)


#: Words of a figure's name that make it a magnitude (a decline of 29.1 % may be written -29.1 %): only those
#: figures are compared by absolute value; every other figure keeps its sign (r = -0.83 is not r = 0.83).
MAGNITUDE_WORDS = ("decline", "fall", "drop", "loss", "decrease")


def find_figures(case: Case, report: str) -> list[str]:
    """Names of the expected figures found in ``report``: some number in it within the figure's tolerance, signed
    (absolute values only for magnitudes, :data:`MAGNITUDE_WORDS`)."""
    from stepcrew.engines.numbers import numbers_in_text

    values = [v for _, v in numbers_in_text(report or "")]
    found = []
    for f in case.expected.figures:
        magnitude = any(w in f.name.lower() for w in MAGNITUDE_WORDS)
        if any(abs((abs(v) if magnitude else v) - (abs(f.value) if magnitude else f.value)) <= f.tolerance + 1e-9
               for v in values):
            found.append(f.name)
    return found


def _first_sentence(answer: str) -> str:
    """The first sentence of the answer's body (headings and the italic banner skipped)."""
    body = " ".join(line.strip() for line in answer.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")
                    and not (line.strip().startswith("_") and line.strip().endswith("_")))
    body = body.replace("**", "")
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9*])", body, maxsplit=1)
    return parts[0] if parts else ""


def entity_named(case: Case, answer: str) -> bool:
    """The expected entity stated as the answer: named in the answer's first sentence (a ranking's other
    ``entities`` anywhere in the answer)."""
    expect = case.expected
    if not expect.answer_terms:
        return True
    first, whole = _first_sentence(answer).casefold(), answer.casefold()
    lead = expect.entity if expect.entity else expect.answer_terms[0]
    return lead.casefold() in first and all(term.casefold() in whole for term in expect.answer_terms)


def score_case(case: Case, result: RunResult, tools_called: list[str], turns: int, wall_s: float) -> CaseResult:
    """Score one finished (or timed-out) run of ``case``. Pure: reads only its arguments (and the tool
    registry's names)."""
    from stepcrew.tools.registry import known_tools

    status = result.status.value if isinstance(result.status, RunStatus) else str(result.status)
    succeeded = status == RunStatus.SUCCEEDED.value
    declined = status == RunStatus.DECLINED.value
    report = result.final_output or ""
    rounds = result.review.rounds
    passed_review = bool(rounds and rounds[-1].passed) or succeeded
    expect = case.expected
    known = known_tools()
    unknown_tools = sorted({t for t in tools_called if t not in known})
    tools_missing = [t for t in expect.tools if t not in tools_called]
    out: dict[str, Any] = {
        "id": case.id, "type": case.type, "answerable": case.answerable, "run_id": result.run_id, "status": status,
        "declined": declined, "passed_review": passed_review, "tools_called": list(tools_called),
        "unknown_tools": unknown_tools, "tools_missing": tools_missing,
        "tool_accuracy": 0.0 if unknown_tools or tools_missing else 1.0,
        "turns": turns, "tokens": result.usage.input_tokens + result.usage.output_tokens,
        "cost_usd": result.usage.cost_usd, "wall_s": round(wall_s, 3),
        "error": one_line(f"{result.error.code}: {result.error.message}", 500) if result.error else None,
    }
    if case.answerable:
        entity_ok = entity_named(case, answer_text(report))
        found = find_figures(case, report)
        task_success = succeeded and entity_ok and len(found) == len(expect.figures)
        out.update(entity_ok=entity_ok, figures_found=len(found), figures_total=len(expect.figures),
                   figures_missing=[f.name for f in expect.figures if f.name not in found],
                   task_success=task_success, correct=task_success, declined_wrongly=declined,
                   wrong_but_passed=passed_review and not task_success)
    else:
        out.update(declined_correctly=declined, correct=declined, wrong_but_passed=succeeded)
    return CaseResult(**out)


def summarize(cases: list[CaseResult], *, suite: str, provider: str, wall_s: float) -> EvalReport:
    """Add the cases up (in the given order) into an :class:`EvalReport`."""
    n = len(cases)
    answerable = [c for c in cases if c.answerable]
    correct = sum(c.correct for c in cases)
    found = sum(c.figures_found for c in answerable)
    total = sum(c.figures_total for c in answerable)
    judged = [c.judge_score for c in cases if c.judge_score is not None]
    by_type: dict[str, TypeScore] = {}
    for kind in dict.fromkeys(c.type for c in cases):
        group = [c for c in cases if c.type == kind]
        hits = sum(c.correct for c in group)
        by_type[kind] = TypeScore(cases=len(group), correct=hits, score=hits / len(group))
    totals = Totals(
        cases=n, answerable=len(answerable), unanswerable=n - len(answerable),
        success=sum(c.task_success for c in cases), declined_correctly=sum(c.declined_correctly for c in cases),
        declined_wrongly=sum(c.declined_wrongly for c in cases), score=correct / n if n else 0.0,
        figures_found=found, figures_total=total, figure_accuracy=found / total if total else None,
        tool_accuracy=statistics.fmean(c.tool_accuracy for c in cases) if n else 0.0,
        wrong_but_passed=sum(c.wrong_but_passed for c in cases), turns=sum(c.turns for c in cases),
        tokens=sum(c.tokens for c in cases), cost_usd=round(sum(c.cost_usd for c in cases), 6),
        wall_s=round(wall_s, 3), judge_score=statistics.fmean(judged) if judged else None, judged=len(judged),
        errors=sum(c.status == "ERROR" for c in cases))
    return EvalReport(suite=suite, provider=provider, totals=totals, by_type=by_type, cases=cases)


def _num(x: float) -> str:
    return f"{x:.4g}"


def gate(report: EvalReport, thresholds: Gate) -> list[str]:
    """The thresholds ``report`` fails, as one-line messages (empty: the gate passes)."""
    t, failures = report.totals, []
    if t.score < thresholds.success_min:
        failures.append(f"score {_num(t.score)} < success_min {_num(thresholds.success_min)}")
    if t.wrong_but_passed > thresholds.wrong_but_passed_max:
        failures.append(f"wrong_but_passed {t.wrong_but_passed} > wrong_but_passed_max "
                        f"{thresholds.wrong_but_passed_max}")
    if thresholds.figure_accuracy_min is not None:
        if t.figure_accuracy is None:
            failures.append(f"figure_accuracy n/a (no figures expected) < figure_accuracy_min "
                            f"{_num(thresholds.figure_accuracy_min)}")
        elif t.figure_accuracy < thresholds.figure_accuracy_min:
            failures.append(f"figure_accuracy {_num(t.figure_accuracy)} < figure_accuracy_min "
                            f"{_num(thresholds.figure_accuracy_min)}")
    if thresholds.tool_accuracy_min is not None and t.tool_accuracy < thresholds.tool_accuracy_min:
        failures.append(f"tool_accuracy {_num(t.tool_accuracy)} < tool_accuracy_min "
                        f"{_num(thresholds.tool_accuracy_min)}")
    return failures


# --------------------------------------------------------------------------------------------- running
def _tools_called(store, run_id: str) -> list[str]:
    names: list[str] = []
    cursor, page = None, 500
    while True:
        events = store.list_events(run_id, after=cursor, limit=page)
        for cursor, event in events:
            if event.kind == "tool_call":
                names.append(str(event.data.get("name", "")))
        if len(events) < page:
            return names


def _expected(case: Case) -> dict:
    expected: dict[str, Any] = {"answerable": case.answerable}
    if case.answerable:
        expected.update(case.expected.model_dump(exclude_none=True, exclude_defaults=True))
    elif case.reason:
        expected["reason"] = case.reason
    return expected


def _judge(judge: Judge, case: Case, result: CaseResult, report: str | None) -> CaseResult:
    if not report:
        return result.model_copy(update={"notes": [*result.notes, "judge: no report to judge"]})
    try:
        score = judge(case.goal, _expected(case), report)
    except Exception as exc:  # a judge failure must never become a number
        return result.model_copy(update={"notes": [*result.notes, one_line(f"judge: {exc}", 300)]})
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) \
            or not 0.0 <= score <= 1.0:
        return result.model_copy(update={"notes": [*result.notes, f"judge: no score in [0, 1] (got {score!r})"]})
    return result.model_copy(update={"judge_score": float(score)})


def select_cases(suite: Suite, case_ids: list[str] | None) -> list[Case]:
    """The suite's cases with these ids, in suite order (all of them for None). ValueError names unknown ids."""
    if not case_ids:
        return list(suite.cases)
    known = {c.id for c in suite.cases}
    unknown = [i for i in dict.fromkeys(case_ids) if i not in known]
    if unknown:
        raise ValueError(f"unknown case id(s): {', '.join(unknown)}; suite {suite.name!r} has "
                         f"{len(known)} cases (e.g. {', '.join(c.id for c in suite.cases[:3])})")
    wanted = set(case_ids)
    return [c for c in suite.cases if c.id in wanted]


def run_suite(suite: Suite, *, provider: str = "rule", timeout_s: float = 300, case_ids: list[str] | None = None,
              runtime=None, judge: Judge | None = None, workers: int = DEFAULT_WORKERS,
              on_case: Callable[[CaseResult], None] | None = None) -> EvalReport:
    """Run the suite's cases (``case_ids``: only those) as real runs and score them. ``runtime``: a started
    :class:`~stepcrew.local.runtime.LocalRuntime` to use; None: one is started (fast waits, nothing kept) for
    the whole suite. ``workers``: runs at the same time. ``on_case``: called with each result as it is ready
    (the report keeps suite order). ``judge``: also score each report with it (``judge_score``).
    Raises ValueError for unknown case ids."""
    from stepcrew.crew import load_crew

    cases = select_cases(suite, case_ids)
    crew = load_crew("default")
    started = time.monotonic()
    if runtime is None:
        from stepcrew.local.runtime import LocalRuntime

        with LocalRuntime(fast_waits=True) as rt:
            results = _Batch(suite, rt, crew, provider, timeout_s, judge).run_all(cases, workers, on_case)
    else:
        results = _Batch(suite, runtime, crew, provider, timeout_s, judge).run_all(cases, workers, on_case)
    return summarize(results, suite=suite.name, provider=provider, wall_s=time.monotonic() - started)


class _Batch:
    """The runs of one suite on one runtime: a few at a time, results in case order. On an interrupt the runs not
    started are dropped and the executions in flight are stopped (their runs marked FAILED ``Interrupted``)."""

    def __init__(self, suite: Suite, rt, crew, provider: str, timeout_s: float, judge: Judge | None) -> None:
        self.suite, self.rt, self.crew, self.provider = suite, rt, crew, provider
        self.timeout_s, self.judge = timeout_s, judge
        self._lock = threading.Lock()
        self._in_flight: dict[str, str] = {}  # run id -> execution ARN
        self._stopping = False

    def run_all(self, cases: list[Case], workers: int,
                on_case: Callable[[CaseResult], None] | None) -> list[CaseResult]:
        _ = (self.rt.store, self.rt.sfn)  # build the shared clients once, before the threads use them
        results: list[CaseResult | None] = [None] * len(cases)
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(cases))), thread_name_prefix="eval")
        pending = {pool.submit(self.run_case, c): i for i, c in enumerate(cases)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    results[i] = future.result()
                    if on_case is not None:
                        on_case(results[i])
        except BaseException:
            self._stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [r for r in results if r is not None]

    def _stop(self) -> None:
        with self._lock:
            self._stopping = True
            in_flight = dict(self._in_flight)
        for run_id, arn in in_flight.items():
            self._stop_run(run_id, arn)

    def _stop_run(self, run_id: str, arn: str) -> None:
        from stepcrew.models import ProgressEvent, RunError, RunStatus, utcnow

        try:
            self.rt.sfn.stop_execution(executionArn=arn)
            error = RunError(code="Interrupted", message="the eval was interrupted")
            self.rt.store.update_run(run_id, {"status": RunStatus.FAILED, "finished_at": utcnow(), "error": error},
                                     expected=[s for s in RunStatus if not s.terminal])
            self.rt.store.add_event(ProgressEvent(run_id=run_id, kind="run_failed", data={"code": "Interrupted"}))
        except Exception:  # noqa: BLE001  finished meanwhile, or already stopped: nothing to undo
            pass

    def run_case(self, case: Case) -> CaseResult:
        from stepcrew.models import RunError, RunRequest
        from stepcrew.service import RunStartError, create_run, run_result, start_run
        from stepcrew.tools.datasets import dataset_uri

        rt, started, run_id = self.rt, time.monotonic(), None
        try:
            request = RunRequest(goal=case.goal, data=dataset_uri(self.suite.dataset_path(case.dataset)),
                                 provider=self.provider, review={"on_fail": "fail"})
            with self._lock:
                if self._stopping:
                    raise RuntimeError("the eval was interrupted")
            run = create_run(request, self.crew, rt.store)
            run_id, timed_out = run.run_id, False
            try:
                run = start_run(run, rt.store, rt)
                with self._lock:
                    self._in_flight[run_id] = run.execution_arn
                    stopping = self._stopping
                if stopping:  # interrupted between the start and now
                    self._stop_run(run_id, run.execution_arn)
                rt.wait(run.execution_arn, self.timeout_s)
            except RunStartError:
                pass  # the run is marked FAILED with the reason; its result says so
            except TimeoutError:
                timed_out = True
            finally:
                with self._lock:
                    self._in_flight.pop(run_id, None)
            result = run_result(rt.store, run_id)
            if timed_out and result.error is None:
                result = result.model_copy(update={"error": RunError(
                    code="Timeout", message=f"the run did not finish within {self.timeout_s:g} s")})
            turns = sum(s.turns for s in rt.store.list_subtasks(run_id))
            scored = score_case(case, result, _tools_called(rt.store, run_id), turns, time.monotonic() - started)
        except Exception as exc:  # the case could not be run at all: say why, never drop it
            return CaseResult(id=case.id, type=case.type, answerable=case.answerable, run_id=run_id, status="ERROR",
                              error=one_line(f"{type(exc).__name__}: {exc}", 500),
                              wall_s=round(time.monotonic() - started, 3))
        if self.judge is not None:
            scored = _judge(self.judge, case, scored, result.final_output)
        return scored


# --------------------------------------------------------------------------------------------- the LLM judge
JUDGE_SYSTEM = (
    "You grade the final report of a data-analysis run against the expected answer. Expected figures are "
    "ground truth computed from the dataset; a figure counts as right when the report states it within its "
    "tolerance. For a goal marked answerable: false, the right outcome is to decline. Reply with exactly one JSON "
    'object and nothing else: {"score": <number from 0 to 1>, "reason": "<one sentence>"}.'
)


def llm_judge(provider: str) -> Judge:
    """A judge that asks ``provider``'s smart model for ``{"score": 0-1, "reason": ...}``. Raises
    UnknownProviderError / ValueError (``rule`` has no model). The returned judge raises JudgeError for a reply
    without a usable score (and ModelError subclasses for failed calls)."""
    import json

    from stepcrew.engines.prompts import JsonReplyError, parse_json_reply
    from stepcrew.llm import registry
    from stepcrew.llm.base import ModelRequest, ModelSettings
    from stepcrew.models import Message

    model = registry.resolve(provider, "smart")
    settings = ModelSettings(model=registry.model_id(provider, "smart"), max_tokens=512, temperature=0.0)

    def judge(goal: str, expected: dict, report: str) -> float:
        user = (f"Goal:\n{goal}\n\nExpected answer (JSON):\n{json.dumps(expected, ensure_ascii=False)}\n\n"
                f"Report:\n{report}")
        reply = model.request(ModelRequest(messages=[Message(role="system", content=JUDGE_SYSTEM),
                                                     Message(role="user", content=user)], settings=settings))
        try:
            data = parse_json_reply(reply.text)
        except JsonReplyError as exc:
            raise JudgeError(f"unparseable reply: {exc}") from exc
        score = data.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) \
                or not 0.0 <= score <= 1.0:
            raise JudgeError(f"reply holds no score in [0, 1] (got {score!r})")
        return float(score)

    return judge


__all__ = ["CaseResult", "EvalReport", "Judge", "JudgeError", "Totals", "TypeScore", "answer_text", "find_figures",
           "gate", "llm_judge", "run_suite", "score_case", "select_cases", "summarize"]
