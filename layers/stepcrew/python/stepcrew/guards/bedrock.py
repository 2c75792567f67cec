"""Amazon Bedrock Guardrails backend of the guard port: one ``ApplyGuardrail`` call screens a text for all three kinds.

Call (bedrock-runtime ``ApplyGuardrail``; shapes from botocore's service model ``bedrock-runtime/2023-09-30``)::

    apply_guardrail(guardrailIdentifier=<id>, guardrailVersion=<"1".. or "DRAFT">, source="INPUT",
                    content=[{"text": {"text": <text>}}], outputScope="FULL")

``source="INPUT"``: the prompt-attack filter only evaluates inputs. ``outputScope="FULL"`` also returns the entries
that did not fire (with ``detected: false``), so each entry is kept only when it fired: ``detected`` when present,
else an ``action`` other than ``NONE``. Parsed from ``assessments[]``:

- ``sensitiveInformationPolicy.piiEntities[]`` (``type``, ``match``) -> kind ``pii``, the Bedrock type mapped to
  stepcrew's (Presidio's) entity name by :data:`BEDROCK_TO_PII` (an unmapped type keeps its Bedrock name);
  ``sensitiveInformationPolicy.regexes[]`` (``name``, ``match``) -> kind ``pii``, entity = the regex's name (the
  stack's guardrail defines :data:`API_KEY_REGEX` as ``API_KEY``);
- ``contentPolicy.filters[]`` of type ``PROMPT_ATTACK`` -> kind ``injection``, family ``instruction_override``
  (Bedrock has one prompt-attack category), score from ``confidence`` by :data:`CONFIDENCE_SCORE`;
- ``topicPolicy.topics[]`` (``name``) -> kind ``denied_topic``, entity = the guardrail topic's name.

Spans: Bedrock returns the matched text, not offsets; every occurrence of a match in the screened text becomes a
finding. A finding without a locatable span (a match not found verbatim, a prompt attack, a topic) covers the whole
text sent in that call. PII and topics come without a confidence: they score :data:`DETECTED_SCORE`.

Per-call denied terms: Bedrock's denied topics are configured on the guardrail resource (``topicPolicyConfig`` of
``AWS::Bedrock::Guardrail``), not per request, so :meth:`BedrockGuard.topics` returns the guardrail's topic findings
plus the case-insensitive whole-word matches of the ``denied`` terms in the text
(:func:`stepcrew.guards.base.find_terms`, shared with the local backend: pure, no API call).

Limits and units: botocore's service model sets no maximum length on a text block (``GuardrailTextBlock.text`` is
a plain string; API reference ``API_runtime_ApplyGuardrail``). Bedrock meters guardrails in text units of up to
1,000 characters each, per policy (the ``usage`` of every response counts them; Amazon Bedrock pricing page,
https://aws.amazon.com/bedrock/pricing/), and its ApplyGuardrail quotas are text units *per second* per policy
(Service Quotas, "Amazon Bedrock"; reported defaults of 25 text units per second in some Regions and tiers - a rate,
not a request size; not verified here, check the account's quotas). :data:`MAX_CHARS_PER_CALL` is therefore a
choice, not a documented request limit: 25 text units, so that one call never needs more than such a second's
quota. A longer text is sent in chunks of at most that size which overlap by :data:`CHUNK_OVERLAP` characters (so a
match across a boundary is still seen whole by one call); findings are mapped back to offsets in the whole text. A
response whose ``guardrailCoverage`` says fewer characters were guarded than sent raises GuardUnavailableError:
nothing passes unscreened.

Cost (reported from summaries of the pricing page, 2025-2026; re-check before quoting): content filters (prompt
attack) and denied topics $0.15 per 1,000 text units each, sensitive-information (PII) filters $0.10 per 1,000 text
units, regex filters free. So one 2,000-character goal screened by this stack's guardrail (prompt attack + PII + regex, no topics) is
2 units x ($0.15 + $0.10) / 1,000 = $0.0005. The last response per text is cached (:data:`CACHE_SIZE` texts), so
``pii()`` + ``injection()`` + ``topics()`` on one text cost one call (per chunk). :attr:`BedrockGuard.usage` sums the
units Bedrock reported.

Errors: botocore ClientError (AccessDenied, ResourceNotFound, Validation, Throttling after the client's own retries,
ServiceUnavailable...) and BotoCoreError (EndpointConnectionError, timeouts) raise GuardUnavailableError naming the
error code only, never the text (the original exception is not chained: its message is not ours to log).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stepcrew.guards.base import Finding, FindingKind, Guard, GuardUnavailableError, find_terms

#: Bedrock PII entity type -> stepcrew's entity name (Presidio's). Types not listed keep their Bedrock name.
BEDROCK_TO_PII: dict[str, str] = {
    "EMAIL": "EMAIL_ADDRESS",
    "US_SOCIAL_SECURITY_NUMBER": "US_SSN",
    "CREDIT_DEBIT_CARD_NUMBER": "CREDIT_CARD",
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": "IBAN_CODE",
    "IP_ADDRESS": "IP_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "AWS_ACCESS_KEY": "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY": "AWS_SECRET_KEY",
    # Presidio has these too (stepcrew does not screen for them by default, but names them the same way).
    "NAME": "PERSON",
    "URL": "URL",
    "US_PASSPORT_NUMBER": "US_PASSPORT",
    "US_BANK_ACCOUNT_NUMBER": "US_BANK_NUMBER",
    "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER": "US_ITIN",
    "UK_NATIONAL_HEALTH_SERVICE_NUMBER": "UK_NHS",
    "UK_NATIONAL_INSURANCE_NUMBER": "UK_NINO",
}
#: The Bedrock PII types the stack's guardrail anonymizes: those mapping to :data:`stepcrew.guards.base.PII_ENTITIES`.
GUARDRAIL_PII_TYPES: tuple[str, ...] = ("EMAIL", "US_SOCIAL_SECURITY_NUMBER", "CREDIT_DEBIT_CARD_NUMBER",
                                        "INTERNATIONAL_BANK_ACCOUNT_NUMBER", "IP_ADDRESS", "PHONE",
                                        "AWS_ACCESS_KEY", "AWS_SECRET_KEY")
#: The guardrail's regex filter for provider API keys (``sk-...``), reported under this name.
API_KEY_REGEX_NAME = "API_KEY"
API_KEY_REGEX = r"sk-[A-Za-z0-9_-]{20,}"
#: Prompt-attack confidence -> score. ``NONE`` never counts as fired on its own.
CONFIDENCE_SCORE: dict[str, float] = {"NONE": 0.0, "LOW": 0.4, "MEDIUM": 0.7, "HIGH": 0.95}
#: Score of a PII entity, regex or topic Bedrock detected (it reports no confidence for those).
DETECTED_SCORE = 0.95
#: The injection family of Bedrock's single prompt-attack category.
PROMPT_ATTACK_FAMILY = "instruction_override"
#: Characters per ApplyGuardrail call: 25 text units of 1,000 characters (see the module docstring).
MAX_CHARS_PER_CALL = 25_000
#: Characters shared by consecutive chunks of a longer text.
CHUNK_OVERLAP = 500
#: Texts whose findings are kept (least recently used goes first).
CACHE_SIZE = 16
_ENTITY_MAX = 128


@dataclass(frozen=True)
class _Assessment:
    """The findings of one text, by kind (offsets into that text, merged and sorted)."""

    pii: list[Finding]
    injection: list[Finding]
    denied_topic: list[Finding]


def chunks(text: str, size: int = MAX_CHARS_PER_CALL, overlap: int = CHUNK_OVERLAP) -> list[tuple[int, str]]:
    """``text`` as (offset, chunk) pairs of at most ``size`` characters, consecutive chunks sharing ``overlap``
    characters. A chunk ends after the last whitespace of its final ``overlap`` characters when there is one (so a
    word is not cut), else at ``size``. A text of at most ``size`` characters is one chunk."""
    if size <= overlap:
        raise ValueError(f"chunk size {size} must exceed the overlap {overlap}")
    out: list[tuple[int, str]] = []
    start = 0
    while True:
        end = start + size
        if end >= len(text):
            out.append((start, text[start:]))
            return out
        cut = max(text.rfind(" ", end - overlap, end), text.rfind("\n", end - overlap, end))
        if cut > start:
            end = cut + 1
        out.append((start, text[start:end]))
        start = max(end - overlap, start + 1)


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """Findings of one kind sorted by start and made non-overlapping: an overlapping finding is folded into the one
    before it (end = the later end, score = the higher score, entity = the first-starting finding's)."""
    out: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -f.end, -f.score)):
        if out and f.start < out[-1].end:
            last = out[-1]
            out[-1] = last.model_copy(update={"end": max(last.end, f.end), "score": max(last.score, f.score)})
        else:
            out.append(f)
    return out


def _fired(entry: dict[str, Any]) -> bool:
    if "detected" in entry:
        return bool(entry["detected"])
    return entry.get("action", "NONE") != "NONE"


def _spans(text: str, match: str | None) -> list[tuple[int, int]]:
    """Every occurrence of ``match`` in ``text``; the whole text when there is none (or no match given)."""
    spans: list[tuple[int, int]] = []
    if match:
        pos = text.find(match)
        while pos >= 0:
            spans.append((pos, pos + len(match)))
            pos = text.find(match, pos + len(match))
    return spans or [(0, len(text))]


def parse_assessments(text: str, response: dict[str, Any]) -> _Assessment:
    """The findings of one ApplyGuardrail ``response`` for the ``text`` it screened (offsets into ``text``)."""
    by_kind: dict[FindingKind, list[Finding]] = {"pii": [], "injection": [], "denied_topic": []}

    def add(kind: FindingKind, entity: str, match: str | None, score: float) -> None:
        for start, end in _spans(text, match):
            by_kind[kind].append(Finding(kind=kind, entity=entity[:_ENTITY_MAX], start=start, end=end, score=score))

    for assessment in response.get("assessments", []):
        sensitive = assessment.get("sensitiveInformationPolicy", {})
        for entity in sensitive.get("piiEntities", []):
            if _fired(entity):
                add("pii", BEDROCK_TO_PII.get(entity["type"], entity["type"]), entity.get("match"), DETECTED_SCORE)
        for regex in sensitive.get("regexes", []):
            if _fired(regex):
                add("pii", regex.get("name") or "REGEX", regex.get("match"), DETECTED_SCORE)
        for content_filter in assessment.get("contentPolicy", {}).get("filters", []):
            if content_filter["type"] == "PROMPT_ATTACK" and _fired(content_filter):
                add("injection", PROMPT_ATTACK_FAMILY, None, CONFIDENCE_SCORE.get(content_filter["confidence"], 0.0))
        for topic in assessment.get("topicPolicy", {}).get("topics", []):
            if _fired(topic):
                add("denied_topic", topic["name"], None, DETECTED_SCORE)
    return _Assessment(**{kind: merge(found) for kind, found in by_kind.items()})


class BedrockGuard(Guard):
    """Guard port on Amazon Bedrock Guardrails (see the module docstring for shapes, units, limits and cost).

    ``client``: a ``bedrock-runtime`` boto3 client (its retry configuration applies to throttling);
    ``guardrail_id``: the guardrail's id or ARN; ``guardrail_version``: a published version (``"1"``...) or
    ``"DRAFT"``. ``max_chars``/``overlap``: chunking of long texts; ``cache_size``: texts whose findings are kept.
    """

    name = "bedrock"

    def __init__(self, client: Any, guardrail_id: str, guardrail_version: str, *,
                 max_chars: int = MAX_CHARS_PER_CALL, overlap: int = CHUNK_OVERLAP,
                 cache_size: int = CACHE_SIZE) -> None:
        if not guardrail_id or not guardrail_version:
            raise ValueError("BedrockGuard needs a guardrail id and version")
        if max_chars <= overlap:
            raise ValueError(f"max_chars {max_chars} must exceed overlap {overlap}")
        self._client = client
        self.guardrail_id = guardrail_id
        self.guardrail_version = guardrail_version
        self._max_chars = max_chars
        self._overlap = overlap
        self._cache_size = max(1, cache_size)
        self._cache: OrderedDict[str, _Assessment] = OrderedDict()
        # outputScope came with a later API model: send it only when the client's botocore knows it.
        self._extra: dict[str, str] = {"outputScope": "FULL"} if _has_output_scope(client) else {}
        #: ApplyGuardrail calls made and text units Bedrock reported (``usage`` of each response, summed by field).
        self.calls = 0
        self.usage: Counter[str] = Counter()

    # ---------------------------------------------------------------------------------------- the port
    def pii(self, text: str) -> list[Finding]:
        return list(self._assess(text).pii)

    def injection(self, text: str) -> list[Finding]:
        return list(self._assess(text).injection)

    def topics(self, text: str, denied: Sequence[str]) -> list[Finding]:
        """The guardrail's denied-topic findings plus whole-word matches of the per-call ``denied`` terms
        (:func:`stepcrew.guards.base.find_terms`), merged (non-overlapping, sorted)."""
        return merge([*self._assess(text).denied_topic, *find_terms(text, denied)])

    # ---------------------------------------------------------------------------------------- calls
    def _assess(self, text: str) -> _Assessment:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        if not text.strip():
            result = _Assessment([], [], [])
        else:
            parts = [(offset, parse_assessments(chunk, self._apply(chunk)))
                     for offset, chunk in chunks(text, self._max_chars, self._overlap)]
            result = _Assessment(**{kind: merge(f.model_copy(update={"start": f.start + offset,
                                                                     "end": f.end + offset})
                                                for offset, part in parts for f in getattr(part, kind))
                                    for kind in ("pii", "injection", "denied_topic")})
        self._cache[text] = result
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _apply(self, chunk: str) -> dict[str, Any]:
        try:
            response = self._client.apply_guardrail(
                guardrailIdentifier=self.guardrail_id, guardrailVersion=self.guardrail_version, source="INPUT",
                content=[{"text": {"text": chunk}}], **self._extra)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "ClientError")
            raise _unavailable(code) from None
        except BotoCoreError as exc:
            raise _unavailable(type(exc).__name__) from None
        self.calls += 1
        self.usage.update({k: v for k, v in response.get("usage", {}).items() if isinstance(v, int)})
        coverage = response.get("guardrailCoverage", {}).get("textCharacters", {})
        guarded, total = coverage.get("guarded"), coverage.get("total")
        if guarded is not None and total is not None and guarded < total:
            raise _unavailable("PartialCoverage", f"the guardrail screened {guarded} of {total} characters")
        return response


def _has_output_scope(client: Any) -> bool:
    try:
        shape = client.meta.service_model.operation_model("ApplyGuardrail").input_shape
    except Exception:  # noqa: BLE001 - a client without the model (a test double): send the parameter
        return True
    return "outputScope" in shape.members


def _unavailable(code: str, detail: str = "") -> GuardUnavailableError:
    err = GuardUnavailableError(f"Bedrock ApplyGuardrail failed: {code}" + (f" ({detail})" if detail else ""))
    err.code = code  # type: ignore[attr-defined]
    return err
