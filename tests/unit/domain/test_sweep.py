"""The deployed orphan sweep (stepcrew.domain.sweep, functions/sweeper): open records whose execution ended without
a terminal record end FAILED ExecutionEndedWithoutRecord with their open sub-tasks; live, waiting-for-review, recent
and finished runs are left alone. Step Functions is a botocore Stubber (no AWS); the store is the in-memory fake and,
for the GSI1 Scan, DynamoRunStore on moto."""

from __future__ import annotations

import importlib.util
from datetime import timedelta

import pytest
from botocore.stub import Stubber

from stepcrew.crew import load_crew
from stepcrew.domain.sweep import SWEEP_CODE, SweepRequest, ended_reason, execution_arn_of, sweep
from stepcrew.models import Plan, RunRequest, RunStatus, SubTask, SubtaskStatus, utcnow
from stepcrew.service import create_run
from stepcrew.store.memory import MemoryRunStore
from stepcrew.wiring import FUNCTIONS_DIR

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:stepcrew-dev-run"
EXEC = "arn:aws:states:us-east-1:123456789012:execution:stepcrew-dev-run:"


def _run(store, status: RunStatus, minutes_ago: int = 30, execution: bool = True, subtasks: bool = False) -> str:
    run = create_run(RunRequest(goal="Compute 6 times 7", tenant="acme"), load_crew("default"), store)
    if subtasks:
        store.put_plan(run.run_id, Plan(subtasks=[SubTask(id=i, title=i, instructions=f"do {i}")
                                                  for i in ("a", "b", "c")]))
        store.update_subtask(run.run_id, "a", {"status": SubtaskStatus.SUCCEEDED})
        store.update_subtask(run.run_id, "b", {"status": SubtaskStatus.RUNNING})
    changes = {"status": status, "updated_at": utcnow() - timedelta(minutes=minutes_ago)}
    if execution:
        changes["execution_arn"] = EXEC + run.run_id
    store.update_run(run.run_id, changes)
    return run.run_id


def _described(sfn, run_id: str, status: str, **extra) -> None:
    sfn.stub.add_response("describe_execution", {"executionArn": EXEC + run_id, "stateMachineArn": MACHINE,
                                                 "status": status, "startDate": "2026-12-01T00:00:00Z", **extra},
                          {"executionArn": EXEC + run_id})


def test_open_runs_whose_execution_ended_are_failed_with_their_open_subtasks(sfn):
    store = MemoryRunStore()
    aborted = _run(store, RunStatus.RUNNING, subtasks=True)
    timed_out = _run(store, RunStatus.WAITING_APPROVAL)
    never_started = _run(store, RunStatus.QUEUED, execution=False)
    _described(sfn, aborted, "ABORTED")
    _described(sfn, timed_out, "TIMED_OUT")
    sfn.stub.add_client_error("describe_execution", service_error_code="ExecutionDoesNotExist",
                              expected_params={"executionArn": EXEC + never_started})
    report = sweep(store, sfn, MACHINE)
    assert sorted(report.swept) == sorted([aborted, timed_out, never_started])
    assert (report.candidates, report.live, report.errors) == (3, 0, 0)
    for run_id, words in ((aborted, "ended ABORTED"), (timed_out, "ended TIMED_OUT"), (never_started, "does not exist")):
        run = store.get_run(run_id)
        assert run.status == RunStatus.FAILED and run.error.code == SWEEP_CODE and words in run.error.message
        assert run.finished_at is not None
        assert [e.data["code"] for _, e in store.list_events(run_id) if e.kind == "run_failed"] == [SWEEP_CODE]
    statuses = {r.subtask_id: r.status for r in store.list_subtasks(aborted)}
    assert statuses == {"a": SubtaskStatus.SUCCEEDED, "b": SubtaskStatus.FAILED, "c": SubtaskStatus.FAILED}


def test_live_recent_waiting_for_review_and_finished_runs_are_left_alone(sfn):
    store = MemoryRunStore()
    live = _run(store, RunStatus.RUNNING)
    recent = _run(store, RunStatus.RUNNING, minutes_ago=1)  # within the grace period: not even described
    review = _run(store, RunStatus.NEEDS_REVIEW)  # answered without an execution
    done = _run(store, RunStatus.SUCCEEDED)
    before = {rid: store.get_run(rid) for rid in (live, recent, review, done)}
    _described(sfn, live, "RUNNING")
    report = sweep(store, sfn, MACHINE)
    assert report.swept == [] and report.live == 1 and report.skipped == 1  # the NEEDS_REVIEW run
    assert {rid: store.get_run(rid) for rid in before} == before


def test_a_run_finished_between_the_describe_and_the_write_keeps_its_outcome(sfn, monkeypatch):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.RUNNING)

    def describe_then_finish(**kwargs):
        store.update_run(run_id, {"status": RunStatus.SUCCEEDED})
        return {"status": "SUCCEEDED"}

    monkeypatch.setattr(sfn, "describe_execution", describe_then_finish)
    report = sweep(store, sfn, MACHINE)
    assert report.swept == [] and report.skipped == 1
    assert store.get_run(run_id).status == RunStatus.SUCCEEDED and store.get_run(run_id).error is None


def test_a_throttled_describe_is_counted_and_left_for_the_next_tick(sfn):
    store = MemoryRunStore()
    run_id = _run(store, RunStatus.RUNNING)
    sfn.stub.add_client_error("describe_execution", service_error_code="ThrottlingException", http_status_code=400)
    report = sweep(store, sfn, MACHINE)
    assert report.errors == 1 and report.swept == []
    assert store.get_run(run_id).status == RunStatus.RUNNING


def test_the_failed_execution_error_and_cause_are_named_and_arns_derived():
    reason = ended_reason({"status": "FAILED", "error": "States.Runtime", "cause": "path $.x not found"})
    assert reason.code == SWEEP_CODE and "ended FAILED (States.Runtime: path $.x not found)" in reason.message
    assert ended_reason({"status": "RUNNING"}) is None
    assert execution_arn_of("r1", None, MACHINE) == EXEC + "r1"
    assert execution_arn_of("r1", "arn:given", MACHINE) == "arn:given"
    with pytest.raises(ValueError):
        SweepRequest.model_validate({"grace_s": 5})
    assert SweepRequest.model_validate({"source": "aws.events", "detail-type": "Scheduled Event"}).grace_s == 300


def test_dynamo_open_run_ids_reads_open_records_of_every_tenant_only(moto_dynamodb):
    from stepcrew.store.dynamodb import DynamoRunStore
    from stepcrew.store.schema import create_table

    create_table(moto_dynamodb, "stepcrew-sweep")
    store = DynamoRunStore("stepcrew-sweep", client=moto_dynamodb)
    ids = {}
    for tenant, status, minutes in (("acme", RunStatus.RUNNING, 30), ("globex", RunStatus.QUEUED, 30),
                                    ("acme", RunStatus.FAILED, 30), ("acme", RunStatus.RUNNING, 0)):
        run = create_run(RunRequest(goal="Compute 6 times 7", tenant=tenant), load_crew("default"), store)
        store.update_run(run.run_id, {"status": status, "updated_at": utcnow() - timedelta(minutes=minutes)})
        ids[(tenant, status, minutes)] = run.run_id
    store.append_messages(ids[("acme", RunStatus.RUNNING, 30)], "a", [])  # other items of a run are not listed
    found = store.open_run_ids(utcnow() - timedelta(minutes=5))
    assert sorted(found) == sorted([ids[("acme", RunStatus.RUNNING, 30)], ids[("globex", RunStatus.QUEUED, 30)]])
    assert len(store.open_run_ids(utcnow(), limit=1)) == 1


def test_the_handler_validates_its_settings_and_returns_the_report(monkeypatch):
    for key, value in {"STEPCREW_TABLE_NAME": "stepcrew-runs", "STEPCREW_STAGE": "test",
                       "POWERTOOLS_SERVICE_NAME": "stepcrew-sweeper", "STEPCREW_RUN_STATE_MACHINE_ARN": MACHINE,
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("handler_sweeper_under_test", FUNCTIONS_DIR / "sweeper" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.store = MemoryRunStore()
    run_id = _run(module.store, RunStatus.RUNNING)
    with Stubber(module.sfn) as stub:
        stub.add_response("describe_execution", {"executionArn": EXEC + run_id, "stateMachineArn": MACHINE,
                                                 "status": "ABORTED", "startDate": "2026-12-01T00:00:00Z"})
        out = module.handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, _Context())
    assert out["swept"] == [run_id] and out["candidates"] == 1
    monkeypatch.delenv("STEPCREW_RUN_STATE_MACHINE_ARN")
    from stepcrew.settings import SettingsError

    with pytest.raises(SettingsError):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


class _Context:
    function_name = "stepcrew-test-sweeper"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepcrew-test-sweeper"
    aws_request_id = "req-1"
