"""Compact JSON Schemas for the tool specs a model reads (issue 11, "Prompts": tool schemas without pydantic noise).

pydantic's ``model_json_schema()`` adds a ``title`` to the model and to every field ("Sql", "Max Rows", "Args"),
and spells an optional field as ``anyOf: [<type>, {"type": "null"}]`` with ``default: null``. A model reads every one
of those tokens on every turn that offers the tool. :func:`compact_schema` keeps what the model needs to call the
tool right:
- no ``title`` keyword anywhere (a property or definition *named* ``title`` keeps its name);
- an optional field whose default is null becomes its own type, not required (absent = the default); a field that
  may be null *and* has no null default keeps its ``anyOf``;
- everything else unchanged: ``type``, ``description``, ``required``, bounds, ``enum``, other defaults,
  ``additionalProperties``, ``$defs`` and ``$ref``.

Arguments are still validated by the tool's pydantic model (:meth:`stepcrew.tools.base.Tool.invoke`), which accepts
an explicit null for such a field too: the schema only guides the model.
"""

from __future__ import annotations

from typing import Any

#: Keywords whose value maps names to schemas (the names are data, not keywords).
_NAMED = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})
#: Keywords whose value is data (copied as is: a default may well hold a "title" key).
_DATA = frozenset({"default", "enum", "const", "examples"})
_NULL = {"type": "null"}


def compact_schema(schema: Any) -> Any:
    """A copy of the JSON Schema ``schema`` (a dict from ``model_json_schema()``) without titles and with optional
    null-default fields spelled as their type (see the module docstring). The input is not changed."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _NAMED and isinstance(value, dict):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        elif key in _DATA:
            out[key] = value
        else:
            out[key] = compact_schema(value)
    options = out.get("anyOf")
    if "default" in out and out["default"] is None and isinstance(options, list) and _NULL in options:
        rest = [option for option in options if option != _NULL]
        if len(rest) == 1 and isinstance(rest[0], dict):
            merged = {k: v for k, v in out.items() if k not in ("anyOf", "default")}
            return {**rest[0], **merged}
    return out
