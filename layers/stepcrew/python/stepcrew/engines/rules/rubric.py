"""The rule engine's reviewer: a rubric that scores what it claims to.

- **accuracy** = share of the report's figures that trace to a tool result (a query cell, a calculator value, the
  dataset profile, a calculator operand or a number of the goal), up to the figure's own rounding (``5076.02``
  matches ``5076.0204``). Figures inside code spans (SQL, expressions) are not report figures. A report with no
  figure on an analytical goal (a run with a dataset, or any tool figure) scores 0, not 1.
- **completeness** = share of sub-tasks whose key figures (the numbers of their own output that trace to tool
  results) appear in the report; a sub-task that produced no such figure is not answered. Titles do not count.
- **relevance** = share of the checks of the goal's question type that the report passes, read in its answer (its
  title and first section, :func:`answer_part`): a trend names the first and last period and states a first-vs-last change; a
  "which"/top-N/recommend question names the entity the tool results single out; a recommendation is one action
  tied to a computed figure; a share states a percentage; a correlation states r; a filtered aggregate names its
  filter; a comparison names every group. A goal the rules cannot read scores 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from stepcrew.engines.facts import ReportFacts, SubtaskFacts, ToolFact, tool_numbers
from stepcrew.engines.numbers import NON_SOURCE_TOOLS, matches, numbers_in_json, numbers_in_text
from stepcrew.engines.rules import analysis
from stepcrew.engines.rules.questions import Question, interpret

_CODE = re.compile(r"`[^`\n]*`")


def strip_code(text: str) -> str:
    """``text`` without Markdown code spans and fenced blocks (SQL and expressions are not report figures)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    return _CODE.sub(" ", text)


_HEADING = re.compile(r"^\s{0,3}(#{1,2})\s+\S")


def answer_part(report: str, fallback_lines: int = 15) -> str:
    """The report's answer: its title and first section. With a level-1 title first (``# ...``) that is the text
    before the third ``#``/``##`` heading line, otherwise the text before the second; a report with fewer headings:
    its first ``fallback_lines`` lines. (The rule engine's reports are ``# title``, ``## Answer``, ``## Figures``...)"""
    lines = (report or "").splitlines()
    headings = [i for i, line in enumerate(lines) if _HEADING.match(line)]
    ends_at = 3 if headings and _HEADING.match(lines[headings[0]]).group(1) == "#" else 2
    if len(headings) < ends_at:
        return "\n".join(lines[:fallback_lines])
    return "\n".join(lines[: headings[ends_at - 1]])


@dataclass(frozen=True)
class Rubric:
    """Scores in [0, 1] and what each check found."""

    accuracy: float
    completeness: float
    relevance: float
    unmatched: list[str]
    unanswered: list[str]
    failed_checks: list[str]
    counts: tuple[int, int, int, int, int, int]  # matched, figures, answered, sub-tasks, checks passed, checks

    def feedback(self) -> str:
        m, n, a, s, p, c = self.counts
        lines = [f"Rubric (stepcrew rule engine): {m} of {n} figures trace to tool results; {a} of {s} sub-tasks' "
                 f"key figures appear in the report; {p} of {c} question-type checks pass."]
        if self.unmatched:
            lines.append("Figures not found in any tool result: " + ", ".join(self.unmatched[:20]) + ".")
        if self.unanswered:
            lines.append("Sub-tasks whose figures the report lacks: " + ", ".join(self.unanswered) + ".")
        if self.failed_checks:
            lines.append("Failed checks: " + "; ".join(self.failed_checks) + ".")
        if len(lines) == 1:
            lines.append("Nothing is missing.")
        return " ".join(lines)


def _candidates(facts: ReportFacts) -> list[float]:
    nums = list(facts.tool_numbers) or tool_numbers(facts.subtasks)
    for s in facts.subtasks:  # numbers inside text cells too ("honda civic 1500 gl")
        for t in s.tool_results:
            if t.name not in NON_SOURCE_TOOLS:
                nums += [v for _, v in numbers_in_text(json.dumps(t.content, default=str))]
    for s in facts.subtasks:
        for t in s.tool_results:
            if t.name == "calculator" and isinstance(t.content, dict):
                nums += [v for _, v in numbers_in_text(str(t.content.get("expression", "")))]
    if facts.dataset is not None:
        nums += numbers_in_json(facts.dataset.model_dump(mode="json"), with_lengths=True)
    nums += [v for _, v in numbers_in_text(facts.goal)]
    return nums


def _source_numbers(s: SubtaskFacts, deps: list[SubtaskFacts]) -> list[float]:
    return [n for f in [*s.tool_results, *(t for d in deps for t in d.tool_results)] if f.name not in NON_SOURCE_TOOLS
            for n in numbers_in_json(f.content)]


def _answered(s: SubtaskFacts, facts: ReportFacts, report_figures: list[tuple[str, float]]) -> bool:
    deps = [d for d in facts.subtasks if d.id in s.depends_on]
    sources = _source_numbers(s, deps)
    key = [v for w, v in numbers_in_text(strip_code(s.output or "")) if matches(w, v, sources)]
    if not key:
        return False
    found = sum(1 for v in set(key) if any(abs(abs(v) - abs(rv)) <= max(0.005, abs(v) * 1e-4) or
                                           matches(w, rv, [v]) for w, rv in report_figures))
    return found >= max(1, len(set(key)) // 2)


def _named(label: str, text: str) -> bool:
    return bool(label) and re.search(r"(?<![A-Za-z0-9])" + re.escape(label.lower()) + r"(?![A-Za-z0-9])",
                                     text.lower()) is not None


def _body(answer: str) -> str:
    """The answer without its heading lines and the italic banner (a title may name every group)."""
    return "\n".join(line for line in answer.splitlines()
                     if not line.startswith("#") and not (line.startswith("_") and line.rstrip().endswith("_")))


def _leads(entity: str, others: list[str], answer: str) -> bool:
    """``entity`` is named in the answer's body before any competing label (the answer states it as the answer)."""
    body = _body(answer).lower()
    def first(label: str) -> int:
        m = re.search(r"(?<![a-z0-9])" + re.escape(label.lower()) + r"(?![a-z0-9])", body)
        return m.start() if m else -1
    at = first(entity)
    return at >= 0 and all(first(o) < 0 or first(o) > at for o in others)


def _column_named(column: str, text: str) -> bool:
    """The column by its name or by one of its longer tokens (``body_mass_g`` -> "body mass")."""
    from stepcrew.engines.rules.questions import col_tokens

    low = text.lower()
    return column.lower() in low or any(len(t) >= 4 and t in low for t in col_tokens(column))


def _traced(text: str, candidates: list[float]) -> list[tuple[str, float]]:
    return [(w, v) for w, v in numbers_in_text(strip_code(text)) if matches(w, v, candidates)]


def _checks(q: Question, facts: ReportFacts, answer: str, candidates: list[float]) -> list[tuple[str, bool]]:
    everything: list[ToolFact] = [f for s in facts.subtasks for f in s.tool_results]
    finding = analysis.find(q, everything)
    traced = _traced(answer, candidates)
    checks: list[tuple[str, bool]] = [("the answer states a figure traced to a tool result", bool(traced))]
    if not finding.complete:
        checks.append(("the tool results hold the figures the answer needs", False))
        return checks
    tables = analysis.tables(everything, q)
    if q.kind == "trend" and not q.group:
        t = tables[0] if tables else None
        periods = [analysis.label_text(t.rows[0][0]), analysis.label_text(t.rows[-1][0])] if t and len(t.rows) >= 2 else []
        checks.append(("the answer names the first and the last period",
                       bool(periods) and all(_named(p, answer) for p in periods)))
        changes = [v for k, (v, _) in analysis.calc_values(everything, q, tables).items() if k.startswith("change")]
        checks.append(("the answer states the first-to-last change",
                       any(matches(w, v, changes) for w, v in numbers_in_text(strip_code(answer)))))
    if finding.entity is not None:
        others = [str(r[0]) for r in (finding.table[1] if finding.table else []) if str(r[0]) != finding.entity]
        checks.append((f"the answer names {finding.entity!r} first, which the tool results single out",
                       _leads(finding.entity, others, answer)))
    if q.kind == "top_n" and finding.table:
        labels = [str(r[0]) for r in finding.table[1]]
        checks.append(("the answer lists every ranked entity", all(_named(x, answer) for x in labels)))
    if q.kind == "recommend":
        rec = next((line for line in answer.splitlines() if line.lstrip("*_ ").lower().startswith("recommend")), "")
        checks.append(("one recommended action tied to a computed figure",
                       bool(rec) and _named(finding.entity or "", rec) and bool(_traced(rec, candidates))))
    if q.kind == "share":
        checks.append(("the answer states a percentage", "%" in answer or "percent" in answer.lower()))
    if q.kind == "correlation":
        r = tables[0].rows[0][0] if tables and tables[0].rows else None
        checks.append(("the answer states Pearson's r", r is not None and any(
            matches(w, v, [r]) for w, v in numbers_in_text(strip_code(answer)))))
    if q.filters:
        labels = [analysis.month_label(f) for f in q.filters]
        checks.append(("the answer names every filter of the goal", all(_named(x, answer) for x in labels)))
    if q.measure and q.agg != "count":
        checks.append((f"the answer names the measure the goal asks about ({q.measure})",
                       _column_named(q.measure, answer)))
    if q.kind == "group_comparison" and tables:
        labels = [str(r[0]) for r in tables[0].rows]
        checks.append(("the report names every group", all(_named(x, answer) for x in labels)))
    return checks


def rubric(report: str, facts: ReportFacts) -> Rubric:
    """Score ``report`` against the facts (see the module docstring)."""
    body = strip_code(report)
    candidates = _candidates(facts)
    figures = numbers_in_text(body)
    unmatched = [w for w, v in figures if not matches(w, v, candidates)]
    analytical = facts.has_dataset or bool(tool_numbers(facts.subtasks))
    accuracy = (1 - len(unmatched) / len(figures)) if figures else (0.0 if analytical else 1.0)
    unanswered = [s.id for s in facts.subtasks if not _answered(s, facts, figures)]
    completeness = 1 - len(unanswered) / len(facts.subtasks) if facts.subtasks else 0.0
    q = interpret(facts.goal, facts.dataset) if facts.has_dataset else None
    if isinstance(q, Question):
        checks = _checks(q, facts, answer_part(report), candidates)
    elif facts.has_dataset:
        checks = [("the rules can read the goal against the dataset", False)]
    else:
        checks = [("the answer states a computed figure", bool(_traced(answer_part(report), candidates)))]
    passed = [c for c, ok in checks if ok]
    relevance = len(passed) / len(checks) if checks else 0.0
    counts = (len(figures) - len(unmatched), len(figures), len(facts.subtasks) - len(unanswered), len(facts.subtasks),
              len(passed), len(checks))
    return Rubric(round(accuracy, 4), round(completeness, 4), round(relevance, 4), unmatched, unanswered,
                  [c for c, ok in checks if not ok], counts)
