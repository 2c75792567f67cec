"""LLM port, provider adapters, the offline rule engine and test models."""

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
    ResponseUsage,
    ToolSpec,
)

__all__ = [
    "Model", "ModelAuthError", "ModelBadRequestError", "ModelError", "ModelRequest", "ModelRequestsForbiddenError",
    "ModelResponse", "ModelSettings", "ModelThrottledError", "ModelUnavailableError", "ResponseUsage", "ToolSpec",
]
