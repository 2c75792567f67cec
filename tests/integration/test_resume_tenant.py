"""Tenant scoping of ``stepcrew runs resume RUN_ID [--tenant T]`` (default tenant ``local``, like ``runs show``).

Given a run of tenant ``acme`` that its process left unfinished (FAILED LocalRuntimeExited, its started sub-task
closed by the cut-off), when the CLI resumes it as another tenant, then it gets the answer an unknown id gets (exit
2, the same one line) and nothing is changed; as ``acme`` it is resumed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stepcrew.cli import EXIT_CODES
from stepcrew.crew import load_crew
from stepcrew.domain.finalize import close_open_subtasks
from stepcrew.local.resume import ResumeError, check_resumable
from stepcrew.local.runtime import CUT_OFF_CODE, CUT_OFF_MESSAGE, LocalRuntime
from stepcrew.models import Plan, RunError, RunRequest, RunStatus, SubTask, SubtaskStatus, utcnow
from stepcrew.service import create_run
from test_cli_outcomes import run_cli
from test_tenant_isolation_cli import MISSING, without

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """The CLI's $STEPCREW_HOME (its state folder: ``home / "state"``)."""
    monkeypatch.setenv("STEPCREW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cut_off(home) -> str:
    """A run of tenant acme as a killed process leaves it after the cut-off: FAILED LocalRuntimeExited, its started
    sub-task closed (RunFailed naming the cut-off)."""
    with LocalRuntime(state_dir=home / "state", store_only=True) as rt:
        st = rt.store
        run = create_run(RunRequest(goal="Compute 6 times 7", tenant="acme"), load_crew("default"), st)
        st.put_plan(run.run_id, Plan(subtasks=[SubTask(id="a", title="A", instructions="Compute 6 times 7.")]))
        st.update_run(run.run_id, {"status": RunStatus.RUNNING, "started_at": utcnow()})
        st.update_subtask(run.run_id, "a", {"status": SubtaskStatus.RUNNING, "started_at": utcnow()})
        reason = RunError(code=CUT_OFF_CODE, message=CUT_OFF_MESSAGE)
        st.update_run(run.run_id, {"status": RunStatus.FAILED, "finished_at": utcnow(), "error": reason},
                      expected=[RunStatus.RUNNING])
        assert close_open_subtasks(st, run.run_id, reason) == ["a"]
    return run.run_id


def snapshot(home: Path, run_id: str) -> tuple[dict, list[dict], list[tuple[str, dict]]]:
    """The run record, its sub-tasks and its events as stored."""
    with LocalRuntime(state_dir=home / "state", read_only=True) as rt:
        st = rt.store
        run = st.get_run(run_id).model_dump(mode="json")
        subtasks = [s.model_dump(mode="json") for s in st.list_subtasks(run_id)]
        events = [(e.kind, e.data) for _, e in st.list_events(run_id)]
    return run, subtasks, events


def test_resume_as_another_tenant_is_answered_like_an_unknown_run_and_changes_nothing(home, cut_off, capfd):
    before = snapshot(home, cut_off)
    assert before[0]["status"] == "FAILED" and before[0]["error"]["code"] == CUT_OFF_CODE
    missing = run_cli(capfd, "runs", "resume", MISSING, "--tenant", "globex", "--json")
    assert missing[0] == 2 and "no local run" in missing[2]
    for args in (("--tenant", "globex"), ()):  # another tenant given, and the default tenant (local)
        code, out, err = run_cli(capfd, "runs", "resume", cut_off, *args, "--json")
        assert (code, without(err, cut_off)) == (missing[0], without(missing[2], MISSING)), (args, code, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "Compute 6 times 7" not in out + err and "acme" not in out + err
        assert snapshot(home, cut_off) == before, f"acme's run changed by `runs resume {args}`"


def test_resume_as_the_runs_tenant_proceeds(home, cut_off, capfd):
    code, out, err = run_cli(capfd, "runs", "resume", cut_off, "--tenant", "acme", "--json")
    assert "no local run" not in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["run_id"] == cut_off
    run, _, events = snapshot(home, cut_off)
    kinds = [kind for kind, _ in events]
    assert "run_resumed" in kinds
    resumed = dict(events[kinds.index("run_resumed")][1])
    assert resumed == {"after": CUT_OFF_CODE, "subtasks_reopened": 1}
    # a new execution ran the run after the resume: not the cut-off record any more
    assert (run["status"], (run["error"] or {}).get("code")) != ("FAILED", CUT_OFF_CODE)
    # followed to its end like `stepcrew run`: the exit code of the status it ended with (the offline rule provider
    # declines this goal: DECLINED, exit 4)
    assert result["status"] == run["status"] and RunStatus(run["status"]).terminal
    assert code == EXIT_CODES[RunStatus(run["status"])]


def test_check_resumable_reads_the_run_through_the_store_with_the_tenant(home, cut_off):
    with LocalRuntime(state_dir=home / "state", read_only=True) as rt:
        assert check_resumable(rt, cut_off, tenant="acme").run_id == cut_off
        with pytest.raises(ResumeError) as other:
            check_resumable(rt, cut_off, tenant="globex")
        with pytest.raises(ResumeError) as unknown:
            check_resumable(rt, MISSING, tenant="globex")
        assert without(str(other.value), cut_off) == without(str(unknown.value), MISSING)
        assert str(other.value) == f"no local run {cut_off!r} (see `stepcrew runs list`)"
        # tenant None: any tenant's run (the local operator's --resume-orphans only)
        assert check_resumable(rt, cut_off, tenant=None).tenant == "acme"
