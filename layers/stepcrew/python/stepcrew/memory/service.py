"""Long-term and episodic memory of a tenant: screened writes, deduplication, caps with eviction, recall.

:class:`Memory` is the use-case object every entry point shares (the memory function, the planner, the API and
the CLI). Collaborators are injected: the :class:`~stepcrew.memory.store.MemoryStore`, the embeddings port (built
on first use), a :class:`~stepcrew.memory.index.VectorIndex` and, for writes, the PII guard
(:class:`~stepcrew.guards.base.Guard`).

Writes (:meth:`Memory.add_facts`, :meth:`Memory.put_episode`):

1. every text passes the guard first: PII is **always masked** (whatever the crew's ``pii`` policy: nothing is
   remembered unmasked), and a text that looks like a prompt injection is refused (a remembered fact reaches later
   prompts): an explicit write raises :class:`~stepcrew.memory.models.MemoryRejectedError` with nothing written, a
   fact proposed by a run is dropped; an episode keeps a flagged goal as :data:`WITHHELD_GOAL`, unembedded (never
   recalled), and flagged titles, reasons and feedback as "(withheld)". No guard, no write
   (``GuardUnavailableError``: fail closed);
2. deduplication by subject (:mod:`stepcrew.memory.dedup`): the same subject for the same user is one item,
   updated in place (``created_at`` kept); a fact a run's end *extracted* never overwrites one of higher confidence
   (a person's add, a worker's ``remember`` call);
3. embedded (``subject: text`` for a fact, the goal for an episode); an embeddings failure stores the item
   without a vector (it is still listed and its facts still recalled by rank, never by similarity);
4. caps, enforced after the write: at most :data:`~stepcrew.memory.models.MAX_FACTS_PER_TENANT` facts (eviction:
   the lowest ``confidence`` first, then the least recently updated: a rule-extracted guess goes before a fact a
   person added) and :data:`~stepcrew.memory.models.MAX_EPISODES_PER_TENANT` episodes (the oldest first). Evicted
   ids are returned and removed from the index.

Recall (:meth:`Memory.recall`) for a goal: the tenant's facts (tenant-wide and the run's user's) ranked by
similarity to the goal when there are more than :data:`FACTS_ALL_BELOW`, else by confidence and recency, put into
a block of at most ``facts_budget_tokens`` (estimated 4 characters per token; what is left out is counted); and
the top :data:`EPISODES_K` episodes of similar goals with similarity >= :data:`EPISODE_MIN_SIMILARITY`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from stepcrew.memory.dedup import fact_id, subject_of
from stepcrew.memory.index import ExactIndex, VectorIndex, VectorRecord
from stepcrew.memory.models import (
    MAX_EPISODES_PER_TENANT,
    MAX_FACTS_PER_TENANT,
    Episode,
    FactIn,
    MemoryContext,
    MemoryItem,
    MemoryList,
    MemoryRejectedError,
    MemoryWriteResult,
    Origin,
    RecalledEpisode,
    RecalledFact,
    resolve_user,
)
from stepcrew.memory.store import MemoryStore

logger = logging.getLogger("stepcrew.memory")

#: Prompt tokens of the facts block at most (estimate: characters / 4 + 4 per line). stepcrew's default.
FACTS_BUDGET_TOKENS = 300
#: With at most this many facts, all are candidates (ranked by confidence, recency); above, the nearest to the goal.
FACTS_ALL_BELOW = 20
#: Facts taken from the index before the budget is applied.
FACTS_K = 20
#: Episodes recalled at most, and the lowest cosine similarity of one. 0.50 on wordllama's scale, from
#: ``bench/memory.py`` (10,000 episodes, 120 labelled paraphrase queries): the labelled target reaches the planner
#: for 0.708 of queries with 1.05 other episodes per query at 0.50, against 0.625 / 0.71 at 0.55 and 0.750 / 1.47 at
#: 0.45; every recalled episode is shown with its similarity, so a weak one is visibly weak. Titan has its own scale:
#: re-run the bench before relying on the floor there.
EPISODES_K = 3
EPISODE_MIN_SIMILARITY = 0.50


#: The goal an episode keeps when the guard flagged it as a prompt injection: such an episode is listed, never
#: embedded nor recalled (its text would reach a later planner prompt).
WITHHELD_GOAL = "(withheld: the goal was flagged by the guard)"


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 4


def episode_id(created_at: datetime, run_id: str) -> str:
    """``e-<YYYYMMDDHHMMSSffffff UTC>-<run id>``: sorts by time."""
    return f"e-{created_at.astimezone(UTC).strftime('%Y%m%d%H%M%S%f')}-{run_id}"


class Memory:
    """A tenant's memory (module docstring). ``embeddings``: a callable returning the embeddings port (built on
    first use; None: no vectors); ``guard``: the PII/injection guard (None: writes raise GuardUnavailableError);
    ``index`` or ``index_factory(store, embeddings name)``: the vector index (default: :class:`ExactIndex`)."""

    def __init__(self, store: MemoryStore, *, embeddings: Callable[[], Any] | None = None,
                 index: VectorIndex | None = None, guard: Any = None,
                 index_factory: Callable[[MemoryStore, str | None], VectorIndex] | None = None,
                 max_facts: int = MAX_FACTS_PER_TENANT, max_episodes: int = MAX_EPISODES_PER_TENANT,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self._embeddings = embeddings
        self._emb: Any = None
        self.index = index
        self._index_factory = index_factory
        self.guard = guard
        self.max_facts, self.max_episodes = max_facts, max_episodes
        self.now = now

    # ------------------------------------------------------------------------------------------ plumbing
    def embeddings(self) -> Any:
        if self._emb is None and self._embeddings is not None:
            self._emb = self._embeddings()
        return self._emb

    def _index(self) -> VectorIndex:
        if self.index is None:
            model = getattr(self.embeddings(), "name", None)
            self.index = (self._index_factory(self.store, model) if self._index_factory is not None
                          else ExactIndex(self.store, model))
        return self.index

    def _embed(self, texts: list[str]) -> tuple[list[list[float]] | None, str | None]:
        emb = self.embeddings()
        if emb is None or not texts:
            return None, None
        from stepcrew.embeddings.base import EmbeddingsError

        try:
            return emb.embed(texts), emb.name
        except EmbeddingsError as exc:
            logger.warning("memory embedding failed", extra={"error": type(exc).__name__})
            return None, None

    def screen(self, texts: list[str]) -> tuple[list[str], dict[str, int], list[set[str]]]:
        """``(masked texts, PII entity -> count, injection families per text)`` (module docstring, step 1).
        Raises GuardUnavailableError when there is no guard or it cannot screen."""
        from stepcrew.guards.base import GuardUnavailableError, mask, screen_many

        if self.guard is None:
            raise GuardUnavailableError("memory writes need the PII guard, and none is configured")
        if not texts:
            return [], {}, []
        pii = screen_many(self.guard.pii, texts)
        masked = [mask(t, f) for t, f in zip(texts, pii)]
        counts: dict[str, int] = {}
        for findings in pii:
            for f in findings:
                counts[f.entity] = counts.get(f.entity, 0) + 1
        injection = [{f.entity for f in found} for found in screen_many(self.guard.injection, masked)]
        return masked, counts, injection

    # ------------------------------------------------------------------------------------------ facts
    def add_facts(self, tenant: str, facts: list[FactIn], *, origin: Origin = "explicit",
                  source_run: str | None = None, strict: bool = True, user: str | None = None) -> MemoryWriteResult:
        """Screen, deduplicate, embed and store ``facts`` for ``tenant`` (module docstring). ``user``: the default
        user of facts that name none. ``strict`` (explicit writes): a refused fact raises MemoryRejectedError and
        nothing is written; otherwise refused facts are dropped. Raises UserOutsideTenantError, ValueError."""
        prepared: list[tuple[FactIn, str | None]] = [(f, resolve_user(tenant, f.user or user)) for f in facts]
        subjects = [f.subject or subject_of(f.text) for f, _ in prepared]
        texts, counts, injection = self.screen([f.text for f, _ in prepared] + subjects)
        n = len(prepared)
        result = MemoryWriteResult(masked=counts)
        keep: list[int] = []
        for i in range(n):
            families = injection[i] | injection[n + i]
            text, subject = texts[i].strip(), texts[n + i].strip()
            if families or not text or not subject:
                why = (f"it looks like a prompt injection ({', '.join(sorted(families))})" if families
                       else "nothing is left once personal data is masked")
                if strict:
                    raise MemoryRejectedError(f"fact {i + 1} was not remembered: {why}")
                logger.info("memory fact dropped", extra={"reason": "injection" if families else "empty"})
                continue
            keep.append(i)
        if not keep:
            return result
        vectors, model = self._embed([f"{texts[n + i]}: {texts[i]}" for i in keep])
        now = self.now()
        records: list[VectorRecord] = []
        for j, i in enumerate(keep):
            fact, uid = prepared[i]
            subject = texts[n + i].strip()[:120]
            mid = fact_id(uid, subject)
            old = self.store.get(tenant, mid)
            if old is not None and origin == "extracted" and old.item.confidence > fact.confidence:
                continue  # a guess never overwrites what a person or a worker's remember call said
            created = old.item.created_at if old is not None else now
            expires = now + timedelta(seconds=fact.ttl_s) if fact.ttl_s is not None else None
            item = MemoryItem(memory_id=mid, tenant=tenant, user=uid, kind=fact.kind, subject=subject,
                              text=texts[i].strip(), origin=origin, confidence=fact.confidence,
                              source_run=source_run, created_at=created, updated_at=now, expires_at=expires)
            vec = vectors[j] if vectors else None
            new = self.store.put_fact(item, vec, model)
            (result.created if new else result.updated).append(mid)
            if vec is not None:
                records.append(VectorRecord(mid, tenant, vec, uid))
        if records:
            self._index().upsert("fact", records)
        result.evicted = self._evict_facts(tenant)
        return result

    def _evict_facts(self, tenant: str) -> list[str]:
        if self.store.counts(tenant).facts <= self.max_facts:
            return []
        items, _ = self.store.scan(tenant, "fact", vectors=False)
        self.store.set_count(tenant, "fact", len(items))  # TTL deletions are not counted down: recount here
        over = len(items) - self.max_facts
        if over <= 0:
            return []
        order = sorted(items, key=lambda st: (st.item.confidence, st.item.updated_at, st.item.memory_id))
        victims = [st.item.memory_id for st in order[:over]]
        for mid in victims:
            self.store.delete(tenant, mid)
        self._index().delete(tenant, "fact", victims)
        return victims

    # ------------------------------------------------------------------------------------------ episodes
    def put_episode(self, episode: Episode) -> tuple[str, list[str]]:
        """Screen the episode's texts, embed its goal, store it (same id: replaced) and apply the episode cap
        (oldest first). Returns (its id, evicted ids). Raises GuardUnavailableError."""
        texts = [episode.goal, episode.reason or "", episode.feedback or "", episode.dataset or "",
                 *[s.title for s in episode.plan.steps]]
        masked, _, injection = self.screen([t or "-" for t in texts])
        steps = [s.model_copy(update={"title": masked[4 + k] if not injection[4 + k] else "(withheld)"})
                 for k, s in enumerate(episode.plan.steps)]
        flagged_goal = bool(injection[0])  # kept as a record of the run, never recalled into a prompt
        episode = episode.model_copy(update={
            "goal": WITHHELD_GOAL if flagged_goal else masked[0],
            "dataset": masked[3] if episode.dataset else None,
            "plan": episode.plan.model_copy(update={"steps": steps}),
            "reason": (None if not episode.reason else "(withheld: flagged by the guard)" if injection[1]
                       else masked[1][:500]),
            "feedback": (None if not episode.feedback else "(withheld: flagged by the guard)" if injection[2]
                         else masked[2][:500])})
        vectors, model = self._embed([episode.goal]) if not flagged_goal else (None, None)
        vec = vectors[0] if vectors else None
        self.store.put_episode(episode, vec, model)
        if vec is not None:
            self._index().upsert("episode", [VectorRecord(episode.memory_id, episode.tenant, vec, episode.user)])
        return episode.memory_id, self._evict_episodes(episode.tenant)

    def _evict_episodes(self, tenant: str) -> list[str]:
        count = self.store.counts(tenant).episodes
        if count <= self.max_episodes:
            return []
        oldest, _ = self.store.scan(tenant, "episode", vectors=False, limit=count - self.max_episodes)
        victims = [st.item.memory_id for st in oldest]
        for mid in victims:
            self.store.delete(tenant, mid)
        self._index().delete(tenant, "episode", victims)
        return victims

    # ------------------------------------------------------------------------------------------ recall
    def recall(self, tenant: str, goal: str, *, user: str | None = None,
               facts_budget_tokens: int = FACTS_BUDGET_TOKENS, exclude_run: str | None = None) -> MemoryContext:
        """What the planner and the workers get for ``goal`` (module docstring). Empty when the tenant has
        nothing; embeddings are built only when there is something to rank."""
        counts = self.store.counts(tenant)
        ctx = MemoryContext(facts_budget_tokens=facts_budget_tokens, index=getattr(self.index, "name", "exact"))
        if counts.facts <= 0 and counts.episodes <= 0:
            return ctx
        users: set[str | None] = {None, user}
        vector: list[float] | None = None
        if counts.episodes > 0 or counts.facts > FACTS_ALL_BELOW:
            vecs, _ = self._embed([goal])
            vector = vecs[0] if vecs else None
        if counts.facts > 0:
            self._recall_facts(ctx, tenant, users, vector, counts.facts, facts_budget_tokens)
        if counts.episodes > 0 and vector is not None:
            for mid, score in self._index().query(tenant, "episode", vector, EPISODES_K + 1, users):
                if score < EPISODE_MIN_SIMILARITY or len(ctx.episodes) >= EPISODES_K:
                    continue
                st = self.store.get(tenant, mid)
                if st is None or not isinstance(st.item, Episode) or st.item.run_id == exclude_run \
                        or st.item.user not in users or st.item.goal == WITHHELD_GOAL:
                    continue  # the index filtered users and the tenant already: checked again on the item
                ctx.episodes.append(recalled_episode(st.item, score))
        return ctx

    def _recall_facts(self, ctx: MemoryContext, tenant: str, users: set[str | None], vector: list[float] | None,
                      count: int, budget: int) -> None:
        candidates: list[tuple[MemoryItem, float | None]] = []
        if count > FACTS_ALL_BELOW and vector is not None:
            for mid, score in self._index().query(tenant, "fact", vector, FACTS_K, users):
                st = self.store.get(tenant, mid)
                if st is not None and isinstance(st.item, MemoryItem) and st.item.user in users:
                    candidates.append((st.item, score))
        else:
            items, _ = self.store.scan(tenant, "fact", vectors=False)
            ranked = sorted((st.item for st in items if st.item.user in users),
                            key=lambda it: (-it.confidence, -it.updated_at.timestamp()))
            candidates = [(it, None) for it in ranked]
        used = 0
        for item, score in candidates:
            cost = estimate_tokens(f"{item.subject}: {item.text}")
            if used + cost > budget:
                ctx.facts_left_out += 1
                continue
            used += cost
            ctx.facts.append(RecalledFact(memory_id=item.memory_id, subject=item.subject, text=item.text,
                                          kind=item.kind, similarity=None if score is None else round(score, 4)))
        ctx.facts_tokens = used

    # ------------------------------------------------------------------------------------------ control
    def list(self, tenant: str, kind: str = "all", *, user: str | None = None, limit: int = 100,
             cursor: str | None = None) -> MemoryList:
        """Items of ``tenant``: ``fact`` (by id), ``episode`` (newest first) or ``all`` (the first page of each, no
        cursor: page one kind at a time). ``user`` keeps that user's items only (pages are filled past the items
        it skips). ``limit`` 1-1000 per kind. ``next_cursor``: the next page of the one kind asked for, or None.
        Raises ValueError (bad limit, a cursor with ``all`` or of the other kind), UserOutsideTenantError."""
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be 1-1000")
        if kind not in ("fact", "episode", "all"):
            raise ValueError("kind must be fact, episode or all")
        if cursor is not None and kind == "all":
            raise ValueError("a cursor pages one kind: give kind=fact or kind=episode")
        uid = resolve_user(tenant, user)
        out = MemoryList()
        for k in ("fact", "episode"):
            if kind not in (k, "all"):
                continue
            items, nxt = self._page(tenant, k, uid, user is not None, limit, cursor)
            if k == "fact":
                out.facts = items
            else:
                out.episodes = items
            if kind != "all":
                out.next_cursor = nxt
        return out

    def _page(self, tenant: str, kind: str, uid: str | None, by_user: bool, limit: int,
              cursor: str | None) -> tuple[list, str | None]:
        """Up to ``limit`` items of one kind (of user ``uid`` when ``by_user``), reading store pages until filled."""
        got: list = []
        while True:
            page, cursor = self.store.scan(tenant, kind, vectors=False, limit=limit - len(got), cursor=cursor,
                                           oldest_first=kind == "fact")
            got += [st.item for st in page if not by_user or getattr(st.item, "user", None) == uid]
            if cursor is None or len(got) >= limit:
                return got, cursor

    def forget(self, tenant: str, memory_id: str) -> bool:
        """Delete one item and its vector; False when ``tenant`` has no such item (another tenant's included)."""
        st = self.store.get(tenant, memory_id)
        if st is None:
            return False
        deleted = self.store.delete(tenant, memory_id)
        if deleted:
            self._index_if_built().delete(tenant, "fact" if memory_id.startswith("f-") else "episode", [memory_id])
        return deleted

    def clear(self, tenant: str, *, user: str | None = None) -> int:
        """Erase the tenant's memory (facts and episodes), or only ``user``'s items. Returns how many."""
        uid = resolve_user(tenant, user)
        gone = 0
        for kind in ("fact", "episode"):
            items, _ = self.store.scan(tenant, kind, vectors=False)
            ids = [st.item.memory_id for st in items if user is None or getattr(st.item, "user", None) == uid]
            gone += self.store.delete_many(tenant, kind, ids)
            if user is None:
                self.store.set_count(tenant, kind, 0)  # TTL deletions are never counted down: start again at 0
            if ids:
                self._index_if_built().delete(tenant, kind, ids)
        return gone

    def _index_if_built(self) -> VectorIndex:
        """The index to delete from: a managed index must drop the vectors too, so build it when configured (the
        exact index reads the store: nothing to delete there)."""
        if self.index is None and self._index_factory is not None:
            self.index = self._index_factory(self.store, None)
        return self.index if self.index is not None else ExactIndex(self.store)


def recalled_episode(ep: Episode, score: float) -> RecalledEpisode:
    plan = [f"{s.id} ({s.role or 'worker'}: {', '.join(s.tools) or 'no tools'})"
            + (f" <- {', '.join(s.depends_on)}" if s.depends_on else "") for s in ep.plan.steps]
    return RecalledEpisode(memory_id=ep.memory_id, run_id=ep.run_id, similarity=round(score, 4), goal=ep.goal,
                           status=ep.status, plan=plan, review_overall=ep.review_overall,
                           reason=ep.reason or ep.feedback)


def fingerprint(dataset: str | None, columns: list[tuple[str, str]]) -> str | None:
    """A dataset's fingerprint: SHA-256 of its file name and column names and types (16 hex digits)."""
    if dataset is None:
        return None
    text = dataset + "\x00" + "\x00".join(f"{n}:{t}" for n, t in columns)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
