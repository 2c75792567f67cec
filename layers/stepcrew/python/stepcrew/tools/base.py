"""The tool port: a :class:`Tool` has a name, a description, a pydantic argument model and a ``run`` method.

:meth:`Tool.invoke` is the one entry point used by the tool Lambdas and the local runtime. It never raises for a
tool problem: every outcome is a :class:`~stepcrew.models.ToolResult` the model can read.

- arguments that fail validation -> ``ToolError(type="InvalidArguments")``, one line per pydantic error;
- a :class:`~stepcrew.tools.errors.ToolFailure` -> ``ToolError(type=exc.type, message=str(exc))``;
- any other exception -> ``ToolError(type="ToolFailed")`` naming the exception class only (logged with ids);
- content that does not match the tool's declared ``Result`` model (when it has one) -> ``ToolError(type=
  "ToolResultInvalid")``, one line per pydantic error (logged with ids: a bug of the tool, never the model's);
- content larger than :data:`~stepcrew.models.TOOL_OUTPUT_MAX_BYTES` once serialised -> the tool's
  :meth:`Tool.shrink`, else a JSON-string preview; either way ``truncated=True`` and the content is valid JSON.
"""

from __future__ import annotations

import json
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from stepcrew.llm.base import ToolSpec
from stepcrew.models import TOOL_OUTPUT_MAX_BYTES, ToolCall, ToolContext, ToolError, ToolInvocation, ToolResult
from stepcrew.llm.schema import lean_schema
from stepcrew.tools.jsonable import to_jsonable  # noqa: F401  (re-exported: the tool API in one import)
from stepcrew.tools.errors import (  # noqa: F401  (re-exported: the tool API in one import)
    CalculationError,
    DatasetError,
    LimitExceeded,
    QueryError,
    ToolFailure,
)

logger = logging.getLogger(__name__)


class ToolArgs(BaseModel):
    """Base of every tool's argument model: unknown fields are an error, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def json_size(value: Any) -> int:
    """Bytes of ``json.dumps(value)`` (default separators, ASCII escapes: an upper bound of what the Lambda
    runtime and Step Functions serialise)."""
    return len(json.dumps(value, allow_nan=False))


def format_validation_error(exc: ValidationError) -> str:
    """Pydantic errors as readable lines: ``<field path>: <message>`` (``(arguments)`` for the whole object)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        lines.append(f"{loc}: {err['msg']}")
    return "\n".join(lines)


def fit_largest(build: Callable[[int], Any], n: int, max_bytes: int) -> Any:
    """``build(k)`` for the largest ``k`` in ``0..n`` whose JSON fits ``max_bytes``, by binary search
    (``build(k)`` must grow with ``k``). Used by :meth:`Tool.shrink` implementations."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if json_size(build(mid)) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return build(lo)


def preview(content: Any, max_bytes: int) -> dict[str, str]:
    """Last-resort shrink: ``{"preview": <prefix of the JSON text>, "note": ...}`` within ``max_bytes``."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False)
    note = "output too large: 'preview' is the beginning of the JSON output; ask for less"
    return fit_largest(lambda k: {"preview": text[:k], "note": note}, min(len(text), max_bytes), max_bytes)


class Tool(ABC):
    """A tool. Subclasses set ``name`` (a key of ``stepcrew.wiring.TOOL_FUNCTIONS``), ``description`` (what the
    model reads) and ``Args`` (a :class:`ToolArgs` subclass), and implement :meth:`run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    #: The shape of a successful result (a pydantic model), validated after :meth:`run_call`; None: not checked.
    #: A mismatch is the typed error ``ToolResultInvalid`` (:meth:`invoke`), never a result the model trusts.
    Result: ClassVar[type[BaseModel] | None] = None
    max_output_bytes: ClassVar[int] = TOOL_OUTPUT_MAX_BYTES
    #: Seconds a successful result may be served again from the tool-result cache (:mod:`stepcrew.tools.cache`);
    #: None: not deterministic, never cached.
    cache_ttl_s: ClassVar[int | None] = None
    #: True: the agent hands this tool's calls over 2 KiB of arguments to the state machine by reference
    #: (:mod:`stepcrew.tools.argrefs`); its function reads the run's conversation (``FunctionSpec.reads_arguments``).
    arguments_by_reference: ClassVar[bool] = False

    def result_version(self, ctx: ToolContext, arguments: dict[str, Any]) -> str | None:
        """What the result depends on besides the arguments (a dataset's content hash); None: do not cache this
        call (e.g. SQL calling random()). Default: nothing else (pure tools). Raises a ToolFailure when that input
        cannot be read."""
        return ""

    @abstractmethod
    def run(self, args: Any, ctx: ToolContext) -> Any:
        """Do the work with validated ``args`` (an instance of ``Args``). Returns JSON-serialisable content
        (it is passed through :func:`to_jsonable`). Raises a :class:`ToolFailure` subclass for errors the model
        should see."""

    def run_call(self, args: Any, ctx: ToolContext, call: ToolCall) -> Any:
        """What :meth:`invoke` calls: :meth:`run`. Tools that need the call's identity (an operations tool's
        exactly-once receipt is keyed on its call id: :mod:`stepcrew.tools.receipts`) override this instead."""
        return self.run(args, ctx)

    def shrink(self, content: Any, max_bytes: int) -> Any | None:
        """Return a smaller version of ``content`` that fits ``max_bytes`` (e.g. fewer rows), or None to fall
        back to :func:`preview`. The default has no tool-specific way to shrink."""
        return None

    def spec(self) -> ToolSpec:
        """The tool as a model sees it: parameters = the JSON Schema of ``Args``, lean (no titles, bounds,
        defaults or ``$defs``: :func:`stepcrew.llm.schema.lean_schema`); ``Args`` still validates every call."""
        return ToolSpec(name=self.name, description=self.description,
                        parameters=lean_schema(self.Args.model_json_schema()))

    def invoke(self, invocation: ToolInvocation) -> ToolResult:
        """Validate, run, type the errors and cap the output of one tool call. Never raises for tool problems."""
        call, ctx = invocation.call, invocation.context
        ids = {"run_id": ctx.run_id, "subtask_id": ctx.subtask_id, "call_id": call.call_id, "tool": self.name}

        def fail(kind: str, message: str) -> ToolResult:
            logger.info("tool call failed", extra={**ids, "error_type": kind})
            return ToolResult(call_id=call.call_id, name=call.name, ok=False,
                              error=ToolError(type=kind, message=message or kind))

        if call.name != self.name:
            return fail("UnknownTool", f"this function runs the tool {self.name!r}, not {call.name!r}")
        try:
            args = self.Args.model_validate(call.arguments)
        except ValidationError as exc:
            return fail("InvalidArguments", format_validation_error(exc))
        try:
            content = to_jsonable(self.run_call(args, ctx, call))
        except ToolFailure as exc:
            return fail(exc.type, str(exc))
        except Exception as exc:  # noqa: BLE001 - the model gets a typed error, operators get the log line
            logger.error("tool raised %s", type(exc).__name__, extra=ids)
            logger.debug("tool traceback", exc_info=exc, extra=ids)
            return fail("ToolFailed", f"{self.name} failed with {type(exc).__name__}")
        if self.Result is not None:
            try:
                self.Result.model_validate(content)
            except ValidationError as exc:
                logger.error("tool result does not match its Result model", extra=ids)
                return fail("ToolResultInvalid", f"{self.name} returned a result of the wrong shape (a tool bug, "
                                                 f"not your call):\n{format_validation_error(exc)}")
        truncated = False
        if json_size(content) > self.max_output_bytes:
            truncated = True
            smaller = self.shrink(content, self.max_output_bytes)
            if smaller is None or json_size(smaller) > self.max_output_bytes:
                smaller = preview(content, self.max_output_bytes)
            content = smaller
        logger.debug("tool call ok", extra={**ids, "truncated": truncated})
        return ToolResult(call_id=call.call_id, name=call.name, ok=True, content=content, truncated=truncated)


def invoke_event(tool: Tool, event: dict, log: Any = None, cache: Any = None, arguments: Any = None) -> dict:
    """The body of every tool Lambda handler: ``event`` (a :class:`~stepcrew.models.ToolInvocation` as JSON) ->
    the :class:`~stepcrew.models.ToolResult` as JSON. ``log``: a Powertools Logger, given the run, sub-task and
    call ids as keys. ``cache``: a :class:`stepcrew.tools.cache.ToolResultCache` for a tool with ``cache_ttl_s``
    (a hit is returned with ``cached: true``). ``arguments``: a :class:`stepcrew.tools.argrefs.ArgumentsReader` for
    a tool with ``arguments_by_reference``; a call given by reference is resolved (tenant-checked) before the cache
    or the tool sees it, and refused (``ArgumentsUnavailable``) when it cannot be, or when this tool takes no
    references. A malformed event raises pydantic's ValidationError (the agent state machine catches it into a
    ToolFailed result); tool problems never raise (see :meth:`Tool.invoke`). Every call that parses records its
    per-tool metrics (:func:`record_tool_metrics`)."""
    started = time.perf_counter()
    invocation = ToolInvocation.model_validate(event)
    result = _invoke(tool, invocation, log, cache, arguments)
    record_tool_metrics(tool.name, result, (time.perf_counter() - started) * 1000)
    return result


def record_tool_metrics(tool_name: str, result: dict, latency_ms: float) -> None:
    """Per-tool metrics of one call, as one CloudWatch EMF line (Powertools ``EphemeralMetrics``; namespace
    ``POWERTOOLS_METRICS_NAMESPACE``, dimension ``tool``): ``ToolCalls`` 1, ``ToolErrors`` 1 for an ``ok: false``
    result, ``ToolLatencyMs`` the handler's wall time. Nothing under ``POWERTOOLS_METRICS_DISABLED`` (the local
    runtime) or without a namespace; a metrics problem is logged, never the call's failure."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
    if not namespace:
        return
    try:
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        metrics = EphemeralMetrics(namespace=namespace)
        metrics.add_dimension(name="tool", value=tool_name)
        metrics.add_metric(name="ToolCalls", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ToolErrors", unit=MetricUnit.Count, value=0 if result.get("ok") else 1)
        metrics.add_metric(name="ToolLatencyMs", unit=MetricUnit.Milliseconds, value=round(latency_ms, 1))
        metrics.flush_metrics()
    except Exception as exc:  # noqa: BLE001 - metrics never fail a tool call
        logger.warning("tool metrics not recorded: %s", type(exc).__name__, extra={"tool": tool_name})


def _invoke(tool: Tool, invocation: ToolInvocation, log: Any, cache: Any, arguments: Any) -> dict:
    from stepcrew.tools.argrefs import ArgumentsUnavailable, is_reference

    if log is not None:
        log.append_keys(run_id=invocation.context.run_id, subtask_id=invocation.context.subtask_id,
                        call_id=invocation.call.call_id)
    if is_reference(invocation.call):
        call = invocation.call
        try:
            if arguments is None or not tool.arguments_by_reference:
                raise ArgumentsUnavailable(f"{tool.name} takes no arguments by reference")
            invocation = arguments.resolve(invocation)
        except ArgumentsUnavailable as exc:
            logger.info("tool call failed", extra={"run_id": invocation.context.run_id, "call_id": call.call_id,
                                                   "tool": tool.name, "error_type": exc.type})
            return ToolResult(call_id=call.call_id, name=call.name, ok=False,
                              error=ToolError(type=exc.type, message=str(exc))).model_dump(mode="json")
    version = None
    if cache is not None and tool.cache_ttl_s and invocation.call.name == tool.name:
        try:
            version = tool.result_version(invocation.context, invocation.call.arguments)
        except ToolFailure:
            version = None  # the tool reports the problem itself when it runs
        if version is not None:
            hit = cache.get(invocation.call, invocation.context, version)
            if hit is not None:
                return hit.model_dump(mode="json")
    result = tool.invoke(invocation)
    if version is not None and result.ok:
        cache.put(invocation.call, invocation.context, version, result, tool.cache_ttl_s)
    return result.model_dump(mode="json")
