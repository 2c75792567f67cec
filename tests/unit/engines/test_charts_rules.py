"""The rule engine's chart sub-task is gated on the crew: a crew whose worker has make_chart gets ``chart`` after
``query`` (a bar chart of the query's primary figure per label); any other crew's plan is unchanged."""

from __future__ import annotations

from stepcrew.engines.facts import ColumnProfile, DatasetProfile, PlanFacts, WorkerInfo
from stepcrew.engines.rules import RuleEngine, analysis
from stepcrew.engines.rules.engine import chart_args
from stepcrew.engines.rules.questions import Question, interpret
from stepcrew.models import AgentRole

PENGUINS = DatasetProfile(dataset="penguins.csv", rows=344, columns=[
    ColumnProfile(name="species", type="VARCHAR", nulls=0, distinct=3,
                  top=[{"value": "Adelie", "count": 152}, {"value": "Gentoo", "count": 124},
                       {"value": "Chinstrap", "count": 68}]),
    ColumnProfile(name="bill_length_mm", type="DOUBLE", nulls=2, distinct=164, min=32.1, max=59.6, mean=43.9219),
    ColumnProfile(name="body_mass_g", type="BIGINT", nulls=2, distinct=94, min=2700, max=6300, mean=4201.7544),
])
ROLE = AgentRole(name="planner", role="Planner", goal="plan")
GOAL = "Which species is heaviest on average by body mass?"
ANALYST = WorkerInfo(name="data_analyst", role="Analyst", tools=["describe_dataset", "query_dataset", "calculator"])


def question(goal: str) -> Question:
    q = interpret(goal, PENGUINS)
    assert isinstance(q, Question), q
    return q


def _plan(workers: list[WorkerInfo]):
    facts = PlanFacts(goal=GOAL, has_dataset=True, dataset=PENGUINS, workers=workers,
                      tools=sorted({t for w in workers for t in w.tools}))
    return RuleEngine().plan(facts, ROLE).plan


def test_only_a_crew_with_make_chart_gets_a_chart_subtask():
    without = _plan([ANALYST, WorkerInfo(name="writer", role="Writer", tools=["write_section", "calculator"])])
    with_chart = _plan([ANALYST, WorkerInfo(name="writer", role="Writer",
                                            tools=["write_section", "calculator", "make_chart"])])
    assert "chart" not in [s.id for s in without.subtasks]
    assert [s.id for s in with_chart.subtasks] == [s.id for s in without.subtasks] + ["chart"]
    chart = with_chart.subtasks[-1]
    assert (chart.tools, chart.role, chart.depends_on) == (["make_chart"], "writer", ["query"])


def test_chart_args_draw_the_primary_figure_per_label_and_skip_rows_without_a_number():
    t = analysis.Table(["species", "n", "mean_body_mass_g", "mean_bill_length_mm"],
                       [["Adelie", 152, 3700.5, 38.8], ["Chinstrap", 68, None, 48.8], ["Gentoo", 124, 5076.0, 47.5]],
                       "query/re1", "SELECT ...")
    args = chart_args(question(GOAL), [t])
    assert (args["kind"], args["x_column"], args["y_columns"]) == ("bar", "species", ["mean_body_mass_g"])
    assert args["rows"] == [["Adelie", 3700.5], ["Gentoo", 5076.0]]
    assert args["name"] == "mean_body_mass_g" and args["columns"] == ["species", "mean_body_mass_g"]
    assert chart_args(question(GOAL), []) is None
    assert chart_args(question(GOAL), [analysis.Table(["species", "n"], [], "query/re1", "")]) is None
