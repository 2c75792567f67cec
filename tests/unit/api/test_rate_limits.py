"""Per-tenant request limits (issue 7, part 6): a tenant over its per-minute limit gets 429 rate_limited with
Retry-After and nothing is started; another tenant is not affected; the counters live in the run table."""

from __future__ import annotations

from api_helpers import Api, http_event

from stepcrew.api.app import ApiConfig
from stepcrew.api.ratelimit import DynamoRateLimiter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limited_api(aws, clock: Clock, start: int = 2, read: int = 3) -> Api:
    ddb, table = aws
    return Api.build(aws, ApiConfig(), DynamoRateLimiter(ddb, table, {"start": start, "read": read}, clock=clock))


def test_a_tenant_over_its_start_limit_gets_429_with_retry_after_and_nothing_starts(aws):
    clock = Clock(1_800_000_015.0)  # 15 s into a minute window
    api = limited_api(aws, clock)
    post = http_event("POST", "/runs", body={"goal": "Sum 2 and 3"})
    assert [api.call(post)[0] for _ in range(2)] == [202, 202]
    status, headers, data = api.call(post)
    assert status == 429 and data["error"]["code"] == "rate_limited" and headers["retry-after"] == "45"
    assert len(api.starter.started) == 2
    # another tenant has its own count, and reads have their own bucket
    assert api.call(http_event("POST", "/runs", body={"goal": "Sum 2 and 3"}, tenant="globex"))[0] == 202
    assert api.call(http_event("GET", "/runs"))[0] == 200
    # the next window starts afresh
    clock.now += 60
    assert api.call(post)[0] == 202


def test_health_is_never_counted(aws):
    api = limited_api(aws, Clock(1_800_000_000.0), read=1)
    assert [api.call(http_event("GET", "/health", tenant=None))[0] for _ in range(5)] == [200] * 5
