"""The Tool port: typed errors, no leaked internals, the output cap, JSON-safe content, specs."""

import datetime as dt
import json
import logging
import uuid
from decimal import Decimal

from pydantic import Field

from stepcrew.models import TOOL_OUTPUT_MAX_BYTES
from stepcrew.tools.base import QueryError, Tool, ToolArgs, preview, to_jsonable


class Echo(Tool):
    """A test tool: returns ``payload`` copies of a word, or raises what ``fail`` names."""

    name = "echo"
    description = "test tool"

    class Args(ToolArgs):
        word: str = Field(min_length=1)
        copies: int = Field(default=1, ge=1)
        fail: str = ""

    def run(self, args, ctx):
        if args.fail == "typed":
            raise QueryError("Binder Error: column x not found")
        if args.fail == "bug":
            raise RuntimeError("secret connection string postgres://u:p@host")
        return {"words": [args.word] * args.copies, "when": dt.date(2024, 1, 2)}


def test_ok_content_is_json_safe(make_invocation):
    result = Echo().invoke(make_invocation("echo", {"word": "hi", "copies": 2}))
    assert result.ok and result.error is None
    assert result.content == {"words": ["hi", "hi"], "when": "2024-01-02"}
    assert (result.call_id, result.name) == ("c1", "echo")


def test_tool_failures_become_typed_errors(make_invocation):
    result = Echo().invoke(make_invocation("echo", {"word": "x", "fail": "typed"}))
    assert not result.ok and result.content is None
    assert (result.error.type, result.error.message) == ("QueryError", "Binder Error: column x not found")


def test_unexpected_exceptions_leak_only_their_class_name(make_invocation, caplog):
    with caplog.at_level(logging.INFO, logger="stepcrew.tools.base"):
        result = Echo().invoke(make_invocation("echo", {"word": "x", "fail": "bug"}))
    assert result.error.type == "ToolFailed"
    assert result.error.message == "echo failed with RuntimeError"
    error_logs = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error_logs and all("secret" not in r.getMessage() for r in caplog.records)
    assert error_logs[0].run_id == "run-test" and error_logs[0].call_id == "c1"


def test_invalid_arguments_list_every_problem(make_invocation):
    result = Echo().invoke(make_invocation("echo", {"copies": 0, "extra": 1}))
    assert result.error.type == "InvalidArguments"
    assert result.error.message.splitlines() == [
        "word: Field required",
        "copies: Input should be greater than or equal to 1",
        "extra: Extra inputs are not permitted",
    ]


def test_a_call_for_another_tool_is_refused(make_invocation):
    result = Echo().invoke(make_invocation("calculator", {"word": "x"}))
    assert result.error.type == "UnknownTool"
    assert "runs the tool 'echo', not 'calculator'" in result.error.message


def test_oversized_content_without_a_shrink_becomes_a_valid_json_preview(make_invocation):
    # Given content of ~50 KB
    result = Echo().invoke(make_invocation("echo", {"word": "penguin", "copies": 5000}))
    # Then
    assert result.ok and result.truncated
    text = json.dumps(result.model_dump(mode="json")["content"])
    assert len(text) <= TOOL_OUTPUT_MAX_BYTES
    assert result.content["preview"].startswith('{"words": ["penguin", "penguin"')
    assert "too large" in result.content["note"]


def test_preview_fits_even_with_escaped_characters():
    content = {"text": "é\"\\" * 10_000}
    out = preview(content, 1000)
    assert len(json.dumps(out)) <= 1000
    assert out["preview"].startswith('{"text": "é')


def test_to_jsonable_handles_database_values():
    value = {
        1: [Decimal("2.50"), Decimal("3"), Decimal("NaN"), float("inf"), float("nan")],
        "t": (dt.datetime(2024, 1, 2, 3, 4, 5), dt.time(1, 2), dt.timedelta(minutes=1)),
        "u": uuid.UUID(int=1), "b": b"\x01\xff", "s": {7},
    }
    assert to_jsonable(value) == {
        "1": [2.5, 3, None, None, None],
        "t": ["2024-01-02T03:04:05", "01:02:00", 60.0],
        "u": "00000000-0000-0000-0000-000000000001", "b": "01ff", "s": [7],
    }
    json.dumps(to_jsonable(value), allow_nan=False)


def test_spec_is_the_argument_schema():
    spec = Echo().spec()
    assert (spec.name, spec.description) == ("echo", "test tool")
    assert spec.parameters["required"] == ["word"]
    assert "additionalProperties" not in spec.parameters  # lean: Args (extra="forbid") still refuses extras
