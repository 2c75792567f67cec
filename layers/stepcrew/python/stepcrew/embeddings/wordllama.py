"""Offline embeddings with ``wordllama`` (MIT; static token embeddings, average-pooled; weights inside the wheel).

Source: https://github.com/dleemiller/WordLlama, package ``wordllama==0.4.0.post1`` (a core dependency). The wheel
bundles one model, ``l2_supercat`` at 256 dimensions (``wordllama/weights/l2_supercat_256.safetensors``, ~16 MB) and
its tokenizer (``wordllama/tokenizers/l2_supercat_tokenizer_config.json``). Smaller dimensions (64, 128) are the
same model truncated (it is Matryoshka-trained); 512/1024 are not bundled and would be a download, so they are refused.

Offline loading: ``WordLlama.load()`` resolves the weights at ``<package>/weights/`` but the tokenizer at
``<package>/tokenizer/`` (singular, a folder that does not exist), then in ``cache_dir/tokenizers/`` (default
``~/.cache/wordllama``), then downloads from Hugging Face (``requests.get``) and, failing that, falls back to
``Tokenizer.from_pretrained`` (network again). Passing ``cache_dir=<package folder>`` makes the tokenizer resolve in the
wheel and ``disable_download=True`` turns any miss into ``FileNotFoundError`` instead of a network call (read in
``wordllama/wordllama.py``, ``WordLlama.resolve_file``/``load_tokenizer``). A test blocks ``socket.connect`` to prove
no connection is attempted.

Cost here (2 cores, Python 3.11, fresh interpreters): ``import wordllama`` ~220 ms (numpy, tokenizers, safetensors,
requests) + ``load`` ~90-150 ms; the adapter's ``load_seconds`` (both, on the first ``embed``, once per instance) was
0.30-0.44 s. Then ~25-40 ms per 1,000 goal-sized texts in one call, ~80 ms for 1,000 single-text calls
(``bench/semantic_cache.py``; wordllama's own embed is ~7-17 ms of that, the rest is tokenising and list conversion).
``wordllama`` calls ``logging.basicConfig(level=INFO)`` when imported; the adapter restores the root logger's
handlers and level afterwards so the import does not change the application's logging.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from stepcrew.embeddings.base import Embeddings, EmbeddingsUnavailableError, check_texts

CONFIG = "l2_supercat"
BUNDLED_DIM = 256
#: Dimensions available offline: the bundled 256 and its Matryoshka truncations.
DIMS = (64, 128, 256)


def _import_wordllama() -> Any:
    """Import ``wordllama`` without letting its ``logging.basicConfig`` stick. ``EmbeddingsUnavailableError`` if it
    is not installed."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    except ImportError as exc:
        raise EmbeddingsUnavailableError(
            "wordllama is not installed (pip install wordllama==0.4.0.post1)") from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return wordllama


class WordLlamaEmbeddings(Embeddings):
    """``wordllama`` ``l2_supercat`` embeddings, fully offline. ``name``: ``"wordllama:l2_supercat:<dim>"``.

    ``dim``: 64, 128 or 256 (default; the bundled model), else ``ValueError``. ``batch_size``: texts per padded
    tokenizer batch (texts are sorted by length first, so a long text pads only its neighbours). The package is
    imported and the model loaded on the first non-empty :meth:`embed`, once per instance, under a lock (thread-safe;
    embedding itself only reads the model). Errors: :class:`EmbeddingsUnavailableError` when the package or the
    bundled files are missing; otherwise those of :meth:`Embeddings.embed`.
    """

    def __init__(self, dim: int = BUNDLED_DIM, *, batch_size: int = 64):
        if dim not in DIMS:
            raise ValueError(f"wordllama {CONFIG} is bundled for dim {DIMS}, not {dim}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dim = dim
        self.name = f"wordllama:{CONFIG}:{dim}"
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        #: Seconds spent importing wordllama and loading the model (None until loaded); for benchmarks.
        self.load_seconds: float | None = None

    def _get_model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    import time

                    start = time.perf_counter()
                    wordllama = _import_wordllama()
                    package_dir = Path(wordllama.__file__).resolve().parent
                    try:
                        model = wordllama.WordLlama.load(
                            CONFIG, cache_dir=package_dir, dim=BUNDLED_DIM,
                            trunc_dim=None if self.dim == BUNDLED_DIM else self.dim, disable_download=True)
                    except FileNotFoundError as exc:
                        raise EmbeddingsUnavailableError(
                            f"wordllama's bundled {CONFIG} files are missing under {package_dir}: {exc}") from exc
                    self.load_seconds = time.perf_counter() - start
                    self._model = model
        return self._model

    def embed(self, texts: list[str]) -> list[list[float]]:
        """See :meth:`Embeddings.embed`. Vectors are average-pooled token embeddings, re-normalised in float64."""
        checked = check_texts(texts)
        if not checked:
            return []
        model = self._get_model()
        import numpy as np  # a wordllama dependency, already imported by it

        order = sorted(range(len(checked)), key=lambda i: len(checked[i]))
        matrix = model.embed([checked[i] for i in order], norm=False, return_np=True, batch_size=self._batch_size)
        matrix = np.asarray(matrix, dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1)
        bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
        if bad.size:  # no known token at all (never seen for non-blank text): say which input
            raise ValueError(f"texts[{order[int(bad[0])]}] has no token wordllama can embed")
        rows = (matrix / norms[:, None]).tolist()
        out: list[list[float]] = [[] for _ in checked]
        for row, i in zip(rows, order):
            out[i] = row
        return out
