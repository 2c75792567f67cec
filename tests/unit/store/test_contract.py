"""Contract of the store port: the same suite runs against both adapters.

``dynamo`` runs DynamoRunStore on a moto table built by ``schema.create_table``; ``memory`` runs MemoryRunStore.
moto's in-memory DynamoDB does not serialise requests (real DynamoDB applies each request to an item
atomically), so the moto fixture takes a lock around each DynamoDB request. Races inside the adapter (e.g. a
read-then-write counter) span several requests and would still show.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from stepcrew.models import (
    AgentRole, CriterionScores, Crew, Message, Plan, ProgressEvent, Review, Run, RunError, RunStatus, SubTask,
    SubtaskStatus, ToolCall,
)
from stepcrew.store.base import RunExistsError, RunNotFoundError, RunStateConflictError, RunStore, StoreError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
BIG = "x" * (410 * 1024)  # more than DynamoDB's 400 KB item limit


def _role(name: str) -> AgentRole:
    return AgentRole(name=name, role=name.title(), goal=f"do the {name} work")


CREW = Crew(name="test", planner=_role("planner"), workers=[_role("analyst")], reviewer=_role("reviewer"),
            synthesizer=_role("synthesizer"))


def make_run(run_id: str = "r1", tenant: str = "acme", minutes: int = 0, **kw) -> Run:
    kw.setdefault("goal", "Summarise sales")
    return Run(run_id=run_id, tenant=tenant, crew=CREW, created_at=T0 + timedelta(minutes=minutes), **kw)


def make_plan(*ids: str) -> Plan:
    return Plan(subtasks=[SubTask(id=i, title=f"Task {i}", instructions=f"do {i}") for i in ids])


@pytest.fixture
def store(run_store) -> RunStore:
    return run_store  # tests/unit/conftest.py: both adapters


# ------------------------------------------------------------------------------------------------ runs
def test_create_and_get_round_trip(store):
    run = make_run(budget={"max_cost_usd": 2.5, "max_tokens": 1000}, inputs={"region": "EU"})
    store.create_run(run)
    got = store.get_run("r1")
    assert got == run
    assert got.budget.max_cost_usd == 2.5 and got.crew == CREW


def test_create_existing_run_conflicts(store):
    store.create_run(make_run())
    with pytest.raises(RunExistsError):
        store.create_run(make_run(goal="Something else"))
    assert store.get_run("r1").goal == "Summarise sales"


def test_get_unknown_run(store):
    with pytest.raises(RunNotFoundError):
        store.get_run("nope")


def test_tenant_isolation(store):
    store.create_run(make_run(tenant="acme"))
    assert store.get_run("r1", tenant="acme").tenant == "acme"
    with pytest.raises(RunNotFoundError):
        store.get_run("r1", tenant="other")
    assert store.list_runs("other") == ([], None)


def test_returned_runs_are_copies(store):
    store.create_run(make_run())
    got = store.get_run("r1")
    got.inputs["injected"] = "yes"
    assert "injected" not in store.get_run("r1").inputs


def test_list_runs_newest_first_with_pagination(store):
    for i in range(5):
        store.create_run(make_run(f"r{i}", minutes=i))
    store.create_run(make_run("other", tenant="zeta", minutes=99))
    pages, cursor = [], None
    while True:
        runs, cursor = store.list_runs("acme", limit=2, cursor=cursor)
        pages.append([r.run_id for r in runs])
        if cursor is None:
            break
    assert pages == [["r4", "r3"], ["r2", "r1"], ["r0"]]


def test_list_runs_exact_multiple_has_no_empty_last_page(store):
    for i in range(4):
        store.create_run(make_run(f"r{i}", minutes=i))
    runs, cursor = store.list_runs("acme", limit=2)
    runs2, cursor2 = store.list_runs("acme", limit=2, cursor=cursor)
    assert [r.run_id for r in runs2] == ["r1", "r0"] and cursor2 is None


def test_list_runs_carries_usage_totals(store):
    store.create_run(make_run())
    store.add_usage("r1", "m1", 10, 5, 0.25)
    [run], _ = store.list_runs("acme")
    assert (run.usage.input_tokens, run.usage.output_tokens, run.usage.cost_usd) == (10, 5, 0.25)


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24=", base64.urlsafe_b64encode(b"[1, 2]").decode()])
def test_list_runs_bad_cursor(store, cursor):
    store.create_run(make_run())
    with pytest.raises(ValueError):
        store.list_runs("acme", cursor=cursor)


def test_list_runs_cursor_of_another_tenant_rejected(store):
    for i in range(3):
        store.create_run(make_run(f"r{i}", minutes=i))
    _, cursor = store.list_runs("acme", limit=1)
    assert cursor is not None
    with pytest.raises(ValueError):
        store.list_runs("zeta", cursor=cursor)


@pytest.mark.parametrize("limit", [0, 101])
def test_list_runs_limit_range(store, limit):
    with pytest.raises(ValueError):
        store.list_runs("acme", limit=limit)


def test_update_run_sets_fields_and_updated_at(store):
    store.create_run(make_run())
    started = T0 + timedelta(hours=1)
    run = store.update_run("r1", {"status": RunStatus.RUNNING, "started_at": started, "engine": "rule-engine"})
    assert (run.status, run.started_at, run.engine) == (RunStatus.RUNNING, started, "rule-engine")
    assert run.updated_at > T0
    assert store.get_run("r1") == run


def test_update_run_expected_ok_and_conflict(store):
    store.create_run(make_run())
    store.update_run("r1", {"status": "RUNNING"}, expected=[RunStatus.QUEUED])
    with pytest.raises(RunStateConflictError):
        store.update_run("r1", {"status": "SUCCEEDED"}, expected=[RunStatus.QUEUED, RunStatus.WAITING_APPROVAL])
    assert store.get_run("r1").status == RunStatus.RUNNING
    err = RunError(code="X", message="boom")
    run = store.update_run("r1", {"status": "FAILED", "error": err}, expected=[RunStatus.RUNNING])
    assert run.status == RunStatus.FAILED and run.error == err


def test_update_run_unknown_run(store):
    with pytest.raises(RunNotFoundError):
        store.update_run("nope", {"status": "RUNNING"})
    with pytest.raises(RunNotFoundError):
        store.update_run("nope", {"status": "RUNNING"}, expected=[RunStatus.QUEUED])


@pytest.mark.parametrize("changes", [{"tenant": "other"}, {"no_such_field": 1}, {"status": "BOGUS"}])
def test_update_run_rejects_bad_changes(store, changes):
    store.create_run(make_run())
    with pytest.raises(ValueError):
        store.update_run("r1", changes)
    assert store.get_run("r1").tenant == "acme"


def test_only_one_of_concurrent_transitions_wins(store):
    store.create_run(make_run())

    def claim(_):
        try:
            store.update_run("r1", {"status": "RUNNING"}, expected=[RunStatus.QUEUED])
            return True
        except RunStateConflictError:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(claim, range(8))) == 1


def test_add_usage_totals_and_by_model(store):
    store.create_run(make_run())
    store.add_usage("r1", "small", 100, 20, 0.1)
    usage = store.add_usage("r1", "large", 50, 10, 0.2)
    assert (usage.input_tokens, usage.output_tokens) == (150, 30)
    assert usage.cost_usd == pytest.approx(0.3, abs=1e-12)
    usage = store.add_usage("r1", "small", 1, 2, 0.05)
    assert usage.by_model["small"].input_tokens == 101 and usage.by_model["small"].output_tokens == 22
    assert usage.by_model["small"].cost_usd == pytest.approx(0.15)
    assert usage.by_model["large"].cost_usd == pytest.approx(0.2)
    assert store.get_run("r1").usage == usage


def test_add_usage_from_threads(store):
    store.create_run(make_run())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.add_usage("r1", f"m{i % 3}", 1, 2, 0.5), range(30)))
    usage = store.get_run("r1").usage
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (30, 60, 15.0)
    assert {m: u.input_tokens for m, u in usage.by_model.items()} == {"m0": 10, "m1": 10, "m2": 10}


def test_add_usage_unknown_run_and_bad_numbers(store):
    with pytest.raises(RunNotFoundError):
        store.add_usage("nope", "m", 1, 1, 0.0)
    store.create_run(make_run())
    with pytest.raises(ValueError):
        store.add_usage("r1", "m", -1, 1, 0.0)
    assert store.get_run("r1").usage.input_tokens == 0


# ------------------------------------------------------------------------------------------------ plan, sub-tasks
def test_put_plan_creates_pending_subtasks_in_plan_order(store):
    store.create_run(make_run())
    plan = make_plan("zeta", "alpha", "mid")
    store.put_plan("r1", plan)
    assert store.get_plan("r1") == plan
    subs = store.list_subtasks("r1")
    assert [(r.subtask_id, r.status) for r in subs] == [("zeta", "PENDING"), ("alpha", "PENDING"), ("mid", "PENDING")]


def test_put_plan_replaces_previous_plan(store):
    store.create_run(make_run())
    store.put_plan("r1", make_plan("a", "b"))
    store.update_subtask("r1", "a", {"status": SubtaskStatus.FAILED})
    store.put_plan("r1", make_plan("c", "a"))
    assert [(r.subtask_id, r.status) for r in store.list_subtasks("r1")] == [("c", "PENDING"), ("a", "PENDING")]
    with pytest.raises(KeyError):
        store.get_subtask("r1", "b")


def test_put_plan_unknown_run_and_no_plan(store):
    with pytest.raises(RunNotFoundError):
        store.put_plan("nope", make_plan("a"))
    store.create_run(make_run())
    assert store.get_plan("r1") is None and store.list_subtasks("r1") == []


def test_update_subtask(store):
    store.create_run(make_run())
    store.put_plan("r1", make_plan("a", "b"))
    done = T0 + timedelta(minutes=3)
    rec = store.update_subtask("r1", "b", {"status": "SUCCEEDED", "turns": 3, "tool_calls": 2, "output": "42",
                                            "finished_at": done})
    assert (rec.status, rec.turns, rec.tool_calls, rec.output, rec.finished_at) == ("SUCCEEDED", 3, 2, "42", done)
    assert store.get_subtask("r1", "b") == rec
    assert store.get_subtask("r1", "a").status == SubtaskStatus.PENDING


def test_update_unknown_subtask(store):
    store.create_run(make_run())
    store.put_plan("r1", make_plan("a"))
    with pytest.raises(KeyError):
        store.update_subtask("r1", "zz", {"status": "RUNNING"})
    with pytest.raises(KeyError):
        store.get_subtask("r1", "zz")
    with pytest.raises(ValueError):
        store.update_subtask("r1", "a", {"run_id": "other"})


def test_update_subtask_expected_ok_and_conflict(store):
    # Given a RUNNING sub-task
    store.create_run(make_run())
    store.put_plan("r1", make_plan("a"))
    store.update_subtask("r1", "a", {"status": "RUNNING"}, expected=[SubtaskStatus.PENDING])
    # When a transition expects another status, Then it conflicts and nothing changes
    with pytest.raises(RunStateConflictError, match="RUNNING"):
        store.update_subtask("r1", "a", {"status": "FAILED", "output": "x"}, expected=[SubtaskStatus.PENDING])
    with pytest.raises(RunStateConflictError):
        store.update_subtask("r1", "a", {}, expected=[SubtaskStatus.SUCCEEDED])
    with pytest.raises(RunStateConflictError):
        store.update_subtask("r1", "a", {"turns": 1}, expected=[])
    assert (store.get_subtask("r1", "a").status, store.get_subtask("r1", "a").output) == ("RUNNING", None)
    # and the expected one goes through; an unknown sub-task is still a KeyError
    rec = store.update_subtask("r1", "a", {"status": "SUCCEEDED"}, expected=["RUNNING"])
    assert rec.status == SubtaskStatus.SUCCEEDED
    with pytest.raises(KeyError):
        store.update_subtask("r1", "zz", {"status": "RUNNING"}, expected=[SubtaskStatus.PENDING])


def test_only_one_of_concurrent_subtask_transitions_wins(store):
    store.create_run(make_run())
    store.put_plan("r1", make_plan("a"))

    def finish(status: str) -> bool:
        try:
            store.update_subtask("r1", "a", {"status": status}, expected=[SubtaskStatus.PENDING])
            return True
        except RunStateConflictError:
            return False

    with ThreadPoolExecutor(4) as pool:
        wins = list(pool.map(finish, ["SUCCEEDED", "FAILED"] * 4))
    assert wins.count(True) == 1


# ------------------------------------------------------------------------------------------------ conversations
def test_messages_in_order_per_conversation(store):
    first = [Message(role="system", content="be brief"), Message(role="user", content="go")]
    call = Message(role="assistant", tool_calls=[ToolCall(call_id="c1", name="sql", arguments={"q": 1.5})])
    assert store.append_messages("r1", "a", first) == 2
    assert store.append_messages("r1", "a", [call]) == 3
    assert store.append_messages("r1", "a-b", [Message(role="user", content="other")]) == 1
    assert store.get_messages("r1", "a") == [*first, call]
    assert [m.content for m in store.get_messages("r1", "a-b")] == ["other"]
    assert store.get_messages("r1", "none") == []
    assert store.append_messages("r1", "a", []) == 3


def test_concurrent_appends(store):
    def own_conversation(c: int) -> None:  # parallel sub-tasks: one writer per conversation
        for i in range(10):
            store.append_messages("r1", f"sub{c}", [Message(role="user", content=f"sub{c}-{i}")])

    def shared_conversation(w: int) -> None:  # several writers on one conversation: must still lose nothing
        for i in range(5):
            store.append_messages("r1", "shared", [Message(role="user", content=f"w{w}-{i}"),
                                                   Message(role="assistant", content=f"w{w}-{i}-reply")])

    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(own_conversation, c) for c in range(4)] + [pool.submit(shared_conversation, w)
                                                                       for w in range(4)]
        for job in jobs:
            job.result()
    for c in range(4):
        assert [m.content for m in store.get_messages("r1", f"sub{c}")] == [f"sub{c}-{i}" for i in range(10)]
    shared = [m.content for m in store.get_messages("r1", "shared")]
    assert sorted(shared) == sorted(f"w{w}-{i}{s}" for w in range(4) for i in range(5) for s in ("", "-reply"))
    for w in range(4):  # each writer's own messages keep their order
        assert [x for x in shared if x.startswith(f"w{w}-")] == [f"w{w}-{i}{s}" for i in range(5)
                                                                  for s in ("", "-reply")]
    assert store.append_messages("r1", "shared", []) == 40


def test_sequential_appends_keep_order(store):
    for i in range(12):
        store.append_messages("r1", "w", [Message(role="user", content=str(i))])
    assert [m.content for m in store.get_messages("r1", "w")] == [str(i) for i in range(12)]


def test_bad_conversation_id(store):
    with pytest.raises(ValueError):
        store.append_messages("r1", "a#b", [Message(role="user", content="x")])


# ------------------------------------------------------------------------------------------------ events
def test_events_after_cursor(store):
    events = [ProgressEvent(run_id="r1", kind="run_started", at=T0 + timedelta(seconds=i), data={"i": i})
              for i in range(5)]
    cursors = [store.add_event(e) for e in reversed(events)]  # written out of order
    assert len(set(cursors)) == 5
    listed = store.list_events("r1")
    assert [e for _, e in listed] == events
    assert [c for c, _ in listed] == sorted(cursors)
    after = store.list_events("r1", after=listed[1][0])
    assert [e.data["i"] for _, e in after] == [2, 3, 4]
    assert [e.data["i"] for _, e in store.list_events("r1", after=listed[1][0], limit=2)] == [2, 3]
    assert store.list_events("r1", after=listed[-1][0]) == []
    assert store.list_events("r2") == []


def test_a_conversation_larger_than_one_dynamodb_page_is_read_whole(store):
    # Given a conversation of ~1.5 MB (a DynamoDB Query page holds at most 1 MB)
    messages = [Message(role="user", content=f"{i}:" + "x" * (300 * 1024)) for i in range(5)]
    for message in messages:
        store.append_messages("r1", "a", [message])
    # When it is read back, Then every message comes back, in order
    assert [m.content[:2] for m in store.get_messages("r1", "a")] == [f"{i}:" for i in range(5)]


def test_events_larger_than_one_dynamodb_page_are_listed_whole(store):
    # Given ~1.2 MB of events (each ~100 KB of numbers in data)
    cursors = [store.add_event(ProgressEvent(run_id="r1", kind="tool_call", at=T0 + timedelta(seconds=i),
                                             data={"n": i, "pad": "y" * (100 * 1024)})) for i in range(12)]
    # When listed from the start and after a cursor, Then nothing is lost at the page boundary
    assert [c for c, _ in store.list_events("r1")] == cursors
    assert [e.data["n"] for _, e in store.list_events("r1", after=cursors[2], limit=5)] == [3, 4, 5, 6, 7]


def test_events_with_same_timestamp_are_unique(store):
    cursors = {store.add_event(ProgressEvent(run_id="r1", kind="model_turn", at=T0)) for _ in range(20)}
    assert len(cursors) == 20 and len(store.list_events("r1")) == 20


# ------------------------------------------------------------------------------------------------ report, reviews
def test_report_versions(store):
    assert store.get_report("r1") is None
    assert store.put_report("r1", "draft") == 1
    assert store.put_report("r1", "final") == 2
    assert store.get_report("r1") == "final"


def test_reviews_in_round_order(store):
    def review(n: int, overall: float) -> Review:
        return Review(round=n, scores=CriterionScores(accuracy=0.5, completeness=0.7, relevance=0.9),
                      overall=overall, passed=overall >= 0.8, feedback=f"round {n}")

    store.put_review("r1", review(2, 0.9))
    store.put_review("r1", review(1, 0.4))
    store.put_review("r1", review(10, 0.95))
    store.put_review("r1", review(2, 0.85))  # replaces round 2
    assert [(r.round, r.overall) for r in store.list_reviews("r1")] == [(1, 0.4), (2, 0.85), (10, 0.95)]


# ------------------------------------------------------------------------------------------------ size limit
def test_oversized_items_rejected(store):
    store.create_run(make_run())
    store.put_plan("r1", make_plan("a"))
    with pytest.raises(StoreError, match="400 KB"):
        store.append_messages("r1", "a", [Message(role="user", content="ok"), Message(role="user", content=BIG)])
    assert store.get_messages("r1", "a") == [] and store.append_messages("r1", "a", []) == 0
    with pytest.raises(StoreError, match="400 KB"):
        store.put_report("r1", BIG)
    assert store.get_report("r1") is None
    with pytest.raises(StoreError, match="400 KB"):
        store.update_subtask("r1", "a", {"output": BIG})
    assert store.get_subtask("r1", "a").output is None
    with pytest.raises(StoreError, match="400 KB"):
        store.update_run("r1", {"engine": BIG})
    with pytest.raises(StoreError, match="400 KB"):
        store.create_run(make_run("r2", inputs={"blob": BIG}))
    with pytest.raises(RunNotFoundError):
        store.get_run("r2")


def test_multibyte_text_counts_bytes_not_characters(store):
    text = "é" * (210 * 1024)  # 210 K characters, 420 KB in UTF-8
    with pytest.raises(StoreError):
        store.put_report("r1", text)
