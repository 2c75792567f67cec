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


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/in/nothing.csv", "s3://no-such-bucket-here/x.csv"])
def test_missing_s3_objects_are_dataset_errors(s3, uri):
    # a missing key and a missing bucket get the same answer as a denied one (tools/datasets.not_found)
    with pytest.raises(DatasetError, match=f"cannot read dataset {uri}: not found or not readable"):
        resolve_dataset(uri)
    assert list(datasets.CACHE_DIR.iterdir()) == []


@pytest.mark.parametrize(("uri", "tenant", "bucket"), [
    (f"s3://{BUCKET}/other/data.csv", "acme", None),       # another tenant's prefix
    (f"s3://{BUCKET}/acmecorp/data.csv", "acme", None),    # a prefix that only starts like the tenant
    ("s3://elsewhere/acme/data.csv", "acme", BUCKET),      # not the stage's datasets bucket
])
def test_a_dataset_outside_the_tenants_prefix_is_answered_like_a_missing_one(s3, monkeypatch, uri, tenant, bucket):
    if bucket:
        monkeypatch.setenv("STEPCREW_DATA_BUCKET", bucket)
    with pytest.raises(DatasetError) as caught:
        resolve_dataset(uri, tenant)
    assert str(caught.value) == "dataset data.csv not found or not readable"
    assert list(datasets.CACHE_DIR.iterdir()) == []


def test_a_local_dataset_outside_the_named_folders_is_not_found_even_through_a_symlink(tmp_path):
    from stepcrew.tools.datasets import check_dataset_access

    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    (secret / "payroll.csv").write_text("name,ssn\na,1\n")
    (allowed / "link.csv").symlink_to(secret / "payroll.csv")
    (allowed / "ok.csv").write_text("a,b\n1,2\n")
    check_dataset_access((allowed / "ok.csv").as_uri(), None, local_dirs=(allowed,))
    for uri in ((allowed / "link.csv").as_uri(), (secret / "payroll.csv").as_uri(),
                f"file://{allowed}/../secret/payroll.csv"):
        with pytest.raises(DatasetError, match="not found or not readable"):
            check_dataset_access(uri, None, local_dirs=(allowed,))


def test_a_deployed_function_refuses_file_datasets(monkeypatch):
    from stepcrew.data import DEMO_DATASET

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stepcrew-prod-tool_query_dataset")
    monkeypatch.setenv("STEPCREW_STAGE", "prod")
    with pytest.raises(DatasetError, match="local-only"):
        resolve_dataset(DEMO_DATASET.as_uri())


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
