"""A bounded schemathesis run (docs/openapi.json) against `stepcrew dev` on 127.0.0.1: every request the fuzzer
builds from the committed OpenAPI document gets a 2xx or a 4xx, never a 5xx (issue 7's "every client error a 4xx").
Bounded: 10 examples per operation, deterministic generation, the coverage and fuzzing phases (~20 s)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from devserver_helpers import dev_server

pytestmark = pytest.mark.integration

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_no_request_built_from_the_openapi_document_gets_a_5xx(tmp_path, monkeypatch):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    monkeypatch.setenv("STEPCREW_TENANT_RATE_START", "100000")  # the fuzzer, not the limiter, is under test
    monkeypatch.setenv("STEPCREW_TENANT_RATE_READ", "100000")
    with dev_server(tmp_path / "state") as server:
        proc = subprocess.run([st, "run", str(OPENAPI), "--url", server.url, "-H", "Authorization: Bearer local:fuzz",
                               "--checks", "not_a_server_error", "-n", "10", "--generation-deterministic",
                               "--phases", "coverage,fuzzing", "--request-timeout", "20"],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "passed" in proc.stdout and "failure" not in proc.stdout.split("SUMMARY", 1)[-1].lower()
