"""``make_chart`` in a whole local run (the real run and agent ASL, the real tool Lambda handler, a scripted model, a
test crew whose writer may use it), then the CLI in other processes: `runs show` lists the chart and `runs artifacts`
downloads a valid PNG of the asked size; another tenant gets exit 2 for both."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from stepcrew.crew import load_crew, validate_crew
from stepcrew.engines.testing import ScriptedModel, call_tool, reply
from stepcrew.llm import registry
from stepcrew.local.runtime import LocalRuntime
from stepcrew.local.state import default_state_dir
from stepcrew.models import RunRequest, RunStatus
from stepcrew.service import create_run, run_result, start_run

pytestmark = pytest.mark.integration

PROVIDER = "scripted-chart"
ARGS = {"name": "mass", "kind": "bar", "title": "Mean body mass (g)", "columns": ["species", "mean_g"],
        "rows": [["Adelie", 3700.7], ["Chinstrap", 3733.1], ["Gentoo", 5076.0]], "x_column": "species",
        "y_columns": ["mean_g"], "width_px": 640, "height_px": 400}


@pytest.fixture(autouse=True)
def _unregister_scripted_provider():
    yield
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def _crew():
    crew = load_crew("default")
    writer = crew.worker("writer")
    assert "make_chart" not in writer.tools  # the default crew is unchanged
    writer = writer.model_copy(update={"tools": [*writer.tools, "make_chart"]})
    return validate_crew(crew.model_copy(update={"workers": [w if w.name != "writer" else writer
                                                             for w in crew.workers]}))


def _cli(home, *args):
    env = {**os.environ, "STEPCREW_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "stepcrew.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and body[12:16] == b"IHDR"
    return struct.unpack(">II", body[16:24])


def test_a_worker_charts_and_the_cli_lists_and_downloads_the_png(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("STEPCREW_HOME", str(home))
    plan = json.dumps({"rationale": "test plan", "subtasks": [
        {"id": "chart", "title": "Chart the masses", "instructions": "Draw a bar chart of the mean masses.",
         "depends_on": [], "expected_output": "the chart", "tools": ["make_chart"], "role": "writer"}]})
    scripted = ScriptedModel(by_purpose={
        "plan": [reply(plan)],
        "act": [call_tool("make_chart", ARGS, call_id="ch1"), reply("Drew mass.png.")],
        "synthesize": [reply("# Report\n![Mean body mass (g)](artifact://charts/mass.png)")],
        "review": [reply(json.dumps({"accuracy": 1, "completeness": 1, "relevance": 1, "feedback": "ok"}))]})
    registry.register(PROVIDER, lambda tier: scripted)
    request = RunRequest(goal="Chart the mean body mass by species", provider=PROVIDER, tenant="acme",
                         routing={"cache": False}, memory="off")  # no allow_side_effects: charts need none
    with LocalRuntime(fast_waits=True, state_dir=default_state_dir()) as rt:
        run = start_run(create_run(request, _crew(), rt.store), rt.store, rt)
        rt.wait(run.execution_arn, timeout_s=120)
        result = run_result(rt.store, run.run_id)
        (tool_result,) = [r for m in rt.store.get_messages(run.run_id, "chart") if m.role == "tool"
                          for r in m.tool_results]
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert tool_result.ok, tool_result.error
    key = f"acme/runs/{run.run_id}/charts/mass.png"
    assert tool_result.content["key"] == key
    assert tool_result.content["markdown"] == "![Mean body mass (g)](artifact://charts/mass.png)"

    shown = _cli(home, "runs", "show", run.run_id, "--tenant", "acme", "--json")
    assert shown.returncode == 0, shown.stderr
    (artifact,) = json.loads(shown.stdout)["artifacts"]
    assert artifact == {"key": key, "kind": "charts", "name": "mass.png", "bytes": tool_result.content["bytes"],
                        "content_type": "image/png"}
    text = _cli(home, "runs", "show", run.run_id, "--tenant", "acme")
    assert text.returncode == 0 and "mass.png" in text.stderr and "charts" in text.stderr

    out = tmp_path / "out" / "nested"
    got = _cli(home, "runs", "artifacts", run.run_id, "--out", str(out), "--tenant", "acme", "--json")
    assert got.returncode == 0, got.stderr
    (entry,) = json.loads(got.stdout)
    body = (out / "charts" / "mass.png").read_bytes()
    assert entry["path"] == str((out / "charts" / "mass.png").resolve()) and entry["bytes"] == len(body)
    assert _png_size(body) == (640, 400)

    for args in (("runs", "show", run.run_id, "--json"),  # the default tenant `local` is not acme
                 ("runs", "artifacts", run.run_id, "--out", str(tmp_path / "other"), "--tenant", "globex")):
        refused = _cli(home, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"no run {run.run_id!r}" in refused.stderr
    assert not (tmp_path / "other").exists()
