"""Response caches in the run table, scoped to the tenant (``CACHE#<tenant> / <key>``, TTL ``expires_at``).

- **Exact response cache** (:class:`ResponseCache`): key = SHA-256 of the provider, the model id, the messages, the
  tool schemas and the settings that change an answer (``max_tokens``, ``temperature``; not the timeout). A hit
  returns the stored :class:`~stepcrew.llm.base.ModelResponse` with zero usage (nothing was paid) and counts what it
  saved. Entries live ``routing.cache_ttl_s`` (default 24 h).
- **Plan cache** (:class:`SemanticPlanCache`): for the planner, the tenant's earlier *valid* plans of the same
  scope — the same dataset profile (columns, types, row count), the same workers and tools — served for (1) the
  same **normalised goal** (:func:`normalise_goal`: case, politeness words, articles, punctuation; on by default)
  or (2) a goal whose embedding (embeddings port, :mod:`stepcrew.embeddings`) reaches the cosine threshold
  (``routing.semantic_threshold``; default :data:`stepcrew.embeddings.DEFAULT_SEMANTIC_THRESHOLD` = off, since
  ``bench/semantic_cache.py`` found no safe threshold for wordllama) **and** names the same numbers and key terms
  (:func:`stepcrew.embeddings.base.same_key_terms`: static embeddings cannot tell "mean" from "median").
  Only the planner: the other one-shot roles read the sub-task outputs and the report, which a similar goal does
  not share, so only an exact hit is right for them.

Tenant scoping is checked twice: the tenant is the partition key of every read, and the body stores the tenant,
which the store compares again (:meth:`RunStore.cache_get`). Bodies hold the (already guard-masked) prompts'
answers, never provider keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any

from stepcrew.llm.base import ModelRequest, ModelResponse, ResponseUsage
from stepcrew.store.base import RunStore, StoreError

logger = logging.getLogger(__name__)

RESPONSE_PREFIX = "R#"
PLAN_PREFIX = "S#plan#"
#: Semantic entries read per lookup (newest first): exact search over the scope's recent plans.
SEMANTIC_SCAN_LIMIT = 200


def response_key(provider: str, request: ModelRequest) -> str:
    """The exact-cache key of ``request`` sent to ``provider`` (``R#`` + 64 hex): what the provider would receive
    (a tool result as the model reads it, not stepcrew's bookkeeping such as ``cached`` or ``screened``)."""
    from stepcrew.llm._convert import tool_result_json

    def seen(m: Any) -> dict[str, Any]:  # what the provider receives: tool results as the model reads them
        return {"role": m.role, "content": m.content,
                "tool_calls": [c.model_dump(mode="json") for c in m.tool_calls],
                "tool_results": [tool_result_json(r) for r in m.tool_results]}

    doc = {"provider": provider, "model": request.settings.model,
           "messages": [seen(m) for m in request.messages],
           "tools": [t.model_dump(mode="json") for t in request.tools],
           "settings": {"max_tokens": request.settings.max_tokens, "temperature": request.settings.temperature}}
    if request.response_format is not None:  # a native reply schema is part of what the provider answers to
        doc["response_format"] = request.response_format.model_dump(mode="json")
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return RESPONSE_PREFIX + hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """Exact response cache of one tenant on ``store``; ``ttl_s`` for the entries it writes. Store errors on a
    read are a miss and on a write are ignored (a cache never fails a call), logged by the caller."""

    def __init__(self, store: RunStore, tenant: str, ttl_s: int) -> None:
        self.store, self.tenant, self.ttl_s = store, tenant, ttl_s

    def get(self, provider: str, request: ModelRequest) -> tuple[ModelResponse, int, float] | None:
        """``(response with zero usage, tokens it cost when paid, USD it cost)`` or None."""
        try:
            body = self.store.cache_get(self.tenant, response_key(provider, request))
        except (StoreError, ValueError):
            return None
        if body is None or "response" not in body:
            return None
        try:
            response = ModelResponse.model_validate(body["response"])
        except ValueError:
            return None
        paid = response.usage
        free = response.model_copy(update={"usage": ResponseUsage()})
        return free, paid.input_tokens + paid.output_tokens, paid.cost_usd

    def put(self, provider: str, request: ModelRequest, response: ModelResponse, cost_usd: float) -> None:
        usage = response.usage.model_copy(update={"cost_usd": cost_usd})
        body = {"response": response.model_copy(update={"usage": usage}).model_dump(mode="json"),
                "at": int(time.time())}
        try:
            self.store.cache_put(self.tenant, response_key(provider, request), body, self.ttl_s)
        except (StoreError, ValueError):
            pass


def plan_scope(dataset: Any, workers: list[Any], tools: list[str], has_dataset: bool,
               inputs: dict[str, str] | None = None) -> str:
    """16 hex of what a cached plan must share besides a similar goal: the dataset's profile shape (columns,
    types, rows), the workers (name, tools), the known tools and the run's inputs (the planner reads them)."""
    shape = None
    if dataset is not None:
        data = dataset.model_dump(mode="json") if hasattr(dataset, "model_dump") else dataset
        shape = {"columns": [(c.get("name"), c.get("type")) for c in data.get("columns", []) if isinstance(c, dict)],
                 "rows": data.get("row_count") or data.get("rows"), "dataset": data.get("dataset")}
    doc = {"dataset": shape, "has_dataset": has_dataset, "tools": sorted(tools),
           "workers": [(w.name, sorted(w.tools)) for w in workers], "inputs": sorted((inputs or {}).items())}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


_POLITE = re.compile(r"\b(please|kindly|could you|can you|would you|will you|i would like to know|i want to know|"
                     r"i'd like to know|tell me|show me|let me know|help me)\b")


def normalise_goal(goal: str) -> str:
    """The goal as the plan cache's key sees it: lower case, politeness words, articles and punctuation
    (``, ; : ! ? " ' ( ) [ ] { }`` and full stops) dropped, whitespace collapsed; signs, comparison and currency
    symbols kept. Word order, numbers and every content word stay: on the
    labelled pairs of ``bench/semantic_cache.py`` this key matched no pair with different answers."""
    t = re.sub(r"(?i:\b(?:the|an)\b)|\ba\b", " ", goal)  # articles; a capital "A" may be a value (grade A)
    t = _POLITE.sub(" ", t.lower())
    t = re.sub(r"[,;:!?\"'`()\[\]{}]+", " ", t)  # punctuation only: < > - + = / * $ % stay (they change answers)
    t = re.sub(r"\.(?!\d)", " ", t)
    return " ".join(t.split())


class SemanticPlanCache:
    """The plan cache of one tenant (module docstring): first the **normalised goal** (:func:`normalise_goal`,
    exact match on the key — on by default), then, when ``threshold`` <= 1, the **embedding** of the goal
    (``embeddings()`` builds the port on first use) against the scope's earlier plans."""

    def __init__(self, store: RunStore, tenant: str, embeddings: Any, threshold: float, ttl_s: int) -> None:
        self.store, self.tenant, self._embeddings = store, tenant, embeddings
        self.threshold, self.ttl_s = threshold, ttl_s

    @property
    def semantic(self) -> bool:
        """Whether embedding hits are on (a threshold in [0, 1])."""
        return self.threshold <= 1

    def _embed(self, goal: str) -> list[float]:
        embeddings = self._embeddings() if callable(self._embeddings) else self._embeddings
        self.embedder = embeddings.name
        return embeddings.embed([goal])[0]

    @staticmethod
    def _norm_key(goal: str, scope: str) -> str:
        return f"{PLAN_PREFIX}{scope}#n#{hashlib.sha256(normalise_goal(goal).encode()).hexdigest()}"

    def lookup(self, goal: str, scope: str) -> tuple[dict[str, Any], float, str] | None:
        """``(entry body, similarity, "normalised" | "semantic")`` of an earlier valid plan of ``scope`` for this
        goal, else None."""
        try:
            body = self.store.cache_get(self.tenant, self._norm_key(goal, scope))
        except (StoreError, ValueError):
            body = None
        if body is not None and normalise_goal(body.get("goal", "")) == normalise_goal(goal):
            return body, 1.0, "normalised"
        if not self.semantic:
            return None
        from stepcrew.embeddings.base import cosine, same_key_terms

        try:
            entries = self.store.cache_scan(self.tenant, f"{PLAN_PREFIX}{scope}#v#", SEMANTIC_SCAN_LIMIT)
        except (StoreError, ValueError):
            return None
        if not entries:
            return None
        vector = self._embed(goal)
        best: tuple[dict[str, Any], float, str] | None = None
        for _, entry in entries:
            if entry.get("embedder") != self.embedder or not same_key_terms(goal, entry.get("goal", "")):
                continue
            score = cosine(vector, entry.get("vector") or [])
            if score >= self.threshold and (best is None or score > best[1]):
                best = (entry, score, "semantic")
        return best

    def remember(self, goal: str, scope: str, plan_reply: dict[str, Any], cost: tuple[int, float]) -> None:
        """Store a valid plan for ``goal``: under its normalised key, and with its vector (rounded to 5 decimals)
        when embedding hits are on."""
        body = {"goal": goal, "reply": plan_reply, "paid_tokens": cost[0], "paid_cost_usd": cost[1]}
        try:
            self.store.cache_put(self.tenant, self._norm_key(goal, scope), body, self.ttl_s)
            if self.semantic:
                vector = [round(x, 5) for x in self._embed(goal)]
                digest = hashlib.sha256(goal.encode()).hexdigest()[:16]
                self.store.cache_put(self.tenant, f"{PLAN_PREFIX}{scope}#v#{digest}",
                                     {**body, "vector": vector, "embedder": self.embedder}, self.ttl_s)
        except Exception as exc:  # noqa: BLE001 - a cache never fails a run (store or embeddings unavailable)
            logger.warning("plan cache write failed", extra={"error_type": type(exc).__name__})
