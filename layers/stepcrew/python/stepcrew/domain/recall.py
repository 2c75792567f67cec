"""Recall at planning: what the tenant's memory gives a run (facts for every prompt, similar past runs for the plan).

The planner calls :func:`recall_for_run` once per run: the context is stored as the run's conversation ``memory``
(claim-check: the texts stay in the store, state carries nothing) and summarised by id on the run record
(``Run.recalled``, shown by ``runs show``); a retried or repeated planner call, and every worker, reads the stored
context (:func:`stored_context`), so all of a run's prompts see the same memory and a replay hashes to the same
ledger key. A run with ``memory: off`` recalls nothing. Recall never fails a run: a store or embeddings error is
logged (type only) and the run plans without memory.
"""

from __future__ import annotations

from stepcrew.domain.common import emit, logger
from stepcrew.memory.models import MemoryContext
from stepcrew.models import Message, RecallSummary, Run
from stepcrew.store.base import RunStore

#: Conversation id of a run's recalled memory.
CONVERSATION = "memory"


def stored_context(store: RunStore, run_id: str) -> MemoryContext | None:
    """The memory context the run's planner stored, or None (not recalled yet, or memory off)."""
    for m in store.get_messages(run_id, CONVERSATION):
        if m.role == "user" and m.content:
            return MemoryContext.model_validate_json(m.content)
    return None


def recall_for_run(run: Run, store: RunStore, resolver) -> MemoryContext | None:
    """The run's memory context: stored, else recalled now and stored (module docstring). None with memory off."""
    if run.memory == "off":
        return None
    stored = stored_context(store, run.run_id)
    if stored is not None:
        return stored
    from stepcrew.memory.wiring import memory_for

    try:
        ctx = memory_for(resolver, store).recall(run.tenant, run.goal, user=run.user, exclude_run=run.run_id)
    except Exception as exc:  # noqa: BLE001 - memory never fails a run
        logger.warning("memory recall failed", extra={"run_id": run.run_id, "error": type(exc).__name__})
        return None
    store.append_messages(run.run_id, CONVERSATION, [Message(role="user", content=ctx.model_dump_json())])
    summary = RecallSummary(facts=[f.memory_id for f in ctx.facts][:64],
                            episodes=[{"memory_id": e.memory_id, "run_id": e.run_id, "similarity": e.similarity,
                                       "status": e.status} for e in ctx.episodes][:8],
                            facts_tokens=ctx.facts_tokens, facts_left_out=ctx.facts_left_out)
    store.update_run(run.run_id, {"recalled": summary})
    emit(store, run.run_id, "memory_recalled", facts=len(ctx.facts), episodes=len(ctx.episodes),
         facts_tokens=ctx.facts_tokens, facts_left_out=ctx.facts_left_out,
         episode_runs=[e.run_id for e in ctx.episodes], similarities=[e.similarity for e in ctx.episodes])
    return ctx
