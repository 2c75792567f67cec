"""The offline rule engine: stepcrew's "simplified rule engine (no LLM)" degradation level.

It is not a language model and does not pretend to be one. It is honestly named (provider ``rule``, model id
``rule-engine``), deterministic, costs zero tokens and answers through the same path as an LLM: plans and
reviews as JSON text, tool calls, plain text. It reads ``request.purpose`` and the structured facts in
``request.context`` (:mod:`stepcrew.domain.context`) plus the tool results in ``request.messages``:

- ``plan``: goal templates. With a dataset: ``profile`` (describe_dataset) and ``compare`` (describe_dataset +
  query_dataset: group statistics), independent of each other; ``quantify`` (calculator, after compare: gap and
  ratio between the largest and smallest group on each key measure); ``findings`` (write_section, after profile
  and quantify). Roles are the crew's workers that have the tools. Without a dataset: a calculator sub-task when
  the goal holds arithmetic, and a write_section outline.
- ``act``: tools by rules: describe while the schema is unknown; one GROUP BY over the 2-12-valued text column
  (never a date) that best matches the goal's words, averaging the numeric columns the goal names (else the first
  few), overall means when there is no such column, with a simpler query after a QueryError; calculator calls for
  gaps/ratios between groups, or for each measure's spread (max - min) without groups, or for the goal's own
  arithmetic without a dataset; write_section with a table of the figures. Then an end_turn text with the figures.
- ``synthesize`` / ``improve``: a Markdown report that says in its first lines it came from the rule engine, a
  summary with the key figures, one section per sub-task and a method section; improve adds what the rubric
  found missing.
- ``review``: rubric checks: accuracy (share of the report's figures found in tool results, within rounding),
  completeness (share of sub-tasks answered), relevance (share of the goal's content words present), feedback.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from stepcrew.domain.common import tool_facts, tool_numbers
from stepcrew.domain.context import ActContext, PlanContext, ReportContext, SubtaskFacts, ToolFact
from stepcrew.domain.numbers import NON_SOURCE_TOOLS, fmt, matches, numbers_in_json, numbers_in_text
from stepcrew.llm.base import Model, ModelBadRequestError, ModelRequest, ModelResponse
from stepcrew.llm.pricing import RULE_ENGINE_MODEL
from stepcrew.models import MAX_TOOL_CALLS_PER_TURN, Message, ToolCall, ToolResult

#: Opening line of every rule-engine report, under its title (makes its origin plain to a reader).
REPORT_BANNER = ("_Produced by the stepcrew rule engine (no LLM): deterministic rules planned the work, ran the "
                 "tools on the data and wrote this report. It can only compute what the tools can._")
#: Heading of the improve section that lists goal terms the results do not cover (not counted by the rubric).
NOT_COVERED = "## Not covered"
#: Group columns are text columns with this many distinct values (a grouping a reader can take in).
GROUP_DISTINCT = (2, 12)
MAX_MEASURES = 4  # two calculator calls per measure: 4 measures fill MAX_TOOL_CALLS_PER_TURN (8)
QUERY_ATTEMPTS = 3  # the full GROUP BY, then two simpler queries after QueryErrors
_UNITS = {"mm", "cm", "m", "km", "g", "kg", "mg", "lb", "lbs", "s", "ms", "usd", "eur", "pct", "id", "no", "num"}
_STOPWORDS = set("""a an and are as at be been being between both but by can could did do does for from had has have
how i if in into is it its me more most much my no not of on or our out over per please should so some such than
that the their them then there these they this those to under up us was we were what when where which while who
whom why will with within would you your also any each every other about across all among give show tell find make
list one two three four five six seven eight nine ten key figures figure numbers number report""".split())
_ARITHMETIC = re.compile(r"[\d.(][\d.\s()+\-*/%^]*[\d)]")


# ============================================================================================== text helpers
def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", (text or "").lower())


def content_words(text: str) -> list[str]:
    """The distinct content words of ``text`` (lower case, 3+ letters, no stop words), in order."""
    return list(dict.fromkeys(w for w in _words(text) if len(w) >= 3 and w not in _STOPWORDS))


def _present(word: str, vocabulary: set[str]) -> bool:
    """``word`` or a word sharing its first ~3/4 (at least 4 letters) is in ``vocabulary`` (cheap stemming)."""
    if word in vocabulary:
        return True
    prefix = word[: max(4, math.ceil(len(word) * 0.75))]
    return any(v.startswith(prefix) for v in vocabulary)


def _col_tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t and t not in _UNITS]


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# ============================================================================================== tool facts
@dataclass(frozen=True)
class Column:
    """One column of a describe_dataset result; ``info`` is the tool's dict for it."""

    name: str
    numeric: bool
    distinct: int | None
    info: dict[str, Any]

    @property
    def temporal(self) -> bool:
        """A date, time or timestamp column (DuckDB type): never a group, shown by its range."""
        return str(self.info.get("type", "")).upper().startswith(("DATE", "TIME", "INTERVAL"))


@dataclass(frozen=True)
class Schema:
    """A describe_dataset result: dataset name, row count, columns."""

    dataset: str
    rows: int | None
    columns: list[Column]


@dataclass(frozen=True)
class GroupTable:
    """A query result whose first column labels groups and whose other columns hold numbers."""

    group: str
    labels: list[str]
    counts: list[Any] | None
    measures: dict[str, list[float | None]]  # measure column (as returned) -> one value per group


@dataclass(frozen=True)
class Calc:
    """A calculator call the rule engine derives from a group table, with what it means."""

    kind: str  # "gap" | "ratio"
    measure: str
    hi_label: str
    hi: float
    lo_label: str
    lo: float

    @property
    def expression(self) -> str:
        return f"{self.hi!r} {'-' if self.kind == 'gap' else '/'} {self.lo!r}"


def _schema(facts: Iterable[ToolFact]) -> Schema | None:
    last = None
    for f in facts:
        if f.name == "describe_dataset" and isinstance(f.content, dict) and isinstance(f.content.get("columns"), list):
            last = f.content
    if last is None:
        return None
    cols = [Column(name=str(c.get("name")), numeric="mean" in c, distinct=c.get("distinct"), info=c)
            for c in last["columns"] if isinstance(c, dict) and c.get("name")]
    return Schema(dataset=str(last.get("dataset") or "the dataset"), rows=last.get("rows"), columns=cols)


def _rows(content: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    columns = [str(c) for c in content.get("columns") or []]
    rows = []
    for r in content.get("rows") or []:
        rows.append([r.get(c) for c in columns] if isinstance(r, dict) else list(r))
    return columns, rows


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _group_tables(facts: Iterable[ToolFact]) -> list[GroupTable]:
    tables = []
    for f in facts:
        if f.name != "query_dataset" or not isinstance(f.content, dict):
            continue
        columns, rows = _rows(f.content)
        if len(columns) < 2 or len(rows) < 2 or not all(isinstance(r[0], str) for r in rows):
            continue
        counts, measures = None, {}
        for i, col in enumerate(columns[1:], start=1):
            values = [r[i] if i < len(r) and _is_num(r[i]) else None for r in rows]
            if all(v is None for v in values):
                continue
            if col.lower() in ("n", "count", "count_star()") and counts is None:
                counts = values
            else:
                measures[col] = values
        tables.append(GroupTable(group=columns[0], labels=[r[0] for r in rows], counts=counts, measures=measures))
    return tables


def _measure_name(column: str) -> str:
    return re.sub(r"^(mean|avg|average)_", "", column, flags=re.IGNORECASE)


def gap_calcs(table: GroupTable) -> list[Calc]:
    """Gap (largest - smallest) and ratio (largest / smallest) per measure of a group table, at most
    MAX_TOOL_CALLS_PER_TURN calls."""
    calcs = []
    for col, values in table.measures.items():
        pairs = [(label, v) for label, v in zip(table.labels, values, strict=False) if v is not None]
        if len(pairs) < 2:
            continue
        hi = max(pairs, key=lambda p: p[1])
        lo = min(pairs, key=lambda p: p[1])
        if hi[1] == lo[1]:
            continue
        name = _measure_name(col)
        calcs.append(Calc("gap", name, hi[0], float(hi[1]), lo[0], float(lo[1])))
        if lo[1] != 0:
            calcs.append(Calc("ratio", name, hi[0], float(hi[1]), lo[0], float(lo[1])))
    return calcs[:MAX_TOOL_CALLS_PER_TURN]


def _literal(value: float) -> str:
    """A number as a calculator literal: integral values without ``.0``, others at full precision."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def spread_calcs(measures: list[Column]) -> list[str]:
    """``"max - min"`` calculator expressions for the spread of each measure (from describe_dataset's min and
    max), when the data has no group column to compare; at most MAX_TOOL_CALLS_PER_TURN."""
    out = []
    for m in measures:
        hi, lo = m.info.get("max"), m.info.get("min")
        if _is_num(hi) and _is_num(lo) and hi != lo:
            out.append(f"{_literal(hi)} - {_literal(lo)}")
    return out[:MAX_TOOL_CALLS_PER_TURN]


def _calculations(facts: Iterable[ToolFact]) -> list[ToolFact]:
    """The calculator results that hold a finite number ``value``."""
    return [f for f in facts
            if f.name == "calculator" and isinstance(f.content, dict) and _is_num(f.content.get("value"))]


def _calc_values(facts: Iterable[ToolFact]) -> dict[str, float]:
    return {str(f.content.get("expression", f.arguments.get("expression", ""))): float(f.content["value"])
            for f in _calculations(facts)}


def _calc_lines(facts: Iterable[ToolFact]) -> list[str]:
    """``"<expression> = <value>"`` for each calculator result, in order."""
    return [f"{f.content.get('expression')} = {fmt(f.content['value'])}" for f in _calculations(facts)]


@dataclass(frozen=True)
class Gap:
    """The extreme groups of one measure, with the calculator's gap and ratio when they were computed."""

    measure: str
    hi_label: str
    hi: float
    lo_label: str
    lo: float
    gap: float | None
    ratio: float | None

    def sentence(self) -> str:
        text = (f"{self.measure}: {self.hi_label} has the highest mean ({fmt(self.hi)}) and {self.lo_label} the "
                f"lowest ({fmt(self.lo)})")
        if self.gap is not None:
            text += f"; the gap is {fmt(self.gap)}"
        if self.ratio is not None:
            text += f" and the ratio {fmt(self.ratio)}"
        return text + "."


def _gaps(facts: list[ToolFact]) -> list[Gap]:
    """Gap findings: each group table's extremes, with the calculator's gap/ratio values where they were run."""
    values = _calc_values(facts)
    out: dict[str, Gap] = {}
    for table in _group_tables(facts):
        for c in gap_calcs(table):
            g = out.get(c.measure) or Gap(c.measure, c.hi_label, c.hi, c.lo_label, c.lo, None, None)
            v = values.get(c.expression)
            if v is not None:
                g = Gap(g.measure, g.hi_label, g.hi, g.lo_label, g.lo, v if c.kind == "gap" else g.gap,
                        v if c.kind == "ratio" else g.ratio)
            out[c.measure] = g
    return list(out.values())


# ============================================================================================== text of facts
def _profile_lines(schema: Schema) -> list[str]:
    lines = [f"The dataset {schema.dataset} has {schema.rows} rows and {len(schema.columns)} columns."]
    for c in schema.columns:
        i = c.info
        if c.temporal:
            lines.append(f"- {c.name} (date): from {i.get('min')} to {i.get('max')}, {i.get('nulls', 0)} missing.")
        elif c.numeric:
            lines.append(f"- {c.name} (numeric): mean {fmt(i['mean'])}, median {fmt(i.get('median', i['mean']))}, "
                         f"min {fmt(i.get('min', 0))}, max {fmt(i.get('max', 0))}, {i.get('nulls', 0)} missing.")
        else:
            top = ", ".join(f"{t.get('value')} ({t.get('count')})" for t in (i.get("top") or [])[:5])
            lines.append(f"- {c.name} (text): {c.distinct} distinct values, {i.get('nulls', 0)} missing"
                         + (f"; most frequent: {top}." if top else "."))
    return lines


def _table_markdown(columns: list[str], rows: list[list[Any]], limit: int = 20) -> str:
    def cell(v: Any) -> str:
        return "" if v is None else fmt(v) if _is_num(v) else str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows[:limit]]
    return "\n".join(lines)


def _fact_text(fact: ToolFact) -> str:
    if fact.name == "describe_dataset":
        schema = _schema([fact])
        return "\n".join(_profile_lines(schema)) if schema else ""
    if fact.name == "query_dataset" and isinstance(fact.content, dict):
        columns, rows = _rows(fact.content)
        tables = _group_tables([fact])
        head = f"Means by {tables[0].group}:" if tables else "Query result:"
        return f"{head}\n\n{_table_markdown(columns, rows)}"
    if fact.name == "write_section" and isinstance(fact.content, dict):
        return str(fact.content.get("markdown", ""))
    return ""


def _answer_text(own: list[ToolFact], failures: list[ToolResult], deps: list[ToolFact]) -> str:
    gaps = _gaps(deps + own) if any(f.name == "calculator" for f in own) else []
    queried = any(f.name == "query_dataset" for f in own)  # then the describe was only a means to the query
    parts = [t for t in (_fact_text(f) for f in own if not (queried and f.name == "describe_dataset")) if t]
    if gaps:
        parts.append("\n".join(f"- {g.sentence()}" for g in gaps))
    elif any(f.name == "calculator" for f in own):
        parts.append("\n".join(f"- {line}" for line in _calc_lines(own)))
    for r in failures:
        parts.append(f"The tool {r.name} failed: {r.error.type if r.error else 'error'}.")
    if not parts:
        return "No tool applied to this sub-task, so the rule engine has no figures for it (it can only compute " \
               "what the tools can)."
    return "\n\n".join(parts)


# ============================================================================================== planning
@dataclass(frozen=True)
class _Template:
    """A sub-task of a plan template (its role is chosen from the crew's workers by ``tools``)."""

    id: str
    title: str
    instructions: str
    tools: list[str]
    depends_on: list[str]
    expected_output: str


_DATASET_PLAN = [
    _Template("profile", "Profile the dataset", "Describe the dataset: columns, types, missing values, ranges and "
              "the most frequent values.", ["describe_dataset"], [], "A profile of every column."),
    _Template("compare", "Compare the groups", "Look at the schema, pick the categorical column that best matches "
              "the goal and compute the mean of the key measures per group with one GROUP BY query.",
              ["describe_dataset", "query_dataset"], [], "A table of group means."),
    _Template("quantify", "Quantify the gaps", "With the calculator, compute the gap and the ratio between the "
              "largest and the smallest group on each key measure.", ["calculator"], ["compare"],
              "Gaps and ratios between the extreme groups."),
    _Template("findings", "Write the findings", "Write a report section with a table of the computed figures.",
              ["write_section"], ["profile", "quantify"], "A Markdown section with the key figures."),
]


def _worker_with(ctx: PlanContext, tools: list[str]) -> str | None:
    return next((w.name for w in ctx.workers if set(tools) <= set(w.tools)), None)


def _plan(ctx: PlanContext) -> dict[str, Any]:
    if ctx.has_dataset:
        templates = list(_DATASET_PLAN)
        rationale = "Rule engine template 'dataset analysis': profile and compare run side by side."
    else:
        arithmetic = _arithmetic(ctx.goal)
        templates = [_Template("compute", "Compute the figures", "Evaluate the arithmetic in the goal with the "
                               "calculator.", ["calculator"], [], "The computed values.")] if arithmetic else []
        templates.append(_Template(
            "outline", "Outline the answer", "Write an outline of the answer as a report section. The rule engine "
            "has no language model and can only compute what the tools can.", ["write_section"],
            ["compute"] if arithmetic else [], "A Markdown outline."))
        rationale = "Rule engine template 'no dataset': the rule engine can only compute what the tools can."
    subtasks, kept = [], set()
    for t in templates:
        role = _worker_with(ctx, t.tools)
        if role is None:
            continue
        kept.add(t.id)
        subtasks.append({"id": t.id, "title": t.title, "instructions": t.instructions, "tools": t.tools,
                         "depends_on": [d for d in t.depends_on if d in kept], "role": role,
                         "expected_output": t.expected_output})
    if not subtasks:  # no worker has the template's tools: one tool-less answer by the first worker
        subtasks.append({"id": "answer", "title": "Answer the goal", "instructions": "Answer with what the tools "
                         "allow.", "tools": [], "depends_on": [], "role": ctx.workers[0].name if ctx.workers else ""})
    return {"subtasks": subtasks, "rationale": rationale}


def _arithmetic(text: str) -> list[str]:
    found = []
    for m in _ARITHMETIC.finditer(text or ""):
        expr = m.group(0).strip()
        if re.search(r"\d\s*[-+*/%^]\s*[\d(]", expr):
            found.append(expr.replace("^", "**"))
    return list(dict.fromkeys(found))[:MAX_TOOL_CALLS_PER_TURN]


# ============================================================================================== acting
def _exchanges(messages: list[Message]) -> tuple[list[ToolCall], list[ToolResult]]:
    calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
    results = [r for m in messages if m.role == "tool" for r in m.tool_results]
    return calls, results


def _score_column(name: str, strong: set[str], weak: set[str]) -> int:
    tokens = _col_tokens(name)
    return sum(2 * _present(t, strong) + _present(t, weak) for t in tokens if len(t) >= 3)


def _choose(schema: Schema, ctx: ActContext) -> tuple[Column | None, list[Column]]:
    """The group column and the measures for the GROUP BY (see the module docstring)."""
    strong = set(_words(f"{ctx.subtask.title} {ctx.subtask.instructions}"))
    weak = set(_words(ctx.goal))
    lo, hi = GROUP_DISTINCT
    groups = [c for c in schema.columns
              if not (c.numeric or c.temporal) and c.distinct is not None and lo <= c.distinct <= hi]
    group = max(groups, key=lambda c: _score_column(c.name, strong, weak), default=None)
    numeric = [c for c in schema.columns if c.numeric]
    named = [c for c in numeric if _col_tokens(c.name) and _present(_col_tokens(c.name)[0], strong | weak)]
    goal = ctx.goal.lower()
    named.sort(key=lambda c: _position(goal, _col_tokens(c.name)[0]))
    plain = [c for c in numeric if not {"year", "id", "index"} & set(_col_tokens(c.name))]
    return group, (named or plain or numeric)[:MAX_MEASURES]


def _position(text: str, word: str) -> int:
    """Where ``word`` (its first 4 letters) first appears in ``text``; ``len(text)`` when absent."""
    i = text.find(word[:4])
    return i if i >= 0 else len(text)


def _query(group: Column | None, measures: list[Column], attempt: int) -> str:
    """The GROUP BY of the given attempt: 0 full (count + rounded means, ordered), 1 one unrounded mean,
    2 counts only. Without a group column: overall means."""
    means = ", ".join(f"ROUND(AVG({_q(m.name)}), 2) AS {_q('mean_' + m.name)}" for m in measures)
    if group is None:
        return f"SELECT COUNT(*) AS n, {means or '1 AS one'} FROM data"
    g = _q(group.name)
    if attempt == 0 and measures:
        return f"SELECT {g}, COUNT(*) AS n, {means} FROM data WHERE {g} IS NOT NULL GROUP BY {g} ORDER BY 3 DESC"
    if attempt <= 1 and measures:
        m = measures[0]
        return f"SELECT {g}, AVG({_q(m.name)}) AS {_q('mean_' + m.name)} FROM data GROUP BY 1 ORDER BY 2 DESC"
    return f"SELECT {g}, COUNT(*) AS n FROM data GROUP BY 1 ORDER BY 2 DESC"


def _section_args(ctx: ActContext, facts: list[ToolFact]) -> dict[str, Any]:
    schema, gaps, tables = _schema(facts), _gaps(facts), _group_tables(facts)
    bullets = [g.sentence() for g in gaps]
    table = None
    if gaps:
        table = {"columns": ["measure", "highest group", "highest mean", "lowest group", "lowest mean", "gap",
                             "ratio"],
                 "rows": [[g.measure, g.hi_label, g.hi, g.lo_label, g.lo, g.gap, g.ratio] for g in gaps]}
    elif tables:
        t = tables[0]
        cols = [t.group, *(["n"] if t.counts else []), *t.measures]
        rows = [[label, *([t.counts[i]] if t.counts else []), *(v[i] for v in t.measures.values())]
                for i, label in enumerate(t.labels)]
        table = {"columns": cols[:20], "rows": [r[:20] for r in rows[:50]]}
    elif calcs := _calc_values(facts):
        table = {"columns": ["expression", "value"], "rows": [[e, v] for e, v in list(calcs.items())[:50]]}
    if schema:
        bullets.insert(0, _profile_lines(schema)[0])
    if not (schema or gaps or tables):
        bullets = ["The rule engine has no language model: it cannot explain, argue or summarise free text."]
        if table:
            bullets.append("It computed the figures in the table below with the calculator.")
    summary = bullets[1] if len(bullets) > 1 and (schema or gaps) else bullets[0]
    return {"heading": ctx.subtask.title, "summary": summary, "bullets": bullets[:20], "table": table}


_OK = ToolResult(call_id="-", name="-", ok=True)  # a call without a result yet counts as not failed


def _act(ctx: ActContext, request: ModelRequest) -> ModelResponse:
    allowed = {t.name for t in request.tools}
    calls, results = _exchanges(request.messages)
    by_id = {r.call_id: r for r in results}
    own = tool_facts(request.messages)
    failures = [r for r in results if not r.ok]
    deps = [f for d in ctx.dependencies for f in d.tool_results]
    tried = {c.name for c in calls}
    schema = _schema(own) or _schema(deps)

    def call(*pairs: tuple[str, dict[str, Any]]) -> ModelResponse:
        first = len(calls) + 1  # call ids are unique within the sub-task's conversation
        tool_calls = [ToolCall(call_id=f"re{first + i}", name=n, arguments=a) for i, (n, a) in enumerate(pairs)]
        return _response(stop_reason="tool_use", tool_calls=tool_calls)

    if "describe_dataset" in allowed and ctx.has_dataset and schema is None and "describe_dataset" not in tried:
        return call(("describe_dataset", {"columns": None}))
    if "query_dataset" in allowed and ctx.has_dataset and schema is not None:
        query_failures = sum(1 for c in calls if c.name == "query_dataset" and not by_id.get(c.call_id, _OK).ok)
        if not any(f.name == "query_dataset" for f in own) and query_failures < QUERY_ATTEMPTS:
            group, measures = _choose(schema, ctx)
            return call(("query_dataset", {"sql": _query(group, measures, query_failures), "max_rows": 50}))
    if "calculator" in allowed and "calculator" not in tried:
        tables = _group_tables(own + deps)
        if tables:
            expressions = [c.expression for c in gap_calcs(tables[0])]
        elif schema is not None:
            expressions = spread_calcs(_choose(schema, ctx)[1])
        else:
            expressions = _arithmetic(f"{ctx.goal} {ctx.subtask.instructions}")
        if expressions:
            return call(*[("calculator", {"expression": e}) for e in expressions])
    if "write_section" in allowed and "write_section" not in tried:
        return call(("write_section", _section_args(ctx, deps + own)))
    return _response(text=_answer_text(own, failures, deps))



# ============================================================================================== report, rubric
@dataclass(frozen=True)
class Rubric:
    """The rule engine's review of a report: scores in [0, 1] and what is missing."""

    accuracy: float
    completeness: float
    relevance: float
    unmatched: list[str]
    uncovered: list[str]
    missing_words: list[str]
    counts: tuple[int, int, int, int, int, int]  # matched, figures, answered, subtasks, words found, goal words

    def feedback(self) -> str:
        m, n, a, s, w, g = self.counts
        lines = [f"Rubric checks (stepcrew rule engine): {m} of {n} figures match tool results; {a} of {s} "
                 f"sub-tasks answered; {w} of {g} goal terms present."]
        if self.unmatched:
            lines.append("Figures not found in any tool result: " + ", ".join(self.unmatched[:20]) + ".")
        if self.uncovered:
            lines.append("Sub-tasks not answered in the report: " + ", ".join(self.uncovered) + ".")
        if self.missing_words:
            lines.append("Goal terms missing from the report: " + ", ".join(self.missing_words) + ".")
        if len(lines) == 1:
            lines.append("Nothing is missing.")
        return " ".join(lines)


def _candidates(ctx: ReportContext) -> list[float]:
    """What a report figure may match: the source tool results' numbers (the reviewer passes them as
    ``tool_numbers``), the operands of calculator expressions and the goal's own numbers."""
    nums = list(ctx.tool_numbers) or tool_numbers(ctx.subtasks)
    for s in ctx.subtasks:
        for t in s.tool_results:
            if t.name not in NON_SOURCE_TOOLS and isinstance(t.content, dict):
                nums += [v for _, v in numbers_in_text(str(t.content.get("expression", "")))]
    nums += [v for _, v in numbers_in_text(ctx.goal)]
    return nums


def _answered(s: SubtaskFacts, report_lower: str, written: set[float]) -> bool:
    if s.title.lower() in report_lower or f"`{s.id}`" in report_lower:
        return True
    own = {round(n, 2) for t in s.tool_results if t.name not in NON_SOURCE_TOOLS for n in numbers_in_json(t.content)}
    return bool(own & written)


def rubric(report: str, ctx: ReportContext) -> Rubric:
    """Score ``report`` against the facts (see the module docstring). Text under ``## Not covered`` is ignored."""
    body = report.split(NOT_COVERED, 1)[0]
    candidates = _candidates(ctx)
    figures = numbers_in_text(body)
    unmatched = [w for w, v in figures if not matches(w, v, candidates)]
    if figures:
        accuracy = 1 - len(unmatched) / len(figures)
    else:
        accuracy = 0.0 if candidates else 1.0
    written = {round(v, 2) for _, v in figures}
    lower = body.lower()
    uncovered = [s.id for s in ctx.subtasks if not _answered(s, lower, written)]
    completeness = 1 - len(uncovered) / len(ctx.subtasks) if ctx.subtasks else 0.0
    goal_words = content_words(ctx.goal)
    vocabulary = set(_words(body))
    missing = [w for w in goal_words if not _present(w, vocabulary)]
    relevance = 1 - len(missing) / len(goal_words) if goal_words else 1.0
    counts = (len(figures) - len(unmatched), len(figures), len(ctx.subtasks) - len(uncovered), len(ctx.subtasks),
              len(goal_words) - len(missing), len(goal_words))
    return Rubric(round(accuracy, 4), round(completeness, 4), round(relevance, 4), unmatched, uncovered, missing,
                  counts)


def _all_facts(ctx: ReportContext) -> list[ToolFact]:
    return [f for s in ctx.subtasks for f in s.tool_results]


def _summary(ctx: ReportContext) -> list[str]:
    facts = _all_facts(ctx)
    lines = []
    schema = _schema(facts)
    if schema:
        lines.append(_profile_lines(schema)[0])
    lines += [g.sentence() for g in _gaps(facts)]
    if not lines:
        lines += _calc_lines(facts)
    if not lines:
        lines.append("The tools returned no figures for this goal; the rule engine can only compute what the tools "
                     "can.")
    return [f"- {line}" for line in lines]


def _draft(ctx: ReportContext) -> str:
    parts = ["# Analysis report", REPORT_BANNER, "## Summary", "\n".join(_summary(ctx))]
    for s in ctx.subtasks:
        body = (s.output or "(no output)").strip()
        first, _, rest = body.partition("\n")
        if first.lstrip("#").strip().lower() == s.title.lower():  # a section already headed by the title
            body = rest.strip()
        body = re.sub(r"^#{1,2} ", "### ", body, flags=re.MULTILINE)  # sub-task headings nest under its section
        parts += [f"## {s.title}", body]
    method = [f"- `{s.id}` {s.title}: {', '.join(s.tools) or 'no tools'}"
              + (f" (after {', '.join(s.depends_on)})" if s.depends_on else "") for s in ctx.subtasks]
    note = " (means rounded to two decimals by the query)" if ctx.has_dataset else ""
    parts += ["## Method", f"Sub-tasks and the tools they used; every figure comes from a tool result{note}.",
              "\n".join(method)]
    return "\n\n".join(parts) + "\n"


def _improve(ctx: ReportContext) -> str:
    report = _draft(ctx)
    check = rubric(report, ctx)
    schema = _schema(_all_facts(ctx))
    added, not_covered = [], []
    for word in check.missing_words:
        column = next((c for c in (schema.columns if schema else []) if _present(word, set(_col_tokens(c.name)))),
                      None)
        if column is not None:
            added.append(_profile_lines(Schema(schema.dataset, schema.rows, [column]))[1])
        else:
            not_covered.append(word)
    parts = [report.rstrip()]
    if added:
        parts += ["## Review follow-up", "Figures for goal terms the first draft did not address:", "\n".join(added)]
    if not_covered:
        parts += [NOT_COVERED, "The tools' results say nothing about: " + ", ".join(not_covered)
                  + ". The rule engine can only compute what the tools can."]
    return "\n\n".join(parts) + "\n"


def _review(ctx: ReportContext) -> str:
    r = rubric(ctx.report or "", ctx)
    return json.dumps({"accuracy": r.accuracy, "completeness": r.completeness, "relevance": r.relevance,
                       "feedback": r.feedback()})


# ============================================================================================== the model
def _response(text: str = "", stop_reason: str = "end_turn", tool_calls: list[ToolCall] | None = None) -> ModelResponse:
    return ModelResponse(text=text, stop_reason=stop_reason, tool_calls=tool_calls or [], model=RULE_ENGINE_MODEL)


def _parse(model: type[BaseModel], request: ModelRequest) -> Any:
    try:
        return model.model_validate(request.context)
    except ValidationError as exc:
        raise ModelBadRequestError(f"rule engine: the context of a {request.purpose!r} request does not match "
                                   f"{model.__name__} ({exc.error_count()} error(s))") from None


class RuleEngineModel(Model):
    """The offline rule engine as a :class:`Model` (provider ``rule``, model id ``rule-engine``, zero usage).
    Raises ModelBadRequestError when ``request.context`` does not hold the facts of its purpose."""

    provider = "rule"
    model = RULE_ENGINE_MODEL

    def request(self, request: ModelRequest) -> ModelResponse:
        """Answer one request by rules (see the module docstring). Deterministic."""
        handlers: dict[str, tuple[type[BaseModel], Callable[[Any], ModelResponse]]] = {
            "plan": (PlanContext, lambda c: _response(json.dumps(_plan(c)))),
            "act": (ActContext, lambda c: _act(c, request)),
            "synthesize": (ReportContext, lambda c: _response(_draft(c))),
            "improve": (ReportContext, lambda c: _response(_improve(c))),
            "review": (ReportContext, lambda c: _response(_review(c))),
        }
        model, handler = handlers[request.purpose]
        return handler(_parse(model, request))
