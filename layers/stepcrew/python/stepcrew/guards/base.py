"""The guard port: screen text for personal data (PII), prompt injection and denied topics.

A :class:`Guard` has one method per check kind; each takes a text and returns :class:`Finding` s (kind, entity,
span as character offsets into that text, score in 0-1). Masking is backend-independent (:func:`mask`), as is
screening many short strings at once (:func:`screen_many`: one call over the joined text, findings mapped back).

Backends raise :class:`GuardUnavailableError` when they cannot screen (a library missing, the Bedrock call
failing): callers fail closed on it, never pass text through unscreened.
"""

from __future__ import annotations

import bisect
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FindingKind = Literal["pii", "injection", "denied_topic"]

#: PII entity names (Presidio's, which Bedrock's are mapped to): the ones stepcrew screens for.
PII_ENTITIES = ("EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "PHONE_NUMBER",
                "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "API_KEY")
#: Injection families the detectors name (``Finding.entity`` of an injection finding).
INJECTION_FAMILIES = ("instruction_override", "role_play", "system_prompt_extraction", "encoded_payload",
                      "embedded_instruction")


class Finding(BaseModel):
    """One thing a guard found. ``start``/``end``: character offsets into the screened text (``end`` exclusive);
    ``entity``: a PII entity (:data:`PII_ENTITIES`), an injection family (:data:`INJECTION_FAMILIES`) or the denied
    topic's name; ``score``: the backend's confidence, 0-1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FindingKind
    entity: str = Field(min_length=1, max_length=128)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float = Field(ge=0.0, le=1.0)


class GuardUnavailableError(RuntimeError):
    """The guard could not screen the text (backend missing or failing). Callers fail closed."""


class Guard(ABC):
    """The guard port. Implementations: ``LocalGuard`` (offline) and ``BedrockGuard`` (Amazon Bedrock Guardrails).

    Every method is pure with respect to stepcrew's state (no store access) and returns findings sorted by
    ``start``, non-overlapping within one kind. Raises GuardUnavailableError when the backend cannot screen.
    """

    #: Backend name recorded in events (``local``, ``bedrock``).
    name: str = "guard"

    @abstractmethod
    def pii(self, text: str) -> list[Finding]:
        """Personal data and secrets in ``text`` (kind ``pii``; entities from :data:`PII_ENTITIES`)."""

    @abstractmethod
    def injection(self, text: str) -> list[Finding]:
        """Prompt-injection attempts in ``text`` (kind ``injection``; entity = family, :data:`INJECTION_FAMILIES`)."""

    @abstractmethod
    def topics(self, text: str, denied: Sequence[str]) -> list[Finding]:
        """Mentions of the ``denied`` topics (terms or short phrases) in ``text`` (kind ``denied_topic``; entity =
        the denied topic as given)."""


def mask(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with each finding's span replaced by ``[ENTITY]`` (e.g. ``[EMAIL_ADDRESS]``: brackets, not angle brackets, which Markdown renderers take for HTML and hide). Overlapping spans
    are merged (the first-starting finding names the merged span)."""
    out: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if f.end <= pos:
            continue
        start = max(f.start, pos)
        out.append(text[pos:start])
        if start == f.start:
            out.append(f"[{f.entity}]")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def _word_pattern(term: str) -> re.Pattern[str]:
    """A denied term as a case-insensitive whole-word pattern; inner spaces match any whitespace, and a plural is
    allowed (``s``/``es``; ``y`` -> ``ies``)."""
    words = [re.escape(w) for w in term.split()]
    last = words[-1]
    plural = last[:-1] + "(?:y|ies)" if last.lower().endswith("y") and len(last) > 2 else last + "(?:s|es)?"
    return re.compile(r"(?<!\w)" + r"\s+".join([*words[:-1], plural]) + r"(?!\w)", re.IGNORECASE)


def find_terms(text: str, denied: Sequence[str]) -> list[Finding]:
    """Whole-word, case-insensitive mentions of each denied term (a term or short phrase) in ``text``, by start
    (the longer first), not merged.
    Backend-independent: both backends answer per-call denied terms with it (Bedrock's own denied topics live on
    the guardrail resource, not in the call)."""
    out = [Finding(kind="denied_topic", entity=term, start=m.start(), end=m.end(), score=1.0)
           for term in denied if term.strip() for m in _word_pattern(term.strip()).finditer(text)]
    return sorted(out, key=lambda f: (f.start, -f.end, f.entity))


#: Separator of :func:`screen_many`: a line break and a private-use character no recognizer spans.
_PRIVATE = "\ue000"
_SEP = f"\n{_PRIVATE}\n"


def screen_many(check: Callable[[str], list[Finding]], texts: Sequence[str]) -> list[list[Finding]]:
    """Run one check (e.g. ``guard.pii``) over many short strings with one call: the strings are joined with a
    separator, and each finding is mapped back to the string it falls in (offsets relative to that string). A
    finding that crosses a separator is split between the strings it touches. Returns one list per input."""
    if not texts:
        return []
    # the separator's private-use character never comes from the texts (a detector splitting on it could be fooled
    # by a goal that holds it): same length, so every span still points into the original string
    joined = _SEP.join(t.replace(_PRIVATE, "\ufffd") for t in texts)
    bounds: list[tuple[int, int]] = []
    pos = 0
    for t in texts:
        bounds.append((pos, pos + len(t)))
        pos += len(t) + len(_SEP)
    out: list[list[Finding]] = [[] for _ in texts]
    starts = [lo for lo, _ in bounds]
    for f in check(joined):
        i = max(0, bisect.bisect_right(starts, f.start) - 1)  # the first string the finding may touch
        while i < len(bounds) and bounds[i][0] < f.end:
            lo, hi = bounds[i]
            s, e = max(f.start, lo), min(f.end, hi)
            if s < e:
                out[i].append(f.model_copy(update={"start": s - lo, "end": e - lo}))
            i += 1
    return out
