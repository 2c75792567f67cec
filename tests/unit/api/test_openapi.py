"""docs/openapi.json is generated from the code and must not drift from it."""

from __future__ import annotations

import json

from stepcrew.api.openapi import DOC_PATH, REGENERATE, main, openapi_document


def test_committed_openapi_document_matches_the_code():
    committed = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.is_file() else "<missing>"
    assert committed == openapi_document(), (
        f"{DOC_PATH} is out of date with stepcrew.api (routes or models changed). Regenerate it with:\n"
        f"    {REGENERATE}")


def test_the_document_describes_every_route_and_the_error_contract():
    doc = json.loads(openapi_document())
    routes = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert routes == {("POST", "/runs"), ("GET", "/runs"), ("GET", "/runs/{run_id}"), ("GET", "/runs/{run_id}/events"),
                      ("POST", "/runs/{run_id}/approval"), ("POST", "/runs/{run_id}/review"),
                      ("POST", "/datasets"), ("GET", "/health"), ("GET", "/memory"), ("POST", "/memory"),
                      ("DELETE", "/memory"), ("DELETE", "/memory/{memory_id}")}
    post = doc["paths"]["/runs"]["post"]
    assert post["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunAccepted"}
    assert post["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"}
    assert "422" in post["responses"]  # Idempotency-Key reused
    assert "422" not in doc["paths"]["/runs"]["get"]["responses"]  # Powertools' generic 422 is removed
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    new_run = doc["components"]["schemas"]["NewRun"]
    assert "tenant" not in new_run["properties"] and new_run["required"] == ["goal"]
    assert any(p["name"].lower() == "idempotency-key" and p["in"] == "header" and not p["required"]
               for p in post["parameters"])
    assert "security" not in doc["paths"]["/health"]["get"]
    assert post["security"] == [{"jwt": []}]


def test_the_check_command_fails_on_drift(tmp_path, monkeypatch, capsys):
    import stepcrew.api.openapi as oa

    monkeypatch.setattr(oa, "DOC_PATH", tmp_path / "openapi.json")
    (tmp_path / "openapi.json").write_text("{}\n")
    assert main(["--check"]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main(["--write"]) == 0 and main(["--check"]) == 0
