"""Provider API keys, resolved at run time (never at import, never logged).

Order: the provider's env var (``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY``) if set; else, on AWS, the Secrets
Manager secret whose ARN or name is in ``STEPCREW_ANTHROPIC_SECRET`` / ``STEPCREW_OPENAI_SECRET``, fetched with
Powertools ``parameters.get_secret`` and cached in memory for :data:`SECRET_MAX_AGE_S` seconds (so a warm Lambda
does not call Secrets Manager on every model call, and a rotated key is picked up within 5 minutes).
The secret is either the bare key or a JSON object with an ``api_key`` field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from stepcrew.llm.base import ModelAuthError

SECRET_MAX_AGE_S = 300

KeyedProvider = Literal["anthropic", "openai"]

#: provider -> (env var holding the key, env var holding the Secrets Manager secret id)
KEY_ENV: dict[str, tuple[str, str]] = {
    "anthropic": ("ANTHROPIC_API_KEY", "STEPCREW_ANTHROPIC_SECRET"),
    "openai": ("OPENAI_API_KEY", "STEPCREW_OPENAI_SECRET"),
}


def _fetch_secret(secret_id: str) -> str:
    """Fetch one secret string with Powertools (imported here: it builds a boto3 client)."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_S)
    if isinstance(value, bytes):
        value = value.decode()
    return str(value)


def _key_from_secret(value: str) -> str:
    value = value.strip()
    if value.startswith("{"):
        try:
            doc = json.loads(value)
        except ValueError:
            return ""
        key = doc.get("api_key") if isinstance(doc, dict) else None
        return key.strip() if isinstance(key, str) else ""
    return value


def resolve_api_key(provider: KeyedProvider, env: Mapping[str, str] | None = None) -> str:
    """The API key of ``provider`` (``"anthropic"`` or ``"openai"``).

    Raises ModelAuthError (one line, naming the env var to set, never a key) when no key is configured, the
    secret cannot be read, or it holds no key. Raises KeyError for a provider without API keys.
    """
    env = os.environ if env is None else env
    key_var, secret_var = KEY_ENV[provider]
    key = env.get(key_var, "").strip()
    if key:
        return key
    secret_id = env.get(secret_var, "").strip()
    if not secret_id:
        raise ModelAuthError(f"no {provider} API key: set {key_var} (or {secret_var} to a Secrets Manager secret)")
    try:
        raw = _fetch_secret(secret_id)
    except Exception as exc:  # GetParameterError, botocore errors: never echo the value
        raise ModelAuthError(f"cannot read the {provider} API key from the secret named by {secret_var} "
                             f"({type(exc).__name__})") from None
    key = _key_from_secret(raw)
    if not key:
        raise ModelAuthError(f"the secret named by {secret_var} holds no {provider} API key "
                             "(expected the bare key or JSON with an 'api_key' field)")
    return key
