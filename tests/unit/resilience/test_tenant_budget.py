"""Contract of the tenant budget ledger: the same suite runs against MemoryTenantLedger and DynamoTenantLedger (moto).

As in ``tests/unit/store/test_contract.py``, the moto fixture takes a lock around each DynamoDB request (real
DynamoDB applies each request, a transaction included, atomically; moto's backend is not thread-safe). Races in the
adapter that span several requests would still show.
"""

from __future__ import annotations

import itertools
import math
import pickle
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from stepcrew.resilience.tenant_budget import (
    DynamoTenantLedger,
    MemoryTenantLedger,
    TenantBudget,
    TenantBudgetExceededError,
    TenantLedger,
    default_budget_from_env,
)
from stepcrew.store.base import StoreError
from stepcrew.store.schema import create_table

_TABLE_NUMBERS = itertools.count()
NOW = datetime(2025, 3, 15, 13, 45, tzinfo=UTC)


def usd(*amounts: float) -> float:
    """The exact (Decimal) sum of ``amounts`` as a float: what a correct ledger reports."""
    return float(sum((Decimal(str(a)) for a in amounts), Decimal(0)))


def _dynamo(client, default: TenantBudget | None = None) -> DynamoTenantLedger:
    table = f"stepcrew-budget-{next(_TABLE_NUMBERS)}"
    create_table(client, table)
    if default is None:
        return DynamoTenantLedger(table, client=client)
    return DynamoTenantLedger(table, client=client, default=default)


@pytest.fixture(params=["memory", "dynamo"])
def make_ledger(request):
    """A factory: ``make_ledger(default=None)`` -> a fresh ledger of the parametrised adapter."""
    def make(default: TenantBudget | None = None) -> TenantLedger:
        if request.param == "memory":
            return MemoryTenantLedger() if default is None else MemoryTenantLedger(default)
        return _dynamo(request.getfixturevalue("moto_dynamodb"), default)
    return make


@pytest.fixture
def ledger(make_ledger) -> TenantLedger:
    return make_ledger()


# ------------------------------------------------------------------------------------------------ budgets
def test_budget_default_and_configured(make_ledger):
    default = TenantBudget(daily_usd=5, monthly_usd=50)
    ledger = make_ledger(default)
    assert ledger.get_budget("acme") == default
    ledger.set_budget("acme", TenantBudget(daily_usd=1.5, monthly_usd=None))
    assert ledger.get_budget("acme") == TenantBudget(daily_usd=1.5, monthly_usd=None)
    # a configured "no cap" is not replaced by the default
    ledger.set_budget("acme", TenantBudget(daily_usd=None, monthly_usd=None))
    assert ledger.get_budget("acme") == TenantBudget()
    assert ledger.get_budget("other") == default


def test_default_default_is_no_cap(ledger):
    assert ledger.get_budget("acme") == TenantBudget(daily_usd=None, monthly_usd=None)
    ledger.reserve("acme", 123456.789, NOW)
    ledger.check("acme", NOW)
    assert ledger.spent("acme", NOW) == (123456.789, 123456.789)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, 0, 1_000_000.01, "abc"])
def test_budget_rejects_bad_caps(value):
    with pytest.raises(ValidationError):
        TenantBudget(daily_usd=value)
    with pytest.raises(ValidationError):
        TenantBudget(monthly_usd=value)


def test_budget_bounds_and_extra_fields():
    assert TenantBudget(daily_usd=1_000_000, monthly_usd=0.01).daily_usd == 1_000_000
    with pytest.raises(ValidationError):
        TenantBudget(daily_usd=1, weekly_usd=2)


# ------------------------------------------------------------------------------------------------ reserve
def test_reserve_within_cap(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=10.0))
    assert ledger.spent("acme", NOW) == (0.0, 0.0)
    for amount in (0.1, 0.2, 0.3):
        ledger.reserve("acme", amount, NOW)
    assert ledger.spent("acme", NOW) == (usd(0.1, 0.2, 0.3), usd(0.1, 0.2, 0.3))
    ledger.reserve("acme", 0.4, NOW)  # exactly up to the cap is allowed
    assert ledger.spent("acme", NOW) == (1.0, 1.0)
    ledger.reserve("acme", 0, NOW)  # a zero reservation still fits
    assert ledger.spent("acme", NOW) == (1.0, 1.0)


def test_refuse_over_daily_cap_moves_neither_counter(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=10.0))
    ledger.reserve("acme", 0.7, NOW)
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.reserve("acme", 0.5, NOW)  # the month (10.0) would accept it; the day refuses, so neither moves
    err = info.value
    assert (err.tenant, err.budget, err.limit_usd, err.spent_usd) == ("acme", "daily", 1.0, 0.7)
    assert err.resets_at == datetime(2025, 3, 16, tzinfo=UTC)
    assert ledger.spent("acme", NOW) == (0.7, 0.7)
    # a reservation larger than the cap itself, on a fresh tenant: nothing written anywhere
    ledger.set_budget("new", TenantBudget(daily_usd=1.0, monthly_usd=10.0))
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.reserve("new", 1.5, NOW)
    assert (info.value.budget, info.value.spent_usd) == ("daily", 0.0)
    assert ledger.spent("new", NOW) == (0.0, 0.0)


def test_refuse_over_monthly_cap_moves_neither_counter(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=5.0, monthly_usd=1.0))
    ledger.reserve("acme", 0.8, NOW)
    tomorrow = NOW + timedelta(days=1)
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.reserve("acme", 0.3, tomorrow)  # the new day (0 of 5) would accept it
    err = info.value
    assert (err.budget, err.limit_usd, err.spent_usd) == ("monthly", 1.0, 0.8)
    assert err.resets_at == datetime(2025, 4, 1, tzinfo=UTC)
    assert ledger.spent("acme", tomorrow) == (0.0, 0.8)
    ledger.reserve("acme", 0.2, tomorrow)
    assert ledger.spent("acme", tomorrow) == (0.2, 1.0)


def test_both_caps_refusing_names_daily(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=1.0))
    ledger.reserve("acme", 0.9, NOW)
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.reserve("acme", 0.2, NOW)
    assert info.value.budget == "daily"


def test_check(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=1.5))
    ledger.check("acme", NOW)
    ledger.reserve("acme", 0.99, NOW)
    ledger.check("acme", NOW)
    ledger.reserve("acme", 0.01, NOW)
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.check("acme", NOW)
    assert (info.value.budget, info.value.spent_usd, info.value.limit_usd) == ("daily", 1.0, 1.0)
    tomorrow = NOW + timedelta(days=1)
    ledger.check("acme", tomorrow)
    ledger.reserve("acme", 0.5, tomorrow)
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.check("acme", tomorrow)
    assert (info.value.budget, info.value.spent_usd) == ("monthly", 1.5)


# ------------------------------------------------------------------------------------------------ settle
def test_settle_down_and_up(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=10.0))
    ledger.reserve("acme", 0.5, NOW)
    ledger.settle("acme", -0.2, NOW)
    assert ledger.spent("acme", NOW) == (usd(0.5, -0.2), usd(0.5, -0.2))
    ledger.settle("acme", 0.9, NOW)  # settle has no cap: the call cost more than reserved
    assert ledger.spent("acme", NOW) == (usd(0.5, -0.2, 0.9), usd(0.5, -0.2, 0.9))
    with pytest.raises(TenantBudgetExceededError):
        ledger.check("acme", NOW)
    ledger.settle("acme", 0, NOW)
    assert ledger.spent("acme", NOW) == (usd(0.5, -0.2, 0.9), usd(0.5, -0.2, 0.9))


def test_settle_never_below_zero(ledger):
    ledger.reserve("acme", 0.3, NOW - timedelta(days=1))  # the month holds 0.3 more than the day
    ledger.reserve("acme", 0.2, NOW)
    ledger.settle("acme", -0.4, NOW)  # the day (0.2) goes to 0, the month (0.5) to 0.1
    assert ledger.spent("acme", NOW) == (0.0, usd(0.5, -0.4))
    ledger.settle("acme", -7, NOW)
    assert ledger.spent("acme", NOW) == (0.0, 0.0)
    ledger.settle("fresh", -1, NOW)  # no counters yet
    assert ledger.spent("fresh", NOW) == (0.0, 0.0)
    ledger.reserve("fresh", 0.25, NOW)
    assert ledger.spent("fresh", NOW) == (0.25, 0.25)


def test_settle_lands_in_the_reservation_buckets(ledger):
    reserved_at = datetime(2025, 3, 31, 23, 59, 30, tzinfo=UTC)
    settled_at = datetime(2025, 4, 1, 0, 0, 30, tzinfo=UTC)
    ledger.reserve("acme", 1.0, reserved_at)
    ledger.settle("acme", -0.6, settled_at, reserved_at=reserved_at)
    assert ledger.spent("acme", reserved_at) == (usd(1.0, -0.6), usd(1.0, -0.6))
    assert ledger.spent("acme", settled_at) == (0.0, 0.0)
    ledger.settle("acme", 0.1, settled_at)  # without reserved_at: the buckets of now
    assert ledger.spent("acme", settled_at) == (0.1, 0.1)
    assert ledger.spent("acme", reserved_at) == (usd(1.0, -0.6), usd(1.0, -0.6))


# ------------------------------------------------------------------------------------------------ time
def test_day_rollover_keeps_the_month(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=3.0))
    day1 = datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC)
    day2 = day1 + timedelta(seconds=1)
    ledger.reserve("acme", 0.75, day1)
    with pytest.raises(TenantBudgetExceededError):
        ledger.reserve("acme", 0.75, day1)
    ledger.reserve("acme", 0.75, day2)
    assert ledger.spent("acme", day2) == (0.75, usd(0.75, 0.75))
    assert ledger.spent("acme", day1) == (0.75, usd(0.75, 0.75))
    ledger.reserve("acme", 1.0, day2 + timedelta(days=1))
    ledger.reserve("acme", 0.5, day2 + timedelta(days=2))
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.reserve("acme", 0.01, day2 + timedelta(days=2))
    assert info.value.budget == "monthly"
    assert ledger.spent("acme", day2 + timedelta(days=2)) == (0.5, usd(0.75, 0.75, 1.0, 0.5))


def test_month_rollover(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=None, monthly_usd=1.0))
    dec = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    ledger.reserve("acme", 1.0, dec)
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.reserve("acme", 0.1, dec)
    assert info.value.resets_at == jan
    ledger.reserve("acme", 0.9, jan)
    assert ledger.spent("acme", jan) == (0.9, 0.9)
    assert ledger.spent("acme", dec) == (1.0, 1.0)


def test_resets_at_and_message(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=2.5, monthly_usd=2.5))
    # 23:30 at UTC-5 is 04:30 UTC the next day: days are UTC days
    local = datetime(2025, 2, 28, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    ledger.reserve("acme", 2.5, local)
    assert ledger.spent("acme", datetime(2025, 3, 1, 4, 30, tzinfo=UTC)) == (2.5, 2.5)
    assert ledger.spent("acme", datetime(2025, 2, 28, 12, tzinfo=UTC)) == (0.0, 0.0)
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.check("acme", local)
    err = info.value
    assert err.resets_at == datetime(2025, 3, 2, tzinfo=UTC)
    assert err.resets_at.utcoffset() == timedelta(0)
    message = str(err)
    assert "\n" not in message
    assert "daily" in message and "$2.5" in message and "2025-03-02T00:00:00Z" in message
    with pytest.raises(TenantBudgetExceededError) as info:
        ledger.reserve("acme", 0.01, datetime(2025, 3, 2, tzinfo=UTC))
    err = info.value
    assert (err.budget, err.resets_at) == ("monthly", datetime(2025, 4, 1, tzinfo=UTC))
    assert "monthly" in str(err) and "2025-04-01T00:00:00Z" in str(err)


def test_exceeded_error_pickles():
    err = TenantBudgetExceededError("acme", "daily", 1.0, 0.9, datetime(2025, 1, 2, tzinfo=UTC), 0.2)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.tenant, copy.budget, copy.limit_usd, copy.spent_usd, copy.resets_at, copy.requested_usd) == (
        "acme", "daily", 1.0, 0.9, datetime(2025, 1, 2, tzinfo=UTC), 0.2)
    assert str(copy) == str(err)


# ------------------------------------------------------------------------------------------------ tenants
def test_per_tenant_isolation(ledger):
    ledger.set_budget("acme2", TenantBudget(daily_usd=0.5, monthly_usd=0.5))
    ledger.set_budget("acme", TenantBudget(daily_usd=2.0, monthly_usd=2.0))
    ledger.reserve("acme2", 0.5, NOW)
    with pytest.raises(TenantBudgetExceededError):
        ledger.check("acme2", NOW)
    ledger.check("acme", NOW)
    for tenant in ("acme", "acm", "Acme", "acme.", "acme2x"):
        assert ledger.spent(tenant, NOW) == (0.0, 0.0)
    ledger.reserve("acme", 2.0, NOW)
    assert ledger.spent("acme2", NOW) == (0.5, 0.5)
    assert ledger.get_budget("acme2") == TenantBudget(daily_usd=0.5, monthly_usd=0.5)
    assert ledger.get_budget("acme") == TenantBudget(daily_usd=2.0, monthly_usd=2.0)
    ledger.settle("acme", -5, NOW)
    assert ledger.spent("acme2", NOW) == (0.5, 0.5)
    assert ledger.spent("acme", NOW) == (0.0, 0.0)


@pytest.mark.parametrize("tenant", ["", "-acme", ".acme", "a#b", "TBUDGET#x", "acme/x", "acme x", "acme\n",
                                    "x" * 129, "é", None, 42])
def test_bad_tenant_ids(ledger, tenant):
    for call in (lambda: ledger.get_budget(tenant), lambda: ledger.set_budget(tenant, TenantBudget()),
                 lambda: ledger.spent(tenant, NOW), lambda: ledger.check(tenant, NOW),
                 lambda: ledger.reserve(tenant, 0.1, NOW), lambda: ledger.settle(tenant, 0.1, NOW)):
        with pytest.raises(ValueError, match="tenant"):
            call()


def test_good_tenant_ids(ledger):
    for tenant in ("a", "A" * 128, "user@example.com", "org_1.team-2"):
        ledger.reserve(tenant, 0.1, NOW)
        assert ledger.spent(tenant, NOW) == (0.1, 0.1)


@pytest.mark.parametrize("amount", [math.nan, math.inf, -math.inf, -0.01, 1e10])
def test_bad_reservations(ledger, amount):
    with pytest.raises(ValueError):
        ledger.reserve("acme", amount, NOW)
    assert ledger.spent("acme", NOW) == (0.0, 0.0)


@pytest.mark.parametrize("delta", [math.nan, math.inf, -math.inf, -1e10])
def test_bad_settlements(ledger, delta):
    with pytest.raises(ValueError):
        ledger.settle("acme", delta, NOW)


def test_non_numbers_and_naive_times(ledger):
    with pytest.raises(TypeError):
        ledger.reserve("acme", "0.1", NOW)
    with pytest.raises(TypeError):
        ledger.reserve("acme", True, NOW)
    with pytest.raises(TypeError):
        ledger.set_budget("acme", {"daily_usd": 1})
    naive = datetime(2025, 1, 1)
    for call in (lambda: ledger.reserve("acme", 0.1, naive), lambda: ledger.spent("acme", naive),
                 lambda: ledger.check("acme", naive), lambda: ledger.settle("acme", 0.1, naive),
                 lambda: ledger.settle("acme", 0.1, NOW, reserved_at=naive)):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()
    assert ledger.spent("acme", NOW) == (0.0, 0.0)


# ------------------------------------------------------------------------------------------------ concurrency
def test_concurrent_reservations_never_overspend(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=5.0))

    def attempt(_: int) -> bool:
        try:
            ledger.reserve("acme", 0.10, NOW)
        except TenantBudgetExceededError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert results.count(True) == 10
    assert ledger.spent("acme", NOW) == (usd(*[0.10] * 10), usd(*[0.10] * 10)) == (1.0, 1.0)


def test_concurrent_settles_and_reserves_add_up(ledger):
    ledger.set_budget("acme", TenantBudget(daily_usd=100.0, monthly_usd=100.0))

    def work(i: int) -> None:
        ledger.reserve("acme", 0.3, NOW)
        ledger.settle("acme", -0.1, NOW, reserved_at=NOW)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(work, range(20)))
    expected = usd(*[0.3, -0.1] * 20)
    assert ledger.spent("acme", NOW) == (expected, expected)


# ------------------------------------------------------------------------------------------------ DynamoDB only
def _items(client, table: str, tenant: str) -> dict[str, dict]:
    resp = client.query(TableName=table, KeyConditionExpression="PK = :pk", ConsistentRead=True,
                        ExpressionAttributeValues={":pk": {"S": f"TBUDGET#{tenant}"}})
    return {item["SK"]["S"]: item for item in resp["Items"]}


def test_dynamo_item_layout(moto_dynamodb):
    ledger = _dynamo(moto_dynamodb)
    ledger.set_budget("acme", TenantBudget(daily_usd=2.0, monthly_usd=None))
    ledger.reserve("acme", 0.1, NOW)
    ledger.reserve("acme", 0.2, NOW)
    items = _items(moto_dynamodb, ledger.table_name, "acme")
    assert set(items) == {"CONFIG", "D#2025-03-15", "M#2025-03"}
    assert Decimal(items["CONFIG"]["daily_usd"]["N"]) == 2 and "monthly_usd" not in items["CONFIG"]
    assert "expires_at" not in items["CONFIG"]
    for sk in ("D#2025-03-15", "M#2025-03"):
        assert Decimal(items[sk]["committed_usd"]["N"]) == Decimal("0.3")
    day_ttl = int((datetime(2025, 3, 15, tzinfo=UTC) + timedelta(days=3)).timestamp())
    month_ttl = int((datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=40)).timestamp())
    assert int(items["D#2025-03-15"]["expires_at"]["N"]) == day_ttl
    assert int(items["M#2025-03"]["expires_at"]["N"]) == month_ttl


def test_dynamo_refusal_writes_nothing(moto_dynamodb):
    ledger = _dynamo(moto_dynamodb)
    ledger.set_budget("acme", TenantBudget(daily_usd=1.0, monthly_usd=10.0))
    ledger.reserve("acme", 0.9, NOW - timedelta(days=1))
    ledger.reserve("acme", 0.9, NOW)
    before = _items(moto_dynamodb, ledger.table_name, "acme")
    with pytest.raises(TenantBudgetExceededError):
        ledger.reserve("acme", 0.2, NOW)
    assert _items(moto_dynamodb, ledger.table_name, "acme") == before
    assert Decimal(before["M#2025-03"]["committed_usd"]["N"]) == Decimal("1.8")


def test_dynamo_builds_its_client_lazily():
    ledger = DynamoTenantLedger("nowhere")
    assert ledger._client is None
    with pytest.raises(ValueError):
        ledger.reserve("bad#tenant", 0.1, NOW)
    assert ledger._client is None


class _FlakyClient:
    """Cancels the first ``conflicts`` transactions with TransactionConflict, then delegates to ``real``."""

    def __init__(self, real, conflicts: int, code: str = "TransactionConflict") -> None:
        self.real, self.conflicts, self.code, self.transactions = real, conflicts, code, 0

    def transact_write_items(self, **kwargs):
        self.transactions += 1
        if self.conflicts > 0:
            self.conflicts -= 1
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                               "CancellationReasons": [{"Code": self.code}, {"Code": "None"}]},
                              "TransactWriteItems")
        return self.real.transact_write_items(**kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_dynamo_retries_transaction_conflicts(moto_dynamodb):
    table = _dynamo(moto_dynamodb).table_name
    flaky = _FlakyClient(moto_dynamodb, conflicts=2)
    ledger = DynamoTenantLedger(table, client=flaky, default=TenantBudget(daily_usd=1.0))
    ledger.reserve("acme", 0.4, NOW)
    assert flaky.transactions == 3
    assert ledger.spent("acme", NOW) == (0.4, 0.4)
    flaky.conflicts = 1
    ledger.settle("acme", -0.1, NOW)
    assert ledger.spent("acme", NOW) == (usd(0.4, -0.1), usd(0.4, -0.1))


def test_dynamo_other_failures_are_store_errors(moto_dynamodb):
    table = _dynamo(moto_dynamodb).table_name
    ledger = DynamoTenantLedger(table, client=_FlakyClient(moto_dynamodb, conflicts=1, code="ValidationError"))
    with pytest.raises(StoreError, match="ValidationError"):
        ledger.reserve("acme", 0.4, NOW)
    with pytest.raises(StoreError, match="ResourceNotFoundException"):
        DynamoTenantLedger("missing-table", client=moto_dynamodb).spent("acme", NOW)


# ------------------------------------------------------------------------------------------------ env
def test_default_budget_from_env():
    assert default_budget_from_env({}) == TenantBudget(daily_usd=None, monthly_usd=None)
    assert default_budget_from_env({"STEPCREW_TENANT_DAILY_USD": "", "STEPCREW_TENANT_MONTHLY_USD": " "}) == \
        TenantBudget()
    assert default_budget_from_env({"STEPCREW_TENANT_DAILY_USD": "2.5", "STEPCREW_TENANT_MONTHLY_USD": "40"}) == \
        TenantBudget(daily_usd=2.5, monthly_usd=40)
    assert default_budget_from_env({"STEPCREW_TENANT_MONTHLY_USD": "1000000"}).monthly_usd == 1_000_000


@pytest.mark.parametrize("name", ["STEPCREW_TENANT_DAILY_USD", "STEPCREW_TENANT_MONTHLY_USD"])
@pytest.mark.parametrize("raw", ["abc", "0", "-1", "nan", "inf", "1000001", "1e400", "$5"])
def test_default_budget_from_env_rejects(name, raw):
    with pytest.raises(ValueError, match=name) as info:
        default_budget_from_env({name: raw})
    assert "\n" not in str(info.value)


def test_default_budget_from_os_environ(monkeypatch):
    monkeypatch.setenv("STEPCREW_TENANT_DAILY_USD", "3")
    monkeypatch.delenv("STEPCREW_TENANT_MONTHLY_USD", raising=False)
    assert default_budget_from_env() == TenantBudget(daily_usd=3.0)
