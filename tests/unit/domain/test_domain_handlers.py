"""Role handlers: settings validated at import, the sample events of events/ parsed and answered with the
handler's output model (the store swapped for the in-memory fake; the roles that call an engine get the handler's
resolver swapped for one playing a ScriptedModel, so these tests do not depend on the rule engine's answers)."""

import importlib.util
import json

import pytest
from domain_helpers import TEST_PROVIDER, plan_json, two_step_plan

from stepcrew.data import DEMO_DATASET
from stepcrew.engines.resolve import scripted_resolver
from stepcrew.engines.testing import ScriptedModel, call_tool, label, reply
from stepcrew.events import (
    AgentTurnOutput,
    ApprovalOutput,
    FinalizeOutput,
    GuardOutput,
    PlanOutput,
    ReviewOutput,
    RunRef,
    SynthOutput,
)
from stepcrew.models import CriterionScores, Review, Run, RunStatus, SubtaskStatus
from stepcrew.settings import SettingsError
from stepcrew.store.memory import MemoryRunStore
from stepcrew.tools.datasets import dataset_uri
from stepcrew.wiring import FUNCTIONS_DIR, REPO_ROOT

EVENTS = REPO_ROOT / "events"
ENV = {"STEPCREW_TABLE_NAME": "stepcrew-runs", "STEPCREW_STAGE": "test", "POWERTOOLS_SERVICE_NAME": "stepcrew-test",
       "POWERTOOLS_METRICS_NAMESPACE": "stepcrew-test", "STEPCREW_EVENT_BUS": "default",
       "STEPCREW_GUARD_BACKEND": "local"}


def _import(function: str):
    spec = importlib.util.spec_from_file_location(f"handler_{function}_under_test", FUNCTIONS_DIR / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def handler(monkeypatch, crew):
    """``handler(function, status=RUNNING, model=None)`` -> (handler, store seeded with the sample events' run).
    With ``model`` the run's provider is a test one and the handler's ``engines`` play ``model``; else the run's
    provider is ``rule`` (for handlers that call no engine)."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)

    def load(function: str, status=RunStatus.RUNNING, model=None):
        module = _import(function)
        module.store = MemoryRunStore()
        if model is not None:
            module.engines = scripted_resolver(model)
        run_id = json.loads((EVENTS / "guard.json").read_text())["run_id"]
        module.store.create_run(Run(run_id=run_id, goal="Compare penguin species by body mass.", crew=crew,
                                    provider=TEST_PROVIDER if model is not None else "rule",
                                    data=dataset_uri(DEMO_DATASET), status=status))
        return module.handler, module.store, run_id

    return load


def _event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.mark.parametrize("function", ["guard", "planner", "approval", "agent", "synthesizer", "reviewer"])
def test_a_missing_variable_fails_the_import(monkeypatch, function):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STEPCREW_TABLE_NAME")
    with pytest.raises(SettingsError, match="missing environment variable.*STEPCREW_TABLE_NAME"):
        _import(function)


def test_finalize_needs_the_metrics_namespace(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    with pytest.raises(SettingsError, match="POWERTOOLS_METRICS_NAMESPACE"):
        _import("finalize")


def test_guard_handler(handler, lambda_context):
    fn, store, run_id = handler("guard", status=RunStatus.QUEUED)
    out = GuardOutput.model_validate(fn(_event("guard"), lambda_context))
    assert out.run_id == run_id and store.get_run(run_id).status == RunStatus.RUNNING


def test_guard_handler_writes_a_scheduled_run(handler, lambda_context):
    fn, store, _ = handler("guard")
    out = RunRef.model_validate(fn(_event("guard_scheduled_run"), lambda_context))
    assert store.get_run(out.run_id).status == RunStatus.QUEUED and out.run_id == "weekly-penguins-20261123T0600"


def test_planner_handler(handler, lambda_context):
    model = ScriptedModel(by_purpose={"plan": [reply(plan_json(two_step_plan()))]})
    fn, store, run_id = handler("planner", model=model)
    out = PlanOutput.model_validate(fn(_event("planner"), lambda_context))
    assert out.valid and store.get_plan(run_id) == two_step_plan()
    assert [label(r).purpose for r in model.requests] == ["plan"]


def test_approval_handler(handler, lambda_context):
    fn, store, run_id = handler("approval")
    ApprovalOutput.model_validate(fn(_event("approval"), lambda_context))
    assert store.get_run(run_id).status == RunStatus.WAITING_APPROVAL


def test_agent_handler_first_turn(handler, lambda_context):
    model = ScriptedModel(by_subtask={"compare": [call_tool("describe_dataset", {})]})
    fn, store, run_id = handler("agent", model=model)
    store.put_plan(run_id, two_step_plan())
    out = AgentTurnOutput.model_validate(fn(_event("agent_first_turn"), lambda_context))
    assert out.stop_reason == "tool_use" and out.calls[0].name == "describe_dataset"
    assert out.data_uri == dataset_uri(DEMO_DATASET)
    assert model.remaining() == {"default": 0, "subtask:compare": 0}


def test_synthesizer_and_reviewer_handlers(handler, lambda_context):
    model = ScriptedModel(by_purpose={"synthesize": [reply("# Report\ncompare done")], "review": [reply(json.dumps(
        {"accuracy": 0.9, "completeness": 0.9, "relevance": 0.9, "feedback": "fine"}))]})
    fn, store, run_id = handler("synthesizer", model=model)
    store.put_plan(run_id, two_step_plan())
    for sid in ("compare", "write"):
        store.update_subtask(run_id, sid, {"status": SubtaskStatus.SUCCEEDED, "output": f"{sid} done"})
    out = SynthOutput.model_validate(fn(_event("synthesizer_draft"), lambda_context))
    assert out.chars > 0
    review_module = _import("reviewer")
    review_module.store = store
    review_module.engines = scripted_resolver(model)
    result = ReviewOutput.model_validate(review_module.handler(_event("reviewer"), lambda_context))
    assert result.round == 1 and result.next_round == 2
    assert store.get_report(run_id) == "# Report\ncompare done" and result.passed


@pytest.mark.parametrize(("name", "status"), [("finalize_succeed_run", "SUCCEEDED"),
                                              ("finalize_fail_run_lambda_error", "FAILED"),
                                              ("finalize_fail_subtask", "FAILED")])
def test_finalize_handler(handler, lambda_context, capsys, name, status):
    fn, store, run_id = handler("finalize")
    store.put_plan(run_id, two_step_plan())
    store.put_report(run_id, "# Report")
    store.put_review(run_id, Review(round=1, scores=CriterionScores(accuracy=0.9, completeness=0.9, relevance=0.9),
                                    overall=0.9, passed=True))  # succeed_run needs a passed last round
    out = FinalizeOutput.model_validate(fn(_event(name), lambda_context))
    assert out.status == status
    if name != "finalize_fail_subtask":
        emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        assert emf and emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "stepcrew-test"


def test_a_malformed_event_is_rejected(handler, lambda_context):
    from pydantic import ValidationError

    fn, _, _ = handler("planner")
    with pytest.raises(ValidationError):
        fn({"run_id": "bad id!"}, lambda_context)
