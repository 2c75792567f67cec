"""`stepcrew runs artifacts`' download step: files land in OUT/<kind>/<name>, OUT is created, a destination outside
OUT or an OUT that is a file is refused (BadInput: exit 2) before anything of that artifact is written."""

from __future__ import annotations

import pytest

from stepcrew.cli import BadInput, _download_artifacts
from stepcrew.tools.artifacts import MemoryArtifactStore, artifact_key


def _store():
    store = MemoryArtifactStore()
    store.put(artifact_key("acme", "run1", "charts", "a.png"), b"png-bytes", "image/png")
    store.put(artifact_key("acme", "run1", "exports", "t.csv"), b"a,b\r\n", "text/csv")
    store.put(artifact_key("globex", "run1", "charts", "secret.png"), b"secret", "image/png")
    return store


def test_the_run_artifacts_are_written_under_out_by_kind(tmp_path):
    store = _store()
    out = tmp_path / "new" / "dir"
    written = _download_artifacts(store, "acme", store.list("acme", "run1"), out)
    assert (out / "charts" / "a.png").read_bytes() == b"png-bytes"
    assert (out / "exports" / "t.csv").read_bytes() == b"a,b\r\n"
    assert [(w["kind"], w["name"], w["bytes"]) for w in written] == [("charts", "a.png", 9), ("exports", "t.csv", 5)]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a.png", "t.csv"]


def test_no_artifacts_still_creates_out(tmp_path):
    assert _download_artifacts(_store(), "acme", [], tmp_path / "empty") == []
    assert (tmp_path / "empty").is_dir()


@pytest.mark.parametrize("entry", [
    {"key": "acme/runs/run1/charts/x", "kind": "..", "name": "x"},
    {"key": "acme/runs/run1/charts/x", "kind": "charts", "name": "../../escape"},
    {"key": "acme/runs/run1/charts/x", "kind": "charts", "name": "/etc/passwd"},
])
def test_a_destination_outside_out_is_refused(tmp_path, entry):
    with pytest.raises(BadInput, match="outside"):
        _download_artifacts(_store(), "acme", [entry], tmp_path / "out")
    assert not (tmp_path / "escape").exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_another_tenants_key_reads_as_gone_and_out_as_a_file_is_refused(tmp_path):
    entry = {"key": "globex/runs/run1/charts/secret.png", "kind": "charts", "name": "secret.png"}
    with pytest.raises(BadInput, match="gone"):
        _download_artifacts(_store(), "acme", [entry], tmp_path / "out")
    assert not (tmp_path / "out" / "charts" / "secret.png").exists()
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(BadInput, match="not a folder"):
        _download_artifacts(_store(), "acme", [], file)
