"""Which local process runs which run: claim files, so a process starting later can tell an orphan from a run that
another live process (``stepcrew dev``, another ``stepcrew run``) is executing right now.

A process that starts a run's execution writes ``<state folder>/active/<run id>`` holding its pid and, on Linux, the
process start time from ``/proc/<pid>/stat`` (so a reused pid is not taken for the owner). The claim is removed when
the runtime exits. A run that is not terminal in the saved state and whose claim is missing or names a process that
is gone has no execution anywhere: an **orphan** (its process was killed, the machine rebooted).
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER = "active"


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, field 22 of /proc/<pid>/stat), or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _zombie(pid: int) -> bool:
    """A process that has ended but is not reaped yet (state ``Z``, field 3 of /proc/<pid>/stat; False off Linux).
    ``kill(pid, 0)`` still succeeds for it: the runtime process of a SIGKILLed ``stepcrew dev`` front is one until
    init reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    if _zombie(pid):
        return False
    return start is None or _start_time(pid) in (None, start)


class Claims:
    """The claim files of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / FOLDER
        self.mine: set[str] = set()

    def claim(self, run_id: str) -> None:
        """This process executes ``run_id`` now."""
        self.folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        tmp = self.folder / f".{run_id}.{pid}.tmp"
        tmp.write_text(f"{pid} {_start_time(pid) or '-'}\n")
        os.replace(tmp, self.folder / run_id)
        self.mine.add(run_id)

    def release_all(self) -> None:
        for run_id in list(self.mine):
            path = self.folder / run_id
            try:
                pid = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
            if pid == os.getpid():
                path.unlink(missing_ok=True)
            self.mine.discard(run_id)

    def owned_by_a_live_process(self, run_id: str) -> bool:
        """True when a live process (this one included) claims ``run_id``."""
        if run_id in self.mine:
            return True
        try:
            pid_text, start = (self.folder / run_id).read_text().split()[:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            return False
        return _alive(pid, None if start == "-" else start)
