"""Routing by complexity (:mod:`stepcrew.resilience.routing`): the precedence of the tier rules and the documented
complexity score. Expected scores are summed by hand from the module docstring's rules, part by part."""

from __future__ import annotations

import pytest
from stepcrew.crew import load_crew
from stepcrew.engines.facts import SubtaskFacts
from stepcrew.models import Routing, Run
from stepcrew.resilience.routing import FAST_MAX_SCORE, SMART_MIN_SCORE, complexity, question_weight, route

CREW = load_crew("default")
LOOKUP = "How many penguins are in the dataset?"


def sub(tools: int = 1, deps: int = 0, chars: int = 10) -> SubtaskFacts:
    return SubtaskFacts(id="s", title="S", instructions="x" * chars, tools=[f"t{i}" for i in range(tools)],
                        depends_on=[f"d{i}" for i in range(deps)])


def run_with(goal: str = LOOKUP, **routing) -> Run:
    return Run(run_id="r1", goal=goal, crew=CREW, provider="p1", routing=Routing(**routing))


@pytest.mark.parametrize("tools, expected", [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (8, 2)])
def test_each_tool_beyond_the_first_adds_one_up_to_two(tools, expected):
    assert complexity(sub(tools=tools), LOOKUP).score == expected


@pytest.mark.parametrize("deps, expected", [(0, 0), (1, 1), (2, 1), (3, 2), (6, 2)])
def test_one_or_two_dependencies_add_one_three_or_more_add_two(deps, expected):
    assert complexity(sub(deps=deps), LOOKUP).score == expected


@pytest.mark.parametrize("chars, expected", [(300, 0), (301, 1), (1000, 1), (1001, 2), (5000, 2)])
def test_instructions_over_300_characters_add_one_over_1000_add_two(chars, expected):
    assert complexity(sub(chars=chars), LOOKUP).score == expected


@pytest.mark.parametrize("goal, weight", [
    ("Why is the Gentoo the heaviest species?", 3),
    ("Explain the difference in flipper length", 3),  # reasoning wins over the comparison word
    ("What caused the drop in sales?", 3),
    ("Recommend a pricing strategy", 3),
    ("Should we expand to Biscoe island?", 3),
    ("Forecast next year's revenue", 3),
    ("Predict the body mass of a new penguin", 3),
    ("What are the trade-offs between the two plans?", 3),
    ("Compare body mass across species", 1),
    ("Adelie versus Gentoo flipper length", 1),
    ("What is the trend in yearly counts?", 1),
    ("How did the mean change between 2007 and 2009?", 1),
    ("Is bill length correlated with body mass?", 1),
    ("What is the average body mass?", 0),
    ("How many penguins per island?", 0),
    ("List the species", 0),
    ("Total count of rows", 0),
])
def test_the_question_type_of_the_goal_weighs_reasoning_3_comparison_1_lookup_0(goal, weight):
    assert question_weight(goal)[0] == weight
    assert complexity(sub(), goal).score == weight


def test_the_parts_add_up_and_are_named():
    # 4 tools (+2), 3 dependencies (+2), 1,200 characters (+2), a why-question (+3): the maximum, 9
    c = complexity(sub(tools=4, deps=3, chars=1200), "Why do Gentoo penguins weigh more?")
    assert c.score == 2 + 2 + 2 + 3 == 9
    assert c.parts == ("4 tools", "3 dependencies", "1200-char instructions", "reasoning question")
    # 2 tools (+1), 1 dependency (+1), 301 characters (+1), a comparison (+1)
    c = complexity(sub(tools=2, deps=1, chars=301), "Compare the islands")
    assert c.score == 1 + 1 + 1 + 1
    assert complexity(sub(), LOOKUP).parts == ()


@pytest.mark.parametrize("kwargs, goal, tier", [
    ({}, LOOKUP, "fast"),  # 0
    ({"tools": 2}, LOOKUP, "fast"),  # 1 = FAST_MAX_SCORE
    ({"tools": 3}, LOOKUP, None),  # 2: the role's own tier
    ({"tools": 2, "deps": 1, "chars": 301}, LOOKUP, None),  # 3
    ({"tools": 2}, "Why is it so?", "smart"),  # 1 + 3 = 4 = SMART_MIN_SCORE
    ({}, "Why is it so?", None),  # 3
    ({"tools": 3, "deps": 3}, LOOKUP, "smart"),  # 4
])
def test_a_workers_tier_follows_its_score(kwargs, goal, tier):
    score = complexity(sub(**kwargs), goal).score
    expected = "fast" if score <= FAST_MAX_SCORE else "smart" if score >= SMART_MIN_SCORE else None
    assert expected == tier  # the case is what its comment says
    for own in ("fast", "smart"):
        role = CREW.workers[0].model_copy(update={"model_tier": own})
        r = route(run_with(goal), role, sub(**kwargs), goal)
        assert r.tier == (tier or own)
        assert r.reason.startswith(f"complexity {score} (")


def test_the_run_goal_is_used_when_no_goal_is_given():
    role = CREW.workers[0].model_copy(update={"model_tier": "fast"})
    assert route(run_with("Why is it so?"), role, sub(tools=2)).tier == "smart"  # 1 + 3 from the run's goal


def test_precedence_run_tier_then_role_tier_then_complexity_then_the_roles_own_tier():
    worker = CREW.workers[0].model_copy(update={"model_tier": "smart"})
    simple = sub()  # score 0 -> fast by complexity
    assert route(run_with(), worker, simple).tier == "fast"
    # 2. a role tier override beats the complexity score
    r = route(run_with(role_tiers={worker.name: "smart"}), worker, simple)
    assert (r.tier, r.reason) == ("smart", "role tier override smart")
    # 1. the run's tier beats the role override
    r = route(run_with(tier="fast", role_tiers={worker.name: "smart"}), worker, sub(tools=4, deps=4), "Why?")
    assert (r.tier, r.reason) == ("fast", "run tier fast")
    # 3 off: by_complexity false -> the role's own tier
    r = route(run_with(by_complexity=False), worker, simple)
    assert (r.tier, r.reason) == ("smart", "role tier smart")
    # another role's override does not apply
    assert route(run_with(role_tiers={"planner": "smart"}), worker, simple).tier == "fast"


@pytest.mark.parametrize("role_name", ["planner", "reviewer", "synthesizer"])
def test_one_shot_roles_never_route_by_complexity(role_name):
    role = getattr(CREW, role_name)
    for own in ("fast", "smart"):
        r = route(run_with("Why is it so?"), role.model_copy(update={"model_tier": own}))
        assert (r.tier, r.reason) == (own, f"role tier {own}")
    assert route(run_with(role_tiers={role.name: "fast"}), role).tier == "fast"
    assert route(run_with(tier="smart"), role.model_copy(update={"model_tier": "fast"})).tier == "smart"
