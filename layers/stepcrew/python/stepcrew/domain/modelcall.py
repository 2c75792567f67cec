"""One model call of a role: resolve the model, call it, record usage on the run, enforce the run budget.

Every role (planner, workers, synthesizer, reviewer) calls models through :func:`call_model`, so usage is always
recorded (``store.add_usage``, atomic) and a ``model_turn`` progress event is written (ids and numbers only).
The budget is checked before the call (a run already past a cap makes no more calls) and after it (the call that
passes a cap fails the run with :class:`~stepcrew.domain.errors.BudgetExceededError`).

The one-shot roles (planner, synthesizer, reviewer) go through :func:`exchange`, which makes a Step Functions
Retry safe: the reply stored for the same exchange is reused instead of calling (and paying for) the model again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stepcrew.domain.common import emit
from stepcrew.domain.errors import BudgetExceededError
from stepcrew.llm import registry
from stepcrew.llm.base import ModelRequest, ModelResponse, ModelSettings, Purpose, ToolSpec
from stepcrew.llm.pricing import cost_usd
from stepcrew.models import AgentRole, Budget, Message, Run, Usage
from stepcrew.store.base import RunStore


@dataclass(frozen=True)
class ModelCall:
    """A model's response and the run's usage right after it was recorded."""

    response: ModelResponse
    usage: Usage


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


def call_model(store: RunStore, run: Run, role: AgentRole, *, purpose: Purpose, messages: list[Message],
               context: dict[str, Any], tools: Sequence[ToolSpec] = (), subtask_id: str | None = None) -> ModelCall:
    """Call the model of ``role`` (``run.provider`` at ``role.model_tier``) once.

    Records the response's tokens and cost on the run (cost from the response, else from the price table) and a
    ``model_turn`` event. Raises BudgetExceededError (before the call if the run is already past a cap, after it
    if this call passed one), UnknownProviderError, or the model's ModelError.
    """
    _check(run, run.usage)
    model = registry.resolve(run.provider, role.model_tier)
    settings = ModelSettings(model=registry.model_id(run.provider, role.model_tier) or run.provider)
    request = ModelRequest(messages=messages, tools=list(tools), settings=settings, purpose=purpose, context=context)
    response = model.request(request)
    u = response.usage
    cost = u.cost_usd or cost_usd(response.model, u.input_tokens, u.output_tokens)
    usage = store.add_usage(run.run_id, response.model, u.input_tokens, u.output_tokens, cost)
    emit(store, run.run_id, "model_turn", subtask_id, purpose=purpose, model=response.model,
         stop_reason=response.stop_reason, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
         tool_calls=len(response.tool_calls))
    _check(run, usage)
    return ModelCall(response=response, usage=usage)


@dataclass(frozen=True)
class Exchange:
    """The reply of one exchange of a one-shot role and the run's usage after it."""

    text: str
    usage: Usage


def exchange(store: RunStore, run: Run, role: AgentRole, *, conversation: str, index: int, purpose: Purpose,
             messages: list[Message], context: dict[str, Any],
             keep: Callable[[str], str] = lambda text: text) -> Exchange:
    """Exchange ``index`` (0-based) of a one-shot role's conversation: ``messages`` is ``[system, user]``; the
    conversation ``conversation`` stores every exchange as ``[user, assistant]`` (so exchange ``i`` sits at
    positions ``2i`` and ``2i + 1``). Callers number exchanges: planner attempt - 1, synthesizer round (draft 0),
    reviewer round - 1.

    When the stored exchange at ``index`` has this very user prompt and a reply (a Retry of the state machine
    after the model call succeeded but a later write failed), its reply is returned with no model call: usage,
    the ``model_turn`` event and the messages are not recorded twice. Otherwise :func:`call_model` runs and the
    exchange is stored with the reply as ``keep(reply)`` (e.g. capped); an empty kept reply is not stored (the
    caller rejects it and a later call asks again). Raises what :func:`call_model` raises.
    """
    user = messages[-1]
    stored = store.get_messages(run.run_id, conversation)
    at = 2 * index
    if (len(stored) > at + 1 and stored[at].role == "user" and stored[at].content == user.content
            and stored[at + 1].role == "assistant"):
        return Exchange(text=stored[at + 1].content, usage=run.usage)
    call = call_model(store, run, role, purpose=purpose, messages=messages, context=context)
    text = keep(call.response.text)
    if text:
        store.append_messages(run.run_id, conversation, [user, Message(role="assistant", content=text)])
    return Exchange(text=text, usage=call.usage)
