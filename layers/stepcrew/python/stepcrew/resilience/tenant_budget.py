"""Per-tenant dollar budgets (daily and monthly), with a reservation before each model call.

A run's own budget (``Run.budget``) bounds one run; this ledger bounds what a tenant spends over all its runs
together, per UTC day and per UTC month. The flow around one model call:

1. :meth:`TenantLedger.check` before a run starts: :class:`TenantBudgetExceededError` if a committed amount has
   already reached its cap.
2. :meth:`TenantLedger.reserve` before the call, with the call's worst-case cost: adds it to the day's and the
   month's committed counters only if both stay within their caps; otherwise nothing moves and
   :class:`TenantBudgetExceededError` names the budget that refused.
3. :meth:`TenantLedger.settle` after the call, with ``actual - reserved`` (usually negative) and
   ``reserved_at`` = the time of the reservation, so the correction lands in the buckets the reservation used.

DynamoDB layout (the run table; see :mod:`stepcrew.store.schema`), partition ``TBUDGET#<tenant>``:

==================  =====================================================================================
SK                  item
==================  =====================================================================================
``CONFIG``          the tenant's budget: ``daily_usd``, ``monthly_usd`` (Numbers; absent = no cap). No TTL.
``D#YYYY-MM-DD``    the UTC day's committed dollars ``committed_usd`` (Number); ``expires_at`` = the day's
                    start + 3 days
``M#YYYY-MM``       the UTC month's committed dollars ``committed_usd``; ``expires_at`` = the month's start
                    + 40 days
==================  =====================================================================================

Atomicity: :meth:`DynamoTenantLedger.reserve` is ONE ``TransactWriteItems`` of two conditional Updates (day, month),
each ``ADD committed_usd :usd`` if ``committed_usd <= cap - usd`` (the subtraction is done here, in Decimal: a
condition expression cannot add), so either both counters move or neither. The ``CancellationReasons`` say which
condition failed. :meth:`DynamoTenantLedger.settle` is one transaction as well (unconditional ``ADD`` for a
positive delta; for a negative one, ``ADD`` if the counter covers it, else ``SET`` to 0, retried on a race), so a
counter never goes below 0. Transactions cancelled by ``TransactionConflict`` or throttling (concurrent
reservations of the same tenant on AWS) are retried here a few times with jittered back-off; botocore does not
retry them.

Money: every amount is ``Decimal(str(x))`` rounded to 1e-12 USD (pico-dollars), then summed exactly (by DynamoDB's
Number arithmetic or by Decimal here): 10 reservations of 0.10 commit exactly 1.00, and counters stay far inside
DynamoDB's 38 significant digits. Amounts are at most :data:`MAX_AMOUNT_USD`.

Costs: :meth:`reserve` reads the CONFIG item (one strongly consistent read) and writes one transaction (2 items,
transactional writes cost twice a standard write). TTL deletion is lazy (DynamoDB removes expired items within a
few days); expired counters are never read again because their day or month is over.

Tenant ids must match :data:`TENANT_ID_PATTERN` (no ``#``, exact partition keys only, never a prefix query), so
one tenant cannot address another's items.
"""

from __future__ import annotations

import math
import os
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.store.base import StoreError

TENANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
MAX_BUDGET_USD = 1_000_000.0
MAX_AMOUNT_USD = 1_000_000_000.0  # per reserve / settle call
PK_PREFIX = "TBUDGET#"
CONFIG_SK = "CONFIG"
DAY_PREFIX = "D#"
MONTH_PREFIX = "M#"
COMMITTED = "committed_usd"
TTL_ATTRIBUTE = "expires_at"
DAY_TTL = timedelta(days=3)
MONTH_TTL = timedelta(days=40)
ENV_DAILY = "STEPCREW_TENANT_DAILY_USD"
ENV_MONTHLY = "STEPCREW_TENANT_MONTHLY_USD"

_QUANTUM = Decimal("1e-12")
_ZERO = Decimal(0)
_RETRYABLE_REASONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
_ATTEMPTS = 8

Usd = Annotated[float, Field(gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False)]
BudgetName = Literal["daily", "monthly"]


class TenantBudget(BaseModel):
    """A tenant's caps in USD: finite, > 0 and <= 1,000,000; None = no cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_usd: Usd | None = None
    monthly_usd: Usd | None = None


NO_CAP = TenantBudget(daily_usd=None, monthly_usd=None)


def _fmt_usd(value: float) -> str:
    return "$" + format(Decimal(str(value)).normalize(), "f")


class TenantBudgetExceededError(Exception):
    """A tenant's daily or monthly budget refused a run or a reservation.

    ``budget``: "daily" or "monthly"; ``limit_usd``: the cap; ``spent_usd``: the committed amount at refusal;
    ``resets_at``: when the budget starts over (the next UTC midnight, or the first of next month 00:00 UTC);
    ``requested_usd``: the refused reservation (None when :meth:`TenantLedger.check` refused)."""

    def __init__(self, tenant: str, budget: BudgetName, limit_usd: float, spent_usd: float, resets_at: datetime,
                 requested_usd: float | None = None) -> None:
        self.tenant, self.budget, self.limit_usd, self.spent_usd = tenant, budget, limit_usd, spent_usd
        self.resets_at, self.requested_usd = resets_at, requested_usd
        what = "is used up" if requested_usd is None else f"cannot cover {_fmt_usd(requested_usd)} more"
        super().__init__(f"tenant {tenant}: {budget} budget of {_fmt_usd(limit_usd)} {what} "
                         f"({_fmt_usd(spent_usd)} committed); resets at {resets_at:%Y-%m-%dT%H:%M:%SZ}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.tenant, self.budget, self.limit_usd, self.spent_usd, self.resets_at,
                             self.requested_usd))


# --------------------------------------------------------------------------------------------- validation
def check_tenant(tenant: str) -> str:
    """``tenant`` if it matches :data:`TENANT_ID_PATTERN`, else ValueError."""
    if not isinstance(tenant, str) or TENANT_ID_PATTERN.fullmatch(tenant) is None:
        raise ValueError("invalid tenant id: 1-128 characters of A-Z a-z 0-9 _ . @ -, starting with a letter "
                         "or digit")
    return tenant


def _utc(now: datetime, name: str = "now") -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return now.astimezone(UTC)


def _amount(value: float, name: str, *, signed: bool = False) -> Decimal:
    """``Decimal(str(value))`` rounded to 1e-12. TypeError unless a number; ValueError unless finite,
    |value| <= MAX_AMOUNT_USD and (unless ``signed``) >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{name} must be a number of dollars")
    if not math.isfinite(value) or abs(value) > MAX_AMOUNT_USD or (not signed and value < 0):
        rule = "finite" if signed else "finite and >= 0"
        raise ValueError(f"{name} must be {rule} with magnitude <= {MAX_AMOUNT_USD:.0f}, got {value!r}")
    return Decimal(str(value)).quantize(_QUANTUM)


def _cap(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def day_start(now: datetime) -> datetime:
    now = _utc(now)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def month_start(now: datetime) -> datetime:
    now = _utc(now)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_day(now: datetime) -> datetime:
    """The next UTC midnight after ``now`` (when the daily budget resets)."""
    return day_start(now) + timedelta(days=1)


def next_month(now: datetime) -> datetime:
    """The first of the month after ``now``, 00:00 UTC (when the monthly budget resets)."""
    start = month_start(now)
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def day_sk(now: datetime) -> str:
    return f"{DAY_PREFIX}{_utc(now):%Y-%m-%d}"


def month_sk(now: datetime) -> str:
    return f"{MONTH_PREFIX}{_utc(now):%Y-%m}"


def default_budget_from_env(env: Mapping[str, str] | None = None) -> TenantBudget:
    """The default budget from ``STEPCREW_TENANT_DAILY_USD`` / ``STEPCREW_TENANT_MONTHLY_USD`` (of ``env``, else
    ``os.environ``): unset or empty = no cap; otherwise a number > 0 and <= 1,000,000 (ValueError naming the
    variable)."""
    env = os.environ if env is None else env
    values: dict[str, float | None] = {}
    for field, name in (("daily_usd", ENV_DAILY), ("monthly_usd", ENV_MONTHLY)):
        raw = (env.get(name) or "").strip()
        if not raw:
            values[field] = None
            continue
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and 0 < number <= MAX_BUDGET_USD):
            raise ValueError(f"{name} must be a number of dollars > 0 and <= {MAX_BUDGET_USD:.0f} "
                             f"(or empty for no cap), got {raw!r}")
        values[field] = number
    return TenantBudget(**values)


# ------------------------------------------------------------------------------------------------ the port
class TenantLedger(ABC):
    """Per-tenant daily and monthly budgets and their committed counters (see the module docstring).

    ``default``: the budget of tenants without a configured one. Every method validates the tenant id
    (ValueError) and ``now`` (timezone-aware; ValueError otherwise); days and months are UTC."""

    def __init__(self, default: TenantBudget = NO_CAP) -> None:
        if not isinstance(default, TenantBudget):
            raise TypeError("default must be a TenantBudget")
        self.default = default

    @abstractmethod
    def get_budget(self, tenant: str) -> TenantBudget:
        """The tenant's configured budget, else the default."""

    @abstractmethod
    def set_budget(self, tenant: str, budget: TenantBudget) -> None:
        """Configure the tenant's budget (replaces the previous one; None fields = no cap, not the default)."""

    @abstractmethod
    def _committed(self, tenant: str, now: datetime) -> tuple[Decimal, Decimal]:
        """The committed amounts of ``now``'s UTC day and month (0 when nothing was committed)."""

    @abstractmethod
    def reserve(self, tenant: str, usd: float, now: datetime) -> None:
        """Atomically add ``usd`` (finite, >= 0) to the day's and the month's committed counters, only if each
        stays <= its cap; otherwise nothing is added and TenantBudgetExceededError names the budget that refused
        (the daily one when both would)."""

    @abstractmethod
    def settle(self, tenant: str, delta_usd: float, now: datetime, reserved_at: datetime | None = None) -> None:
        """Add ``delta_usd`` (finite, may be negative: actual cost minus the reservation) to the counters of the
        day and month of ``reserved_at`` (default ``now``), without a cap; a counter never goes below 0 (a
        negative delta larger than the counter sets it to 0)."""

    def spent(self, tenant: str, now: datetime) -> tuple[float, float]:
        """(daily committed, monthly committed) in USD for ``now``'s UTC day and month."""
        daily, monthly = self._committed(check_tenant(tenant), _utc(now))
        return float(daily), float(monthly)

    def check(self, tenant: str, now: datetime) -> None:
        """TenantBudgetExceededError if the day's or the month's committed amount has reached its cap."""
        now = _utc(now)
        budget = self.get_budget(check_tenant(tenant))
        if budget.daily_usd is None and budget.monthly_usd is None:
            return
        daily, monthly = self._committed(tenant, now)
        for name, cap, committed in (("daily", budget.daily_usd, daily), ("monthly", budget.monthly_usd, monthly)):
            if cap is not None and committed >= _cap(cap):
                raise self._exceeded(tenant, name, cap, committed, now)

    @staticmethod
    def _exceeded(tenant: str, budget: BudgetName, cap: float, committed: Decimal, now: datetime,
                  requested: Decimal | None = None) -> TenantBudgetExceededError:
        resets = next_day(now) if budget == "daily" else next_month(now)
        return TenantBudgetExceededError(tenant, budget, cap, float(committed), resets,
                                         None if requested is None else float(requested))

    def _refuse(self, tenant: str, budget: TenantBudget, usd: Decimal, now: datetime,
                committed: tuple[Decimal, Decimal]) -> None:
        """TenantBudgetExceededError for the first budget (daily, then monthly) that ``committed + usd`` exceeds."""
        for name, cap, spent in (("daily", budget.daily_usd, committed[0]),
                                 ("monthly", budget.monthly_usd, committed[1])):
            if cap is not None and spent + usd > _cap(cap):
                raise self._exceeded(tenant, name, cap, spent, now, usd)

    def _refuse_oversized(self, tenant: str, budget: TenantBudget, usd: Decimal, now: datetime) -> None:
        """A reservation larger than a cap is refused without a write (an absent counter would accept it)."""
        if any(cap is not None and usd > _cap(cap) for cap in (budget.daily_usd, budget.monthly_usd)):
            self._refuse(tenant, budget, usd, now, self._committed(tenant, now))


# ------------------------------------------------------------------------------------------------ in memory
class MemoryTenantLedger(TenantLedger):
    """In-process ledger (tests, the dev server): one lock around every operation, same semantics as
    :class:`DynamoTenantLedger`. Counters of past days and months are dropped as time moves on."""

    def __init__(self, default: TenantBudget = NO_CAP) -> None:
        super().__init__(default)
        self._lock = threading.Lock()
        self._budgets: dict[str, TenantBudget] = {}
        self._counters: dict[tuple[str, str], Decimal] = {}
        self._expiry: dict[tuple[str, str], datetime] = {}

    def get_budget(self, tenant: str) -> TenantBudget:
        with self._lock:
            return self._budgets.get(check_tenant(tenant), self.default)

    def set_budget(self, tenant: str, budget: TenantBudget) -> None:
        if not isinstance(budget, TenantBudget):
            raise TypeError("budget must be a TenantBudget")
        with self._lock:
            self._budgets[check_tenant(tenant)] = budget

    def _keys(self, tenant: str, at: datetime) -> tuple[tuple[str, str], tuple[str, str]]:
        return (tenant, day_sk(at)), (tenant, month_sk(at))

    def _expire(self, now: datetime) -> None:
        for key in [k for k, when in self._expiry.items() if when <= now]:
            del self._expiry[key], self._counters[key]

    def _add(self, key: tuple[str, str], delta: Decimal, expires: datetime) -> None:
        self._counters[key] = max(_ZERO, self._counters.get(key, _ZERO) + delta)
        self._expiry[key] = expires

    def _committed(self, tenant: str, now: datetime) -> tuple[Decimal, Decimal]:
        day, month = self._keys(tenant, now)
        with self._lock:
            return self._counters.get(day, _ZERO), self._counters.get(month, _ZERO)

    def reserve(self, tenant: str, usd: float, now: datetime) -> None:
        amount, now = _amount(usd, "usd"), _utc(now)
        budget = self.get_budget(check_tenant(tenant))
        day, month = self._keys(tenant, now)
        with self._lock:
            self._expire(now)
            self._refuse(tenant, budget, amount, now, (self._counters.get(day, _ZERO), self._counters.get(month, _ZERO)))
            self._add(day, amount, day_start(now) + DAY_TTL)
            self._add(month, amount, month_start(now) + MONTH_TTL)

    def settle(self, tenant: str, delta_usd: float, now: datetime, reserved_at: datetime | None = None) -> None:
        delta, now = _amount(delta_usd, "delta_usd", signed=True), _utc(now)
        at = now if reserved_at is None else _utc(reserved_at, "reserved_at")
        day, month = self._keys(check_tenant(tenant), at)
        if delta == 0:
            return
        with self._lock:
            self._add(day, delta, day_start(at) + DAY_TTL)
            self._add(month, delta, month_start(at) + MONTH_TTL)


# ------------------------------------------------------------------------------------------------ DynamoDB
class DynamoTenantLedger(TenantLedger):
    """The ledger on the run table (layout and atomicity in the module docstring).

    ``client``: a low-level boto3 ``dynamodb`` client; when None, one is built on first use with botocore's
    "standard" retry mode. DynamoDB failures other than a budget refusal raise
    :class:`stepcrew.store.base.StoreError` with the error code."""

    def __init__(self, table_name: str, client: Any = None, default: TenantBudget = NO_CAP) -> None:
        super().__init__(default)
        self.table_name = table_name
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client("dynamodb",
                                                config=Config(retries={"mode": "standard", "max_attempts": 5}))
        return self._client

    # ------------------------------------------------------------------------------------------ plumbing
    @staticmethod
    def _key(tenant: str, sk: str) -> dict[str, Any]:
        return {"PK": {"S": PK_PREFIX + tenant}, "SK": {"S": sk}}

    @staticmethod
    def _n(value: Decimal | float) -> dict[str, str]:
        return {"N": format(Decimal(str(value)).normalize(), "f")}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as e:
            error = e.response.get("Error", {})
            if error.get("Code") == "TransactionCanceledException":
                raise _Cancelled([r.get("Code", "None") for r in e.response.get("CancellationReasons", [])],
                                 e.response.get("CancellationReasons", [])) from e
            raise StoreError(f"DynamoDB {operation} on table {self.table_name!r} failed: "
                             f"{error.get('Code', '')}: {error.get('Message', '')}") from e

    def _transact(self, build: Callable[[], list[dict[str, Any]]]) -> None:
        """Run ``TransactWriteItems`` with the items of ``build()`` (rebuilt per attempt), retrying cancellations
        caused only by conflicts or throttling. A ConditionalCheckFailed cancellation propagates as _Cancelled."""
        for attempt in range(_ATTEMPTS):
            try:
                self._call("transact_write_items", TransactItems=build())
                return
            except _Cancelled as c:
                failed = {code for code in c.codes if code not in ("None", None)}
                if "ConditionalCheckFailed" in failed:
                    raise
                if not failed or not failed <= _RETRYABLE_REASONS:
                    raise StoreError(f"DynamoDB transaction on table {self.table_name!r} cancelled: "
                                     f"{', '.join(sorted(failed))}") from c
                if attempt == _ATTEMPTS - 1:
                    raise StoreError(f"DynamoDB transaction on table {self.table_name!r} still conflicting after "
                                     f"{_ATTEMPTS} attempts: {', '.join(sorted(failed))}") from c
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))

    def _update(self, tenant: str, sk: str, expression: str, values: dict[str, Any],
                condition: str | None = None) -> dict[str, Any]:
        update: dict[str, Any] = {"TableName": self.table_name, "Key": self._key(tenant, sk),
                                  "UpdateExpression": expression, "ExpressionAttributeValues": values}
        if condition is not None:
            update["ConditionExpression"] = condition
            update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {"Update": update}

    @staticmethod
    def _ttl(start: datetime, ttl: timedelta) -> int:
        return int((start + ttl).timestamp())

    def _read(self, tenant: str, sk: str) -> dict[str, Any] | None:
        return self._call("get_item", TableName=self.table_name, Key=self._key(tenant, sk),
                          ConsistentRead=True).get("Item")

    def _counter(self, tenant: str, sk: str) -> Decimal:
        item = self._read(tenant, sk)
        return Decimal(item[COMMITTED]["N"]) if item and COMMITTED in item else _ZERO

    # ------------------------------------------------------------------------------------------ the port
    def get_budget(self, tenant: str) -> TenantBudget:
        item = self._read(check_tenant(tenant), CONFIG_SK)
        if item is None:
            return self.default
        return TenantBudget(**{name: float(item[name]["N"]) if name in item else None
                               for name in ("daily_usd", "monthly_usd")})

    def set_budget(self, tenant: str, budget: TenantBudget) -> None:
        if not isinstance(budget, TenantBudget):
            raise TypeError("budget must be a TenantBudget")
        item: dict[str, Any] = {**self._key(check_tenant(tenant), CONFIG_SK),
                                "updated_at": {"S": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
        for name in ("daily_usd", "monthly_usd"):
            value = getattr(budget, name)
            if value is not None:
                item[name] = self._n(value)
        self._call("put_item", TableName=self.table_name, Item=item)

    def _committed(self, tenant: str, now: datetime) -> tuple[Decimal, Decimal]:
        return self._counter(tenant, day_sk(now)), self._counter(tenant, month_sk(now))

    def reserve(self, tenant: str, usd: float, now: datetime) -> None:
        amount, now = _amount(usd, "usd"), _utc(now)
        budget = self.get_budget(check_tenant(tenant))
        self._refuse_oversized(tenant, budget, amount, now)
        limits = (("daily", day_sk(now), budget.daily_usd, self._ttl(day_start(now), DAY_TTL)),
                  ("monthly", month_sk(now), budget.monthly_usd, self._ttl(month_start(now), MONTH_TTL)))

        def build() -> list[dict[str, Any]]:
            items = []
            for _, sk, cap, ttl in limits:
                values = {":usd": self._n(amount), ":ttl": {"N": str(ttl)}}
                condition = None
                if cap is not None:  # committed + usd <= cap, as committed <= cap - usd (>= 0, checked above)
                    values[":max"] = self._n(_cap(cap) - amount)
                    condition = f"attribute_not_exists({COMMITTED}) OR {COMMITTED} <= :max"
                items.append(self._update(tenant, sk, f"ADD {COMMITTED} :usd SET {TTL_ATTRIBUTE} = :ttl", values,
                                          condition))
            return items

        try:
            self._transact(build)
        except _Cancelled as c:
            for index, (name, sk, cap, _) in enumerate(limits):
                if index < len(c.codes) and c.codes[index] == "ConditionalCheckFailed" and cap is not None:
                    old = c.reasons[index].get("Item") or {}
                    committed = Decimal(old[COMMITTED]["N"]) if COMMITTED in old else self._counter(tenant, sk)
                    raise self._exceeded(tenant, name, cap, committed, now, amount) from None
            raise StoreError(f"DynamoDB transaction on table {self.table_name!r} cancelled: "
                             f"{', '.join(map(str, c.codes))}") from c

    def settle(self, tenant: str, delta_usd: float, now: datetime, reserved_at: datetime | None = None) -> None:
        delta, now = _amount(delta_usd, "delta_usd", signed=True), _utc(now)
        at = now if reserved_at is None else _utc(reserved_at, "reserved_at")
        check_tenant(tenant)
        if delta == 0:
            return
        counters = ((day_sk(at), self._ttl(day_start(at), DAY_TTL)),
                    (month_sk(at), self._ttl(month_start(at), MONTH_TTL)))
        add = f"ADD {COMMITTED} :delta SET {TTL_ATTRIBUTE} = :ttl"
        if delta > 0:
            self._transact(lambda: [self._update(tenant, sk, add, {":delta": self._n(delta),
                                                                   ":ttl": {"N": str(ttl)}})
                                    for sk, ttl in counters])
            return
        # Negative: subtract where the counter covers it, else set it to 0; each choice is a condition, so a
        # concurrent change cancels the transaction and the choice is made again from a fresh read.
        covers = [True, True]
        for _ in range(_ATTEMPTS):
            items = []
            for (sk, ttl), sub in zip(counters, covers, strict=True):
                values = {":abs": self._n(-delta), ":ttl": {"N": str(ttl)}}
                if sub:
                    values[":delta"] = self._n(delta)
                    items.append(self._update(tenant, sk, add, values, f"{COMMITTED} >= :abs"))
                else:
                    values[":zero"] = {"N": "0"}
                    items.append(self._update(tenant, sk, f"SET {COMMITTED} = :zero, {TTL_ATTRIBUTE} = :ttl", values,
                                              f"attribute_not_exists({COMMITTED}) OR {COMMITTED} < :abs"))
            try:
                self._transact(lambda items=items: items)
                return
            except _Cancelled:
                covers = [self._counter(tenant, sk) >= -delta for sk, _ in counters]
        raise StoreError(f"settle on table {self.table_name!r}: counters kept changing for {_ATTEMPTS} attempts")


class _Cancelled(Exception):
    """A TransactWriteItems was cancelled; ``codes``: one CancellationReasons code per item, in order."""

    def __init__(self, codes: list[str], reasons: list[dict[str, Any]]) -> None:
        super().__init__(", ".join(map(str, codes)))
        self.codes, self.reasons = codes, reasons


def ledger_for(store: Any, env: Mapping[str, str] | None = None) -> TenantLedger:
    """The ledger on a run store's table: :class:`DynamoTenantLedger` on a ``DynamoRunStore`` (its table and
    client), else a :class:`MemoryTenantLedger`; default caps from :func:`default_budget_from_env`."""
    default = default_budget_from_env(env)
    table = getattr(store, "table_name", None)
    if table:
        return DynamoTenantLedger(table, client=getattr(store, "_client", None), default=default)
    return MemoryTenantLedger(default=default)
