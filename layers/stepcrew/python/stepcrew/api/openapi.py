"""The OpenAPI 3.1 document of the API, generated from the code (``app.get_openapi_json_schema()``).

The committed copy is ``docs/openapi.json``; ``tests/unit/api/test_openapi.py`` fails when it drifts from the code.
Regenerate it with::

    .venv/bin/python -m stepcrew.api.openapi --write

One adjustment to Powertools' output: with validation enabled, Powertools adds a "422 Validation Error" response
(its own ``HTTPValidationError`` body) to every operation, but this API answers validation errors with 400 and
:class:`~stepcrew.api.errors.ErrorResponse` (see :mod:`stepcrew.api.errors`); those generated 422 entries and their
then unused schemas (``HTTPValidationError``, ``ResponseValidationError``, ``ValidationError``) are removed. An
operation's own 422 (``POST /runs``: Idempotency-Key reused) is kept. And a 204 response has no content (RFC 9110
§15.3.5): the ``null`` body schema Powertools derives from ``Response[None]`` is removed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stepcrew.wiring import REPO_ROOT

DOC_PATH = REPO_ROOT / "docs" / "openapi.json"
REGENERATE = ".venv/bin/python -m stepcrew.api.openapi --write"
_POWERTOOLS_422_REF = "#/components/schemas/HTTPValidationError"


def _schema_app() -> Any:
    """An app with inert collaborators: routes and models are all the document needs."""
    from stepcrew.api.app import build_app
    from stepcrew.api.idempotency import MemoryPersistenceLayer
    from stepcrew.store.memory import MemoryRunStore

    return build_app(MemoryRunStore(), starter=None, tasks=None,  # type: ignore[arg-type]
                     idempotency=MemoryPersistenceLayer())


def _drop_generated_422(doc: dict[str, Any]) -> dict[str, Any]:
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            entry = responses.get("422")
            schema = (((entry or {}).get("content") or {}).get("application/json") or {}).get("schema") or {}
            if schema.get("$ref") == _POWERTOOLS_422_REF:
                del responses["422"]
            if "204" in responses:
                responses["204"].pop("content", None)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):  # Powertools' own
        others = {k: v for k, v in schemas.items() if k != name}
        if f"#/components/schemas/{name}" not in json.dumps([doc.get("paths", {}), others]):
            schemas.pop(name, None)
    return doc


def openapi_document(app: Any | None = None) -> str:
    """The document as JSON text (2-space indent, trailing newline), stable across runs."""
    app = app if app is not None else _schema_app()
    doc = _drop_generated_422(json.loads(app.get_openapi_json_schema()))
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``--write``: write :data:`DOC_PATH`; ``--check``: exit 1 if it differs; neither: print the document."""
    parser = argparse.ArgumentParser(prog="python -m stepcrew.api.openapi", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {DOC_PATH}")
    group.add_argument("--check", action="store_true", help=f"fail if {DOC_PATH} is not up to date")
    args = parser.parse_args(argv)
    text = openapi_document()
    if args.write:
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {DOC_PATH}", file=sys.stderr)
        return 0
    if args.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.is_file() else ""
        if current != text:
            print(f"{DOC_PATH} is out of date; regenerate: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
