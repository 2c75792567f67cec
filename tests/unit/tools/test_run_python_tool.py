"""run_python as a tool (stepcrew.tools.run_python) and its Lambda handler: validated arguments, the run's dataset
read-only (tenant-checked), typed errors the model reads, output within the tool cap."""

from __future__ import annotations

import importlib.util
import json
import statistics

import pytest
from stepcrew.data import DEMO_DATASET
from stepcrew.models import TOOL_OUTPUT_MAX_BYTES, ToolCall, ToolContext, ToolInvocation, ToolResult
from stepcrew.tools.python_sandbox import MAX_CODE_BYTES
from stepcrew.tools.run_python import RunPython
from stepcrew.wiring import FUNCTIONS_DIR


def _invoke(arguments, data_uri=None, tool=None, tenant=None) -> ToolResult:
    invocation = ToolInvocation(context=ToolContext(run_id="run-test", subtask_id="t1", data_uri=data_uri,
                                                    tenant=tenant),
                                call=ToolCall(call_id="c1", name="run_python", arguments=arguments))
    return (tool or RunPython()).invoke(invocation)


def _masses(rows) -> list[float]:
    return [float(r["body_mass_g"]) for r in rows if r["body_mass_g"] not in ("", "NA")]


def test_computes_on_the_run_dataset(penguins_uri, penguin_rows):
    # Given the penguins dataset, read independently with the csv module
    masses = _masses(penguin_rows)
    code = ("import csv, statistics\nwith open(DATASET_PATH, newline='') as f:\n"
            "    v = [float(r['body_mass_g']) for r in csv.DictReader(f) if r['body_mass_g'] not in ('', 'NA')]\n"
            "result = {'n': len(v), 'mean': statistics.mean(v), 'stdev': statistics.stdev(v)}\nprint('done')")
    # When
    out = _invoke({"code": code, "timeout_s": 5}, penguins_uri)
    # Then
    assert out.ok, out.error
    assert out.content == {"stdout": "done\n", "stdout_truncated": False,
                           "result": {"n": len(masses), "mean": pytest.approx(statistics.fmean(masses)),
                                      "stdev": pytest.approx(statistics.stdev(masses))}}
    assert out.truncated is False


def test_df_is_the_dataset_as_a_dataframe(penguins_uri, penguin_rows):
    pytest.importorskip("pandas")
    masses = _masses(penguin_rows)
    out = _invoke({"code": "result = [int(df.shape[0]), float(df['body_mass_g'].mean())]", "timeout_s": 10},
                  penguins_uri)
    assert out.ok, out.error
    assert out.content["result"] == [len(penguin_rows), pytest.approx(sum(masses) / len(masses))]


def test_without_a_dataset_the_path_is_none():
    out = _invoke({"code": "result = DATASET_PATH"})
    assert out.ok and out.content["result"] is None


def test_code_over_the_byte_cap_is_refused_before_the_dataset_is_read():
    # Given a resolver that records every dataset read
    reads = []
    tool = RunPython(resolve=lambda uri, tenant: reads.append(uri) or DEMO_DATASET)
    # When the code is one byte over the cap (in bytes: multi-byte characters count as their UTF-8 length)
    out = _invoke({"code": "#" + "é" * (MAX_CODE_BYTES // 2)}, "file:///data.csv", tool)
    # Then
    assert not out.ok
    assert out.error.type == "CodeTooLarge"
    assert f"{MAX_CODE_BYTES}-byte limit" in out.error.message
    assert reads == []


@pytest.mark.parametrize(("arguments", "fragment"), [
    ({"code": ""}, "code:"),
    ({"code": "print(1)", "timeout_s": 0}, "timeout_s:"),
    ({"code": "print(1)", "timeout_s": 3600}, "timeout_s:"),
    ({"code": "print(1)", "shell": True}, "shell:"),
    ({}, "code:"),
])
def test_bad_arguments_are_invalid_arguments(arguments, fragment):
    out = _invoke(arguments)
    assert out.error.type == "InvalidArguments"
    assert fragment in out.error.message


@pytest.mark.parametrize(("code", "kind"), [
    ("import socket\nsocket.getaddrinfo('example.com', 443)", "SandboxForbidden"),
    ("open('/proc/self/environ').read()", "SandboxForbidden"),
    ("1 / 0", "SandboxCodeError"),
    ("x = bytearray(10**10)", "SandboxMemoryLimit"),
])
def test_sandbox_failures_are_typed_tool_errors(code, kind):
    out = _invoke({"code": code, "timeout_s": 2})
    assert not out.ok
    assert out.error.type == kind
    assert "\n" not in out.error.message and "Traceback" not in out.error.message


def test_the_wall_time_is_the_timeout_argument():
    out = _invoke({"code": "import time\ntime.sleep(60)", "timeout_s": 1})
    assert out.error.type == "SandboxTimeout"
    assert "1 s wall-time limit" in out.error.message


def test_another_tenants_dataset_is_not_read():
    out = _invoke({"code": "result = open(DATASET_PATH).read()"}, "s3://stepcrew-data/other-tenant/x.csv",
                  tenant="acme")
    assert out.error.type == "DatasetError"
    assert "not found or not readable" in out.error.message


def test_a_missing_dataset_is_a_dataset_error(tmp_path):
    out = _invoke({"code": "print(1)"}, (tmp_path / "missing.csv").as_uri())
    assert out.error.type == "DatasetError"


def test_output_stays_within_the_tool_cap():
    out = _invoke({"code": "print('y' * 100000)\nresult = ['z' * 2000]"})
    assert out.ok
    assert out.content["stdout_truncated"] is True
    assert len(json.dumps(out.content)) <= TOOL_OUTPUT_MAX_BYTES


def test_calls_side_by_side_each_get_their_own_answer():
    # The local runtime runs a turn's tool calls in threads: each child is reaped by its own pid
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: _invoke({"code": f"result = {i} * {i}"}), range(8)))
    assert [o.content["result"] for o in outs] == [i * i for i in range(8)]


def test_the_spec_shows_code_and_timeout():
    spec = RunPython().spec()
    assert spec.name == "run_python"
    assert set(spec.parameters["properties"]) == {"code", "timeout_s"}
    assert spec.parameters["required"] == ["code"]


def test_the_lambda_handler_runs_the_tool(lambda_context, penguins_uri, penguin_rows):
    spec = importlib.util.spec_from_file_location("handler_tool_run_python", FUNCTIONS_DIR / "tool_run_python" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = {"context": {"run_id": "run-test", "subtask_id": "t1", "data_uri": penguins_uri},
             "call": {"call_id": "c1", "name": "run_python",
                      "arguments": {"code": "result = sum(1 for _ in open(DATASET_PATH)) - 1"}}}
    out = ToolResult.model_validate(module.handler(event, lambda_context))
    assert out.ok, out.error
    assert out.content["result"] == len(penguin_rows)


# ------------------------------------------------------------- deployed: no dataset (STEPCREW_PYTHON_DATASET=off)
def _no_reads(reads: list) -> RunPython:
    """A tool with the dataset off whose resolver records any dataset read."""
    return RunPython(dataset="off", resolve=lambda uri, tenant: reads.append(uri) or DEMO_DATASET)


@pytest.mark.parametrize("code", ["result = open(DATASET_PATH).read(10)",
                                  "result = int(df['body_mass_g'].count())",
                                  "def f():\n    return DATASET_PATH\nresult = f()"])
def test_with_the_dataset_off_code_reading_it_is_dataset_unavailable_and_nothing_is_read(penguins_uri, code):
    reads = []
    out = _invoke({"code": code}, penguins_uri, tool=_no_reads(reads))
    assert not out.ok and out.error.type == "DatasetUnavailable"
    assert "query_dataset" in out.error.message and "\n" not in out.error.message
    assert reads == []


def test_with_the_dataset_off_other_code_runs_without_it(penguins_uri):
    reads = []
    values = [3700.7, 3733.1, 5076.0]
    code = f"import statistics\ndf = {values!r}\nresult = statistics.pstdev(df)"  # its own df: not the dataset
    out = _invoke({"code": code}, penguins_uri, tool=_no_reads(reads))
    assert out.ok, out.error
    assert out.content["result"] == pytest.approx(statistics.pstdev(values))
    assert reads == []


def test_with_the_dataset_off_and_no_run_dataset_dataset_path_is_none():
    out = _invoke({"code": "result = DATASET_PATH is None"}, None, tool=RunPython(dataset="off"))
    assert out.ok and out.content["result"] is True


def test_the_dataset_mode_comes_from_the_environment_and_is_validated(monkeypatch):
    monkeypatch.delenv("STEPCREW_PYTHON_DATASET", raising=False)
    assert RunPython().dataset == "on"
    monkeypatch.setenv("STEPCREW_PYTHON_DATASET", " OFF ")
    assert RunPython().dataset == "off"
    monkeypatch.setenv("STEPCREW_PYTHON_DATASET", "s3")
    with pytest.raises(ValueError, match="STEPCREW_PYTHON_DATASET='s3'"):
        RunPython()


def test_the_deployed_handler_answers_dataset_unavailable(monkeypatch, lambda_context, penguins_uri):
    # Given the environment the CDK stack gives the function (infra/stepcrew_infra/functions.py)
    monkeypatch.setenv("STEPCREW_PYTHON_DATASET", "off")
    spec = importlib.util.spec_from_file_location("handler_tool_run_python_off",
                                                  FUNCTIONS_DIR / "tool_run_python" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = {"context": {"run_id": "run-test", "subtask_id": "t1", "data_uri": penguins_uri},
             "call": {"call_id": "c1", "name": "run_python", "arguments": {"code": "print(open(DATASET_PATH).read())"}}}
    out = ToolResult.model_validate(module.handler(event, lambda_context))
    assert not out.ok and out.error.type == "DatasetUnavailable"
    event["call"]["arguments"] = {"code": "result = sum(x * x for x in range(10))"}
    out = ToolResult.model_validate(module.handler(event, lambda_context))
    assert out.ok and out.content["result"] == sum(x * x for x in range(10))


def test_the_sample_event_runs_on_the_deployed_handler(monkeypatch, lambda_context):
    # events/tool_run_python.json: figures in the code, no dataset read (what a deployed stage can run)
    monkeypatch.setenv("STEPCREW_PYTHON_DATASET", "off")
    spec = importlib.util.spec_from_file_location("handler_tool_run_python_sample",
                                                  FUNCTIONS_DIR / "tool_run_python" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = json.loads((FUNCTIONS_DIR.parent / "events" / "tool_run_python.json").read_text())
    out = ToolResult.model_validate(module.handler(event, lambda_context))
    assert out.ok, out.error
    means = [3700.7, 3733.1, 5076.0]
    assert out.content["result"] == {"spread_g": round(max(means) - min(means), 1),
                                     "stdev_g": round(statistics.stdev(means), 1)}
