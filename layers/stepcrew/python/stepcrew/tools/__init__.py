"""Built-in tools: :mod:`.base` (the Tool port, typed errors, output cap), :mod:`.registry` (tools by name),
:mod:`.calculator`, :mod:`.dataset` (describe/query over DuckDB), :mod:`.write_section`, :mod:`.datasets`
(dataset URIs and the DuckDB table cache).

Importing this package is cheap: the registry (and with it every tool module) loads on first use of one of the
names below, and DuckDB only when a data tool runs, so a tool Lambda imports just its own tool module.
"""

from typing import Any

__all__ = ["TOOLS", "UnknownToolError", "get_tool", "known_tools", "tool_specs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from stepcrew.tools import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
