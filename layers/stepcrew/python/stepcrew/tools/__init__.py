"""Built-in tools: :mod:`.base` (the Tool port, typed errors, output cap), :mod:`.registry` (tools by name),
:mod:`.calculator`, :mod:`.dataset` (describe/query over DuckDB), :mod:`.write_section`, :mod:`.datasets`
(dataset URIs and the DuckDB table cache). DuckDB is imported only when a data tool runs."""

from stepcrew.tools.registry import TOOLS, UnknownToolError, get_tool, known_tools, tool_specs

__all__ = ["TOOLS", "UnknownToolError", "get_tool", "known_tools", "tool_specs"]
