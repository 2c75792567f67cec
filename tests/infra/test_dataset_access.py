"""Datasets are read per tenant by IAM (ABAC with a session tag), uploads are written only by the api's upload URLs.

Given the synthesized stack: the dataset reader role reads exactly ``<bucket>/${aws:PrincipalTag/tenant}/*``, only the
data-reading functions' roles may assume it (and tag the session with ``tenant`` only), no other role of the stack
may read the datasets bucket's objects, and the api may only write upload keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from iam_helpers import allows, as_list, identity_statements
from stepcrew import wiring
from stepcrew.tools.datasets import READER_ROLE_ENV
from stepcrew_infra import constants as C

pytestmark = pytest.mark.infra

READS_DATA = sorted(name for name, spec in wiring.FUNCTIONS.items() if spec.reads_data)


def names_bucket_objects(resource: Any, bucket_id: str) -> bool:
    """Whether a Resource entry is ``*`` or an object ARN of the bucket (``<bucket arn>/...``)."""
    if resource == "*":
        return True
    text = json.dumps(resource)
    return bucket_id in text and ("Fn::Join" in text or "/" in text)


def role_id_of(synth, name: str) -> str:
    fn = synth.resources[synth.logical_id(synth.stack.functions[name].function)]
    return fn["Properties"]["Role"]["Fn::GetAtt"][0]


@pytest.fixture(scope="module")
def reader(synth) -> tuple[str, dict[str, Any]]:
    role_id = synth.logical_id(synth.stack.data.dataset_reader.role)
    return role_id, synth.resources[role_id]["Properties"]


def test_the_reader_role_reads_only_the_tenant_tag_prefix(synth, reader):
    role_id, props = reader
    bucket = synth.logical_id(synth.stack.data.datasets)
    ((_, statement),) = [(r, st) for r, st in identity_statements(synth) if r == role_id]
    assert statement["Effect"] == "Allow" and as_list(statement["Action"]) == ["s3:GetObject"]
    assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]},
                                                       "/${aws:PrincipalTag/tenant}/*"]]}
    assert "Condition" not in statement
    assert props["MaxSessionDuration"] == 3600  # role chaining caps a chained session at 1 h anyway


def test_only_the_data_reading_functions_may_assume_it_and_only_with_a_tenant_tag(synth, reader):
    _, props = reader
    trust = props["AssumeRolePolicyDocument"]["Statement"]
    expected = sorted(repr({"Fn::GetAtt": [role_id_of(synth, name), "Arn"]}) for name in READS_DATA)
    by_action = {as_list(st["Action"])[0]: st for st in trust}
    assert set(by_action) == {"sts:AssumeRole", "sts:TagSession"} and len(trust) == 2
    for statement in trust:
        assert statement["Effect"] == "Allow" and len(as_list(statement["Action"])) == 1
        assert sorted(repr(p) for p in as_list(statement["Principal"]["AWS"])) == expected
        assert set(statement["Principal"]) == {"AWS"}
    assert by_action["sts:TagSession"]["Condition"] == {
        "StringLike": {"aws:RequestTag/tenant": "?*"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["tenant"]}}
    assert len(READS_DATA) >= 3  # guard, describe_dataset, query_dataset


def test_data_reading_functions_hold_no_s3_permission_only_the_reader_role(synth, reader):
    role_id, _ = reader
    for name in READS_DATA:
        statements = [st for r, st in identity_statements(synth) if r == role_id_of(synth, name)]
        assert not [st for st in statements if any(a.startswith("s3:") for a in as_list(st["Action"]))], name
        (assume,) = [st for st in statements if any(a.startswith("sts:") for a in as_list(st["Action"]))]
        assert sorted(as_list(assume["Action"])) == ["sts:AssumeRole", "sts:TagSession"]
        assert assume["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}
        env = synth.resources[synth.logical_id(synth.stack.functions[name].function)]["Properties"]["Environment"]
        assert env["Variables"][READER_ROLE_ENV] == {"Fn::GetAtt": [role_id, "Arn"]}, name
    others = [n for n in wiring.FUNCTIONS if n not in READS_DATA]
    for name in others:
        env = synth.resources[synth.logical_id(synth.stack.functions[name].function)]["Properties"]["Environment"]
        assert READER_ROLE_ENV not in env["Variables"], name


@pytest.mark.parametrize("action", ["s3:GetObject", "s3:GetObjectVersion"])
def test_no_other_role_may_read_dataset_objects(synth, reader, action):
    role_id, _ = reader
    bucket = synth.logical_id(synth.stack.data.datasets)
    readers = {r for r, st in identity_statements(synth) if allows(st, action)
               and any(names_bucket_objects(res, bucket) for res in as_list(st.get("Resource", [])))}
    assert readers == ({role_id} if action == "s3:GetObject" else set())


def test_no_role_may_assume_the_reader_but_the_data_readers(synth, reader):
    role_id, _ = reader
    assumers = {r for r, st in identity_statements(synth) if allows(st, "sts:AssumeRole")
                and (st["Resource"] == "*" or role_id in json.dumps(st["Resource"]))}
    assert assumers == {role_id_of(synth, name) for name in READS_DATA}


def test_the_api_may_only_write_upload_keys(synth):
    bucket = synth.logical_id(synth.stack.data.datasets)
    api_role = role_id_of(synth, C.API_FUNCTION)
    s3 = [st for r, st in identity_statements(synth) if r == api_role and "s3:" in json.dumps(st["Action"])]
    (statement,) = s3
    assert as_list(statement["Action"]) == ["s3:PutObject"]
    assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/*/uploads/*"]]}
    writers = {r for r, st in identity_statements(synth) if allows(st, "s3:PutObject")
               and any(names_bucket_objects(res, bucket) for res in as_list(st.get("Resource", [])))}
    assert writers == {api_role}


def test_the_upload_route_is_behind_the_authorizer_with_its_own_throttle(synth):
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}
    assert routes["POST /datasets"]["AuthorizationType"] == "JWT"
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    rate, burst = C.API_ROUTE_THROTTLES["POST /datasets"]
    assert stage["Properties"]["RouteSettings"]["POST /datasets"] == {"ThrottlingRateLimit": rate,
                                                                      "ThrottlingBurstLimit": burst}
