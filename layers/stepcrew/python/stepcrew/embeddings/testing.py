"""A deterministic, dependency-free fake of the embeddings port for tests (not a semantic model).

:class:`HashingEmbeddings` is a feature-hashing bag of words: texts sharing words score high, texts sharing none score
near 0, synonyms score nothing. Use it where a test needs stable vectors and real similarity ordering by word
overlap, not meaning.
"""

from __future__ import annotations

import hashlib
import re

from stepcrew.embeddings.base import Embeddings, check_texts, l2_normalise

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbeddings(Embeddings):
    """Feature hashing into ``dim`` buckets (default 256).

    Features of a text (lower-cased): every word token (``[a-z0-9]+``) with weight 1.0, and every character trigram of
    the text padded with one space each side, whitespace runs collapsed, with weight :attr:`TRIGRAM_WEIGHT` (0.25).
    A feature adds its weight to bucket ``int(sha1(feature)[:8], 16) % dim`` (``word:``/``tri:`` prefixes keep the two
    families apart); the sum is L2-normalised. Weights are non-negative, so a non-blank text never gives a zero
    vector. Same text -> same vector in every process (sha1, not ``hash()``). ``name``: ``"hashing:sha1:<dim>"``.
    ``ValueError`` if ``dim < 8``.
    """

    TRIGRAM_WEIGHT = 0.25

    def __init__(self, dim: int = 256):
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim}")
        self.dim = dim
        self.name = f"hashing:sha1:{dim}"

    def _bucket(self, feature: str) -> int:
        return int(hashlib.sha1(feature.encode("utf-8")).hexdigest()[:8], 16) % self.dim

    def _vector(self, text: str) -> list[float]:
        low = " ".join(text.lower().split())
        vec = [0.0] * self.dim
        for word in _WORD.findall(low):
            vec[self._bucket("word:" + word)] += 1.0
        padded = f" {low} "
        for i in range(len(padded) - 2):
            vec[self._bucket("tri:" + padded[i:i + 3])] += self.TRIGRAM_WEIGHT
        return l2_normalise(vec)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """See :meth:`Embeddings.embed`; pure Python, ~0.1 ms per short text."""
        return [self._vector(text) for text in check_texts(texts)]
