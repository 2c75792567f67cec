"""POST /datasets: an upload URL for <tenant>/uploads/<name>, the tenant taken from the token only.

Given the API with S3Uploads on the stage's bucket, when a tenant asks for an upload URL, then it gets 201 with the URI
under its own prefix and a presigned PUT for exactly that key, content type and size (checked by recomputing the SigV4
signature as S3 does: another key, type or size does not verify); bad names, sizes and types are 400 with their code,
nothing else than POST is allowed, and an uploaded file is then readable by that tenant only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from api_helpers import Api, http_event
from stepcrew.api.app import ApiConfig, S3Uploads
from stepcrew.api.dev import S3Refusal, check_presigned
from stepcrew.api.models import UPLOAD_URL_EXPIRES_S
from stepcrew.tools import datasets
from stepcrew.tools.datasets import MAX_DATASET_BYTES
from stepcrew.tools.errors import DatasetError

BUCKET = "stepcrew-data"


@pytest.fixture
def uploads_api(aws) -> Api:
    api = Api.build(aws, ApiConfig(stage="test", data_bucket=BUCKET))
    api.app.uploads = S3Uploads(BUCKET, region="us-east-1")
    return api


def ask(api: Api, body: dict, tenant: str = "acme", **kw):
    return api.call(http_event("POST", "/datasets", body=body, tenant=tenant, **kw))


def signing_credentials():
    return boto3.Session(region_name="us-east-1").get_credentials().get_frozen_credentials()


def test_an_upload_url_is_issued_for_the_tenants_own_prefix(uploads_api):
    status, _, data = ask(uploads_api, {"name": "sales.csv", "size_bytes": 1234})
    assert status == 201
    assert data["uri"] == f"s3://{BUCKET}/acme/uploads/sales.csv"
    assert data["method"] == "PUT" and data["expires_in_s"] == UPLOAD_URL_EXPIRES_S == 900
    assert data["headers"] == {"Content-Type": "text/csv", "Content-Length": "1234"}
    assert data["max_bytes"] == MAX_DATASET_BYTES
    url = urlsplit(data["upload_url"])
    assert url.netloc == f"{BUCKET}.s3.amazonaws.com" and url.path == "/acme/uploads/sales.csv"
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]


def test_the_signature_binds_the_key_the_content_type_and_the_size(uploads_api):
    _, _, data = ask(uploads_api, {"name": "sales.csv", "size_bytes": 1234})
    url, headers, creds = data["upload_url"], {**data["headers"], "Host": urlsplit(data["upload_url"]).netloc}, \
        signing_credentials()
    check_presigned("PUT", url, headers, creds)  # the PUT the client is told to send verifies
    tampered = [
        ("PUT", url, {**headers, "Content-Length": "1235"}),                        # a bigger body
        ("PUT", url, {**headers, "Content-Type": "application/json"}),              # another type
        ("PUT", url.replace("/acme/uploads/", "/globex/uploads/"), headers),       # another tenant's key
        ("PUT", url.replace("sales.csv", "other.csv"), headers),                    # another name
        ("GET", url, headers),                                                      # another method
    ]
    for method, target, sent in tampered:
        with pytest.raises(S3Refusal) as refused:
            check_presigned(method, target, sent, creds)
        assert (refused.value.status, refused.value.code) == (403, "SignatureDoesNotMatch"), (method, target, sent)
    missing = {k: v for k, v in headers.items() if k != "Content-Length"}
    with pytest.raises(S3Refusal, match="signed header"):
        check_presigned("PUT", url, missing, creds)


def test_an_expired_url_is_refused(uploads_api):
    from datetime import UTC, datetime, timedelta

    _, _, data = ask(uploads_api, {"name": "sales.csv", "size_bytes": 10})
    headers = {**data["headers"], "Host": urlsplit(data["upload_url"]).netloc}
    later = datetime.now(UTC) + timedelta(seconds=UPLOAD_URL_EXPIRES_S + 60)
    with pytest.raises(S3Refusal, match="expired"):
        check_presigned("PUT", data["upload_url"], headers, signing_credentials(), now=later)


def test_the_tenant_comes_from_the_token_only(uploads_api):
    status, _, data = ask(uploads_api, {"name": "sales.csv", "size_bytes": 10}, tenant="globex")
    assert status == 201 and data["uri"] == f"s3://{BUCKET}/globex/uploads/sales.csv"
    assert urlsplit(data["upload_url"]).path == "/globex/uploads/sales.csv"
    status, _, data = ask(uploads_api, {"name": "sales.csv", "size_bytes": 10, "tenant": "acme"}, tenant="globex")
    assert (status, data["error"]["code"]) == (400, "validation_error")
    # a name cannot climb out of the uploads folder into another tenant's prefix
    status, _, data = ask(uploads_api, {"name": "../../acme/uploads/sales.csv", "size_bytes": 10}, tenant="globex")
    assert (status, data["error"]["code"]) == (400, "invalid_dataset_name")
    status, _, _ = ask(uploads_api, {"name": "sales.csv", "size_bytes": 10}, tenant=None)
    assert status == 401


@pytest.mark.parametrize(("name", "code"), [
    ("../sales.csv", "invalid_dataset_name"),
    ("a/b.csv", "invalid_dataset_name"),
    ("x..csv", "invalid_dataset_name"),
    (".hidden.csv", "invalid_dataset_name"),
    ("sales q3.csv", "invalid_dataset_name"),
    ("säles.csv", "invalid_dataset_name"),
    ("a\\b.csv", "invalid_dataset_name"),
    ("s" * 125 + ".csv", "validation_error"),  # 129 characters: over max_length
    ("sales.txt", "unsupported_dataset_type"),
    ("sales", "unsupported_dataset_type"),
    ("sales.csv.exe", "unsupported_dataset_type"),
])
def test_bad_names_are_400_with_their_code_and_sign_nothing(uploads_api, name, code):
    status, _, data = ask(uploads_api, {"name": name, "size_bytes": 10})
    assert (status, data["error"]["code"]) == (400, code)
    assert "upload_url" not in data


def test_the_longest_name_and_the_largest_size_are_accepted(uploads_api):
    name = "s" * 124 + ".csv"
    status, _, data = ask(uploads_api, {"name": name, "size_bytes": MAX_DATASET_BYTES})
    assert status == 201 and data["uri"].endswith(f"/acme/uploads/{name}")
    assert data["headers"]["Content-Length"] == str(MAX_DATASET_BYTES)


@pytest.mark.parametrize(("body", "code"), [
    ({"name": "sales.csv", "size_bytes": MAX_DATASET_BYTES + 1}, "dataset_too_large"),
    ({"name": "sales.csv", "size_bytes": 0}, "validation_error"),
    ({"name": "sales.csv", "size_bytes": "10"}, "validation_error"),
    ({"name": "sales.csv", "size_bytes": 10.0}, "validation_error"),
    ({"name": "sales.csv"}, "validation_error"),
    ({"size_bytes": 10}, "validation_error"),
    ({"name": "sales.csv", "size_bytes": 10, "content_type": "application/json"}, "invalid_content_type"),
    ({"name": "data.parquet", "size_bytes": 10, "content_type": "text/csv"}, "invalid_content_type"),
])
def test_bad_sizes_and_types_are_400(uploads_api, body, code):
    status, _, data = ask(uploads_api, body)
    assert (status, data["error"]["code"]) == (400, code)


@pytest.mark.parametrize(("name", "content_type", "expected"), [
    ("data.parquet", None, "application/vnd.apache.parquet"),
    ("data.parquet", "application/octet-stream", "application/octet-stream"),
    ("rows.jsonl", "application/x-ndjson", "application/x-ndjson"),
    ("rows.json", None, "application/json"),
    ("SALES.CSV", "Text/CSV", "text/csv"),
])
def test_the_content_type_follows_the_suffix(uploads_api, name, content_type, expected):
    body = {"name": name, "size_bytes": 10, **({"content_type": content_type} if content_type else {})}
    status, _, data = ask(uploads_api, body)
    assert status == 201 and data["headers"]["Content-Type"] == expected


def test_other_methods_are_405_and_a_body_that_is_not_json_is_415(uploads_api):
    for method in ("GET", "PUT", "DELETE"):
        status, headers, data = uploads_api.call(http_event(method, "/datasets"))
        assert (status, headers.get("allow"), data["error"]["code"]) == (405, "POST", "method_not_allowed")
    status, _, data = uploads_api.call(http_event("POST", "/datasets", raw_body="name=sales.csv",
                                                  headers={"content-type": "application/x-www-form-urlencoded"}))
    assert (status, data["error"]["code"]) == (415, "unsupported_media_type")


def test_without_a_datasets_bucket_uploads_are_unavailable(api):
    status, _, data = ask(api, {"name": "sales.csv", "size_bytes": 10})
    assert (status, data["error"]["code"]) == (503, "uploads_unavailable")


def test_an_uploaded_file_is_read_by_its_tenant_and_not_found_for_another(uploads_api, tmp_path, monkeypatch,
                                                                           moto_dynamodb):
    # Given a CSV uploaded with the URL (moto serves the PUT; it does not check signatures, check_presigned does)
    monkeypatch.setattr(datasets, "CACHE_DIR", tmp_path / "cache")
    datasets.reset_caches()
    body = b"region,revenue\nnorth,10\nsouth,32\n"
    _, _, data = ask(uploads_api, {"name": "sales.csv", "size_bytes": len(body)})
    # (the module's moto mock - conftest.moto_dynamodb - serves S3 and the requests library too)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    assert requests.put(data["upload_url"], data=body, headers=data["headers"], timeout=10).status_code == 200
    # Then acme reads it; globex gets the answer a missing dataset gets, whether the key exists or not
    assert datasets.resolve_dataset(data["uri"], "acme").read_bytes() == body
    answers = []
    for uri in (data["uri"], data["uri"].replace("sales.csv", "nothing.csv")):
        with pytest.raises(DatasetError) as caught:
            datasets.resolve_dataset(uri, "globex")
        answers.append(str(caught.value).replace("nothing.csv", "sales.csv"))
    assert answers[0] == answers[1] == "dataset sales.csv not found or not readable"
    # and the API refuses globex a run on it, like a missing dataset
    status, _, refused = uploads_api.call(http_event("POST", "/runs", body={"goal": "Sum revenue", "data": data["uri"]},
                                                     tenant="globex"))
    assert (status, refused["error"]["code"]) == (400, "dataset_not_found")
    datasets.reset_caches()
