"""Per-tenant request limits of the HTTP API, counted in the run table (fixed one-minute windows).

API Gateway throttles per route and stage, for everyone together (``infra/stepcrew_infra/constants.py``:
``API_THROTTLE_*``, ``API_ROUTE_THROTTLES``); one tenant could still use all of it. So each authenticated request is
also counted per tenant and minute: ``RATE#<tenant> / <window>#<bucket>`` with ``ADD n :one`` conditioned on
``n < limit`` (one atomic UpdateItem; a refused request adds nothing) and a TTL two minutes after the window. Over
the limit the API answers 429 ``rate_limited`` with ``Retry-After`` (seconds to the next window).

Buckets: ``start`` (POST /runs, approvals, reviews: they start or resume work) and ``read`` (every other
authenticated route). DynamoDB over API Gateway usage plans: HTTP APIs have no usage plans or API keys, and the
tenant is a JWT claim API Gateway cannot key throttles on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Requests per tenant per minute, per bucket (env STEPCREW_TENANT_RATE_START / STEPCREW_TENANT_RATE_READ).
DEFAULT_LIMITS = {"start": 30, "read": 600}
WINDOW_S = 60


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0
    limit: int = 0


def bucket_of(method: str) -> str:
    """``start`` for the routes that start or resume work, ``read`` otherwise."""
    return "start" if method == "POST" else "read"


class RateLimiter:
    """Counts a tenant's requests per bucket and minute; :meth:`hit` says whether one more is allowed."""

    def __init__(self, limits: dict[str, int] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.clock = clock

    def _window(self) -> tuple[int, int]:
        now = self.clock()
        start = int(now // WINDOW_S) * WINDOW_S
        return start, max(1, int(start + WINDOW_S - now + 0.999))

    def hit(self, tenant: str, bucket: str) -> RateDecision:
        limit = self.limits.get(bucket, self.limits["read"])
        window, retry = self._window()
        if self._add(tenant, bucket, window, limit):
            return RateDecision(True, limit=limit)
        return RateDecision(False, retry_after_s=retry, limit=limit)

    def _add(self, tenant: str, bucket: str, window: int, limit: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class MemoryRateLimiter(RateLimiter):
    """In-process counters (the dev server, tests)."""

    def __init__(self, limits: dict[str, int] | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(limits, clock)
        self._counts: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def _add(self, tenant: str, bucket: str, window: int, limit: int) -> bool:
        with self._lock:
            key = (tenant, bucket, window)
            for old in [k for k in self._counts if k[2] < window]:
                del self._counts[old]
            if self._counts.get(key, 0) >= limit:
                return False
            self._counts[key] = self._counts.get(key, 0) + 1
            return True


class DynamoRateLimiter(RateLimiter):
    """Counters in the run table (see the module docstring). A DynamoDB failure lets the request through (the
    stage throttles still hold) and is logged by the caller: a limiter outage must not take the API down."""

    def __init__(self, client: Any, table: str, limits: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(limits, clock)
        self.client, self.table = client, table

    def _add(self, tenant: str, bucket: str, window: int, limit: int) -> bool:
        try:
            self.client.update_item(
                TableName=self.table, Key={"PK": {"S": f"RATE#{tenant}"}, "SK": {"S": f"{window}#{bucket}"}},
                UpdateExpression="ADD n :one SET expires_at = :ttl",
                ConditionExpression="attribute_not_exists(n) OR n < :limit",
                ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(limit)},
                                           ":ttl": {"N": str(window + 2 * WINDOW_S)}})
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
