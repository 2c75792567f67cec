"""The planner prompt puts what is the same for every goal of a crew first (data rule, reply schema, rules, the
decline form), so a provider's prompt cache can reuse it across runs; the run's facts come last. The schema it
embeds is compact: no titles, no developer docstrings."""

from __future__ import annotations

import json
import os

from stepcrew.engines import prompts
from stepcrew.engines.facts import PlanFacts, WorkerInfo

WORKERS = [WorkerInfo(name="analyst", role="Analyst", tools=["calculator"])]


def _prompt(goal: str) -> str:
    return prompts.plan_prompt(PlanFacts(goal=goal, has_dataset=False, tools=["calculator"], workers=WORKERS))


def test_two_goals_share_everything_up_to_the_runs_own_facts():
    first, second = _prompt("Compare the species by mass."), _prompt("Which island has the most birds?")
    shared = os.path.commonprefix([first, second])
    assert shared.endswith("Goal:\n") and first[len(shared):].startswith("Compare the species")
    for stable in ("JSON Schema", "Rules:", '{"decline"'):
        assert stable in shared
    assert len(shared) / len(first) > 0.8  # the goal is a short tail of the prompt


def test_the_embedded_schema_is_compact_and_still_the_plans():
    from stepcrew.models import Plan

    schema = json.loads(prompts.plan_schema_text())
    text = prompts.plan_schema_text()
    assert '"title":"' not in text.replace('"title":{', "")  # the SubTask field named title stays
    assert "PlanValidationError" not in text and "validate_rules" not in text
    full = Plan.model_json_schema()
    assert schema["required"] == full["required"] and set(schema["properties"]) == set(full["properties"])
    assert set(schema["properties"]["subtasks"]["items"]["properties"]) == set(full["$defs"]["SubTask"]["properties"])
    assert "$defs" not in schema and "pattern" not in text and "maxLength" not in text  # lean: the rules say them
