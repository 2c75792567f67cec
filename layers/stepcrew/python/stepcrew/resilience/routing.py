"""Routing by complexity: which model tier (``fast`` | ``smart``) a role call uses, and why.

Precedence, first match wins (the reason is recorded on the turn, event ``model_turn``):

1. ``run.routing.tier`` — one tier forced on every role of the run (``--tier``);
2. ``run.routing.role_tiers[role.name]`` — per role (crew YAML or run);
3. for a worker's sub-task with ``run.routing.by_complexity`` (default on): the **complexity score** below moves
   the role's tier: score <= 1 -> ``fast``, score >= 4 -> ``smart``, otherwise the role's own tier;
4. the role's ``model_tier`` from the crew YAML (planner, reviewer and synthesizer always stop here or above).

The complexity score of a sub-task (0-9), from the plan only (no model call):

- tools allowed: +1 for each beyond the first (at most +2) — more tools, more choices to get wrong;
- dependencies: +1 with one or two, +2 with three or more — more earlier outputs to combine;
- instruction length: +1 over 300 characters, +2 over 1,000;
- question type of the goal: +3 for open reasoning (why / explain / cause / recommend / should / forecast /
  predict / strategy / trade-off), +1 for a comparison or a trend (compare / versus / trend / change / correlat),
  0 for a lookup (what is / how many / list / count / total / average).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stepcrew.engines.facts import SubtaskFacts
from stepcrew.models import AgentRole, Run

FAST_MAX_SCORE = 1
SMART_MIN_SCORE = 4
_REASONING = re.compile(r"\b(why|explain\w*|caus\w*|reason\w*|recommend\w*|should|forecast\w*|predict\w*|"
                        r"strateg\w*|trade-?offs?)\b", re.IGNORECASE)
_COMPARISON = re.compile(r"\b(compar\w*|versus|vs\.?|trend\w*|chang\w*|correlat\w*|differ\w*)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Complexity:
    """``score`` (0-9) and the parts that made it, e.g. ``("2 tools", "why-question")``."""

    score: int
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """The tier a call uses and why (one line, ids and numbers only)."""

    tier: str
    reason: str


def question_weight(goal: str) -> tuple[int, str | None]:
    """``(weight, label)`` of the goal's question type (see the module docstring)."""
    if _REASONING.search(goal):
        return 3, "reasoning question"
    if _COMPARISON.search(goal):
        return 1, "comparison/trend question"
    return 0, None


def complexity(subtask: SubtaskFacts, goal: str) -> Complexity:
    """The documented complexity score of ``subtask`` within ``goal`` (module docstring)."""
    parts: list[str] = []
    score = 0
    extra_tools = min(max(len(subtask.tools) - 1, 0), 2)
    if extra_tools:
        score += extra_tools
        parts.append(f"{len(subtask.tools)} tools")
    deps = len(subtask.depends_on)
    if deps:
        score += 2 if deps >= 3 else 1
        parts.append(f"{deps} dependencies")
    length = len(subtask.instructions)
    if length > 300:
        score += 2 if length > 1000 else 1
        parts.append(f"{length}-char instructions")
    weight, label = question_weight(goal)
    if weight:
        score += weight
        parts.append(label or "")
    return Complexity(score=score, parts=tuple(parts))


def route(run: Run, role: AgentRole, subtask: SubtaskFacts | None = None, goal: str = "") -> Route:
    """The tier of one call of ``role`` in ``run`` (``subtask``: the worker's sub-task, None for one-shot roles)."""
    routing = run.routing
    if routing.tier is not None:
        return Route(routing.tier, f"run tier {routing.tier}")
    if role.name in routing.role_tiers:
        tier = routing.role_tiers[role.name]
        return Route(tier, f"role tier override {tier}")
    if subtask is not None and routing.by_complexity:
        c = complexity(subtask, goal or run.goal)
        why = ", ".join(c.parts) or "simple"
        if c.score <= FAST_MAX_SCORE:
            return Route("fast", f"complexity {c.score} ({why}) -> fast")
        if c.score >= SMART_MIN_SCORE:
            return Route("smart", f"complexity {c.score} ({why}) -> smart")
        return Route(role.model_tier, f"complexity {c.score} ({why}) -> role tier {role.model_tier}")
    return Route(role.model_tier, f"role tier {role.model_tier}")
