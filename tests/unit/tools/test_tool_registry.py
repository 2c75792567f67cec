"""The registry agrees with the wiring and the agent state machine's ``tool_functions`` constant."""

import json

import pytest

from stepcrew import wiring
from stepcrew.llm.base import ToolSpec
from stepcrew.tools import TOOLS, UnknownToolError, get_tool, known_tools, tool_specs


def _asl_tool_functions() -> list[dict[str, str]]:
    """The ``tool_functions`` constant of every agent-ASL state that passes one (tool name -> ``${Substitution}``)."""
    asl = json.loads(wiring.STATE_MACHINES["agent"].read_text())
    return [state["Parameters"]["Payload"]["tool_functions"] for state in asl["States"].values()
            if "tool_functions" in state.get("Parameters", {}).get("Payload", {})]


def test_names_match_the_wiring_and_the_state_machine():
    maps = _asl_tool_functions()
    assert len(maps) == 2  # CallModel and ReturnResults: both hand out calls
    assert all(m == maps[0] for m in maps)
    assert known_tools() == set(wiring.TOOL_FUNCTIONS) == set(maps[0]) == {
        "calculator", "describe_dataset", "query_dataset", "write_section", "remember", "run_python",
        "export_results", "make_chart", "notify"}
    assert all(tool.name == name for name, tool in TOOLS.items())


def test_each_tool_name_is_substituted_with_its_own_function():
    for name, placeholder in _asl_tool_functions()[0].items():
        key = placeholder.removeprefix("${").removesuffix("}")
        assert placeholder == "${" + key + "}"
        assert wiring.SUBSTITUTIONS[key] == wiring.Target("function", wiring.TOOL_FUNCTIONS[name])


def test_the_tool_map_has_no_routing_choice():
    asl = json.loads(wiring.STATE_MACHINES["agent"].read_text())
    states = asl["States"]["RunToolCalls"]["ItemProcessor"]["States"]
    assert not [n for n, st in states.items() if st["Type"] == "Choice"]
    tasks = [st for st in states.values() if st["Type"] == "Task"]
    assert len(tasks) == 1 and tasks[0]["Parameters"]["FunctionName.$"] == "$.function"


def test_every_tool_function_has_a_handler_folder():
    for function in wiring.TOOL_FUNCTIONS.values():
        assert (wiring.FUNCTIONS_DIR / function / "app.py").is_file()


def test_unknown_tool_is_a_key_error_naming_the_known_tools():
    with pytest.raises(UnknownToolError) as info:
        get_tool("shell")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == ("unknown tool 'shell'; known tools: calculator, describe_dataset, export_results, "
                               "make_chart, notify, query_dataset, remember, run_python, write_section")
    with pytest.raises(UnknownToolError):
        tool_specs(["calculator", "shell"])


def test_tool_specs_keep_order_and_drop_duplicates():
    specs = tool_specs(["query_dataset", "calculator", "query_dataset"])
    assert [s.name for s in specs] == ["query_dataset", "calculator"]
    assert all(isinstance(s, ToolSpec) and s.description for s in specs)


@pytest.mark.parametrize(("name", "required", "properties"), [
    ("calculator", ["expression"], {"expression"}),
    ("describe_dataset", None, {"columns"}),
    ("query_dataset", ["sql"], {"sql", "max_rows"}),
    ("write_section", ["heading", "summary"], {"heading", "summary", "bullets", "table"}),
])
def test_argument_schemas_are_the_fixed_contract(name, required, properties):
    schema = get_tool(name).spec().parameters
    assert schema.get("required") == required
    assert set(schema["properties"]) == properties
    assert "additionalProperties" not in schema and "$defs" not in schema  # lean; Args still forbids extras
    json.dumps(schema)


def test_write_section_schema_describes_table_cells():
    schema = get_tool("write_section").spec().parameters
    cell = schema["properties"]["table"]["properties"]["rows"]["items"]["items"]
    assert {t.get("type") for t in cell["anyOf"]} == {"string", "integer", "number", "null"}
