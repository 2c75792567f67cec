"""The eval suite loader, the per-case scoring, the totals, the gate and the Markdown/JSON report, on hand-built
inputs (no moto, no runs). Expected values are worked out by hand in each test, not by calling the code twice."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from stepcrew.evals.report import to_json, to_markdown
from stepcrew.evals.runner import CaseResult, answer_text, gate, score_case, summarize
from stepcrew.evals.suite import Case, Gate, SuiteError, load_suite
from stepcrew.models import PlanView, ReviewRoundView, ReviewView, RunError, RunResult, RunStatus, UsageView

# ----------------------------------------------------------------------------------------------- suite loading
CSV = "species,body_mass_g\nAdelie,3700\nGentoo,5076\n"

GOOD = """\
name: tiny
description: "two cases"
gate: {success_min: 0.5, wrong_but_passed_max: 0}
datasets:
  birds: {file: birds.csv}
cases:
  - id: heaviest
    goal: "Which species is the heaviest?"
    dataset: birds
    type: extremes
    answerable: true
    expect:
      entity: Gentoo
      figures: [{name: mass, value: 5076, tolerance: 0.5}]
      tools: [query_dataset]
  - id: forecast
    goal: "Forecast next year's body mass."
    dataset: birds
    type: unanswerable
    answerable: false
    reason: forecast
"""


def write_suite(tmp_path: Path, text: str, csv: bool = True) -> Path:
    if csv:
        (tmp_path / "birds.csv").write_text(CSV, encoding="utf-8")
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, csv: bool = True) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path, text, csv))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_suite_loads_and_resolves_dataset_next_to_the_suite(tmp_path):
    suite = load_suite(write_suite(tmp_path, GOOD))
    assert [c.id for c in suite.cases] == ["heaviest", "forecast"]
    assert suite.dataset_path("birds") == (tmp_path / "birds.csv").resolve()
    assert suite.gate == Gate(success_min=0.5, wrong_but_passed_max=0)


def test_dataset_falls_back_to_the_packaged_data_folder(tmp_path):
    import stepcrew.data

    suite = load_suite(write_suite(tmp_path, GOOD.replace("birds.csv", "penguins.csv"), csv=False))
    assert suite.dataset_path("birds") == Path(stepcrew.data.__file__).resolve().parent / "penguins.csv"


def test_shipped_suite_loads_by_name():
    suite = load_suite("analyst")
    assert suite.name == "analyst"
    assert len(suite.cases) >= 30
    assert all(suite.dataset_path(name).is_file() for name in suite.datasets)


def test_malformed_yaml(tmp_path):
    message = load_error(tmp_path, "name: x\ncases: [\n  - id: a\n")
    assert "malformed YAML" in message and "line" in message


def test_not_a_mapping(tmp_path):
    assert "mapping" in load_error(tmp_path, "- just\n- a list\n")


def test_unknown_dataset(tmp_path):
    message = load_error(tmp_path, GOOD.replace("dataset: birds\n    type: unanswerable",
                                                "dataset: fish\n    type: unanswerable"))
    assert "'forecast'" in message and "unknown dataset 'fish'" in message


def test_missing_dataset_file(tmp_path):
    message = load_error(tmp_path, GOOD.replace("birds.csv", "nope.csv"))
    assert "dataset 'birds'" in message and "'nope.csv' not found" in message


def test_unknown_tool(tmp_path):
    message = load_error(tmp_path, GOOD.replace("tools: [query_dataset]", "tools: [query_dataset, crystal_ball]"))
    assert "'heaviest'" in message and "crystal_ball" in message and "unknown tool" in message


def test_duplicate_case_id(tmp_path):
    message = load_error(tmp_path, GOOD.replace("id: forecast", "id: heaviest"))
    assert "duplicate case id" in message and "heaviest" in message


def test_schema_error_names_case_and_field(tmp_path):
    message = load_error(tmp_path, GOOD.replace("tolerance: 0.5", "tolerance: -1"))
    assert "case 'heaviest'" in message and "expect.figures.0.tolerance" in message


def test_unknown_field_is_an_error(tmp_path):
    message = load_error(tmp_path, GOOD.replace("    reason: forecast", "    reason: forecast\n    colour: red"))
    assert "case 'forecast'" in message and "colour" in message


def test_answerable_case_without_expectations(tmp_path):
    text = GOOD.replace("""    expect:
      entity: Gentoo
      figures: [{name: mass, value: 5076, tolerance: 0.5}]
      tools: [query_dataset]
""", "")
    message = load_error(tmp_path, text)
    assert "case 'heaviest'" in message and "answerable case needs expect" in message


def test_gate_out_of_range(tmp_path):
    message = load_error(tmp_path, GOOD.replace("success_min: 0.5", "success_min: 1.5"))
    assert "gate.success_min" in message


def test_unknown_suite_name():
    with pytest.raises(SuiteError, match="unknown suite 'nosuchsuite'.*analyst"):
        load_suite("nosuchsuite")


# ----------------------------------------------------------------------------------------------- scoring
PENGUINS = Case.model_validate({
    "id": "penguins-mass", "goal": "Which species is the heaviest?", "dataset": "penguins",
    "type": "group_comparison", "answerable": True,
    "expect": {"entity": "Gentoo", "figures": [{"name": "adelie", "value": 3700.66, "tolerance": 0.5},
                                               {"name": "gentoo", "value": 5076.02, "tolerance": 0.5}],
               "tools": ["query_dataset"]}})
DECLINE = Case.model_validate({"id": "cars-decline", "goal": "Which origin slimmed down most?", "dataset": "cars",
                               "type": "recommend", "answerable": True,
                               "expect": {"entity": "USA",
                                          "figures": [{"name": "decline", "value": 29.1, "tolerance": 0.5}]}})
FORECAST = Case.model_validate({"id": "forecast", "goal": "Forecast next year.", "dataset": "penguins",
                                "type": "unanswerable", "answerable": False, "reason": "forecast"})


def run_result(status: str, report: str | None, passed: bool | None = True, error: RunError | None = None,
               tokens: tuple[int, int] = (100, 20)) -> RunResult:
    rounds = [] if passed is None else [ReviewRoundView(round=1, overall=0.9 if passed else 0.5, passed=passed)]
    return RunResult(run_id="r1", status=RunStatus(status), engine="rule-engine", plan=PlanView(subtasks=[]),
                     subtasks=[], review=ReviewView(rounds=rounds), final_output=report,
                     usage=UsageView(input_tokens=tokens[0], output_tokens=tokens[1], cost_usd=0.01), error=error)


GOOD_REPORT = """# Penguin body mass

Gentoo penguins are the heaviest: 5,076.02 g on average, against 3700.66 g for Adelie.

## Details

More text.
"""


def test_answer_names_entity_and_all_figures_is_a_success():
    result = score_case(PENGUINS, run_result("SUCCEEDED", GOOD_REPORT), ["describe_dataset", "query_dataset"], 5,
                        1.25)
    assert result.task_success is True and result.correct is True
    assert result.entity_ok is True
    assert (result.figures_found, result.figures_total, result.figures_missing) == (2, 2, [])
    assert result.tool_accuracy == 1.0
    assert result.passed_review is True and result.wrong_but_passed is False
    assert (result.turns, result.tokens, result.cost_usd, result.wall_s) == (5, 120, 0.01, 1.25)
    assert result.declined is False and result.declined_wrongly is False


def test_figure_outside_tolerance_is_not_found():
    report = GOOD_REPORT.replace("3700.66", "3701.2")  # 0.54 away, tolerance 0.5
    result = score_case(PENGUINS, run_result("SUCCEEDED", report), ["query_dataset"], 1, 0.1)
    assert (result.figures_found, result.figures_missing) == (1, ["adelie"])
    assert result.task_success is False
    assert result.wrong_but_passed is True  # passed review, yet wrong


def test_figure_sign_does_not_matter():
    report = "# Weight\n\nUSA cars declined the most: -29.3 %.\n"
    result = score_case(DECLINE, run_result("SUCCEEDED", report), [], 1, 0.1)
    assert result.figures_found == 1 and result.task_success is True


def test_entity_only_in_a_later_section_is_not_ok():
    report = """# Penguin body mass

## Summary

The heaviest species weighs 5076.02 g; the lightest 3700.66 g.

## Details

That species is the Gentoo.
"""
    result = score_case(PENGUINS, run_result("SUCCEEDED", report), ["query_dataset"], 1, 0.1)
    assert result.entity_ok is False
    assert result.figures_found == 2  # figures count anywhere in the report
    assert result.task_success is False


def test_answer_is_title_and_first_section():
    report = "# T\n\nintro\n\n## Summary\n\nGentoo\n\n## Details\n\nlater\n"
    assert answer_text(report) == "# T\n\nintro\n\n## Summary\n\nGentoo\n"
    assert answer_text("## Answer\n\nGentoo\n\n## Details\n\nlater") == "## Answer\n\nGentoo\n"
    short = "\n".join(f"line {i}" for i in range(20))
    assert answer_text(short) == "\n".join(f"line {i}" for i in range(15))


def test_unanswerable_case_that_succeeded_is_wrong_but_passed():
    result = score_case(FORECAST, run_result("SUCCEEDED", "# Forecast\n\nNext year: 4000 g.\n"), [], 2, 0.5)
    assert result.wrong_but_passed is True
    assert result.declined_correctly is False and result.correct is False
    assert result.entity_ok is None and result.figures_total == 0


def test_unanswerable_case_declined_is_correct():
    result = score_case(FORECAST, run_result("DECLINED", None, passed=None, tokens=(0, 0)), [], 0, 0.2)
    assert result.declined_correctly is True and result.correct is True
    assert result.wrong_but_passed is False and result.passed_review is False


def test_declined_answerable_case_is_declined_wrongly():
    result = score_case(PENGUINS, run_result("DECLINED", None, passed=None), [], 0, 0.2)
    assert result.declined_wrongly is True and result.declined is True
    assert result.task_success is False and result.declined_correctly is False
    assert result.wrong_but_passed is False  # never passed a review
    assert result.tool_accuracy == 0.0  # query_dataset was expected


def test_failed_run_carries_its_error_and_unknown_tools():
    error = RunError(code="ReviewFailed", message="below the threshold")
    result = score_case(PENGUINS, run_result("FAILED", None, passed=False, error=error), ["query_dataset", "oracle"],
                        3, 0.2)
    assert result.error == "ReviewFailed: below the threshold"
    assert result.unknown_tools == ["oracle"] and result.tool_accuracy == 0.0
    assert result.passed_review is False and result.wrong_but_passed is False


# ----------------------------------------------------------------------------------------------- totals, gate
def case_result(id: str, type: str, answerable: bool, **kw) -> CaseResult:
    return CaseResult(id=id, type=type, answerable=answerable, status=kw.pop("status", "SUCCEEDED"), **kw)


CASES = [
    case_result("a", "trend", True, task_success=True, correct=True, entity_ok=True, figures_found=2,
                figures_total=2, tool_accuracy=1.0, turns=4, tokens=100, cost_usd=0.5, passed_review=True),
    case_result("b", "trend", True, entity_ok=False, figures_found=1, figures_total=3, tool_accuracy=1.0, turns=6,
                tokens=50, passed_review=True, wrong_but_passed=True),
    case_result("c", "unanswerable", False, status="DECLINED", declined=True, declined_correctly=True,
                correct=True, tool_accuracy=1.0),
    case_result("d", "unanswerable", False, tool_accuracy=0.0, wrong_but_passed=True, passed_review=True,
                judge_score=0.2),
]


def test_summarize_totals_and_by_type():
    report = summarize(CASES, suite="s", provider="rule", wall_s=12.3456)
    t = report.totals
    assert (t.cases, t.answerable, t.unanswerable) == (4, 2, 2)
    assert (t.success, t.declined_correctly, t.declined_wrongly) == (1, 1, 0)
    assert t.score == pytest.approx(2 / 4)
    assert t.figure_accuracy == pytest.approx(3 / 5)
    assert t.tool_accuracy == pytest.approx(3 / 4)
    assert (t.wrong_but_passed, t.turns, t.tokens, t.cost_usd, t.wall_s) == (2, 10, 150, 0.5, 12.346)
    assert (t.judge_score, t.judged) == (0.2, 1)
    assert {k: (v.cases, v.correct, v.score) for k, v in report.by_type.items()} == {
        "trend": (2, 1, 0.5), "unanswerable": (2, 1, 0.5)}
    assert [c.id for c in report.cases] == ["a", "b", "c", "d"]


def test_gate_messages():
    report = summarize(CASES, suite="s", provider="rule", wall_s=1)
    assert gate(report, Gate(success_min=0.5, wrong_but_passed_max=2)) == []
    assert gate(report, Gate(success_min=0.9, wrong_but_passed_max=0, figure_accuracy_min=0.8,
                             tool_accuracy_min=0.5)) == [
        "score 0.5 < success_min 0.9",
        "wrong_but_passed 2 > wrong_but_passed_max 0",
        "figure_accuracy 0.6 < figure_accuracy_min 0.8",
    ]
    assert gate(report, Gate(success_min=0, wrong_but_passed_max=5, tool_accuracy_min=1.0)) == [
        "tool_accuracy 0.75 < tool_accuracy_min 1"]


def test_markdown_has_one_row_per_case_and_json_round_trips():
    report = summarize(CASES, suite="tiny", provider="rule", wall_s=1)
    text = to_markdown(report)
    assert text.startswith("# Eval: tiny")
    case_rows = [line for line in text.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in
                 {"a", "b", "c", "d"}]
    assert [row.split(" | ")[0][2:] for row in case_rows] == ["a", "b", "c", "d"]
    header = next(line for line in text.splitlines() if line.startswith("| id |"))
    for column in ("type", "status", "result", "figures", "entity ok", "passed review", "wrong but passed", "tools",
                   "turns", "tokens", "wall s"):
        assert f" {column} |" in header
    assert "| b | trend | SUCCEEDED | wrong | 1/3 | no | yes | yes |" in text
    assert "| c | unanswerable | DECLINED | declined ok | — |" in text
    data = to_json(report)
    assert json.loads(json.dumps(data)) == data
    assert data["totals"]["cases"] == 4 and len(data["cases"]) == 4


# ----------------------------------------------------------------------------------------------- the judge
@pytest.fixture
def judge_provider():
    """A registered provider whose smart model answers with the texts in ``replies`` (a list, popped in order)."""
    from stepcrew.llm import registry
    from stepcrew.llm.base import ModelResponse
    from stepcrew.llm.testing import FunctionModel

    replies: list[str] = []
    models: list[FunctionModel] = []

    def factory(tier: str) -> FunctionModel:
        model = FunctionModel(lambda request: ModelResponse(text=replies.pop(0), stop_reason="end_turn",
                                                            model="judge-model"), model="judge-model")
        models.append(model)
        return model

    registry.register("evaljudge", factory)
    try:
        yield replies, models
    finally:
        registry.unregister("evaljudge")


def test_llm_judge_sends_one_request_and_reads_the_score(judge_provider):
    from stepcrew.evals.runner import llm_judge

    replies, models = judge_provider
    replies.append('Here you go: {"score": 0.75, "reason": "one figure is off"}')
    judge = llm_judge("evaljudge")
    assert judge("Which species?", {"entity": "Gentoo"}, "# R\n\nGentoo\n") == 0.75
    [request] = models[0].requests
    assert [m.role for m in request.messages] == ["system", "user"]
    assert "Gentoo" in request.messages[1].content and request.tools == []


@pytest.mark.parametrize("reply", ["no json at all", '{"score": 1.7}', '{"score": "high"}', '{"reason": "x"}'])
def test_unusable_judge_reply_gives_no_score_and_a_note(judge_provider, reply):
    from stepcrew.evals.runner import JudgeError, _judge, llm_judge

    replies, _ = judge_provider
    replies.append(reply)
    judge = llm_judge("evaljudge")
    with pytest.raises(JudgeError):
        judge("goal", {}, "report")
    replies.append(reply)
    scored = score_case(PENGUINS, run_result("SUCCEEDED", GOOD_REPORT), ["query_dataset"], 1, 0.1)
    judged = _judge(judge, PENGUINS, scored, GOOD_REPORT)
    assert judged.judge_score is None
    assert len(judged.notes) == 1 and judged.notes[0].startswith("judge: ")


def test_naming_the_wrong_entity_first_is_not_a_success_and_counts_as_wrong_but_passed():
    report = ("# Penguins\n\n## Answer\n\nChinstrap penguins are the heaviest. Means: Adelie 3700.66 g, Chinstrap "
              "3733.09 g, Gentoo 5076.02 g.\n\n## Figures\n")
    result = score_case(PENGUINS, run_result("SUCCEEDED", report), ["query_dataset"], 1, 0.1)
    assert result.entity_ok is False and result.task_success is False and result.wrong_but_passed is True


def test_a_figure_with_the_wrong_sign_is_not_found_but_a_magnitude_may_be_written_negative():
    corr = Case.model_validate({"id": "corr", "goal": "Correlation of weight and mpg?", "dataset": "cars",
                                "type": "correlation", "answerable": True,
                                "expect": {"figures": [{"name": "pearson_r", "value": -0.83, "tolerance": 0.01}]}})
    assert score_case(corr, run_result("SUCCEEDED", "# C\n\nr = 0.83\n"), [], 1, 0.1).figures_found == 0
    assert score_case(corr, run_result("SUCCEEDED", "# C\n\nr = -0.83\n"), [], 1, 0.1).figures_found == 1
    report = "# W\n\n## Answer\n\nUSA fell the most: a change of -29.1 %.\n"
    assert score_case(DECLINE, run_result("SUCCEEDED", report), [], 1, 0.1).task_success is True
