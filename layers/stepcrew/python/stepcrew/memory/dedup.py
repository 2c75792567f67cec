"""Deduplication of facts: one subject, one item.

A fact's identity is its user (None: tenant-wide) and its *subject*, normalised (case, accents kept, punctuation
and repeated spaces removed, a leading article dropped): ``f-`` + the first 20 hex digits of SHA-256 over
``<user>\\x00<normalised subject>``. Writing a fact whose subject is already known replaces the item (its
``created_at`` is kept): "report currency EUR" then "report currency: USD" leave one item, saying USD.

A fact given without a subject gets one from its text (:func:`subject_of`): the part before the first copula or
separator (``:``, ``=``, `` means ``, `` is ``, `` are ``, `` starts ``/`` begins ``/`` ends ``, `` should be ``); in a
text of three or more words with none of them, every word but the last (the value: "report currency EUR" ->
"report currency"); a shorter text is its own subject. Backticks are dropped. Meaning-level
duplicates ("FY begins in April" / "fiscal year starts in April") are *not* merged: the embeddings available
offline cannot tell a paraphrase from a contradiction (``bench/semantic_cache.py``: no safe cosine threshold), and a
wrong merge silently loses a fact, while a duplicate only costs prompt tokens.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPLIT = re.compile(r"\s*(?::|=|\bmeans\b|\bis\b|\bare\b|\bstarts?\b|\bbegins?\b|\bends?\b|\bshould be\b|"
                    r"\bmust be\b|\bequals\b)\s*", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:the|a|an|our|my)\s+", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w\s`.%$€£-]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower case (casefold), NFKC, punctuation dropped (backticks, dots, % and currency signs kept), one space."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _NON_WORD.sub(" ", t)
    t = re.sub(r"\s+", " ", t).strip(" .")
    return _ARTICLE.sub("", t)


def subject_of(text: str) -> str:
    """The subject of a fact's text (module docstring), at most 120 characters, never empty."""
    parts = _SPLIT.split(text, maxsplit=1)
    if len(parts) > 1 and parts[0].strip():
        head = parts[0]
    else:
        words = text.split()
        head = " ".join(words[:-1]) if len(words) >= 3 else text  # "report currency EUR": the last word is the value
    head = head.replace("`", "").strip(" .:'\"")
    return (head or text.strip())[:120]


def fact_id(user: str | None, subject: str) -> str:
    """``f-<20 hex>``: the id of the fact with this subject for this user (None: tenant-wide)."""
    digest = hashlib.sha256(f"{user or ''}\x00{normalise(subject)}".encode()).hexdigest()
    return "f-" + digest[:20]
