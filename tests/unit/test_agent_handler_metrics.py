"""The agent handler emits ToolErrors (EMF) for the failed tool results it hands back to the model."""

import importlib.util
import json

import pytest

from stepcrew.events import AgentTurnInput, AgentTurnOutput
from stepcrew.models import SubtaskStatus
from stepcrew.wiring import FUNCTIONS


@pytest.fixture
def agent_app(monkeypatch):
    for key, value in {"STEPCREW_TABLE_NAME": "runs", "STEPCREW_STAGE": "test", "POWERTOOLS_SERVICE_NAME": "agent",
                       "POWERTOOLS_METRICS_NAMESPACE": "stepcrew-test", "POWERTOOLS_TRACE_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    spec = importlib.util.spec_from_file_location("agent_app_under_test", FUNCTIONS["agent"].folder / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seen = []

    def fake_turn(inp: AgentTurnInput, store):
        seen.append(inp)
        return AgentTurnOutput(run_id=inp.run_id, subtask_id=inp.subtask_id, turn=2, stop_reason="end_turn",
                               status=SubtaskStatus.SUCCEEDED)

    monkeypatch.setattr(module, "agent_turn", fake_turn)
    return module, seen


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "agent", 512, "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:agent"


def _emf(out: str) -> list[dict]:
    return [d for d in (json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"'))]


def test_failed_tool_results_are_counted_as_tool_errors(agent_app, capsys):
    module, seen = agent_app
    event = {"run_id": "r1", "subtask_id": "s1", "tool_results": [
        {"call_id": "c1", "name": "calculator", "ok": False, "error": {"type": "CalculationError", "message": "x"}},
        {"call_id": "c2", "name": "calculator", "ok": True, "content": {"value": 1}},
        {"call_id": "c3", "name": "query_dataset", "ok": False, "error": {"type": "QueryError", "message": "y"}}]}
    assert module.handler(event, Context())["stop_reason"] == "end_turn"
    assert len(seen) == 1
    docs = _emf(capsys.readouterr().out)
    assert [d["ToolErrors"] for d in docs if "ToolErrors" in d] == [[2.0]]  # EMF carries metric values as lists


def test_no_tool_errors_no_metric(agent_app, capsys):
    module, _ = agent_app
    module.handler({"run_id": "r1", "subtask_id": "s1"}, Context())
    assert not [d for d in _emf(capsys.readouterr().out) if "ToolErrors" in d]
