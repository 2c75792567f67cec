"""Facts a finished run proposes to remember, found by rules (the rule engine's extraction; the LLM engine asks
its model and falls back to these rules).

Only the person-written parts of a run are read: its goal and its inputs (never the report or tool output, whose
figures are facts of one dataset, not of the tenant). Patterns (case-insensitive); each fact's subject is
derived from its text as for a person's add (:func:`stepcrew.memory.dedup.subject_of`), so both dedupe together:

- ``remember (that) X`` / ``note (that) X`` / ``from now on X`` / ``always X``: X as given (a preference for the
  last two);
- ``fiscal year starts|begins in <Month>`` ("fiscal year starts in April");
- ``(report|show|amounts|figures|values) in <CUR>`` or ``currency (is|=|:) <CUR>`` (ISO 4217 code or a common
  name) ("report currency EUR", a preference);
- ``column `c` means|is|holds|contains ...`` ("column `c` means ...");
- an input named ``currency``, ``fiscal_year_start``, ``timezone``, ``locale`` or ``units`` -> ``<setting>: <value>``.

Extracted facts carry ``confidence`` :data:`RULE_CONFIDENCE` (0.6): a person's explicit add is 1.0, the remember
tool 0.9. At most :data:`MAX_EXTRACTED` per run.
"""

from __future__ import annotations

import re

from stepcrew.memory.models import FACT_MAX_CHARS, FactIn

RULE_CONFIDENCE = 0.6
MAX_EXTRACTED = 5

_MONTHS = ("january february march april may june july august september october november december").split()
_CURRENCIES = {"eur": "EUR", "euro": "EUR", "euros": "EUR", "usd": "USD", "dollars": "USD", "us dollars": "USD",
               "gbp": "GBP", "pounds": "GBP", "jpy": "JPY", "yen": "JPY", "chf": "CHF", "cad": "CAD", "aud": "AUD",
               "inr": "INR", "cny": "CNY", "sek": "SEK", "nok": "NOK", "dkk": "DKK"}
_CUR = "|".join(sorted((re.escape(c) for c in _CURRENCIES), key=len, reverse=True))

_REMEMBER = re.compile(r"\b(?:please\s+)?(remember|note)\s+(?:that\s+)?([^.;\n]{3,300})", re.I)
_ALWAYS = re.compile(r"\b(from now on|always)[,:]?\s+([^.;\n]{3,300})", re.I)
_FISCAL = re.compile(r"\bfiscal\s+year\s+(?:starts|begins|start|begin)\s+(?:in|on)\s+(" + "|".join(_MONTHS) + r")\b",
                     re.I)
_CURRENCY_IN = re.compile(r"\b(?:report|show|amounts?|figures?|values?|prices?|revenues?)\b[^.;\n]{0,40}?\bin\s+("
                          + _CUR + r")\b", re.I)
_CURRENCY_IS = re.compile(r"\bcurrency\s*(?:is|=|:|of)?\s*(" + _CUR + r")\b", re.I)
_COLUMN = re.compile(r"\bcolumn\s+[`'\"]?([A-Za-z_][\w.]{0,63})[`'\"]?\s+(means|is|holds|contains|stores)\s+"
                     r"([^.;\n]{2,200})", re.I)
_INPUT_SETTINGS = {"currency": "report currency", "fiscal_year_start": "fiscal year start", "timezone": "timezone",
                   "locale": "locale", "units": "units"}


def _fact(text: str, subject: str, kind: str = "fact") -> FactIn | None:
    text = re.sub(r"\s+", " ", text).strip(" ,.")
    if len(text) < 3:
        return None
    from stepcrew.memory.dedup import subject_of

    # the subject as a person's add would derive it, so the two paths dedupe to one item
    return FactIn(text=text[:FACT_MAX_CHARS], subject=subject_of(text), kind=kind, confidence=RULE_CONFIDENCE)


def extract_facts(goal: str, inputs: dict[str, str]) -> list[FactIn]:
    """Facts proposed by the rules of the module docstring, at most MAX_EXTRACTED, one per subject (first wins)."""
    out: list[FactIn] = []

    def add(f: FactIn | None) -> None:
        if f is not None and all(o.subject.casefold() != f.subject.casefold() for o in out):
            out.append(f)

    for m in _FISCAL.finditer(goal):
        add(_fact(f"fiscal year starts in {m.group(1).capitalize()}", "fiscal year start"))
    for m in [*_CURRENCY_IS.finditer(goal), *_CURRENCY_IN.finditer(goal)]:
        add(_fact(f"report currency {_CURRENCIES[m.group(1).lower()]}", "report currency", "preference"))
    for m in _COLUMN.finditer(goal):
        add(_fact(f"column `{m.group(1)}` {m.group(2).lower()} {m.group(3)}", f"column {m.group(1)}"))
    for m in _REMEMBER.finditer(goal):
        from stepcrew.memory.dedup import subject_of

        add(_fact(m.group(2), subject_of(m.group(2))))
    for m in _ALWAYS.finditer(goal):
        from stepcrew.memory.dedup import subject_of

        add(_fact(m.group(2), subject_of(m.group(2)), "preference"))
    for key, value in inputs.items():
        subject = _INPUT_SETTINGS.get(key.lower())
        if subject and value.strip():
            add(_fact(f"{subject}: {value.strip()}", subject, "preference"))
    return out[:MAX_EXTRACTED]
