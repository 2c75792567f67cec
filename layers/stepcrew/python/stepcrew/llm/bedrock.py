"""Amazon Bedrock adapter (``bedrock-runtime`` Converse API).

The boto3 client is built lazily, once per adapter, with ``retries={"total_max_attempts": 1, "mode": "standard"}``
so botocore does not retry: the state machine's Retry is the one retry layer. (botocore's client-config
``max_attempts`` counts *retries*, not attempts - ``max_attempts: 1`` would still retry once - see
``botocore/args.py`` ``_compute_retry_max_attempts``; ``total_max_attempts`` counts the first call.)
Credentials and region come from the Lambda role and ``AWS_REGION`` (boto3's usual chain); no API key is involved.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from stepcrew.llm import _convert, caching
from stepcrew.llm.base import (
    Model,
    ModelAuthError,
    ModelBadRequestError,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelThrottledError,
    ModelUnavailableError,
    check_allow_model_requests,
)
from stepcrew.llm.pricing import normalise
from stepcrew.models import Message, ToolCall

logger = logging.getLogger(__name__)

#: Converse error codes -> stepcrew error classes (codes from the bedrock-runtime service model's Converse errors).
ERROR_CODES: dict[str, type[ModelError]] = {
    "ThrottlingException": ModelThrottledError,
    "ServiceQuotaExceededException": ModelThrottledError,
    "ServiceUnavailableException": ModelUnavailableError,
    "InternalServerException": ModelUnavailableError,
    "ModelNotReadyException": ModelUnavailableError,
    "ModelTimeoutException": ModelUnavailableError,
    "ModelErrorException": ModelUnavailableError,
    "AccessDeniedException": ModelAuthError,
    "UnrecognizedClientException": ModelAuthError,
    "ExpiredTokenException": ModelAuthError,
    "ValidationException": ModelBadRequestError,
    "ResourceNotFoundException": ModelBadRequestError,
}
CONNECT_TIMEOUT_S = 10


class BedrockModel(Model):
    """A model on Amazon Bedrock through ``converse``.

    ``model``: a Bedrock model id or inference profile (``us.anthropic.claude-sonnet-4-5-20250929-v1:0``); it is
    sent as ``modelId``, reported as ``ModelResponse.model`` and priced (Bedrock ids normalise to the Anthropic
    rows of :mod:`stepcrew.llm.pricing`). ``client``: a ``bedrock-runtime`` client to use as is (tests pass one
    wrapped in a botocore Stubber). ``region_name``: None -> boto3's default chain. The first request's
    ``settings.timeout_s`` becomes the client's read timeout (seconds). Prompt caching (Claude models): a
    ``cachePoint`` after the system block / the tools when the prefix reaches the model's minimum
    (:func:`request_prefix`); usage reports ``cacheReadInputTokens`` / ``cacheWriteInputTokens``, priced at the
    Claude cache rates. ``request.response_format`` (Claude models) is a tool forced with ``toolChoice``. Errors:
    the :class:`ModelError` subclasses of :mod:`stepcrew.llm.base`, by :data:`ERROR_CODES`.
    """

    provider = "bedrock"

    def __init__(self, model: str, *, client: Any = None, region_name: str | None = None):
        self.model = model
        self._client = client
        self._region_name = region_name
        self._lock = threading.Lock()

    def _get_client(self, timeout_s: float) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3  # lazy: ~0.4 s with a client
                    from botocore.config import Config

                    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=timeout_s,
                                    connect_timeout=CONNECT_TIMEOUT_S)
                    self._client = boto3.client("bedrock-runtime", region_name=self._region_name, config=config)
        return self._client

    def request(self, request: ModelRequest) -> ModelResponse:
        """One ``converse`` call. See the class docstring for errors."""
        check_allow_model_requests()
        client = self._get_client(request.settings.timeout_s)
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "modelId": self.model,
            "messages": to_bedrock_messages(request.messages),
            "inferenceConfig": {"maxTokens": request.settings.max_tokens,
                                "temperature": request.settings.temperature},
        }
        kwargs.update(request_prefix(self.model, request))
        try:
            answer = client.converse(**kwargs)
        except ClientError as exc:
            raise _map_client_error(exc) from exc
        except BotoCoreError as exc:  # endpoint/connection/read timeout, missing credentials
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                raise ModelAuthError("bedrock: no AWS credentials found") from None
            raise ModelUnavailableError(f"bedrock unreachable ({type(exc).__name__})") from exc
        response = self._to_response(answer, reply_tool(self.model, request))
        logger.debug("bedrock call done", extra={"model": self.model, "tools": len(request.tools),
                                                 "stop_reason": response.stop_reason,
                                                 "request_id": answer.get("ResponseMetadata", {}).get("RequestId")})
        return response

    def supports_response_format(self) -> bool:
        """True for Claude models (a forced ``toolChoice``, :func:`request_prefix`); False for the others."""
        return _is_claude(self.model)

    def _to_response(self, answer: dict[str, Any], reply_tool_name: str | None = None) -> ModelResponse:
        texts: list[str] = []
        replies: list[str] = []
        calls: list[ToolCall] = []
        for block in answer.get("output", {}).get("message", {}).get("content", []):
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block and reply_tool_name and block["toolUse"].get("name") == reply_tool_name:
                replies.append(json.dumps(block["toolUse"].get("input"), ensure_ascii=False))  # the structured reply
            elif "toolUse" in block:
                use = block["toolUse"]
                args = use.get("input")
                calls.append(ToolCall(call_id=use["toolUseId"], name=use["name"],
                                      arguments=args if isinstance(args, dict) else {"_raw": str(args)}))
        usage = answer.get("usage", {})
        # Converse's inputTokens excludes the cache; ResponseUsage.input_tokens counts every prompt token.
        read = _convert.int_or_zero(usage.get("cacheReadInputTokens"))
        write = _convert.int_or_zero(usage.get("cacheWriteInputTokens"))
        input_tokens = _convert.int_or_zero(usage.get("inputTokens")) + read + write
        output_tokens = _convert.int_or_zero(usage.get("outputTokens"))
        stop = _convert.stop_reason(answer.get("stopReason") in _convert.TRUNCATED_STOP_REASONS, calls)
        return ModelResponse(
            text=replies[0] if replies else "".join(texts), tool_calls=calls, stop_reason=stop, model=self.model,
            usage=_convert.usage(input_tokens, output_tokens, self.model, cache_read_tokens=read,
                                 cache_write_tokens=write))


#: The Converse cache checkpoint block (5-minute entry, the default TTL; shape from botocore's bedrock-runtime
#: service model: ``CachePointBlock`` {type: "default", ttl?: "5m" | "1h"}, accepted in ``system`` and ``tools``).
CACHE_POINT = {"cachePoint": {"type": "default"}}


def _is_claude(model: str) -> bool:
    return "claude" in normalise(model)


def reply_tool(model: str, request: ModelRequest) -> str | None:
    """The name of the tool that carries ``request.response_format`` (forced with ``toolChoice``), or None when
    it is not sent natively: no format, not a Claude model (``toolChoice`` ``tool`` is not offered by every
    Converse model), or the request offers tools of its own."""
    rf = request.response_format
    return rf.name if rf is not None and not request.tools and _is_claude(model) else None


def request_prefix(model: str, request: ModelRequest) -> dict[str, Any]:
    """The ``system`` and ``toolConfig`` arguments of a ``converse`` call.

    - ``system``: one text block (all system messages joined), followed by :data:`CACHE_POINT` when tools + system
      reach the model's minimum tokens per cache checkpoint (:func:`stepcrew.llm.caching.cache_marks`; Claude
      models only).
    - ``toolConfig.tools``: the request's tools, followed by :data:`CACHE_POINT` when the tools alone reach it.
    - native structured output (Claude): ``request.response_format`` becomes a tool (its JSON Schema as
      ``inputSchema.json``, ``strict`` passed on) forced with ``toolChoice={"tool": {"name": ...}}``; the adapter
      returns its input as the response text (JSON). See :func:`reply_tool`.
    """
    out: dict[str, Any] = {}
    specs = list(request.tools)
    rf = request.response_format
    forced = reply_tool(model, request)
    if forced is not None and rf is not None:
        specs.append(_convert.reply_tool_spec(rf))
    tools: list[dict[str, Any]] = []
    for t in specs:
        spec: dict[str, Any] = {"name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}
        if forced is not None and rf is not None and t.name == forced and rf.strict:
            spec["strict"] = True
        tools.append({"toolSpec": spec})
    system = _convert.system_text(request.messages)
    mark_system, mark_tools = caching.cache_marks(model, system, specs)
    if system:
        out["system"] = [{"text": system}] + ([dict(CACHE_POINT)] if mark_system else [])
    if tools:
        config: dict[str, Any] = {"tools": tools + ([dict(CACHE_POINT)] if mark_tools else [])}
        if forced is not None:
            config["toolChoice"] = {"tool": {"name": forced}}
        out["toolConfig"] = config
    return out


def to_bedrock_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Provider-neutral messages -> Converse ``messages`` (system messages go to ``system``). Tool results become
    ``toolResult`` blocks (``status: "error"`` for failed results) of a user turn; same-role turns are merged."""
    turns: list[tuple[str, list[Any]]] = []
    for m in messages:
        text = [{"text": m.content}] if m.content else []
        if m.role == "user":
            turns.append(("user", text))
        elif m.role == "assistant":
            uses = [{"toolUse": {"toolUseId": c.call_id, "name": c.name, "input": c.arguments}} for c in m.tool_calls]
            turns.append(("assistant", text + uses))
        elif m.role == "tool":
            results = [{"toolResult": {"toolUseId": r.call_id, "content": [{"text": _convert.tool_result_json(r)}],
                                       "status": "success" if r.ok else "error"}} for r in m.tool_results]
            turns.append(("user", results + text))
    return [{"role": role, "content": blocks} for role, blocks in _convert.merge_turns(turns)]


def _map_client_error(exc: Any) -> ModelError:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    cls = ERROR_CODES.get(code)
    if cls is ModelAuthError:
        return ModelAuthError(f"bedrock refused the AWS credentials ({code}); check the role's bedrock:InvokeModel "
                              "permission and model access")
    if cls is not None:
        detail = _convert.clip(error.get("Message", ""), _convert.ERROR_DETAIL_MAX_CHARS)
        return cls(f"bedrock {code}: {detail}" if detail else f"bedrock {code}")
    if status:
        return _convert.status_error("bedrock", status, code, key_hint="the AWS credentials")
    return ModelError(f"bedrock: unexpected error {code or type(exc).__name__}")
