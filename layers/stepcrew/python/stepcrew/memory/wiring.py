"""The :class:`~stepcrew.memory.service.Memory` of a store, built once per (resolver, store) and kept on the
injected :class:`~stepcrew.engines.resolve.EngineResolver` (``resolver.memories``, like the ladder's parts): the
memory store on the run store's table, the embeddings port shared with the semantic cache, and the vector index
named by ``STEPCREW_MEMORY_INDEX`` (:func:`stepcrew.memory.index.build_index`)."""

from __future__ import annotations

from typing import Any

from stepcrew.memory.service import Memory


def memory_for(resolver: Any, store: Any, guard: Any = None) -> Memory:
    """The memory of ``store`` with ``resolver``'s embeddings. ``guard``: the writer's PII guard (the memory
    function and the in-process writers pass theirs; readers need none)."""
    from stepcrew.memory.index import build_index
    from stepcrew.memory.store import memory_store_for
    from stepcrew.resilience.wiring import embeddings_for

    with resolver.parts_lock:
        memory = resolver.memories.get(store)
        if memory is None:
            memory = Memory(memory_store_for(store), embeddings=lambda: embeddings_for(resolver),
                            index_factory=build_index)
            resolver.memories[store] = memory
    if guard is not None:
        memory.guard = guard
    return memory
