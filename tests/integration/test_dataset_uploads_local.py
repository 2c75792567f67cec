"""Local uploads end to end: `stepcrew datasets put` and `POST /datasets` on `stepcrew dev` store a file under the
tenant's prefix of the local datasets bucket; a later run of that tenant reads it through S3 (moto) like on AWS, and
another tenant gets the answer a missing dataset gets.

Given STEPCREW_HOME in tmp_path, when a CSV is put for acme, then acme's run on its s3:// URI succeeds with the
figures of the file, and globex's run on the same URI fails with the same DatasetError as a run on a key that does
not exist; bad files exit 2 and write nothing; over HTTP, the upload URL accepts the signed PUT only."""

from __future__ import annotations

import csv
import json
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from devserver_helpers import dev_server
from stepcrew.crew import load_crew
from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.local.runtime import LOCAL_DATA_BUCKET, LocalRuntime
from stepcrew.models import RunRequest, RunStatus, ToolCall, ToolContext, ToolInvocation
from stepcrew.service import create_run, run_result, start_run
from stepcrew.tools import datasets
from stepcrew.tools.dataset import QueryDataset
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 180
URI = f"s3://{LOCAL_DATA_BUCKET}/acme/uploads/penguins.csv"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path / "home"))
    datasets.reset_caches()
    yield tmp_path / "home"
    datasets.reset_caches()


def put(*args: str) -> tuple[int, str, str]:
    from stepcrew.cli import app

    result = CliRunner().invoke(app, ["datasets", "put", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr if result.stderr_bytes else ""


def query(sql: str, tenant: str, uri: str = URI) -> dict:
    return QueryDataset().invoke(ToolInvocation(
        context=ToolContext(run_id="run-local", subtask_id="t1", data_uri=uri, tenant=tenant),
        call=ToolCall(call_id="c1", name="query_dataset", arguments={"sql": sql}))).model_dump()


def run_as(rt: LocalRuntime, tenant: str, uri: str):
    req = RunRequest(goal=DEMO_GOAL, data=uri, tenant=tenant)
    run = start_run(create_run(req, load_crew("default"), rt.store), rt.store, rt)
    rt.wait(run.execution_arn, timeout_s=RUN_TIMEOUT_S)
    return run_result(rt.store, run.run_id)


def gentoo_mean_mass() -> float:
    with DEMO_DATASET.open(newline="") as f:
        masses = [float(r["body_mass_g"]) for r in csv.DictReader(f)
                  if r["species"] == "Gentoo" and r["body_mass_g"] not in ("", "NA")]
    return statistics.fmean(masses)


def test_a_put_dataset_is_read_by_its_tenant_only(home):
    # Given a CSV put for acme with the CLI
    code, out, _ = put(str(DEMO_DATASET), "--tenant", "acme")
    assert code == 0 and out.strip() == URI
    assert (home / "datasets" / "acme" / "uploads" / "penguins.csv").read_bytes() == DEMO_DATASET.read_bytes()

    with LocalRuntime(fast_waits=True, state_dir=home / "state") as rt:
        # Then acme's tools read it through the emulated S3 bucket (a later process: loaded from the folder)
        sql = "SELECT avg(body_mass_g) FROM data WHERE species = 'Gentoo'"
        result = query(sql, "acme")
        assert result["ok"], result
        assert result["content"]["rows"][0][0] == pytest.approx(gentoo_mean_mass(), abs=1e-6)
        # and another tenant gets the answer of a missing dataset, whether the key exists or not
        denied, missing = query(sql, "globex"), query(sql, "globex", URI.replace("penguins", "nothing"))
        assert not denied["ok"] and denied["error"]["type"] == missing["error"]["type"] == "DatasetError"
        assert denied["error"]["message"] == missing["error"]["message"].replace("nothing", "penguins") == \
            "dataset penguins.csv not found or not readable"

        # and a whole run of acme on it succeeds with the file's figures; globex's fails before any model call
        mine = run_as(rt, "acme", URI)
        assert mine.status == RunStatus.SUCCEEDED, mine.error
        assert f"{gentoo_mean_mass():,.2f}".replace(",", "") in mine.final_output.replace(",", "")
        theirs, nothing = run_as(rt, "globex", URI), run_as(rt, "globex", URI.replace("penguins", "nothing"))
        for other in (theirs, nothing):
            assert other.status == RunStatus.FAILED and other.error.code == "DatasetError"
            assert other.plan.subtasks == [] and other.usage.input_tokens == 0
        assert theirs.error.message == nothing.error.message.replace("nothing", "penguins")


@pytest.mark.parametrize(("make", "args", "message"), [
    (None, ["missing.csv"], "no such file"),
    ("notes.txt", ["notes.txt"], "must end in"),
    ("data.csv", ["data.csv", "--name", "../evil.csv"], "a dataset name is"),
    ("data.csv", ["data.csv", "--tenant", "acme/globex"], "--tenant must be"),
    ("image.csv", ["image.csv"], "binary"),
    ("empty.csv", ["empty.csv"], "empty"),
    ("big.csv", ["big.csv"], "too big"),
])
def test_a_bad_file_exits_2_and_stores_nothing(home, tmp_path, monkeypatch, make, args, message):
    monkeypatch.setattr(datasets, "MAX_DATASET_BYTES", 64)
    contents = {"notes.txt": b"a,b\n1,2\n", "data.csv": b"a,b\n1,2\n", "image.csv": b"\x89PNG\r\n\x00\x00",
                "empty.csv": b"", "big.csv": b"a,b\n" + b"1,2\n" * 40}
    if make:
        (tmp_path / make).write_bytes(contents[make])
    monkeypatch.chdir(tmp_path)
    code, out, err = put(*args)
    assert code == 2 and out == "" and message in err, err
    assert not (home / "datasets").exists()


def _http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _api(server, method: str, path: str, body: dict, tenant: str = "acme") -> tuple[int, dict]:
    status, raw = _http(method, server.url + path, json.dumps(body).encode(),
                        {"Content-Type": "application/json", "Authorization": f"Bearer local:{tenant}"})
    return status, json.loads(raw)


def test_an_upload_over_the_dev_server_is_kept_and_read_by_its_tenant_only(home):
    data = b"region,revenue\nnorth,10\nsouth,32\neast,5\n"
    with dev_server(home / "state") as server:
        status, grant = _api(server, "POST", "/datasets", {"name": "sales.csv", "size_bytes": len(data)})
        assert status == 201 and grant["uri"] == f"s3://{LOCAL_DATA_BUCKET}/acme/uploads/sales.csv"
        assert grant["upload_url"].startswith(f"{server.url}/{LOCAL_DATA_BUCKET}/acme/uploads/sales.csv?")
        # a PUT that is not the signed one is refused as S3 refuses it, and stores nothing
        for body, headers in ((data + b"x", {**grant["headers"], "Content-Length": str(len(data) + 1)}),
                              (data, {**grant["headers"], "Content-Type": "application/json"})):
            status, raw = _http("PUT", grant["upload_url"], body, headers)
            assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in raw
        status, raw = _http("PUT", grant["upload_url"].replace("/acme/", "/globex/"), data, grant["headers"])
        assert status == 403
        assert not (home / "datasets" / "acme" / "uploads" / "sales.csv").exists()
        # the signed PUT is stored
        status, _ = _http("PUT", grant["upload_url"], data, grant["headers"])
        assert status == 200
        assert (home / "datasets" / "acme" / "uploads" / "sales.csv").read_bytes() == data
        # acme may start a run on it; globex gets the answer of a missing dataset
        status, accepted = _api(server, "POST", "/runs", {"goal": "What is the total revenue?", "data": grant["uri"]})
        assert status == 202, accepted
        status, refused = _api(server, "POST", "/runs", {"goal": "What is the total revenue?", "data": grant["uri"]},
                               tenant="globex")
        assert (status, refused["error"]["code"]) == (400, "dataset_not_found")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            _, raw = _http("GET", f"{server.url}/runs/{accepted['run_id']}",
                           headers={"Authorization": "Bearer local:acme"})
            shown = json.loads(raw)
            if shown["status"] not in ("QUEUED", "RUNNING"):
                break
            time.sleep(0.2)
        assert shown["status"] in ("SUCCEEDED", "NEEDS_REVIEW", "DECLINED"), shown["error"]
        assert shown["error"] is None or shown["error"]["code"] != "DatasetError"
    # and a later process reads the upload from the folder
    with LocalRuntime(fast_waits=True, state_dir=home / "state"):
        result = query("SELECT sum(revenue) FROM data", "acme", grant["uri"])
        assert result["ok"] and result["content"]["rows"] == [[47]]
