"""Stage settings from context/env and the deps-layer build command (no synth needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from stepcrew_infra import constants as C
from stepcrew_infra.config import ConfigError, StageConfig

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]


def _config(context=None, env=None) -> StageConfig:
    return StageConfig.from_context(cdk.App(context=context or {}), env=env or {})


def test_stage_comes_from_context_then_env_then_default():
    assert _config().stage == "dev"
    assert _config(env={"STEPCREW_STAGE": "qa"}).stack_name == "stepcrew-qa"
    assert _config({"stage": "prod"}, env={"STEPCREW_STAGE": "qa"}).stage == "prod"


def test_prod_retains_data_and_other_stages_destroy_it():
    assert _config({"stage": "prod"}).removal_policy == cdk.RemovalPolicy.RETAIN
    assert _config({"stage": "dev"}).removal_policy == cdk.RemovalPolicy.DESTROY


def test_reserved_concurrency_from_json_or_one_int():
    assert _config({"reserved_concurrency": '{"api": 20}'}).reserved_concurrency == {"api": 20}
    assert set(_config({"reserved_concurrency": 5}).reserved_concurrency.values()) == {5}


@pytest.mark.parametrize("context", [
    {"stage": "Prod!"}, {"log_level": "LOUD"}, {"reserved_concurrency": '{"nope": 1}'},
    {"reserved_concurrency": '{"api": 0}'}, {"reserved_concurrency": "not json"},
    {"jwt_issuer": "https://issuer.example.com"},                     # audience missing
    {"jwt_issuer": "http://insecure.example.com", "jwt_audience": "a"},
    {"memory_index": "faiss"},
])
def test_bad_context_is_rejected_with_a_named_error(context):
    with pytest.raises(ConfigError):
        _config(context)


def test_external_issuer_and_audience_list():
    config = _config({"jwt_issuer": "https://login.example.com/", "jwt_audience": "a, b"})
    assert config.jwt_audience == ("a", "b")


def test_deps_layer_build_command_targets_the_lambda_platform():
    sys.path.insert(0, str(REPO / "layers" / "deps"))
    try:
        import build
    finally:
        sys.path.pop(0)
    command = build.pip_command(C.RUNTIME_PYTHON_VERSION)
    assert command[1:4] == ["-m", "pip", "install"]
    platforms = tuple(command[i + 1] for i, arg in enumerate(command) if arg == "--platform")
    assert platforms == C.PIP_PLATFORMS == build.PLATFORMS
    assert command[command.index("--python-version") + 1] == C.RUNTIME_PYTHON_VERSION == "3.14"
    assert "--only-binary=:all:" in command
    assert command[command.index("--target") + 1] == str(REPO / "layers" / "deps" / "python")
    assert build.runtime_python_version() == C.RUNTIME_PYTHON_VERSION
