"""The local runtime (the embedded default): the real ASL and handlers, run in-process under moto.

- :mod:`stepcrew.local.runtime` — :class:`LocalRuntime`, the context manager that builds the emulated stack.
- :mod:`stepcrew.local.hook` — the Lambda dispatcher and the fixes to moto's interpreter (pinned moto).
- :mod:`stepcrew.local.state` — :class:`LocalState`, the saved table that later processes read.

Importing this package does not import moto; entering a :class:`LocalRuntime` does.
"""

from stepcrew.local.runtime import LocalRuntime
from stepcrew.local.state import LocalState, default_state_dir

__all__ = ["LocalRuntime", "LocalState", "default_state_dir"]
