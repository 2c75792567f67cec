"""The agent handler emits ToolErrors (EMF) for the failed tool results it hands back to the model."""

import importlib.util
import json

import pytest

from stepcrew.events import AgentTurnInput, AgentTurnOutput
from stepcrew.local.hook import LambdaContext
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
    # Powertools keeps metrics in class-level state shared by every Metrics instance, and never clears it while
    # POWERTOOLS_METRICS_DISABLED is set (as in the local runtime): drop what earlier in-process runs left behind.
    module.metrics.clear_metrics()
    seen = []

    def fake_turn(inp: AgentTurnInput, store, engines=None):
        assert engines is module.engines  # the handler's cold-start EngineResolver
        seen.append(inp)
        return AgentTurnOutput(run_id=inp.run_id, subtask_id=inp.subtask_id, turn=2, stop_reason="end_turn",
                               status=SubtaskStatus.SUCCEEDED)

    monkeypatch.setattr(module, "agent_turn", fake_turn)
    return module, seen


# the local runtime's Lambda-like context
CONTEXT = LambdaContext(function_name="agent", memory_limit_in_mb=512,
                        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:agent")


def _emf(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_failed_tool_results_are_counted_as_tool_errors(agent_app, capsys):
    module, seen = agent_app
    event = {"run_id": "r1", "subtask_id": "s1", "tool_results": [
        {"call_id": "c1", "name": "calculator", "ok": False, "error": {"type": "CalculationError", "message": "x"}},
        {"call_id": "c2", "name": "calculator", "ok": True, "content": {"value": 1}},
        {"call_id": "c3", "name": "query_dataset", "ok": False, "error": {"type": "QueryError", "message": "y"}}]}
    assert module.handler(event, CONTEXT)["stop_reason"] == "end_turn"
    assert len(seen) == 1
    docs = _emf(capsys.readouterr().out)
    assert [d["ToolErrors"] for d in docs if "ToolErrors" in d] == [[2.0]]  # EMF carries metric values as lists


def test_no_tool_errors_no_metric(agent_app, capsys):
    module, seen = agent_app
    assert module.handler({"run_id": "r1", "subtask_id": "s1"}, CONTEXT)["stop_reason"] == "end_turn"
    assert len(seen) == 1
    assert not [d for d in _emf(capsys.readouterr().out) if "ToolErrors" in d]
