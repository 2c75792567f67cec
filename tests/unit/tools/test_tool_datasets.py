"""Dataset URIs: file:// validation, s3:// download through moto (no network), the per-process caches."""

import boto3
import pytest
from moto import mock_aws

from stepcrew.data import DEMO_DATASET
from stepcrew.tools import datasets
from stepcrew.tools.dataset import QueryDataset
from stepcrew.tools.datasets import dataset_uri, resolve_dataset
from stepcrew.tools.errors import DatasetError

BUCKET = "stepcrew-test-data"


def test_file_uri_resolves_to_the_local_file():
    uri = dataset_uri(DEMO_DATASET)
    assert uri == "file://" + str(DEMO_DATASET)
    assert resolve_dataset(uri) == DEMO_DATASET


def test_dataset_uri_makes_relative_paths_absolute(tmp_path, monkeypatch):
    (tmp_path / "my data.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    uri = dataset_uri("my data.csv")
    assert uri == (tmp_path / "my data.csv").as_uri() and "%20" in uri
    assert resolve_dataset(uri) == tmp_path / "my data.csv"


@pytest.mark.parametrize(("name", "message"), [
    ("missing.csv", "dataset not found or not a file"),
    ("notes.txt", "the file must end in .csv, .parquet, .json, .jsonl"),
    ("folder.csv", "dataset not found or not a file"),
])
def test_bad_local_datasets_are_rejected(tmp_path, name, message):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DatasetError, match=message):
        resolve_dataset((tmp_path / name).as_uri())
    with pytest.raises(DatasetError, match=message):
        dataset_uri(tmp_path / name)


def test_a_too_big_dataset_is_rejected(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text("a\n" + "1\n" * 100)
    monkeypatch.setattr(datasets, "MAX_DATASET_BYTES", 100)
    with pytest.raises(DatasetError, match=r"too big: 202 bytes \(limit 100 bytes\)"):
        resolve_dataset(path.as_uri())


@pytest.mark.parametrize(("uri", "message"), [
    ("http://example.com/data.csv", "use file:// or s3://"),
    ("/abs/path/data.csv", "use file:// or s3://"),
    ("file://relative/data.csv", "needs an absolute path"),
    ("s3://bucket-only", "needs a bucket and a key"),
    ("s3://bucket/data.xlsx", "must end in"),
])
def test_bad_uris_are_rejected(uri, message):
    with pytest.raises(DatasetError, match=message):
        resolve_dataset(uri)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(str(DEMO_DATASET), BUCKET, "in/penguins.csv")
        yield client


def test_s3_dataset_is_downloaded_once(s3):
    # When
    uri = f"s3://{BUCKET}/in/penguins.csv"
    path = resolve_dataset(uri)
    # Then the file is a copy in the cache folder
    assert path.parent == datasets.CACHE_DIR and path.suffix == ".csv"
    assert path.read_bytes() == DEMO_DATASET.read_bytes()
    # and a second resolve does not go back to S3
    s3.delete_object(Bucket=BUCKET, Key="in/penguins.csv")
    assert resolve_dataset(uri) == path


def test_the_s3_client_is_injectable(s3):
    calls = []

    class Recording:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(s3, name)

    datasets.set_s3_client(Recording())
    resolve_dataset(f"s3://{BUCKET}/in/penguins.csv")
    assert calls == ["head_object", "download_file"]


@pytest.mark.parametrize(("uri", "message"), [
    (f"s3://{BUCKET}/in/nothing.csv", "not found"),
    ("s3://no-such-bucket-here/x.csv", "bucket not found"),
])
def test_missing_s3_objects_are_dataset_errors(s3, uri, message):
    with pytest.raises(DatasetError, match=f"cannot read dataset {uri}: {message}"):
        resolve_dataset(uri)
    assert list(datasets.CACHE_DIR.iterdir()) == []


def test_query_over_an_s3_dataset(s3, make_invocation):
    result = QueryDataset().invoke(make_invocation(
        "query_dataset", {"sql": "SELECT count(*), round(avg(body_mass_g), 1) FROM data"},
        f"s3://{BUCKET}/in/penguins.csv"))
    assert result.ok
    assert result.content["rows"] == [[344, 4201.8]]


def test_an_unreadable_file_is_a_dataset_error(tmp_path, make_invocation):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not parquet at all")  # the Parquet magic, so DuckDB is the one to reject it
    result = QueryDataset().invoke(make_invocation("query_dataset", {"sql": "SELECT 1"}, path.as_uri()))
    assert result.error.type == "DatasetError"
    assert result.error.message.startswith("cannot load dataset broken.parquet: ")
    assert str(tmp_path) not in result.error.message
