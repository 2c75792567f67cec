"""The resilience ladder around the LLM engine: route, cache, chain, breaker, budget; then degrade.

:class:`LadderEngine` is an :class:`~stepcrew.engines.base.Engine` built for one role call of one run
(:meth:`stepcrew.engines.resolve.EngineResolver.for_run`). Each model call goes down these rungs:

1. **Route** (:mod:`stepcrew.resilience.routing`): the tier, and why.
2. **Chain** (:mod:`stepcrew.resilience.chain`): the tier's providers in order. For each provider the request
   goes through :class:`GatedModel`:
   a. the **exact response cache** (a hit is served even while the provider is down: rung ``cached``);
   b. the **budget gate** (:class:`BudgetGate`): the call's output cap is cut to what the run's budget has left,
      and the call's maximum (input estimate + output cap) is reserved with one conditional write before the call
      and settled on the actual usage after it (so parallel sub-tasks overshoot by at most one reservation);
   c. the provider's **circuit breaker** (:mod:`stepcrew.resilience.breaker`): an open circuit skips the provider
      at once.
   A transient failure (``ModelThrottledError`` / ``ModelUnavailableError``) is raised to the state machine while
   its Retry has attempts left (``retry_count`` < :data:`stepcrew.events.MODEL_RETRY_ATTEMPTS`): one retry layer,
   with the ASL's backoff. On the last attempt, or when the circuit is open, the next provider is tried. A
   rejected key (``ModelAuthError``) fails the call with its reason unless ``routing.fallback_on_auth_error``.
   A bad request (``ModelBadRequestError``) is never "fixed" by another provider: it fails.
3. **Degrade** when the chain is exhausted: the planner's semantic cache has already been asked (the planner
   domain asks before any provider); then the **rule engine** plays the role — for the planner this switches the
   whole run to the rule engine (``run.engine_override = "rule"``: its plan is only playable by it), for the
   synthesizer and the reviewer it writes or scores the report; a worker's sub-task that the rule engine did not
   plan goes to a **person**: the sub-task records that no provider was available and the run is handed off
   (``run.handoff_reason``; the review ends in ``NEEDS_REVIEW`` whatever its score).

Every call is recorded (event ``model_turn``: provider, model, tier, route reason, rung, cache) and the run's
``degradation_level`` is the lowest rung reached; each degraded call emits the event ``degraded`` and the metric
``DegradedCalls`` (dimension ``rung``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stepcrew.domain.errors import BudgetExceededError
from stepcrew.engines.base import (
    ActReply,
    Engine,
    EngineCall,
    ManageReply,
    MemoryReply,
    PlanReply,
    ReportReply,
    ReviewReply,
)
from stepcrew.engines.facts import ActFacts, ManageFacts, MemoryFacts, PlanFacts, ReportFacts
from stepcrew.engines.llm import LLMEngine
from stepcrew.llm.base import (
    Model,
    ModelAuthError,
    ModelRequest,
    ModelResponse,
    ModelThrottledError,
    ModelUnavailableError,
    ToolSpec,
)
from stepcrew.llm.pricing import cost_usd
from stepcrew.memory.window import CHARS_PER_TOKEN, TOOLS_OVERHEAD_TOKENS, estimate_tokens  # noqa: F401 (re-export)
from stepcrew.models import DEGRADATION_ORDER, AgentRole, Message, Run
from stepcrew.resilience.breaker import Breakers, CircuitOpenError
from stepcrew.resilience.cache import ResponseCache
from stepcrew.resilience.routing import Route, route
from stepcrew.store.base import RunStore
from stepcrew.text import one_line

R = TypeVar("R")
#: ``(provider, tier) -> (Model, model id)``.
ModelFor = Callable[[str, str], tuple[Model, str]]
#: Smallest output cap worth a call when the budget is nearly spent (tokens).
MIN_OUTPUT_TOKENS = 32
#: What the chain's failure says when a worker's sub-task goes to a person.
NO_PROVIDER = "no provider available"


class ChainExhaustedError(Exception):
    """Every provider of the chain failed or was skipped (internal: the ladder degrades)."""


def estimate_input_tokens(request: ModelRequest) -> int:
    """An estimate of a request's input tokens, meant to be at or above the real count: characters of the message
    texts, tool calls, tool results and tool schemas / :data:`CHARS_PER_TOKEN`, plus 8 per message (role,
    separators) and :data:`TOOLS_OVERHEAD_TOKENS` when tools are sent. It is
    :func:`stepcrew.memory.window.estimate_tokens`, shared with the short-term memory window: a request within its
    role's context budget is within what this gate reserves for its input. The reservation is settled on the real
    usage after the call; only a call whose real input exceeds this estimate can take the run past its budget (by
    that difference; ``engine_call`` then stops the run)."""
    return estimate_tokens(request.messages, request.tools)


@dataclass
class CallLog:
    """What :class:`GatedModel` did per request of one engine call: provider, model, cache hit and savings."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    pending: list[tuple[Any, str, ModelRequest, ModelResponse]] = field(default_factory=list)

    def commit(self) -> None:
        """Write the pending cache entries (the engine call's reply was accepted)."""
        for cache, provider, request, response in self.pending:
            cache.put(provider, request, response, response.usage.cost_usd or cost_usd(
                response.model, response.usage.input_tokens, response.usage.output_tokens))
        self.pending.clear()


def cacheable(reply: Any) -> bool:
    """Whether a reply may be served again from the exact cache: a plan or a decline (not a parse error), a
    review with valid scores, a non-empty report, an agent turn with text or tool calls. A reply the domain will
    reject is never cached, or a Retry of the state machine would get it again."""
    if isinstance(reply, PlanReply):
        return reply.error is None and (reply.plan is not None or reply.decline is not None)
    if isinstance(reply, ReviewReply):
        return reply.error is None and reply.scores is not None
    if isinstance(reply, ReportReply):
        return bool(reply.text.strip())
    if isinstance(reply, ActReply):
        return bool(reply.message.content.strip() or reply.message.tool_calls)
    return False


class BudgetGate:
    """Reservation of one run's token and $ budgets around each model call (module docstring, rung 2b)."""

    def __init__(self, store: RunStore, run: Run) -> None:
        self.store, self.run = store, run
        self.enabled = run.budget.max_tokens is not None or run.budget.max_cost_usd is not None

    def _caps(self) -> str:
        b = self.run.budget
        return " / ".join(x for x in (f"{b.max_tokens} tokens" if b.max_tokens is not None else "",
                                      f"${b.max_cost_usd}" if b.max_cost_usd is not None else "") if x)

    def _refuse(self, why: str) -> BudgetExceededError:
        return BudgetExceededError(f"run {self.run.run_id}: {why}")

    def reserve(self, request: ModelRequest) -> tuple[ModelRequest, int, float]:
        """``(request with its output cap cut to the budget, tokens reserved, USD reserved)``. Raises
        BudgetExceededError when no call fits (nothing reserved). The cap is computed from the run's usage as last
        read; a reservation refused because other calls settled or hold reservations is tried again with the usage
        read afresh and a halved cap, down to MIN_OUTPUT_TOKENS."""
        if not self.enabled:
            return request, 0, 0.0
        budget, model = self.run.budget, request.settings.model
        est_in = estimate_input_tokens(request)
        usage, fresh = self.run.usage, False
        cap = request.settings.max_tokens
        while True:
            if budget.max_tokens is not None:
                cap = min(cap, budget.max_tokens - usage.input_tokens - usage.output_tokens - est_in)
            if budget.max_cost_usd is not None:
                while cap >= MIN_OUTPUT_TOKENS and usage.cost_usd + cost_usd(model, est_in, cap) > budget.max_cost_usd:
                    cap //= 2
            if cap < MIN_OUTPUT_TOKENS:
                raise self._refuse(f"its budget ({self._caps()}) has no room for another call (~{est_in} input "
                                   "tokens)")
            tokens, cost = est_in + cap, cost_usd(model, est_in, cap)
            if self.store.reserve_budget(self.run.run_id, tokens, cost, budget.max_tokens, budget.max_cost_usd):
                break
            if not fresh:  # other calls settled since the run was read: read the usage again
                usage, fresh = self.store.get_run(self.run.run_id).usage, True
                cap = request.settings.max_tokens
                continue
            if cap // 2 < MIN_OUTPUT_TOKENS:
                raise self._refuse(f"the budget left ({self._caps()}) is held by calls in flight; this call needs "
                                   f"at least {est_in + MIN_OUTPUT_TOKENS} tokens")
            cap //= 2
        settings = request.settings.model_copy(update={"max_tokens": cap})
        return request.model_copy(update={"settings": settings}), tokens, cost

    def settle(self, tokens: int, cost: float, response: ModelResponse | None) -> None:
        """Replace the reservation by the actual usage (``response`` None: the call failed, nothing was used)."""
        if not self.enabled:
            return
        used = (response.usage.input_tokens + response.usage.output_tokens) if response else 0
        spent = (response.usage.cost_usd or cost_usd(response.model, response.usage.input_tokens,
                                                     response.usage.output_tokens)) if response else 0.0
        self.store.settle_budget(self.run.run_id, used - tokens, spent - cost)


class TenantGate:
    """The tenant's daily and monthly $ ledger around each call (:mod:`stepcrew.resilience.tenant_budget`):
    reserve the call's maximum cost before it, settle on the actual cost after it. A tenant without caps costs
    one read of its budget per gate (per role call). A refusal is a :class:`BudgetExceededError` naming the
    tenant's budget and its reset time."""

    def __init__(self, ledger: Any, tenant: str) -> None:
        self.ledger, self.tenant = ledger, tenant
        budget = ledger.get_budget(tenant) if ledger is not None else None
        self.enabled = budget is not None and (budget.daily_usd is not None or budget.monthly_usd is not None)

    def reserve(self, usd: float) -> Any:
        from datetime import UTC, datetime

        from stepcrew.resilience.tenant_budget import TenantBudgetExceededError

        if not self.enabled:
            return None
        now = datetime.now(UTC)
        try:
            self.ledger.reserve(self.tenant, usd, now)
        except TenantBudgetExceededError as exc:
            raise BudgetExceededError(str(exc)) from None
        return now

    def settle(self, at: Any, reserved: float, response: ModelResponse | None) -> None:
        if at is None:
            return
        spent = (response.usage.cost_usd or cost_usd(response.model, response.usage.input_tokens,
                                                     response.usage.output_tokens)) if response else 0.0
        self.ledger.settle(self.tenant, spent - reserved, at, reserved_at=at)


class GatedModel(Model):
    """One provider's model behind the exact cache, the budget gate and its circuit breaker (rungs 2a-2c)."""

    def __init__(self, inner: Model, provider: str, *, cache: ResponseCache | None, gate: BudgetGate,
                 breakers: Breakers | None, log: CallLog, tenant_gate: TenantGate | None = None) -> None:
        self.inner, self.provider = inner, provider
        self.cache, self.gate, self.breakers, self.log = cache, gate, breakers, log
        self.tenant_gate = tenant_gate

    def request(self, request: ModelRequest) -> ModelResponse:
        if self.cache is not None:
            hit = self.cache.get(self.provider, request)
            if hit is not None:
                response, tokens, cost = hit
                self.log.entries.append({"provider": self.provider, "cache": "exact", "saved_tokens": tokens,
                                         "saved_cost_usd": cost})
                return response
        sized, tokens, cost = self.gate.reserve(request)
        response = None
        try:
            est = cost or cost_usd(sized.settings.model, estimate_input_tokens(sized), sized.settings.max_tokens)
            at = self.tenant_gate.reserve(est) if self.tenant_gate is not None else None
            try:
                if self.breakers is None:
                    response = self.inner.request(sized)
                else:
                    response = self.breakers.call(self.provider, sized.settings.model,
                                                  lambda: self.inner.request(sized))
            finally:
                if self.tenant_gate is not None:
                    self.tenant_gate.settle(at, est, response)
        finally:
            self.gate.settle(tokens, cost, response)
        self.log.entries.append({"provider": self.provider, "cache": None,
                                 "budget_cut": sized.settings.max_tokens < request.settings.max_tokens})
        if self.cache is not None and response.stop_reason != "max_tokens":
            self.log.pending.append((self.cache, self.provider, request, response))  # written once accepted
        return response


@dataclass
class Outcome:
    """The lowest rung one engine call reached and the provider failures on the way (ids and error names)."""

    rung: str = "full"
    failures: list[str] = field(default_factory=list)


def worse(a: str, b: str) -> str:
    """The lower of two rungs (``DEGRADATION_ORDER``)."""
    return a if DEGRADATION_ORDER.index(a) >= DEGRADATION_ORDER.index(b) else b


class LadderEngine(Engine):
    """The LLM engine of one run behind the ladder (module docstring). ``retry_count``: the state's
    ``$$.State.RetryCount``; ``last_attempt``: no ASL retry is left for a transient error."""

    def __init__(self, run: Run, store: RunStore, model_for: ModelFor, *, rule: Engine, retry_count: int,
                 max_retries: int, breakers: Breakers | None, ledger: Any = None) -> None:
        self.run, self.store, self._model_for = run, store, model_for
        self.rule, self.breakers = rule, breakers
        self._ledger = ledger
        self._tenant_gate: TenantGate | None = None
        self._pending: list[CallLog] = []
        self.last_attempt = retry_count >= max_retries
        self.name = f"{run.provider}:{model_for(run.provider, 'smart')[1]}"
        self.outcome = Outcome()

    # ------------------------------------------------------------------------------------------ the ladder
    def _engine(self, provider: str, log: CallLog) -> LLMEngine:
        cache = ResponseCache(self.store, self.run.tenant, self.run.routing.cache_ttl_s) \
            if self.run.routing.cache else None
        gate = BudgetGate(self.store, self.run)
        if self._tenant_gate is None and self._ledger is not None:
            self._tenant_gate = TenantGate(self._ledger, self.run.tenant)
        tenant_gate = self._tenant_gate

        def model_for(tier: str) -> tuple[Model, str]:
            model, model_id = self._model_for(provider, tier)
            return GatedModel(model, provider, cache=cache, gate=gate, breakers=self.breakers, log=log,
                              tenant_gate=tenant_gate), model_id

        return LLMEngine(provider, model_for, name=self.name)

    def _climb(self, role: AgentRole, where: Route, call: Callable[[Engine, AgentRole], R]) -> R:
        routed = role.model_copy(update={"model_tier": where.tier})
        for provider in self.run.routing.chain(where.tier, self.run.provider):
            log = CallLog()
            try:
                reply = call(self._engine(provider, log), routed)
            except CircuitOpenError as exc:
                self.outcome.failures.append(f"{provider}: circuit open")
                del exc
                continue
            except (ModelThrottledError, ModelUnavailableError) as exc:
                self.outcome.failures.append(f"{provider}: {type(exc).__name__}")
                if not self.last_attempt:
                    raise  # the state machine's Retry (with backoff) is the retry layer
                continue
            except ModelAuthError as exc:
                self.outcome.failures.append(f"{provider}: ModelAuthError")
                if not self.run.routing.fallback_on_auth_error:
                    raise
                del exc
                continue
            self._annotate(reply, where, log)
            if cacheable(reply):
                self._pending.append(log)  # written when the domain accepts the reply (accepted())
            return reply
        raise ChainExhaustedError("; ".join(self.outcome.failures) or "no provider in the chain")

    def _annotate(self, reply: Any, where: Route, log: CallLog) -> None:
        calls: list[EngineCall] = reply.calls
        for i, c in enumerate(calls):
            entry = log.entries[i] if i < len(log.entries) else {}
            cached = entry.get("cache")
            c.provider, c.tier, c.route, c.cache = entry.get("provider"), where.tier, where.reason, cached
            c.budget_cut = bool(entry.get("budget_cut"))
            c.rung = "cached" if cached else "full"
            if cached:
                c.saved_tokens, c.saved_cost_usd = entry.get("saved_tokens", 0), entry.get("saved_cost_usd", 0.0)
                self.outcome.rung = worse(self.outcome.rung, "cached")

    def _degraded(self, reply: Any, rung: str, where: Route) -> Any:
        for c in reply.calls:
            c.provider, c.tier, c.route, c.rung = None, where.tier, f"{where.reason}; chain exhausted", rung
        self.outcome.rung = worse(self.outcome.rung, rung)
        return reply

    def accepted(self) -> None:
        """Write the exact-cache entries of the replies the domain accepted (a plan it validated, a turn that is no
        loop, a non-empty report, valid scores): a reply it rejects is never served again from the cache."""
        for log in self._pending:
            log.commit()
        self._pending.clear()

    # ------------------------------------------------------------------------------------------ the roles
    def plan(self, facts: PlanFacts, role: AgentRole) -> PlanReply:
        where = route(self.run, role)
        try:
            return self._climb(role, where, lambda e, r: e.plan(facts, r))
        except ChainExhaustedError:
            reply = self.rule.plan(facts, role)
            self.store.update_run(self.run.run_id, {"engine_override": "rule", "engine": self.rule.name})
            return self._degraded(reply, "rule_engine", where)

    def open(self, facts: ActFacts, role: AgentRole, tools: list[ToolSpec]) -> list[Message]:
        return self._engine(self.run.provider, CallLog()).open(facts, role, tools)

    def act(self, facts: ActFacts, role: AgentRole, conversation: list[Message], tools: list[ToolSpec]) -> ActReply:
        where = route(self.run, role, facts.subtask, facts.goal)
        try:
            return self._climb(role, where, lambda e, r: e.act(facts, r, conversation, tools))
        except ChainExhaustedError as exc:
            self.store.update_run(self.run.run_id, {"handoff_reason": NO_PROVIDER})
            text = (f"Not done: {NO_PROVIDER} for this sub-task ({one_line(str(exc), 300)}). The run is handed to a "
                    "person to check or complete it.")
            reply = ActReply(message=Message(role="assistant", content=text), stop_reason="end_turn",
                             calls=[EngineCall(model="none")])
            return self._degraded(reply, "handoff", where)

    def extract_memory(self, facts: MemoryFacts, role: AgentRole) -> MemoryReply:
        """The chain's model proposes the facts; when the chain is exhausted, the rule engine's rules do (no
        degradation is recorded: the run has already finished, and a fact proposal is not part of its answer)."""
        where = route(self.run, role)
        try:
            return self._climb(role, where, lambda e, r: e.extract_memory(facts, r))
        except ChainExhaustedError:
            return self.rule.extract_memory(facts, role)

    def manage(self, facts: ManageFacts, role: AgentRole) -> ManageReply:
        """A manager round by the chain's model (its calls reserved against the run's budget like every other);
        when the chain is exhausted, the rule engine's deterministic delegation (rung ``rule_engine``)."""
        where = route(self.run, role)
        try:
            return self._climb(role, where, lambda e, r: e.manage(facts, r))
        except ChainExhaustedError:
            return self._degraded(self.rule.manage(facts, role), "rule_engine", where)

    def synthesize(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        where = route(self.run, role)
        try:
            return self._climb(role, where, lambda e, r: e.synthesize(facts, r))
        except ChainExhaustedError:
            return self._degraded(self.rule.synthesize(facts, role), "rule_engine", where)

    def improve(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        where = route(self.run, role)
        try:
            return self._climb(role, where, lambda e, r: e.improve(facts, r))
        except ChainExhaustedError:
            return self._degraded(self.rule.improve(facts, role), "rule_engine", where)

    def review(self, facts: ReportFacts, role: AgentRole) -> ReviewReply:
        where = route(self.run, role)
        try:
            return self._climb(role, where, lambda e, r: e.review(facts, r))
        except ChainExhaustedError:
            return self._degraded(self.rule.review(facts, role), "rule_engine", where)

