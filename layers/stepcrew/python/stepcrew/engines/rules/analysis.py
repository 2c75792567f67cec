"""What the rule engine computes for a :class:`~stepcrew.engines.rules.questions.Question`, and what it finds.

Three steps, each a pure function:

1. :func:`queries` -- the read-only SQL (DuckDB, table ``data``) the ``query`` sub-task sends to ``query_dataset``;
2. :func:`calculations` -- the calculator expressions the ``compute`` sub-task sends (gaps, ratios, changes in %,
   shares), built from the query results at full precision;
3. :func:`find` -- the answer: the entity, the figures and the table, each figure with the tool call it came from.

Figures are never computed here: every number the report states is a value some tool returned (a query cell or a
calculator result), so the reviewer can trace it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from stepcrew.engines.facts import ToolFact
from stepcrew.engines.numbers import fmt
from stepcrew.engines.rules.questions import Filter, Question, month_name

MAX_CALCULATIONS = 8  # one turn of the compute sub-task (MAX_TOOL_CALLS_PER_TURN)
_AGG_SQL = {"avg": "avg({})", "sum": "sum({})", "median": "median({})", "max": "max({})", "min": "min({})",
            "stddev": "stddev_samp({})", "variance": "var_samp({})"}
_AGG_WORD = {"avg": "mean", "sum": "total", "median": "median", "max": "highest", "min": "lowest", "count": "count",
             "stddev": "standard deviation (sample)", "variance": "variance (sample)"}


def q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str | float) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _where(filters: list[Filter], *extra: str) -> str:
    parts = [f"year({q(f.column)}) = {int(f.value)}" if f.year else f"month({q(f.column)}) = {int(f.value)}"
             if f.month else f"{q(f.column)} = {_lit(f.value)}" for f in filters]
    parts += [e for e in extra if e]
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def _agg(agg: str, column: str) -> str:
    return _AGG_SQL.get(agg, "avg({})").format(q(column))


def _alias(agg: str, column: str) -> str:
    word = {"stddev": "stddev", "variance": "variance"}.get(agg, _AGG_WORD.get(agg, "mean"))
    return f"{word}_{column}"


def _period_expr(question: Question) -> str:
    col = q(question.time_column or "")
    if question.time_is_year_number:
        return col
    return f"year({col})"


def literal(value: float) -> str:
    """A number as a calculator literal: integral values without ``.0``, others at full precision."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ============================================================================================== 1. queries
def queries(question: Question) -> list[str]:
    """The SQL statements of the ``query`` sub-task, in order (one ``query_dataset`` call each)."""
    k, m, f = question.kind, question.measure, question.filters
    g = question.group
    if k == "profile":
        return []
    if k == "share":
        t = question.target
        assert t is not None
        known = f"{q(t.column)} IS NOT NULL" if question.non_null else ""
        return [f"SELECT count(*) FILTER (WHERE {q(t.column)} = {_lit(t.value)}) AS matching, count(*) AS total "
                f"FROM data{_where(f, known)}"]
    if k == "correlation":
        if question.pair:
            a, b = question.pair
            t, gc, mc = q(question.time_column or ""), q(g or ""), q(m or "")
            return [f"SELECT corr(a.{mc}, b.{mc}) AS pearson_r, count(*) AS n FROM data a JOIN data b ON a.{t} = b.{t} "
                    f"WHERE a.{gc} = {_lit(a)} AND b.{gc} = {_lit(b)} AND a.{mc} IS NOT NULL AND b.{mc} IS NOT NULL"]
        x, y = question.measures[:2]
        return [f"SELECT corr({q(x)}, {q(y)}) AS pearson_r, count(*) AS n FROM data"
                f"{_where(f, f'{q(x)} IS NOT NULL', f'{q(y)} IS NOT NULL')}"]
    if k == "filter_aggregate":
        if question.agg == "count" or m is None:
            return [f"SELECT count(*) AS n FROM data{_where(f)}"]
        return [f"SELECT {_agg(question.agg, m)} AS {q(_alias(question.agg, m))}, count({q(m)}) AS n FROM data"
                f"{_where(f)}"]
    if k == "top_n":
        order = "DESC" if question.direction != "min" else "ASC"
        if g:
            return [f"SELECT {q(g)}, {_agg(question.agg, m)} AS {q(_alias(question.agg, m))} FROM data"
                    f"{_where(f, f'{q(g)} IS NOT NULL')} GROUP BY 1 ORDER BY 2 {order} LIMIT {question.n}"]
        label = question.label or ""
        return [f"SELECT {q(label)}, {q(m)} FROM data{_where(f, f'{q(m)} IS NOT NULL')} ORDER BY 2 {order}, 1 "
                f"LIMIT {question.n}"]
    if k == "trend" and g and question.metric == "change" or k == "recommend" and question.metric == "change":
        return [_per_group_first_last(question)]
    if k == "trend":
        if question.period == "date":
            t = q(question.time_column or "")
            cond = _where(f, f"{q(m)} IS NOT NULL")
            return [f"(SELECT {t}, {q(m)} FROM data{cond} ORDER BY {t} ASC LIMIT 1) UNION ALL "
                    f"(SELECT {t}, {q(m)} FROM data{cond} ORDER BY {t} DESC LIMIT 1)"]
        years = f"{_period_expr(question)} IN ({question.years[0]}, {question.years[1]})" if question.years else ""
        if question.agg == "count" or not m:
            return [f"SELECT {_period_expr(question)} AS year, count(*) AS n FROM data{_where(f, years)} GROUP BY 1 "
                    "ORDER BY 1"]
        return [f"SELECT {_period_expr(question)} AS year, {_agg(question.agg, m)} AS {q(_alias(question.agg, m))}, "
                f"count(*) AS n FROM data{_where(f, f'{q(m)} IS NOT NULL', years)} GROUP BY 1 ORDER BY 1"]
    if k == "recommend" and question.metric == "fall_from_peak":
        t = q(question.time_column or "")
        return [f"SELECT {q(g)}, max({q(m)}) AS peak_value, arg_max({t}, {q(m)}) AS peak_date, arg_max({q(m)}, {t}) "
                f"AS last_value, max({t}) AS last_date FROM data{_where(f, f'{q(m)} IS NOT NULL', f'{q(g)} IS NOT NULL')}"
                f" GROUP BY 1 ORDER BY 1"]
    if k == "recommend" and question.metric == "gap":
        col, a, b = question.split or ("", "", "")
        return [f"SELECT {q(g)}, avg({q(m)}) FILTER (WHERE {q(col)} = {_lit(a)}) AS {q(f'mean_{a}')}, "
                f"avg({q(m)}) FILTER (WHERE {q(col)} = {_lit(b)}) AS {q(f'mean_{b}')} FROM data"
                f"{_where(f, f'{q(g)} IS NOT NULL')} GROUP BY 1 ORDER BY 1"]
    if g:  # group comparison, extremes over groups, recommend over a group aggregate
        if question.agg == "count" or m is None:
            return [f"SELECT {q(g)}, count(*) AS n FROM data{_where(f, f'{q(g)} IS NOT NULL')} GROUP BY 1 ORDER BY 1"]
        means = ", ".join(f"{_agg(question.agg, c)} AS {q(_alias(question.agg, c))}" for c in question.measures[:4])
        return [f"SELECT {q(g)}, count(*) AS n, {means} FROM data{_where(f, f'{q(g)} IS NOT NULL')} GROUP BY 1 "
                f"ORDER BY 1"]
    if question.period in ("month", "year") and question.time_column:
        cond = _where(f, f"{q(m)} IS NOT NULL")
        if question.period == "month" and not question.time_is_year_number:
            t = q(question.time_column)
            return [f"SELECT month({t}) AS month_no, monthname({t}) AS month, {_agg(question.agg, m)} AS "
                    f"{q(_alias(question.agg, m))}, count(*) AS n FROM data{cond} GROUP BY 1, 2 ORDER BY 1"]
        return [f"SELECT {_period_expr(question)} AS year, {_agg(question.agg, m)} AS {q(_alias(question.agg, m))}, "
                f"count(*) AS n FROM data{cond} GROUP BY 1 ORDER BY 1"]
    # extremes over rows: the row with the highest/lowest value, named by its label column
    order = "DESC" if question.direction != "min" else "ASC"
    label = question.label or question.time_column or ""
    return [f"SELECT {q(label)}, {q(m)} FROM data{_where(f, f'{q(m)} IS NOT NULL')} ORDER BY 2 {order}, 1 LIMIT 1"]


def coverage_query(question: Question) -> str | None:
    """The SQL of the ``coverage`` sub-task: how many rows the question reads and how many of them hold each
    measure it uses (missing values are skipped, so a reader must see how many). None when there is no measure."""
    cols = list(dict.fromkeys([*question.measures[:4], *([question.group] if question.group else [])]))
    if not cols or question.kind in ("profile", "share"):
        return None
    known = ", ".join(f"count({q(c)}) AS {q('with_' + c)}" for c in cols)
    return f"SELECT count(*) AS {q('rows')}, {known} FROM data{_where(question.filters)}"


def _per_group_first_last(question: Question) -> str:
    g, m, t = q(question.group or ""), q(question.measure or ""), q(question.time_column or "")
    cond = _where(question.filters, f"{m} IS NOT NULL", f"{g} IS NOT NULL")
    if question.period == "year":
        return (f"WITH y AS (SELECT {g} AS grp, {_period_expr(question)} AS yr, avg({m}) AS v FROM data{cond} "
                f"GROUP BY 1, 2) SELECT grp AS {g}, min(yr) AS first_year, arg_min(v, yr) AS first_value, "
                f"max(yr) AS last_year, arg_max(v, yr) AS last_value FROM y GROUP BY 1 ORDER BY 1")
    return (f"SELECT {g}, min({t}) AS first_date, arg_min({m}, {t}) AS first_value, max({t}) AS last_date, "
            f"arg_max({m}, {t}) AS last_value FROM data{cond} GROUP BY 1 ORDER BY 1")


# ============================================================================================== results
@dataclass(frozen=True)
class Table:
    """A query result: column names, rows, and the tool call it came from (``source``)."""

    columns: list[str]
    rows: list[list[Any]]
    source: str
    sql: str

    def col(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] if i < len(r) else None for r in self.rows]


def tables(facts: list[ToolFact], question: Question) -> list[Table]:
    """The query results of ``question``'s statements, in statement order (a statement with no result is skipped)."""
    by_sql = {}
    for fact in facts:
        if fact.name == "query_dataset" and isinstance(fact.content, dict):
            by_sql[str(fact.arguments.get("sql", ""))] = fact
    out = []
    for sql in queries(question):
        fact = by_sql.get(sql)
        if fact is None:
            continue
        content = fact.content
        columns = [str(c) for c in content.get("columns") or []]
        rows = [list(r) if isinstance(r, list) else [r.get(c) for c in columns] for r in content.get("rows") or []]
        out.append(Table(columns, rows, fact.source, sql))
    return out


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def label_text(v: Any) -> str:
    """A table cell as a label: numbers as the report writes them, anything else as text."""
    return fmt(v) if _num(v) else str(v)


# ============================================================================================== 2. calculations
@dataclass(frozen=True)
class Calc:
    """One calculator call: ``key`` says what it is (e.g. ``gap``, ``change_pct:AAPL``), ``expression`` the input."""

    key: str
    expression: str


def calculations(question: Question, results: list[Table]) -> list[Calc]:
    """Calculator calls for the derived figures (see the module docstring); [] when none is needed."""
    if not results:
        return []
    t = results[0]
    k = question.kind
    out: list[Calc] = []
    if k == "share":
        matching, total = t.rows[0][0], t.rows[0][1]
        if _num(matching) and _num(total) and total:
            out.append(Calc("share_pct", f"{literal(matching)} / {literal(total)} * 100"))
    elif k in ("trend", "recommend") and ("first_value" in t.columns):
        for row in t.rows:
            first, last = row[t.columns.index("first_value")], row[t.columns.index("last_value")]
            if _num(first) and _num(last) and first:
                out.append(Calc(f"change_pct:{row[0]}", f"({literal(last)} - {literal(first)}) / {literal(first)} * 100"))
    elif k == "trend" and len(t.rows) >= 2:
        first, last = _value_of(t.rows[0]), _value_of(t.rows[-1])
        if _num(first) and _num(last):
            out.append(Calc("change", f"{literal(last)} - {literal(first)}"))
            if first:
                out.append(Calc("change_pct", f"({literal(last)} - {literal(first)}) / {literal(first)} * 100"))
    elif k == "recommend" and question.metric == "fall_from_peak":
        for row in t.rows:
            peak, last = row[t.columns.index("peak_value")], row[t.columns.index("last_value")]
            if _num(peak) and _num(last) and peak:
                out.append(Calc(f"fall_pct:{row[0]}", f"({literal(peak)} - {literal(last)}) / {literal(peak)} * 100"))
    elif k == "recommend" and question.metric == "gap":
        for row in t.rows:
            a, b = row[1], row[2]
            if _num(a) and _num(b):
                out.append(Calc(f"gap:{row[0]}", f"{literal(a)} - {literal(b)}"))
    elif question.group and k in ("group_comparison", "extremes", "recommend") and len(t.rows) >= 2:
        values = _group_values(t)
        if len(values) >= 2:
            hi = max(values, key=lambda p: p[1])
            lo = min(values, key=lambda p: p[1])
            if hi[1] != lo[1]:
                out.append(Calc("gap", f"{literal(hi[1])} - {literal(lo[1])}"))
                if lo[1]:
                    out.append(Calc("ratio", f"{literal(hi[1])} / {literal(lo[1])}"))
    return out[:MAX_CALCULATIONS]


def _value_of(row: list[Any]) -> Any:
    """The measure of a per-period or first/last row: its second cell."""
    return row[1] if len(row) > 1 else None


def _group_values(t: Table) -> list[tuple[str, float]]:
    """(group label, primary measure) pairs of a group table (the primary measure is its first aggregate column)."""
    idx = next((i for i, c in enumerate(t.columns) if i > 0 and c != "n"), 1 if len(t.columns) > 1 else None)
    if idx is None:
        return []
    return [(str(r[0]), float(r[idx])) for r in t.rows if len(r) > idx and _num(r[idx])]


def calc_values(facts: list[ToolFact], question: Question, results: list[Table]) -> dict[str, tuple[float, str]]:
    """``key -> (value, source)`` of the calculator results for :func:`calculations`' expressions."""
    wanted = {c.expression: c.key for c in calculations(question, results)}
    out = {}
    for fact in facts:
        if fact.name == "calculator" and isinstance(fact.content, dict) and _num(fact.content.get("value")):
            expr = str(fact.arguments.get("expression", fact.content.get("expression", "")))
            if expr in wanted:
                out[wanted[expr]] = (float(fact.content["value"]), fact.source)
    return out


# ============================================================================================== 3. the finding
@dataclass
class Finding:
    """The answer: ``entity`` (or None), ``answer`` (Markdown sentences with their figures and citations),
    ``table`` (columns, rows), ``recommendation`` (one action sentence, recommend only), ``sources`` cited."""

    entity: str | None
    answer: list[str]
    table: tuple[list[str], list[list[Any]]] | None = None
    recommendation: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    complete: bool = True


class _Cite:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def __call__(self, source: str) -> str:
        if source not in self.keys:
            self.keys[source] = f"S{len(self.keys) + 1}"
        return f"[{self.keys[source]}]"


def _unit(column: str) -> str:
    low = column.lower()
    for suffix, unit in (("_mm", " mm"), ("_g", " g"), ("_lbs", " lbs"), ("_cm", " cm"), ("_kg", " kg")):
        if low.endswith(suffix):
            return unit
    return ""


def month_label(f: Filter) -> str:
    """How a filter's value is written in a report (a month filter by the month's name)."""
    return month_name(int(f.value)) if f.month else label_text(f.value)


def _filter_text(f: Filter) -> str:
    if f.month:
        return f"month of {f.column} = {month_name(int(f.value))}"
    return f"{'year of ' if f.year else ''}{f.column} = {label_text(f.value)}"


def _pct(v: float) -> str:
    return f"{fmt(v)} %"


def find(question: Question, facts: list[ToolFact], dataset: str = "the dataset") -> Finding:
    """The finding of ``question`` from the tool results ``facts`` (see :class:`Finding`). ``complete`` is false
    when a result the answer needs is missing (a failed query or calculation): the answer then says so."""
    cite = _Cite()
    results = tables(facts, question)
    calcs = calc_values(facts, question, results)
    if question.kind == "profile":
        return Finding(None, [f"The dataset {dataset} is described in the table below."])
    if not results:
        return Finding(None, ["The rule engine could not compute the answer: the query it needs returned no "
                              "result (see the sub-task outputs)."], complete=False)
    t = results[0]
    k, m = question.kind, question.measure or ""
    unit = _unit(m)
    agg = _AGG_WORD.get(question.agg, "mean")
    finding: Finding
    if k == "share" and "share_pct" in calcs:
        value, src = calcs["share_pct"]
        target = question.target
        matching, total = t.rows[0][0], t.rows[0][1]
        scope = " and ".join(_filter_text(f) for f in question.filters)
        scope = f"with {scope}" if scope else "in the data"
        if question.non_null:
            scope += f" (a recorded {target.column})"
        finding = Finding(None, [f"{_pct(value)} {cite(src)} of the rows {scope} have {target.column} = "
                                 f"{target.value}: {fmt(matching)} of {fmt(total)} {cite(t.source)}."],
                          table=(t.columns, t.rows))
    elif k == "correlation":
        r, n = t.rows[0][0], t.rows[0][1]
        if not _num(r):
            return Finding(None, ["The correlation could not be computed (too few rows with both values)."],
                           complete=False)
        strength = "strong" if abs(r) >= 0.7 else "moderate" if abs(r) >= 0.4 else "weak"
        sign = "positive" if r > 0 else "negative"
        what = (f"{m} of {question.pair[0]} and {question.pair[1]} matched by {question.time_column}"
                if question.pair else f"{question.measures[0]} and {question.measures[1]}")
        finding = Finding(None, [f"Pearson's r between {what} is {fmt(r)} {cite(t.source)} ({strength}, {sign}), over "
                                 f"{fmt(n)} rows {cite(t.source)}."], table=(t.columns, t.rows))
    elif k == "filter_aggregate":
        scope = " and ".join(_filter_text(f) for f in question.filters) or "all rows"
        if question.agg == "count" or not m:
            finding = Finding(None, [f"{fmt(t.rows[0][0])} rows {cite(t.source)} have {scope}."],
                              table=(t.columns, t.rows))
        else:
            value, n = t.rows[0][0], t.rows[0][1]
            if not _num(value):
                return Finding(None, [f"No rows with a {m} match {scope}."], complete=False)
            finding = Finding(None, [f"The {agg} {m} for {scope} is {fmt(value)}{unit} {cite(t.source)}, over {fmt(n)} "
                                     f"rows {cite(t.source)}."], table=(t.columns, t.rows))
    elif k == "top_n":
        rows = [r for r in t.rows if len(r) > 1]
        if not rows:
            return Finding(None, ["The ranking returned no rows."], complete=False)
        listing = "; ".join(f"{label_text(r[0])} ({fmt(r[1])}{unit})" for r in rows)
        what = f"{agg} {m}" if question.group else m
        finding = Finding(label_text(rows[0][0]), [f"Top {len(rows)} by {what} {cite(t.source)}: {listing}."],
                          table=(t.columns, rows))
    elif k in ("trend", "recommend") and "first_value" in t.columns:
        finding = _per_group_change(question, t, calcs, cite, unit)
    elif k == "trend":
        finding = _series_change(question, t, calcs, cite, unit)
    elif k == "recommend" and question.metric == "fall_from_peak":
        finding = _ranked_calc(question, t, calcs, cite, "fall_pct", "fall from its peak to its last value",
                               lambda row: f"peak {fmt(row[1])} on {label_text(row[2])}, last {fmt(row[3])} on "
                                           f"{label_text(row[4])}", pct=True)
    elif k == "recommend" and question.metric == "gap":
        col, a, b = question.split or ("", "", "")
        finding = _ranked_calc(question, t, calcs, cite, "gap", f"gap in {agg} {m} between {a} and {b} ({a} - {b})",
                               lambda row: f"{a} {fmt(row[1])}{unit}, {b} {fmt(row[2])}{unit}", pct=False, unit=unit)
    elif question.group:
        finding = _groups(question, t, calcs, cite, unit)
    else:
        finding = _extreme(question, t, cite, unit)
    if k == "recommend" and finding.entity and finding.complete:
        finding.recommendation = _recommendation(question, finding)
    finding.sources = {key: source for source, key in cite.keys.items()}
    return finding


def _groups(question: Question, t: Table, calcs: dict, cite: _Cite, unit: str) -> Finding:
    values = _group_values(t)
    if not values:
        return Finding(None, ["The group query returned no values."], complete=False)
    measure = question.measure or "rows"
    agg = _AGG_WORD.get(question.agg, "mean") if question.measure else "count"
    hi = max(values, key=lambda p: p[1])
    lo = min(values, key=lambda p: p[1])
    best = lo if question.direction == "min" else hi
    other = hi if best is lo else lo
    parts = ", ".join(f"{label} {fmt(v)}{unit}" for label, v in values)
    lines = [f"{best[0]} has the {'lowest' if best is lo else 'highest'} {agg} {measure}: {fmt(best[1])}{unit} "
             f"{cite(t.source)}, and {other[0]} the {'highest' if best is lo else 'lowest'} ({fmt(other[1])}{unit})."]
    if "gap" in calcs:
        gap, src = calcs["gap"]
        text = f"The gap between {hi[0]} and {lo[0]} is {fmt(gap)}{unit} {cite(src)}"
        if "ratio" in calcs:
            ratio, rsrc = calcs["ratio"]
            text += f", a ratio of {fmt(ratio)} {cite(rsrc)}"
        lines.append(text + ".")
    lines.append(f"{agg.capitalize()} {measure} by {question.group} {cite(t.source)}: {parts}.")
    return Finding(best[0], lines, table=(t.columns, t.rows))


def _extreme(question: Question, t: Table, cite: _Cite, unit: str) -> Finding:
    """The best/worst period (per-month or per-year rows) or row (one row: the label and its value)."""
    if "month_no" in t.columns:
        idx, period = 2, "month"

        def label_of(r: list[Any]) -> str:
            return str(r[1])
    else:
        idx, period = 1, ("year" if t.columns and t.columns[0] == "year" else None)

        def label_of(r: list[Any]) -> str:
            return label_text(r[0])
    rows = [r for r in t.rows if len(r) > idx and _num(r[idx])]
    if not rows:
        return Finding(None, ["The query returned no values."], complete=False)
    best = (min if question.direction == "min" else max)(rows, key=lambda r: r[idx])
    m = question.measure or ""
    word = "lowest" if question.direction == "min" else "highest"
    if period is None:
        scope = " and ".join(_filter_text(f) for f in question.filters)
        where = f" (for {scope})" if scope else ""
        return Finding(label_of(best), [f"The {word} {m}{where} is {fmt(best[idx])}{unit} {cite(t.source)}, on "
                                        f"{question.label} {label_of(best)}."], table=(t.columns, t.rows))
    agg = _AGG_WORD.get(question.agg, "mean")
    listing = ", ".join(f"{label_of(r)} {fmt(r[idx])}{unit}" for r in rows)
    return Finding(label_of(best), [f"{label_of(best)} is the {period} with the {word} {agg} {m}: {fmt(best[idx])}"
                                    f"{unit} {cite(t.source)}.",
                                    f"{agg.capitalize()} {m} per {period} {cite(t.source)}: {listing}."],
                   table=(t.columns, t.rows))


def _series_change(question: Question, t: Table, calcs: dict, cite: _Cite, unit: str) -> Finding:
    if len(t.rows) < 2:
        return Finding(None, ["The data has a single period: no change can be computed."], complete=False)
    first, last = t.rows[0], t.rows[-1]
    m = (question.measure or "rows") if question.agg != "count" else "number of rows"
    agg = "" if question.period == "date" or question.agg == "count" else f"{_AGG_WORD.get(question.agg, 'mean')} "
    scope = " and ".join(_filter_text(f) for f in question.filters)
    scope = f" of {scope}" if scope else ""
    if "change_pct" not in calcs:
        return Finding(None, ["The change could not be computed."], complete=False)
    pct, psrc = calcs["change_pct"]
    change, csrc = calcs.get("change", (None, ""))
    direction = "rose" if pct > 0 else "fell" if pct < 0 else "did not change"
    line = (f"The {agg}{m}{scope} {direction} from {fmt(_value_of(first))}{unit} in {label_text(first[0])} to "
            f"{fmt(_value_of(last))}{unit} in {label_text(last[0])} {cite(t.source)}: a change of "
            + (f"{fmt(change)}{unit} {cite(csrc)}, " if change is not None else "") + f"{_pct(pct)} {cite(psrc)}.")
    lines = [line]
    if question.period != "date" and len(t.rows) > 2:
        lines.append(f"{(agg or 'value ').strip().capitalize()} {m} per {question.period} {cite(t.source)}: "
                     + ", ".join(f"{label_text(r[0])} {fmt(_value_of(r))}" for r in t.rows) + ".")
    return Finding(None, lines, table=(t.columns, t.rows))


def _per_group_change(question: Question, t: Table, calcs: dict, cite: _Cite, unit: str) -> Finding:
    fi, la = t.columns.index("first_value"), t.columns.index("last_value")
    when = "first_year" if "first_year" in t.columns else "first_date"
    fw, lw = t.columns.index(when), t.columns.index(when.replace("first", "last"))
    ranked = [(str(r[0]), calcs[f"change_pct:{r[0]}"], r) for r in t.rows if f"change_pct:{r[0]}" in calcs]
    if not ranked:
        return Finding(None, ["The changes could not be computed."], complete=False)
    pick = min if question.direction == "min" else max
    best = pick(ranked, key=lambda x: x[1][0])
    verb = "fell the most" if question.direction == "min" else "grew the most"
    (pct, src), row = best[1], best[2]
    m = question.measure or ""
    lines = [f"{best[0]} {verb}: its {m} went from {fmt(row[fi])}{unit} ({label_text(row[fw])}) to {fmt(row[la])}{unit} "
             f"({label_text(row[lw])}) {cite(t.source)}, a change of {_pct(pct)} {cite(src)}."]
    lines.append("Change from first to last, per " + str(question.group) + ": "
                 + ", ".join(f"{g} {_pct(v[0])} {cite(v[1])}" for g, v, _ in ranked) + ".")
    return Finding(best[0], lines, table=(t.columns, t.rows))


def _ranked_calc(question: Question, t: Table, calcs: dict, cite: _Cite, prefix: str, what: str, detail,
                 pct: bool, unit: str = "") -> Finding:
    ranked = [(str(r[0]), calcs[f"{prefix}:{r[0]}"], r) for r in t.rows if f"{prefix}:{r[0]}" in calcs]
    if not ranked:
        return Finding(None, ["The figures could not be computed."], complete=False)
    pick = min if question.direction == "min" else max
    best = pick(ranked, key=lambda x: x[1][0])
    show = _pct if pct else (lambda v: f"{fmt(v)}{unit}")
    lines = [f"{best[0]} has the {'smallest' if question.direction == 'min' else 'largest'} {what}: "
             f"{show(best[1][0])} {cite(best[1][1])} ({detail(best[2])} {cite(t.source)})."]
    lines.append(f"Per {question.group}: " + ", ".join(f"{g} {show(v[0])} {cite(v[1])}" for g, v, _ in ranked) + ".")
    return Finding(best[0], lines, table=(t.columns, t.rows))


def _recommendation(question: Question, finding: Finding) -> str:
    figure = finding.answer[0].split(":", 1)[-1].strip().rstrip(".")
    return (f"**Recommendation (a rule, not judgement):** {finding.entity} — the rule picks the "
            f"{'smallest' if question.direction == 'min' else 'largest'} computed figure: {figure}.")
