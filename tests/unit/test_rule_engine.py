"""The offline rule engine, end to end on the real penguins data WITHOUT Step Functions (plan -> agent turns with
the real tools in-process -> synthesize -> review), plus its rules one by one at the request level."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from stepcrew.crew import load_crew
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.domain.agent import agent_turn
from stepcrew.domain.context import ActContext, ReportContext, SubtaskFacts, ToolFact
from stepcrew.domain.guard import guard_run
from stepcrew.domain.planner import plan_run
from stepcrew.domain.reviewer import review
from stepcrew.domain.synthesizer import synthesize
from stepcrew.events import AgentTurnInput, PlanInput, ReviewInput, RunRef, SynthInput
from stepcrew.llm.base import ModelBadRequestError, ModelRequest, ModelSettings
from stepcrew.llm.rule_engine import NOT_COVERED, REPORT_BANNER, RuleEngineModel, rubric
from stepcrew.models import (
    Message,
    Plan,
    ReviewConfig,
    Run,
    RunStatus,
    SubtaskStatus,
    ToolCall,
    ToolContext,
    ToolError,
    ToolInvocation,
    ToolResult,
)
from stepcrew.store.memory import MemoryRunStore
from stepcrew.tools.datasets import dataset_uri
from stepcrew.tools.registry import get_tool, known_tools, tool_specs

RUN = "rule1"
ENGINE = RuleEngineModel()


def _csv_means(measure: str) -> dict[str, float]:
    """Independent recomputation from the CSV: mean of ``measure`` per species, missing values ("NA") skipped."""
    groups: dict[str, list[float]] = {}
    with DEMO_DATASET.open(newline="") as f:
        for row in csv.DictReader(f):
            if row[measure] not in ("", "NA"):
                groups.setdefault(row["species"], []).append(float(row[measure]))
    return {species: statistics.fmean(values) for species, values in groups.items()}


def _run_subtask(store: MemoryRunStore, subtask_id: str) -> int:
    """Loop agent turns, running each tool call in-process with the real tools. Returns the tool calls run."""
    calls = 0
    out = agent_turn(AgentTurnInput(run_id=RUN, subtask_id=subtask_id), store)
    while out.stop_reason == "tool_use":
        ctx = ToolContext(run_id=RUN, subtask_id=subtask_id, data_uri=out.data_uri)
        results = [get_tool(c.name).invoke(ToolInvocation(context=ctx, call=c)) for c in out.tool_calls]
        calls += len(results)
        out = agent_turn(AgentTurnInput(run_id=RUN, subtask_id=subtask_id, tool_results=results), store)
    assert out.status == SubtaskStatus.SUCCEEDED
    return calls


def _pipeline(goal: str = DEMO_GOAL, threshold: float = 0.8, data=DEMO_DATASET):
    """Guard, plan, every sub-task's agent loop, draft and first review of ``goal`` on ``data`` (a CSV path, or
    None for no dataset; default the penguins CSV)."""
    store = MemoryRunStore()
    store.create_run(Run(run_id=RUN, goal=goal, crew=load_crew("default"),
                         data=dataset_uri(data) if data is not None else None,
                         provider="rule", status=RunStatus.QUEUED, review_config=ReviewConfig(threshold=threshold)))
    guard_run(RunRef(run_id=RUN), store)
    planned = plan_run(PlanInput(run_id=RUN), store)
    calls = {sid: _run_subtask(store, sid) for wave in planned.waves for sid in wave}
    synthesize(SynthInput(run_id=RUN), store)
    reviewed = review(ReviewInput(run_id=RUN), store)
    return store, planned, calls, reviewed


@pytest.fixture(scope="module")
def penguins_run():
    """The demo goal on the penguins CSV, run by the rule engine through the role functions."""
    return _pipeline()


def test_plan_has_two_independent_subtasks_then_dependents(penguins_run):
    store, planned, _, _ = penguins_run
    plan = store.get_plan(RUN)
    assert planned.valid and planned.attempt == 1
    assert planned.waves == [["profile", "compare"], ["quantify"], ["findings"]]
    assert plan.get("profile").depends_on == [] and plan.get("compare").depends_on == []
    assert plan.get("quantify").depends_on == ["compare"]
    assert plan.get("findings").depends_on == ["profile", "quantify"]
    assert plan.get("compare").role == "data_analyst" and plan.get("findings").role == "writer"


def test_every_subtask_made_a_tool_call_and_quantify_ran_calls_side_by_side(penguins_run):
    store, _, calls, _ = penguins_run
    assert all(n >= 1 for n in calls.values()), calls
    assert {r.subtask_id: r.tool_calls for r in store.list_subtasks(RUN)} == calls
    quantify = store.get_messages(RUN, "quantify")
    assert len(quantify[2].tool_calls) == 8  # gap and ratio for 4 measures, in one turn
    assert {c.name for c in quantify[2].tool_calls} == {"calculator"}


def test_compare_grouped_by_species_over_the_measures_the_goal_names(penguins_run):
    store, _, _, _ = penguins_run
    sql = next(c.arguments["sql"] for m in store.get_messages(RUN, "compare") for c in m.tool_calls
               if c.name == "query_dataset")
    assert 'GROUP BY "species"' in sql
    for column in ("body_mass_g", "flipper_length_mm", "bill_length_mm", "bill_depth_mm"):
        assert f'AVG("{column}")' in sql
    assert "year" not in sql


def test_report_holds_numbers_recomputed_independently_from_the_csv(penguins_run):
    store, _, _, _ = penguins_run
    report = store.get_report(RUN)
    mass = _csv_means("body_mass_g")
    assert mass["Gentoo"] == pytest.approx(5076.02, abs=0.01)
    assert f"{mass['Gentoo']:.2f}" in report and f"{mass['Adelie']:.2f}" in report
    gap = round(mass["Gentoo"], 2) - round(mass["Adelie"], 2)
    assert f"the gap is {gap:.2f}" in report
    flipper = _csv_means("flipper_length_mm")
    assert f"Gentoo has the highest mean ({flipper['Gentoo']:.2f})" in report
    bill = _csv_means("bill_length_mm")
    assert f"Chinstrap has the highest mean ({bill['Chinstrap']:.2f})" in report


def test_report_says_it_came_from_the_rule_engine_and_has_its_sections(penguins_run):
    store, _, _, _ = penguins_run
    report = store.get_report(RUN)
    assert report.splitlines()[2] == REPORT_BANNER and "(no LLM)" in REPORT_BANNER
    for heading in ("## Summary", "## Profile the dataset", "## Compare the groups", "## Quantify the gaps",
                    "## Write the findings", "## Method"):
        assert heading in report
    assert "The dataset penguins.csv has 344 rows and 8 columns." in report


def test_review_scores_the_rubric_and_passes_at_zero_cost(penguins_run):
    store, _, _, reviewed = penguins_run
    (stored,) = store.list_reviews(RUN)
    assert stored.scores.accuracy == 1.0 and stored.scores.completeness == 1.0
    assert 0 < stored.scores.relevance < 1 and "Goal terms missing from the report: palmer" in stored.feedback
    assert reviewed.passed and reviewed.overall == pytest.approx(stored.overall)
    run = store.get_run(RUN)
    assert run.engine == "rule-engine" and run.usage.input_tokens == run.usage.output_tokens == 0
    assert run.usage.cost_usd == 0 and set(run.usage.by_model) == {"rule-engine"}


def test_a_failed_review_is_followed_by_an_improvement_that_keeps_every_figure():
    goal = "Compare the body mass of the penguin species, and their diet"
    store, _, _, first = _pipeline(goal, threshold=0.99)
    assert not first.passed and "Goal terms missing from the report: diet" in store.list_reviews(RUN)[0].feedback
    draft = store.get_report(RUN)
    synthesize(SynthInput(run_id=RUN, mode="improve", round=1), store)
    improved = store.get_report(RUN)
    second = review(ReviewInput(run_id=RUN, round=first.next_round), store)
    assert improved.startswith(draft.rstrip())
    assert improved.endswith("The tools' results say nothing about: diet. The rule engine can only compute what the "
                             "tools can.")
    # saying what is not covered does not buy relevance: the rubric ignores that section
    assert second.round == 2 and second.overall == first.overall and not second.passed
    assert [r.round for r in store.list_reviews(RUN)] == [1, 2]


# ------------------------------------------------------------------------------------------------ rules
def _request(purpose: str, context: dict, messages: list[Message] | None = None, tools=()) -> ModelRequest:
    return ModelRequest(messages=messages or [Message(role="system", content="s"), Message(role="user", content="u")],
                        tools=tool_specs(tools), settings=ModelSettings(model="rule-engine"), purpose=purpose,
                        context=context)


def _describe() -> ToolFact:
    ctx = ToolContext(run_id=RUN, subtask_id="s", data_uri=dataset_uri(DEMO_DATASET))
    call = ToolCall(call_id="d", name="describe_dataset", arguments={})
    return ToolFact(name="describe_dataset", content=get_tool("describe_dataset").invoke(
        ToolInvocation(context=ctx, call=call)).content)


def _act_context(goal: str, instructions: str = "Compare the groups.", deps=()) -> dict:
    sub = SubtaskFacts(id="compare", title="Compare", instructions=instructions)
    return ActContext(goal=goal, has_dataset=True, subtask_id="compare", subtask=sub,
                      dependencies=list(deps)).model_dump()


def test_the_rule_engine_is_deterministic_and_free():
    request = _request("plan", {"goal": DEMO_GOAL, "has_dataset": True, "tools": sorted(known_tools()),
                                "workers": [{"name": "a", "role": "A", "tools": sorted(known_tools())}]})
    first, second = ENGINE.request(request), ENGINE.request(request)
    assert first == second and first.model == "rule-engine" and first.usage.cost_usd == 0
    assert ENGINE.provider == "rule"


def test_plan_without_a_dataset_computes_the_goals_arithmetic_then_outlines():
    workers = [w.model_dump(include={"name", "role", "tools"}) for w in load_crew("default").workers]
    out = ENGINE.request(_request("plan", {"goal": "What is (12 + 30) * 2 and 7^2?", "has_dataset": False,
                                           "workers": workers, "tools": sorted(known_tools())}))
    plan = Plan.model_validate_json(out.text)
    plan.validate_rules(known_tools(), {w["name"] for w in workers})
    assert [s.id for s in plan.subtasks] == ["compute", "outline"]
    assert plan.get("outline").depends_on == ["compute"] and "can only compute what the tools can" in out.text
    act = ActContext(goal="What is (12 + 30) * 2 and 7^2?", has_dataset=False, subtask_id="compute",
                     subtask=SubtaskFacts(id="compute", title="Compute", instructions="Evaluate.")).model_dump()
    calls = ENGINE.request(_request("act", act, tools=["calculator"])).tool_calls
    assert [c.arguments["expression"] for c in calls] == ["(12 + 30) * 2", "7**2"]


def test_plan_without_arithmetic_is_only_an_outline():
    out = ENGINE.request(_request("plan", {"goal": "Summarise our strategy", "has_dataset": False,
                                           "workers": [{"name": "w", "role": "W", "tools": ["write_section"]}],
                                           "tools": sorted(known_tools())}))
    assert [s["id"] for s in json.loads(out.text)["subtasks"]] == ["outline"]


def test_act_describes_first_when_the_schema_is_unknown():
    out = ENGINE.request(_request("act", _act_context(DEMO_GOAL), tools=["describe_dataset", "query_dataset"]))
    assert out.stop_reason == "tool_use" and [c.name for c in out.tool_calls] == ["describe_dataset"]


def test_act_groups_by_the_column_the_goal_names():
    deps = [SubtaskFacts(id="profile", title="Profile", tool_results=[_describe()])]
    out = ENGINE.request(_request("act", _act_context("How does flipper length differ by island?", deps=deps),
                                  tools=["query_dataset"]))
    sql = out.tool_calls[0].arguments["sql"]
    assert 'GROUP BY "island"' in sql and 'AVG("flipper_length_mm")' in sql and "body_mass_g" not in sql


def test_act_recovers_from_a_query_error_with_a_simpler_query():
    describe = _describe()
    tool_msgs = [Message(role="system", content="s"), Message(role="user", content="u")]
    for i, kind in enumerate(["describe_dataset", "query_dataset"]):
        call = ToolCall(call_id=f"re{i + 1}", name=kind, arguments={"sql": "x"} if i else {})
        result = (ToolResult(call_id=call.call_id, name=kind, ok=True, content=describe.content) if i == 0 else
                  ToolResult(call_id=call.call_id, name=kind, ok=False,
                             error=ToolError(type="QueryError", message="Binder Error")))
        tool_msgs += [Message(role="assistant", tool_calls=[call]), Message(role="tool", tool_results=[result])]
    out = ENGINE.request(_request("act", _act_context(DEMO_GOAL), messages=tool_msgs,
                                  tools=["describe_dataset", "query_dataset"]))
    sql = out.tool_calls[0].arguments["sql"]
    assert out.tool_calls[0].call_id == "re3"
    assert "ROUND" not in sql and sql.count("AVG(") == 1 and 'GROUP BY 1' in sql


def test_act_ends_with_text_stating_the_figures():
    describe = _describe()
    msgs = [Message(role="system", content="s"), Message(role="user", content="u"),
            Message(role="assistant", tool_calls=[ToolCall(call_id="re1", name="describe_dataset")]),
            Message(role="tool", tool_results=[ToolResult(call_id="re1", name="describe_dataset", ok=True,
                                                          content=describe.content)])]
    out = ENGINE.request(_request("act", _act_context(DEMO_GOAL), messages=msgs, tools=["describe_dataset"]))
    assert out.stop_reason == "end_turn" and not out.tool_calls
    assert "344 rows" in out.text and "body_mass_g (numeric): mean 4201.75" in out.text


def _report_context(report: str) -> dict:
    facts = [ToolFact(name="calculator", content={"expression": "5076.02 - 3700.66", "value": 1375.36})]
    subtasks = [SubtaskFacts(id="quantify", title="Quantify the gaps", tool_results=facts, output="gap 1375.36"),
                SubtaskFacts(id="profile", title="Profile the dataset", tool_results=[_describe()])]
    return ReportContext(goal="Compare penguin body mass", has_dataset=True, subtasks=subtasks,
                         report=report).model_dump()


def test_review_rubric_catches_a_wrong_number_and_a_missing_subtask():
    report = "## Quantify the gaps\nThe body mass gap is 1375.36 g, and Gentoo weigh 9999 g."
    out = json.loads(ENGINE.request(_request("review", _report_context(report))).text)
    assert out["accuracy"] == 0.5 and out["completeness"] == 0.5
    assert "Figures not found in any tool result: 9999" in out["feedback"]
    assert "Sub-tasks not answered in the report: profile" in out["feedback"]
    assert out["relevance"] == pytest.approx(2 / 4)  # body, mass present; compare, penguin missing


def test_rubric_accepts_rounded_figures_and_ignores_the_not_covered_section():
    ctx = ReportContext.model_validate(_report_context(""))
    check = rubric(f"Gap 1375.4 and 1,375 and 1375.36.\n{NOT_COVERED}\nNothing on 123456.", ctx)
    assert check.accuracy == 1.0 and check.counts[:2] == (3, 3)
    assert rubric("Gap 1376.", ctx).accuracy == 0.0


def test_improve_adds_figures_for_goal_terms_the_draft_missed():
    ctx = _report_context("old")
    ctx["goal"] = "Compare penguin body mass by island and diet"
    text = ENGINE.request(_request("improve", ctx)).text
    assert "## Review follow-up" in text and "- island (text): 3 distinct values" in text
    assert f"{NOT_COVERED}\n\nThe tools' results say nothing about: compare, diet." in text


def test_a_context_that_does_not_fit_the_purpose_is_a_bad_request():
    with pytest.raises(ModelBadRequestError, match="does not match ActContext"):
        ENGINE.request(_request("act", {"goal": "x"}))


# ---- datasets that are not penguins, and no dataset at all
WEATHER = """date,city,temp_c,rain_mm
2024-01-01,Oslo,-3.5,1.2
2024-01-02,Oslo,-1.0,0.0
2024-01-03,Oslo,-4.5,2.4
2024-01-01,Lisbon,14.0,0.0
2024-01-02,Lisbon,15.5,3.0
2024-01-03,Lisbon,13.0,6.0
2024-01-01,Cairo,20.0,0.0
2024-01-02,Cairo,22.5,0.0
2024-01-03,Cairo,21.0,
"""


def _check_run(store, planned, reviewed):
    Plan.model_validate(store.get_plan(RUN).model_dump()).validate_rules(known_tools(), {
        w.name for w in load_crew("default").workers})
    assert planned.valid and all(r.status == SubtaskStatus.SUCCEEDED for r in store.list_subtasks(RUN))
    report = store.get_report(RUN)
    assert REPORT_BANNER in report
    assert 0 <= reviewed.overall <= 1
    return report


def test_a_weather_dataset_is_grouped_by_its_own_categorical_column(tmp_path):
    path = tmp_path / "weather.csv"
    path.write_text(WEATHER)
    store, planned, calls, reviewed = _pipeline("Compare the rain by city.", data=path)
    report = _check_run(store, planned, reviewed)
    assert all(n >= 1 for n in calls.values())
    (query,) = [c for m in store.get_messages(RUN, "compare") for c in m.tool_calls if c.name == "query_dataset"]
    assert 'GROUP BY "city"' in query.arguments["sql"]
    # means recomputed by hand: Lisbon rain (0 + 3 + 6) / 3 = 3; Oslo (1.2 + 0 + 2.4) / 3 = 1.2
    assert "Lisbon" in report and "| 3 |" in report.replace("3.0", "3") and "1.2" in report
    assert reviewed.overall >= 0.8


def test_a_dataset_without_a_categorical_column_still_runs_and_reports_overall_figures(tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text("day,reading,level\n2024-03-01,10,1.5\n2024-03-02,20,2.5\n2024-03-03,30,3.5\n")
    store, planned, calls, reviewed = _pipeline("Summarise the readings.", data=path)
    report = _check_run(store, planned, reviewed)
    assert "20" in report  # the overall mean reading, (10 + 20 + 30) / 3
    assert "3 rows" in report


def test_a_goal_without_a_dataset_runs_end_to_end(tmp_path):
    store, planned, calls, reviewed = _pipeline("What is 12 * 7 + 3?", data=None)
    report = _check_run(store, planned, reviewed)
    assert [s.id for s in store.get_plan(RUN).subtasks] == ["compute", "outline"]
    assert "87" in report


def test_a_date_column_is_not_a_group_and_its_parts_are_not_report_figures(tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text("day,reading\n2024-03-01,10\n2024-03-02,20\n2024-03-03,30\n")
    store, _, calls, reviewed = _pipeline("Summarise the readings.", data=path)
    sql = [c.arguments["sql"] for m in store.get_messages(RUN, "compare") for c in m.tool_calls
           if c.name == "query_dataset"]
    assert sql and all('GROUP BY "day"' not in q for q in sql)
    report = store.get_report(RUN)
    assert "day (date): from 2024-03-01 to 2024-03-03" in report
    assert calls["quantify"] >= 1  # the spread of the measures, from the profile's min and max
    assert "30 - 10" in report and "= 20" in report
    assert "2024" not in store.list_reviews(RUN)[0].feedback
