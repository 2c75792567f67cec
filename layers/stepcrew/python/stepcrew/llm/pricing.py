"""Model price table: model id -> US dollars per 1,000,000 input, output, cache-read and cache-write tokens.

Source: the providers' public pricing pages (https://www.anthropic.com/pricing, https://openai.com/api/pricing,
https://aws.amazon.com/bedrock/pricing for Claude on Bedrock, which lists the same on-demand prices) -
as published, taken 2026-11; verify before relying on it. Batch discounts, long-context surcharges and regional
endpoint premiums are not modelled: costs are an estimate for budgets and reports.

Prompt caching (:data:`CACHE_PRICES_TAKEN`): Anthropic, and Claude on Bedrock, bill a cache read at 0.1x the input
price and a 5-minute cache write at 1.25x (https://platform.claude.com/docs/en/build-with-claude/prompt-caching,
"Pricing"; stepcrew only writes 5-minute entries). OpenAI caches automatically, charges nothing extra for a write
and bills a cached input token at the per-model "cached input" price of its pricing page: 50 % of input for the
gpt-4o family, 25 % for the gpt-4.1 family. A row without cache prices bills cached tokens as plain input.

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
CACHE_PRICES_TAKEN = ("cache multipliers and OpenAI cached-input prices as published, taken 2026-12; verify before "
                      "relying on it")
#: Anthropic's prompt-caching multipliers of the input price (5-minute cache write, cache read).
ANTHROPIC_CACHE_WRITE_X = 1.25
ANTHROPIC_CACHE_READ_X = 0.10

#: The offline rule engine's model id: it calls no provider and costs nothing.
RULE_ENGINE_MODEL = "rule-engine"


class Price(NamedTuple):
    """USD per 1,000,000 tokens. ``cache_read_per_mtok`` / ``cache_write_per_mtok``: None -> billed as input."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None


def _claude(input_per_mtok: float, output_per_mtok: float) -> Price:
    """A Claude row: cache reads at 0.1x input, 5-minute cache writes at 1.25x (module docstring)."""
    return Price(input_per_mtok, output_per_mtok, round(input_per_mtok * ANTHROPIC_CACHE_READ_X, 6),
                 round(input_per_mtok * ANTHROPIC_CACHE_WRITE_X, 6))


PRICES: dict[str, Price] = {
    RULE_ENGINE_MODEL: Price(0.0, 0.0),
    # Anthropic Claude (API and Bedrock on-demand)
    "claude-opus-4-6": _claude(5.00, 25.00),
    "claude-opus-4-5": _claude(5.00, 25.00),
    "claude-opus-4-1": _claude(15.00, 75.00),
    "claude-opus-4": _claude(15.00, 75.00),
    "claude-3-opus": _claude(15.00, 75.00),
    "claude-sonnet-4-6": _claude(3.00, 15.00),
    "claude-sonnet-4-5": _claude(3.00, 15.00),
    "claude-sonnet-4": _claude(3.00, 15.00),
    "claude-3-7-sonnet": _claude(3.00, 15.00),
    "claude-3-5-sonnet": _claude(3.00, 15.00),
    "claude-haiku-4-5": _claude(1.00, 5.00),
    "claude-3-5-haiku": _claude(0.80, 4.00),
    "claude-3-haiku": _claude(0.25, 1.25),
    # OpenAI: (input, output, cached input); a cache write costs plain input
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
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


def cost_usd(model: str, input_tokens: int, output_tokens: int, *, cache_read_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
    """Cost in US dollars of one call: ``tokens / 1e6 * price`` per kind. ``input_tokens`` is every prompt token,
    cached ones included (:class:`stepcrew.llm.base.ResponseUsage`); ``cache_read_tokens`` and
    ``cache_write_tokens`` are the parts of it read from / written to the provider's prompt cache, billed at the
    row's cache prices (plain input when the row has none); the rest is billed as input. Unknown models cost 0.0
    (check :func:`is_priced` to tell "free" from "unknown"). Raises ValueError on negative token counts or when the
    cached parts exceed ``input_tokens``."""
    if min(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) < 0:
        raise ValueError("token counts must be >= 0")
    if cache_read_tokens + cache_write_tokens > input_tokens:
        raise ValueError("cache_read_tokens + cache_write_tokens must not exceed input_tokens (which includes them)")
    p = price(model)
    if p is None:
        return 0.0
    read = p.input_per_mtok if p.cache_read_per_mtok is None else p.cache_read_per_mtok
    write = p.input_per_mtok if p.cache_write_per_mtok is None else p.cache_write_per_mtok
    uncached = input_tokens - cache_read_tokens - cache_write_tokens
    return (uncached * p.input_per_mtok + cache_read_tokens * read + cache_write_tokens * write
            + output_tokens * p.output_per_mtok) / 1_000_000
