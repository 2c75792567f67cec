"""The embeddings port: ``Embeddings.embed(texts) -> vectors``, plus exact search helpers and a lexical guard.

Adapters: :class:`stepcrew.embeddings.wordllama.WordLlamaEmbeddings` (offline, static word embeddings bundled in the
``wordllama`` wheel), :class:`stepcrew.embeddings.bedrock.BedrockEmbeddings` (Amazon Titan Text Embeddings V2) and
the deterministic fake :class:`stepcrew.embeddings.testing.HashingEmbeddings`. Choose one with
:func:`stepcrew.embeddings.factory.build_embeddings`.

Contract of every adapter's ``embed`` (tests/unit/embeddings/test_embeddings.py checks it for all three):

- input: a ``list`` (or ``tuple``) of ``str``; ``[]`` -> ``[]`` without loading a model or calling a service.
  A non-list (a bare ``str`` included) or a non-``str`` item -> ``TypeError``. A text that is empty or only
  whitespace -> ``ValueError`` (nothing to embed; Titan rejects it too). Texts longer than
  :data:`MAX_TEXT_CHARS` (8,000 characters) are truncated to their first 8,000 characters before embedding, silently:
  a goal or a question is far shorter, and 8,000 characters stays under Titan V2's 8,192-token / 50,000-character
  input limit and keeps wordllama's padded batches small.
- output: one vector per text, in input order; each a ``list`` of ``dim`` plain Python ``float`` with L2 norm 1
  (within float rounding), so vectors can be JSON-serialised as they are (DynamoDB needs ``Decimal``: convert at
  the store). The same text always gives the same vector (per adapter and ``name``).
- failures: :class:`EmbeddingsUnavailableError` when the backend cannot embed now (throttled, 5xx, no connection,
  package or weights missing) -- callers such as a semantic cache should treat it as a miss, not fail the run;
  :class:`EmbeddingsRequestError` for a request the backend rejects for good (bad model id, access denied).

:data:`DEFAULT_SEMANTIC_THRESHOLD` is the cosine similarity at or above which two goals may share a cached answer
(with :func:`same_key_terms` too). For wordllama it is ``math.inf``: the benchmark found no safe threshold, so
semantic hits are off by default; see its comment for the figures.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

#: Texts are cut to this many characters (not tokens) before embedding.
MAX_TEXT_CHARS = 8_000

#: Cosine threshold of the semantic cache: ``math.inf``, i.e. **semantic hits off** -- no cosine is safe for
#: ``wordllama:l2_supercat:256``. How it was chosen: ``bench/semantic_cache.py`` on the hand-labelled
#: ``bench/semantic_sets/goal_pairs.jsonl`` (282 goal pairs, 117 ``same``; written blind, before any score) sweeps
#: 0.50..0.99 (step 0.01) and takes the lowest threshold whose precision on ``same`` is >= 0.99, for the embedding
#: alone and with :func:`same_key_terms`. None qualifies: the best precision reachable is 0.419 (embedding, t=0.50)
#: and 0.595 (embedding + guard, t=0.50, recall 0.829); at 0.90 with the guard it is 0.44 at recall 0.09. Static
#: embeddings score one-word hard negatives higher (mean cosine 0.819) than real paraphrases (0.694); word-order
#: swaps ("predict A from B" / "B from A") score exactly 1.0; the guard removes the number/aggregate/extreme
#: differences but not swapped entities or columns (male/female, open/close, departure/arrival). So
#: ``score >= DEFAULT_SEMANTIC_THRESHOLD`` is never true: use exact (normalised-key) cache hits, or a stronger
#: embedding / a verifier, and re-run the bench (Titan has another score scale and needs its own run; it cannot run
#: offline). Re-run: ``.venv/bin/python bench/semantic_cache.py`` -> last line
#: ``threshold=inf precision=nan recall=0.000 pairs=282``.
DEFAULT_SEMANTIC_THRESHOLD: float = math.inf


class EmbeddingsError(Exception):
    """Base of embedding failures raised by adapters (provider SDK exceptions never leave an adapter)."""


class EmbeddingsUnavailableError(EmbeddingsError):
    """The backend cannot embed right now: throttled, 5xx, timeout/connection error, or the local model (package or
    bundled weights) cannot be loaded. Transient or environmental: a semantic cache treats it as a miss."""


class EmbeddingsRequestError(EmbeddingsError):
    """The backend rejected the request for good (HTTP 4xx other than throttling: access denied, unknown model,
    validation). Not transient."""


class Embeddings(ABC):
    """The embeddings port.

    ``name``: backend, model and dimension, e.g. ``"wordllama:l2_supercat:256"``; vectors with different names are
    not comparable (store it beside every vector). ``dim``: length of every vector.
    """

    name: str = "abstract"
    dim: int = 0

    @abstractmethod
    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` (shape ``[n]``) into ``n`` L2-normalised vectors of ``dim`` floats (shape ``[n, dim]``).

        See the module docstring for validation (TypeError / ValueError), truncation at :data:`MAX_TEXT_CHARS`
        and errors (:class:`EmbeddingsUnavailableError`, :class:`EmbeddingsRequestError`)."""


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate and truncate an ``embed`` input (the shared rules of the module docstring); return a new list.

    Raises ``TypeError`` (not a list/tuple, or an item not a ``str``) and ``ValueError`` (an empty or whitespace-only
    item, with its index)."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of str, not {type(texts).__name__}")
    out: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be str, not {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"texts[{i}] is empty or whitespace: nothing to embed")
        out.append(text[:MAX_TEXT_CHARS])
    return out


def l2_normalise(vector: Sequence[float]) -> list[float]:
    """``vector / ||vector||_2`` as a list of Python floats. ``ValueError`` if the norm is 0 or not finite."""
    norm = math.sqrt(math.fsum(float(x) * float(x) for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError(f"cannot normalise a vector of norm {norm}")
    return [float(x) / norm for x in vector]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors of the same length, in [-1, 1] (a dot product for unit vectors).

    ``ValueError`` if the lengths differ or either is empty; 0.0 if either vector is all zeros."""
    if len(a) != len(b) or not a:
        raise ValueError(f"cosine needs two non-empty vectors of the same length (got {len(a)} and {len(b)})")
    dot = math.fsum(float(x) * float(y) for x, y in zip(a, b))
    na = math.sqrt(math.fsum(float(x) * float(x) for x in a))
    nb = math.sqrt(math.fsum(float(y) * float(y) for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / (na * nb)))


def top_k(query: list[float], items: list[tuple[str, list[float]]], k: int) -> list[tuple[str, float]]:
    """Exact (brute-force) nearest neighbours: the ``k`` items of highest cosine similarity to ``query``.

    ``items``: ``(id, vector)`` pairs, each vector of ``len(query)``. Returns up to ``k`` ``(id, cosine)`` pairs, best
    first; equal scores keep the order of ``items``. ``k <= 0`` or no items -> ``[]``. ``ValueError`` when ``k`` is
    negative or a vector's length differs from the query's (the message names the item). Uses numpy (imported on first
    call) when it is installed, pure Python otherwise; cost O(len(items) * dim) -- FACTS.md measured ~24 ms p50 for
    10,000 x 256 here, mostly converting the lists to an array.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k == 0 or not items:
        return []
    dim = len(query)
    for item_id, vec in items:
        if len(vec) != dim:
            raise ValueError(f"item {item_id!r} has {len(vec)} dimensions, the query has {dim}")
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a wordllama dependency, so normally present
        np = None
    if np is None:
        scored = [(item_id, cosine(query, vec)) for item_id, vec in items]
        return sorted(scored, key=lambda pair: -pair[1])[:k]
    q = np.asarray(query, dtype=np.float64)
    m = np.asarray([vec for _, vec in items], dtype=np.float64)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(norms > 0, (m @ q) / np.where(norms > 0, norms, 1.0), 0.0)
    scores = np.clip(scores, -1.0, 1.0)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(items[i][0], float(scores[i])) for i in order]


# ------------------------------------------------------------------------------------------- lexical guard

#: Answer-changing word classes: a canonical term -> the words/phrases that express it (lower case, regex).
#: Synonyms share a class ("top" = "highest" = "max"), so paraphrases still match; opposites are different classes.
KEY_TERM_PATTERNS: dict[str, str] = {
    "mean": r"\b(?:mean|means|average|averages|averaged|avg)\b",
    "median": r"\bmedians?\b",
    "max": r"\b(?:max|maximum|maximal|highest|largest|biggest|greatest|most|top|peak|best|heaviest|longest"
           r"|tallest|hottest|warmest|wettest)\b",
    "min": r"\b(?:min|minimum|minimal|lowest|smallest|least|fewest|bottom|worst|lightest|shortest|coldest"
           r"|coolest|driest)\b",
    "sum": r"\b(?:sum|sums|summed|total|totals)\b",
    "percent": r"%|\b(?:percent|percentage|percentages|proportion|proportions|share|fraction)\b",
    "std": r"\b(?:std|stdev|standard deviation)\b",
    "variance": r"\bvariances?\b",
    "increase": r"\b(?:increase|increases|increased|increasing|rise|rises|rose|risen|rising|grow|grows|grew"
                r"|grown|growing|growth|gain|gains|gained)\b",
    "decrease": r"\b(?:decrease|decreases|decreased|decreasing|decline|declines|declined|declining|drop|drops"
                r"|dropped|fall|falls|fell|falling|shrink|shrinks|shrank|reduction)\b",
    "above": r"\b(?:above|exceed|exceeds|exceeding|more than|greater than|higher than|larger than|bigger than"
             r"|heavier than|longer than|over(?= \$?\d))\b",
    "below": r"\b(?:below|less than|fewer than|lower than|smaller than|lighter than|shorter than"
             r"|under(?= \$?\d))\b",
    "ascending": r"\bascending\b",
    "descending": r"\bdescending\b",
    "first": r"\b(?:first|earliest)\b",
    "last": r"\b(?:last|latest)\b",
    "not": r"n't\b|\b(?:not|except|excluding|exclude|without)\b",
}
#: Months with their abbreviations ("may" is left out: it is also a modal verb, "may I see...").
_MONTHS = {"january": "jan", "february": "feb", "march": "mar", "april": "apr", "june": "jun", "july": "jul",
           "august": "aug", "september": "sept?", "october": "oct", "november": "nov", "december": "dec"}
KEY_TERM_PATTERNS.update({month: rf"\b(?:{month}|{abbr})\b" for month, abbr in _MONTHS.items()})
_COMPILED = {term: re.compile(pattern) for term, pattern in KEY_TERM_PATTERNS.items()}
#: Number words read as numbers ("one" is left out: "which one...").
NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
                "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "dozen": "12", "fifteen": "15",
                "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100"}
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


def _number(token: str) -> str:
    """Canonical form of a token holding a digit: ``1,000`` -> ``1000``, ``5.0`` -> ``5``, ``50k`` -> ``50000``."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", token):
        token = token.replace(",", "")
    if re.fullmatch(r"\d+\.0+", token):
        token = token.split(".")[0]
    if re.fullmatch(r"\d+k", token):
        token = str(int(token[:-1]) * 1000)
    return token


def key_terms(text: str) -> frozenset[str]:
    """The answer-changing terms of ``text``: every token holding a digit (numbers, years, ``q1``; canonicalised by
    :func:`_number`), number words as digits, and the canonical names of :data:`KEY_TERM_PATTERNS` classes that
    occur (aggregates, extremes, trends, comparisons, order, negation, months)."""
    low = text.lower()
    terms = {name for name, rx in _COMPILED.items() if rx.search(low)}
    for token in _TOKEN.findall(low):
        if any(ch.isdigit() for ch in token):
            terms.add("#" + _number(token))
        elif token in NUMBER_WORDS:
            terms.add("#" + NUMBER_WORDS[token])
    return frozenset(terms)


def same_key_terms(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` have the same :func:`key_terms`: the same numbers and years and the same aggregate /
    extreme / trend / comparison / order / negation / month words, synonyms folded. A cheap lexical guard for a
    semantic cache: static embeddings score "mean body mass" and "median body mass" ~the same, this tells them apart.
    It cannot see entities (Adelie vs Gentoo) or word order (predict A from B vs B from A)."""
    return key_terms(a) == key_terms(b)
