"""The local runtime (the embedded default): the real ASL and handlers, run in-process under moto.

- :mod:`stepcrew.local.runtime` — :class:`LocalRuntime`, the context manager that builds the emulated stack.
- :mod:`stepcrew.local.hook` — the Lambda dispatcher and the fixes to moto's interpreter (pinned moto).
- :mod:`stepcrew.local.durable` — the kept table: SQLite (WAL) behind moto, every write durable before it returns.
- :mod:`stepcrew.local.state` — where the state folder is, its errors, the earlier (version 1) file format.
- :mod:`stepcrew.local.liveness` — which process runs which run (orphans are runs no live process claims).

Importing this package does not import moto; entering a :class:`LocalRuntime` does.
"""

from stepcrew.local.runtime import LocalRuntime
from stepcrew.local.state import default_state_dir

__all__ = ["LocalRuntime", "default_state_dir"]
