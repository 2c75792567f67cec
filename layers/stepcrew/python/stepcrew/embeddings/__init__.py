"""Text embeddings: the port (:class:`Embeddings`), exact search (:func:`top_k`), the semantic-cache threshold
(:data:`DEFAULT_SEMANTIC_THRESHOLD`: ``math.inf``, no safe cosine was found for wordllama on the labelled goal pairs,
see ``bench/semantic_cache.py``), the lexical guard :func:`same_key_terms` and
:func:`build_embeddings`, which picks the offline wordllama adapter or Amazon Titan V2 from ``STEPCREW_EMBEDDINGS``.
Adapters import their packages on first use, so importing this package is cheap."""

from stepcrew.embeddings.base import (
    DEFAULT_SEMANTIC_THRESHOLD,
    MAX_TEXT_CHARS,
    Embeddings,
    EmbeddingsError,
    EmbeddingsRequestError,
    EmbeddingsUnavailableError,
    cosine,
    key_terms,
    same_key_terms,
    top_k,
)
from stepcrew.embeddings.factory import build_embeddings

__all__ = [
    "DEFAULT_SEMANTIC_THRESHOLD",
    "MAX_TEXT_CHARS",
    "Embeddings",
    "EmbeddingsError",
    "EmbeddingsRequestError",
    "EmbeddingsUnavailableError",
    "build_embeddings",
    "cosine",
    "key_terms",
    "same_key_terms",
    "top_k",
]
