"""stepcrew.local.priority: a free lock goes to a waiting interactive thread before the others; the lock is
re-entrant and refuses a release by a thread that does not hold it."""

from __future__ import annotations

import threading

import pytest
from stepcrew.local.priority import PriorityRLock, interactive, is_interactive


def _wait_until(predicate, timeout_s: float = 10) -> None:
    done = threading.Event()
    deadline = threading.Timer(timeout_s, done.set)
    deadline.start()
    try:
        while not predicate():
            assert not done.is_set(), "waited too long"
            done.wait(0.001)
    finally:
        deadline.cancel()


def test_an_interactive_waiter_gets_the_lock_before_earlier_waiters():
    lock, order = PriorityRLock(), []

    def take(name: str, urgent: bool) -> None:
        if urgent:
            with interactive():
                with lock:
                    order.append(name)
        else:
            with lock:
                order.append(name)

    lock.acquire()  # held by the test
    background = [threading.Thread(target=take, args=(f"execution-{n}", False)) for n in range(3)]
    for thread in background:
        thread.start()
    _wait_until(lambda: lock.waiting == 3)  # the executions queue first
    request = threading.Thread(target=take, args=("request", True))
    request.start()
    _wait_until(lambda: lock.waiting == 4)
    lock.release()
    for thread in (*background, request):
        thread.join(timeout=10)
    assert order[0] == "request" and sorted(order[1:]) == ["execution-0", "execution-1", "execution-2"]


def test_it_is_reentrant_and_only_its_holder_releases_it():
    lock = PriorityRLock()
    with lock:
        with lock:  # the same thread again
            pass
        errors = []

        def foreign_release() -> None:
            try:
                lock.release()
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=foreign_release)
        thread.start()
        thread.join(timeout=10)
        assert errors, "another thread released a lock it does not hold"
    with pytest.raises(RuntimeError):
        lock.release()  # released already


def test_interactive_marks_only_its_block_and_nests():
    assert not is_interactive()
    with interactive():
        with interactive():
            assert is_interactive()
        assert is_interactive()
    assert not is_interactive()
