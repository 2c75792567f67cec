"""The built-in tools by name. Names match ``stepcrew.wiring.TOOL_FUNCTIONS`` and the ``tool_functions`` constant of
``statemachines/agent.asl.json`` (a test keeps the three in step)."""

from __future__ import annotations

from collections.abc import Iterable

from stepcrew.llm.base import ToolSpec
from stepcrew.tools.base import Tool
from stepcrew.tools.calculator import Calculator
from stepcrew.tools.dataset import DescribeDataset, QueryDataset
from stepcrew.tools.export_results import ExportResults
from stepcrew.tools.make_chart import MakeChart
from stepcrew.tools.notify import Notify
from stepcrew.tools.remember import Remember
from stepcrew.tools.run_python import RunPython
from stepcrew.tools.write_section import WriteSection



def _run_by_its_function():
    raise RuntimeError("the registry's export_results gives its schema only: the tool_export_results function runs it "
                       "with its receipts and artifacts stores")


def _notify_by_its_function():
    raise RuntimeError("the registry's notify gives its schema only: the tool_notify function runs it with its "
                       "receipts store and SNS publisher")


TOOLS: dict[str, Tool] = {t.name: t for t in (Calculator(), DescribeDataset(), QueryDataset(), WriteSection(), Remember(),
                                              RunPython(), ExportResults(_run_by_its_function, _run_by_its_function),
                                              MakeChart(_run_by_its_function),
                                              Notify(_notify_by_its_function, _notify_by_its_function))}


class UnknownToolError(KeyError):
    """No tool has this name. The message lists the known tools."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown tool"


def get_tool(name: str) -> Tool:
    """The tool called ``name``. Raises UnknownToolError (a KeyError) for any other name."""
    try:
        return TOOLS[name]
    except KeyError:
        raise UnknownToolError(f"unknown tool {name!r}; known tools: {', '.join(sorted(TOOLS))}") from None


def known_tools() -> set[str]:
    """Names of the built-in tools."""
    return set(TOOLS)


def tool_specs(names: Iterable[str]) -> list[ToolSpec]:
    """Specs of the named tools, in the given order (duplicates dropped). Raises UnknownToolError."""
    return [get_tool(n).spec() for n in dict.fromkeys(names)]
