"""Dataset reads as the run's tenant (IAM ABAC): with STEPCREW_DATA_READER_ROLE_ARN set, an s3:// dataset is read with
credentials of that role assumed for the tenant (session tag ``tenant``), cached per tenant until shortly before they
expire; a read without a tenant is refused; without the variable the process-wide client reads, as before.

moto's STS answers AssumeRole (it records no session tags), so the tests wrap it in the injected ``assume_role`` and
assert what it was asked, and check with STS which identity the S3 client's credentials belong to."""

from __future__ import annotations

import re

import boto3
import pytest
from moto import mock_aws
from stepcrew.data import DEMO_DATASET
from stepcrew.models import TENANT_PATTERN
from stepcrew.tools import datasets
from stepcrew.tools.datasets import (
    READER_REFRESH_MARGIN_S,
    READER_ROLE_ENV,
    READER_SESSION_S,
    TenantReaders,
    resolve_dataset,
    session_name,
)
from stepcrew.tools.errors import DatasetError

BUCKET = "stepcrew-test-data"
ROLE = "arn:aws:iam::123456789012:role/stepcrew-dev-dataset-reader"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sts:
    """``assume_role`` that records its arguments and asks moto's STS."""

    def __init__(self) -> None:
        self.client = boto3.client("sts", region_name="us-east-1")
        self.calls: list[dict] = []
        self.responses: list[dict] = []

    def __call__(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        response = self.client.assume_role(**kwargs)
        self.responses.append(response)
        return response


class Clients:
    """``make_client`` that records the credentials of every S3 client it builds."""

    def __init__(self) -> None:
        self.credentials: list[dict] = []

    def __call__(self, credentials: dict):
        self.credentials.append(credentials)
        return boto3.client("s3", region_name="us-east-1", aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["SessionToken"])


@pytest.fixture
def aws(monkeypatch):
    """moto with the bucket holding acme's and globex's datasets, the role configured, recording STS and clients."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for key in ("acme/penguins.csv", "acme/other.csv", "globex/penguins.csv"):
            s3.upload_file(str(DEMO_DATASET), BUCKET, key)
        monkeypatch.setenv(READER_ROLE_ENV, ROLE)
        sts, clients = Sts(), Clients()
        clock = Clock(__import__("time").time())
        readers = TenantReaders(ROLE, assume_role=sts, make_client=clients, clock=clock, max_sessions=2)
        datasets.set_tenant_readers(readers)
        yield sts, clients, clock, readers


def identity(credentials: dict) -> str:
    """The ARN STS says these credentials belong to."""
    return boto3.client("sts", region_name="us-east-1", aws_access_key_id=credentials["AccessKeyId"],
                        aws_secret_access_key=credentials["SecretAccessKey"],
                        aws_session_token=credentials["SessionToken"]).get_caller_identity()["Arn"]


def test_a_read_assumes_the_reader_role_tagged_with_the_tenant(aws):
    sts, clients, _, _ = aws
    path = resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv", "acme")
    assert path.read_bytes() == DEMO_DATASET.read_bytes()
    assert sts.calls == [{"RoleArn": ROLE, "RoleSessionName": "stepcrew-acme", "DurationSeconds": READER_SESSION_S,
                          "Tags": [{"Key": "tenant", "Value": "acme"}]}]
    # the S3 client reads with exactly the credentials STS handed out for that session
    assert clients.credentials == [sts.responses[0]["Credentials"]]
    assert identity(clients.credentials[0]) == ("arn:aws:sts::123456789012:assumed-role/"
                                                "stepcrew-dev-dataset-reader/stepcrew-acme")


def test_the_session_is_reused_until_shortly_before_it_expires(aws):
    sts, clients, clock, _ = aws
    resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv", "acme")
    expires = sts.responses[0]["Credentials"]["Expiration"].timestamp()
    clock.now = expires - READER_REFRESH_MARGIN_S - 1
    resolve_dataset(f"s3://{BUCKET}/acme/other.csv", "acme")
    assert len(sts.calls) == 1 and len(clients.credentials) == 1
    clock.now = expires - READER_REFRESH_MARGIN_S  # inside the margin: a fresh session
    datasets.reset_caches()  # forget the downloads (and the readers: inject them again)
    datasets.set_tenant_readers(aws[3])
    resolve_dataset(f"s3://{BUCKET}/acme/other.csv", "acme")
    assert len(sts.calls) == 2 and len(clients.credentials) == 2


def test_each_tenant_has_its_own_session_and_the_cache_is_bounded(aws):
    sts, _, _, readers = aws
    for tenant in ("acme", "globex", "initech", "acme"):  # max_sessions=2: acme was dropped by initech
        readers.client(tenant)
    assert [c["Tags"] for c in sts.calls] == [[{"Key": "tenant", "Value": t}] for t in
                                             ("acme", "globex", "initech", "acme")]
    readers.client("acme")  # the most recent one is kept
    assert len(sts.calls) == 4


def test_a_read_without_a_tenant_is_refused_when_the_role_is_configured(aws):
    sts, _, _, _ = aws
    with pytest.raises(DatasetError, match="names none: refused"):
        resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv")
    assert sts.calls == [] and list(datasets.CACHE_DIR.iterdir()) == []


def test_an_invalid_tenant_is_never_put_in_a_session_tag(aws):
    sts, _, _, readers = aws
    for tenant in ("", "acme/../globex", "a" * 129, "-acme", "acme*"):
        with pytest.raises(DatasetError, match="not valid"):
            readers.client(tenant)
    assert sts.calls == []


def test_a_prefix_mistake_in_code_still_reads_with_the_callers_own_session(aws, monkeypatch):
    # Given acme's download cached, and a (simulated) bug that lets globex's read through the prefix check
    sts, clients, _, _ = aws
    resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv", "acme")
    monkeypatch.setattr(datasets, "check_dataset_access", lambda *a, **k: None)
    # When globex reads acme's URI
    resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv", "globex")
    # Then it was not served from acme's download: S3 was asked with globex's session (which IAM denies on AWS:
    # its policy only names <bucket>/${aws:PrincipalTag/tenant}/*; moto does not enforce IAM)
    assert [c["Tags"][0]["Value"] for c in sts.calls] == ["acme", "globex"]
    assert identity(clients.credentials[-1]).endswith("/stepcrew-globex")


def test_an_access_denied_read_is_answered_like_a_missing_dataset(aws, monkeypatch):
    class Denying:
        def head_object(self, **kwargs):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    sts, _, clock, _ = aws
    datasets.set_tenant_readers(TenantReaders(ROLE, assume_role=sts, make_client=lambda c: Denying(), clock=clock))
    with pytest.raises(DatasetError) as denied:
        resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv", "acme")
    assert str(denied.value) == f"cannot read dataset s3://{BUCKET}/acme/penguins.csv: not found or not readable"


def test_sts_failing_is_a_one_line_dataset_error(aws):
    from botocore.exceptions import ClientError

    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    datasets.set_tenant_readers(TenantReaders(ROLE, assume_role=refuse))
    with pytest.raises(DatasetError, match=r"read credentials are unavailable \(AccessDenied\)"):
        resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv", "acme")


def test_without_the_role_the_process_client_reads_as_before(monkeypatch):
    monkeypatch.delenv(READER_ROLE_ENV, raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(DEMO_DATASET), BUCKET, "acme/penguins.csv")
        calls = []

        class Recording:
            def __getattr__(self, name):
                calls.append(name)
                return getattr(s3, name)

        def no_sts(**kwargs):
            raise AssertionError("no role is configured: nothing may be assumed")

        datasets.set_s3_client(Recording())
        datasets.set_tenant_readers(TenantReaders(ROLE, assume_role=no_sts))
        assert resolve_dataset(f"s3://{BUCKET}/acme/penguins.csv", "acme").is_file()
        assert calls == ["head_object", "download_file"]


def test_session_names_fit_sts_and_keep_long_tenants_apart():
    assert session_name("acme") == "stepcrew-acme"
    long_a, long_b = "a" * 120 + "x", "a" * 120 + "y"
    for tenant in (long_a, long_b, "t" * 55, "t" * 56):
        assert 2 <= len(session_name(tenant)) <= 64 and re.fullmatch(r"[\w+=,.@-]+", session_name(tenant))
    assert session_name(long_a) != session_name(long_b)


def test_every_tenant_id_is_a_valid_session_tag_value():
    # Session tag values: up to 256 of [\p{L}\p{Z}\p{N}_.:/=+\-@] (STS API reference, Tag). TENANT_PATTERN's character
    # classes and length bound must stay inside that, without '/' (a tenant is one key segment: "acme/x" would sit
    # inside acme's prefix) and without the IAM wildcards '*' and '?'.
    classes = re.findall(r"\[([^\]]+)\]", TENANT_PATTERN)
    allowed = set("_.:=+-@")
    for cls in classes:
        spelled = cls.replace("A-Z", "").replace("a-z", "").replace("0-9", "")
        assert set(spelled) <= allowed, cls
    longest = 1 + int(re.search(r"\{0,(\d+)\}", TENANT_PATTERN).group(1))
    assert longest <= 256
