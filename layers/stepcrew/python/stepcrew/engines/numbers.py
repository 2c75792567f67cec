"""Numbers in tool results and in report text, and the rounding-tolerant match between them.

Used by the reviewer (the figures a report is checked against) and by the rule engine's rubric. A report figure
"matches" a tool figure when they are equal up to the report figure's own rounding: ``5076`` and ``5076.02``
match ``5076.0204``; ``5080`` does not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

#: Tools whose results are not a source of figures: prose written from other numbers (``write_section``), and
#: results that describe what a tool wrote or sent (``make_chart``: pixels, bytes; ``export_results`` and ``notify``:
#: keys, bytes, row counts of their inputs). A report figure matching only such a number is not checked by it.
NON_SOURCE_TOOLS = frozenset({"write_section", "make_chart", "export_results", "notify"})

# A number not glued to a word or another number: 5,076.02 | -3.5 | 344 ; not "h2", "x1", nor a part of a date
# ("2007-11-05"), a time ("12:30") or a fraction ("3/4").
_NUMBER = re.compile(r"(?<![\w.])(?<!\d[-/:])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])(?![-/:]\d)")


def numbers_in_json(value: Any, with_lengths: bool = False) -> list[float]:
    """Every finite int/float inside a JSON value (dicts, lists, nested), in document order; bools excluded.
    ``with_lengths``: also the length of every list (a tool's "8 columns" is a fact too)."""
    out: list[float] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int | float):
            if math.isfinite(v):
                out.append(float(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list | tuple):
            if with_lengths:
                out.append(float(len(v)))
            stack.extend(reversed(list(v)))
    return out


def numbers_in_text(text: str) -> list[tuple[str, float]]:
    """``(as written, value)`` for every number in ``text`` (thousands separators allowed; the parts of dates,
    times and fractions are not numbers)."""
    return [(m.group(0), float(m.group(0).replace(",", ""))) for m in _NUMBER.finditer(text or "")]


def tolerance(written: str) -> float:
    """Half a unit of the last written digit: ``"5076.02"`` -> 0.005, ``"344"`` -> 0.5."""
    digits = written.split(".", 1)[1] if "." in written else ""
    return 0.5 * 10 ** -len(digits) + 1e-9


def matches(written: str, value: float, candidates: Iterable[float]) -> bool:
    """True when some candidate rounds to ``value`` at the precision ``written`` shows (also up to sign, so a
    gap written as 1375.36 matches a computed -1375.36)."""
    tol = tolerance(written)
    return any(abs(abs(value) - abs(c)) <= tol for c in candidates)


def fmt(value: float | int) -> str:
    """A figure as the rule engine writes it: integers plain, others with at most 2 decimals (no exponent)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
