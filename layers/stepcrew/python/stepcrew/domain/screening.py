"""Guardrails at the run's edges, applied with the run's policy (:class:`~stepcrew.models.GuardrailPolicy`):

- **input** (:func:`screen_input`, inside the GuardInput state): injection in the goal or inputs -> the run is
  rejected (``InputRejectedError`` naming the families, never the text) or flagged; a denied topic -> rejected;
  PII -> masked in the stored run before any prompt (or rejected with ``pii: block``).
- **tool output** (:func:`screen_tool_results`, the GuardToolResults and GuardProfile states): every tool result that
  goes back to a model has its PII masked (unless ``pii: allow``) and is checked for injection; findings are events
  (``tool_output_masked``, ``tool_output_flagged``) and ``ToolResult.screened``, which makes the prompt datamark it
  (:mod:`stepcrew.llm.spotlight`). Tool output is never obeyed whatever the policy: it is data, fenced as such.
- **output** (:func:`screen_output`, the GuardReport states after each report version): PII masked in the report and
  the sub-task outputs, sentences on denied topics removed, the disclaimer added.

Events carry entity names, families and counts only, never the text. A guard that cannot screen raises
GuardUnavailableError: the state fails and the run with it (fail closed).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from stepcrew.domain.common import emit
from stepcrew.domain.errors import InputRejectedError
from stepcrew.domain.synthesizer import cap_report
from stepcrew.events import ScreenedToolResults, ScreenOutput, ScreenOutputResult, ScreenToolResults
from stepcrew.guards.base import Finding, Guard, mask, screen_many
from stepcrew.models import DISCLAIMER, FINAL_OUTPUT_MAX_BYTES, FINAL_OUTPUT_MAX_CHARS, GuardrailPolicy, Run, SubtaskStatus, ToolResult, ToolScreen
from stepcrew.store.base import RunStore

#: Column names whose integer cells are screened too (a phone or card number read as a number): other numbers are
#: not, so a 10-digit count is never masked as a phone number.
_PII_COLUMN = re.compile(r"phone|mobile|cell|tel|fax|ssn|social|card|iban|account|acct", re.IGNORECASE)
_REMOVED = "[removed: a sentence on a denied topic]"


def _counts(findings: list[list[Finding]]) -> dict[str, int]:
    return dict(sorted(Counter(f.entity for fs in findings for f in fs).items()))


# --------------------------------------------------------------------------------------------------- input
def screen_input(run: Run, store: RunStore, guard: Guard) -> Run:
    """Screen the goal and the inputs of ``run`` by its policy (module docstring); returns the run as stored after
    masking. PII is masked first, so even a run rejected for injection keeps no personal data in its record.
    Raises InputRejectedError (the message names finding kinds and entities, never the text) and
    GuardUnavailableError."""
    policy = run.guardrails
    keys = list(run.inputs)
    texts = [run.goal, *run.inputs.values()]
    if policy.pii != "allow":
        found = screen_many(guard.pii, texts)
        entities = _counts(found)
        if entities:
            texts = [mask(t, fs) for t, fs in zip(texts, found, strict=True)]
            run = store.update_run(run.run_id, {"goal": texts[0],
                                                "inputs": dict(zip(keys, texts[1:], strict=True))})
            emit(store, run.run_id, "input_masked", entities=entities, guard=guard.name)
        if entities and policy.pii == "block":  # masked in the record all the same: the run keeps no PII
            emit(store, run.run_id, "input_flagged", entities=entities, action="block", guard=guard.name)
            raise InputRejectedError(f"the input holds personal data ({', '.join(entities)}); the guardrail "
                                     "policy blocks it")
    families = sorted({f.entity for fs in screen_many(guard.injection, texts) for f in fs})
    if families:
        emit(store, run.run_id, "input_flagged", families=families, action=policy.injection, guard=guard.name)
        if policy.injection == "block":
            raise InputRejectedError(f"the input looks like a prompt injection ({', '.join(families)}); the "
                                     "guardrail policy blocks it")
    if policy.denied_topics:
        topics = sorted({f.entity for fs in screen_many(lambda t: guard.topics(t, policy.denied_topics), texts)
                         for f in fs})
        if topics:
            emit(store, run.run_id, "input_rejected_topic", topics=topics)
            raise InputRejectedError(f"the input names a denied topic ({', '.join(topics)})")
    return run


# --------------------------------------------------------------------------------------------------- tool output
class _Leaves:
    """The strings of a JSON value (and the integers of PII-looking columns), to screen in one call and put back."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def collect(self, value: Any, column: str = "") -> Any:
        """``value`` with each screened leaf replaced by its index marker ``_Slot``."""
        if isinstance(value, str):
            return self._slot(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            # numbers of a PII-looking column are screened with its name ("phone: 4155552671"); a float too when it
            # is a whole number (a median of an integer column is a row's value when the count is odd)
            whole = isinstance(value, int) or (value.is_integer() and abs(value) < 1e16)
            if whole and column and _PII_COLUMN.search(column):
                return self._slot(f"{column}: {int(value)}", original=value, prefix=len(column) + 2)
            return value
        if isinstance(value, dict):
            if isinstance(value.get("columns"), list) and isinstance(value.get("rows"), list):
                names = [c if isinstance(c, str) else (c.get("name", "") if isinstance(c, dict) else "")
                         for c in value["columns"]]
                rows = [[self.collect(cell, names[i] if i < len(names) else "") for i, cell in enumerate(row)]
                        if isinstance(row, list) else self.collect(row) for row in value["rows"]]
                rest = {k: self.collect(v, k) for k, v in value.items() if k != "rows"}
                return {**rest, "rows": rows}
            named = value.get("name") if isinstance(value.get("name"), str) else ""
            # a profile's column entry ({"name": "ssn", "min": ..., "top": [...]}) screens its numbers by its name
            return {k: self.collect(v, named if named and _PII_COLUMN.search(named) else k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.collect(v, column) for v in value]
        return value

    def _slot(self, text: str, original: Any = None, prefix: int = 0) -> _Slot:
        self.texts.append(text)
        return _Slot(len(self.texts) - 1, original, prefix)


class _Slot:
    __slots__ = ("index", "original", "prefix")

    def __init__(self, index: int, original: Any, prefix: int) -> None:
        self.index, self.original, self.prefix = index, original, prefix


def _fill(value: Any, texts: list[str], changed: set[int]) -> Any:
    if isinstance(value, _Slot):
        if value.original is not None and value.index not in changed:
            return value.original  # an unmasked integer stays a number
        return texts[value.index][value.prefix:]
    if isinstance(value, dict):
        return {k: _fill(v, texts, changed) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, texts, changed) for v in value]
    return value


def _screen_result(result: ToolResult, policy: GuardrailPolicy, guard: Guard) -> ToolResult:
    leaves = _Leaves()
    content = leaves.collect(result.content)
    error_at = None
    if result.error is not None:
        error_at = len(leaves.texts)
        leaves.texts.append(result.error.message)
    texts = leaves.texts
    families = sorted({f.entity for fs in screen_many(guard.injection, texts) for f in fs})
    masked: dict[str, int] = {}
    changed: set[int] = set()
    if policy.pii != "allow" and texts:
        found = screen_many(guard.pii, texts)
        masked = _counts(found)
        for i, fs in enumerate(found):
            if fs:
                texts[i] = mask(texts[i], fs)
                changed.add(i)
    update: dict[str, Any] = {"screened": ToolScreen(injection=families[:8], masked=masked)}
    if changed:
        update["content"] = _fill(content, texts, changed)
        if error_at is not None and error_at in changed:
            update["error"] = result.error.model_copy(update={"message": texts[error_at]})
    return result.model_copy(update=update)


def screen_tool_results(inp: ScreenToolResults, store: RunStore, guard: Guard) -> ScreenedToolResults:
    """Screen each of ``inp.tool_results`` (module docstring). A result that already carries ``screened`` (a
    redelivered event) is returned as it is. Raises KeyError-derived store errors for an unknown run and
    GuardUnavailableError."""
    run = store.get_run(inp.run_id)
    out: list[ToolResult] = []
    for result in inp.tool_results:
        if result.screened is not None:
            out.append(result)
            continue
        screened = _screen_result(result, run.guardrails, guard)
        s = screened.screened
        assert s is not None
        if s.masked:
            emit(store, run.run_id, "tool_output_masked", inp.subtask_id, call_id=result.call_id, name=result.name,
                 entities=s.masked)
        if s.injection:
            emit(store, run.run_id, "tool_output_flagged", inp.subtask_id, call_id=result.call_id,
                 name=result.name, families=s.injection)
        out.append(screened)
    return ScreenedToolResults(run_id=inp.run_id, subtask_id=inp.subtask_id, tool_results=out)


# --------------------------------------------------------------------------------------------------- output
#: A sentence: up to a ``.``/``!``/``?`` followed by whitespace or the end (so ``3.5`` and ``$1.2`` do not end one,
#: nor common abbreviations such as ``e.g.``), or up to the end of the line.
_SENTENCE = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|cf|mr|mrs|ms|dr|no|fig|incl)\.(?=\s)|[^.!?\n]|"
                       r"[.!?]+(?=[^\s.!?]))*(?:[.!?]+(?=\s|$)|\n|$)", re.IGNORECASE)
#: Markdown that opens a line and is kept when the sentence after it is removed: list bullets, numbers, quotes,
#: headings, a table row's pipe.
_LEAD = re.compile(r"^\s*(?:[-*+]\s+|\d+[.)]\s+|>\s*|#{1,6}\s+|\|\s*)?")


def _remove_topics(text: str, findings: list[Finding]) -> tuple[str, int]:
    """``text`` with each sentence (or line) that holds a finding replaced by :data:`_REMOVED` (the Markdown that
    opens its line is kept); and how many were removed."""
    if not findings:
        return text, 0
    out, removed = [], 0
    line_start = True
    spans = sorted((f.start, f.end) for f in findings)
    j, reach = 0, -1  # findings that start before this sentence ends, and the furthest end among them
    for m in _SENTENCE.finditer(text):
        if m.start() == m.end():
            continue
        chunk = m.group(0)
        while j < len(spans) and spans[j][0] < m.end():
            reach = max(reach, spans[j][1])
            j += 1
        if reach > m.start():  # one pass over sentences and findings: a long report costs linear time
            ending = "\n" if chunk.endswith("\n") else ""  # the next sentence brings its own leading space
            lead = _LEAD.match(chunk).group(0) if line_start else chunk[:len(chunk) - len(chunk.lstrip())]
            out.append(lead + _REMOVED + ending)
            removed += 1
        else:
            out.append(chunk)
        line_start = chunk.endswith("\n")
    return "".join(out), removed


def _without_disclaimer(report: str) -> str:
    """The report without a disclaimer line a previous screening added (so a pass never screens its own line)."""
    body = report.rstrip()
    return body[: -len(DISCLAIMER)].rstrip() if body.endswith(DISCLAIMER) else report


def screen_output(inp: ScreenOutput, store: RunStore, guard: Guard) -> ScreenOutputResult:
    """Screen the run's current report and its sub-task outputs (module docstring). Writes a new report version
    only when something changed; idempotent (a screened report screens to itself). Raises GuardUnavailableError."""
    run = store.get_run(inp.run_id)
    policy = run.guardrails
    report = store.get_report(run.run_id) or ""
    subs = [s for s in store.list_subtasks(run.run_id) if s.status == SubtaskStatus.SUCCEEDED and s.output]
    texts = [_without_disclaimer(report) if policy.disclaimer else report, *(s.output for s in subs)]
    masked: dict[str, int] = {}
    if policy.pii != "allow":
        found = screen_many(guard.pii, texts)
        masked = _counts(found)
        texts = [mask(t, fs) for t, fs in zip(texts, found, strict=True)]
    removed = 0
    if policy.denied_topics:
        topic_findings = screen_many(lambda t: guard.topics(t, policy.denied_topics), texts)
        for i, fs in enumerate(topic_findings):
            texts[i], n = _remove_topics(texts[i], fs)
            removed += n
    new_report = texts[0]
    if policy.disclaimer and new_report:
        tail = "\n\n" + DISCLAIMER + "\n"
        new_report = cap_report(new_report.rstrip(), FINAL_OUTPUT_MAX_CHARS - len(tail),
                                FINAL_OUTPUT_MAX_BYTES - len(tail.encode("utf-8"))) + tail
    else:
        new_report = cap_report(new_report)  # masks are longer than what they replace: stay within the cap
    if new_report != report:
        store.put_report(run.run_id, new_report)
    for sub, text in zip(subs, texts[1:], strict=True):
        if text != sub.output:
            store.update_subtask(run.run_id, sub.subtask_id, {"output": text}, expected=[SubtaskStatus.SUCCEEDED])
    if masked or removed:
        emit(store, run.run_id, "output_screened", masked=masked, removed=removed, guard=guard.name)
    return ScreenOutputResult(run_id=run.run_id, chars=len(new_report), masked=masked, removed=removed)


def output_screen(store: RunStore, guard: Guard | None = None) -> Callable[[str], ScreenOutputResult]:
    """``screen(run_id)``: :func:`screen_output` with ``guard`` (default: the offline guard, built on first use), for
    the places that finalize a run outside the state machine (a hand-off answered when its execution is gone)."""
    built: list[Guard] = [guard] if guard is not None else []

    def screen(run_id: str) -> ScreenOutputResult:
        if not built:
            from stepcrew.guards.local import LocalGuard

            built.append(LocalGuard())
        return screen_output(ScreenOutput(action="screen_output", run_id=run_id), store, built[0])

    return screen
