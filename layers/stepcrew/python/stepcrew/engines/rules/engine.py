"""The offline rule engine: stepcrew's "simplified rule engine (no LLM)" degradation level, as an
:class:`~stepcrew.engines.base.Engine`.

It is not a language model and does not pretend to be one: its engine name is ``rule-engine``, it costs zero
tokens, and it either answers the goal's question from the data or **declines** (the run ends DECLINED, naming
what it could not do). It reads the typed facts directly:

- ``plan``: :func:`~stepcrew.engines.rules.questions.interpret` reads the goal against the dataset's profile. A
  decline (forecast, cause, a column the data lacks, no fitting rule, no dataset) is the reply. Otherwise the plan
  is ``query`` (query_dataset: the question's SQL) and, when derived figures are needed, ``compute`` (calculator:
  gaps, ratios, changes in %, shares), after it. Without a dataset only arithmetic in the goal is answered. Only
  when a worker of the crew has ``make_chart`` (the ``charts`` crew; never the default crew) and the question's
  table is a label column with figures (:func:`chartable`), ``chart`` (make_chart: a bar chart of the query's
  primary figure per label) follows ``query``.
- ``act``: the sub-task's tool calls (:mod:`stepcrew.engines.rules.analysis`), then an answer with their results.
- ``synthesize`` / ``improve``: a report whose first lines state the answer, every figure citing its tool call
  ([S1] -> the Sources section), no repeated sentences, and a recommendation marked as a rule, not judgement; a
  ``## Chart`` section with each successful make_chart result's ``markdown`` line (none without such a result).
- ``review``: :func:`~stepcrew.engines.rules.rubric.rubric` (accuracy, completeness, relevance by question type).
"""

from __future__ import annotations

import json
import re
from typing import Any

from stepcrew.engines.base import ActReply, Engine, EngineCall, PlanReply, ReportReply, ReviewReply
from stepcrew.engines.facts import ActFacts, PlanFacts, ReportFacts, ToolFact, tool_facts
from stepcrew.engines.numbers import fmt
from stepcrew.engines.rules import analysis
from stepcrew.engines.rules.questions import Question, decline, interpret
from stepcrew.engines.rules.rubric import rubric
from stepcrew.llm.base import ToolSpec
from stepcrew.llm.pricing import RULE_ENGINE_MODEL
from stepcrew.models import (
    MAX_TOOL_CALLS_PER_TURN,
    AgentRole,
    CriterionScores,
    Message,
    Plan,
    ToolCall,
    base_subtask_id,
)

#: Opening line of every rule-engine report, under its title (makes its origin plain to a reader).
REPORT_BANNER = ("_Produced by the stepcrew rule engine (no LLM): deterministic rules read the goal against the "
                 "dataset's columns, ran the tools on the data and wrote this report. Every figure cites the tool "
                 "call it came from ([S1] ... under Sources)._")
QUERY, COVERAGE, COMPUTE, ARITHMETIC, CHART = "query", "coverage", "compute", "arithmetic", "chart"
#: The size of the rule engine's charts, in pixels (make_chart's defaults, stated so the call's arguments say it).
CHART_WIDTH_PX, CHART_HEIGHT_PX = 800, 480
_ARITH = re.compile(r"[\d.(][\d.\s()+\-*/%^]*[\d)]")
_CALL = EngineCall(model=RULE_ENGINE_MODEL)
def needs_compute(q: Question) -> bool:
    """Whether the question's answer needs calculator figures (see analysis.calculations)."""
    if q.kind in ("share", "trend"):
        return True
    if q.kind == "recommend":
        return q.metric in ("change", "fall_from_peak", "gap") or q.group is not None
    return q.kind in ("group_comparison", "extremes") and q.group is not None


def chartable(q: Question) -> bool:
    """Whether the question's query table is one label column with figures (a bar per label): a group comparison,
    a top-N, or extremes over groups or periods. Other kinds (a share, a correlation, a single aggregate, a
    first-vs-last change) get no chart sub-task."""
    return q.kind in ("group_comparison", "top_n") or (q.kind == "extremes" and (q.group is not None or q.period in
                                                                                  ("month", "year")))


def chart_args(q: Question, results: list[analysis.Table]) -> dict[str, Any] | None:
    """make_chart's arguments for the first query result: a bar chart of its primary figure (the first column after
    the label that is not the row count ``n``; ``n`` for a count) per label, rows without a number skipped. None when
    there is nothing to draw (no result, no numeric column, no row)."""
    if not results:
        return None
    t = results[0]
    x = "month" if "month_no" in t.columns and "month" in t.columns else (t.columns[0] if t.columns else None)
    if x is None:
        return None
    skip = {x, "month_no"}
    ys = [c for c in t.columns if c not in skip and c != "n"] or [c for c in t.columns if c == "n"]
    y = next((c for c in ys if any(isinstance(v, int | float) and not isinstance(v, bool) for v in t.col(c))), None)
    if y is None:
        return None
    xi, yi = t.columns.index(x), t.columns.index(y)
    rows = [[analysis.label_text(r[xi]), r[yi]] for r in t.rows
            if len(r) > max(xi, yi) and r[xi] is not None and isinstance(r[yi], int | float)
            and not isinstance(r[yi], bool)]
    if not rows:
        return None
    name = re.sub(r"[^a-z0-9_-]+", "-", y.lower()).strip("-_")[:48] or "chart"
    return {"name": name, "kind": "bar", "title": f"{y} by {x}"[:120], "x_label": x[:60], "y_label": y[:60],
            "columns": [x, y], "rows": rows, "x_column": x, "y_columns": [y],
            "width_px": CHART_WIDTH_PX, "height_px": CHART_HEIGHT_PX}


def _reply(text: str = "", calls: list[ToolCall] | None = None) -> ActReply:
    stop = "tool_use" if calls else "end_turn"
    return ActReply(message=Message(role="assistant", content=text, tool_calls=calls or []), stop_reason=stop,
                    calls=[EngineCall(model=RULE_ENGINE_MODEL, stop_reason=stop, tool_calls=len(calls or []))])


def arithmetic(text: str) -> list[str]:
    """Arithmetic expressions written in ``text`` (``17 * 23``, ``(2 + 3) ^ 2`` as ``**``), at most 8."""
    found = []
    for m in _ARITH.finditer(text or ""):
        expr = m.group(0).strip()
        if re.search(r"\d\s*[-+*/%^]\s*[\d(]", expr):
            found.append(expr.replace("^", "**"))
    return list(dict.fromkeys(found))[:MAX_TOOL_CALLS_PER_TURN]


def question_of(goal: str, facts: PlanFacts | ActFacts | ReportFacts) -> Question | None:
    """The goal read against the facts' dataset profile (None for a decline or a run without a dataset)."""
    if not facts.has_dataset:
        return None
    q = interpret(goal, facts.dataset)
    return q if isinstance(q, Question) else None


def _worker(facts: PlanFacts, tool: str) -> str | None:
    return next((w.name for w in facts.workers if tool in w.tools), None)


def _subtask(id_: str, title: str, instructions: str, tools: list[str], role: str, deps: list[str],
             expected: str) -> dict[str, Any]:
    return {"id": id_, "title": title, "instructions": instructions, "tools": tools, "role": role,
            "depends_on": deps, "expected_output": expected}


def replan(facts: PlanFacts) -> PlanReply:
    """Replanning after a failed sub-task (``facts.replan``), deterministically: the sub-tasks to replace are issued
    again as they were (the domain renames a reused id ``<id>-v<version>``; dependencies on them follow), as the
    rule engine has no other way to do its own steps. A sub-task it did not plan itself (no rule of its own: its
    id, without a version suffix, is none of ``query``, ``coverage``, ``compute``, ``arithmetic``, ``chart``) cannot be
    played by it: a decline."""
    r = facts.replan
    foreign = [s.id for s in r.replaced if base_subtask_id(s.id) not in (QUERY, COVERAGE, COMPUTE, ARITHMETIC, CHART)]
    if foreign or not r.replaced:
        return PlanReply(decline=decline("unsupported", "The rule engine can only replan the sub-tasks it planned "
                                                        f"itself, not {', '.join(foreign) or 'an empty plan'}."),
                         calls=[_CALL])
    data = {"subtasks": [_subtask(s.id, s.title, s.instructions, list(s.tools), s.role, list(s.depends_on),
                                  s.expected_output) for s in r.replaced],
            "rationale": f"Rule engine: sub-task {r.failed_subtask} failed ({r.error}); the remaining sub-tasks are "
                         f"issued again as plan version {r.version}, after the {len(r.kept)} done one(s)."}
    return PlanReply(plan=Plan.model_validate(data), text=json.dumps(data), calls=[_CALL])


def plan(facts: PlanFacts) -> PlanReply:
    """The plan for the goal, or the decline (see the module docstring); :func:`replan` when ``facts.replan``."""
    if facts.replan is not None:
        return replan(facts)
    if not facts.has_dataset:
        exprs = arithmetic(facts.goal)
        role = _worker(facts, "calculator")
        if not exprs or role is None:
            return PlanReply(decline=decline("no_dataset", "The rule engine answers questions about a dataset (or "
                                                           "arithmetic written in the goal), and this run has "
                                                           "neither."), calls=[_CALL])
        data = {"subtasks": [_subtask(ARITHMETIC, "Compute the arithmetic", "Evaluate the goal's arithmetic with the "
                                      "calculator.", ["calculator"], role, [], "The computed values.")],
                "rationale": "Rule engine: arithmetic in the goal, evaluated by the calculator."}
        return PlanReply(plan=Plan.model_validate(data), text=json.dumps(data), calls=[_CALL])
    q = interpret(facts.goal, facts.dataset)
    if not isinstance(q, Question):
        return PlanReply(decline=q, calls=[_CALL])
    analyst = _worker(facts, "query_dataset")
    if analyst is None:
        return PlanReply(decline=decline("unsupported", "The crew has no worker with the query_dataset tool, which "
                                                        "every rule-engine answer needs."), calls=[_CALL])
    subtasks = [_subtask(QUERY, "Query the data", f"Answer the {q.kind.replace('_', ' ')} question with read-only "
                         "SQL over the table `data`.", ["query_dataset"], analyst, [], "The query results.")]
    if analysis.coverage_query(q):  # independent of the query: the two run side by side
        subtasks.append(_subtask(COVERAGE, "Check the data coverage", "Count the rows the question reads and how "
                                 "many hold each column it uses.", ["query_dataset"], analyst, [],
                                 "Row counts per column."))
    if needs_compute(q):
        calc = _worker(facts, "calculator")
        if calc is not None:
            subtasks.append(_subtask(COMPUTE, "Compute the derived figures", "With the calculator, compute the "
                                     "gaps, ratios, changes in % or shares from the query results.", ["calculator"],
                                     calc, [QUERY], "The derived figures."))
    charter = _worker(facts, "make_chart")  # only a crew with make_chart (never the default crew) gets a chart
    if charter is not None and chartable(q):
        subtasks.append(_subtask(CHART, "Chart the figures", "With make_chart, draw a bar chart of the query's "
                                 "figures per label.", ["make_chart"], charter, [QUERY],
                                 "The chart's markdown reference."))
    if q.kind == "profile":
        subtasks = [_subtask(QUERY, "Profile the dataset", "Report the dataset's profile.", [], analyst, [],
                             "The profile.")]
    data = {"subtasks": subtasks, "rationale": f"Rule engine: the goal reads as a {q.kind.replace('_', ' ')} "
                                               "question over the dataset's columns."}
    return PlanReply(plan=Plan.model_validate(data), text=json.dumps(data), calls=[_CALL])


# ============================================================================================== acting
def _results_text(facts: list[ToolFact], failures: list[str]) -> str:
    parts = []
    for f in facts:
        if f.name == "query_dataset" and isinstance(f.content, dict):
            cols = [str(c) for c in f.content.get("columns") or []]
            rows = f.content.get("rows") or []
            parts.append(f"Query {f.source}:\n\n{markdown_table(cols, rows[:20])}")
        elif f.name == "calculator" and isinstance(f.content, dict):
            parts.append(f"- {f.content.get('expression')} = {fmt(f.content.get('value'))} ({f.source})")
    parts += failures
    return "\n\n".join(parts) or "No tool result."


def _chart_text(f: ToolFact) -> str:
    """A chart sub-task's output: the figures it drew (as the query returned them) and make_chart's markdown."""
    a = f.arguments
    drawn = ", ".join(f"{r[0]} {fmt(r[1])}" for r in a.get("rows") or [] if len(r) > 1)
    return (f"Bar chart of {(a.get('y_columns') or [''])[0]} by {a.get('x_column', '')}: {drawn}.\n\n"
            f"{f.content.get('markdown', '')}")


def act(facts: ActFacts, conversation: list[Message], allowed: set[str]) -> ActReply:
    """The next turn of a rule-engine sub-task (``query``, ``coverage``, ``compute``, ``arithmetic``, ``chart``: one
    make_chart call from :func:`chart_args` over the ``query`` dependency's result, then the drawn figures and the
    chart's markdown; a replanned ``<id>-v<n>`` plays the rule of its ``<id>``)."""
    sid = base_subtask_id(facts.subtask.id)
    calls = [c for m in conversation if m.role == "assistant" for c in m.tool_calls]
    results = [r for m in conversation if m.role == "tool" for r in m.tool_results]
    own = tool_facts(conversation, facts.subtask.id)
    failures = [f"The tool {r.name} failed ({r.error.type}): {r.error.message}" for r in results if not r.ok and r.error]

    def call(pairs: list[tuple[str, dict[str, Any]]]) -> ActReply:
        first = len(calls) + 1
        return _reply(calls=[ToolCall(call_id=f"re{first + i}", name=n, arguments=a) for i, (n, a) in enumerate(pairs)])

    q = question_of(facts.goal, facts)
    if sid == QUERY and q is not None:
        if q.kind == "profile":
            return _reply(profile_text(facts.dataset))
        if not calls and "query_dataset" in allowed:
            return call([("query_dataset", {"sql": sql, "max_rows": 200}) for sql in analysis.queries(q)][:8])
        return _reply(_results_text(own, failures))
    if sid == COVERAGE and q is not None:
        sql = analysis.coverage_query(q)
        if not calls and sql and "query_dataset" in allowed:
            return call([("query_dataset", {"sql": sql, "max_rows": 1})])
        return _reply(_results_text(own, failures))
    if sid == COMPUTE and q is not None:
        deps = [f for d in facts.dependencies for f in d.tool_results]
        if not calls and "calculator" in allowed:
            exprs = [c.expression for c in analysis.calculations(q, analysis.tables(deps, q))]
            if exprs:
                return call([("calculator", {"expression": e}) for e in exprs])
        return _reply(_results_text(own, failures) if own or failures else "Nothing to compute.")
    if sid == CHART and q is not None:
        args = chart_args(q, analysis.tables([f for d in facts.dependencies for f in d.tool_results], q))
        if not calls and args is not None and "make_chart" in allowed:
            return call([("make_chart", args)])
        charts = [f for f in own if f.name == "make_chart" and isinstance(f.content, dict)]
        if not charts:
            return _reply("\n\n".join(failures) or "No chart: the query returned no figures to draw.")
        return _reply("\n\n".join(_chart_text(f) for f in charts))
    if sid == ARITHMETIC:
        if not calls and "calculator" in allowed:
            exprs = arithmetic(facts.goal)
            if exprs:
                return call([("calculator", {"expression": e}) for e in exprs])
        return _reply(_results_text(own, failures))
    return _reply("The rule engine has no rule for this sub-task: it only plays the sub-tasks it planned itself.")


# ============================================================================================== reports
def markdown_table(columns: list[str], rows: list[list[Any]], limit: int = 20) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, int | float) and not isinstance(v, bool):
            return fmt(v)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows[:limit]]
    return "\n".join(lines)


def profile_text(profile: Any) -> str:
    if profile is None:
        return "No dataset profile."
    lines = [f"The dataset {profile.dataset} has {profile.rows} rows and {len(profile.columns)} columns."]
    for c in profile.columns:
        if c.numeric and c.mean is not None:
            lines.append(f"- {c.name}: mean {fmt(c.mean)}, min {fmt(c.min)}, max {fmt(c.max)}, {c.nulls} missing.")
        elif c.temporal:
            lines.append(f"- {c.name} (date): from {c.min} to {c.max}.")
        else:
            lines.append(f"- {c.name}: {c.distinct} distinct values, {c.nulls} missing.")
    return "\n".join(lines)


def title_of(goal: str, limit: int = 90) -> str:
    """The report's title: the goal's first sentence, cut at a word boundary within ``limit`` characters."""
    first = re.split(r"(?<=[.?!])\s", " ".join(goal.split()), maxsplit=1)[0]
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def _all_facts(facts: ReportFacts) -> list[ToolFact]:
    return [f for s in facts.subtasks for f in s.tool_results]


def _dedupe(lines: list[str]) -> list[str]:
    """Drop repeated sentences (compared without citations and case)."""
    seen: set[str] = set()
    out = []
    for line in lines:
        key = re.sub(r"\[S\d+\]", "", line).strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(line)
    return out


def report(facts: ReportFacts) -> str:
    """The rule engine's Markdown report (see the module docstring)."""
    everything = _all_facts(facts)
    parts = [f"# {title_of(facts.goal)}", REPORT_BANNER]
    sources: dict[str, str] = {}
    if not facts.has_dataset:
        lines = [f"{f.content.get('expression')} = {fmt(f.content.get('value'))} [S{i}]"
                 for i, f in enumerate((f for f in everything if f.name == "calculator"
                                        and isinstance(f.content, dict)), 1)]
        parts += ["## Answer", "; ".join(lines) + "." if lines else "The calculator returned no value."]
        sources = {f"S{i}": f.source for i, f in enumerate((f for f in everything if f.name == "calculator"), 1)}
        parts += ["## Sources", _sources(sources, everything)]
        return "\n\n".join(parts) + "\n"
    q = question_of(facts.goal, facts)
    if q is None:
        parts += ["## Answer", "The rule engine could not read this goal against the dataset."]
        return "\n\n".join(parts) + "\n"
    finding = analysis.find(q, everything, facts.dataset.dataset if facts.dataset else "the dataset")
    answer = _dedupe(finding.answer)
    parts += ["## Answer", " ".join(answer)]
    if finding.recommendation:
        parts.append(finding.recommendation)
    if not finding.complete:
        parts.append("_The answer is incomplete: a tool call it needs failed (see the sub-task outputs)._")
    if finding.table:
        cols, rows = finding.table
        cited = next((f"[{k}]" for k, v in finding.sources.items() if v == _table_source(everything, q)), "")
        parts += ["## Figures", markdown_table(cols, rows, limit=50) + (f"\n\nSource: {cited}" if cited else "")]
    charts = [str(f.content["markdown"]) for f in everything
              if f.name == "make_chart" and isinstance(f.content, dict) and f.content.get("markdown")]
    if charts:
        parts += ["## Chart", "\n\n".join(charts)]
    coverage = _coverage(q, everything, finding)
    parts += ["## Sources", _sources(finding.sources, everything)]
    parts += ["## Method", _method(q, facts) + (f"\n- {coverage}" if coverage else "")]
    return "\n\n".join(parts) + "\n"


def _coverage(q: Question, everything: list[ToolFact], finding: analysis.Finding) -> str:
    """``Data coverage: 344 rows; body_mass_g known in 342 [S4]`` from the coverage sub-task's result."""
    sql = analysis.coverage_query(q)
    fact = next((f for f in everything if f.name == "query_dataset" and f.arguments.get("sql") == sql), None)
    if fact is None or not isinstance(fact.content, dict) or not fact.content.get("rows"):
        return ""
    key = f"S{len(finding.sources) + 1}"
    finding.sources[key] = fact.source
    cols, row = fact.content.get("columns") or [], fact.content["rows"][0]
    known = ", ".join(f"{c.removeprefix('with_')} known in {fmt(v)}" for c, v in zip(cols[1:], row[1:], strict=False))
    return f"Data coverage [{key}]: {fmt(row[0])} rows read; {known} (rows without a value are skipped)."


def _table_source(everything: list[ToolFact], q: Question) -> str:
    tables = analysis.tables(everything, q)
    return tables[0].source if tables else ""


def _sources(sources: dict[str, str], everything: list[ToolFact]) -> str:
    by_source = {f.source: f for f in everything}
    lines = []
    for key, source in sources.items():
        f = by_source.get(source)
        if f is None:
            continue
        sub, _, call = source.partition("/")
        if f.name == "query_dataset":
            rows = f.content.get("row_count") if isinstance(f.content, dict) else None
            lines.append(f"- [{key}] query_dataset (sub-task `{sub}`, call `{call}`), {rows} row{'' if rows == 1 else 's'}: "
                         f"`{f.arguments.get('sql', '')}`")
        elif f.name == "calculator" and isinstance(f.content, dict):
            lines.append(f"- [{key}] calculator (sub-task `{sub}`, call `{call}`): `{f.content.get('expression')}` "
                         f"= {fmt(f.content.get('value'))}")
    return "\n".join(lines) or "- (no tool call)"


def _method(q: Question, facts: ReportFacts) -> str:
    kind = q.kind.replace("_", " ")
    read = f"The goal was read as {'an' if kind[0] in 'aeiou' else 'a'} **{kind}** question"
    if q.measures:
        read += f" about {', '.join(f'`{m}`' for m in q.measures)}"
    if q.group:
        read += f" by `{q.group}`"
    if q.filters:
        read += " for " + " and ".join(f"{'year of ' if f.year else ''}`{f.column}` = {f.value}" for f in q.filters)
    agg = {"avg": "mean", "sum": "total", "median": "median", "count": "count"}.get(q.agg, q.agg)
    lines = [read + f" (aggregate: {agg}; missing values skipped).",
             "Sub-tasks: " + ", ".join(f"`{s.id}` ({', '.join(s.tools) or 'no tools'})" for s in facts.subtasks) + "."]
    if q.kind == "recommend":
        lines.append("The recommendation is a rule applied to a computed figure, not a judgement.")
    return "\n".join(f"- {line}" for line in lines)


def improve(facts: ReportFacts) -> str:
    """The report again (the rules are deterministic), with the review's feedback it cannot act on listed."""
    text = report(facts).rstrip()
    if facts.feedback:
        text += ("\n\n## Review follow-up\n\nThe rule engine cannot rewrite its reasoning: the reviewer's feedback "
                 "(in the run's review rounds) stands for a person to check.")
    return text + "\n"


# ============================================================================================== the engine
class RuleEngine(Engine):
    """The offline rule engine (see the module docstring): deterministic, zero tokens and cost."""

    name = RULE_ENGINE_MODEL

    def plan(self, facts: PlanFacts, role: AgentRole) -> PlanReply:
        return plan(facts)

    def open(self, facts: ActFacts, role: AgentRole, tools: list[ToolSpec]) -> list[Message]:
        s = facts.subtask
        return [Message(role="system", content="stepcrew rule engine (no LLM)"),
                Message(role="user", content=f"Sub-task {s.id}: {s.title}. {s.instructions}")]

    def act(self, facts: ActFacts, role: AgentRole, conversation: list[Message], tools: list[ToolSpec]) -> ActReply:
        return act(facts, conversation, {t.name for t in tools})

    def synthesize(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        return ReportReply(text=report(facts), calls=[_CALL])

    def improve(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        return ReportReply(text=improve(facts), calls=[_CALL])

    def review(self, facts: ReportFacts, role: AgentRole) -> ReviewReply:
        r = rubric(facts.report or "", facts)
        return ReviewReply(scores=CriterionScores(accuracy=r.accuracy, completeness=r.completeness,
                                                  relevance=r.relevance), feedback=r.feedback(), calls=[_CALL])
