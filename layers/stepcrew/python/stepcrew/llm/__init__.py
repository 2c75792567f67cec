"""The Model port (messages, tool schemas, settings), one adapter per provider, pricing and test models. The
offline rule engine is an engine, not a model: see :mod:`stepcrew.engines.rules`."""

from stepcrew.llm.base import (
    Model,
    ModelAuthError,
    ModelBadRequestError,
    ModelError,
    ModelRequest,
    ModelRequestsForbiddenError,
    ModelResponse,
    ModelSettings,
    ModelThrottledError,
    ModelUnavailableError,
    ResponseFormat,
    ResponseUsage,
    ToolSpec,
)

__all__ = [
    "Model", "ModelAuthError", "ModelBadRequestError", "ModelError", "ModelRequest", "ModelRequestsForbiddenError",
    "ModelResponse", "ModelSettings", "ModelThrottledError", "ModelUnavailableError", "ResponseFormat", "ResponseUsage",
    "ToolSpec",
]
