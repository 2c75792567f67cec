"""`stepcrew dev` in a thread for the integration tests (a uniquely named module: ``conftest`` names clash across
test folders)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def dev_server(state_dir, **options) -> Iterator:
    """`stepcrew dev` (:func:`stepcrew.api.dev.serve`) on 127.0.0.1, a free port, in a thread; yields the server
    (``.url``). On exit it is shut down and its thread joined (its LocalRuntime is torn down: the next test of the
    worker may start one). Raises what ``serve`` raised at start."""
    from stepcrew.api.dev import serve

    ready: queue.Queue = queue.Queue()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(host="127.0.0.1", port=0, state_dir=state_dir, fast_waits=True, quiet=True, on_ready=ready.put,
                  **options)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test
            errors.append(exc)
            ready.put(None)

    thread = threading.Thread(target=run, name="stepcrew-dev-test", daemon=True)
    thread.start()
    server = ready.get(timeout=120)
    if server is None:
        raise errors[0]
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=60)
    assert not thread.is_alive() and not errors, errors


def call(url: str, method: str = "GET", body: dict | None = None, tenant: str = "acme") -> dict:
    """One JSON request to a dev server as ``tenant`` (the local token); the JSON answer."""
    import json
    import urllib.request

    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer local:{tenant}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


@contextlib.contextmanager
def dev_process(home, stderr=None, timeout_s: float = 60, args: tuple[str, ...] = ()) -> Iterator:
    """`stepcrew dev` as its own process (STEPCREW_HOME ``home``, a free port), once /health answers; yields
    ``(process, base url)``. ``stderr``: subprocess.PIPE to read it (text), else discarded. The process is killed on
    exit if it is still running."""
    import socket
    import subprocess
    import sys
    import time

    from test_cli import cli_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "stepcrew.cli", "dev", "--port", str(port), *args], env=cli_env(home),
                            stdout=subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                call(base + "/health")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    detail = proc.stderr.read() if stderr and proc.poll() is not None else "no /health"
                    raise AssertionError(detail) from None
                time.sleep(0.2)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux: /proc/<pid>/stat, field 4): the runtime process behind the
    `stepcrew dev` front (stepcrew.local.front)."""
    from pathlib import Path

    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended)."""
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_dev(proc, timeout_s: float = 30) -> None:
    """SIGKILL the `stepcrew dev` front ``proc`` (no cleanup at all) and wait until its runtime process has followed
    it (it exits at once when the front's pipe closes), so a restart finds its runs unclaimed."""
    import time

    runtime = children(proc.pid)
    proc.kill()
    proc.wait(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in runtime):
        assert time.monotonic() < deadline, "the runtime process outlived its front"
        time.sleep(0.05)


def start_waiting_run(base: str, timeout_s: float = 60) -> str:
    """POST the demo run with ``require_approval`` to a dev server; its id once it waits for approval."""
    import time

    from stepcrew.data import DEMO_DATASET, DEMO_GOAL

    run_id = call(base + "/runs", "POST", {"goal": DEMO_GOAL, "data": DEMO_DATASET.as_uri(),
                                           "require_approval": True})["run_id"]
    deadline = time.monotonic() + timeout_s
    while (status := call(f"{base}/runs/{run_id}")["status"]) != "WAITING_APPROVAL":
        assert time.monotonic() < deadline and status in ("QUEUED", "RUNNING"), status
        time.sleep(0.1)
    return run_id


def http(url: str, method: str = "GET", body: dict | None = None, tenant: str | None = "acme",
         timeout_s: float = 10) -> tuple[int, dict[str, str], dict]:
    """One JSON request to a dev server as ``tenant`` (None: no token): ``(status, headers, JSON answer)``, error
    statuses included (no exception for 4xx/5xx)."""
    import json
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if tenant is not None:
        headers["Authorization"] = f"Bearer local:{tenant}"
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, dict(response.headers.items()), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), json.loads(exc.read() or b"{}")


def wait_for_status(base: str, run_id: str, statuses: set[str], timeout_s: float = 120, tenant: str = "acme") -> dict:
    """GET /runs/{run_id} until its status is one of ``statuses``; the run's view. AssertionError after
    ``timeout_s`` seconds (a bound on a wait, not a speed assertion)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        status, _, view = http(f"{base}/runs/{run_id}", tenant=tenant)
        assert status == 200, view
        if view["status"] in statuses:
            return view
        assert time.monotonic() < deadline, f"run {run_id} still {view['status']}, wanted {sorted(statuses)}"
        time.sleep(0.1)
