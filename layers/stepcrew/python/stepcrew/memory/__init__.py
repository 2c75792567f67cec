"""Memory in three tiers (issue 9): short-term (a sub-task's conversation kept within a token budget,
:mod:`stepcrew.memory.window`), long-term facts and episodic recall per tenant (:mod:`stepcrew.memory.service`,
stored by :mod:`stepcrew.memory.store`, searched through :mod:`stepcrew.memory.index`).

Nothing here imports a heavy SDK at import time: embeddings, numpy and boto3 are loaded on first use.
"""
