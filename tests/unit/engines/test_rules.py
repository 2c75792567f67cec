"""The rule engine's reading of goals, its declines and its rubric, on hand-built facts.

Figures in these facts are typed in from an independent computation (pandas on penguins.csv, the same values the
eval suite's truth.py computes), not produced by the code under test; the rubric must score crafted reports as
the issue asks: no figures -> accuracy 0; wrong figures -> accuracy below 1; titles without figures -> completeness
0; the wrong entity or a trend without its change -> relevance below 1; the right report -> 1, 1, 1.
"""

from __future__ import annotations

import pytest

from stepcrew.engines.facts import ColumnProfile, DatasetProfile, ReportFacts, SubtaskFacts, ToolFact
from stepcrew.engines.llm import parse_review_reply
from stepcrew.engines.rules import RuleEngine, analysis
from stepcrew.engines.rules.questions import Question, interpret
from stepcrew.engines.rules.rubric import answer_part, rubric
from stepcrew.models import AgentRole, Decline

PENGUINS = DatasetProfile(dataset="penguins.csv", rows=344, columns=[
    ColumnProfile(name="species", type="VARCHAR", nulls=0, distinct=3,
                  top=[{"value": "Adelie", "count": 152}, {"value": "Gentoo", "count": 124},
                       {"value": "Chinstrap", "count": 68}]),
    ColumnProfile(name="island", type="VARCHAR", nulls=0, distinct=3,
                  top=[{"value": "Biscoe", "count": 168}, {"value": "Dream", "count": 124},
                       {"value": "Torgersen", "count": 52}]),
    ColumnProfile(name="bill_length_mm", type="DOUBLE", nulls=2, distinct=164, min=32.1, max=59.6, mean=43.9219),
    ColumnProfile(name="flipper_length_mm", type="BIGINT", nulls=2, distinct=55, min=172, max=231, mean=200.9152),
    ColumnProfile(name="body_mass_g", type="BIGINT", nulls=2, distinct=94, min=2700, max=6300, mean=4201.7544),
    ColumnProfile(name="sex", type="VARCHAR", nulls=11, distinct=2,
                  top=[{"value": "male", "count": 168}, {"value": "female", "count": 165}]),
    ColumnProfile(name="year", type="BIGINT", nulls=0, distinct=3, min=2007, max=2009, mean=2008.0291),
])
ROLE = AgentRole(name="reviewer", role="Reviewer", goal="Score reports.")
HEAVIEST = "Which penguin species is the heaviest on average?"
#: mean body mass per species, computed with pandas (penguins.csv, NA skipped)
MEANS = {"Adelie": 3700.662251655629, "Chinstrap": 3733.0882352941176, "Gentoo": 5076.016260162602}


def question(goal: str) -> Question:
    q = interpret(goal, PENGUINS)
    assert isinstance(q, Question), q
    return q


def heaviest_facts(report: str | None = None) -> ReportFacts:
    q = question(HEAVIEST)
    sql = analysis.queries(q)[0]
    query = ToolFact(name="query_dataset", arguments={"sql": sql}, source="query/re1", content={
        "columns": ["species", "n", "mean_body_mass_g"], "row_count": 3, "truncated": False,
        "rows": [["Adelie", 152, MEANS["Adelie"]], ["Chinstrap", 68, MEANS["Chinstrap"]],
                 ["Gentoo", 124, MEANS["Gentoo"]]]})
    gap = MEANS["Gentoo"] - MEANS["Adelie"]
    calcs = [ToolFact(name="calculator", arguments={"expression": c.expression}, source=f"compute/re{i}",
                      content={"expression": c.expression, "value": value})
             for i, (c, value) in enumerate(zip(analysis.calculations(q, analysis.tables([query], q)),
                                                [gap, MEANS["Gentoo"] / MEANS["Adelie"]], strict=True), 1)]
    subtasks = [SubtaskFacts(id="query", title="Query the data", tools=["query_dataset"], tool_results=[query],
                             output="| species | n | mean |\n| Adelie | 152 | 3700.66 |\n| Chinstrap | 68 | 3733.09 |\n"
                                    "| Gentoo | 124 | 5076.02 |"),
                SubtaskFacts(id="compute", title="Compute the derived figures", tools=["calculator"],
                             depends_on=["query"], tool_results=calcs, output="- gap = 1375.35\n- ratio = 1.37")]
    return ReportFacts(goal=HEAVIEST, has_dataset=True, dataset=PENGUINS, subtasks=subtasks, report=report)


# ------------------------------------------------------------------------------------------------ the rubric
def test_the_rule_engines_own_report_answers_first_and_scores_full_marks():
    facts = heaviest_facts()
    report = RuleEngine().synthesize(facts, ROLE).text
    answer = answer_part(report)
    assert answer.startswith("# Which penguin species is the heaviest on average?")
    assert "Gentoo has the highest mean body_mass_g: 5076.02 g" in answer and "## Figures" not in answer
    assert "[S1]" in answer and "## Sources" in report
    r = rubric(report, facts)
    assert (r.accuracy, r.completeness, r.relevance) == (1.0, 1.0, 1.0), r.feedback()
    sentences = [s.strip() for s in report.replace("\n", " ").split(". ") if len(s.strip()) > 20]
    assert len(sentences) == len(set(sentences)), "a sentence is repeated"


def test_a_report_with_no_figures_scores_zero_accuracy():
    r = rubric("# Penguins\n\nGentoo penguins are the heaviest species.\n", heaviest_facts())
    assert r.accuracy == 0.0 and r.completeness == 0.0


def test_wrong_figures_lower_accuracy_and_are_named():
    report = "# Penguins\n\n**Answer.** Gentoo is the heaviest: 6000 g, Adelie 3700.66 g, Chinstrap 3733.09 g.\n"
    r = rubric(report, heaviest_facts())
    assert r.accuracy == pytest.approx(2 / 3, abs=1e-4) and "6000" in r.unmatched


def test_sub_task_titles_without_their_figures_do_not_count_as_answered():
    report = "# Penguins\n\n## Query the data\n\nDone.\n\n## Compute the derived figures\n\nDone.\n"
    r = rubric(report, heaviest_facts())
    assert r.completeness == 0.0 and r.unanswered == ["query", "compute"]


def test_naming_the_wrong_entity_lowers_relevance():
    report = ("# Penguins\n\n**Answer.** Adelie is the heaviest on average: 3700.66 g; Gentoo 5076.02 g, Chinstrap "
              "3733.09 g; the gap is 1375.35 g.\n")
    r = rubric(report, heaviest_facts())
    assert r.accuracy == 1.0 and r.relevance < 1.0
    assert any("Gentoo" in check for check in r.failed_checks)


def test_a_trend_report_without_the_first_to_last_change_is_not_relevant():
    goal = "How did the mean body mass of the penguins change over the study years?"
    q = question(goal)
    assert q.kind == "trend" and q.period == "year"
    sql = analysis.queries(q)[0]
    rows = [[2007, 4124.541284403669, 110], [2008, 4266.666666666667, 114], [2009, 4210.294117647059, 120]]
    query = ToolFact(name="query_dataset", arguments={"sql": sql}, source="query/re1",
                     content={"columns": ["year", "mean_body_mass_g", "n"], "rows": rows, "row_count": 3})
    change_pct = (rows[-1][1] - rows[0][1]) / rows[0][1] * 100
    calc = [ToolFact(name="calculator", arguments={"expression": c.expression}, source=f"compute/re{i}",
                     content={"expression": c.expression, "value": v})
            for i, (c, v) in enumerate(zip(analysis.calculations(q, analysis.tables([query], q)),
                                           [rows[-1][1] - rows[0][1], change_pct], strict=True), 1)]
    facts = ReportFacts(goal=goal, has_dataset=True, dataset=PENGUINS, subtasks=[
        SubtaskFacts(id="query", title="Query", tool_results=[query], output="2007 4124.54, 2009 4210.29"),
        SubtaskFacts(id="compute", title="Compute", depends_on=["query"], tool_results=calc,
                     output=f"change {change_pct:.2f} %")])
    without = "# Mass\n\n**Answer.** The mean body mass was 4124.54 g in 2007 and 4210.29 g in 2009.\n"
    with_change = RuleEngine().synthesize(facts, ROLE).text
    assert rubric(without, facts).relevance < 1.0
    assert "2.08 %" in with_change and rubric(with_change, facts).relevance == 1.0


# ------------------------------------------------------------------------------------------------ reading goals
@pytest.mark.parametrize(("goal", "code"), [
    ("Predict the body mass of penguins in 2030.", "forecast"),
    ("What will the average flipper length be next year?", "forecast"),
    ("Why do Gentoo penguins have longer flippers?", "cause"),
    ("What caused the drop in body mass in 2009?", "cause"),
    ("What is the average wingspan of each species?", "unknown_column"),
    ("Compose a haiku about penguins.", "no_rule"),
    ("What is the average mass of Emperor penguins?", "unknown_value"),
    ("Which species is NOT the heaviest?", "unsupported"),
    ("Explain the reason Gentoo penguins are heavy.", "cause"),
    ("Estimate the mean body mass for 2030.", "forecast"),
    ("What was the mean flipper length in 2031?", "forecast"),
    ("What is the 90th percentile of body mass?", "unsupported"),
    ("What was the mean body mass in 2020 compared to 2009?", "no_rule"),
])
def test_goals_the_rules_cannot_answer_are_declined_with_a_reason(goal, code):
    d = interpret(goal, PENGUINS)
    assert isinstance(d, Decline) and d.code == code
    assert "model provider" in d.reason


def test_a_goal_without_a_dataset_is_declined():
    d = interpret("Which species is heaviest?", None)
    assert isinstance(d, Decline) and d.code == "no_dataset"


@pytest.mark.parametrize(("goal", "kind", "detail"), [
    ("Average bill length per island?", "group_comparison", {"group": "island", "measures": ["bill_length_mm"]}),
    ("Which island has the lightest penguins on average?", "extremes", {"group": "island", "direction": "min"}),
    ("Show the top 2 species by median flipper length.", "top_n", {"group": "species", "n": 2, "agg": "median"}),
    ("What proportion of the penguins are Adelie?", "share", {}),
    ("Is bill length related to body mass?", "correlation", {"measures": ["bill_length_mm", "body_mass_g"]}),
    ("What is the total body mass of Chinstrap penguins?", "filter_aggregate", {"agg": "sum"}),
    ("Recommend the species with the largest gap between the mean flipper length of males and females.",
     "recommend", {"metric": "gap", "group": "species"}),
    ("What is the standard deviation of the body mass of Gentoo penguins?", "filter_aggregate", {"agg": "stddev"}),
    ("What is the AVERAGE body mass of female Chinstrap penguins?", "filter_aggregate", {"agg": "avg"}),
    ("How did the mean body mass change from 2007 to 2009?", "trend", {"years": (2007, 2009), "period": "year"}),
    ("How did the number of penguins observed change over the years?", "trend", {"agg": "count"}),
    ("By what percentage did the mean flipper length change from 2007 to 2009?", "trend", {"years": (2007, 2009)}),
    ("On average, how many mm is the flipper length of Gentoo penguins?", "filter_aggregate", {"agg": "avg"}),
])

def test_question_types_and_their_columns_are_read_from_the_schema(goal, kind, detail):
    q = question(goal)
    assert q.kind == kind
    for key, value in detail.items():
        assert getattr(q, key) == value, (key, getattr(q, key))


def test_a_share_counts_the_value_the_verb_points_at_within_the_scope_the_goal_names():
    q = question("What share of the penguins on Dream island are Adelie?")
    assert (q.target.column, q.target.value) == ("species", "Adelie")
    assert [(f.column, f.value) for f in q.filters] == [("island", "Dream")]
    q = question("What share of Adelie penguins live on Dream?")
    assert (q.target.column, q.target.value) == ("island", "Dream")
    assert [(f.column, f.value) for f in q.filters] == [("species", "Adelie")]


# ------------------------------------------------------------------------------------------------ LLM parsing
@pytest.mark.parametrize("text", ["no json at all", '{"accuracy": 0.9, "completeness": 0.8}',
                                  '{"accuracy": 1.5, "completeness": 0.8, "relevance": 0.9}', ""])
def test_an_llm_review_without_valid_scores_is_an_error_not_a_zero(text):
    scores, _, error = parse_review_reply(text)
    assert scores is None and error


def test_an_llm_review_in_a_fence_is_parsed():
    scores, feedback, error = parse_review_reply('Here:\n```json\n{"accuracy": 0.9, "completeness": 0.8, '
                                                 '"relevance": 0.7, "feedback": "ok"}\n```')
    assert error is None and (scores.accuracy, scores.completeness, scores.relevance) == (0.9, 0.8, 0.7)
    assert feedback == "ok"
