"""Results of tools that describe what they wrote (charts, exports, notifications) are not sources of figures: a
report figure equal to a chart's pixel width or byte count is not "checked" by it."""

from __future__ import annotations

from stepcrew.engines.facts import SubtaskFacts, ToolFact
from stepcrew.engines.rules.rubric import _source_numbers


def _subtask(*results: ToolFact) -> SubtaskFacts:
    return SubtaskFacts(id="s1", title="t", tool_results=list(results))


def test_chart_export_and_notify_results_are_not_sources():
    chart = ToolFact(name="make_chart", content={"width": 800, "height": 600, "bytes": 31337})
    export = ToolFact(name="export_results", content={"written": {"bytes": 4242, "rows": 17}})
    notify = ToolFact(name="notify", content={"published": {"bytes": 99}})
    assert _source_numbers(_subtask(chart, export, notify), []) == []


def test_a_query_result_still_is_a_source():
    query = ToolFact(name="query_dataset", content={"columns": ["n"], "rows": [[31337]]})
    chart = ToolFact(name="make_chart", content={"width": 800})
    assert 31337 in _source_numbers(_subtask(query, chart), [])
    assert 800 not in _source_numbers(_subtask(query, chart), [])
