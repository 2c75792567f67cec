"""Fallback chains (:mod:`stepcrew.resilience.chain`): ``STEPCREW_FALLBACK_CHAIN`` parsing, and the check that
every provider of a chain is known and configured before anything runs (``ChainConfigError``)."""

from __future__ import annotations

import json

import pytest
from stepcrew.crew import load_crew
from stepcrew.engines.testing import ScriptedModel
from stepcrew.llm import registry
from stepcrew.models import MAX_CHAIN_PROVIDERS, Routing, RunRequest
from stepcrew.resilience.chain import (
    ENV_CHAIN,
    ChainConfigError,
    check_chains,
    effective_routing,
    is_configured,
    stage_routing,
)
from stepcrew.service import create_run
from stepcrew.store.memory import MemoryRunStore

CUSTOM = "chain-test"


@pytest.fixture
def custom():
    registry.register(CUSTOM, lambda tier: ScriptedModel())
    yield CUSTOM
    registry.unregister(CUSTOM)


# ---------------------------------------------------------------------------------------------- STEPCREW_FALLBACK_CHAIN
@pytest.mark.parametrize("raw", ["", "   "])
def test_no_stage_chain_when_the_variable_is_unset_or_blank(raw):
    assert stage_routing({}) == Routing()
    assert stage_routing({ENV_CHAIN: raw}) == Routing()


def test_a_comma_separated_chain_applies_to_both_tiers_normalised():
    routing = stage_routing({ENV_CHAIN: " Anthropic, bedrock ,,OPENAI "})
    assert routing.chains == {"fast": ["anthropic", "bedrock", "openai"],
                              "smart": ["anthropic", "bedrock", "openai"]}


def test_a_json_chain_is_per_tier():
    chains = {"fast": ["anthropic", "openai"], "smart": ["anthropic"]}
    routing = stage_routing({ENV_CHAIN: json.dumps(chains)})
    assert routing.chains == chains
    assert routing.chain("fast", "bedrock") == ["anthropic", "openai"]
    assert stage_routing({ENV_CHAIN: json.dumps({"smart": ["openai"]})}).chain("fast", "bedrock") == ["bedrock"]


@pytest.mark.parametrize("raw, match", [
    ('{"fast": ["anthropic",', "not valid JSON"),
    ('{"fast": "anthropic"}', ENV_CHAIN),  # a string, not a list
    ('{"medium": ["anthropic"]}', ENV_CHAIN),  # no such tier
    ('{"fast": []}', ENV_CHAIN),  # an empty chain
    ('{"fast": ["anthropic", "anthropic"]}', ENV_CHAIN),  # a provider twice
    ('{"fast": ["rule"]}', ENV_CHAIN),  # the rule engine is the ladder's own rung
    ("anthropic,anthropic", ENV_CHAIN),
    ("anthropic,rule", ENV_CHAIN),
    ("Bad Name!", ENV_CHAIN),
    (",".join(f"p{i}" for i in range(MAX_CHAIN_PROVIDERS + 1)), ENV_CHAIN),
])
def test_a_malformed_stage_chain_is_a_one_line_chain_config_error(raw, match):
    with pytest.raises(ChainConfigError, match=match) as info:
        stage_routing({ENV_CHAIN: raw})
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_stage_routing_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv(ENV_CHAIN, "openai,anthropic")
    assert stage_routing().chains["smart"] == ["openai", "anthropic"]
    monkeypatch.setenv(ENV_CHAIN, "{oops")
    with pytest.raises(ChainConfigError):
        stage_routing()


# ---------------------------------------------------------------------------------------------- configured providers
@pytest.mark.parametrize("provider, env, configured", [
    ("anthropic", {}, False),
    ("anthropic", {"ANTHROPIC_API_KEY": "  "}, False),
    ("anthropic", {"ANTHROPIC_API_KEY": "sk-x"}, True),
    ("anthropic", {"STEPCREW_ANTHROPIC_SECRET": "arn:secret"}, True),
    ("openai", {}, False),
    ("openai", {"OPENAI_API_KEY": "sk-x"}, True),
    ("openai", {"STEPCREW_OPENAI_SECRET": "arn:secret"}, True),
    ("openai", {"OPENAI_BASE_URL": "http://localhost:8000/v1"}, True),
    ("openai", {"ANTHROPIC_API_KEY": "sk-x"}, False),  # another provider's key does not count
    ("bedrock", {}, False),
    ("bedrock", {"AWS_REGION": "eu-west-1"}, True),
    ("bedrock", {"AWS_DEFAULT_REGION": "us-east-1"}, True),
    ("nope", {"ANTHROPIC_API_KEY": "sk-x"}, False),  # unknown
])
def test_is_configured(provider, env, configured):
    assert is_configured(provider, env) is configured


def test_a_provider_registered_in_code_is_configured_by_its_registration(custom):
    assert is_configured(custom, {})


def test_a_chain_naming_an_unknown_provider_is_rejected():
    routing = Routing(chains={"fast": ["anthropic", "no-such-provider"]})
    with pytest.raises(ChainConfigError, match="chain of tier fast:.*no-such-provider"):
        check_chains(routing, "anthropic", {"ANTHROPIC_API_KEY": "sk-x"})


def test_a_chain_naming_an_unconfigured_provider_is_rejected_with_the_variables_to_set():
    routing = Routing(chains={"smart": ["anthropic", "openai"]})
    with pytest.raises(ChainConfigError, match="provider 'openai' is not configured") as info:
        check_chains(routing, "anthropic", {"ANTHROPIC_API_KEY": "sk-x"})
    assert "OPENAI_API_KEY" in str(info.value) and "tier smart" in str(info.value)
    check_chains(routing, "anthropic", {"ANTHROPIC_API_KEY": "sk-x", "OPENAI_API_KEY": "sk-y"})  # configured: fine


def test_every_tier_is_checked(custom):
    routing = Routing(chains={"fast": [custom], "smart": [custom, "bedrock"]})
    with pytest.raises(ChainConfigError, match="tier smart"):
        check_chains(routing, custom, {})
    check_chains(routing, custom, {"AWS_REGION": "eu-west-1"})


def test_effective_routing_prefers_the_requests_own_routing_and_checks_it(custom):
    env = {ENV_CHAIN: "anthropic"}  # the stage default names a provider that is not configured
    with pytest.raises(ChainConfigError):
        effective_routing(None, custom, env)
    own = Routing(chains={"fast": [custom], "smart": [custom]})
    assert effective_routing(own, custom, env) == own  # the request's routing replaces the stage's


def test_a_rule_run_needs_no_chain(custom):
    routing = Routing(chains={"fast": [custom]}, tier="fast")
    out = effective_routing(routing, "rule", {})
    assert out.chains == {} and out.tier == "fast"  # the rest of the routing is kept
    # the stage's chain is not even checked for a rule run (its providers need not be configured)
    assert effective_routing(None, "rule", {ENV_CHAIN: "anthropic,openai"}).chains == {}


def test_creating_a_run_with_an_unconfigured_chain_fails_before_anything_is_stored(custom, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("STEPCREW_OPENAI_SECRET", raising=False)
    store = MemoryRunStore()
    request = RunRequest(goal="Compute 6 * 7", provider=custom,
                         routing=Routing(chains={"smart": [custom, "openai"]}))
    with pytest.raises(ChainConfigError, match="openai"):
        create_run(request, load_crew("default"), store)
    assert store.list_runs("local")[0] == []
    monkeypatch.setenv(ENV_CHAIN, "{bad json")
    with pytest.raises(ChainConfigError, match="not valid JSON"):
        create_run(RunRequest(goal="Compute 6 * 7", provider=custom), load_crew("default"), store)
    run = create_run(RunRequest(goal="Compute 6 * 7", provider=custom,
                                routing=Routing(chains={"smart": [custom]})), load_crew("default"), store)
    assert run.routing.chains == {"smart": [custom]}
