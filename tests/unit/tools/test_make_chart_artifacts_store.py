"""The artifacts port's listing and reading, one contract for the three adapters (memory; S3 on moto; the local folder): a run's artifacts
are listed with kind, name, bytes and content type; another tenant's run lists nothing and its keys read as missing."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from stepcrew.tools.artifacts import FolderArtifactStore, MemoryArtifactStore, S3ArtifactStore, artifact_key

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
CSV = b"a,b\r\n1,2\r\n"


@pytest.fixture(params=["memory", "s3", "folder"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryArtifactStore()
        return
    if request.param == "folder":  # the local runtime's artifacts, kept for later processes
        yield FolderArtifactStore(tmp_path / "datasets")
        return
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        yield S3ArtifactStore(s3, "artifacts")


def fill(store):
    store.put(artifact_key("acme", "run1", "charts", "mass.png"), PNG, "image/png")
    store.put(artifact_key("acme", "run1", "exports", "mass.csv"), CSV, "text/csv; charset=utf-8")
    store.put(artifact_key("acme", "run2", "charts", "other.png"), PNG, "image/png")
    store.put(artifact_key("globex", "run1", "charts", "secret.png"), PNG + b"x", "image/png")


def test_a_run_lists_its_own_artifacts_sorted_by_key(store):
    fill(store)
    assert store.list("acme", "run1") == [
        {"key": "acme/runs/run1/charts/mass.png", "kind": "charts", "name": "mass.png", "bytes": len(PNG),
         "content_type": "image/png"},
        {"key": "acme/runs/run1/exports/mass.csv", "kind": "exports", "name": "mass.csv", "bytes": len(CSV),
         "content_type": "text/csv; charset=utf-8"},
    ]
    assert [a["name"] for a in store.list("globex", "run1")] == ["secret.png"]
    assert store.list("acme", "run9") == []


def test_another_tenants_run_and_keys_are_answered_like_missing_ones(store):
    fill(store)
    assert store.list("initech", "run1") == []
    assert store.get("acme", "globex/runs/run1/charts/secret.png") is None
    assert store.get("globex", "globex/runs/run1/charts/secret.png") == PNG + b"x"
    assert store.get("acme", "acme/runs/run1/charts/mass.png") == PNG
    assert store.get("acme", "acme/runs/run1/charts/missing.png") is None
    # a prefix of another tenant's name is not that tenant, and a key outside runs/ is no artifact
    assert store.get("glob", "globex/runs/run1/charts/secret.png") is None
    assert store.get("acme", "acme/runs/../globex/runs/run1") is None
    assert store.get("acme", "acme/datasets.csv") is None


@pytest.mark.parametrize(("tenant", "run_id"), [("acme/..", "run1"), ("acme", "run1/../x"), ("acme", ""),
                                                ("", "run1")])
def test_a_tenant_or_run_id_that_is_not_one_segment_is_refused(store, tenant, run_id):
    with pytest.raises(ValueError):
        store.list(tenant, run_id)
