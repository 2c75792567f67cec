"""The LLM engine: plays every role with a language model behind the :class:`~stepcrew.llm.base.Model` port.

It renders the facts into messages (:mod:`stepcrew.engines.prompts`), sends them with the tool schemas and the
role's settings (model id of the role's tier) and, for the plan, review and memory replies, their JSON schema as a
native ``response_format`` when the model supports one (else the schema is in the prompt), and parses the replies:
a plan as JSON (or a decline), a review's scores strictly (a reply without valid scores is a :class:`ReviewReply` with ``error``, never a silent 0). Model
errors (:class:`~stepcrew.llm.base.ModelError`) pass through for the state machine's Retry/Catch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from stepcrew.engines import prompts
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
from stepcrew.llm.base import Model, ModelRequest, ModelResponse, ModelSettings, ResponseFormat, ToolSpec
from stepcrew.llm.pricing import cost_usd
from stepcrew.memory.window import DEFAULT_CONTEXT_TOKENS, engine_call_fields, fit
from stepcrew.models import AgentRole, CriterionScores, Decline, Message, Plan
from stepcrew.text import describe_validation_error, one_line

logger = logging.getLogger(__name__)

#: ``(tier) -> (Model, model id)`` for one provider (see :class:`stepcrew.engines.resolve.EngineResolver`).
ModelFor = Callable[[str], tuple[Model, str]]


StrictScore = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)]  # JSON numbers only: no true, no "0.9"


class _ReviewScores(BaseModel):
    model_config = ConfigDict(extra="ignore")
    accuracy: StrictScore
    completeness: StrictScore
    relevance: StrictScore
    feedback: str = ""


def _call(response: ModelResponse) -> EngineCall:
    u = response.usage
    return EngineCall(model=response.model, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                      cache_read_tokens=u.cache_read_tokens, cache_write_tokens=u.cache_write_tokens,
                      cost_usd=u.cost_usd or cost_usd(response.model, u.input_tokens, u.output_tokens,
                                                      cache_read_tokens=u.cache_read_tokens,
                                                      cache_write_tokens=u.cache_write_tokens),
                      stop_reason=response.stop_reason, tool_calls=len(response.tool_calls),
                      latency_ms=response.latency_ms)


def parse_plan_reply(text: str) -> tuple[Plan | None, Decline | None, str | None]:
    """``(plan, decline, error)`` from a planner reply: a plan (validated later by the domain), a
    ``{"decline": "..."}`` object, or a one-line reason why the reply is neither."""
    try:
        data = prompts.parse_json_reply(text)
    except prompts.JsonReplyError as exc:
        return None, None, str(exc)
    if isinstance(data.get("decline"), str) and data["decline"].strip() and not data.get("subtasks"):
        return None, Decline(code="unsupported", reason=one_line(data["decline"], 2000)), None
    # "facts" (memory the planner proposes: parse_memory_reply) and an empty "decline" are not the plan's
    data = {k: v for k, v in data.items() if k != "facts" and not (k == "decline" and not str(v or "").strip())}
    try:
        return Plan.model_validate(data), None, None
    except ValidationError as exc:
        return None, None, describe_validation_error(exc, prefix="plan schema: ")


def parse_review_reply(text: str) -> tuple[CriterionScores | None, str, str | None]:
    """``(scores, feedback, error)`` from a reviewer reply; strict: every score present and within 0-1, else
    ``error`` says why (the domain retries, then records a failed review round)."""
    try:
        reply = _ReviewScores.model_validate(prompts.parse_json_reply(text))
    except prompts.JsonReplyError as exc:
        return None, "", f"unparseable review: {exc}"
    except ValidationError as exc:
        return None, "", describe_validation_error(exc, prefix="invalid review: ")
    scores = CriterionScores(accuracy=float(reply.accuracy), completeness=float(reply.completeness),
                             relevance=float(reply.relevance))
    return scores, reply.feedback.strip(), None


class LLMEngine(Engine):
    """Plays the roles with provider ``provider``'s models; ``model_for(tier)`` gives the Model and its id for the
    role's ``model_tier``. ``name`` is ``<provider>:<model id of the smart tier>``."""

    def __init__(self, provider: str, model_for: ModelFor, *, name: str | None = None) -> None:
        self.provider = provider
        self._model_for = model_for
        self.name = name or f"{provider}:{model_for('smart')[1]}"

    def _request(self, role: AgentRole, messages: list[Message], tools: list[ToolSpec] = ()) -> ModelResponse:
        model, model_id = self._model_for(role.model_tier)
        return self._send(model, model_id, messages, tools)

    def _structured(self, role: AgentRole, prompt: Callable[[bool], str], fmt: ResponseFormat) -> ModelResponse:
        """A one-shot call whose reply is one JSON object of schema ``fmt``: sent natively (``response_format``)
        when the role's model supports it (:meth:`Model.supports_response_format`), the prompt then built without
        the schema (``prompt(True)``); else the prompt spells the schema out (``prompt(False)``). Either way the
        reply text is parsed by :func:`stepcrew.engines.prompts.parse_json_reply` (the fallback path)."""
        model, model_id = self._model_for(role.model_tier)
        native = model.supports_response_format()
        return self._send(model, model_id, prompts.messages(role, prompt(native)), (), fmt if native else None)

    def _send(self, model: Model, model_id: str, messages: list[Message], tools: list[ToolSpec] = (),
              response_format: ResponseFormat | None = None) -> ModelResponse:
        settings = ModelSettings(model=model_id or self.provider)
        # Timed here, as the handlers carry no X-Ray SDK (its import was ~40 % of a cold start, bench/local_run.py;
        # the functions' active tracing still records each invocation): the latency goes to the call's EngineCall,
        # its model_turn event and this structured log line (ids and numbers only).
        t0 = time.perf_counter()
        response = model.request(ModelRequest(messages=messages, tools=list(tools), settings=settings,
                                              response_format=response_format))
        latency_ms = round((time.perf_counter() - t0) * 1000)  # whole ms
        logger.info("model call", extra={"provider": self.provider, "model": response.model,
                                         "latency_ms": latency_ms, "stop_reason": response.stop_reason,
                                         "input_tokens": response.usage.input_tokens,
                                         "output_tokens": response.usage.output_tokens})
        return response.model_copy(update={"latency_ms": latency_ms})

    def plan(self, facts: PlanFacts, role: AgentRole) -> PlanReply:
        response = self._structured(role, lambda native: prompts.plan_prompt(facts, native=native),
                                    prompts.plan_format(facts=facts.propose_facts))
        plan, decline, error = parse_plan_reply(response.text)
        proposed = _plan_facts(response.text) if facts.propose_facts and error is None else None
        return PlanReply(plan=plan, decline=decline, error=error, text=response.text, calls=[_call(response)],
                         facts=proposed)

    def open(self, facts: ActFacts, role: AgentRole, tools: list[ToolSpec]) -> list[Message]:
        return prompts.messages(role, prompts.act_prompt(facts, [t.name for t in tools]))

    def act(self, facts: ActFacts, role: AgentRole, conversation: list[Message], tools: list[ToolSpec]) -> ActReply:
        """The next turn. What is sent is ``conversation`` fitted to the role's prompt budget (short-term memory,
        :func:`stepcrew.memory.window.fit`: oldest tool results summarized, then oldest turns dropped); the stored
        conversation is not changed. The call records the budget and what was done (``EngineCall.context_*``)."""
        window, report = fit(conversation, role.context_tokens or DEFAULT_CONTEXT_TOKENS, tools)
        response = self._request(role, window, tools)
        message = Message(role="assistant", content=response.text, tool_calls=response.tool_calls)
        call = _call(response).model_copy(update=engine_call_fields(report))
        return ActReply(message=message, stop_reason=response.stop_reason, calls=[call])

    def synthesize(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        response = self._request(role, prompts.messages(role, prompts.synth_prompt(facts)))
        return ReportReply(text=response.text, calls=[_call(response)])

    def improve(self, facts: ReportFacts, role: AgentRole) -> ReportReply:
        response = self._request(role, prompts.messages(role, prompts.improve_prompt(facts)))
        return ReportReply(text=response.text, calls=[_call(response)])

    def review(self, facts: ReportFacts, role: AgentRole) -> ReviewReply:
        response = self._structured(role, lambda native: prompts.review_prompt(facts, native=native),
                                    prompts.review_format())
        scores, feedback, error = parse_review_reply(response.text)
        return ReviewReply(scores=scores, feedback=feedback, error=error, text=response.text,
                           calls=[_call(response)])

    def manage(self, facts: ManageFacts, role: AgentRole) -> ManageReply:
        response = self._structured(role, lambda native: prompts.manage_prompt(facts, native=native),
                                    prompts.manage_format())
        return parse_manage_reply(response.text).model_copy(update={"calls": [_call(response)],
                                                                     "text": response.text})

    def extract_memory(self, facts: MemoryFacts, role: AgentRole) -> MemoryReply:
        response = self._structured(role, lambda native: prompts.memory_prompt(facts, native=native),
                                    prompts.memory_format())
        return MemoryReply(facts=parse_memory_reply(response.text), calls=[_call(response)])


def parse_manage_reply(text: str) -> ManageReply:
    """The manager's reply as a :class:`ManageReply` (``give_up`` "" read as None), or one whose ``error`` says why
    it is not one (the domain asks again)."""
    try:
        data = prompts.parse_json_reply(text)
    except prompts.JsonReplyError as exc:
        return ManageReply(error=str(exc))
    if isinstance(data.get("give_up"), str) and not data["give_up"].strip():
        data["give_up"] = None
    try:
        return ManageReply.model_validate({k: data[k] for k in ("assessments", "delegations", "done", "give_up")
                                           if k in data})
    except ValidationError as exc:
        return ManageReply(error=describe_validation_error(exc, prefix="manager reply: "))


def _plan_facts(text: str) -> list | None:
    """The memory facts of a plan reply (:func:`parse_memory_reply`), or None when the reply has no ``facts`` list
    (the model ignored the ask: the run's end asks again rather than take it as "none")."""
    try:
        data = prompts.parse_json_reply(text)
    except prompts.JsonReplyError:
        return None
    return parse_memory_reply(text) if isinstance(data.get("facts"), list) else None


def parse_memory_reply(text: str) -> list:
    """The facts of an extraction reply (``{"facts": [{"text", "subject"?, "kind"?, "confidence"?}]}``): items that
    do not validate are dropped, confidence is capped at 0.8 (a model's guess is never a person's word); an
    unparseable reply is no facts."""
    from stepcrew.memory.extract import MAX_EXTRACTED
    from stepcrew.memory.models import FactIn

    try:
        data = prompts.parse_json_reply(text)
    except prompts.JsonReplyError:
        return []
    out = []
    for raw in data.get("facts", []) if isinstance(data.get("facts"), list) else []:
        if not isinstance(raw, dict):
            continue
        try:
            fact = FactIn.model_validate({k: raw[k] for k in ("text", "subject", "kind", "confidence") if k in raw})
        except ValidationError:
            continue
        out.append(fact.model_copy(update={"confidence": min(fact.confidence, 0.8)}))
    return out[:MAX_EXTRACTED]
