"""Tenant isolation of the CLI's paths on the local runtime: ``stepcrew runs list/show/review/approve`` and
``stepcrew run --data-uri``. The CLI's own tenant is ``local`` (README); the runs of tenant ``acme`` are those a
``stepcrew dev`` user started in the same ``$STEPCREW_HOME``.

Given a STEPCREW_HOME holding acme's runs (a report handed off for review, a plan waiting for approval) and one of
``local``'s, when the CLI reads or answers acme's runs, then it should get the answer a missing run gets.

``runs show`` and ``runs review`` act as the CLI's tenant (``local``, or ``--tenant``) and answer another tenant's
run like a missing one. The CLI reads the state folder (or, with --aws, the table) with the operator's own access, so
``--tenant`` is the operator's choice of tenant, not a boundary.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from stepcrew.crew import load_crew
from stepcrew.data import DEMO_DATASET
from stepcrew.local.runtime import LOCAL_DATA_BUCKET, LocalRuntime
from stepcrew.models import RunRequest, RunStatus, utcnow
from stepcrew.service import create_run
from stepcrew.tools import datasets
from test_cli_outcomes import run_cli

pytestmark = pytest.mark.integration

SECRET = "acme-secret-goal 5e1b"
REPORT = "# acme report\nrevenue 4242 (acme-only figure)"
MISSING = "0123456789abcdef0123456789abcdef"


class Leak(AssertionError):
    """The CLI told another tenant's run apart from a missing one, or showed or changed it."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Leak(message)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path / "home"))
    datasets.reset_caches()
    yield tmp_path / "home"
    datasets.reset_caches()


@pytest.fixture
def kept(home) -> dict[str, str]:
    """acme's runs (NEEDS_REVIEW with a report, WAITING_APPROVAL) and a run of the CLI's tenant, kept in $STEPCREW_HOME."""
    crew = load_crew("default")
    with LocalRuntime(state_dir=home / "state", store_only=True) as rt:
        st = rt.store
        review = create_run(RunRequest(goal=f"{SECRET} review", tenant="acme"), crew, st)
        st.put_report(review.run_id, REPORT)
        st.update_run(review.run_id, {"status": RunStatus.NEEDS_REVIEW, "approval_token": "acme-token",
                                      "review_deadline": utcnow() + timedelta(hours=1)})
        waiting = create_run(RunRequest(goal=f"{SECRET} approval", tenant="acme", require_approval=True), crew, st)
        st.update_run(waiting.run_id, {"status": RunStatus.WAITING_APPROVAL, "approval_token": "acme-token-2"})
        mine = create_run(RunRequest(goal="local goal", tenant="local"), crew, st)
    return {"review": review.run_id, "waiting": waiting.run_id, "local": mine.run_id}


def status_of(home: Path, run_id: str) -> RunStatus:
    with LocalRuntime(state_dir=home / "state", read_only=True) as rt:
        return rt.store.get_run(run_id).status


def without(text: str, run_id: str) -> str:
    return text.replace(run_id, "<id>")


def test_runs_list_shows_only_the_cli_tenants_runs(kept, capfd):
    code, out, _ = run_cli(capfd, "runs", "list", "--json")
    assert code == 0
    listed = json.loads(out.strip().splitlines()[-1])
    check([r["run_id"] for r in listed] == [kept["local"]], f"runs list: {listed}")
    check(SECRET not in out, "acme's goal in `runs list`")


def test_runs_tenant_option_is_the_operators_choice_of_tenant(kept, capfd):
    # the CLI is an operator's tool (the state folder, or the table with --aws, read with the operator's access):
    # `--tenant` says which tenant it acts as, and then it sees that tenant's runs only
    code, out, _ = run_cli(capfd, "runs", "list", "--tenant", "acme", "--json")
    assert code == 0
    listed = [r["run_id"] for r in json.loads(out.strip().splitlines()[-1])]
    assert kept["local"] not in listed and kept["review"] in listed
    code, out, _ = run_cli(capfd, "runs", "show", kept["review"], "--tenant", "acme", "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["final_output"] == REPORT  # NEEDS_REVIEW: shown


def test_runs_show_of_another_tenants_run_is_answered_like_a_missing_run(kept, capfd):
    missing = run_cli(capfd, "runs", "show", MISSING, "--json")
    assert missing[0] == 2 and "no run" in missing[2]
    code, out, err = run_cli(capfd, "runs", "show", kept["review"], "--json")
    check(REPORT not in out and SECRET not in out, "acme's report printed by `runs show`")
    check((code, without(err, kept["review"])) == (missing[0], without(missing[2], MISSING)),
          f"runs show: exit {code} vs {missing[0]}")


def test_runs_review_of_another_tenants_run_is_answered_like_a_missing_run_and_changes_nothing(kept, home, capfd):
    missing = run_cli(capfd, "runs", "review", MISSING, "--reject", "--json")
    assert missing[0] == 2 and "no run" in missing[2]
    code, out, err = run_cli(capfd, "runs", "review", kept["review"], "--reject", "--comment", "local says no",
                             "--json")
    check(status_of(home, kept["review"]) == RunStatus.NEEDS_REVIEW, "acme's run was answered by the CLI")
    check(REPORT not in out, "acme's report printed by `runs review`")
    check((code, without(err, kept["review"])) == (missing[0], without(missing[2], MISSING)),
          f"runs review: exit {code} vs {missing[0]}")


def test_runs_approve_of_another_tenants_waiting_run_is_answered_like_a_missing_run(kept, home, capfd):
    # a plan is answered through the `stepcrew run` process that waits for it; acme's run waits on its task token
    # behind `stepcrew dev` (no such process), so the CLI has nothing to hand the answer to
    missing = run_cli(capfd, "runs", "approve", MISSING, "--wait", "1")
    code, out, err = run_cli(capfd, "runs", "approve", kept["waiting"], "--wait", "1")
    check((code, without(err, kept["waiting"])) == (missing[0], without(missing[2], MISSING)),
          f"runs approve: {code} {err!r} vs {missing[0]} {missing[2]!r}")
    assert code == 2 and SECRET not in out + err
    check(status_of(home, kept["waiting"]) == RunStatus.WAITING_APPROVAL, "acme's waiting run changed")


def test_run_on_another_tenants_dataset_fails_like_a_missing_key(home, capfd):
    # Given acme's upload in the local datasets bucket
    code, out, _ = run_cli(capfd, "datasets", "put", str(DEMO_DATASET), "--tenant", "acme")
    uri = f"s3://{LOCAL_DATA_BUCKET}/acme/uploads/penguins.csv"
    assert code == 0 and out.strip().splitlines()[-1] == uri
    # When the CLI (tenant local) runs on it, and on a key that does not exist
    results = []
    for target in (uri, f"s3://{LOCAL_DATA_BUCKET}/acme/uploads/gone/penguins.csv"):
        code, out, _ = run_cli(capfd, "run", "Compare the average body mass of the species", "--data-uri", target,
                               "--json")
        result = json.loads(out.strip().splitlines()[-1])
        results.append((code, {k: v for k, v in result.items() if k != "run_id"}))
    # Then both fail before any model call with the same answer
    check(results[0] == results[1], f"existing vs missing key: {results[0]} != {results[1]}")
    code, result = results[0]
    assert code == 1 and result["status"] == "FAILED" and result["error"]["code"] == "DatasetError"
    assert result["error"]["message"] == "dataset penguins.csv not found or not readable"
    assert result["plan"]["subtasks"] == [] and result["usage"]["input_tokens"] == 0
