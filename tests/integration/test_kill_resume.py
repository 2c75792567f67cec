"""Kill -9 at each progress point of a run, then `stepcrew runs resume`: the run ends SUCCEEDED with exactly the
model calls and tool calls of an uninterrupted run (issue 12, part 7).

The run uses an OpenAI-compatible scripted server on 127.0.0.1 (the only place model requests may go from the
child processes), so every model request of every process is counted outside them. The plan is a chain of two
sub-tasks (``right`` depends on ``left``), so nothing else is in flight when the kill happens: the kill is driven by
the events, not by sleeps — the child kills itself with SIGKILL right after its N-th progress event is stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from http.server import ThreadingHTTPServer

import pytest
from test_openai_compatible_provider import MODEL, FakeOpenAI

pytestmark = pytest.mark.integration

CHAIN_PLAN = {"subtasks": [
    {"id": "left", "title": "Left sum", "instructions": "Compute 19 + 23.", "depends_on": [], "tools": ["calculator"],
     "role": "data_analyst", "expected_output": "a number"},
    {"id": "right", "title": "Right product", "instructions": "Compute 6 * 7.", "depends_on": ["left"],
     "tools": ["calculator"], "role": "data_analyst", "expected_output": "a number"}]}
GOAL = "Compute 19 + 23 and then 6 * 7"

KILLER = """
import os, signal, sys
from stepcrew.store import dynamodb
target, seen, original = int(os.environ["KILL_AT_EVENT"]), [0], dynamodb.DynamoRunStore.add_event
def add_event(self, event):
    cursor = original(self, event)
    seen[0] += 1
    if seen[0] == target:
        sys.stderr.write(f"killing at event {target}: {event.kind}\\n"); sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return cursor
dynamodb.DynamoRunStore.add_event = add_event
from stepcrew.cli import main
sys.argv = ["stepcrew", *sys.argv[1:]]
main()
"""


class ChainedOpenAI(FakeOpenAI):
    seen: list[dict] = []
    lock = threading.Lock()

    @staticmethod
    def answer(messages):
        if messages[0]["content"].startswith("You are the Planner"):
            return {"content": json.dumps(CHAIN_PLAN)}, "stop"
        return FakeOpenAI.answer(messages)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChainedOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _env(home, base_url: str, kill_at: int | None = None) -> dict[str, str]:
    env = {**os.environ, "STEPCREW_HOME": str(home), "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "test",
           "OPENAI_MODEL": MODEL, "STEPCREW_ALLOW_MODEL_REQUESTS": "1", "STEPCREW_FAST_WAITS": "1"}
    if kill_at is not None:
        env["KILL_AT_EVENT"] = str(kill_at)
    return env


def _stepcrew(home, base_url, *args, kill_at=None):
    code = ["-c", KILLER] if kill_at is not None else ["-m", "stepcrew.cli"]
    return subprocess.run([sys.executable, *code, *args], env=_env(home, base_url, kill_at), capture_output=True,
                          text=True, timeout=300)


def _requests() -> Counter:
    """Each model request as (role prompt's first line, the conversation it was sent): a multiset."""
    with ChainedOpenAI.lock:
        bodies = list(ChainedOpenAI.seen)
    return Counter(json.dumps([body["messages"][0]["content"].splitlines()[0],
                               [(m["role"], m.get("content")) for m in body["messages"][1:]]]) for body in bodies)


@pytest.fixture(scope="module")
def baseline(server, tmp_path_factory):
    """The uninterrupted run: its model requests, result and the kinds of its progress events in order."""
    home = tmp_path_factory.mktemp("baseline")
    ChainedOpenAI.seen = []
    proc = _stepcrew(home, server, "run", GOAL, "--provider", "openai", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "SUCCEEDED"
    kinds = _event_kinds(home, result["run_id"])
    return {"requests": _requests(), "result": result, "kinds": kinds}


def _event_kinds(home, run_id) -> list[str]:
    from stepcrew.local.runtime import LocalRuntime

    with LocalRuntime(state_dir=home / "state", read_only=True) as rt:
        return [e.kind for _, e in rt.store.list_events(run_id)]


#: Progress events of the uninterrupted run (checked below): the test kills at every one of them.
EVENTS = 24


@pytest.mark.parametrize("kill_at", range(1, EVENTS + 1))
def test_kill_9_at_a_progress_event_then_resume_repeats_no_model_or_tool_call(server, baseline, tmp_path, kill_at):
    kinds = baseline["kinds"]
    assert len(kinds) == EVENTS, f"the run now has {len(kinds)} events: set EVENTS so every one is a kill point"
    ChainedOpenAI.seen = []
    killed = _stepcrew(tmp_path, server, "run", GOAL, "--provider", "openai", "--json", kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    listed = subprocess.run([sys.executable, "-m", "stepcrew.cli", "runs", "list", "--json"],
                            env=_env(tmp_path, server), capture_output=True, text=True, timeout=120)
    runs = json.loads(listed.stdout)
    if not runs:  # killed before the run record was written: nothing to resume, nothing half-done
        assert kill_at == 1 and not ChainedOpenAI.seen
        return
    (run,) = runs
    run_id = run["run_id"]
    if run["status"] == "SUCCEEDED":  # killed after the outcome was written (its memory proposal is lost: a gap)
        resumed = _stepcrew(tmp_path, server, "runs", "resume", run_id)
        assert resumed.returncode == 2 and "ended SUCCEEDED" in resumed.stderr, resumed.stderr
        return
    resumed = _stepcrew(tmp_path, server, "runs", "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    expected = baseline["result"]
    assert result["status"] == "SUCCEEDED"
    # exactly the model calls of the uninterrupted run: none paid twice, none missing
    assert _requests() == baseline["requests"]
    assert result["usage"]["input_tokens"] == expected["usage"]["input_tokens"]
    assert result["usage"]["output_tokens"] == expected["usage"]["output_tokens"]
    assert [(s["id"], s["status"], s["tool_calls"]) for s in result["subtasks"]] == \
        [(s["id"], s["status"], s["tool_calls"]) for s in expected["subtasks"]]
    assert result["final_output"] == expected["final_output"]
    kinds_after = _event_kinds(tmp_path, run_id)
    assert kinds_after.count("tool_call") == kinds.count("tool_call")  # no tool call handed out twice
    assert "run_resumed" in kinds_after


def test_resume_of_an_unknown_or_finished_run_is_one_line_exit_2(server, baseline, tmp_path):
    proc = _stepcrew(tmp_path, server, "runs", "resume", "no-such-run")
    assert proc.returncode == 2 and "no local run" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
