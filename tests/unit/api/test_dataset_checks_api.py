"""POST /runs on a deployment that reads file:// datasets (the local dev server): a bad dataset file is a 400
``invalid_dataset`` before anything is written or started."""

from __future__ import annotations

import pytest
from api_helpers import Api, http_event

from stepcrew.api.app import ApiConfig
from stepcrew.data import DEMO_DATASET

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"


@pytest.fixture
def local_api(aws) -> Api:
    """The API as the local dev server builds it: file:// and s3:// datasets allowed."""
    return Api.build(aws, ApiConfig(stage="local", data_schemes=("file", "s3")))


def test_a_binary_csv_file_dataset_is_a_400_and_nothing_is_written(local_api, tmp_path):
    # Given a PNG named .csv
    path = tmp_path / "photo.csv"
    path.write_bytes(PNG_HEADER)
    before = local_api.table_items()
    # When a run is posted on it
    status, headers, data = local_api.call(http_event("POST", "/runs", body={"goal": "Describe it",
                                                                             "data": path.as_uri()}))
    # Then it is rejected at once, naming the file but not its local folder
    assert (status, data["error"]["code"]) == (400, "invalid_dataset"), data
    assert headers["content-type"] == "application/json"
    assert "photo.csv is binary, not a text CSV file" in data["error"]["message"]
    assert str(tmp_path) not in data["error"]["message"]
    # and nothing was written or started
    assert local_api.table_items() == before
    assert local_api.starter.started == []


def test_a_good_file_dataset_is_accepted(local_api):
    status, _, data = local_api.call(http_event("POST", "/runs", body={"goal": "Describe it",
                                                                       "data": DEMO_DATASET.as_uri()}))
    assert status == 202, data
    assert local_api.starter.started == [data["run_id"]]


def test_an_s3_dataset_is_not_read_by_the_api(local_api, monkeypatch):
    # Given any read of a dataset would fail
    from stepcrew.tools import datasets

    def no_read(*_a, **_k):
        raise AssertionError("the API read an s3:// dataset")

    monkeypatch.setattr(datasets, "resolve_dataset", no_read)
    # When / Then an s3:// run is accepted unread (the run checks it)
    status, _, data = local_api.call(http_event("POST", "/runs", body={"goal": "Describe it",
                                                                       "data": "s3://bucket/acme/penguins.csv"}))
    assert status == 202, data
