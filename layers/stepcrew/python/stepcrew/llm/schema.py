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


#: Keywords a model does not need to call a tool right: bounds and formats that the tool's pydantic model (or the
#: reply's parser) enforces anyway, with a typed error the model reads (issue 11, "compact tool schemas"). Each is
#: billed as prompt tokens on every turn that offers the schema.
LEAN_DROPPED = frozenset({"minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "minimum",
                          "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "default", "format"})


def lean_schema(schema: Any) -> Any:
    """:func:`compact_schema` of ``schema``, then only what guides the call: ``type``, ``properties``,
    ``required``, ``items``, ``enum``, ``anyOf`` and field ``description`` s. Dropped: :data:`LEAN_DROPPED`,
    ``additionalProperties: false``, the models' own docstrings (a schema's top-level ``description``), and
    ``$defs`` (every ``$ref`` is inlined; a recursive reference is left as ``{"type": "object"}``).

    Validation is unchanged: arguments are validated by the tool's pydantic model, replies by stepcrew's parsers;
    the model sees a bound it broke in the typed error. The input is not changed."""
    compact = compact_schema(schema)
    defs = compact.get("$defs", {}) if isinstance(compact, dict) else {}

    def walk(node: Any, seen: tuple[str, ...], named: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        if named:
            return {name: walk(sub, seen) for name, sub in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.rsplit("/", 1)[1]
            if name in seen or name not in defs:
                return {"type": "object"}
            target = {k: v for k, v in defs[name].items() if k != "description"}
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**target, **extra}, seen + (name,))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in LEAN_DROPPED or key == "$defs" or (key == "additionalProperties" and value is False):
                continue
            if key in ("enum", "const"):
                out[key] = value
            else:
                out[key] = walk(value, seen, named=key == "properties")
        return out

    out = walk(compact, ())
    if isinstance(out, dict):
        out.pop("description", None)
    return out
