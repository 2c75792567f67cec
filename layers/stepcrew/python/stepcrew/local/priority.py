"""A re-entrant lock that lets interactive threads go first, for the local runtime's emulated services.

Why: the local runtime runs every execution in threads of one process, and the emulated DynamoDB table serves one
request at a time (moto is not thread-safe; :mod:`stepcrew.local.durable` holds a lock around each request).
``threading.RLock`` is not fair: with eight executions calling DynamoDB back to back, a ``GET /runs/{id}`` of
``stepcrew dev`` (about ten DynamoDB reads) waited behind them for up to 5 s (bench/dev_api.py, 8 runs executing).
A thread inside :func:`interactive` (the dev server's request threads) is served before any waiting thread that is
not: it waits at most for the request being served, not for the queue.

Executions are not starved for good: interactive work is short (one API request) and comes at the clients' rate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


@contextmanager
def interactive() -> Iterator[None]:
    """Mark the current thread's lock requests as interactive (served first) for the ``with`` block; nests."""
    before = getattr(_local, "interactive", False)
    _local.interactive = True
    try:
        yield
    finally:
        _local.interactive = before


def is_interactive() -> bool:
    """Whether the current thread is inside :func:`interactive`."""
    return getattr(_local, "interactive", False)


class PriorityRLock:
    """Re-entrant lock: a free lock goes to a waiting interactive thread before any other waiting thread.

    Among interactive waiters, and among the others, the order is the one of ``threading.Condition`` wake-ups (not
    strictly FIFO). ``release`` by a thread that does not hold it raises RuntimeError, as ``RLock`` does.
    Use it as a context manager (``with lock:``) or with :meth:`acquire` / :meth:`release`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._urgent = 0  # interactive threads waiting
        self.waiting = 0  # threads waiting, interactive or not (for tests and diagnostics)

    def acquire(self) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            self.waiting += 1
            try:
                if is_interactive():
                    self._urgent += 1
                    try:
                        while self._owner is not None:
                            self._cond.wait()
                    finally:
                        self._urgent -= 1
                else:
                    while self._owner is not None or self._urgent:
                        self._cond.wait()
            finally:
                self.waiting -= 1
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a lock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
