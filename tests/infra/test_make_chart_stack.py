"""The deployed ``make_chart`` function: its role may put objects under ``<tenant>/runs/*/charts/`` of the artifacts
bucket and nothing else of S3 (no read, list, delete, no export key, no dataset), no table; 1024 MB."""

from __future__ import annotations

import fnmatch
import json

import pytest
from iam_helpers import as_list
from stepcrew import wiring

pytestmark = pytest.mark.infra

NAME = "tool_make_chart"


def _function(synth) -> dict:
    return synth.resources[synth.logical_id(synth.stack.functions[NAME].function)]["Properties"]


def _statements(synth) -> list[dict]:
    role_id = _function(synth)["Role"]["Fn::GetAtt"][0]
    assert not synth.resources[role_id]["Properties"].get("Policies")
    return [st for p in synth.of_type("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
            for st in p["Properties"]["PolicyDocument"]["Statement"]]


def _s3_allows(statements: list[dict], action: str, bucket_id: str, key: str) -> bool:
    """Whether an Allow statement grants ``action`` on ``key`` of the bucket ``bucket_id`` (the resource is
    ``Fn::Join(["", [GetAtt(bucket.Arn), "/<pattern>"]])``, matched like IAM's wildcards)."""
    for st in statements:
        if st["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(action, a) for a in as_list(st["Action"])):
            continue
        for resource in as_list(st["Resource"]):
            if not isinstance(resource, dict) or "Fn::Join" not in resource:
                continue
            parts = resource["Fn::Join"][1]
            if parts[0] == {"Fn::GetAtt": [bucket_id, "Arn"]} and fnmatch.fnmatchcase(f"/{key}", parts[1]):
                return True
    return False


def test_the_spec_writes_charts_only():
    spec = wiring.FUNCTIONS[NAME]
    assert spec.tool == "make_chart" and spec.writes_charts and spec.memory_mb == 1024
    assert not (spec.touches_table or spec.reads_data or spec.calls_models or spec.writes_artifacts
                or spec.caches_results or spec.reads_arguments or spec.isolated_network)
    assert wiring.SUBSTITUTIONS["MakeChartToolFunctionArn"].name == NAME


def test_the_function_gets_the_artifacts_bucket_and_no_table(synth):
    props = _function(synth)
    env = props["Environment"]["Variables"]
    assert env["STEPCREW_ARTIFACTS_BUCKET"] == {"Ref": synth.logical_id(synth.stack.data.artifacts)}
    assert "STEPCREW_TABLE_NAME" not in env and "STEPCREW_DATA_BUCKET" not in env
    assert props["MemorySize"] == 1024


def test_the_role_can_put_only_chart_keys(synth):
    statements = _statements(synth)
    artifacts = synth.logical_id(synth.stack.data.artifacts)
    datasets = synth.logical_id(synth.stack.data.datasets)
    (s3,) = [st for st in statements if any(a.startswith("s3:") for a in as_list(st["Action"]))]
    assert as_list(s3["Action"]) == ["s3:PutObject"]
    assert s3["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [artifacts, "Arn"]}, "/*/runs/*/charts/*"]]}
    assert _s3_allows(statements, "s3:PutObject", artifacts, "acme/runs/run1/charts/revenue.png")
    assert _s3_allows(statements, "s3:PutObject", artifacts, "other/runs/r9/charts/x.png")  # tenant from the state
    for key in ("acme/runs/run1/exports/revenue.csv", "acme/sales.csv", "acme/runs/run1/report.md"):
        assert not _s3_allows(statements, "s3:PutObject", artifacts, key), key
    for action in ("s3:GetObject", "s3:DeleteObject", "s3:ListBucket"):
        assert not _s3_allows(statements, action, artifacts, "acme/runs/run1/charts/revenue.png"), action
    assert datasets not in json.dumps(statements)
    assert "dynamodb" not in json.dumps(statements) and "sts:" not in json.dumps(statements)


def test_only_the_chart_function_gets_the_charts_layer_instead_of_the_deps_layer(synth):
    charts = synth.logical_id(synth.stack.charts.layer)
    for name in wiring.FUNCTIONS:
        layers = _layers(synth, name)
        assert (charts in layers) == (name == NAME), name
    assert len(_layers(synth, NAME)) == 2  # the shared package layer and the charts layer (no deps layer)


def _layers(synth, name: str) -> list[str]:
    props = synth.resources[synth.logical_id(synth.stack.functions[name].function)]["Properties"]
    return [layer["Ref"] for layer in props["Layers"]]
