"""The guard's resources: its own layer (local and bedrock), the Bedrock guardrail + version + env + the one
ApplyGuardrail statement (bedrock only), all given to every screening function (the guard and the memory function,
constants.SCREENING_FUNCTIONS), and the guard layer's build recipe.

The ``local`` stage is the session synth of conftest (the default ``guard_backend``); the ``bedrock`` stage is
synthesized once here, with cdk-nag on, and linted with cfn-lint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from stepcrew import wiring
from stepcrew_infra import constants as C
from stepcrew_infra.config import ConfigError, StageConfig

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
TOPIC = {"name": "Investment advice", "definition": "Recommendations to buy, sell or hold securities or funds.",
         "examples": ["Which stock should I buy now?"]}
#: What the guardrail must anonymize, written out here (not read from the code under test).
EXPECTED_PII_TYPES = {"EMAIL", "US_SOCIAL_SECURITY_NUMBER", "CREDIT_DEBIT_CARD_NUMBER",
                      "INTERNATIONAL_BANK_ACCOUNT_NUMBER", "IP_ADDRESS", "PHONE", "AWS_ACCESS_KEY", "AWS_SECRET_KEY"}


# --------------------------------------------------------------------------------------------- helpers
def of_type(template: dict, cfn_type: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == cfn_type}


def function_ids(template: dict) -> dict[str, str]:
    """Function name (wiring) -> logical id, from the FunctionName ``stepcrew-dev-<name>``."""
    return {r["Properties"]["FunctionName"].removeprefix("stepcrew-dev-"): k
            for k, r in of_type(template, "AWS::Lambda::Function").items()}


def role_statements(template: dict) -> dict[str, list[dict]]:
    """Role logical id -> every statement of its inline policies and attached AWS::IAM::Policy resources."""
    out: dict[str, list[dict]] = {}
    for role_id, role in of_type(template, "AWS::IAM::Role").items():
        out[role_id] = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in of_type(template, "AWS::IAM::Policy").values():
        for ref in policy["Properties"]["Roles"]:
            out.setdefault(ref["Ref"], []).extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def actions(statement: dict) -> list[str]:
    value = statement["Action"]
    return value if isinstance(value, list) else [value]


def function_role(template: dict, name: str) -> str:
    return template["Resources"][function_ids(template)[name]]["Properties"]["Role"]["Fn::GetAtt"][0]


def layer_refs(template: dict, name: str) -> list[str]:
    return [ref["Ref"] for ref in template["Resources"][function_ids(template)[name]]["Properties"]["Layers"]]


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bedrock_template(tmp_path_factory) -> dict[str, Any]:
    """The ``dev`` stage with ``guard_backend=bedrock`` and one denied topic, synthesized with cdk-nag."""
    from stepcrew_infra.functions import DepsLayerNotBuiltWarning
    from stepcrew_infra.stack import build_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DepsLayerNotBuiltWarning)  # the guard layer's warning is a subclass
        app, stack = build_app(context={"guard_backend": "bedrock", "guard_denied_topics": json.dumps([TOPIC])},
                               outdir=tmp_path_factory.mktemp("cdk.out.bedrock"), env={}, nag=True)
    try:
        assembly = app.synth()
    except Exception as exc:  # noqa: BLE001 - jsii wraps the validation failure; its text is the cdk-nag report
        pytest.fail(f"synth with guard_backend=bedrock and cdk-nag failed:\n{exc}", pytrace=False)
    return json.loads(json.dumps(assembly.get_stack_by_name(stack.stack_name).template))


# --------------------------------------------------------------------------------------------- local
def test_local_stage_has_no_guardrail_and_no_function_may_apply_one(synth):
    assert of_type(synth.template, "AWS::Bedrock::Guardrail") == {}
    assert of_type(synth.template, "AWS::Bedrock::GuardrailVersion") == {}
    assert "bedrock:ApplyGuardrail" not in json.dumps(synth.template)
    env = synth.resources[function_ids(synth.template)["guard"]]["Properties"]["Environment"]["Variables"]
    assert env["STEPCREW_GUARD_BACKEND"] == "local"
    assert "STEPCREW_GUARDRAIL_ID" not in env and "STEPCREW_GUARDRAIL_VERSION" not in env


def test_screening_functions_are_the_guard_and_the_specs_that_screen():
    # derived from stepcrew.wiring (one mapping), and today that is the guard and the memory function
    assert set(C.SCREENING_FUNCTIONS) == {"guard"} | {n for n, s in wiring.FUNCTIONS.items() if s.screens}
    assert set(C.SCREENING_FUNCTIONS) == {"guard", "memory"}


def test_only_the_screening_functions_have_the_guard_layer_and_it_replaces_the_deps_layer(synth):
    stack = synth.stack
    guard_layer = synth.logical_id(stack.guard.layer)
    layers = of_type(synth.template, "AWS::Lambda::LayerVersion")
    assert guard_layer in layers
    (deps_layer,) = [k for k in layers if k.startswith("DepsLayer")]
    (shared_layer,) = [k for k in layers if k.startswith("SharedLayer")]
    charts_layer = synth.logical_id(stack.charts.layer)  # make_chart's (tests/infra/test_make_chart_stack.py)
    assert set(layers) == {guard_layer, deps_layer, shared_layer, charts_layer}  # one guard layer, shared
    screening = set(C.SCREENING_FUNCTIONS)
    for name in screening:
        assert layer_refs(synth.template, name) == [shared_layer, guard_layer], name
    charts = {name for name, spec in wiring.FUNCTIONS.items() if spec.writes_charts}
    for name in charts:
        assert layer_refs(synth.template, name) == [shared_layer, charts_layer], name
    for name in wiring.FUNCTIONS.keys() - screening - charts:
        assert layer_refs(synth.template, name) == [shared_layer, deps_layer], name
    # the guard backend goes to the screening functions only
    for name in wiring.FUNCTIONS:
        env = synth.resources[function_ids(synth.template)[name]]["Properties"]["Environment"]["Variables"]
        assert ("STEPCREW_GUARD_BACKEND" in env) == (name in screening), name
        if name in screening:
            assert env["STEPCREW_GUARD_BACKEND"] == "local", name


# --------------------------------------------------------------------------------------------- bedrock
def test_bedrock_stage_creates_the_guardrail_with_prompt_attack_pii_regex_and_topics(bedrock_template):
    (guardrail,) = of_type(bedrock_template, "AWS::Bedrock::Guardrail").values()
    props = guardrail["Properties"]
    assert props["Name"] == "stepcrew-dev-guard"
    assert props["BlockedInputMessaging"] and props["BlockedOutputsMessaging"]
    assert props["ContentPolicyConfig"]["FiltersConfig"] == [
        {"Type": "PROMPT_ATTACK", "InputStrength": "HIGH", "OutputStrength": "NONE"}]
    sensitive = props["SensitiveInformationPolicyConfig"]
    assert {e["Type"] for e in sensitive["PiiEntitiesConfig"]} == EXPECTED_PII_TYPES
    assert {e["Action"] for e in sensitive["PiiEntitiesConfig"]} == {"ANONYMIZE"}
    (regex,) = sensitive["RegexesConfig"]
    assert (regex["Name"], regex["Pattern"], regex["Action"]) == ("API_KEY", "sk-[A-Za-z0-9_-]{20,}", "ANONYMIZE")
    assert props["TopicPolicyConfig"]["TopicsConfig"] == [
        {"Name": TOPIC["name"], "Definition": TOPIC["definition"], "Examples": TOPIC["examples"], "Type": "DENY"}]


@pytest.mark.parametrize("name", ["guard", "memory"])
def test_each_screening_function_gets_the_backend_the_guardrail_id_and_the_published_version(bedrock_template, name):
    (guardrail_id,) = of_type(bedrock_template, "AWS::Bedrock::Guardrail")
    ((version_id, version),) = of_type(bedrock_template, "AWS::Bedrock::GuardrailVersion").items()
    assert version["Properties"]["GuardrailIdentifier"] == {"Fn::GetAtt": [guardrail_id, "GuardrailId"]}
    env = bedrock_template["Resources"][function_ids(bedrock_template)[name]]["Properties"]["Environment"]
    variables = env["Variables"]
    assert variables["STEPCREW_GUARD_BACKEND"] == "bedrock"
    assert variables["STEPCREW_GUARDRAIL_ID"] == {"Fn::GetAtt": [guardrail_id, "GuardrailId"]}
    assert variables["STEPCREW_GUARDRAIL_VERSION"] == {"Fn::GetAtt": [version_id, "Version"]}


def test_only_the_screening_functions_may_apply_the_guardrail_and_only_that_one(bedrock_template):
    (guardrail_id,) = of_type(bedrock_template, "AWS::Bedrock::Guardrail")
    statements = role_statements(bedrock_template)
    appliers = {role for role, sts in statements.items()
                if any(a in ("bedrock:ApplyGuardrail", "bedrock:*", "*") for st in sts for a in actions(st))}
    assert appliers == {function_role(bedrock_template, name) for name in C.SCREENING_FUNCTIONS}
    for name in C.SCREENING_FUNCTIONS:
        (statement,) = [st for st in statements[function_role(bedrock_template, name)]
                        if "bedrock:ApplyGuardrail" in actions(st)]
        assert statement["Effect"] == "Allow" and actions(statement) == ["bedrock:ApplyGuardrail"], name
        assert statement["Resource"] == {"Fn::GetAtt": [guardrail_id, "GuardrailArn"]}, name
        assert "*" not in json.dumps(statement["Resource"])


def test_bedrock_stage_passes_cfn_lint(bedrock_template):
    from cfnlint.api import lint

    matches = lint(json.dumps(bedrock_template), regions=["us-east-1"])
    errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    assert {m.rule.id for m in matches} <= {"W3005"}, sorted({m.rule.id for m in matches})


# --------------------------------------------------------------------------------------------- configuration
def _config(context: dict) -> StageConfig:
    return StageConfig.from_context(cdk.App(context=context), env={})


def test_guard_backend_defaults_to_local_and_rejects_anything_else():
    assert _config({}).guard_backend == "local" and _config({}).guard_denied_topics == ()
    assert _config({"guard_backend": "Bedrock"}).guard_backend == "bedrock"
    with pytest.raises(ConfigError, match="guard_backend"):
        _config({"guard_backend": "comprehend"})


@pytest.mark.parametrize("topics", [
    [{"name": "bad/name", "definition": "d"}],
    [{"name": "ok", "definition": "x" * 201}],
    [{"name": "ok", "definition": "d", "examples": ["e"] * 6}],
    [{"name": "ok", "definition": "d", "colour": "red"}],
    [{"name": "ok", "definition": "d"}, {"name": "ok", "definition": "e"}],
    [{"name": f"t{i}", "definition": "d"} for i in range(31)],
    "not json",
])
def test_denied_topics_outside_bedrocks_limits_are_rejected(topics):
    with pytest.raises(ConfigError):
        _config({"guard_backend": "bedrock", "guard_denied_topics": topics if isinstance(topics, str)
                 else json.dumps(topics)})


def test_no_denied_topics_means_no_topic_policy_and_a_change_publishes_a_new_version():
    from stepcrew_infra.guard import _fingerprint, guardrail_properties

    plain = _config({"guard_backend": "bedrock"})
    with_topic = _config({"guard_backend": "bedrock", "guard_denied_topics": json.dumps([TOPIC])})
    assert "topic_policy_config" not in guardrail_properties(plain)
    assert "topic_policy_config" in guardrail_properties(with_topic)
    assert _fingerprint(plain) == _fingerprint(_config({"guard_backend": "bedrock"}))
    assert _fingerprint(plain) != _fingerprint(with_topic)


# --------------------------------------------------------------------------------------------- the layer
@pytest.fixture(scope="module")
def guard_build():
    return load_module("stepcrew_guard_build", REPO / "layers" / "guard" / "build.py")


def _names(path: Path, build) -> set[str]:
    return {n for n in map(build.requirement_name, path.read_text().splitlines()) if n}


def test_every_deps_package_is_in_the_guard_layer_or_left_out_with_a_reason(guard_build):
    deps = _names(REPO / "layers" / "deps" / "requirements.txt", guard_build)
    guard = _names(REPO / "layers" / "guard" / "requirements.txt", guard_build)
    assert deps - guard == set(guard_build.LEFT_OUT), "decide for each new deps package: guard layer or LEFT_OUT"
    assert all(len(reason) >= 10 for reason in guard_build.LEFT_OUT.values())
    assert {"presidio-analyzer", "phonenumbers", "tldextract"} <= guard


def test_the_guard_packages_match_the_pyproject_dependencies(guard_build):
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    guard = {d for d in deps if d.split("=")[0].split(">")[0] in ("presidio-analyzer", "phonenumbers", "tldextract")}
    lines = [line.strip() for line in (REPO / "layers" / "guard" / "requirements.txt").read_text().splitlines()]
    assert len(guard) == 3 and guard <= set(lines)


def test_the_guard_layer_is_built_for_the_lambda_platform_with_the_deps_pins(guard_build, tmp_path):
    constraints = tmp_path / "c.txt"
    command = guard_build.pip_command(C.RUNTIME_PYTHON_VERSION, constraints)
    assert tuple(command[i + 1] for i, arg in enumerate(command) if arg == "--platform") == C.PIP_PLATFORMS
    assert command[command.index("--python-version") + 1] == C.RUNTIME_PYTHON_VERSION
    assert command[command.index("--target") + 1] == str(REPO / "layers" / "guard" / "python")
    assert command[command.index("--constraint") + 1] == str(constraints)
    text = guard_build.constraints_text()
    assert "aws-lambda-powertools==3.37.0" in text.splitlines()  # the deps pin, extras dropped
    assert "[" not in text and "#" not in text


def _elf(path: Path, sections: list[str]) -> Path:
    """A minimal little-endian ELF64 file whose section headers name ``sections`` (plus .shstrtab)."""
    names = b"\0" + b"".join(s.encode() + b"\0" for s in [*sections, ".shstrtab"])
    offsets = [1 + sum(len(s) + 1 for s in sections[:i]) for i in range(len(sections) + 1)]
    shoff = 64 + len(names)
    header = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 3, 183, 1, 0, 0, shoff, 0, 64, 56, 0, 64, len(sections) + 2, len(sections) + 1)
    null = b"\0" * 64
    table = null + b"".join(struct.pack("<IIQQQQIIQQ", off, 1, 0, 0, 0, 0, 0, 0, 1, 0) for off in offsets[:-1])
    table += struct.pack("<IIQQQQIIQQ", offsets[-1], 3, 0, 0, 64, len(names), 0, 0, 1, 0)
    path.write_bytes(header + names + table)
    return path


def test_only_shared_objects_with_debug_info_are_stripped(guard_build, tmp_path):
    assert guard_build.has_debug_info(_elf(tmp_path / "a.so", [".text", ".debug_info", ".debug_line"]))
    assert not guard_build.has_debug_info(_elf(tmp_path / "b.so", [".text", ".dynsym"]))
    text = tmp_path / "c.so"
    text.write_bytes(b"not an ELF file")
    assert not guard_build.has_debug_info(text)


@pytest.mark.parametrize("name", C.SCREENING_FUNCTIONS)
def test_each_screening_function_imports_none_of_the_left_out_packages(guard_build, name):
    # the screening functions run with the guard layer instead of the deps layer: importing their handler (cold
    # start) must not need a package that layer leaves out (a model SDK imported later, at a call, is not seen here)
    env = {**os.environ, "STEPCREW_TABLE_NAME": "stepcrew-dev-runs", "STEPCREW_STAGE": "dev",
           "POWERTOOLS_SERVICE_NAME": f"stepcrew-{name}", "POWERTOOLS_METRICS_NAMESPACE": "stepcrew",
           "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true", "STEPCREW_GUARD_BACKEND": "local",
           "STEPCREW_MEMORY_INDEX": "exact", "PYTHONPATH": str(REPO / "layers" / "stepcrew" / "python")}
    code = "import sys, app; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO / "functions" / name, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = set(done.stdout.split())
    assert "stepcrew" in imported
    assert imported & {pkg.replace("-", "_") for pkg in guard_build.LEFT_OUT} == set(), name
