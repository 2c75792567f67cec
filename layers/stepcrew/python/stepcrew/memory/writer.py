"""The memory writer port: how an entry point (the API, the CLI) has a person's facts screened and stored.

Tenant memory has one writer that owns the PII guard: deployed, the **memory function**
(``functions/memory/app.py``, event :class:`~stepcrew.events.RememberFacts`); locally, the same use case
(:func:`stepcrew.domain.remember.remember_facts`) in the caller's process with the offline guard. Both answer the
same way:

- a :class:`~stepcrew.memory.models.MemoryWriteResult` (ids created, updated, evicted; PII masked);
- :class:`~stepcrew.memory.models.MemoryRejectedError` (the guard refused a fact),
  :class:`~stepcrew.memory.models.UserOutsideTenantError` (a user id of another tenant) or ``ValueError`` (any
  other bad input): a client mistake, **nothing was written** (API 400, CLI exit 2);
- :class:`MemoryUnavailableError`: the writer could not be reached or could not write (the function failed or
  timed out, the guard or the store is down). Nothing is known to be written; retrying is safe (the same subject
  for the same user is one item: a retry updates it, never adds a second). API 503 with ``Retry-After``.

Adapters: :class:`InProcessWriter` (the CLI, ``stepcrew dev``) and :class:`LambdaWriter` (the deployed API: a
synchronous ``Invoke`` of the memory function). :func:`writer_from_env` chooses: ``STEPCREW_MEMORY_FUNCTION`` set
(the stack sets it on the api function) -> LambdaWriter, absent -> InProcessWriter with the offline guard.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from stepcrew.memory.models import FactIn, MemoryRejectedError, MemoryWriteResult, UserOutsideTenantError

logger = logging.getLogger("stepcrew.memory")

#: Environment variable naming the memory function (name or ARN) the deployed API invokes.
MEMORY_FUNCTION_ENV = "STEPCREW_MEMORY_FUNCTION"
#: Seconds the API waits for the memory function (connect, read). The api function has 29 s (API Gateway gives up
#: at 30 s); a cold memory function (guard + embeddings imports) takes a few seconds. No SDK retry: a timed-out
#: write is answered 503 and the client retries (idempotent by subject).
INVOKE_CONNECT_TIMEOUT_S = 3
INVOKE_READ_TIMEOUT_S = 20


class MemoryUnavailableError(RuntimeError):
    """The memory writer could not be reached or could not write (module docstring). API 503 + Retry-After."""


class MemoryWriter(ABC):
    """Port: screen and store a person's facts for a tenant."""

    name: str = "abstract"

    @abstractmethod
    def remember(self, tenant: str, facts: list[FactIn], user: str | None) -> MemoryWriteResult:
        """Screen, deduplicate and store ``facts`` for ``tenant`` (``user``: the default user of facts naming
        none, ``<name>`` or ``<tenant>:<name>``). Raises MemoryRejectedError, UserOutsideTenantError, ValueError
        (nothing written) or MemoryUnavailableError."""


def _event(tenant: str, facts: list[FactIn], user: str | None) -> Any:
    """The RememberFacts event. Raises ValueError (one line) for input the event does not accept (no facts, more
    than 25, a bad tenant id)."""
    from pydantic import ValidationError

    from stepcrew.events import RememberFacts
    from stepcrew.text import describe_validation_error

    try:
        return RememberFacts(tenant=tenant, facts=list(facts), user=user)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


#: ``RememberOutput.error.type`` -> the exception raised again on this side (anything else: ValueError).
_CLIENT_ERRORS: dict[str, type[ValueError]] = {
    "MemoryRejectedError": MemoryRejectedError,
    "UserOutsideTenantError": UserOutsideTenantError,
}


def result_of(output: Mapping[str, Any]) -> MemoryWriteResult:
    """The :class:`MemoryWriteResult` of a RememberOutput (a dict), or the client error it reports, raised again
    with its own class (MemoryRejectedError, UserOutsideTenantError, else ValueError). An answer that is not a
    RememberOutput raises MemoryUnavailableError."""
    from pydantic import ValidationError

    from stepcrew.events import RememberOutput

    try:
        out = RememberOutput.model_validate(output)
        if out.ok:
            return MemoryWriteResult.model_validate(out.result or {})
    except ValidationError as exc:
        raise MemoryUnavailableError("the memory writer gave an answer that is not a RememberOutput") from exc
    error = out.error or {}
    cls = _CLIENT_ERRORS.get(str(error.get("type") or ""), ValueError)
    raise cls(str(error.get("message") or "the memory write was refused"))


# ---------------------------------------------------------------------------------------------- in process
def local_guard() -> Any:
    """The offline guard (:class:`stepcrew.guards.local.LocalGuard`) through :func:`stepcrew.guards.factory
    .build_guard` with backend ``local`` (the local runtime's ``STEPCREW_GUARD_BACKEND``). Raises
    GuardUnavailableError when its libraries are missing."""
    from stepcrew.guards.factory import GuardSettings, build_guard

    return build_guard(GuardSettings.model_construct(guard_backend="local"))


class InProcessWriter(MemoryWriter):
    """Writes through ``memory`` (a :class:`~stepcrew.memory.service.Memory`) in this process, with the memory
    function's own use case (:func:`stepcrew.domain.remember.remember_facts`). ``memory.guard`` screens every fact;
    without one, ``guard_factory`` builds it at the first write (default: none, and a write without a guard is
    MemoryUnavailableError: nothing is stored unscreened)."""

    name = "in-process"

    def __init__(self, memory: Any, guard_factory: Callable[[], Any] | None = None) -> None:
        self.memory = memory
        self._guard_factory = guard_factory

    def remember(self, tenant: str, facts: list[FactIn], user: str | None) -> MemoryWriteResult:
        from stepcrew.domain.remember import remember_facts
        from stepcrew.guards.base import GuardUnavailableError
        from stepcrew.store.base import StoreError

        event = _event(tenant, facts, user)
        try:
            if self.memory.guard is None and self._guard_factory is not None:
                self.memory.guard = self._guard_factory()
            output = remember_facts(event, self.memory)
        except GuardUnavailableError as exc:
            raise MemoryUnavailableError(f"the PII guard cannot screen memory writes: {exc}") from exc
        except StoreError as exc:
            raise MemoryUnavailableError(f"the memory store could not be written: {exc}") from exc
        return result_of(output.model_dump(mode="json"))


# ---------------------------------------------------------------------------------------------- Lambda
class LambdaWriter(MemoryWriter):
    """Writes through the memory function: ``Invoke`` (``RequestResponse``) with a RememberFacts event, the answer
    a RememberOutput (module docstring). ``function_name``: its name or ARN; ``client``: a boto3 ``lambda`` client
    (default: built on first use with :data:`INVOKE_CONNECT_TIMEOUT_S` / :data:`INVOKE_READ_TIMEOUT_S` and no
    retries). A ``FunctionError`` (the function raised or timed out), a non-200 status, an SDK error or an answer
    that is not a RememberOutput raise MemoryUnavailableError."""

    name = "lambda"

    def __init__(self, function_name: str, client: Any = None) -> None:
        if not function_name or not function_name.strip():
            raise ValueError("LambdaWriter needs the memory function's name or ARN")
        self.function_name = function_name.strip()
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("lambda", config=Config(
                connect_timeout=INVOKE_CONNECT_TIMEOUT_S, read_timeout=INVOKE_READ_TIMEOUT_S,
                retries={"total_max_attempts": 1}))
        return self._client

    def remember(self, tenant: str, facts: list[FactIn], user: str | None) -> MemoryWriteResult:
        from botocore.exceptions import BotoCoreError, ClientError

        event = _event(tenant, facts, user)
        payload = json.dumps(event.model_dump(mode="json"), separators=(",", ":")).encode()
        try:
            resp = self.client.invoke(FunctionName=self.function_name, InvocationType="RequestResponse",
                                      Payload=payload)
            raw = resp["Payload"].read() if resp.get("Payload") is not None else b""
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            logger.warning("memory function invoke failed", extra={"error": code})
            raise MemoryUnavailableError(f"the memory function could not be invoked ({code})") from exc
        except BotoCoreError as exc:
            logger.warning("memory function unreachable", extra={"error": type(exc).__name__})
            raise MemoryUnavailableError(f"the memory function could not be reached ({type(exc).__name__})") \
                from exc
        if resp.get("FunctionError"):
            kind = "?"
            try:
                kind = str(json.loads(raw or b"{}").get("errorType") or "?")
            except (ValueError, AttributeError):
                pass
            logger.warning("memory function error", extra={"error": kind, "function_error": resp["FunctionError"]})
            raise MemoryUnavailableError(f"the memory function failed ({kind})")
        if resp.get("StatusCode") != 200:
            raise MemoryUnavailableError(f"the memory function answered status {resp.get('StatusCode')}")
        try:
            output = json.loads(raw)
        except ValueError as exc:
            raise MemoryUnavailableError("the memory function's answer is not JSON") from exc
        if not isinstance(output, dict):
            raise MemoryUnavailableError("the memory function's answer is not a RememberOutput")
        return result_of(output)


def writer_from_env(memory: Any, env: Mapping[str, str] | None = None, *, client: Any = None) -> MemoryWriter:
    """:class:`LambdaWriter` of ``STEPCREW_MEMORY_FUNCTION`` when it is set (``client``: its boto3 lambda
    client), else :class:`InProcessWriter` over ``memory`` with the offline guard (:func:`local_guard`, built at the
    first write)."""
    env = os.environ if env is None else env
    name = (env.get(MEMORY_FUNCTION_ENV) or "").strip()
    if name:
        return LambdaWriter(name, client=client)
    return InProcessWriter(memory, guard_factory=local_guard)
