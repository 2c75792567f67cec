"""Tenant isolation in the synthesized stack, beyond tests/infra/test_dataset_access.py (the per-tenant reader role):
what would let one tenant list, probe or read another's data without going through the code's checks.

Given the synthesized ``dev`` stage: no role may list the datasets bucket or scan the run table (a listing or a scan
would show every tenant's keys and runs at once), the datasets bucket policy grants nobody anything, a user can
neither pick nor change the tenant claim the API trusts, and the state machines hand the data tools the run's tenant,
never a value a model's tool call could set.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from iam_helpers import allows, as_list, identity_statements
from stepcrew.api.auth import DEFAULT_TENANT_CLAIM
from stepcrew_infra import constants as C

pytestmark = pytest.mark.infra

#: Actions that list keys or items across tenants (S3 listings, DynamoDB scans and exports).
LISTING_ACTIONS = ("s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads",
                   "s3:ListMultipartUploadParts", "dynamodb:Scan", "dynamodb:ExportTableToPointInTime",
                   "dynamodb:PartiQLSelect")


@pytest.mark.parametrize("action", LISTING_ACTIONS)
def test_no_role_may_list_the_datasets_bucket_or_scan_the_run_table(synth, action):
    bucket = synth.logical_id(synth.stack.data.datasets)
    table = synth.logical_id(synth.stack.data.table)
    granted = [(role, st) for role, st in identity_statements(synth) if allows(st, action)
               and (any(r == "*" for r in as_list(st.get("Resource", [])))
                    or bucket in json.dumps(st.get("Resource")) or table in json.dumps(st.get("Resource")))]
    # The one exception, by design: the operator sweep (stepcrew.domain.sweep) lists open runs of every tenant with a
    # Scan of GSI1 (run records only; it returns ids to no one); exactly that statement, nothing wider.
    sweeper = synth.stack.functions["sweeper"]
    sweep_scan = [(role, st) for role, st in granted if role == synth.logical_id(sweeper.role)
                  and st.get("Sid") == "ScanRunRecords" and as_list(st["Action"]) == ["dynamodb:Scan"]
                  and json.dumps(st["Resource"]).endswith('"/index/GSI1"]]}')]
    assert len(sweep_scan) == (1 if action == "dynamodb:Scan" else 0)
    granted = [g for g in granted if g not in sweep_scan]
    assert granted == [], f"{action} granted to {[r for r, _ in granted]}"


def test_no_statement_grants_s3_or_dynamodb_wildcards(synth):
    for role, st in identity_statements(synth):
        for action in as_list(st.get("Action", [])):
            assert action.lower() not in ("s3:*", "dynamodb:*", "*", "s3:get*", "s3:list*"), (role, action)


def test_the_datasets_bucket_policy_grants_nothing_and_blocks_public_access(synth):
    bucket = synth.logical_id(synth.stack.data.datasets)
    policies = [p["Properties"] for p in synth.of_type("AWS::S3::BucketPolicy").values()
                if p["Properties"]["Bucket"] == {"Ref": bucket}]
    statements = [st for p in policies for st in p["PolicyDocument"]["Statement"]]
    assert statements and all(st["Effect"] == "Deny" for st in statements), statements
    block = synth.resources[bucket]["Properties"]["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                     "RestrictPublicBuckets": True}


def test_a_user_can_neither_pick_nor_change_the_tenant_claim_the_api_trusts(synth):
    # the API reads the tenant from custom:tenant (else sub, which Cognito sets); users are created by an admin, the
    # attribute is immutable and the app client may read but not write it
    (pool,) = synth.of_type("AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    (tenant,) = [a for a in props["Schema"] if a["Name"] == "tenant"]
    assert tenant["Mutable"] is False
    (client,) = synth.of_type("AWS::Cognito::UserPoolClient").values()
    assert "custom:tenant" in client["Properties"]["ReadAttributes"]
    assert not any("tenant" in a for a in client["Properties"]["WriteAttributes"])
    api = synth.resources[synth.logical_id(synth.stack.functions[C.API_FUNCTION].function)]
    assert api["Properties"]["Environment"]["Variables"]["STEPCREW_TENANT_CLAIM"] == DEFAULT_TENANT_CLAIM \
        == "custom:tenant"


def _asl(synth, name: str) -> dict[str, Any]:
    sm = synth.resources[synth.logical_id(synth.stack.orchestration.state_machines[name])]
    definition = sm["Properties"]["DefinitionString"]
    parts = definition["Fn::Join"][1] if isinstance(definition, dict) else [definition]
    text = "".join(p if isinstance(p, str) else "ARN" for p in parts)
    return json.loads(text)


def _walk(states: dict[str, Any]):
    for name, state in states.items():
        yield name, state
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _walk(state[key]["States"])
        for branch in state.get("Branches", []):
            yield from _walk(branch["States"])


def test_data_tools_get_the_runs_tenant_from_the_state_never_from_a_tool_call(synth):
    # run.asl: the profile reads as $.guard.config.tenant (the stored run's, from GuardInput); agent.asl: every tool
    # call's context is built by the Map's ItemSelector from the execution input ($.tenant, which the agent function
    # copies from the stored run), and the model's call goes in "call" only
    run, agent = _asl(synth, "run"), _asl(synth, "agent")
    (describe,) = [s for n, s in _walk(run["States"]) if n == "DescribeData"]
    assert describe["Parameters"]["Payload"]["context"]["tenant.$"] == "$.guard.config.tenant"
    maps = [s for _, s in _walk(agent["States"]) if s.get("Type") == "Map"]
    (tools,) = [m for m in maps if "context" in m.get("ItemSelector", {})]
    assert tools["ItemSelector"]["context"]["tenant.$"] == "$.tenant"
    # "function" is the ARN the agent function took from the ASL's own tool_functions constant, never the model's
    assert set(tools["ItemSelector"]) == {"context", "function.$", "call.$"}
    (invoke,) = [s for s in tools["ItemProcessor"]["States"].values() if s["Type"] == "Task"]
    assert invoke["Parameters"]["Payload"] == {"context.$": "$.context", "call.$": "$.call"}
    for _, state in _walk(agent["States"]):
        if state.get("Type") == "Task":
            assert "Payload.$" not in (state.get("Parameters") or {}), state


#: S3 Vectors actions that would show or change every tenant's vectors at once, or the indexes themselves.
VECTOR_WIDE_ACTIONS = ("s3vectors:ListVectors", "s3vectors:ListIndexes", "s3vectors:DeleteIndex",
                       "s3vectors:CreateIndex", "s3vectors:DeleteVectorBucket", "s3vectors:PutVectorBucketPolicy",
                       "s3vectors:GetVectorBucketPolicy")


@pytest.mark.parametrize("action", VECTOR_WIDE_ACTIONS)
def test_no_role_may_list_or_manage_the_memory_indexes(s3vectors_synth, action):
    # The vector indexes hold every tenant's vectors (one index per kind, tenant in the key and metadata): IAM cannot
    # scope a vector action to a tenant, so the tenant boundary is the adapter's filter and its re-check of every
    # result (tests/unit/memory/test_s3vectors.py). No role may list the keys (which name tenants) or touch the indexes.
    granted = [(role, st) for role, st in identity_statements(s3vectors_synth) if allows(st, action)]
    assert granted == [], f"{action} granted to {[r for r, _ in granted]}"
