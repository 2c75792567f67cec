"""Durable local state (stepcrew.local.durable): every write is in the state database before the call returns, two
processes share the folder, a kill -9 loses at most the request in flight, bad folders are refused untouched."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from stepcrew.local.durable import DB_NAME, StateDB
from stepcrew.local.runtime import LocalRuntime

pytestmark = pytest.mark.integration
TABLE = "stepcrew-local-runs"


def _put(ddb, pk: str, sk: str, **attrs) -> None:
    ddb.put_item(TableName=TABLE, Item={"PK": {"S": pk}, "SK": {"S": sk}, **attrs})


def _get(ddb, pk: str, sk: str) -> dict | None:
    return ddb.get_item(TableName=TABLE, Key={"PK": {"S": pk}, "SK": {"S": sk}}).get("Item")


def _rows(folder) -> list[dict]:
    """Items in the database, read with plain sqlite3 (not through the code under test)."""
    conn = sqlite3.connect(f"file:{folder / DB_NAME}?mode=ro", uri=True)
    try:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM items")]
    finally:
        conn.close()


def _child(folder, code: str) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import sys, time
        from stepcrew.local.runtime import LocalRuntime
        rt = LocalRuntime(state_dir={str(folder)!r}, read_only=False, store_only=True)
        rt.__enter__()
        ddb = rt.client("dynamodb")
        T = {TABLE!r}
    """) + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_a_write_is_in_the_database_before_the_call_returns_and_a_failed_condition_writes_nothing(tmp_path):
    with LocalRuntime(state_dir=tmp_path, store_only=True) as rt:
        ddb = rt.client("dynamodb")
        _put(ddb, "RUN#a", "META", status={"S": "RUNNING"})
        assert [r["status"]["S"] for r in _rows(tmp_path)] == ["RUNNING"]
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
            ddb.update_item(TableName=TABLE, Key={"PK": {"S": "RUN#a"}, "SK": {"S": "META"}},
                            UpdateExpression="SET #s = :new", ConditionExpression="#s = :expected",
                            ExpressionAttributeNames={"#s": "status"},
                            ExpressionAttributeValues={":new": {"S": "FAILED"}, ":expected": {"S": "QUEUED"}})
        assert [r["status"]["S"] for r in _rows(tmp_path)] == ["RUNNING"]
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"PK": {"S": "RUN#b"}, "SK": {"S": "META"}}}},
            {"Delete": {"TableName": TABLE, "Key": {"PK": {"S": "RUN#a"}, "SK": {"S": "META"}}}}])
        assert [r["PK"]["S"] for r in _rows(tmp_path)] == ["RUN#b"]


def test_a_second_process_sees_writes_of_a_live_one_and_its_own_writes_are_seen_back(tmp_path):
    # Given a process that keeps running with the folder open
    child = _child(tmp_path, """
        _ = ddb.put_item(TableName=T, Item={"PK": {"S": "RUN#live"}, "SK": {"S": "META"}, "v": {"N": "1"}})
        print("written", flush=True)
        for _ in range(600):  # wait for the other process's write, read through this process's own cache
            item = ddb.get_item(TableName=T, Key={"PK": {"S": "RUN#live"}, "SK": {"S": "META"}})["Item"]
            if item["v"]["N"] == "2":
                print("seen", flush=True)
                break
            time.sleep(0.05)
        rt.__exit__(None, None, None)
    """)
    try:
        assert child.stdout.readline().strip() == "written"
        # When another process reads the folder while the first still runs, then changes the item
        with LocalRuntime(state_dir=tmp_path, store_only=True) as rt:
            ddb = rt.client("dynamodb")
            assert _get(ddb, "RUN#live", "META")["v"] == {"N": "1"}
            ddb.update_item(TableName=TABLE, Key={"PK": {"S": "RUN#live"}, "SK": {"S": "META"}},
                            UpdateExpression="ADD v :one", ExpressionAttributeValues={":one": {"N": "1"}})
        # Then the first process sees the change (its loaded copy was stale and is reloaded)
        assert child.stdout.readline().strip() == "seen"
        assert child.wait(30) == 0, child.stderr.read()
    finally:
        child.kill()


def test_two_processes_adding_to_one_counter_lose_no_update(tmp_path):
    code = """
        for _ in range(40):
            ddb.update_item(TableName=T, Key={"PK": {"S": "RUN#c"}, "SK": {"S": "META"}},
                            UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}})
        rt.__exit__(None, None, None)
    """
    children = [_child(tmp_path, code) for _ in range(2)]
    for child in children:
        assert child.wait(120) == 0, child.stderr.read()
    assert [r["n"] for r in _rows(tmp_path)] == [{"N": "80"}]


def test_a_gsi_query_sees_runs_written_by_another_process_after_it_started(tmp_path):
    from stepcrew.models import AgentRole, Crew, Run

    role = AgentRole(name="r", role="r", goal="g")
    crew = Crew(name="c", planner=role, workers=[role], reviewer=role, synthesizer=role)
    with LocalRuntime(state_dir=tmp_path, store_only=True) as reader:
        assert reader.store.list_runs("t1")[0] == []
        with_run = _child(tmp_path, f"""
            from stepcrew.models import Run
            run = Run.model_validate_json({Run(run_id="r1", tenant="t1", goal="g", crew=crew).model_dump_json()!r})
            rt.store.create_run(run)
            rt.__exit__(None, None, None)
        """)
        assert with_run.wait(60) == 0, with_run.stderr.read()
        assert [r.run_id for r in reader.store.list_runs("t1")[0]] == ["r1"]
        assert reader.store.get_run("r1").tenant == "t1"
        assert reader.store.list_runs("t2")[0] == []


def test_kill_9_in_the_middle_of_writes_keeps_every_acknowledged_write_and_leaves_no_temp_file(tmp_path):
    child = _child(tmp_path, """
        n = 0
        while True:
            n += 1
            ddb.put_item(TableName=T, Item={"PK": {"S": "RUN#k"}, "SK": {"S": f"EVENT#{n:06d}"},
                                            "body": {"S": "x" * 2000}})
            print(n, flush=True)
    """)
    acknowledged = 0
    try:
        while acknowledged < 150:
            acknowledged = int(child.stdout.readline())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    rows = _rows(tmp_path)  # opening it recovers the write-ahead log
    numbers = sorted(int(r["SK"]["S"].split("#")[1]) for r in rows)
    assert numbers[:acknowledged] == list(range(1, acknowledged + 1))  # nothing acknowledged is lost
    assert len(numbers) <= acknowledged + 2  # at most what was in flight besides
    with LocalRuntime(state_dir=tmp_path, store_only=True) as rt:
        pages = rt.client("dynamodb").get_paginator("query").paginate(
            TableName=TABLE, KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "RUN#k"}})
        assert sum(len(p["Items"]) for p in pages) == len(numbers)
    leftovers = {p.name for p in tmp_path.iterdir()} - {DB_NAME, "active"}
    assert leftovers <= {f"{DB_NAME}-wal", f"{DB_NAME}-shm"}, leftovers  # SQLite's own files, no temp file of ours
    assert not any(p.name.startswith(".table-") for p in tmp_path.iterdir())


def test_a_read_only_runtime_of_an_empty_folder_creates_nothing(tmp_path):
    with LocalRuntime(state_dir=tmp_path / "state", read_only=True) as rt:
        assert rt.store.list_runs("local")[0] == []
    assert not (tmp_path / "state").exists()


def test_a_state_json_of_the_earlier_version_is_imported_once(tmp_path):
    from stepcrew.local.state import FILE_VERSION

    item = {"PK": {"S": "RUN#old"}, "SK": {"S": "META"}, "GSI1PK": {"S": "TENANT#local"},
            "GSI1SK": {"S": "2026-01-01T00:00:00.000000Z#old"}, "b": {"B": "AP8="}}
    (tmp_path / "table.json").write_text(json.dumps({"version": FILE_VERSION, "items": [item]}))
    with LocalRuntime(state_dir=tmp_path, store_only=True) as rt:
        got = _get(rt.client("dynamodb"), "RUN#old", "META")
        page = rt.client("dynamodb").query(TableName=TABLE, IndexName="GSI1", KeyConditionExpression="GSI1PK = :t",
                                           ExpressionAttributeValues={":t": {"S": "TENANT#local"}})
    assert got["b"] == {"B": b"\x00\xff"}
    assert [i["PK"]["S"] for i in page["Items"]] == ["RUN#old"]
    assert not (tmp_path / "table.json").exists() and (tmp_path / "table.json.imported").is_file()


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b"this is not a database at all" * 100), "not a readable stepcrew state database"),
    (lambda p: sqlite3.connect(p).execute("PRAGMA user_version=99").connection.commit(), "newer stepcrew"),
])
def test_a_corrupt_or_newer_database_is_refused_and_left_as_it_was(tmp_path, make, words):
    from test_cli import stepcrew

    state = tmp_path / "state"
    state.mkdir()
    make(state / DB_NAME)
    before = (state / DB_NAME).read_bytes()
    for args in (("runs", "list"), ("run", "Compute 6 times 7")):
        proc = stepcrew(tmp_path, *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert words in proc.stderr and str(state) in proc.stderr and "Traceback" not in proc.stderr
        assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr
    assert (state / DB_NAME).read_bytes() == before


def test_state_db_refuses_an_unknown_sync_setting(tmp_path, monkeypatch):
    from stepcrew.local.state import StateFileError

    monkeypatch.setenv("STEPCREW_STATE_SYNC", "sometimes")
    with pytest.raises(StateFileError, match="STEPCREW_STATE_SYNC"):
        StateDB(tmp_path, writable=True)
    assert not (tmp_path / DB_NAME).exists()


def test_start_up_reads_nothing_of_the_kept_runs(tmp_path):
    # Given 50 kept runs
    with LocalRuntime(state_dir=tmp_path, store_only=True) as rt:
        ddb = rt.client("dynamodb")
        for n in range(50):
            _put(ddb, f"RUN#{n}", "META", status={"S": "SUCCEEDED"}, run_id={"S": str(n)})
    # When a runtime starts and reads one run
    with LocalRuntime(state_dir=tmp_path, fast_waits=True) as rt:
        loaded_at_start = dict(rt.journal.stats)
        _get(rt.client("dynamodb"), "RUN#7", "META")
        after_one = rt.journal.stats["loads"]
    # Then no partition was loaded at start, and reading one loads just that one
    assert loaded_at_start["loads"] == 0
    assert after_one == 1
