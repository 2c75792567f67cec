"""The packaged ``charts`` crew played offline by the rule engine, through the CLI in other processes: the demo goal
on the demo dataset gets a ``chart`` sub-task (make_chart, after ``query``) whose bar chart of the per-species mean
body mass is stored as a run artifact; the report references it, `runs show --json` lists it and `runs artifacts`
downloads a PNG of the size the call asked for. The default crew's plan has no chart sub-task and its report no
chart reference."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys

import pytest

from stepcrew.data import DEMO_DATASET, DEMO_GOAL
from stepcrew.local.runtime import LocalRuntime
from stepcrew.local.state import default_state_dir

pytestmark = pytest.mark.integration

_PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "STEPCREW_PROVIDER", "STEPCREW_FALLBACK_CHAIN")


def _cli(home, *args):
    env = {k: v for k, v in os.environ.items() if k not in _PROVIDER_KEYS}
    env["STEPCREW_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "stepcrew.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _run(home, crew):
    done = _cli(home, "run", DEMO_GOAL, "--data", str(DEMO_DATASET), "--crew", crew, "--provider", "rule", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and body[12:16] == b"IHDR"
    return struct.unpack(">II", body[16:24])


def _mean_mass_by_species() -> dict[str, float]:
    """Independent of the engine: the mean body mass per species straight from the CSV (missing values skipped)."""
    sums: dict[str, list[float]] = {}
    with DEMO_DATASET.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["species"] and row["body_mass_g"] not in ("", "NA"):
                sums.setdefault(row["species"], []).append(float(row["body_mass_g"]))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def test_the_charts_crew_draws_a_chart_that_the_report_references_and_the_cli_downloads(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("STEPCREW_HOME", str(home))
    result = _run(home, "charts")
    run_id = result["run_id"]
    assert result["status"] == "SUCCEEDED", result["error"]
    assert result["engine"] == "rule-engine"
    plan = {s["id"]: s for s in result["plan"]["subtasks"]}
    assert plan["chart"]["depends_on"] == ["query"]
    assert {s["id"]: s["status"] for s in result["subtasks"]}["chart"] == "SUCCEEDED"
    assert result["review"]["rounds"][-1]["passed"] is True  # the chart line costs the fact-check nothing

    with LocalRuntime(state_dir=default_state_dir(), store_only=True) as rt:
        messages = rt.store.get_messages(run_id, "chart")
    calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
    outcomes = [r for m in messages if m.role == "tool" for r in m.tool_results]
    assert [c.name for c in calls] == ["make_chart"]
    (outcome,) = outcomes
    assert outcome.ok, outcome.error
    args = calls[0].arguments
    assert args["kind"] == "bar" and args["x_column"] == "species"
    expected = _mean_mass_by_species()
    drawn = {r[0]: r[1] for r in args["rows"]}
    assert sorted(drawn) == sorted(expected)
    for species, mean in expected.items():
        assert drawn[species] == pytest.approx(mean, rel=1e-9)

    name = f"{args['name']}.png"
    markdown = outcome.content["markdown"]
    assert markdown == f"![{args['title']}](artifact://charts/{name})"
    report = result["final_output"]
    assert "artifact://charts/" in report and markdown in report

    shown = _cli(home, "runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    (artifact,) = json.loads(shown.stdout)["artifacts"]
    assert artifact["kind"] == "charts" and artifact["name"] == name
    assert artifact["key"] == outcome.content["key"] and artifact["content_type"] == "image/png"

    out = tmp_path / "out"
    got = _cli(home, "runs", "artifacts", run_id, "--out", str(out), "--json")
    assert got.returncode == 0, got.stderr
    body = (out / "charts" / name).read_bytes()
    assert len(body) == artifact["bytes"]
    assert _png_size(body) == (args["width_px"], args["height_px"])


def test_the_default_crew_gets_no_chart(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("STEPCREW_HOME", str(home))
    result = _run(home, "default")
    assert result["status"] == "SUCCEEDED", result["error"]
    assert [s["id"] for s in result["plan"]["subtasks"]] == ["query", "coverage", "compute"]
    assert "artifact://" not in result["final_output"] and "## Chart" not in result["final_output"]
    shown = _cli(home, "runs", "show", result["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["artifacts"] == []
