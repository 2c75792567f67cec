"""Tenant isolation of datasets at the API (issue 7, part 3): a run may only name its own tenant's datasets, in the
stage's bucket (``s3://<bucket>/<tenant>/...``), and, on the dev server, files in the folders named at start. Another
tenant's dataset is answered exactly like a missing one and nothing is written; the data tools check again."""

from __future__ import annotations

import pytest
from api_helpers import Api, http_event

from stepcrew.api.app import ApiConfig
from stepcrew.data import DEMO_DATASET


def make_api(aws, **config) -> Api:
    return Api.build(aws, ApiConfig(**config))


def post(api: Api, data: str, tenant: str = "acme"):
    return api.call(http_event("POST", "/runs", body={"goal": "Describe it", "data": data}, tenant=tenant))


@pytest.mark.parametrize("uri", ["s3://stepcrew-data/globex/payroll.csv",     # another tenant's prefix
                                 "s3://stepcrew-data/acmecorp/payroll.csv",   # a prefix that only starts alike
                                 "s3://other-bucket/acme/payroll.csv",        # not the stage's bucket
                                 "s3://stepcrew-data/payroll.csv"])           # no tenant prefix at all
def test_a_dataset_the_tenant_may_not_read_is_a_400_that_says_not_found_and_writes_nothing(aws, uri):
    api = make_api(aws, data_bucket="stepcrew-data")
    before = api.table_items()
    status, _, data = post(api, uri)
    assert (status, data["error"]["code"]) == (400, "dataset_not_found")
    assert data["error"]["message"] == "dataset payroll.csv not found or not readable"
    assert api.table_items() == before and api.starter.started == []


def test_the_tenants_own_prefix_in_the_stage_bucket_is_accepted(aws):
    api = make_api(aws, data_bucket="stepcrew-data")
    status, _, data = post(api, "s3://stepcrew-data/acme/sales/q3.csv")
    assert status == 202 and api.store.get_run(data["run_id"]).data == "s3://stepcrew-data/acme/sales/q3.csv"


def test_the_dev_server_reads_files_only_in_its_folders(aws, tmp_path):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (allowed / "ok.csv").write_text("a,b\n1,2\n")
    (other / "secret.csv").write_text("a,b\n1,2\n")
    (allowed / "escape.csv").symlink_to(other / "secret.csv")
    api = make_api(aws, data_schemes=("file", "s3"), data_dirs=(DEMO_DATASET.parent, allowed))
    assert post(api, (allowed / "ok.csv").as_uri())[0] == 202
    assert post(api, DEMO_DATASET.as_uri())[0] == 202
    for uri in ((other / "secret.csv").as_uri(), (allowed / "escape.csv").as_uri()):
        status, _, data = post(api, uri)
        assert (status, data["error"]["code"]) == (400, "dataset_not_found")
        assert str(tmp_path) not in data["error"]["message"]
