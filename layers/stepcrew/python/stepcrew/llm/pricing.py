"""Model price table: model id -> US dollars per 1,000,000 input and output tokens.

Source: the providers' public pricing pages (https://www.anthropic.com/pricing, https://openai.com/api/pricing,
https://aws.amazon.com/bedrock/pricing for Claude on Bedrock, which lists the same on-demand prices) -
as published, taken 2026-11; verify before relying on it. Prompt caching, batch discounts, long-context
surcharges and regional endpoint premiums are not modelled: costs are an estimate for budgets and reports.

Ids are normalised before lookup, so the Anthropic API id (``claude-sonnet-4-5-20250929``), its alias
(``claude-sonnet-4-5``), the Bedrock id (``anthropic.claude-sonnet-4-5-20250929-v1:0``), a Bedrock cross-region
inference profile (``us.anthropic.claude-sonnet-4-5-20250929-v1:0``), an engine name
(``anthropic:claude-sonnet-4-5``) and a dated OpenAI id (``gpt-4o-2024-08-06``) all find the same row.
"""

from __future__ import annotations

import re
from typing import NamedTuple

PRICES_SOURCE = ("providers' public pricing pages (anthropic.com/pricing, openai.com/api/pricing, "
                 "aws.amazon.com/bedrock/pricing)")
PRICES_TAKEN = "as published, taken 2026-11; verify before relying on it"

#: The offline rule engine's model id: it calls no provider and costs nothing.
RULE_ENGINE_MODEL = "rule-engine"


class Price(NamedTuple):
    """USD per 1,000,000 tokens."""

    input_per_mtok: float
    output_per_mtok: float


PRICES: dict[str, Price] = {
    RULE_ENGINE_MODEL: Price(0.0, 0.0),
    # Anthropic Claude (API and Bedrock on-demand)
    "claude-opus-4-6": Price(5.00, 25.00),
    "claude-opus-4-5": Price(5.00, 25.00),
    "claude-opus-4-1": Price(15.00, 75.00),
    "claude-opus-4": Price(15.00, 75.00),
    "claude-3-opus": Price(15.00, 75.00),
    "claude-sonnet-4-6": Price(3.00, 15.00),
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-haiku": Price(0.25, 1.25),
    # OpenAI
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
}

# Aliases that differ from the canonical row by more than a suffix.
_ALIASES = {
    "claude-opus-4-0": "claude-opus-4",
    "claude-sonnet-4-0": "claude-sonnet-4",
}

_ENGINE_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*:(?=[a-z])")         # "anthropic:claude-..." (not "...-v1:0")
_BEDROCK_REGION = re.compile(r"^(us|eu|apac|jp|au|ca|us-gov|global)\.")  # cross-region inference profiles
_BEDROCK_SUFFIX = re.compile(r"-v\d+(:\d+)?$")                      # "-v1:0"
_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")           # "-20250929", "-2024-08-06"


def normalise(model: str) -> str:
    """Map a provider, Bedrock or engine model id to the key of :data:`PRICES` (lower case, no region, vendor,
    version or date suffix). The result need not be priced."""
    m = model.strip().lower()
    m = _ENGINE_PREFIX.sub("", m)
    m = _BEDROCK_REGION.sub("", m)
    m = m.removeprefix("anthropic.")
    m = _BEDROCK_SUFFIX.sub("", m)
    m = m.removesuffix("-latest")
    m = _DATE_SUFFIX.sub("", m)
    return _ALIASES.get(m, m)


def price(model: str) -> Price | None:
    """The :class:`Price` of ``model`` (any id form, see :func:`normalise`), or None when not in the table."""
    return PRICES.get(normalise(model))


def is_priced(model: str) -> bool:
    """True when ``model`` has a row in the price table (the rule engine has one, at 0)."""
    return price(model) is not None


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """Cost in US dollars of one call: ``tokens / 1e6 * price``. Unknown models cost 0.0 (check
    :func:`is_priced` to tell "free" from "unknown"). Raises ValueError on negative token counts."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts must be >= 0")
    p = price(model)
    if p is None:
        return 0.0
    return (input_tokens * p.input_per_mtok + output_tokens * p.output_per_mtok) / 1_000_000
