"""Amazon Bedrock adapter (``bedrock-runtime`` Converse API).

The boto3 client is built lazily, once per adapter, with ``retries={"total_max_attempts": 1, "mode": "standard"}``
so botocore does not retry: the state machine's Retry is the one retry layer. (botocore's client-config
``max_attempts`` counts *retries*, not attempts - ``max_attempts: 1`` would still retry once - see
``botocore/args.py`` ``_compute_retry_max_attempts``; ``total_max_attempts`` counts the first call.)
Credentials and region come from the Lambda role and ``AWS_REGION`` (boto3's usual chain); no API key is involved.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from stepcrew.llm import _convert
from stepcrew.llm.base import (
    Model,
    ModelAuthError,
    ModelBadRequestError,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelThrottledError,
    ModelUnavailableError,
    ResponseUsage,
    check_allow_model_requests,
)
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
    ``settings.timeout_s`` becomes the client's read timeout (seconds). Errors: the :class:`ModelError`
    subclasses of :mod:`stepcrew.llm.base`, by :data:`ERROR_CODES`.
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
        system = _convert.system_text(request.messages)
        if system:
            kwargs["system"] = [{"text": system}]
        if request.tools:
            kwargs["toolConfig"] = {"tools": [
                {"toolSpec": {"name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}}
                for t in request.tools]}
        try:
            answer = client.converse(**kwargs)
        except ClientError as exc:
            raise _map_client_error(exc) from exc
        except BotoCoreError as exc:  # endpoint/connection/read timeout, missing credentials
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                raise ModelAuthError("bedrock: no AWS credentials found") from None
            raise ModelUnavailableError(f"bedrock unreachable ({type(exc).__name__})") from exc
        response = self._to_response(answer)
        logger.debug("bedrock call done", extra={"model": self.model, "tools": len(request.tools),
                                                 "stop_reason": response.stop_reason,
                                                 "request_id": answer.get("ResponseMetadata", {}).get("RequestId")})
        return response

    def _to_response(self, answer: dict[str, Any]) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in answer.get("output", {}).get("message", {}).get("content", []):
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                args = use.get("input")
                calls.append(ToolCall(call_id=use["toolUseId"], name=use["name"],
                                      arguments=args if isinstance(args, dict) else {"_raw": str(args)}))
        usage = answer.get("usage", {})
        input_tokens = int(usage.get("inputTokens", 0))
        output_tokens = int(usage.get("outputTokens", 0))
        stop = _convert.stop_reason(answer.get("stopReason") in _convert.TRUNCATED_STOP_REASONS, calls)
        return ModelResponse(
            text="".join(texts), tool_calls=calls, stop_reason=stop, model=self.model,
            usage=ResponseUsage(input_tokens=input_tokens, output_tokens=output_tokens,
                                cost_usd=_convert.cost(input_tokens, output_tokens, self.model)))


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
