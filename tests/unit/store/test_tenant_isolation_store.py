"""Tenant isolation at the store port, on both adapters (MemoryRunStore and DynamoRunStore on moto): a read of
tenant B's run with tenant A is the error a missing run gets (same type, same message), B's runs never appear in A's
listing, and a cursor of B is refused exactly like a garbage cursor.

The other reads of the port (plan, sub-tasks, events, report, reviews, messages) take no tenant: they are gated by
their callers (the API checks ``get_run(run_id, tenant)`` first; see tests/unit/api/test_tenant_isolation_paths.py,
``test_a_route_reads_nothing_of_another_tenants_run_but_the_ownership_check``). ``tenant=None`` means "no check" and
is used by the state machine's own functions only.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from stepcrew.models import AgentRole, Crew, Run, RunStatus
from stepcrew.store.base import RunNotFoundError, RunStore
from stepcrew.store.dynamodb import DynamoRunStore
from stepcrew.store.memory import MemoryRunStore
from stepcrew.store.schema import create_table, encode_cursor

_TABLES = itertools.count()
T0 = datetime(2025, 1, 1, tzinfo=UTC)
CREW = Crew(name="test", planner=AgentRole(name="planner", role="Planner", goal="plan"),
            workers=[AgentRole(name="analyst", role="Analyst", goal="analyse")],
            reviewer=AgentRole(name="reviewer", role="Reviewer", goal="review"),
            synthesizer=AgentRole(name="synthesizer", role="Synthesizer", goal="write"))


def _new_store(kind: str, request) -> RunStore:
    if kind == "memory":
        return MemoryRunStore()
    client = request.getfixturevalue("moto_dynamodb")
    table = f"stepcrew-tenancy-{next(_TABLES)}"
    create_table(client, table)
    return DynamoRunStore(table, client=client)


@pytest.fixture(params=["memory", "dynamo"])
def stores(request) -> tuple[RunStore, RunStore]:
    """(store, empty): a store that will hold B's runs and an empty one of the same adapter."""
    return _new_store(request.param, request), _new_store(request.param, request)


def make_run(run_id: str, tenant: str, minutes: int = 0, **kw) -> Run:
    return Run(run_id=run_id, tenant=tenant, goal=f"{tenant} goal {run_id}", crew=CREW,
               created_at=T0 + timedelta(minutes=minutes), **kw)


def _error(call) -> tuple[type, str]:
    with pytest.raises(Exception) as caught:
        call()
    return type(caught.value), str(caught.value)


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.WAITING_APPROVAL, RunStatus.SUCCEEDED])
def test_get_run_with_another_tenant_is_the_error_of_a_missing_run(stores, status):
    store, empty = stores
    store.create_run(make_run("r-globex", "globex", status=status))
    theirs = _error(lambda: store.get_run("r-globex", "acme"))
    missing = _error(lambda: empty.get_run("r-globex", "acme"))
    assert theirs == missing and theirs[0] is RunNotFoundError
    assert "globex" not in theirs[1].replace("r-globex", "")
    # a tenant that only starts like the owner, or differs in case, is another tenant
    for other in ("globe", "globex0", "GLOBEX", "Globex"):
        assert _error(lambda o=other: store.get_run("r-globex", o)) == _error(lambda o=other: empty.get_run("r-globex", o))
    assert store.get_run("r-globex", "globex").tenant == "globex"  # the owner still reads it


def test_listing_holds_only_the_tenants_runs_on_every_page(stores):
    store, empty = stores
    for i in range(4):
        store.create_run(make_run(f"a{i}", "acme", minutes=2 * i))
        store.create_run(make_run(f"g{i}", "globex", minutes=2 * i + 1))
    store.create_run(make_run("x0", "acmecorp", minutes=99))
    for limit in (1, 3, 100):
        ids, cursor = [], None
        while True:
            runs, cursor = store.list_runs("acme", limit=limit, cursor=cursor)
            assert all(r.tenant == "acme" for r in runs)
            ids += [r.run_id for r in runs]
            if cursor is None:
                break
        assert ids == ["a3", "a2", "a1", "a0"]
    assert store.list_runs("initech") == empty.list_runs("initech") == ([], None)


def test_a_cursor_of_another_tenant_is_refused_like_a_garbage_cursor(stores):
    store, empty = stores
    for i in range(3):
        store.create_run(make_run(f"g{i}", "globex", minutes=i))
        store.create_run(make_run(f"a{i}", "acme", minutes=i))
    _, theirs = store.list_runs("globex", limit=1)
    assert theirs is not None
    garbage = _error(lambda: store.list_runs("acme", cursor="not-a-cursor"))
    assert garbage == (ValueError, "invalid cursor")
    assert _error(lambda: store.list_runs("acme", cursor=theirs)) == garbage
    assert _error(lambda: empty.list_runs("acme", cursor=theirs)) == garbage
    # a well-formed cursor naming another tenant's partition, or nothing at all
    for forged in (encode_cursor({"tenant": "globex", "key": "2099"}), encode_cursor({}), encode_cursor([]),
                   encode_cursor({"GSI1PK": {"S": "TENANT#globex"}, "GSI1SK": {"S": "x"}, "PK": {"S": "RUN#g1"},
                                  "SK": {"S": "META"}})):
        assert _error(lambda c=forged: store.list_runs("acme", cursor=c)) == garbage


def test_a_tenant_cannot_be_moved_by_an_update(stores):
    store, _ = stores
    store.create_run(make_run("r-globex", "globex"))
    with pytest.raises(ValueError):
        store.update_run("r-globex", {"tenant": "acme"})
    assert store.list_runs("acme") == ([], None)
    assert store.get_run("r-globex", "globex").tenant == "globex"
