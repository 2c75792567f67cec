"""The offline guard backend: Presidio's analyzer on its pattern recognizers, completed by stepcrew's own, and the
rule-based injection detector (:mod:`stepcrew.guards.injection`).

PII, with Presidio (``presidio-analyzer``, the ``guard`` extra) on its :class:`NoOpNlpEngine`: no spaCy model is
loaded or downloaded (spaCy itself is still imported by Presidio). Nothing reaches the network: Presidio's e-mail
recognizer validates domains with ``tldextract``, whose default extractor fetches the public-suffix list on first use
(a timeout in a VPC Lambda; ../shared/FACTS.md), so the e-mail recognizer here uses an extractor on the snapshot
bundled with tldextract (``suffix_list_urls=()``, no cache folder).

Recognizers: Presidio's e-mail, credit card (Luhn-checked; spaces and dashes), IBAN (mod-97 checksum) and IP (v4,
v6); stepcrew's own phone numbers (``phonenumbers`` on candidate spans, regions :data:`PHONE_REGIONS`; Presidio's
phone recognizer runs the matcher over the whole text once per region, ~30 ms per KB for 20 regions), US SSN (Presidio's drops numbers on
its list of invalid SSNs, e.g. the famous 078-05-1120 that is printed everywhere, and scores formatted SSNs 0.5),
Mastercard's 2-series cards (Luhn-checked), AWS access key ids and secret keys, and API keys (``sk-``/``sk-proj-``/``sk-ant-``, ``sk_live_``, GitHub ``ghp_``,
Slack ``xox?-``, Google ``AIza``). Overlaps keep the higher score (an SSN is not also a phone number).

Costs (seen here, see ``bench/guards.py``): import ~1.4 s (Presidio + spaCy + phonenumbers), build ~1 ms, a short
call ~5 ms. Build one per container.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import Any

from stepcrew.guards import injection
from stepcrew.guards.base import Finding, Guard, GuardUnavailableError, find_terms

#: Regions whose phone formats are recognised (``phonenumbers`` region codes).
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "ES", "IT", "AU")
#: Lowest score kept (Presidio's IP recognizer scores 0.6, its unvalidated card pattern 0.3).
MIN_SCORE = 0.35

_SSN = re.compile(r"(?<![\d-])(\d{3})([- .])(\d{2})\2(\d{4})(?![\d-])")
_SSN_BARE = re.compile(r"(?<!\d)\d{9}(?!\d)")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|ssns|social\s+security|soc\.?\s*sec|tax\s*id|tin)\b", re.I)
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}"
                         r"(?![A-Z0-9])")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_CONTEXT = re.compile(r"aws|secret|access.?key|credential", re.I)
_API_KEY = re.compile(r"(?<![A-Za-z0-9_-])(?:sk-(?:proj-|ant-(?:api\d\d-|admin\d\d-)?|svcacct-|None-)?"
                      r"[A-Za-z0-9_-]{20,}|sk_(?:live|test)_[A-Za-z0-9]{16,}|rk_(?:live|test)_[A-Za-z0-9]{16,}|"
                      r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}|"
                      r"AIza[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])")


#: Mastercard's 2-series (2221-2720), which Presidio's card pattern does not cover; grouped 4-4-4-4 or bare.
_MC2 = re.compile(r"(?<![\d-])(2[2-7]\d\d)([- ]?)(\d{4})\2(\d{4})\2(\d{4})(?![\d-])")


def _luhn(digits: str) -> bool:
    """The Luhn checksum (ISO/IEC 7812-1) of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"))


def normalise(text: str) -> tuple[str, list[int]]:
    """``text`` as PII recognizers expect it, and the original index of each character: NFKC per character
    (fullwidth ``＠`` and digits become ASCII), invisible format characters (Unicode category Cf: zero-width, word
    joiners, bidi marks; tag characters) dropped, Unicode dashes made ``-``, ``%40``
    made ``@`` (an URL-escaped e-mail)."""
    import unicodedata

    out: list[str] = []
    index: list[int] = []
    i = 0
    while i < len(text):
        if text.startswith("%40", i):
            out.append("@")
            index.append(i)
            i += 3
            continue
        if unicodedata.category(text[i]) == "Cf" or 0xE0000 <= ord(text[i]) <= 0xE007F:  # invisible format chars
            i += 1
            continue
        for c in unicodedata.normalize("NFKC", text[i]).translate(_DASHES):
            out.append(c)
            index.append(i)
        i += 1
    return "".join(out), index


#: An e-mail address on any domain (Presidio's recognizer needs a public suffix: ``ann@corp.internal`` passes it).
_EMAIL_ANY = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+(?![\w-])")


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA's structural rules: area not 000, 666 or 900-999; group not 00; serial not 0000
    (https://www.ssa.gov/employer/randomization.html)."""
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _own_findings(text: str) -> list[Finding]:
    out: list[Finding] = []
    for m in _SSN.finditer(text):
        if _ssn_valid(m.group(1), m.group(3), m.group(4)):
            out.append(Finding(kind="pii", entity="US_SSN", start=m.start(), end=m.end(), score=0.85))
    for m in _SSN_BARE.finditer(text):
        d = m.group(0)
        if _ssn_valid(d[:3], d[3:5], d[5:]) and _SSN_CONTEXT.search(text[max(0, m.start() - 40):m.start()]):
            out.append(Finding(kind="pii", entity="US_SSN", start=m.start(), end=m.end(), score=0.8))
    for m in _MC2.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 2221 <= int(digits[:4]) <= 2720 and _luhn(digits):
            out.append(Finding(kind="pii", entity="CREDIT_CARD", start=m.start(), end=m.end(), score=1.0))
    for m in _EMAIL_ANY.finditer(text):
        out.append(Finding(kind="pii", entity="EMAIL_ADDRESS", start=m.start(), end=m.end(), score=0.6))
    for m in _AWS_KEY_ID.finditer(text):
        out.append(Finding(kind="pii", entity="AWS_ACCESS_KEY", start=m.start(), end=m.end(), score=0.95))
    for m in _AWS_SECRET.finditer(text):
        tok = m.group(0)
        mixed = re.search(r"[a-z]", tok) and re.search(r"[A-Z]", tok) and re.search(r"[0-9]", tok)
        if mixed and _AWS_SECRET_CONTEXT.search(text[max(0, m.start() - 60):m.start()]):
            out.append(Finding(kind="pii", entity="AWS_SECRET_KEY", start=m.start(), end=m.end(), score=0.85))
    for m in _API_KEY.finditer(text):
        out.append(Finding(kind="pii", entity="API_KEY", start=m.start(), end=m.end(), score=0.9))
    return out


#: A phone-number candidate: an optional + or (, then digits with the separators phone numbers use, 7+ digits; not
#: part of an id (no letter, ``-``, ``#``, ``/`` or ``.`` right before or after).
_PHONE_CANDIDATE = re.compile(r"(?<![\w+\-#/.])(?:\+|00)?\(?\d[\d\s().\-/]{5,20}\d(?:\s*(?:x|ext\.?)\s*\d{1,5})?"
                              r"(?![\w\-#/]|\.\d)")
#: Number shapes that are not phone numbers: dates (also a date then more), year ranges, times, decimals, ZIP+4.
_NOT_PHONE = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$|\d{4}\s*-\s*\d{4}$|"
                        r"\d+\.\d+$|\d{1,2}:\d{2}|\d{5}-\d{4}$)")
#: Words that make a bare run of digits (no separators) a phone number.
_PHONE_CONTEXT = re.compile(r"\b(?:phone|tel|telephone|call|mobile|cell|fax|contact|whatsapp|sms|text|ring|dial)\w*\W{0,3}"
                            r"(?:\w+\W{1,3}){0,2}$", re.I)


def _phones(text: str, taken: Sequence[Finding] = ()) -> list[Finding]:
    """Phone numbers with ``phonenumbers``: candidates are found with :data:`_PHONE_CANDIDATE` (7-15 digits; bare
    digit runs need a phone word just before; dates, year ranges, decimals and ZIP+4 codes are skipped), then each is matched region by region
    (:data:`PHONE_REGIONS`, "valid" leniency: more regions make dates valid numbers somewhere); international numbers
    (``+``, ``00``) parse without a region. Matching candidates only, not the whole text, keeps the cost near 1 ms per KB (20 regions over the
    whole text cost ~30 ms per KB here), and the ``taken`` spans (cards, IBANs, SSNs, IPs already found, all
    scored higher) are blanked out first, so no candidate runs into one."""
    import phonenumbers

    out: list[Finding] = []
    if taken:  # the spans already found read as letters, so no candidate runs into them (same length: same offsets)
        chars = list(text)
        for t in taken:
            chars[t.start:t.end] = "x" * (t.end - t.start)
        scan = "".join(chars)
    else:
        scan = text
    for m in _PHONE_CANDIDATE.finditer(scan):
        cand = m.group(0)
        digits = sum(ch.isdigit() for ch in cand)
        if digits < 7 or digits > 15 or _NOT_PHONE.match(cand):
            continue
        groups = re.findall(r"\d+", cand)
        if len(groups) >= 4 and max(map(len, groups)) <= 2 and not cand.startswith(("0", "+", "(")):
            continue  # a run of small numbers ("12 34 56 78 90", "3 4 5 6 7 8 9") is figures, not a phone number
        if cand.isdigit() and not _PHONE_CONTEXT.search(text[max(0, m.start() - 40):m.start()]):
            continue  # a bare digit run (an epoch, a seed, a GTIN) is a phone number only when the text says so
        international = cand.startswith(("+", "00"))
        probe = "+" + cand[2:] if cand.startswith("00") else cand  # 00 is the international prefix
        shift = 1 if cand.startswith("00") else 0  # "+" replaces "00": offsets after it move by one
        regions = (None,) if international else PHONE_REGIONS
        for region in regions:
            matches = list(phonenumbers.PhoneNumberMatcher(probe, region or "US",
                                                           leniency=phonenumbers.Leniency.VALID))
            if matches:
                for pm in matches:
                    start = m.start() + (0 if pm.start == 0 else pm.start + shift)
                    out.append(Finding(kind="pii", entity="PHONE_NUMBER", start=start,
                                       end=m.start() + pm.end + shift, score=0.7))
                break
    return out


def _resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep the best of overlapping findings: higher score first, then the longer span. O(n log n): the kept spans
    stay sorted and disjoint, so only the neighbours of a candidate's position can overlap it (a text with tens of
    thousands of e-mails must not cost quadratic time)."""
    starts: list[int] = []
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start)):
        i = bisect.bisect_left(starts, f.start)
        if i > 0 and kept[i - 1].end > f.start:
            continue
        if i < len(kept) and kept[i].start < f.end:
            continue
        starts.insert(i, f.start)
        kept.insert(i, f)
    return kept


class LocalGuard(Guard):
    """Offline guard (see the module docstring). Raises GuardUnavailableError at construction when Presidio is
    not installed (a dependency of stepcrew; in Lambda, the guard layer)."""

    name = "local"

    def __init__(self) -> None:
        self._analyzer = _build_analyzer()

    def pii(self, text: str) -> list[Finding]:
        """PII in ``text``, found in its normalised view (:func:`normalise`: fullwidth forms, zero-width characters,
        Unicode dashes, ``%40``), with the view's spans mapped back to ``text``."""
        if not text:
            return []
        view, index = normalise(text)
        if view == text:
            return _resolve_overlaps(self._pii(text))
        # the view only: what the raw text holds, the view holds too (the recognizers run once, not twice)
        return _resolve_overlaps([f.model_copy(update={"start": index[f.start], "end": index[f.end - 1] + 1})
                                  for f in self._pii(view) if f.end > f.start])

    def _pii(self, text: str) -> list[Finding]:
        results = self._analyzer.analyze(text=text, language="en", score_threshold=MIN_SCORE)
        found = [Finding(kind="pii", entity=r.entity_type, start=r.start, end=r.end, score=min(1.0, r.score))
                 for r in results]
        found = [*found, *_own_findings(text)]
        return [*found, *_phones(text, found)]

    def injection(self, text: str) -> list[Finding]:
        return injection.detect(text)

    def topics(self, text: str, denied: Sequence[str]) -> list[Finding]:
        return find_terms(text, denied)


def _build_analyzer() -> Any:
    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
        )
    except ImportError as exc:  # pragma: no cover - a dependency of the package and of the guard layer
        raise GuardUnavailableError(f"the local guard needs {exc.name}, which is not installed") from None

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer with a domain check on tldextract's bundled snapshot (no fetch)."""

        def validate_result(self, pattern_text: str) -> bool:
            return offline(pattern_text).fqdn != ""

    registry = RecognizerRegistry(recognizers=[
        OfflineEmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer()])
    engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


__all__ = ["LocalGuard", "PHONE_REGIONS"]
