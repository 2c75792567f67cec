"""The local server's translation of HTTP requests into API Gateway HTTP API v2 events, and its local token switch
(no sockets here: tests/integration/test_api_local.py serves over 127.0.0.1)."""

from __future__ import annotations

import base64
import json

import pytest

from stepcrew.api.app import build_app
from stepcrew.api.dev import RouteTable, banner, build_event, claims_for, is_loopback, serve

ROUTES = RouteTable.from_app(build_app(None, None, None, None))  # type: ignore[arg-type]


def test_routes_come_from_the_app():
    assert ROUTES.match("GET", "/runs/abc123/events") == ("GET /runs/{run_id}/events", {"run_id": "abc123"})
    assert ROUTES.match("POST", "/runs/abc/approval") == ("POST /runs/{run_id}/approval", {"run_id": "abc"})
    assert ROUTES.match("POST", "/runs") == ("POST /runs", {})
    assert ROUTES.match("DELETE", "/runs") == ("$default", {})
    assert ROUTES.match("GET", "/runs/a/b/c") == ("$default", {})


def test_build_event_is_a_v2_event_with_lowercased_headers_query_and_claims():
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

    body = json.dumps({"goal": "Sum"}).encode()
    event = build_event(method="POST", target="/runs?x=1&x=2&y=", routes=ROUTES, body=body,
                        headers=[("Content-Type", "application/json"), ("X-Thing", "a"), ("x-thing", "b"),
                                 ("Cookie", "a=1; b=2"), ("Idempotency-Key", "k1"), ("Host", "127.0.0.1:3000")],
                        claims={"sub": "t1", "custom:tenant": "t1"})

    APIGatewayProxyEventV2Model.model_validate(event)
    assert event["version"] == "2.0" and event["routeKey"] == "POST /runs" == event["requestContext"]["routeKey"]
    assert event["rawPath"] == "/runs" and event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["headers"]["x-thing"] == "a,b" and event["headers"]["idempotency-key"] == "k1"
    assert all(k == k.lower() for k in event["headers"]) and "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["authorizer"] == {"jwt": {"claims": {"sub": "t1", "custom:tenant": "t1"},
                                                             "scopes": None}}
    assert event["body"] == body.decode() and event["isBase64Encoded"] is False
    assert "pathParameters" not in event


def test_build_event_fills_path_parameters_and_base64_encodes_binary_bodies():
    event = build_event(method="POST", target="/runs/r1/approval", routes=ROUTES, body=b"\xff\x00",
                        headers=[("Content-Type", "application/octet-stream")], claims=None)
    assert event["pathParameters"] == {"run_id": "r1"}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"
    assert "authorizer" not in event["requestContext"]


def test_a_json_body_that_is_not_utf8_is_base64_encoded():
    event = build_event(method="POST", target="/runs", routes=ROUTES, body=b'{"goal": "\xff"}',
                        headers=[("Content-Type", "application/json")], claims=None)
    assert event["isBase64Encoded"] is True


def test_the_local_token_switch():
    assert claims_for("Bearer local:acme", allow_anonymous=False)["custom:tenant"] == "acme"
    assert claims_for("bearer local:acme", allow_anonymous=False)["sub"] == "acme"
    assert claims_for(None, allow_anonymous=False) is None
    assert claims_for(None, allow_anonymous=True)["custom:tenant"] == "local"
    for bad in ("Bearer eyJhbGciOi.x.y", "Basic dXNlcjpwdw==", "Bearer local:", "Bearer local:bad tenant",
                "Bearer local:" + "x" * 129):
        with pytest.raises(ValueError):
            claims_for(bad, allow_anonymous=True)


def test_only_loopback_hosts_are_served():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.com")
    with pytest.raises(ValueError, match="loopback"):
        serve(host="0.0.0.0", port=0)


def test_the_banner_says_auth_is_faked():
    text = banner("http://127.0.0.1:3000", None, allow_anonymous=False)
    assert "AUTH IS FAKED" in text and "Bearer local:<tenant>" in text and "401" in text
    assert "STEPCREW_DEV_ALLOW_ANONYMOUS is on" not in text
    assert "STEPCREW_DEV_ALLOW_ANONYMOUS is on" in banner("http://127.0.0.1:3000", None, allow_anonymous=True)
