"""The rule engine plays the planner's replan deterministically: it issues the sub-tasks to replace again (the
domain versions their ids), and declines what it did not plan itself; a versioned sub-task plays its base rule."""

from __future__ import annotations

from stepcrew.engines.facts import ActFacts, KeptSubtask, PlanFacts, ReplanFacts, SubtaskFacts, WorkerInfo
from stepcrew.engines.rules.engine import RuleEngine, act
from stepcrew.models import AgentRole

ROLE = AgentRole(name="planner", role="Planner", goal="plan")
WORKERS = [WorkerInfo(name="data_analyst", role="Analyst", tools=["query_dataset", "calculator"])]


def _facts(replaced: list[SubtaskFacts]) -> PlanFacts:
    return PlanFacts(goal="Which species is heaviest?", has_dataset=True, workers=WORKERS,
                     tools=["calculator", "query_dataset"],
                     replan=ReplanFacts(version=2, failed_subtask="compute", error="ToolLoopError",
                                        kept=[KeptSubtask(id="query", title="Query the data")], replaced=replaced,
                                        used_ids=["compute", "query"]))


def test_the_rule_engine_reissues_its_own_replaced_subtasks_the_same_every_time():
    compute = SubtaskFacts(id="compute", title="Compute the derived figures", instructions="With the calculator.",
                           role="data_analyst", tools=["calculator"], depends_on=["query"],
                           expected_output="The derived figures.")
    first, second = RuleEngine().plan(_facts([compute]), ROLE), RuleEngine().plan(_facts([compute]), ROLE)
    assert first.decline is None and first.plan == second.plan
    (sub,) = first.plan.subtasks
    assert (sub.id, sub.depends_on, sub.tools, sub.role) == ("compute", ["query"], ["calculator"], "data_analyst")
    assert "plan version 2" in first.plan.rationale and "ToolLoopError" in first.plan.rationale


def test_the_rule_engine_declines_to_replan_a_subtask_it_did_not_plan():
    foreign = SubtaskFacts(id="interview", title="Interview people", instructions="Ask around.")
    out = RuleEngine().plan(_facts([foreign]), ROLE)
    assert out.plan is None and out.decline.code == "unsupported" and "interview" in out.decline.reason


def test_a_versioned_subtask_plays_the_rule_of_its_base_id():
    facts = ActFacts(goal="What is 6 * 7 + 1?", has_dataset=False,
                     subtask=SubtaskFacts(id="arithmetic-v2", title="Compute the arithmetic"))
    turn = act(facts, [], {"calculator"})
    assert [c.name for c in turn.message.tool_calls] == ["calculator"]
    assert turn.message.tool_calls[0].arguments == {"expression": "6 * 7 + 1"}
