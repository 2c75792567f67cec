"""Each tool Lambda handler, called with its sample event from events/ (S3 served by moto)."""

import importlib.util
import json
import sys

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from stepcrew.data import DEMO_DATASET
from stepcrew.models import ToolInvocation, ToolResult
from stepcrew.wiring import FUNCTIONS_DIR, REPO_ROOT, TOOL_FUNCTIONS

EVENTS = REPO_ROOT / "events"


def _handler(function: str):
    spec = importlib.util.spec_from_file_location(f"handler_{function}", FUNCTIONS_DIR / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def _event(function: str) -> dict:
    return json.loads((EVENTS / f"{function}.json").read_text())


@pytest.fixture
def demo_bucket():
    """The bucket and key the sample events name, holding the penguins CSV."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="stepcrew-demo-data")
        s3.upload_file(str(DEMO_DATASET), "stepcrew-demo-data", "datasets/penguins.csv")
        yield


@pytest.mark.parametrize("function", sorted(TOOL_FUNCTIONS.values()))
def test_sample_events_are_tool_invocations_for_their_tool(function):
    invocation = ToolInvocation.model_validate(_event(function))
    assert TOOL_FUNCTIONS[invocation.call.name] == function
    assert invocation.context.data_uri == "s3://stepcrew-demo-data/datasets/penguins.csv"


@pytest.mark.usefixtures("demo_bucket")
def test_calculator_handler(lambda_context):
    out = _handler("tool_calculator")(_event("tool_calculator"), lambda_context)
    result = ToolResult.model_validate(out)
    assert result.ok and result.call_id == "toolu_01A8cFq3mX2"
    assert result.content["value"] == pytest.approx(37.1632, abs=1e-4)


@pytest.mark.usefixtures("demo_bucket")
def test_describe_dataset_handler(lambda_context):
    out = _handler("tool_describe_dataset")(_event("tool_describe_dataset"), lambda_context)
    result = ToolResult.model_validate(out)
    assert result.ok
    assert result.content["dataset"] == "penguins.csv" and result.content["rows"] == 344
    assert [c["name"] for c in result.content["columns"]] == ["species", "body_mass_g", "flipper_length_mm"]
    assert result.content["columns"][1]["mean"] == 4201.7544


@pytest.mark.usefixtures("demo_bucket")
def test_query_dataset_handler(lambda_context):
    out = _handler("tool_query_dataset")(_event("tool_query_dataset"), lambda_context)
    result = ToolResult.model_validate(out)
    assert result.ok
    assert result.content == {"columns": ["species", "n", "mean_body_mass_g"],
                              "rows": [["Gentoo", 124, 5076.0], ["Chinstrap", 68, 3733.1], ["Adelie", 152, 3700.7]],
                              "row_count": 3, "truncated": False}


@pytest.mark.usefixtures("demo_bucket")
def test_write_section_handler(lambda_context):
    out = _handler("tool_write_section")(_event("tool_write_section"), lambda_context)
    result = ToolResult.model_validate(out)
    assert result.ok
    assert result.content["markdown"].startswith("## Body mass by species\n\nGentoo penguins are the heaviest")
    assert "| Gentoo | 124 | 5076 |" in result.content["markdown"]


def test_handler_output_is_plain_json(lambda_context):
    out = _handler("tool_calculator")(_event("tool_calculator"), lambda_context)
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("event", [{}, {"call": {"call_id": "c", "name": "calculator"}},
                                   {"context": {"run_id": "r", "subtask_id": "s"}, "call": {"name": "calculator"}}])
def test_a_malformed_event_raises_validation_error(lambda_context, event):
    with pytest.raises(ValidationError):
        _handler("tool_calculator")(event, lambda_context)


def test_calculator_handler_does_not_load_duckdb_or_boto3():
    code = ("import importlib.util, sys; from stepcrew.wiring import FUNCTIONS_DIR as F; "
            "s = importlib.util.spec_from_file_location('h', F / 'tool_calculator' / 'app.py'); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print('duckdb' in sys.modules, 'boto3' in sys.modules)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
