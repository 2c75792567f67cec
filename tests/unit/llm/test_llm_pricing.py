"""The price table and id normalisation."""

from __future__ import annotations

import pytest

from stepcrew.llm import pricing
from stepcrew.llm.pricing import cost_usd, is_priced, normalise


@pytest.mark.parametrize("model_id", [
    "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic:claude-sonnet-4-5", "Claude-Sonnet-4-5",
])
def test_every_id_form_finds_the_same_row(model_id):
    assert normalise(model_id) == "claude-sonnet-4-5"
    assert cost_usd(model_id, 1_000_000, 1_000_000) == pytest.approx(3.0 + 15.0)


def test_openai_dated_ids_and_no_prefix_confusion():
    assert cost_usd("gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.50)
    assert cost_usd("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)  # not gpt-4o's price
    assert cost_usd("gpt-4.1-mini", 0, 1_000_000) == pytest.approx(1.60)
    assert cost_usd("openai:gpt-4.1", 500_000, 500_000) == pytest.approx(1.0 + 4.0)


def test_haiku_and_opus_families():
    assert cost_usd("us.anthropic.claude-haiku-4-5-20251001-v1:0", 2_000_000, 1_000_000) == pytest.approx(7.0)
    assert cost_usd("claude-opus-4-1-20250805", 1_000_000, 0) == pytest.approx(15.0)
    assert cost_usd("claude-3-5-haiku-latest", 1_000_000, 0) == pytest.approx(0.80)


def test_unknown_models_cost_nothing_and_say_so():
    assert cost_usd("llama3.1:8b", 10_000, 10_000) == 0.0
    assert not is_priced("llama3.1:8b")


def test_rule_engine_is_priced_at_zero():
    assert is_priced("rule-engine")
    assert cost_usd(pricing.RULE_ENGINE_MODEL, 123, 456) == 0.0


def test_negative_tokens_are_refused():
    with pytest.raises(ValueError):
        cost_usd("gpt-4o", -1, 0)


def test_the_table_names_its_source_and_date():
    assert "taken 2026-11" in pricing.PRICES_TAKEN and "verify" in pricing.PRICES_TAKEN
    assert "pricing" in pricing.PRICES_SOURCE
