"""The caller's tenant, from the JWT authorizer's claims of an API Gateway HTTP API (payload format 2.0) event.

API Gateway's JWT authorizer validates the token (issuer, audience, expiry, signature) before the function runs
and passes the token's claims as ``requestContext.authorizer.jwt.claims`` (HTTP API "Controlling access with JWT
authorizers" documentation). The function trusts those claims and nothing else: a tenant in the body or in a
header is never read.

The tenant is the claim named by ``STEPCREW_TENANT_CLAIM`` (default ``custom:tenant``, a Cognito custom
attribute), else the ``sub`` claim. No claims (no authorizer ran) or neither claim: :class:`Unauthorized` (401).
A claim value that is not a valid tenant id (``^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$``, see
:data:`stepcrew.models.Tenant`): :class:`Forbidden` (403).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stepcrew import models
from stepcrew.api.errors import Forbidden, Unauthorized

TENANT_PATTERN = re.compile(models.TENANT_PATTERN)
DEFAULT_TENANT_CLAIM = "custom:tenant"


def jwt_claims(event: Mapping[str, Any]) -> dict[str, Any]:
    """``requestContext.authorizer.jwt.claims`` of a v2 event, or ``{}`` (any level missing or null)."""
    ctx = event.get("requestContext") or {}
    authorizer = ctx.get("authorizer") if isinstance(ctx, Mapping) else None
    jwt = authorizer.get("jwt") if isinstance(authorizer, Mapping) else None
    claims = jwt.get("claims") if isinstance(jwt, Mapping) else None
    return dict(claims) if isinstance(claims, Mapping) else {}


def tenant_from_event(event: Mapping[str, Any], claim: str = DEFAULT_TENANT_CLAIM) -> str:
    """The caller's tenant (see the module docstring). Raises Unauthorized or Forbidden."""
    claims = jwt_claims(event)
    if not claims:
        raise Unauthorized("no authenticated identity: the request carries no JWT claims")
    value = claims.get(claim)
    if value in (None, ""):
        value = claims.get("sub")
    if value in (None, ""):
        raise Unauthorized(f"the token has neither a {claim!r} nor a 'sub' claim")
    if not isinstance(value, str) or not TENANT_PATTERN.match(value):
        raise Forbidden("the token's tenant claim is not a valid tenant id")
    return value
