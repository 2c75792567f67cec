"""The tenant comes from the JWT authorizer's claims only: Given an HTTP API v2 event, when the tenant is read, then
the configured claim wins, ``sub`` is the fallback, and anything else is 401/403."""

from __future__ import annotations

import pytest
from api_helpers import http_event, start

from stepcrew.api.app import ApiConfig, build_app
from stepcrew.api.auth import jwt_claims, tenant_from_event
from stepcrew.api.errors import Forbidden, Unauthorized


def event_with(claims) -> dict:
    event = http_event("GET", "/runs", tenant=None)
    event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event


def test_the_tenant_claim_wins_over_sub():
    assert tenant_from_event(event_with({"sub": "u-1", "custom:tenant": "acme"})) == "acme"


def test_sub_is_the_fallback():
    assert tenant_from_event(event_with({"sub": "u-1"})) == "u-1"
    assert tenant_from_event(event_with({"sub": "u-1", "custom:tenant": ""})) == "u-1"


def test_the_claim_name_is_configurable():
    claims = {"sub": "u-1", "custom:tenant": "acme", "org": "globex"}
    assert tenant_from_event(event_with(claims), claim="org") == "globex"


@pytest.mark.parametrize("event", [
    http_event("GET", "/runs", tenant=None),
    event_with(None),
    event_with({}),
    event_with({"email": "a@example.com"}),
    {**http_event("GET", "/runs", tenant=None), "requestContext": None},
    {"rawPath": "/runs"},
])
def test_no_usable_claims_is_unauthorized(event):
    with pytest.raises(Unauthorized):
        tenant_from_event(event)


@pytest.mark.parametrize("value", ["bad tenant", "a/b", "TENANT#x", "-lead", "x" * 129, 42])
def test_an_invalid_tenant_value_is_forbidden(value):
    with pytest.raises(Forbidden):
        tenant_from_event(event_with({"custom:tenant": value}))


def test_jwt_claims_tolerates_nulls():
    assert jwt_claims({"requestContext": {"authorizer": {"jwt": None}}}) == {}
    assert jwt_claims({"requestContext": {"authorizer": None}}) == {}


def test_a_deployment_can_key_tenants_on_another_claim(api):
    app = build_app(api.store, api.starter, api.tasks, api.persistence, ApiConfig(tenant_claim="org"))
    api.app = app
    run_id = start(api, claims={"sub": "u-1", "org": "globex", "custom:tenant": "acme"})
    assert api.store.get_run(run_id).tenant == "globex"
