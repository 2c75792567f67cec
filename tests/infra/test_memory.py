"""The tenant memory in the stack: the ``memory_index`` flag (``exact`` default: no vector bucket, no S3 Vectors
permission anywhere; ``s3vectors``: the bucket, two indexes and least-privilege actions per function), the functions'
memory/embeddings environment, the api -> memory invocation and the memory function's guard layer.

The default stage is conftest's session synth; the ``s3vectors`` stage is conftest's ``s3vectors_synth`` (cdk-nag on
too), linted with cfn-lint here. Expectations are written out here, not read from the code under test, where a
wrong constant would otherwise agree with itself.
"""

from __future__ import annotations

import fnmatch
import json
import warnings
from typing import Any

import aws_cdk as cdk
import pytest
from iam_helpers import as_list
from stepcrew import wiring
from stepcrew.memory.s3vectors import INDEX_NAMES
from stepcrew_infra import constants as C
from stepcrew_infra.config import ConfigError, StageConfig

pytestmark = pytest.mark.infra

#: What each vector_index mode may do on the indexes, written out.
EXPECTED_ACTIONS = {
    "read": {"s3vectors:QueryVectors", "s3vectors:GetVectors"},
    "write": {"s3vectors:QueryVectors", "s3vectors:GetVectors", "s3vectors:PutVectors", "s3vectors:DeleteVectors"},
    "delete": {"s3vectors:DeleteVectors"},
}
MEMORY_ENV = ("STEPCREW_MEMORY_INDEX", "STEPCREW_MEMORY_VECTOR_BUCKET")


# --------------------------------------------------------------------------------------------- helpers
def function_id(synth, name: str) -> str:
    return synth.logical_id(synth.stack.functions[name].function)


def env_of(synth, name: str) -> dict[str, Any]:
    return synth.resources[function_id(synth, name)]["Properties"]["Environment"]["Variables"]


def statements_of(synth, name: str) -> list[dict[str, Any]]:
    role = synth.resources[function_id(synth, name)]["Properties"]["Role"]["Fn::GetAtt"][0]
    out = [s for p in synth.resources[role]["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def vector_statements(synth, name: str) -> list[dict[str, Any]]:
    return [s for s in statements_of(synth, name) if any(a.startswith("s3vectors:") or a in ("*", "s3vectors:*")
                                                         for a in as_list(s["Action"]))]


def test_the_wiring_gives_each_memory_function_its_mode():
    # the specs this file's expectations rest on (stepcrew.wiring is the one mapping)
    modes = {n: s.vector_index for n, s in wiring.FUNCTIONS.items() if s.vector_index}
    assert modes == {"planner": "read", "memory": "write", "api": "delete"}
    assert wiring.FUNCTIONS["api"].invokes == ("memory",)
    assert {n for n, s in wiring.FUNCTIONS.items() if s.invokes} == {"api"}


# --------------------------------------------------------------------------------------------- default: exact
def test_default_stage_has_no_vector_bucket_and_no_s3vectors_action_anywhere(synth):
    assert [r["Type"] for r in synth.resources.values() if r["Type"].startswith("AWS::S3Vectors::")] == []
    assert "s3vectors" not in json.dumps(synth.template).lower()  # no action, no ARN, no output
    assert synth.stack.memory.mode == "exact" and synth.stack.memory.bucket is None


def test_default_stage_tells_the_memory_functions_exact_and_nothing_else(synth):
    for name, spec in wiring.FUNCTIONS.items():
        env = env_of(synth, name)
        if spec.vector_index:
            assert env["STEPCREW_MEMORY_INDEX"] == "exact", name
            assert "STEPCREW_MEMORY_VECTOR_BUCKET" not in env, name
        else:
            assert not set(MEMORY_ENV) & set(env), name


# --------------------------------------------------------------------------------------------- s3vectors
def test_s3vectors_stage_creates_one_bucket_and_the_two_indexes_the_adapter_queries(s3vectors_synth):
    synth = s3vectors_synth
    (bucket_id, bucket), = synth.of_type("AWS::S3Vectors::VectorBucket").items()
    assert bucket["Properties"]["VectorBucketName"] == "stepcrew-dev-memory"
    assert bucket["Properties"]["EncryptionConfiguration"] == {"SseType": "AES256"}
    assert bucket["DeletionPolicy"] == "Delete"  # dev stage: the stage's removal policy
    indexes = {r["Properties"]["IndexName"]: r["Properties"] for r in synth.of_type("AWS::S3Vectors::Index").values()}
    assert set(indexes) == {"stepcrew-facts", "stepcrew-episodes"} == set(INDEX_NAMES.values())
    for name, props in indexes.items():
        assert props["VectorBucketArn"] == {"Fn::GetAtt": [bucket_id, "VectorBucketArn"]}, name
        assert props["DataType"] == "float32" and props["DistanceMetric"] == "cosine", name
        assert props["Dimension"] == 256, name
        # the adapter filters on tenant and user: neither may be non-filterable
        non_filterable = props.get("MetadataConfiguration", {}).get("NonFilterableMetadataKeys", [])
        assert not {"tenant", "user"} & set(non_filterable), name
    outputs = synth.template["Outputs"]
    assert [o["Value"] for k, o in outputs.items() if k.startswith("MemoryVectorBucket")] == ["stepcrew-dev-memory"]


def test_the_index_dimension_is_the_dimension_the_functions_embed_with(s3vectors_synth):
    synth = s3vectors_synth
    dims = {r["Properties"]["Dimension"] for r in synth.of_type("AWS::S3Vectors::Index").values()}
    embedders = [n for n, s in wiring.FUNCTIONS.items() if s.vector_index in ("read", "write")]
    assert embedders and {int(env_of(synth, n)["STEPCREW_EMBEDDINGS_DIM"]) for n in embedders} == dims == {256}
    from stepcrew.embeddings import build_embeddings

    emb = build_embeddings({k: v for k, v in env_of(synth, "memory").items() if k.startswith("STEPCREW_EMBEDDINGS")})
    assert emb.dim == 256 and emb.name == "bedrock:amazon.titan-embed-text-v2:0:256"


def test_each_function_may_do_only_its_modes_actions_on_the_two_indexes(s3vectors_synth):
    synth = s3vectors_synth
    index_arns = sorted(({"Fn::GetAtt": [k, "IndexArn"]} for k in synth.of_type("AWS::S3Vectors::Index")), key=str)
    for name, spec in wiring.FUNCTIONS.items():
        statements = vector_statements(synth, name)
        if not spec.vector_index:
            assert statements == [], name
            continue
        (statement,) = statements
        assert statement["Effect"] == "Allow" and "Condition" not in statement, name
        assert set(as_list(statement["Action"])) == EXPECTED_ACTIONS[spec.vector_index], name
        assert sorted(as_list(statement["Resource"]), key=str) == index_arns, name
    # no S3 Vectors action on any other role (state machines, schedules, the dataset reader), no wildcard at all
    function_roles = {synth.resources[function_id(synth, n)]["Properties"]["Role"]["Fn::GetAtt"][0]
                      for n, s in wiring.FUNCTIONS.items() if s.vector_index}
    text_by_role: dict[str, str] = {}
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            text_by_role[role["Ref"]] = text_by_role.get(role["Ref"], "") + json.dumps(policy["Properties"])
    for role in synth.of_type("AWS::IAM::Role"):
        text = text_by_role.get(role, "") + json.dumps(synth.resources[role]["Properties"].get("Policies", []))
        assert ("s3vectors:" in text) == (role in function_roles), role
        assert "s3vectors:*" not in text and "s3vectors:List" not in text, role


def test_the_memory_functions_get_the_index_and_the_bucket(s3vectors_synth):
    synth = s3vectors_synth
    for name, spec in wiring.FUNCTIONS.items():
        env = env_of(synth, name)
        if spec.vector_index:
            assert env["STEPCREW_MEMORY_INDEX"] == "s3vectors", name
            assert env["STEPCREW_MEMORY_VECTOR_BUCKET"] == "stepcrew-dev-memory", name
        else:
            assert not set(MEMORY_ENV) & set(env), name
    from stepcrew.memory.index import build_index
    from stepcrew.memory.s3vectors import S3VectorsIndex
    from stepcrew.memory.store import InMemoryMemoryStore

    index = build_index(InMemoryMemoryStore(), None, env_of(synth, "planner"))  # what the handler would build
    assert isinstance(index, S3VectorsIndex) and index.bucket == "stepcrew-dev-memory"


def test_s3vectors_stage_passes_cfn_lint(s3vectors_synth):
    from cfnlint.api import lint

    matches = lint(json.dumps(s3vectors_synth.template), regions=["us-east-1"])
    errors = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path or []))})" for m in matches
              if m.rule.id.startswith("E")]
    assert errors == []
    assert {m.rule.id for m in matches} <= {"W3005"}, sorted({m.rule.id for m in matches})


def test_s3vectors_stage_needs_no_cdk_nag_acknowledgement_of_its_own(s3vectors_synth, synth):
    # the fixture's synth ran AwsSolutionsChecks and did not raise; the new resources added no suppression
    def acknowledged(s) -> set[tuple[str, str]]:
        metadata = json.loads((s.outdir / f"{s.stack.stack_name}.metadata.json").read_text())
        return {(path, rule) for path, entries in metadata.items() for e in entries
                if e["type"] == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY for rule in e["data"]}

    assert acknowledged(s3vectors_synth) == acknowledged(synth)


# --------------------------------------------------------------------------------------------- invocations
@pytest.mark.parametrize("stage", ["synth", "s3vectors_synth"])
def test_only_the_api_may_invoke_a_function_and_only_the_memory_function(request, stage):
    synth = request.getfixturevalue(stage)
    memory = function_id(synth, "memory")
    for name in wiring.FUNCTIONS:
        invokes = [s for s in statements_of(synth, name) if any(
            fnmatch.fnmatchcase("lambda:InvokeFunction".lower(), a.lower()) for a in as_list(s["Action"]))]
        env = env_of(synth, name)
        if name != "api":
            assert invokes == [], name
            assert not any(k.endswith("_FUNCTION") for k in env), name
            continue
        (statement,) = invokes
        assert as_list(statement["Action"]) == ["lambda:InvokeFunction"]
        assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [memory, "Arn"]}]  # unqualified: no ":*"
        assert env["STEPCREW_MEMORY_FUNCTION"] == {"Ref": memory}  # the function's name
        assert C.invoke_env("memory") == "STEPCREW_MEMORY_FUNCTION"


# --------------------------------------------------------------------------------------------- embeddings, guard
def render(node: Any) -> str:
    """A template string value with its ``Fn::Join`` and pseudo parameters filled in (us-east-1, account 1234...)."""
    pseudo = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
    if isinstance(node, str):
        return node
    if "Fn::Join" in node:
        sep, parts = node["Fn::Join"]
        return sep.join(render(p) for p in parts)
    if "Ref" in node and node["Ref"] in pseudo:
        return pseudo[node["Ref"]]
    raise AssertionError(f"cannot render {node}")


def test_model_callers_and_embedders_embed_with_titan_and_may_invoke_it(synth):
    model_arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"
    other_model = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5"
    for name, spec in wiring.FUNCTIONS.items():
        env = env_of(synth, name)
        embeddings = {k: v for k, v in env.items() if k.startswith("STEPCREW_EMBEDDINGS")}
        if not (spec.calls_models or spec.embeds):
            assert embeddings == {}, name  # no Bedrock permission: it must not be pointed at Bedrock
            continue
        assert embeddings == {"STEPCREW_EMBEDDINGS": "bedrock", "STEPCREW_EMBEDDINGS_MODEL":
                              "amazon.titan-embed-text-v2:0", "STEPCREW_EMBEDDINGS_DIM": "256"}, name
        statements = statements_of(synth, name)
        granted = [render(r) for s in statements if "bedrock:InvokeModel" in as_list(s["Action"])
                   for r in as_list(s["Resource"])]
        assert any(fnmatch.fnmatchcase(model_arn, p) for p in granted), (name, granted)
        if not spec.calls_models:  # an embedder may invoke the embeddings model only, and reads no provider key
            assert not any(fnmatch.fnmatchcase(other_model, p) for p in granted), (name, granted)
            assert not any("secretsmanager:GetSecretValue" in as_list(s["Action"]) for s in statements), name
    # the recall and memory writers can embed (else the stack refuses to build them)
    assert all(s.calls_models or s.embeds for s in wiring.FUNCTIONS.values() if s.vector_index in ("read", "write"))
    assert wiring.FUNCTIONS["memory"].embeds and not wiring.FUNCTIONS["memory"].calls_models


def test_a_vector_reader_that_cannot_call_bedrock_is_refused_at_synth(tmp_path):
    from stepcrew.wiring import FunctionSpec
    from stepcrew_infra.data import Data
    from stepcrew_infra.functions import FunctionResources, StepcrewFunction, build_layers

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "probe")
    config = StageConfig.from_context(app, env={})
    data = Data(stack, "Data", config=config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resources = FunctionResources(config=config, layers=build_layers(stack), table=data.table,
                                      datasets=data.datasets, secrets=dict(data.secrets))
    spec = FunctionSpec("planner", "a reader without Bedrock", touches_table=True, vector_index="read")
    with pytest.raises(ValueError, match="calls_models"):
        StepcrewFunction(stack, "Probe", spec=spec, resources=resources)


def test_the_memory_function_has_the_guard_layer_and_backend(synth):
    layers = [ref["Ref"] for ref in synth.resources[function_id(synth, "memory")]["Properties"]["Layers"]]
    (shared,) = [k for k in synth.of_type("AWS::Lambda::LayerVersion") if k.startswith("SharedLayer")]
    assert layers == [shared, synth.logical_id(synth.stack.guard.layer)]  # the guard layer instead of the deps layer
    assert env_of(synth, "memory")["STEPCREW_GUARD_BACKEND"] == "local"


# --------------------------------------------------------------------------------------------- the flag
def _config(context: dict) -> StageConfig:
    return StageConfig.from_context(cdk.App(context=context), env={})


def test_memory_index_defaults_to_exact_and_rejects_anything_else():
    assert _config({}).memory_index == "exact"
    assert _config({"memory_index": ""}).memory_index == "exact"
    assert _config({"memory_index": " S3Vectors "}).memory_index == "s3vectors"
    with pytest.raises(ConfigError, match="memory_index 'opensearch' must be one of exact, s3vectors"):
        _config({"memory_index": "opensearch"})


def test_extras_of_two_concerns_merge_and_a_disagreement_is_refused():
    from stepcrew_infra.functions import FunctionExtras

    a = FunctionExtras(layers=None, environment={"A": "1"})
    b = FunctionExtras(layers=None, environment={"B": "2", "A": "1"})
    assert a.merged(b).environment == {"A": "1", "B": "2"} and a.merged(b).layers is None
    with pytest.raises(ValueError, match="A"):
        a.merged(FunctionExtras(environment={"A": "other"}))
