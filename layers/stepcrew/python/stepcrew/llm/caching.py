"""Provider prompt caching: where the Anthropic and Bedrock adapters put a cache marker (private to the adapters).

A prompt cache serves a request's *prefix* (in the providers' order: tools, then system, then messages) from an
earlier request that had the same prefix. Anthropic wants a ``cache_control: {"type": "ephemeral"}`` marker on the
last block of the prefix to cache, Bedrock Converse a ``{"cachePoint": {"type": "default"}}`` block after it; OpenAI
caches every prompt of 1,024 tokens or more on its own (nothing to send, :mod:`stepcrew.llm.openai` only reads the
cached count). stepcrew's stable prefix is the role's system prompt and the tool schemas: the adapters mark it
when :func:`prefix_reaches_minimum` says it is long enough, and not otherwise.

A marker on a prefix shorter than the model's minimum is not an error: the provider processes the request
uncached (https://platform.claude.com/docs/en/build-with-claude/prompt-caching, "Cache limitations";
https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html, "minimum tokens per cache checkpoint").
The check only keeps requests free of markers that cannot work.

Minimum cacheable prefix, in tokens (:data:`MIN_CACHE_TOKENS`; Anthropic's "Cache limitations" list, read
2026-12; Bedrock documents the same minimums per cache checkpoint for the Claude models it serves):
4,096 for Claude Opus 4.5 / 4.6 / 4.7 and Haiku 4.5; 2,048 for Sonnet 4.6, Haiku 3.5 and Haiku 3; 1,024 for
Sonnet 4.5, Sonnet 4, Sonnet 3.7, Opus 4.1, Opus 4 and Opus 3. A Claude id not in the table gets
:data:`UNKNOWN_CLAUDE_MIN_TOKENS` (the largest known minimum). Non-Claude models get no marker (None): among
Bedrock's other models only Amazon Nova caches, with other rules (no cache point on tools).

Length without a tokenizer: :func:`estimate_tokens` is characters / :data:`CHARS_PER_TOKEN` (4). Claude's tokenizer
yields more tokens per character than that for English and for JSON schemas (~3.5 characters a token, the figure
:mod:`stepcrew.memory.window` uses), and the tool-use system prompt Anthropic adds when tools are sent is not
counted, so the estimate is low: it errs on the side of not marking a prefix that would just reach the minimum.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from stepcrew.llm.base import ToolSpec
from stepcrew.llm.pricing import normalise

#: Characters per token of the estimate (deliberately more than Claude's ~3.5: the estimate errs low).
CHARS_PER_TOKEN = 4
#: Minimum cacheable prefix (tokens) per normalised Claude id (:func:`stepcrew.llm.pricing.normalise`).
MIN_CACHE_TOKENS: dict[str, int] = {
    "claude-opus-4-7": 4096,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4": 1024,
    "claude-3-7-sonnet": 1024,
    "claude-3-5-sonnet": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-3-opus": 1024,
}
UNKNOWN_CLAUDE_MIN_TOKENS = 4096


def min_cache_tokens(model: str) -> int | None:
    """The minimum cacheable prefix (tokens) of ``model`` (any id form: API, Bedrock, inference profile), or None
    when stepcrew sends no cache marker to it (not a Claude model)."""
    key = normalise(model)
    if key in MIN_CACHE_TOKENS:
        return MIN_CACHE_TOKENS[key]
    return UNKNOWN_CLAUDE_MIN_TOKENS if "claude" in key else None


def estimate_tokens(chars: int) -> int:
    """Tokens of ``chars`` characters of prompt, estimated low (module docstring)."""
    return math.floor(chars / CHARS_PER_TOKEN)


def tools_chars(tools: Sequence[ToolSpec]) -> int:
    """Characters of the tool schemas as sent (name, description and compact JSON of the parameters)."""
    return sum(len(t.name) + len(t.description) + len(json.dumps(t.parameters, separators=(",", ":")))
               for t in tools)


def prefix_reaches_minimum(model: str, chars: int) -> bool:
    """True when a prefix of ``chars`` characters is estimated to reach ``model``'s minimum cacheable length
    (False for a model that gets no marker)."""
    minimum = min_cache_tokens(model)
    return minimum is not None and estimate_tokens(chars) >= minimum


def cache_marks(model: str, system: str, tools: Sequence[ToolSpec]) -> tuple[bool, bool]:
    """``(mark_system, mark_tools)``: where an adapter puts a cache marker for a request whose stable prefix is
    ``tools`` then ``system``. ``mark_system``: the last system block closes a prefix (tools + system) long enough
    to cache. ``mark_tools``: the last tool closes one on its own (so the tools stay cached when the system prompt
    changes, e.g. across roles that share tools); two markers of Anthropic's four per request at most."""
    if not system and not tools:
        return False, False
    t_chars = tools_chars(tools)
    mark_system = bool(system) and prefix_reaches_minimum(model, t_chars + len(system))
    mark_tools = bool(tools) and prefix_reaches_minimum(model, t_chars)
    return mark_system, mark_tools
