"""``run_python`` in a whole local run: the real run and agent ASL, the real tool Lambda handler (registered from
``stepcrew.wiring.FUNCTIONS`` by the local runtime), a scripted model, and a test crew whose analyst may use it (the
default crew does not: its demo and benches stay as they are)."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from stepcrew.crew import load_crew, validate_crew
from stepcrew.data import DEMO_DATASET
from stepcrew.engines.testing import ScriptedModel, call_tool, reply
from stepcrew.llm import registry
from stepcrew.models import RunRequest, RunStatus
from stepcrew.service import create_run, run_result, start_run

pytestmark = pytest.mark.integration

PROVIDER = "scripted-run-python"
CODE = ("import csv\n"
        "with open(DATASET_PATH, newline='') as f:\n"
        "    masses = [float(r['body_mass_g']) for r in csv.DictReader(f)\n"
        "              if r['species'] == 'Gentoo' and r['body_mass_g'] not in ('', 'NA')]\n"
        "result = {'n': len(masses), 'mean': sum(masses) / len(masses)}\n"
        "print('gentoo', len(masses))")


@pytest.fixture(autouse=True)
def _unregister_scripted_provider():
    yield
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def _gentoo_masses() -> list[float]:
    with DEMO_DATASET.open(newline="") as f:
        return [float(r["body_mass_g"]) for r in csv.DictReader(f)
                if r["species"] == "Gentoo" and r["body_mass_g"] not in ("", "NA")]


def _crew_with_run_python():
    crew = load_crew("default")
    analyst = crew.workers[0].model_copy(update={"tools": [*crew.workers[0].tools, "run_python"]})
    assert "run_python" not in crew.workers[0].tools  # the default crew is unchanged
    return validate_crew(crew.model_copy(update={"workers": [analyst, *crew.workers[1:]]}))


def test_a_run_computes_with_run_python_and_the_result_reaches_the_conversation(local_rt):
    # Given a crew whose analyst has run_python, and a model that calls it on the run's dataset
    crew = _crew_with_run_python()
    analyst = crew.workers[0].name
    plan = json.dumps({"rationale": "test plan", "subtasks": [
        {"id": "gentoo", "title": "Gentoo mass", "instructions": "Mean body mass of Gentoo penguins.",
         "depends_on": [], "expected_output": "a number", "tools": ["run_python"], "role": analyst}]})
    masses = _gentoo_masses()  # read here with the csv module, not by the tool
    expected = statistics.fmean(masses)
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan)],
        "act": [call_tool("run_python", {"code": CODE}), reply(f"Gentoo mean body mass: {expected:.1f} g")],
        "synthesize": [reply(f"# Report\nGentoo mean body mass: {expected:.1f} g")],
        "review": [reply(json.dumps({"accuracy": 1, "completeness": 1, "relevance": 1, "feedback": "ok"}))]})
    registry.register(PROVIDER, lambda tier: scripted)
    request = RunRequest(goal="What is the mean body mass of Gentoo penguins?", provider=PROVIDER,
                         data=DEMO_DATASET.as_uri(), routing={"cache": False})
    # When
    run = start_run(create_run(request, crew, local_rt.store), local_rt.store, local_rt)
    local_rt.wait(run.execution_arn, timeout_s=120)
    result = run_result(local_rt.store, run.run_id)
    # Then the run succeeded, and the sandbox's figure is in the sub-task's stored conversation
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert result.subtasks[0].tool_calls == 1
    tool_results = [r for m in local_rt.store.get_messages(run.run_id, "gentoo") if m.role == "tool"
                    for r in m.tool_results]
    assert len(tool_results) == 1 and tool_results[0].ok, tool_results
    content = tool_results[0].content
    assert content["result"]["n"] == len(masses)
    assert content["result"]["mean"] == pytest.approx(expected)
    assert content["stdout"] == f"gentoo {len(masses)}\n"
    # and the model's next turn was given that result
    second_act = scripted.requests_for("act")[1]
    seen = [r for m in second_act.messages if m.role == "tool" for r in m.tool_results]
    assert seen and seen[-1].content["result"]["mean"] == pytest.approx(expected)
