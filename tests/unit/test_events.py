"""Every file in events/ is a real sample event and validates against the model its handler parses.

A file whose name matches no known prefix fails the test: no sample event goes unvalidated.
"""

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter

from stepcrew import events as ev
from stepcrew.models import RunRequest, ToolInvocation

EVENTS = sorted((Path(__file__).resolve().parents[2] / "events").glob("*.json"))


class ScheduledRunInput(BaseModel):
    """What EventBridge Scheduler sends to the run state machine (see run.asl.json RouteInput)."""

    request: RunRequest
    source: str


def _http_api_v2(data):
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

    return APIGatewayProxyEventV2Model.model_validate(data)


def _replan_event(data):
    from stepcrew.domain.replan import ReplanInput

    return ReplanInput.model_validate(data)


def _manage_input(data):
    from stepcrew.domain.manager import ManageInput

    return ManageInput.model_validate(data)


VALIDATORS = {
    "tool_": ToolInvocation.model_validate,
    "guard_scheduled": ev.CreateScheduledRun.model_validate,
    "guard": ev.RunRef.model_validate,
    "planner_replan": _replan_event,
    "planner": ev.PlanInput.model_validate,
    "manager": _manage_input,
    "approval": ev.ApprovalInput.model_validate,
    "agent": ev.AgentTurnInput.model_validate,
    "synthesizer": ev.SynthInput.model_validate,
    "reviewer": ev.ReviewInput.model_validate,
    "finalize": TypeAdapter(ev.FinalizeInput).validate_python,
    "api_": _http_api_v2,
    "schedule": ScheduledRunInput.model_validate,
    "memory": TypeAdapter(ev.MemoryInput).validate_python,
}


def _validator(name: str):
    for prefix in sorted(VALIDATORS, key=len, reverse=True):
        if name.startswith(prefix):
            return VALIDATORS[prefix]
    raise AssertionError(f"events/{name}: no model is known for this file name; add its prefix to VALIDATORS")


def test_there_are_sample_events_for_every_role_and_tool():
    names = {p.name for p in EVENTS}
    for prefix in ("tool_calculator", "tool_describe_dataset", "tool_query_dataset", "tool_write_section", "guard",
                   "planner", "planner_replan", "manager", "agent", "synthesizer", "reviewer", "finalize"):
        assert any(n.startswith(prefix) for n in names), f"no sample event for {prefix}"


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_event_file_validates_against_its_model(path: Path):
    data = json.loads(path.read_text())
    _validator(path.name)(data)
