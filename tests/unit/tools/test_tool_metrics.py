"""Per-tool metrics: every tool call through ``invoke_event`` records one EMF line with ToolCalls, ToolErrors and
ToolLatencyMs under the dimension ``tool``; nothing when metrics are disabled (the local runtime) or unnamed."""

import json

import pytest

from stepcrew.tools.base import invoke_event
from stepcrew.tools.calculator import Calculator


def _event(expression):
    return {"context": {"run_id": "r1", "subtask_id": "calc"},
            "call": {"call_id": "c1", "name": "calculator", "arguments": {"expression": expression}}}


def _emf_lines(out: str) -> list[dict]:
    return [d for d in (json.loads(line) for line in out.splitlines() if line.startswith("{")) if "_aws" in d]


@pytest.fixture
def metrics_on(monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "stepcrew-test")


@pytest.mark.parametrize("expression, ok", [("6 * 7", True), ("6 *", False)])
def test_each_call_records_calls_errors_and_latency_per_tool(metrics_on, capsys, expression, ok):
    result = invoke_event(Calculator(), _event(expression))
    assert result["ok"] is ok
    (line,) = _emf_lines(capsys.readouterr().out)
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "stepcrew-test" and ["tool"] in directive["Dimensions"]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "ToolCalls": "Count", "ToolErrors": "Count", "ToolLatencyMs": "Milliseconds"}
    value = {k: line[k][0] if isinstance(line[k], list) else line[k]  # Powertools may write [v]
             for k in ("ToolCalls", "ToolErrors", "ToolLatencyMs")}
    assert line["tool"] == "calculator" and value["ToolCalls"] == 1
    assert value["ToolErrors"] == (0 if ok else 1)
    assert value["ToolLatencyMs"] >= 0


def test_no_metrics_when_disabled_or_unnamed(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "stepcrew-test")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    invoke_event(Calculator(), _event("1 + 1"))
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED")
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    assert invoke_event(Calculator(), _event("1 + 1"))["ok"]
    assert _emf_lines(capsys.readouterr().out) == []
