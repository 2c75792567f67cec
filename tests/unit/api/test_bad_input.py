"""Every bad input of every route: Given a bad request, when the API answers, then it is a JSON error
``{"error": {"code", "message"}}`` with the documented 4xx, nothing in the table changed, no execution was started
and no task token was answered. Never a 5xx for bad input."""

from __future__ import annotations

import base64
import json

import pytest
from api_helpers import http_event, start

from stepcrew.api.errors import MAX_BODY_BYTES
from stepcrew.models import RunStatus

SECRET = "TOP-SECRET-GOAL-TEXT"


def assert_rejected(api, event: dict, status: int, code: str) -> dict:
    before = api.table_items()
    started, answered = list(api.starter.started), list(api.tasks.answers)
    got_status, headers, data = api.call(event)
    assert (got_status, data and data.get("error", {}).get("code")) == (status, code), data
    assert headers["content-type"] == "application/json"
    assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    assert SECRET not in data["error"]["message"]  # request content is never echoed
    assert api.table_items() == before, "the table changed"
    assert api.starter.started == started and api.tasks.answers == answered
    return data


def post_runs(body=None, **kw) -> dict:
    return http_event("POST", "/runs", body=body, **kw)


BAD_POST_RUNS = {
    "truncated JSON": (post_runs(raw_body='{"goal": "x"'), 400, "malformed_json"),
    "not JSON": (post_runs(raw_body="goal=x"), 400, "malformed_json"),
    "NaN is not JSON": (post_runs(raw_body='{"goal": "x", "review": {"threshold": NaN}}'), 400, "malformed_json"),
    "Infinity is not JSON": (post_runs(raw_body='{"goal": "x", "budget": {"max_cost_usd": Infinity}}'), 400,
                             "malformed_json"),
    "nested too deeply": (post_runs(raw_body="[" * 30000 + "]" * 30000), 400, "malformed_json"),
    "bad base64": (post_runs(raw_body="!!!not-base64!!!", base64_body=False) | {"isBase64Encoded": True}, 400,
                   "malformed_json"),
    "not UTF-8": (post_runs() | {"body": base64.b64encode(b'{"goal": "\xff\xfe"}').decode(), "isBase64Encoded": True},
                  400, "malformed_json"),
    "no body": (post_runs(), 400, "validation_error"),
    "JSON array": (post_runs(raw_body="[]"), 400, "validation_error"),
    "JSON string": (post_runs(raw_body='"Sum 2 and 3"'), 400, "validation_error"),
    "missing goal": (post_runs({}), 400, "validation_error"),
    "goal not a string": (post_runs({"goal": 123}), 400, "validation_error"),
    "empty goal": (post_runs({"goal": ""}), 400, "validation_error"),
    "blank goal": (post_runs({"goal": "   \n\t "}), 400, "validation_error"),
    "goal over 10,000 characters": (post_runs({"goal": SECRET + "x" * 10_000}), 400, "validation_error"),
    "unknown field": (post_runs({"goal": SECRET, "colour": "red"}), 400, "validation_error"),
    "tenant in the body": (post_runs({"goal": SECRET, "tenant": "other-tenant"}), 400, "validation_error"),
    "boolean as string": (post_runs({"goal": SECRET, "require_approval": "true"}), 400, "validation_error"),
    "input value not a string": (post_runs({"goal": SECRET, "inputs": {"n": 1}}), 400, "validation_error"),
    "too many inputs": (post_runs({"goal": SECRET, "inputs": {f"k{i}": "v" for i in range(33)}}), 400,
                        "validation_error"),
    "threshold out of range": (post_runs({"goal": SECRET, "review": {"threshold": 2}}), 400, "validation_error"),
    "max_rounds wrong type": (post_runs({"goal": SECRET, "review": {"max_rounds": "three"}}), 400,
                              "validation_error"),
    "zero token budget": (post_runs({"goal": SECRET, "budget": {"max_tokens": 0}}), 400, "validation_error"),
    "crew as a path": (post_runs({"goal": SECRET, "crew": "../../etc/passwd"}), 400, "validation_error"),
    "unknown crew": (post_runs({"goal": SECRET, "crew": "nope"}), 400, "unknown_crew"),
    "malformed provider": (post_runs({"goal": SECRET, "provider": "Bad Provider!"}), 400, "validation_error"),
    "unknown provider": (post_runs({"goal": SECRET, "provider": "nope"}), 400, "unknown_provider"),
    "chain with an unknown provider": (post_runs({"goal": SECRET, "routing": {"chains": {"fast": ["nope"]}}}), 400,
                                       "invalid_routing"),
    "chain with an unconfigured provider": (post_runs({"goal": SECRET, "routing": {"chains": {"smart": [
        "anthropic"]}}}), 400, "invalid_routing"),
    "chain naming rule": (post_runs({"goal": SECRET, "routing": {"chains": {"fast": ["rule"]}}}), 400,
                          "validation_error"),
    "semantic threshold over 1": (post_runs({"goal": SECRET, "routing": {"semantic_threshold": 1.5}}), 400,
                                  "validation_error"),
    "unknown tier": (post_runs({"goal": SECRET, "routing": {"tier": "medium"}}), 400, "validation_error"),
    "negative cost budget": (post_runs({"goal": SECRET, "budget": {"max_cost_usd": -1}}), 400, "validation_error"),
    "data not a URI": (post_runs({"goal": SECRET, "data": "/etc/passwd"}), 400, "validation_error"),
    "file:// data on AWS": (post_runs({"goal": SECRET, "data": "file:///etc/passwd"}), 400, "invalid_data_uri"),
    "s3:// without a bucket": (post_runs({"goal": SECRET, "data": "s3://"}), 400, "invalid_data_uri"),
    "s3:// without a key": (post_runs({"goal": SECRET, "data": "s3://my-bucket"}), 400, "invalid_data_uri"),
    "s3:// with an invalid bucket name": (post_runs({"goal": SECRET, "data": "s3://B_ad/x.csv"}), 400,
                                          "invalid_data_uri"),
    "s3:// dataset of an unsupported type": (post_runs({"goal": SECRET, "data": "s3://my-bucket/run.sh"}), 400,
                                             "invalid_data_uri"),
    "number too large for a float": (post_runs(raw_body='{"goal": "x", "budget": {"max_cost_usd": 1e400}}'), 400,
                                     "malformed_json"),
    "negative overflow": (post_runs(raw_body='{"goal": "x", "review": {"threshold": -1e999}}'), 400,
                          "malformed_json"),
    "body over 64 KiB": (post_runs({"goal": SECRET + "x" * MAX_BODY_BYTES}), 413, "payload_too_large"),
    "base64 body over 64 KiB": (post_runs({"goal": SECRET + "x" * MAX_BODY_BYTES}, base64_body=True), 413,
                                "payload_too_large"),
    "text/plain body": (post_runs({"goal": SECRET}, headers={"content-type": "text/plain"}), 415,
                        "unsupported_media_type"),
    "Idempotency-Key with a space": (post_runs({"goal": SECRET}, headers={"Idempotency-Key": "a b"}), 400,
                                     "validation_error"),
    "Idempotency-Key over 128 characters": (post_runs({"goal": SECRET}, headers={"Idempotency-Key": "k" * 129}),
                                            400, "validation_error"),
    "no claims": (post_runs({"goal": SECRET}, tenant=None), 401, "unauthorized"),
    "claims without tenant or sub": (post_runs({"goal": SECRET}, claims={"token_use": "id"}), 401, "unauthorized"),
    "invalid tenant claim": (post_runs({"goal": SECRET}, claims={"custom:tenant": "bad tenant!"}), 403,
                             "invalid_tenant"),
}


@pytest.mark.parametrize("case", list(BAD_POST_RUNS), ids=list(BAD_POST_RUNS))
def test_post_runs_rejects(api, case):
    event, status, code = BAD_POST_RUNS[case]
    assert_rejected(api, json.loads(json.dumps(event)), status, code)


def test_validation_errors_name_the_fields(api):
    data = assert_rejected(api, post_runs({"goal": 1, "colour": "red"}), 400, "validation_error")
    assert "body.goal" in data["error"]["message"] and "body.colour" in data["error"]["message"]


def test_tenant_in_the_body_is_explained(api):
    data = assert_rejected(api, post_runs({"goal": "x", "tenant": "other"}), 400, "validation_error")
    assert "claims" in data["error"]["message"]


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"cursor": "x" * 2049}])
def test_list_runs_rejects_bad_query_parameters(api, query):
    assert_rejected(api, http_event("GET", "/runs", query=query), 400, "validation_error")


def test_list_runs_rejects_forged_and_foreign_cursors(api):
    for i in range(2):
        start(api, tenant="other-tenant", body={"goal": f"theirs {i}"})
    _, _, theirs = api.call(http_event("GET", "/runs", query={"limit": "1"}, tenant="other-tenant"))
    assert theirs["next_cursor"]
    assert_rejected(api, http_event("GET", "/runs", query={"cursor": theirs["next_cursor"]}), 400, "invalid_cursor")
    assert_rejected(api, http_event("GET", "/runs", query={"cursor": "not-a-cursor"}), 400, "invalid_cursor")


@pytest.mark.parametrize("run_id", ["0" * 32, "no-such-run", "a" * 200, "bad%23META", "..%2F..%2Fetc"])
@pytest.mark.parametrize("suffix", ["", "/events"])
def test_unknown_or_malformed_run_ids_are_404(api, run_id, suffix):
    assert_rejected(api, http_event("GET", f"/runs/{run_id}{suffix}"), 404, "run_not_found")


def test_unknown_run_approval_is_404(api):
    assert_rejected(api, http_event("POST", f"/runs/{'0' * 32}/approval", body={"approved": True}), 404,
                    "run_not_found")


def test_another_tenants_run_is_404_on_every_route_and_reveals_nothing(api):
    run_id = start(api, {"goal": SECRET, "require_approval": True}, tenant="other-tenant")
    api.store.update_run(run_id, {"status": RunStatus.WAITING_APPROVAL, "approval_token": "their-token"})
    for event in (http_event("GET", f"/runs/{run_id}"), http_event("GET", f"/runs/{run_id}/events"),
                  http_event("POST", f"/runs/{run_id}/approval", body={"approved": True})):
        data = assert_rejected(api, event, 404, "run_not_found")
        assert "WAITING" not in json.dumps(data)
    _, _, mine = api.call(http_event("GET", "/runs"))
    assert mine["runs"] == []


def test_approval_of_a_run_that_is_not_waiting_is_409(api):
    run_id = start(api)
    assert_rejected(api, http_event("POST", f"/runs/{run_id}/approval", body={"approved": True}), 409,
                    "run_not_waiting")


@pytest.mark.parametrize("body", [{"approved": "yes"}, {"approved": 1}, {}, {"approved": True, "extra": 1},
                                  {"approved": True, "comment": "c" * 1001}, {"approved": None}])
def test_approval_rejects_bad_bodies(api, body):
    run_id = start(api, {"goal": "x", "require_approval": True})
    api.store.update_run(run_id, {"status": RunStatus.WAITING_APPROVAL, "approval_token": "tok"})
    assert_rejected(api, http_event("POST", f"/runs/{run_id}/approval", body=body), 400, "validation_error")


def test_approval_rejects_an_oversized_body_with_413(api):
    run_id = start(api, {"goal": "x", "require_approval": True})
    api.store.update_run(run_id, {"status": RunStatus.WAITING_APPROVAL, "approval_token": "tok"})
    body = {"approved": True, "comment": "c" * MAX_BODY_BYTES}
    assert_rejected(api, http_event("POST", f"/runs/{run_id}/approval", body=body), 413, "payload_too_large")


def test_approval_rejects_a_number_too_large_for_a_float(api):
    run_id = start(api, {"goal": "x", "require_approval": True})
    api.store.update_run(run_id, {"status": RunStatus.WAITING_APPROVAL, "approval_token": "tok"})
    assert_rejected(api, http_event("POST", f"/runs/{run_id}/approval", raw_body='{"approved": true, "x": 1e400}'),
                    400, "malformed_json")


def test_approval_rejects_malformed_json(api):
    run_id = start(api, {"goal": "x", "require_approval": True})
    api.store.update_run(run_id, {"status": RunStatus.WAITING_APPROVAL, "approval_token": "tok"})
    assert_rejected(api, http_event("POST", f"/runs/{run_id}/approval", raw_body="{approved: true}"), 400,
                    "malformed_json")


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "1001"}, {"after": "c" * 129}])
def test_events_reject_bad_query_parameters(api, query):
    run_id = start(api)
    assert_rejected(api, http_event("GET", f"/runs/{run_id}/events", query=query), 400, "validation_error")


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("DELETE", "/nope/deeper"), ("POST", "/health/x")])
def test_unknown_routes_are_404(api, method, path):
    assert_rejected(api, http_event(method, path), 404, "route_not_found")


@pytest.mark.parametrize("path", ["/runs", f"/runs/{'0' * 32}", f"/runs/{'0' * 32}/events"])
def test_reads_without_claims_are_401(api, path):
    assert_rejected(api, http_event("GET", path, tenant=None), 401, "unauthorized")


def test_an_event_that_is_not_a_mapping_is_400(api):
    resp = api.app.resolve(["not", "an", "event"], None)  # type: ignore[arg-type]
    assert resp["statusCode"] == 400 and json.loads(resp["body"])["error"]["code"] == "unsupported_event"


# ------------------------------------------------------------------------------------------------ store-safe numbers
@pytest.mark.parametrize("body", [
    {"goal": "g", "budget": {"max_cost_usd": 1e300}},
    {"goal": "g", "budget": {"max_cost_usd": 1e-131}},
    {"goal": "g", "budget": {"max_tokens": 10**38}},
    {"goal": "g", "inputs": {"": "x"}},
    {"goal": "g", "inputs": {"a key with spaces": "x"}},
    {"goal": "g", "inputs": {"k": "x" * 2001}},
    {"goal": "g", "review": {"handoff_timeout_s": 0}},
    {"goal": "g", "review": {"on_fail": "ignore"}},
])
def test_numbers_and_keys_the_store_cannot_hold_are_400(api, body):
    assert_rejected(api, http_event("POST", "/runs", body=body), 400, "validation_error")


def test_a_threshold_finer_than_a_millionth_is_kept_to_six_decimals_and_the_run_is_readable(api):
    run_id = start(api, {"goal": "g", "review": {"threshold": 5e-324}})
    assert api.store.get_run(run_id).review_config.threshold == 0.0
    status, _, data = api.call(http_event("GET", "/runs"))
    assert status == 200 and [r["run_id"] for r in data["runs"]] == [run_id]


@pytest.mark.parametrize(("method", "path", "allow"), [("TRACE", "/runs", "GET, POST"), ("PUT", "/runs", "GET, POST"),
                                                       ("DELETE", "/runs/abc", "GET"), ("PATCH", "/health", "GET")])
def test_a_method_no_route_has_is_405_with_allow(api, method, path, allow):
    status, headers, data = api.call(http_event(method, path))
    assert status == 405 and data["error"]["code"] == "method_not_allowed" and headers["allow"] == allow


@pytest.mark.parametrize("event", [{"foo": 1}, {"version": "1.0", "httpMethod": "GET", "path": "/runs"},
                                   {"version": "2.0", "rawPath": "/runs"}])
def test_an_event_that_is_not_an_http_api_v2_event_is_400(api, event):
    response = api.app.resolve(event, None)
    assert response["statusCode"] == 400 and json.loads(response["body"])["error"]["code"] == "unsupported_event"


@pytest.mark.parametrize("content_type", ["multipart/form-data", "text/plain", "application/xml",
                                          "application/x-www-form-urlencoded"])
def test_a_post_body_that_is_not_json_is_415(api, content_type):
    event = http_event("POST", "/runs", body={"goal": "g"})
    event["headers"]["content-type"] = content_type
    assert_rejected(api, event, 415, "unsupported_media_type")


def test_a_tenant_over_its_daily_budget_gets_429_with_the_budget_and_its_reset(api):
    from datetime import UTC, datetime

    from stepcrew.resilience.tenant_budget import TenantBudget, ledger_for

    ledger = ledger_for(api.store)
    ledger.set_budget("acme-budget", TenantBudget(daily_usd=0.5))
    ledger.reserve("acme-budget", 0.5, datetime.now(UTC))  # spent it all
    before = datetime.now(UTC)
    data = assert_rejected(api, post_runs({"goal": SECRET}, tenant="acme-budget"), 429, "tenant_budget_exceeded")
    assert "daily budget" in data["error"]["message"] and "resets at" in data["error"]["message"]
    status, headers, _ = api.call(post_runs({"goal": SECRET}, tenant="acme-budget"))
    tomorrow = datetime(before.year, before.month, before.day, tzinfo=UTC).timestamp() + 86_400
    assert status == 429 and abs(int(headers["retry-after"]) - (tomorrow - before.timestamp())) <= 5
    # another tenant is not affected by acme's spending
    status, _, body = api.call(post_runs({"goal": "mine"}, tenant="globex"))
    assert status == 202, body
