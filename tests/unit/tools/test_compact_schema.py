"""Tool specs carry compact JSON Schemas (stepcrew.llm.schema): no titles, optional null-default fields as their
own type; names, requirements, bounds and data kept. Expected shapes are written out by hand below."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from stepcrew.tools.registry import get_tool, known_tools
from stepcrew.llm.schema import LEAN_DROPPED, compact_schema, lean_schema


def _keywords(node, named=False):
    """Every schema keyword used in ``node`` (property and definition names excluded)."""
    found = set()
    if isinstance(node, list):
        for item in node:
            found |= _keywords(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if named:
                found |= _keywords(value)
                continue
            found.add(key)
            if key in ("default", "enum", "const", "examples"):
                continue
            found |= _keywords(value, named=key in ("properties", "$defs"))
    return found


class Inner(BaseModel):
    """Inner docstring."""

    title: str


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, description="a field named title")
    note: str | None = Field(default=None, max_length=9, description="optional")
    maybe: int | None = Field(description="may be null, no default")
    mode: Literal["a", "b"] = "a"
    meta: dict = Field(default={"title": "kept as data"})
    inner: Inner | None = None


def test_compact_schema_by_hand():
    assert compact_schema(Sample.model_json_schema()) == {
        "$defs": {"Inner": {"description": "Inner docstring.", "properties": {"title": {"type": "string"}},
                            "required": ["title"], "type": "object"}},
        "additionalProperties": False,
        "properties": {
            "title": {"description": "a field named title", "minLength": 1, "type": "string"},
            "note": {"type": "string", "maxLength": 9, "description": "optional"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "may be null, no default"},
            "mode": {"default": "a", "enum": ["a", "b"], "type": "string"},
            "meta": {"additionalProperties": True, "default": {"title": "kept as data"}, "type": "object"},
            "inner": {"$ref": "#/$defs/Inner"},
        },
        "required": ["title", "maybe"],
        "type": "object",
    }


def test_every_tool_spec_is_compact_and_keeps_its_contract():
    for name in sorted(known_tools()):
        tool = get_tool(name)
        full, compact = tool.Args.model_json_schema(), tool.spec().parameters
        assert "title" not in _keywords(compact), name
        assert compact.get("required") == full.get("required"), name
        assert set(compact["properties"]) == set(full["properties"]), name
        assert not _keywords(compact) & (LEAN_DROPPED | {"$defs", "$ref"}), name  # bounds live in Args only
        assert len(json.dumps(compact)) < len(json.dumps(full)), name


def test_lean_schema_inlines_definitions_and_drops_bounds_but_args_still_validate():
    assert lean_schema(Sample.model_json_schema()) == {
        "properties": {
            "title": {"description": "a field named title", "type": "string"},
            "note": {"type": "string", "description": "optional"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "may be null, no default"},
            "mode": {"enum": ["a", "b"], "type": "string"},
            "meta": {"additionalProperties": True, "type": "object"},
            "inner": {"properties": {"title": {"type": "string"}}, "required": ["title"], "type": "object"},
        },
        "required": ["title", "maybe"],
        "type": "object",
    }
    from stepcrew.models import ToolCall, ToolContext, ToolInvocation

    tool = get_tool("calculator")
    ctx = ToolContext(run_id="r", tenant="t", subtask_id="s")
    for bad in ({"expression": "1+1", "extra": 1}, {"expression": ""}, {"expression": "1+" * 400 + "1"}):
        result = tool.invoke(ToolInvocation(call=ToolCall(call_id="c", name="calculator", arguments=bad),
                                            context=ctx))
        assert result.ok is False and result.error.type == "InvalidArguments", bad


def test_the_input_schema_is_not_changed():
    full = Sample.model_json_schema()
    before = json.dumps(full, sort_keys=True)
    compact_schema(full)
    assert json.dumps(full, sort_keys=True) == before
