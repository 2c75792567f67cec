"""An :class:`~stepcrew.evals.runner.EvalReport` as Markdown (for people and CI summaries) or as JSON."""

from __future__ import annotations

from typing import Any

from stepcrew.evals.runner import CaseResult, EvalReport


def _cell(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
    return " ".join(text.replace("|", "\\|").split())


def _yes(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def outcome(case: CaseResult) -> str:
    """One word for the case's outcome: success / wrong (answerable), declined ok / not declined (unanswerable),
    declined wrongly, error."""
    if case.status == "ERROR":
        return "error"
    if case.answerable:
        if case.declined_wrongly:
            return "declined wrongly"
        return "success" if case.task_success else "wrong"
    return "declined ok" if case.declined_correctly else "not declined"


def to_markdown(report: EvalReport) -> str:
    """The report as Markdown: a title, the totals, the score per case type and one row per case (then the
    errors and notes of the cases that have any)."""
    t = report.totals
    fig = f"{_ratio(t.figure_accuracy)} ({t.figures_found}/{t.figures_total})"
    totals = [
        ["cases", f"{t.cases} ({t.answerable} answerable, {t.unanswerable} unanswerable)"],
        ["score", f"{_ratio(t.score)} ({t.success + t.declined_correctly}/{t.cases})"],
        ["task success", f"{t.success}/{t.answerable}"],
        ["declined correctly", f"{t.declined_correctly}/{t.unanswerable}"],
        ["declined wrongly", t.declined_wrongly],
        ["figure accuracy", fig],
        ["tool accuracy", _ratio(t.tool_accuracy)],
        ["wrong but passed review", t.wrong_but_passed],
        ["turns", t.turns],
        ["tokens", t.tokens],
        ["cost USD", f"{t.cost_usd:.4f}"],
        ["wall s", f"{t.wall_s:.1f}"],
    ]
    if t.judged:
        totals.append(["judge score", f"{_ratio(t.judge_score)} ({t.judged} judged)"])
    if t.errors:
        totals.append(["cases not run (errors)", t.errors])
    lines = [f"# Eval: {report.suite} (provider {report.provider})", "", "## Totals", "",
             *_table(["metric", "value"], totals), "", "## By type", "",
             *_table(["type", "cases", "correct", "score"],
                     [[kind, s.cases, s.correct, _ratio(s.score)] for kind, s in report.by_type.items()]),
             "", "## Cases", ""]
    header = ["id", "type", "status", "result", "figures", "entity ok", "passed review", "wrong but passed", "tools",
              "turns", "tokens", "wall s"]
    if t.judged:
        header.append("judge")
    rows = []
    for c in report.cases:
        row = [c.id, c.type, c.status, outcome(c), f"{c.figures_found}/{c.figures_total}" if c.answerable else "—",
               _yes(c.entity_ok), _yes(c.passed_review), _yes(c.wrong_but_passed),
               ", ".join(dict.fromkeys(c.tools_called)) or "—", c.turns, c.tokens, f"{c.wall_s:.1f}"]
        if t.judged:
            row.append(_ratio(c.judge_score))
        rows.append(row)
    lines += _table(header, rows)
    details = []
    for c in report.cases:
        parts = []
        if c.error:
            parts.append(f"error {c.error}")
        if c.figures_missing:
            parts.append("figures not found: " + ", ".join(c.figures_missing))
        if c.tools_missing:
            parts.append("expected tools not called: " + ", ".join(c.tools_missing))
        if c.unknown_tools:
            parts.append("unknown tools called: " + ", ".join(c.unknown_tools))
        parts += c.notes
        if parts:
            details.append(f"- `{c.id}`: " + "; ".join(" ".join(p.split()) for p in parts))
    if details:
        lines += ["", "## Details", "", *details]
    return "\n".join(lines) + "\n"


def to_json(report: EvalReport) -> dict:
    """The report as a JSON-ready dict (``model_dump(mode="json")``)."""
    return report.model_dump(mode="json")


__all__ = ["outcome", "to_json", "to_markdown"]
