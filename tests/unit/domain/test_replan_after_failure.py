"""Replanning after a failed sub-task (stepcrew.domain.replan), against both store adapters: the done sub-tasks and
their outputs are kept, the failed and unrun ones are replaced by new (versioned) ids, the engine is told the
failure's type and a masked cause, plan versions are recorded, and the replan is bounded and never spends past a
budget."""

from __future__ import annotations

import json

import pytest
from domain_helpers import TEST_PROVIDER

from stepcrew.domain.replan import (
    ReplanFailedInput,
    ReplanInput,
    initial_version,
    merge_replan,
    replan_after_failure,
    replan_failed,
)
from stepcrew.engines.testing import ScriptedModel, label, reply
from stepcrew.events import StepFunctionsError
from stepcrew.models import (
    Budget,
    Plan,
    PlanValidationError,
    Run,
    RunError,
    RunStatus,
    SubTask,
    SubtaskStatus,
)
from stepcrew.tools.registry import known_tools

RUN = "replan-run"
CHILD_FAILED = StepFunctionsError(Error="States.TaskFailed", Cause='{"status": "FAILED"}')
LOOP_MESSAGE = ("sub-task fetch asked for the same query_dataset call with the same arguments 3 times: a loop, "
                "ended (ann@example.com at 10.1.2.3)")


def _plan() -> Plan:
    """``count`` and ``fetch`` side by side (wave 0), ``write`` after ``fetch`` (wave 1)."""
    return Plan(subtasks=[
        SubTask(id="count", title="Count rows", instructions="Count the rows.", tools=["query_dataset"],
                role="data_analyst"),
        SubTask(id="fetch", title="Fetch means", instructions="Mean per species.", tools=["query_dataset"],
                role="data_analyst"),
        SubTask(id="write", title="Write it up", instructions="Write a section.", depends_on=["fetch"],
                tools=["write_section"], role="writer"),
    ], rationale="v1")


def _setup(store, crew, *, code="ToolLoopError", message=LOOP_MESSAGE, versions=None, **run_fields) -> Plan:
    """A RUNNING run whose v1 plan ran wave 0: ``count`` SUCCEEDED, ``fetch`` FAILED (``code``), ``write`` PENDING."""
    store.create_run(Run(run_id=RUN, goal="Compare the penguin species by body mass.", crew=crew,
                         provider=TEST_PROVIDER, status=RunStatus.RUNNING, routing={"cache": False}, **run_fields))
    plan = _plan()
    store.put_plan(RUN, plan)
    for version in versions or [initial_version(RUN, plan)]:
        store.put_plan_version(version)
    store.update_subtask(RUN, "count", {"status": SubtaskStatus.SUCCEEDED, "output": "344 rows."})
    store.update_subtask(RUN, "fetch", {"status": SubtaskStatus.FAILED, "error": RunError(code=code, message=message)})
    return plan


def _replan(reply_plan: dict) -> str:
    return json.dumps(reply_plan)


NEW = {"subtasks": [
    {"id": "fetch", "title": "Fetch means again", "instructions": "One query per species.", "role": "data_analyst",
     "tools": ["query_dataset"]},
    {"id": "write", "title": "Write it up", "instructions": "Write a section.", "role": "writer",
     "tools": ["write_section"], "depends_on": ["fetch", "count"]}], "rationale": "avoid the loop"}


def test_a_replan_keeps_done_subtasks_versions_reused_ids_and_records_plan_versions(run_store, crew, use_model):
    # Given: a run whose sub-task fetch failed after count succeeded, and a planner that re-issues fetch and write
    model = ScriptedModel(by_purpose={"replan": [reply(_replan(NEW))]})
    use_model(model)
    _setup(run_store, crew)
    # When
    out = replan_after_failure(ReplanInput(action="replan_after_failure", run_id=RUN, error=CHILD_FAILED),
                               run_store)
    # Then: valid, the reused ids are versioned, and the waves hold only the new sub-tasks, numbered after v1's two
    assert out.valid and out.replannable and not out.exhausted and out.version == 2
    assert out.waves == [[], [], ["fetch-v2"], ["write-v2"]] and out.subtask_count == 2
    plan = run_store.get_plan(RUN)
    assert [s.id for s in plan.subtasks] == ["count", "fetch-v2", "write-v2"]
    assert plan.get("write-v2").depends_on == ["fetch-v2", "count"]
    records = {r.subtask_id: r for r in run_store.list_subtasks(RUN)}
    assert set(records) == {"count", "fetch-v2", "write-v2"}
    assert records["count"].status == SubtaskStatus.SUCCEEDED and records["count"].output == "344 rows."
    assert records["fetch-v2"].status == records["write-v2"].status == SubtaskStatus.PENDING
    # plan versions: v1 superseded with its sub-tasks' final statuses, v2 made for the failure
    v1, v2 = run_store.list_plan_versions(RUN)
    assert v1.superseded_at is not None
    assert [(i.id, i.status, i.error) for i in v1.subtasks] == [
        ("count", SubtaskStatus.SUCCEEDED, None), ("fetch", SubtaskStatus.FAILED, "ToolLoopError"),
        ("write", SubtaskStatus.PENDING, None)]
    assert v2.version == 2 and v2.kept == ["count"] and v2.replaced == ["fetch", "write"]
    assert v2.reason.startswith("sub-task fetch failed: ToolLoopError: ") and v2.failure.code == "ToolLoopError"
    assert [i.id for i in v2.subtasks] == ["fetch-v2", "write-v2"] and v2.wave_offset == 2
    assert v2.waves == [["fetch-v2"], ["write-v2"]]
    # what the planner was told: the failure's type and a masked cause, the kept sub-task and its output
    (request,) = model.requests
    assert label(request).purpose == "replan"
    prompt = request.messages[-1].content
    assert "Sub-task fetch failed with ToolLoopError" in prompt and "- count: Count rows" in prompt
    assert "344 rows." in prompt
    assert "ann@example.com" not in prompt and "10.1.2.3" not in prompt and "[EMAIL_ADDRESS]" in prompt
    kinds = [e.kind for _, e in run_store.list_events(RUN)]
    assert "replanned" in kinds and kinds[-1] == "plan_ready"


def test_an_invalid_replan_is_asked_again_with_its_error(run_store, crew, use_model):
    model = ScriptedModel(by_purpose={"replan": [reply("not a plan"), reply(_replan(NEW))]})
    use_model(model)
    _setup(run_store, crew)
    inp = ReplanInput(action="replan_after_failure", run_id=RUN, error=CHILD_FAILED)
    first = replan_after_failure(inp, run_store)
    assert first.retry and not first.valid and first.next_attempt == 2  # invalid reply: not kept in the ledger
    again = replan_after_failure(inp.model_copy(update={"attempt": 2, "previous_error": first.error}), run_store)
    assert again.valid and len(model.requests) == 2
    assert "was rejected" in model.requests[1].messages[-1].content


def test_the_bound_exhausts_replanning_with_the_original_failure(run_store, crew, use_model):
    # Given: a run that replanned once already (v2 made for an EmptyAnswerError of 'first') and whose v2 failed too
    model = ScriptedModel()  # any engine call would raise ScriptExhaustedError
    use_model(model)
    plan = _plan()
    v1 = initial_version(RUN, plan)
    v2 = v1.model_copy(update={"version": 2, "reason": "sub-task first failed: EmptyAnswerError: no text twice",
                               "failure": RunError(code="EmptyAnswerError", message="no text twice")})
    _setup(run_store, crew, versions=[v1, v2])
    # When
    out = replan_after_failure(ReplanInput(action="replan_after_failure", run_id=RUN, error=CHILD_FAILED),
                               run_store)
    # Then: no call; the failure is the ORIGINAL one (v2's cause), plus why replanning ended
    assert out.exhausted and not out.valid and model.requests == []
    assert out.failure.Error == "EmptyAnswerError"
    assert out.failure.Cause.startswith("sub-task first failed: EmptyAnswerError: no text twice; replanning "
                                        "exhausted: 1 of at most 1 replan(s) used")
    assert "sub-task fetch failed: ToolLoopError" in out.failure.Cause
    assert run_store.get_plan(RUN) == plan  # nothing replaced


@pytest.mark.parametrize("case", ["disabled", "budget_error", "budget_reached", "not_a_subtask_failure"])
def test_no_replan_when_disabled_over_budget_or_not_a_subtask_failure(run_store, crew, use_model, case):
    model = ScriptedModel()
    use_model(model)
    fields = {"budget": Budget(max_replans=0)} if case == "disabled" else {}
    if case == "budget_reached":
        fields = {"budget": Budget(max_tokens=100)}
    plan = _setup(run_store, crew, code="BudgetExceededError" if case == "budget_error" else "ToolLoopError",
                  **fields)
    if case == "budget_reached":
        run_store.add_usage(RUN, "m", 60, 40, 0.0)  # 100 tokens: the cap is reached
    error = (StepFunctionsError(Error="StepFunctions.ExecutionLimitExceededException", Cause="too many")
             if case == "not_a_subtask_failure" else CHILD_FAILED)
    out = replan_after_failure(ReplanInput(action="replan_after_failure", run_id=RUN, error=error), run_store)
    assert not out.replannable and not out.valid and not out.exhausted and not out.retry
    assert model.requests == [] and run_store.get_plan(RUN) == plan
    assert len(run_store.list_plan_versions(RUN)) == 1


def test_a_declined_replan_exhausts_replanning(run_store, crew, use_model):
    use_model(ScriptedModel(by_purpose={"replan": [reply('{"decline": "the data has no species column"}')]}))
    _setup(run_store, crew)
    out = replan_after_failure(ReplanInput(action="replan_after_failure", run_id=RUN, error=CHILD_FAILED),
                               run_store)
    assert out.exhausted and out.failure.Error == "ToolLoopError" and not out.declined
    assert "replanning exhausted: the planner declined to replan: the data has no species column" in \
        out.failure.Cause
    assert run_store.get_run(RUN).decline is None  # a replan that declines fails the run, it never DECLINES it


def test_an_invalid_replan_on_the_last_attempt_exhausts_replanning(run_store, crew, use_model):
    bad = {"subtasks": [{"id": "w", "title": "t", "instructions": "i", "depends_on": ["fetch"]}]}
    use_model(ScriptedModel(by_purpose={"replan": [reply(json.dumps(bad))]}))
    _setup(run_store, crew)
    out = replan_after_failure(ReplanInput(action="replan_after_failure", run_id=RUN, error=CHILD_FAILED,
                                           attempt=3), run_store)
    assert out.exhausted and not out.retry
    assert "still invalid after 3 attempt(s): sub-task 'w' depends on 'fetch', which is neither a kept" in \
        out.failure.Cause


def test_a_failed_replan_call_is_recorded_with_the_original_failure(run_store, crew):
    _setup(run_store, crew)
    out = replan_failed(ReplanFailedInput(action="replan_failed", run_id=RUN, error=CHILD_FAILED,
                                          replan_error=StepFunctionsError(Error="ModelUnavailableError")), run_store)
    assert out.exhausted and out.failure.Error == "ToolLoopError"
    assert out.failure.Cause.endswith("replanning exhausted: the planner's replan call failed (ModelUnavailableError)")


def test_merge_rejects_too_many_subtasks_and_listing_kept_ones(crew):
    plan = _plan()
    many = Plan(subtasks=[SubTask(id=f"n{i}", title="t", instructions="i", role="writer") for i in range(8)])
    with pytest.raises(PlanValidationError, match="1 kept and 8 new sub-tasks are 9, over the limit of 8"):
        merge_replan(plan, ["count"], many, {"count", "fetch", "write"}, 2, known_tools(), crew)
    again = Plan(subtasks=[SubTask(id="count", title="t", instructions="i", role="writer")])
    with pytest.raises(PlanValidationError, match="are kept"):
        merge_replan(plan, ["count"], again, {"count", "fetch", "write"}, 2, known_tools(), crew)


def test_put_plan_keeps_only_records_that_exist(run_store, crew):
    _setup(run_store, crew)
    with pytest.raises(KeyError):
        run_store.put_plan(RUN, _plan(), keep=["nope"])
    assert {r.subtask_id: r.status for r in run_store.list_subtasks(RUN)}["count"] == SubtaskStatus.SUCCEEDED


def test_a_retried_replan_makes_no_second_engine_call_and_gives_the_same_plan(run_store, crew, use_model):
    # Given: the first attempt dies while switching the plan (after the engine call and the new version were stored)
    from domain_helpers import FailOnce

    model = ScriptedModel(by_purpose={"replan": [reply(_replan(NEW))]})  # one reply only: a second call raises
    use_model(model)
    _setup(run_store, crew)
    inp = ReplanInput(action="replan_after_failure", run_id=RUN, error=CHILD_FAILED)
    with pytest.raises(ConnectionError):
        replan_after_failure(inp, FailOnce(run_store, "put_plan"))
    assert [v.version for v in run_store.list_plan_versions(RUN)] == [1, 2]  # v2 written, the plan not switched
    # When: the state machine's Retry delivers the same event, twice (a redelivery after success too)
    again = replan_after_failure(inp, run_store)
    replay = replan_after_failure(inp, run_store)
    # Then: one engine call in all, the same plan, and the records of the switch
    assert again.valid and replay == again and len(model.requests) == 1
    assert again.waves == [[], [], ["fetch-v2"], ["write-v2"]]
    assert {r.subtask_id for r in run_store.list_subtasks(RUN)} == {"count", "fetch-v2", "write-v2"}
    assert [v.version for v in run_store.list_plan_versions(RUN)] == [1, 2]
