"""The LLM port: one method, ``Model.request(ModelRequest) -> ModelResponse``.

Adapters (one file per provider: :mod:`.bedrock`, :mod:`.anthropic`, :mod:`.openai`) and the test models in
:mod:`.testing` and :mod:`stepcrew.engines.testing` subclass :class:`Model`. The port carries messages, tool schemas
and settings only (like pydantic-ai's ``Model.request``): it knows nothing of plans, sub-tasks or reviews. Roles
reach models through an engine (:mod:`stepcrew.engines`), which renders the domain's facts into messages; the
offline rule engine is an engine, not a model. Provider SDK types never leave an adapter. Provider SDK retries are switched off in every adapter: transient failures surface as
:class:`ModelThrottledError` / :class:`ModelUnavailableError` and the state machine's ``Retry`` is the one retry
layer (Retry/Catch match on these class names, which the Lambda runtime reports as ``errorType``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stepcrew.models import Message, ToolCall

StopReason = Literal["end_turn", "tool_use", "max_tokens"]

#: Set to False (tests/conftest.py does, for the whole pytest session) to make every real provider call fail
#: with ModelRequestsForbiddenError before any network I/O. The env var STEPCREW_ALLOW_MODEL_REQUESTS=0 does
#: the same for child processes.
ALLOW_MODEL_REQUESTS = os.environ.get("STEPCREW_ALLOW_MODEL_REQUESTS", "1") != "0"


class ToolSpec(BaseModel):
    """A tool as a model sees it: name, description and a JSON Schema of its arguments (from the tool's
    pydantic argument model)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    parameters: dict[str, Any]


class ModelSettings(BaseModel):
    """Per-call settings: model id, output cap (tokens, 1-64,000), temperature (0-2; Anthropic does not send
    it), request timeout in seconds (up to 900, Lambda's maximum)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="provider model id, e.g. 'claude-sonnet-4-5'")
    max_tokens: int = Field(default=2048, ge=1, le=64_000)
    temperature: float = Field(default=0.2, ge=0, le=2)
    timeout_s: float = Field(default=60.0, gt=0, le=900)


class ResponseFormat(BaseModel):
    """The shape a reply must have: a name (``^[a-zA-Z0-9_-]{1,64}$``, the tool / schema name providers accept), a
    JSON Schema of one object and whether the provider should enforce it strictly (OpenAI ``strict``: every
    property required and ``additionalProperties: false`` at every level, else the provider answers HTTP 400).
    Adapters send it through the provider's native mechanism and return the object as ``ModelResponse.text``
    (JSON); a provider or model without one ignores it, so callers keep a text-parsing fallback."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str = ""
    json_schema: dict[str, Any] = Field(description="JSON Schema of the reply object (top-level type object)")
    strict: bool = False


class ModelRequest(BaseModel):
    """One model call: ``messages`` (starting with a ``system`` message), the tool schemas the model may call, the
    call's settings and, optionally, the reply's :class:`ResponseFormat`. Nothing else: the domain's facts reach a
    model only as rendered messages."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolSpec] = Field(default_factory=list)
    settings: ModelSettings
    response_format: ResponseFormat | None = None


class ResponseUsage(BaseModel):
    """Tokens of one call and its cost in USD.

    ``input_tokens`` is every prompt token of the call, cached ones included, for every provider (Anthropic's and
    Bedrock's own ``input_tokens`` / ``inputTokens`` exclude the cache, so their adapters add the cache reads and
    writes back; OpenAI's ``prompt_tokens`` already includes its cached tokens). ``cache_read_tokens`` and
    ``cache_write_tokens`` are the parts of ``input_tokens`` read from and written to the provider's prompt cache
    (OpenAI reports reads only: its cache writes are free and not reported).
    """

    model_config = ConfigDict(extra="forbid")
    input_tokens: int = Field(default=0, ge=0, description="all prompt tokens, cache reads and writes included")
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0, description="part of input_tokens read from the prompt cache")
    cache_write_tokens: int = Field(default=0, ge=0, description="part of input_tokens written to the prompt cache")
    cost_usd: float = Field(default=0.0, ge=0, description="USD, from stepcrew.llm.pricing (cached tokens at the "
                                                           "provider's cache rates)")


class ModelResponse(BaseModel):
    """One answer: text, tool calls (``stop_reason`` ``tool_use``), usage and the model id."""

    model_config = ConfigDict(extra="forbid")
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: StopReason
    usage: ResponseUsage = Field(default_factory=ResponseUsage)
    model: str = Field(description="model id the adapter sent (usage is recorded under it); cost_usd is priced "
                                   "as the model the provider says answered, when it reports one")
    latency_ms: int | None = Field(default=None, ge=0, description="wall time of the request in whole ms, set by the "
                                                                     "LLM engine around Model.request (adapters "
                                                                     "leave it None)")


class ModelError(Exception):
    """Base of model failures. Subclass names are matched by ASL Retry/Catch: do not rename lightly."""


class ModelThrottledError(ModelError):
    """Provider rate limit (HTTP 429 / ThrottlingException). Transient: retried by the state machine."""


class ModelUnavailableError(ModelError):
    """Provider overloaded, 5xx, timeout or connection error. Transient: retried by the state machine."""


class ModelAuthError(ModelError):
    """The provider rejected the credentials (HTTP 401/403). Not retried: the run fails with this reason."""


class ModelBadRequestError(ModelError):
    """The provider rejected the request (HTTP 400/404/422: unknown model, bad schema). Not retried."""


class ModelRequestsForbiddenError(ModelError):
    """A real provider was called while ALLOW_MODEL_REQUESTS is False (always the case under pytest)."""


def check_allow_model_requests() -> None:
    """Raise ModelRequestsForbiddenError when real model calls are switched off. Every real adapter calls this
    before building its client."""
    if not ALLOW_MODEL_REQUESTS:
        raise ModelRequestsForbiddenError(
            "real model requests are disabled (stepcrew.llm.base.ALLOW_MODEL_REQUESTS is False)")


class Model(ABC):
    """The LLM port. ``provider`` names the adapter (``anthropic``, ``openai``, ``bedrock``...)."""

    provider: str = "abstract"

    @abstractmethod
    def request(self, request: ModelRequest) -> ModelResponse:
        """Run one model call. Raises a :class:`ModelError` subclass on failure; never returns provider types."""

    def supports_response_format(self) -> bool:
        """True when :meth:`request` sends ``ModelRequest.response_format`` through the provider's native mechanism
        (the reply is then the JSON object as text, so a prompt need not spell the schema out). Default: False,
        or, for a wrapper that keeps the model it wraps as ``inner`` (the resilience ladder's ``GatedModel``), what
        that model says."""
        inner = getattr(self, "inner", None)
        return isinstance(inner, Model) and inner.supports_response_format()
