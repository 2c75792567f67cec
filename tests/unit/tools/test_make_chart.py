"""make_chart: a valid PNG of the asked size for each kind (read back from the IHDR chunk here, not with the tool's
helper), typed errors for bad arguments, the same bytes for the same arguments, the artifact key under the run's
tenant, and the Lambda handler through invoke_event."""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import zlib

import pytest

from stepcrew.models import ToolCall, ToolContext, ToolInvocation
from stepcrew.tools.artifacts import MemoryArtifactStore
from stepcrew.tools.base import invoke_event
from stepcrew.tools.make_chart import MakeChart
from stepcrew.wiring import FUNCTIONS_DIR

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 100  # the tool's documented dpi: figure inches = pixels / 100


def png_header(body: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, checking the signature and the chunk's CRC."""
    assert body[:8] == PNG_SIGNATURE
    length, ctype = struct.unpack(">I4s", body[8:16])
    assert ctype == b"IHDR" and length == 13
    data = body[16:16 + length]
    (crc,) = struct.unpack(">I", body[16 + length:20 + length])
    assert crc == zlib.crc32(ctype + data)
    width, height = struct.unpack(">II", data[:8])
    assert body[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the closing chunk
    return width, height


def invocation(arguments: dict, *, tenant: str = "acme", run_id: str = "run1", allow: bool = False) -> ToolInvocation:
    return ToolInvocation(context=ToolContext(run_id=run_id, subtask_id="chart", tenant=tenant,
                                              allow_side_effects=allow),
                          call=ToolCall(call_id="c1", name="make_chart", arguments=arguments))


SERIES = {"x": ["Adelie", "Chinstrap", "Gentoo"],
          "series": [{"label": "mass", "values": [3700.7, 3733.1, 5076.0]},
                     {"label": "flipper", "values": [190.0, 195.8, 217.2]}]}
CASES = {
    "bar": {"kind": "bar", **SERIES, "title": "Mean by species", "width_px": 640, "height_px": 400},
    "line": {"kind": "line", "x": [1, 2, 3, 4], "series": [{"values": [1.5, 2, 2.5, 4]}], "width_px": 555,
             "height_px": 333},
    "scatter": {"kind": "scatter", "x": [1.0, 2.5, 3.1], "series": [{"label": "a", "values": [3, 1, 2]}]},
    "histogram": {"kind": "histogram", "values": [1, 2, 2, 3, 3, 3, 4, 4, 5], "bins": 5, "width_px": 1600,
                  "height_px": 1200},
    "table": {"kind": "bar", "columns": ["species", "n", "mean_g"],
              "rows": [["Adelie", 152, 3700.7], ["Gentoo", 124, 5076.0]], "x_column": "species",
              "y_columns": ["mean_g"], "width_px": 321, "height_px": 241},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_is_a_png_of_the_asked_size_stored_under_the_run(case):
    args = {"name": f"chart-{case}", **CASES[case]}
    store = MakeChart(MemoryArtifactStore())
    artifacts = store._artifacts
    result = store.invoke(invocation(args))
    assert result.ok, result.error
    key = f"acme/runs/run1/charts/chart-{case}.png"
    body, content_type = artifacts.objects[key]
    assert content_type == "image/png"
    # expected size from the arguments (defaults 800 x 480) and the dpi: inches * dpi
    inches = (args.get("width_px", 800) / DPI, args.get("height_px", 480) / DPI)
    expected = (round(inches[0] * DPI), round(inches[1] * DPI))
    assert png_header(body) == expected
    content = result.content
    assert (content["width"], content["height"]) == expected
    assert content["key"] == key and content["bytes"] == len(body)
    assert content["sha256"] == hashlib.sha256(body).hexdigest()
    title = args.get("title") or f"chart-{case}"
    assert content["markdown"] == f"![{title}](artifact://charts/chart-{case}.png)"


def test_same_arguments_give_the_same_bytes_and_a_retry_overwrites_the_same_key():
    artifacts = MemoryArtifactStore()
    tool = MakeChart(artifacts)
    args = {"name": "same", **CASES["bar"], "title": "Dollars $5 and 50%"}  # a $ is text, not mathtext
    first = tool.invoke(invocation(args))
    body = artifacts.objects["acme/runs/run1/charts/same.png"][0]
    second = tool.invoke(invocation(args))
    assert first.ok and second.ok and first.content == second.content
    assert artifacts.objects["acme/runs/run1/charts/same.png"][0] == body
    assert list(artifacts.objects) == ["acme/runs/run1/charts/same.png"] and artifacts.puts == 2
    other = tool.invoke(invocation({**args, "title": "another"}))
    assert other.content["sha256"] != first.content["sha256"]


def test_charts_are_not_gated_by_side_effects_and_stay_under_their_tenant():
    artifacts = MemoryArtifactStore()
    tool = MakeChart(artifacts)
    for tenant, allow in (("acme", False), ("globex", True)):
        assert tool.invoke(invocation({"name": "c", **CASES["line"]}, tenant=tenant, allow=allow)).ok
    assert sorted(artifacts.objects) == ["acme/runs/run1/charts/c.png", "globex/runs/run1/charts/c.png"]


BAD = {
    "mismatched lengths": ({"kind": "line", "x": [1, 2, 3], "series": [{"values": [1, 2]}]},
                           "series 0 has 2 values for 3 x values"),
    "too many points": ({"kind": "line", "x": list(range(1001)), "series": [{"values": list(range(1001))}]},
                        "at most 1000"),
    "too many series": ({"kind": "line", "x": [1], "series": [{"values": [1]}] * 9}, "at most 8"),
    "width over the cap": ({**CASES["line"], "width_px": 1601}, "width_px"),
    "height under the cap": ({**CASES["line"], "height_px": 100}, "height_px"),
    "title too long": ({**CASES["line"], "title": "t" * 121}, "title"),
    "label too long": ({**CASES["line"], "x_label": "l" * 61}, "x_label"),
    "two data shapes": ({**CASES["line"], "values": [1, 2]}, "exactly one of"),
    "no data": ({"kind": "bar"}, "exactly one of"),
    "values for a bar": ({"kind": "bar", "values": [1, 2]}, "histogram"),
    "scatter of text": ({"kind": "scatter", "x": ["a", "b"], "series": [{"values": [1, 2]}]}, "numeric x"),
    "unknown kind": ({"kind": "pie", "values": [1]}, "kind"),
    "unknown column": ({**CASES["table"], "y_columns": ["nope"]}, "unknown column"),
    "text y cell": ({**CASES["table"], "y_columns": ["species"]}, "not a finite number"),
    "ragged row": ({**CASES["table"], "rows": [["Adelie", 1]]}, "row 0 has 2 cells"),
    "bad name": ({**CASES["line"], "name": "../etc"}, "name"),
    "unknown field": ({**CASES["line"], "colour": "red"}, "colour"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arguments_are_a_typed_error_and_write_nothing(case):
    arguments, fragment = BAD[case]
    artifacts = MemoryArtifactStore()
    result = MakeChart(artifacts).invoke(invocation({"name": "bad", **arguments}))
    assert not result.ok
    assert result.error.type == "InvalidArguments"
    assert fragment in result.error.message, result.error.message
    assert artifacts.objects == {}


def test_a_png_over_the_byte_cap_is_limit_exceeded(monkeypatch):
    from stepcrew.tools import make_chart

    monkeypatch.setattr(make_chart, "MAX_PNG_BYTES", 1000)
    artifacts = MemoryArtifactStore()
    result = MakeChart(artifacts).invoke(invocation({"name": "big", **CASES["bar"]}))
    assert not result.ok and result.error.type == "LimitExceeded" and "1000" in result.error.message
    assert artifacts.objects == {}


def test_the_lambda_handler_renders_and_puts_the_chart_in_s3(monkeypatch):
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("STEPCREW_STAGE", "test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stepcrew-test")
    monkeypatch.setenv("STEPCREW_ARTIFACTS_BUCKET", "stepcrew-artifacts")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("STEPCREW_TABLE_NAME", raising=False)  # the chart tool needs no table
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="stepcrew-artifacts")
        spec = importlib.util.spec_from_file_location("tool_make_chart_app", FUNCTIONS_DIR / "tool_make_chart" / "app.py")
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        event = invocation({"name": "by-species", **CASES["table"]}, tenant="acme", run_id="r7").model_dump(mode="json")
        out = invoke_event(app.TOOL, event)
        assert out["ok"], out
        body = s3.get_object(Bucket="stepcrew-artifacts", Key="acme/runs/r7/charts/by-species.png")["Body"].read()
        assert png_header(body) == (321, 241)
        assert out["content"]["sha256"] == hashlib.sha256(body).hexdigest()
        head = s3.head_object(Bucket="stepcrew-artifacts", Key="acme/runs/r7/charts/by-species.png")
        assert head["ContentType"] == "image/png"


def test_a_thousand_categories_render_within_the_caps():
    artifacts = MemoryArtifactStore()
    x = [f"item-{i}" for i in range(1000)]
    result = MakeChart(artifacts).invoke(invocation({"name": "many", "kind": "bar", "x": x,
                                                     "series": [{"values": [float(i % 17) for i in range(1000)]}]}))
    assert result.ok, result.error
    assert png_header(artifacts.objects["acme/runs/run1/charts/many.png"][0]) == (800, 480)
