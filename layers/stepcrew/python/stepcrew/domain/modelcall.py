"""One engine call of a role: check the run budget, call the engine, record each model call's usage.

Every role (planner, workers, synthesizer, reviewer) reaches its engine (:mod:`stepcrew.engines`) through
:func:`engine_call`, so usage is always recorded (``store.add_usage``, atomic) with a ``model_turn`` progress event
per model call (ids and numbers only). The budget is checked before the call (a run already past a cap makes no
more calls) and after it (the call that passes a cap fails the run with
:class:`~stepcrew.domain.errors.BudgetExceededError`).

The one-shot roles (planner, synthesizer, reviewer) go through :func:`exchange`, which makes a Step Functions
Retry safe: the reply stored for the same exchange (same index, same facts) is reused instead of calling (and
paying for) the engine again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from stepcrew.domain.common import emit
from stepcrew.domain.errors import BudgetExceededError
from stepcrew.engines.base import EngineCall
from stepcrew.models import DEGRADATION_ORDER, Budget, Message, Run, Usage
from stepcrew.store.base import RunStore

R = TypeVar("R", bound=BaseModel)


def budget_passed(budget: Budget, usage: Usage) -> str | None:
    """Why ``usage`` is past a cap of ``budget`` (one line), or None. Tokens = input + output; cost in USD."""
    tokens = usage.input_tokens + usage.output_tokens
    if budget.max_tokens is not None and tokens > budget.max_tokens:
        return f"run used {tokens} tokens, over its budget of {budget.max_tokens}"
    if budget.max_cost_usd is not None and usage.cost_usd > budget.max_cost_usd:
        return f"run cost ${usage.cost_usd:.4f}, over its budget of ${budget.max_cost_usd:.4f}"
    return None


def budget_reached(budget: Budget, usage: Usage) -> bool:
    """True when ``usage`` has reached (>=) a cap: no more improvement rounds should start."""
    tokens = usage.input_tokens + usage.output_tokens
    return ((budget.max_tokens is not None and tokens >= budget.max_tokens)
            or (budget.max_cost_usd is not None and usage.cost_usd >= budget.max_cost_usd))


def _check(run: Run, usage: Usage) -> None:
    reason = budget_passed(run.budget, usage)
    if reason:
        raise BudgetExceededError(f"run {run.run_id}: {reason}")


def record_calls(store: RunStore, run: Run, calls: list[EngineCall], purpose: str,
                 subtask_id: str | None = None, defer: list[Callable[[], None]] | None = None) -> Usage:
    """Add each call's usage to the run and emit one ``model_turn`` event per call (provider, model, tier, route
    reason, rung, cache, ``latency_ms`` when the LLM engine timed the call and, for an agent turn, its context
    window: budget, tokens sent, results summarized, turns dropped; ids and numbers only). Cache hits add to the
    run's savings (event ``cache_hit``); a call below the full service lowers the run's ``degradation_level``
    (event ``degraded``, metric ``DegradedCalls``). Returns the run's usage.

    ``defer``: append the event emission to this list instead of emitting now; the caller runs it once the reply
    is stored (:func:`flush`). So a progress event is never seen before what it reports is durable: a process
    killed at any event is resumed without paying that call again (:mod:`stepcrew.local.resume`). Usage is added
    first: a kill between the usage and the stored reply repeats that one call and counts it twice (fails safe
    for budgets: never under-counted)."""
    usage = run.usage
    level = run.degradation_level
    for c in calls:
        usage = store.add_usage(run.run_id, c.model, c.input_tokens, c.output_tokens, c.cost_usd,
                                cache_read_tokens=c.cache_read_tokens, cache_write_tokens=c.cache_write_tokens)
        if c.cache:
            store.add_savings(run.run_id, 1, c.saved_tokens, c.saved_cost_usd)
        if c.rung and DEGRADATION_ORDER.index(c.rung) > DEGRADATION_ORDER.index(level):
            level = c.rung
    if level != run.degradation_level:
        store.raise_degradation(run.run_id, level)  # conditional: parallel sub-tasks never lower it

    def events() -> None:
        for c in calls:
            ladder = {k: v for k, v in (("provider", c.provider), ("tier", c.tier), ("route", c.route),
                                        ("rung", c.rung), ("cache", c.cache), ("latency_ms", c.latency_ms))
                      if v is not None}
            context = {} if c.context_budget_tokens is None else {  # short-term memory (stepcrew.memory.window)
                "context_budget_tokens": c.context_budget_tokens, "context_tokens": c.context_tokens,
                "context_summarized": c.context_summarized, "context_dropped": c.context_dropped}
            emit(store, run.run_id, "model_turn", subtask_id, purpose=purpose, model=c.model,
                 stop_reason=c.stop_reason, input_tokens=c.input_tokens, output_tokens=c.output_tokens,
                 tool_calls=c.tool_calls, **ladder, **context)
            if c.cache:
                emit(store, run.run_id, "cache_hit", subtask_id, purpose=purpose, cache=c.cache,
                     saved_tokens=c.saved_tokens, saved_cost_usd=round(c.saved_cost_usd, 6))
            if c.rung and c.rung not in ("full", "cached"):
                emit(store, run.run_id, "degraded", subtask_id, purpose=purpose, rung=c.rung)
                record_degraded_metric(c.rung)

    if defer is not None:
        defer.append(events)
    else:
        events()
    return usage


def flush(pending: list[Callable[[], None]]) -> None:
    """Run and clear the deferred event emissions of :func:`record_calls` (in call order)."""
    while pending:
        pending.pop(0)()


def record_degraded_metric(rung: str) -> None:
    """One ``DegradedCalls`` metric (dimension ``rung``) in CloudWatch embedded metric format, on stdout as the
    Powertools ``single_metric`` writes it (namespace ``POWERTOOLS_METRICS_NAMESPACE`` or ``stepcrew``). Under
    the local runtime and pytest (no ``AWS_LAMBDA_FUNCTION_NAME``) nothing is printed."""
    import os

    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    from aws_lambda_powertools import single_metric
    from aws_lambda_powertools.metrics import MetricUnit

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "stepcrew"
    with single_metric(name="DegradedCalls", unit=MetricUnit.Count, value=1, namespace=namespace) as metric:
        metric.add_dimension(name="rung", value=rung)


@dataclass(frozen=True)
class Called(Generic[R]):
    """An engine reply and the run's usage right after it was recorded; ``replayed``: taken from the ledger."""

    reply: R
    usage: Usage
    replayed: bool = False


def engine_call(store: RunStore, run: Run, purpose: str, call: Callable[[], R],
                subtask_id: str | None = None, defer: list[Callable[[], None]] | None = None) -> Called[R]:
    """Run ``call()`` (one engine method) under the run's budget and record its usage. Raises
    BudgetExceededError (before the call if the run is already past a cap, after it if this call passed one or
    if the budget gate cut its output cap and the answer stopped at that cap) or what the engine raises (a
    ModelError). ``defer``: see :func:`record_calls` (the caller flushes it once the reply is stored)."""
    _check(run, run.usage)
    reply = call()
    usage = record_calls(store, run, reply.calls, purpose, subtask_id, defer)
    _check(run, usage)
    cut = [c for c in reply.calls if c.budget_cut and c.stop_reason == "max_tokens"]
    if cut:  # an answer the budget cut short is not an answer (recorded above: it was paid)
        raise BudgetExceededError(f"run {run.run_id}: the budget left cut this {purpose} call's output to fit, and "
                                  "its answer was cut short")
    return Called(reply=reply, usage=usage)


def ledger_key(purpose: str, index: int, facts: BaseModel) -> str:
    """The ledger's user-turn text for one exchange: purpose, index and a hash of the facts it answered."""
    digest = hashlib.sha256(facts.model_dump_json().encode()).hexdigest()[:32]
    return f"{purpose}#{index} facts:{digest}"


def exchange(store: RunStore, run: Run, *, conversation: str, index: int, purpose: str, facts: BaseModel,
             call: Callable[[], R], reply_type: type[R], keep: Callable[[R], bool] = lambda reply: True) -> Called[R]:
    """Exchange ``index`` of a one-shot role's conversation ``conversation`` (planner attempt - 1, synthesizer
    round, reviewer round - 1), stored as ``[user: ledger key, assistant: reply JSON]``.

    When the conversation already holds this exchange's key (same index and facts: a Retry of the state machine
    after the call succeeded but a later write failed), the stored reply is returned with no engine call: usage,
    the ``model_turn`` events and the messages are not recorded twice. Otherwise :func:`engine_call` runs and the
    reply is stored if ``keep(reply)`` (a reply the caller rejects is not stored, so a retry asks again).
    """
    key = ledger_key(purpose, index, facts)
    stored = store.get_messages(run.run_id, conversation)
    for i, message in enumerate(stored[:-1]):
        if message.role == "user" and message.content == key and stored[i + 1].role == "assistant":
            return Called(reply=reply_type.model_validate_json(stored[i + 1].content), usage=run.usage, replayed=True)
    pending: list[Callable[[], None]] = []
    try:
        called = engine_call(store, run, purpose, call, defer=pending)
        if keep(called.reply):
            store.append_messages(run.run_id, conversation, [Message(role="user", content=key),
                                                             Message(role="assistant",
                                                                     content=called.reply.model_dump_json())])
    finally:
        flush(pending)  # the events after the stored reply (or after a failure: the call was made and paid)
    return called
