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
