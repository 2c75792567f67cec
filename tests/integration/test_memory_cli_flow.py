"""The issue's done-when through the CLI: a fact added with `stepcrew memory add` (its own process) reaches the
prompts of that tenant's next `stepcrew run` and of no other tenant's; a second run of a similar goal shows the
recalled episode in `runs show`; `--no-memory` and a user of another tenant behave as documented.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stepcrew.engines.testing import ScriptedModel, call_tool, reply
from stepcrew.llm import registry

from test_cli import cli_env

pytestmark = pytest.mark.integration

PROVIDER = "scripted-memory-cli"
PLAN = json.dumps({"subtasks": [{"id": "calc", "title": "Compute", "instructions": "Compute 6 * 7.",
                                 "tools": ["calculator"], "role": "data_analyst"}]})
HIGH = json.dumps({"accuracy": 0.95, "completeness": 0.95, "relevance": 0.95, "feedback": "good"})


def new_model() -> ScriptedModel:
    return ScriptedModel(by_purpose={"plan": [reply(PLAN)],
                                     "act": [call_tool("calculator", {"expression": "6 * 7"}), reply("42")],
                                     "synthesize": [reply("# Report\n6 * 7 = 42")],
                                     "review": [reply(HIGH)], "remember": [reply('{"facts": []}')]})


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)


def run_cli(capfd, model: ScriptedModel, *args: str) -> tuple[int, str]:
    from stepcrew.cli import app

    if PROVIDER in registry.known_providers():
        registry.unregister(PROVIDER)
    registry.register(PROVIDER, lambda tier: model)
    capfd.readouterr()
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    out, _ = capfd.readouterr()
    return result.exit_code, out + result.stdout


def plan_prompt(model: ScriptedModel) -> str:
    return "\n".join(m.content for m in model.requests_for("plan")[0].messages)


def test_a_fact_added_by_the_cli_reaches_its_tenants_next_run_only(home, capfd):
    added = subprocess.run([sys.executable, "-m", "stepcrew.cli", "memory", "add", "--tenant", "acme",
                            "report currency EUR"], env=cli_env(home),
                           capture_output=True, text=True, check=False)
    assert added.returncode == 0, added.stderr

    mine = new_model()
    code, out = run_cli(capfd, mine, "run", "Compute 6 times 7 boxes", "--provider", PROVIDER, "--tenant", "acme",
                        "--json")
    assert code == 0, out
    first = json.loads(out.strip().splitlines()[-1])
    assert "report currency EUR" in plan_prompt(mine)
    assert [f["text"] for f in first["memory"]["facts"]] == ["report currency EUR"]

    theirs = new_model()
    code, out = run_cli(capfd, theirs, "run", "Compute 6 times 7 boxes", "--provider", PROVIDER, "--tenant", "globex",
                        "--json")
    assert code == 0, out
    assert "report currency" not in plan_prompt(theirs) and first["run_id"] not in plan_prompt(theirs)

    again = new_model()
    code, out = run_cli(capfd, again, "run", "Compute 6 times 7 crates", "--provider", PROVIDER, "--tenant", "acme",
                        "--json")
    assert code == 0, out
    second = json.loads(out.strip().splitlines()[-1])
    assert f"run {first['run_id']}" in plan_prompt(again)
    shown = subprocess.run([sys.executable, "-m", "stepcrew.cli", "runs", "show", second["run_id"], "--tenant",
                            "acme", "--json"], env=cli_env(home), capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert first["run_id"] in [e["run_id"] for e in json.loads(shown.stdout)["memory"]["episodes"]]


def test_no_memory_and_a_user_of_another_tenant(home, capfd):
    model = new_model()
    code, out = run_cli(capfd, model, "run", "Compute 6 times 7", "--provider", PROVIDER, "--tenant", "acme",
                        "--no-memory", "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["memory"] is None
    listed = subprocess.run([sys.executable, "-m", "stepcrew.cli", "memory", "list", "--tenant", "acme", "--json"],
                            env=cli_env(home), capture_output=True, text=True, check=False)
    assert json.loads(listed.stdout)["episodes"] == []  # the opted-out run left nothing
    code, _ = run_cli(capfd, new_model(), "run", "Compute 6 times 7", "--provider", PROVIDER, "--tenant", "acme",
                      "--user", "globex:ann")
    assert code == 2
