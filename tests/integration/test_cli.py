"""The CLI as a user runs it: new processes, the offline default, runs kept across processes, bad input.

Given a fresh STEPCREW_HOME, when `stepcrew demo --json` runs, then the run SUCCEEDED with parallel sub-tasks, tool
calls, a review round and numbers computed from the dataset; `runs show` in another process prints the same run;
bad input exits 2 with one line and writes nothing.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stepcrew.data import DEMO_DATASET

pytestmark = pytest.mark.integration


def cli_env(home: Path, env: dict | None = None) -> dict[str, str]:
    full_env = {**os.environ, "STEPCREW_HOME": str(home), **(env or {})}
    full_env.pop("STEPCREW_FAST_WAITS", None)  # the CLI as users run it
    return full_env


def stepcrew(home: Path, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stepcrew.cli", *args], env=cli_env(home, env), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stepcrew_home")


@pytest.fixture(scope="module")
def demo(home):
    return stepcrew(home, "demo", "--json")


def _independent_pairs(subtasks: list[dict]) -> list[tuple[str, str]]:
    deps = {s["id"]: set(s["depends_on"]) for s in subtasks}

    def ancestors(i: str) -> set[str]:
        out, todo = set(), list(deps[i])
        while todo:
            d = todo.pop()
            if d not in out:
                out.add(d)
                todo.extend(deps[d])
        return out

    ids = list(deps)
    return [(a, b) for n, a in enumerate(ids) for b in ids[n + 1:] if a not in ancestors(b) and b not in ancestors(a)]


def test_demo_runs_offline_and_prints_one_json_object(demo):
    assert demo.returncode == 0, demo.stderr[-2000:]
    result = json.loads(demo.stdout)  # exactly one JSON object: json.loads rejects trailing data
    assert set(result) >= {"run_id", "status", "engine", "plan", "subtasks", "review", "final_output", "usage"}
    assert result["status"] == "SUCCEEDED"
    assert result["engine"] == "rule-engine"
    assert _independent_pairs(result["plan"]["subtasks"]), "no two sub-tasks without a dependency between them"
    assert len(result["subtasks"]) >= 2
    assert all(s["tool_calls"] >= 1 and s["status"] == "SUCCEEDED" for s in result["subtasks"])
    rounds = result["review"]["rounds"]
    assert rounds and all(0.0 <= r["overall"] <= 1.0 for r in rounds)
    assert set(result["usage"]) == {"input_tokens", "output_tokens", "cost_usd", "cache_read_tokens",
                                    "cache_write_tokens", "cache_hits", "saved_tokens", "saved_cost_usd"}
    assert result["degradation_level"] == "full"  # the rule engine asked for: not a degradation
    assert "rule engine" in result["final_output"].lower()


def test_demo_report_holds_numbers_computed_from_the_dataset(demo):
    report = json.loads(demo.stdout)["final_output"]
    with open(DEMO_DATASET, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["body_mass_g"] not in ("", "NA")]
    for species in ("Gentoo", "Adelie"):
        mean = statistics.fmean(float(r["body_mass_g"]) for r in rows if r["species"] == species)
        assert f"{mean:.2f}" in report, f"mean body mass of {species} ({mean:.2f}) not in the report"


def test_progress_goes_to_stderr(demo):
    assert "plan:" in demo.stderr and "review round 1" in demo.stderr


def test_runs_show_prints_the_run_from_a_new_process(home, demo):
    run_id = json.loads(demo.stdout)["run_id"]
    shown = stepcrew(home, "runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    shown_json = json.loads(shown.stdout)
    assert shown_json.pop("artifacts") == []  # `runs show` adds what the run left (make_chart/export files)
    shown_json.pop("notifications", None)
    assert shown_json == json.loads(demo.stdout)
    listed = stepcrew(home, "runs", "list", "--json")
    assert run_id in [r["run_id"] for r in json.loads(listed.stdout)]
    human = stepcrew(home, "runs", "show", run_id)
    assert human.returncode == 0 and "Gentoo" in human.stdout


def test_runs_show_unknown_run(home):
    proc = stepcrew(home, "runs", "show", "doesnotexist")
    assert proc.returncode == 2
    assert "no run" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["run", ""], "goal"),
    (["run", "x" * 10_001], "goal"),
    (["run", "a goal", "--crew", "no_such_crew"], "crew"),
    (["run", "a goal", "--provider", "nosuch"], "unknown provider"),
    (["run", "a goal", "--data", "/no/such/file.csv"], "file.csv"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    proc = stepcrew(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0].lower(), proc.stderr
    assert not (tmp_path / "state" / "table.db").exists()


def test_malformed_crew_yaml_and_unreadable_dataset(tmp_path):
    crew = tmp_path / "crew.yaml"
    crew.write_text("name: broken\nplanner: [unclosed\n")
    proc = stepcrew(tmp_path, "run", "a goal", "--crew", str(crew))
    assert proc.returncode == 2 and "yaml" in proc.stderr.lower()
    folder = tmp_path / "data.csv"
    folder.mkdir()  # a path that exists but is not a readable file
    proc = stepcrew(tmp_path, "run", "a goal", "--data", str(folder))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "state" / "table.db").exists()


def test_a_provider_that_fails_marks_the_run_failed_with_the_reason(tmp_path):
    # The pytest-wide switch forbids real model calls in this child process too: the provider call fails as a
    # rejected key would, and the run must end FAILED with the reason recorded, exit 1.
    proc = stepcrew(tmp_path, "run", "Compute 2 + 2", "--provider", "anthropic", "--json",
                    env={"ANTHROPIC_API_KEY": "sk-test-not-a-real-key", "STEPCREW_ALLOW_MODEL_REQUESTS": "0"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "FAILED"
    assert result["error"]["code"] and "ModelRequestsForbiddenError" in json.dumps(result["error"])
    shown = stepcrew(tmp_path, "runs", "show", result["run_id"], "--json")
    assert json.loads(shown.stdout)["status"] == "FAILED"


def test_a_killed_run_is_saved_and_marked_failed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "stepcrew.cli", "demo"], env=cli_env(tmp_path),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    run_id = None
    watchdog = threading.Timer(120, proc.kill)  # a stalled child ends the read loop below (and fails the test)
    watchdog.start()
    try:
        for line in proc.stderr:  # wait until the run is executing
            if line.startswith("run ") and run_id is None:
                run_id = line.split()[1]
            if "run started" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, rest
    finally:
        watchdog.cancel()
        proc.kill() if proc.poll() is None else None
    assert run_id and "interrupted; the local run was marked FAILED" in rest
    shown = json.loads(stepcrew(tmp_path, "runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "FAILED"
    assert shown["error"]["code"] == "LocalRuntimeExited"
    assert all(s["status"] in ("SUCCEEDED", "FAILED") for s in shown["subtasks"])  # none left looking in flight


def test_budget_options_reach_the_run(tmp_path):
    from stepcrew.data import DEMO_GOAL

    # every rule-engine sub-task needs 2 model turns (tool calls, answer): a limit of 1 fails it
    proc = stepcrew(tmp_path, "run", DEMO_GOAL, "--data", str(DEMO_DATASET), "--max-turns", "1", "--json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "FAILED" and "MaxTurnsExceededError" in json.dumps(result["error"])
    bad = stepcrew(tmp_path, "run", "a goal", "--max-tokens", "0")
    assert bad.returncode == 2 and "budget.max_tokens" in bad.stderr
