"""The dev server's admission control (:mod:`stepcrew.local.admission`): at most ``max_runs`` executions at once, the
rest queued FIFO, started as executions end, and failed with their reason when they cannot start or the server stops.

Driven by state, not sleeps: the "running executions" the admission sees is a set the test owns, and dispatch passes
are called directly (:meth:`AdmissionStarter.pump`) except in the one test of the background thread."""

from __future__ import annotations

import threading

import pytest

from stepcrew.api.dev import DevConfigError, dev_admission_limits, queue_full_response, serve
from stepcrew.crew import load_crew
from stepcrew.local.admission import (
    DEFAULT_MAX_QUEUED,
    DEFAULT_MAX_RUNS,
    NEVER_STARTED_MESSAGE,
    AdmissionClosed,
    AdmissionStarter,
    parse_limit,
)
from stepcrew.local.runtime import CUT_OFF_CODE
from stepcrew.models import RunRequest, RunStatus
from stepcrew.service import RunStartError, create_run, start_run
from stepcrew.store.memory import MemoryRunStore

def predicted(run_id: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:stepcrew-local-run:{run_id}"


class FakeSfn:
    """Starts "executions" by adding their name to ``running``; a test ends one by removing it."""

    def __init__(self, fail_for: set[str] = frozenset()) -> None:
        self.running: set[str] = set()
        self.started: list[str] = []
        self.fail_for = set(fail_for)
        self.started_event = threading.Event()

    def start_run(self, run_id: str) -> str:
        if run_id in self.fail_for:
            raise ConnectionError("state machine unreachable")
        self.running.add(run_id)
        self.started.append(run_id)
        self.started_event.set()
        return predicted(run_id)


def make(store, sfn: FakeSfn, max_runs: int = 1, max_queued: int = 10) -> AdmissionStarter:
    return AdmissionStarter(sfn, store, running=lambda: set(sfn.running), arn_of=predicted, max_runs=max_runs,
                            max_queued=max_queued)


def post(store, admission) -> str:
    """What POST /runs does: write the record (QUEUED), then ask the starter (service.start_run)."""
    run = create_run(RunRequest(goal="Compute 6 * 7", tenant="acme"), load_crew("default"), store)
    return start_run(run, store, admission).run_id


def test_start_run_only_queues_and_names_the_execution_arn_to_come():
    store, sfn = MemoryRunStore(), FakeSfn()
    admission = make(store, sfn)
    run_id = post(store, admission)
    assert sfn.started == []  # nothing started inside the request
    run = store.get_run(run_id)
    assert run.status == RunStatus.QUEUED and run.execution_arn == predicted(run_id)
    assert admission.position(run_id) == 1 and admission.queued() == [run_id]


def test_at_most_max_runs_start_and_the_rest_start_in_order_as_executions_end():
    store, sfn = MemoryRunStore(), FakeSfn()
    admission = make(store, sfn, max_runs=2)
    ids = [post(store, admission) for _ in range(5)]
    assert admission.pump() == ids[:2] and sfn.started == ids[:2]
    assert [admission.position(r) for r in ids] == [None, None, 1, 2, 3]
    assert admission.pump() == []  # both slots busy: nothing more
    sfn.running.discard(ids[1])  # the second run's execution ended
    assert admission.pump() == [ids[2]]
    sfn.running.clear()
    assert admission.pump() == ids[3:]
    assert sfn.started == ids and admission.queued() == []


def test_executions_not_started_by_the_admission_hold_slots_too():
    store, sfn = MemoryRunStore(), FakeSfn()
    admission = make(store, sfn, max_runs=2)
    sfn.running.update({"scheduled-run-a", "scheduled-run-b"})  # e.g. runs a scheduled event started
    run_id = post(store, admission)
    assert admission.pump() == [] and admission.position(run_id) == 1
    sfn.running.discard("scheduled-run-a")
    assert admission.pump() == [run_id]


def test_a_queued_run_that_cannot_start_is_failed_with_the_reason_and_the_next_one_starts():
    store = MemoryRunStore()
    sfn = FakeSfn()
    admission = make(store, sfn, max_runs=1)
    bad, good = post(store, admission), post(store, admission)
    sfn.fail_for.add(bad)
    assert admission.pump() == [bad, good]
    failed = store.get_run(bad)
    assert failed.status == RunStatus.FAILED and failed.error.code == "ConnectionError"
    assert "state machine unreachable" in failed.error.message and failed.finished_at is not None
    assert [e.kind for _, e in store.list_events(bad)][-1] == "run_failed"
    assert sfn.started == [good] and store.get_run(good).status == RunStatus.QUEUED  # its first handler sets RUNNING


def test_close_fails_the_runs_that_never_started_and_refuses_new_ones():
    store, sfn = MemoryRunStore(), FakeSfn()
    admission = make(store, sfn, max_runs=1)
    first, second, third = (post(store, admission) for _ in range(3))
    admission.pump()  # first runs; second and third wait
    store.update_run(third, {"status": RunStatus.RUNNING})  # e.g. already picked up elsewhere: not ours to fail
    assert admission.close() == [second]
    never = store.get_run(second)
    assert never.status == RunStatus.FAILED and never.error.code == CUT_OFF_CODE == "LocalRuntimeExited"
    assert never.error.message == NEVER_STARTED_MESSAGE
    assert store.get_run(third).status == RunStatus.RUNNING
    assert store.get_run(first).status == RunStatus.QUEUED  # started: the runtime's exit handles its execution
    assert admission.queued() == [] and admission.close() == []  # idempotent

    with pytest.raises(RunStartError) as info:  # service.start_run turns the refusal into RunStartError
        post(store, admission)
    assert isinstance(info.value.__cause__, AdmissionClosed)
    refused = [r for r in store.list_runs("acme", limit=10)[0] if r.run_id not in (first, second, third)]
    assert len(refused) == 1 and refused[0].status == RunStatus.FAILED  # recorded, never a QUEUED orphan


def test_full_counts_the_queue_only():
    store, sfn = MemoryRunStore(), FakeSfn()
    admission = make(store, sfn, max_runs=1, max_queued=2)
    post(store, admission)
    assert not admission.full()
    post(store, admission)
    assert admission.full()
    admission.pump()  # one leaves the queue for a slot
    assert not admission.full()


def test_the_dispatcher_thread_starts_queued_runs_when_a_slot_frees():
    store, sfn = MemoryRunStore(), FakeSfn()
    admission = AdmissionStarter(sfn, store, running=lambda: set(sfn.running), arn_of=predicted, max_runs=1,
                                 tick_s=0.01)
    admission.start()
    try:
        first = post(store, admission)
        assert sfn.started_event.wait(10) and sfn.started == [first]
        sfn.started_event.clear()
        second = post(store, admission)
        assert admission.position(second) == 1  # the slot is taken: it waits
        sfn.running.clear()  # the first execution ends
        assert sfn.started_event.wait(10) and sfn.started == [first, second]
    finally:
        admission.close()


@pytest.mark.parametrize("raw, expected", [(None, 7), ("", 7), (" 3 ", 3), ("1", 1), ("64", 64)])
def test_parse_limit_accepts_whole_numbers_in_range(raw, expected):
    assert parse_limit("X", raw, 7, 64) == expected


@pytest.mark.parametrize("raw", ["0", "65", "-1", "abc", "2.5", "1e3"])
def test_parse_limit_refuses_anything_else_naming_the_variable(raw):
    with pytest.raises(ValueError, match=r"^STEPCREW_DEV_MAX_RUNS must be a whole number from 1 to 64"):
        parse_limit("STEPCREW_DEV_MAX_RUNS", raw, 4, 64)


def test_dev_limits_read_the_environment(monkeypatch):
    monkeypatch.delenv("STEPCREW_DEV_MAX_RUNS", raising=False)
    monkeypatch.delenv("STEPCREW_DEV_MAX_QUEUED", raising=False)
    assert dev_admission_limits() == (DEFAULT_MAX_RUNS, DEFAULT_MAX_QUEUED)
    monkeypatch.setenv("STEPCREW_DEV_MAX_RUNS", "2")
    monkeypatch.setenv("STEPCREW_DEV_MAX_QUEUED", "5")
    assert dev_admission_limits() == (2, 5)
    assert dev_admission_limits(max_runs=1) == (1, 5)


def test_serve_refuses_a_bad_maximum_before_starting_anything(monkeypatch, tmp_path):
    monkeypatch.setenv("STEPCREW_DEV_MAX_RUNS", "many")
    with pytest.raises(DevConfigError, match="STEPCREW_DEV_MAX_RUNS"):
        serve(port=0, state_dir=tmp_path / "state")
    assert not (tmp_path / "state").exists()  # no runtime, no state folder


def test_queue_full_answer_is_a_429_with_retry_after():
    import json

    answer = queue_full_response(3)
    assert answer["statusCode"] == 429 and int(answer["headers"]["Retry-After"]) >= 1
    assert json.loads(answer["body"])["error"]["code"] == "dev_queue_full"


def test_partition_queries_answer_like_moto_without_reading_other_partitions(moto_dynamodb):
    """``stepcrew dev``'s Query by partition (:func:`stepcrew.api.dev.partition_queries`) gives moto's own answers
    (pages, order, conditions, indexes) and builds its candidates from the asked partition only."""
    from moto.dynamodb.models.table import Table

    from stepcrew.api.dev import partition_queries
    from stepcrew.store.schema import create_table

    ddb, table = moto_dynamodb, "admission-partition-queries"
    create_table(ddb, table)
    for run in range(3):
        for n in range(7):
            ddb.put_item(TableName=table, Item={"PK": {"S": f"RUN#{run}"}, "SK": {"S": f"EVT#{n:02d}"},
                                                "n": {"N": str(n)}})
        ddb.put_item(TableName=table, Item={"PK": {"S": f"RUN#{run}"}, "SK": {"S": "META"}})

    def pages(**query) -> list[list[dict]]:
        out, start = [], {}
        while True:
            resp = ddb.query(TableName=table, **query, **start)
            out.append(resp["Items"])
            if "LastEvaluatedKey" not in resp:
                return out
            start = {"ExclusiveStartKey": resp["LastEvaluatedKey"]}

    queries = [
        {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "RUN#1"}}},
        {"KeyConditionExpression": "PK = :pk AND begins_with(SK, :p)", "ScanIndexForward": False, "Limit": 3,
         "ExpressionAttributeValues": {":pk": {"S": "RUN#2"}, ":p": {"S": "EVT#"}}},
        {"KeyConditionExpression": "PK = :pk AND SK > :s", "FilterExpression": "n > :three",
         "ExpressionAttributeValues": {":pk": {"S": "RUN#0"}, ":s": {"S": "EVT#01"}, ":three": {"N": "3"}}},
        {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "RUN#9"}}},
    ]
    expected = [pages(**q) for q in queries]
    assert [len(sum(p, [])) for p in expected] == [8, 7, 3, 0]  # computed by hand: the queries mean something

    seen_sizes: list[int] = []
    with partition_queries():
        patched_all_items = Table.all_items

        def counting(self):
            items = patched_all_items(self)
            seen_sizes.append(len(items))
            return items

        Table.all_items = counting
        try:
            assert [pages(**q) for q in queries] == expected
        finally:
            Table.all_items = patched_all_items
    assert seen_sizes and max(seen_sizes) <= 8  # one partition (8 items), never the table's 24
    assert Table.query.__module__.startswith("moto")  # undone on exit
