"""Every state of the ASL that calls a model role, or starts a sub-task's child execution, has a role in the
retry/wait lines (progress_waits.STATE_ROLES), so a new state cannot be shown by its bare name by mistake."""

from __future__ import annotations

import json

from stepcrew import wiring
from stepcrew.progress_waits import STATE_ROLES

MODEL_FUNCTIONS = {"${PlannerFunctionArn}", "${ManagerFunctionArn}", "${SynthesizerFunctionArn}",
                   "${ReviewerFunctionArn}", "${AgentFunctionArn}"}


def _states(states: dict):
    for name, state in states.items():
        yield name, state
        for inner in (state.get("ItemProcessor") or state.get("Iterator") or {}).get("States", {}).items():
            yield from _states(dict([inner]))


def test_model_and_child_states_have_a_role():
    missing = []
    for machine in wiring.STATE_MACHINES:
        definition = json.loads(wiring.STATE_MACHINES[machine].read_text())
        for name, state in _states(definition["States"]):
            if state.get("Type") != "Task":
                continue
            params = state.get("Parameters", {})
            calls_model = params.get("FunctionName") in MODEL_FUNCTIONS
            starts_child = state.get("Resource", "").startswith("arn:aws:states:::states:startExecution")
            if (calls_model or starts_child) and name not in STATE_ROLES:
                missing.append(f"{machine}:{name}")
    assert missing == []


def test_the_manager_and_replan_states_are_named():
    assert STATE_ROLES["Manage"] == "manager"
    assert STATE_ROLES["ReplanAfterFailure"] == STATE_ROLES["Plan"] == "planner"
