"""`stepcrew runs redrive` use case (stepcrew.domain.redrive): which deployed runs are redriven, the conditional
reopen, and a refused RedriveExecution putting the record back. Step Functions is a botocore Stubber (no AWS)."""

from __future__ import annotations

import boto3
import pytest

from stepcrew.wiring import tool_functions
from stepcrew.crew import load_crew
from stepcrew.domain.redrive import RedriveError, redrive_run
from stepcrew.models import RunError, RunRequest, RunStatus
from stepcrew.service import create_run
from stepcrew.store.memory import MemoryRunStore

#: The agent ASL's tool_functions constant, as a deployed stack fills it.
TOOL_FNS = tool_functions(lambda n: f"arn:aws:lambda:us-east-1:123456789012:function:stepcrew-{n}")

ARN = "arn:aws:states:us-east-1:123456789012:execution:stepcrew-run:"


def _run(store, status: RunStatus, code: str | None = None, tenant: str = "acme") -> str:
    run = create_run(RunRequest(goal="Compute 6 times 7", tenant=tenant), load_crew("default"), store)
    changes = {"status": status, "execution_arn": ARN + run.run_id}
    if code:
        changes["error"] = RunError(code=code, message="why")
    store.update_run(run.run_id, changes)
    return run.run_id


def _described(sfn, run_id: str, status: str, redrive: str = "REDRIVABLE", reason: str | None = None) -> None:
    answer = {"executionArn": ARN + run_id, "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:r",
              "status": status, "startDate": "2026-12-01T00:00:00Z", "redriveStatus": redrive}
    if reason:
        answer["redriveStatusReason"] = reason
    sfn.stub.add_response("describe_execution", answer, {"executionArn": ARN + run_id})


@pytest.mark.parametrize("status, code", [(RunStatus.RUNNING, None), (RunStatus.FAILED, "ExecutionEndedWithoutRecord"),
                                          (RunStatus.FAILED, "LocalRuntimeExited")])
def test_a_run_whose_execution_ended_unrecorded_is_reopened_and_redriven(sfn, status, code):
    store = MemoryRunStore()
    run_id = _run(store, status, code)
    _described(sfn, run_id, "ABORTED")
    sfn.stub.add_response("redrive_execution", {"redriveDate": "2026-12-01T00:00:01Z"}, {"executionArn": ARN + run_id})
    assert redrive_run(store, sfn, run_id, "acme") == ARN + run_id
    run = store.get_run(run_id)
    assert run.status == RunStatus.RUNNING and run.error is None and run.finished_at is None
    assert [e.data.get("via") for _, e in store.list_events(run_id) if e.kind == "run_resumed"] == ["redrive"]


@pytest.mark.parametrize("status, code, words", [
    (RunStatus.SUCCEEDED, None, "nothing to redrive"),
    (RunStatus.DECLINED, None, "nothing to redrive"),
    (RunStatus.NEEDS_REVIEW, None, "review"),
    (RunStatus.FAILED, "BudgetExceededError", "recorded by its workflow"),
])
def test_a_decided_run_is_refused_and_nothing_changes(sfn, status, code, words):
    store = MemoryRunStore()
    run_id = _run(store, status, code)
    before = store.get_run(run_id)
    with pytest.raises(RedriveError, match=words):
        redrive_run(store, sfn, run_id, "acme")
    assert store.get_run(run_id) == before


def test_another_tenants_run_and_an_unknown_run_are_not_found(sfn):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.RUNNING, tenant="other")
    for rid in (run_id, "no-such-run"):
        with pytest.raises(RedriveError, match="no run"):
            redrive_run(store, sfn, rid, "acme")
    assert store.get_run(run_id).status == RunStatus.RUNNING


def test_a_running_or_not_redrivable_execution_is_refused_and_nothing_changes(sfn):
    store = MemoryRunStore()
    running, old = _run(store, RunStatus.RUNNING), _run(store, RunStatus.RUNNING)
    _described(sfn, running, "RUNNING")
    with pytest.raises(RedriveError, match="still RUNNING"):
        redrive_run(store, sfn, running, "acme")
    _described(sfn, old, "FAILED", "NOT_REDRIVABLE", "Execution redrivable period exceeded.")
    with pytest.raises(RedriveError, match="redrivable period exceeded"):
        redrive_run(store, sfn, old, "acme")
    assert store.get_run(running).status == store.get_run(old).status == RunStatus.RUNNING


def test_a_refused_redrive_puts_the_record_back(sfn):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.FAILED, "ExecutionEndedWithoutRecord")
    _described(sfn, run_id, "TIMED_OUT")
    sfn.stub.add_client_error("redrive_execution", service_error_code="ExecutionNotRedrivable",
                              service_message="not redrivable", expected_params={"executionArn": ARN + run_id})
    with pytest.raises(RedriveError, match="ExecutionNotRedrivable"):
        redrive_run(store, sfn, run_id, "acme")
    run = store.get_run(run_id)
    assert run.status == RunStatus.FAILED and run.error.code == "ExecutionEndedWithoutRecord"


def test_a_record_changed_between_the_read_and_the_reopen_is_left_alone(sfn, monkeypatch):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.RUNNING)

    def describe_then_finish(**kwargs):  # another process finishes the run meanwhile
        store.update_run(run_id, {"status": RunStatus.SUCCEEDED})
        return {"status": "ABORTED", "redriveStatus": "REDRIVABLE"}

    monkeypatch.setattr(sfn, "describe_execution", describe_then_finish)
    with pytest.raises(RedriveError, match="changed while"):
        redrive_run(store, sfn, run_id, "acme")
    assert store.get_run(run_id).status == RunStatus.SUCCEEDED


# --------------------------------------------------------------------------------------------- the conditional reopen
# RunStore.reopen_run on both adapters (the in-memory fake and DynamoRunStore on a moto table).

@pytest.fixture
def any_store(run_store):
    return run_store  # tests/unit/conftest.py: both adapters


def _failed(store, code: str = "ExecutionEndedWithoutRecord") -> str:
    from stepcrew.models import utcnow

    run_id = _run(store, RunStatus.RUNNING)
    store.update_run(run_id, {"status": RunStatus.FAILED, "error": RunError(code=code, message="why"),
                              "finished_at": utcnow()})
    return run_id


def test_reopen_turns_the_failed_record_it_read_into_running(any_store):
    run_id = _failed(any_store)
    read = any_store.get_run(run_id)
    reopened = any_store.reopen_run(run_id, read)
    again = any_store.get_run(run_id)
    assert reopened.status == again.status == RunStatus.RUNNING
    assert again.error is None and again.finished_at is None and again.updated_at > read.updated_at
    assert again.goal == read.goal and again.execution_arn == read.execution_arn  # nothing else touched


@pytest.mark.parametrize("change", [
    {"error": RunError(code="BudgetExceededError", message="spent")},  # failed again, another reason
    {"status": RunStatus.SUCCEEDED, "error": None},
    {"finished_at": "later"},  # the same failure, written again later
])
def test_reopen_of_a_record_changed_since_it_was_read_conflicts_and_writes_nothing(any_store, change):
    from datetime import timedelta

    from stepcrew.store.base import RunStateConflictError

    run_id = _failed(any_store)
    read = any_store.get_run(run_id)
    if change.get("finished_at") == "later":
        change = {"finished_at": read.finished_at + timedelta(seconds=5)}
    any_store.update_run(run_id, change)
    now = any_store.get_run(run_id)
    with pytest.raises(RunStateConflictError, match="changed since it was read"):
        any_store.reopen_run(run_id, read)
    assert any_store.get_run(run_id) == now


def test_reopen_refuses_a_status_outside_the_given_ones_and_unknown_or_foreign_records(any_store):
    from stepcrew.store.base import RunNotFoundError, RunStateConflictError

    run_id = _run(any_store, RunStatus.SUCCEEDED)
    read = any_store.get_run(run_id)
    with pytest.raises(RunStateConflictError, match="SUCCEEDED"):
        any_store.reopen_run(run_id, read)  # default: FAILED only
    with pytest.raises(RunStateConflictError):
        any_store.reopen_run(run_id, read, statuses=[RunStatus.FAILED, RunStatus.RUNNING])
    assert any_store.get_run(run_id) == read
    with pytest.raises(ValueError, match="record of run"):
        any_store.reopen_run("another-run", read)
    ghost = read.model_copy(update={"run_id": "ghost", "status": RunStatus.FAILED})
    with pytest.raises(RunNotFoundError):
        any_store.reopen_run("ghost", ghost)


def test_reopen_of_an_open_record_given_its_status(any_store):
    run_id = _run(any_store, RunStatus.WAITING_APPROVAL)
    read = any_store.get_run(run_id)
    assert any_store.reopen_run(run_id, read, statuses=[RunStatus.WAITING_APPROVAL]).status == RunStatus.RUNNING


def test_a_failed_record_refailed_with_another_code_meanwhile_is_not_redriven(sfn, monkeypatch):
    store = MemoryRunStore()
    run_id = _failed(store)
    store.update_run(run_id, {"execution_arn": ARN + run_id})

    def describe_then_refail(**kwargs):  # the sweep, or an operator, records another reason meanwhile
        store.update_run(run_id, {"error": RunError(code="LocalRuntimeExited", message="other")})
        return {"status": "ABORTED", "redriveStatus": "REDRIVABLE"}

    monkeypatch.setattr(sfn, "describe_execution", describe_then_refail)
    with pytest.raises(RedriveError, match="changed while"):
        redrive_run(store, sfn, run_id, "acme")
    run = store.get_run(run_id)
    assert run.status == RunStatus.FAILED and run.error.code == "LocalRuntimeExited"


# --------------------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("case", ["unknown", "succeeded", "recorded_failure"])
def test_cli_redrive_bad_input_is_one_line_exit_2_and_changes_nothing(sfn, monkeypatch, case):
    from typer.testing import CliRunner

    import stepcrew.cli as cli

    store = MemoryRunStore()
    run_id = {"unknown": lambda: "no-such-run", "succeeded": lambda: _run(store, RunStatus.SUCCEEDED),
              "recorded_failure": lambda: _run(store, RunStatus.FAILED, "BudgetExceededError")}[case]()
    before = store.get_run(run_id) if case != "unknown" else None
    monkeypatch.setattr(cli, "_aws_backend", lambda: (store, None))
    monkeypatch.setattr(boto3, "client", lambda *a, **k: sfn)  # the Stubber: any call to AWS would fail the test
    result = CliRunner().invoke(cli.app, ["runs", "redrive", run_id, "--aws", "--tenant", "acme"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    assert {"unknown": "no run", "succeeded": "ended SUCCEEDED",
            "recorded_failure": "recorded by its workflow"}[case] in lines[0]
    if before is not None:
        assert store.get_run(run_id) == before


# --------------------------------------------------------------------------------------------- the swept sub-tasks
# A run the deployed sweep marked FAILED ExecutionEndedWithoutRecord has its open sub-tasks closed FAILED RunFailed
# (finalize.close_open_subtasks); the redrive reopens those, and only those (finalize.reopen_cut_off_subtasks, shared
# with `stepcrew runs resume`).
SWEEP_MESSAGE = ("the run's execution ended ABORTED without recording the run's outcome; `stepcrew runs redrive` may "
                 "continue it within 14 days")


def _swept(store) -> str:
    """A deployed run as the sweep leaves it: ``started`` was RUNNING (started), ``waiting`` PENDING, ``own`` had
    FAILED on its own (turn limit), ``done`` SUCCEEDED; then the run FAILED ExecutionEndedWithoutRecord."""
    from stepcrew.domain.finalize import fail_unfinished_run
    from stepcrew.domain.sweep import SWEEP_CODE, ended_reason
    from stepcrew.models import Plan, SubTask, SubtaskStatus, utcnow

    run_id = _run(store, RunStatus.RUNNING)
    store.put_plan(run_id, Plan(subtasks=[SubTask(id=i, title=i, instructions=f"do {i}")
                                          for i in ("started", "waiting", "own", "done")]))
    store.update_subtask(run_id, "started", {"status": SubtaskStatus.RUNNING, "started_at": utcnow(), "turns": 2})
    store.update_subtask(run_id, "own", {"status": SubtaskStatus.FAILED, "started_at": utcnow(),
                                         "finished_at": utcnow(),
                                         "error": RunError(code="MaxTurnsExceededError",
                                                           message="more than 12 model calls; the run ended "
                                                                   "ExecutionEndedWithoutRecord later")})
    store.update_subtask(run_id, "done", {"status": SubtaskStatus.SUCCEEDED, "started_at": utcnow(),
                                          "finished_at": utcnow(), "output": "42"})
    reason = ended_reason({"status": "ABORTED"})
    assert (reason.code, reason.message) == (SWEEP_CODE, SWEEP_MESSAGE)  # what the sweep writes
    assert fail_unfinished_run(store, run_id, code=reason.code, message=reason.message) is True
    return run_id


def _subtasks(store, run_id: str) -> dict:
    return {s.subtask_id: s for s in store.list_subtasks(run_id)}


def test_a_swept_run_is_redriven_with_the_subtasks_the_sweep_closed_reopened(sfn):
    from stepcrew.models import SubtaskStatus

    store = MemoryRunStore()
    run_id = _swept(store)
    swept = _subtasks(store, run_id)
    assert {k: (s.status, s.error.code if s.error else None) for k, s in swept.items()} == {
        "started": (SubtaskStatus.FAILED, "RunFailed"), "waiting": (SubtaskStatus.FAILED, "RunFailed"),
        "own": (SubtaskStatus.FAILED, "MaxTurnsExceededError"), "done": (SubtaskStatus.SUCCEEDED, None)}
    _described(sfn, run_id, "ABORTED")
    sfn.stub.add_response("redrive_execution", {"redriveDate": "2026-12-01T00:00:01Z"}, {"executionArn": ARN + run_id})

    assert redrive_run(store, sfn, run_id, "acme") == ARN + run_id

    assert store.get_run(run_id).status == RunStatus.RUNNING
    after = _subtasks(store, run_id)
    started, waiting = after["started"], after["waiting"]
    assert started.status == SubtaskStatus.RUNNING and started.error is None and started.finished_at is None
    assert started.started_at == swept["started"].started_at and started.turns == 2  # its progress kept
    assert waiting.status == SubtaskStatus.PENDING and waiting.error is None and waiting.finished_at is None
    assert waiting.started_at is None
    assert after["own"] == swept["own"] and after["done"] == swept["done"]  # its own failure stays, and the success
    resumed = [e.data for _, e in store.list_events(run_id) if e.kind == "run_resumed"]
    assert resumed == [{"via": "redrive", "after": "ExecutionEndedWithoutRecord", "execution_status": "ABORTED",
                        "subtasks_reopened": 2}]


def test_a_refused_redrive_puts_the_record_and_the_subtasks_back(sfn, any_store):
    store = any_store
    run_id = _swept(store)
    run_before, subtasks_before = store.get_run(run_id), _subtasks(store, run_id)
    events_before = store.list_events(run_id)
    _described(sfn, run_id, "ABORTED")
    sfn.stub.add_client_error("redrive_execution", service_error_code="ExecutionLimitExceeded",
                              service_message="too many", expected_params={"executionArn": ARN + run_id})

    with pytest.raises(RedriveError, match="ExecutionLimitExceeded.*sub-tasks are as they were"):
        redrive_run(store, sfn, run_id, "acme")

    run = store.get_run(run_id)
    assert run.model_dump(exclude={"updated_at"}) == run_before.model_dump(exclude={"updated_at"})
    assert _subtasks(store, run_id) == subtasks_before  # FAILED again, with their error and finished_at
    assert store.list_events(run_id) == events_before  # no run_resumed


def test_a_store_failure_while_reopening_the_subtasks_puts_back_what_was_reopened(sfn):
    from domain_helpers import FailOnce

    from stepcrew.store.base import StoreError

    memory = MemoryRunStore()
    run_id = _swept(memory)
    run_before, subtasks_before = memory.get_run(run_id), _subtasks(memory, run_id)

    class Failing(FailOnce):  # the second sub-task write fails (a throttled DynamoDB write after its retries)
        def __getattr__(self, name):
            attr = super().__getattr__(name)
            if name != "update_subtask":
                return attr

            def update(*args, **kwargs):
                try:
                    return attr(*args, **kwargs)
                except ConnectionError as exc:
                    raise StoreError(str(exc)) from exc

            return update

    store = Failing(memory, "update_subtask", skip=1)
    _described(sfn, run_id, "ABORTED")  # RedriveExecution is never called (the Stubber would fail the test)
    with pytest.raises(RedriveError, match="could not be reopened"):
        redrive_run(store, sfn, run_id, "acme")
    assert store.failed
    assert memory.get_run(run_id).model_dump(exclude={"updated_at"}) == run_before.model_dump(exclude={"updated_at"})
    assert _subtasks(memory, run_id) == subtasks_before


@pytest.mark.parametrize("error, reopened", [
    (RunError(code="RunFailed", message="the run failed before this sub-task finished: ExecutionEndedWithoutRecord: "
                                        "the run's execution ended ABORTED"), True),  # the sweep's close
    (RunError(code="RunFailed", message="the run failed before this sub-task finished: LocalRuntimeExited: the "
                                        "local runtime exited"), True),  # the local cut-off's close
    (RunError(code="LocalRuntimeExited", message="older records"), True),
    # closed because the run failed for a recorded reason that only mentions a cut-off code
    (RunError(code="RunFailed", message="the run failed before this sub-task finished: BudgetExceededError: after "
                                        "ExecutionEndedWithoutRecord"), False),
    (RunError(code="RunFailed", message="ExecutionEndedWithoutRecord"), False),
    # failed on its own
    (RunError(code="ToolError", message="the run failed before this sub-task finished: ExecutionEndedWithoutRecord: "
                                        "quoted by a tool"), False),
    (RunError(code="MaxTurnsExceededError", message="more than 12 model calls"), False),
])
def test_only_a_subtask_a_cut_off_closed_is_reopened(error, reopened):
    from stepcrew.domain.finalize import reopen_cut_off_subtasks
    from stepcrew.domain.redrive import REDRIVABLE_CODES
    from stepcrew.models import Plan, SubTask, SubtaskStatus, utcnow

    store = MemoryRunStore()
    run_id = _run(store, RunStatus.RUNNING)
    store.put_plan(run_id, Plan(subtasks=[SubTask(id="a", title="a", instructions="do a")]))
    store.update_subtask(run_id, "a", {"status": SubtaskStatus.FAILED, "error": error, "finished_at": utcnow()})
    before = store.get_subtask(run_id, "a")
    assert [r.subtask_id for r in reopen_cut_off_subtasks(store, run_id, REDRIVABLE_CODES)] == (["a"] if reopened
                                                                                                else [])
    after = store.get_subtask(run_id, "a")
    assert after == (before.model_copy(update={"status": SubtaskStatus.PENDING, "error": None, "finished_at": None})
                     if reopened else before)


def test_the_redriven_subtask_agent_loop_goes_on_from_its_conversation(sfn, store, make_run, use_model):
    """After the sweep the sub-task is FAILED (its agent loop would refuse it: SubtaskStateError); after the redrive
    the rerun child replays the stored tool call (no model call) and finishes with the next model answer."""
    from domain_helpers import RUN_ID, two_step_plan

    from stepcrew.domain.agent import agent_turn
    from stepcrew.domain.finalize import fail_unfinished_run
    from stepcrew.engines.testing import ScriptedModel, call_tool, reply
    from stepcrew.events import AgentTurnInput
    from stepcrew.models import SubtaskStatus, ToolResult

    model = ScriptedModel([call_tool("describe_dataset", {}, call_id="c1"), reply("Gentoo are heaviest.")])
    make_run(provider=use_model(model), data="file:///data/penguins.csv", execution_arn=ARN + RUN_ID, tenant="acme")
    store.put_plan(RUN_ID, two_step_plan())
    first = agent_turn(AgentTurnInput(tool_functions=TOOL_FNS, run_id=RUN_ID, subtask_id="compare"), store)
    assert [c.call_id for c in first.calls] == ["c1"] and len(model.requests) == 1
    assert fail_unfinished_run(store, RUN_ID, code="ExecutionEndedWithoutRecord", message=SWEEP_MESSAGE)
    assert store.get_subtask(RUN_ID, "compare").status == SubtaskStatus.FAILED  # the agent loop would refuse it

    _described(sfn, RUN_ID, "ABORTED")
    sfn.stub.add_response("redrive_execution", {"redriveDate": "2026-12-01T00:00:01Z"}, {"executionArn": ARN + RUN_ID})
    redrive_run(store, sfn, RUN_ID, "acme")

    replayed = agent_turn(AgentTurnInput(tool_functions=TOOL_FNS, run_id=RUN_ID, subtask_id="compare"), store)  # the rerun child's first turn
    assert [c.call_id for c in replayed.calls] == ["c1"] and len(model.requests) == 1
    result = ToolResult(call_id="c1", name="describe_dataset", ok=True, content={"rows": 344})
    done = agent_turn(AgentTurnInput(tool_functions=TOOL_FNS, run_id=RUN_ID, subtask_id="compare", tool_results=[result]), store)
    assert done.status == SubtaskStatus.SUCCEEDED and len(model.requests) == 2
    assert store.get_subtask(RUN_ID, "compare").output == "Gentoo are heaviest."
