"""Choose the embeddings adapter from environment variables (no pydantic settings: a plain mapping).

- ``STEPCREW_EMBEDDINGS``: ``local`` (default; :class:`~stepcrew.embeddings.wordllama.WordLlamaEmbeddings`, offline,
  256 dims) or ``bedrock`` (:class:`~stepcrew.embeddings.bedrock.BedrockEmbeddings`). Case and surrounding spaces
  are ignored; an empty value means the default.
- ``STEPCREW_EMBEDDINGS_MODEL`` (bedrock only): Bedrock model id, default ``amazon.titan-embed-text-v2:0``.
- ``STEPCREW_EMBEDDINGS_DIM`` (bedrock only): 256 (default), 512 or 1024.

Building is cheap: no package is imported and no client is built until the first ``embed``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from stepcrew.embeddings.base import Embeddings

BACKENDS = ("local", "bedrock")


def build_embeddings(env: Mapping[str, str] | None = None) -> Embeddings:
    """The adapter named by ``env`` (default ``os.environ``); see the module docstring for the variables.

    ``ValueError`` (one line, naming the variable) for an unknown backend or a ``STEPCREW_EMBEDDINGS_DIM`` that is
    not an integer among the model's dimensions."""
    env = os.environ if env is None else env
    backend = (env.get("STEPCREW_EMBEDDINGS") or "local").strip().lower() or "local"
    if backend == "local":
        from stepcrew.embeddings.wordllama import WordLlamaEmbeddings

        return WordLlamaEmbeddings()
    if backend == "bedrock":
        from stepcrew.embeddings.bedrock import TITAN_V2, TITAN_V2_DIMS, BedrockEmbeddings

        model = (env.get("STEPCREW_EMBEDDINGS_MODEL") or "").strip() or TITAN_V2
        raw_dim = (env.get("STEPCREW_EMBEDDINGS_DIM") or "").strip() or "256"
        try:
            dim = int(raw_dim)
        except ValueError:
            dim = -1
        if dim not in TITAN_V2_DIMS:
            raise ValueError(f"STEPCREW_EMBEDDINGS_DIM must be one of {', '.join(map(str, TITAN_V2_DIMS))}, "
                             f"not {raw_dim!r}")
        return BedrockEmbeddings(model=model, dim=dim)
    raise ValueError(f"STEPCREW_EMBEDDINGS must be one of {', '.join(BACKENDS)}, not {backend!r}")
