"""Names of the child executions the ASL in statemachines/ starts (``states:startExecution*`` Tasks).

Why they matter: a redriven run execution reruns the unfinished iterations of its inline Map and so starts their
child executions again; StartExecution answers ``ExecutionAlreadyExists`` for the name of a closed execution
"regardless of input" (StartExecution API reference), so a child name must change with ``$$.Execution.RedriveCount``.
It must also stay within StartExecution's ``Name`` limit, 1-80 characters (API reference; botocore's service model
says the same, checked below), for the longest ids the models accept.

These tests read the definitions as deployed (``wiring.STATE_MACHINES``) and evaluate the Map item flow
(ItemsPath, ItemSelector) and the ``States.Format`` of each child name with a small evaluator of their own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError
from stepcrew import wiring
from stepcrew.models import Plan, RunId, SubTask, SubtaskId

START_EXECUTION = "arn:aws:states:::states:startExecution"
#: RedriveExecution needs the execution's history under 24,999 events (RedriveExecution API reference), and each
#: redrive appends at least its ExecutionRedriven event: RedriveCount stays below 24,999.
REDRIVE_COUNT_MAX = 24_998
#: Characters CloudWatch Logs accepts in an execution name (StartExecution API reference: 0-9, A-Z, a-z, - and _).
LOGGABLE_NAME = re.compile(r"^[0-9A-Za-z_-]+$")


# ---------------------------------------------------------------------------------------------------- evaluator


def _path(path: str, data: Any, context: dict) -> Any:
    """Value of a simple reference path (``$.a.b`` on ``data``, ``$$.A.B`` on ``context``); KeyError if absent."""
    root, rest = (context, path[2:]) if path.startswith("$$") else (data, path[1:])
    assert re.fullmatch(r"(\.[A-Za-z_][A-Za-z0-9_]*)*", rest), f"not a simple path: {path}"
    value = root
    for key in filter(None, rest.split(".")):
        value = value[key]
    return value


def _format(expression: str, data: Any, context: dict) -> str:
    """Evaluate ``States.Format('<template>', <path>, ...)`` (paths only, as the ASL here uses)."""
    m = re.fullmatch(r"States\.Format\('((?:[^'\\]|\\.)*)'((?:\s*,\s*[^,()]+)*)\)", expression)
    assert m, f"not a States.Format of paths: {expression}"
    template, args = m.group(1), [a.strip() for a in m.group(2).split(",")[1:]]
    assert template.count("{}") == len(args), expression
    pieces = template.split("{}")
    values = [_path(a, data, context) for a in args]
    return "".join(p + (str(v) if i < len(values) else "") for i, (p, v) in
                   enumerate(zip(pieces, values + [None])))


def _select(selector: dict, data: Any, context: dict) -> dict:
    """Evaluate a Parameters/ItemSelector object (``key.$`` paths, static values; nested objects)."""
    out = {}
    for key, value in selector.items():
        if key.endswith(".$"):
            out[key[:-2]] = _format(value, data, context) if value.startswith("States.") else \
                _path(value, data, context)
        else:
            out[key] = _select(value, data, context) if isinstance(value, dict) else value
    return out


def _child_starts(states: dict, maps: tuple = ()):
    """Every ``states:startExecution*`` Task of ``states`` (recursively), with its enclosing Map states."""
    for name, state in states.items():
        if state.get("Type") == "Task" and str(state.get("Resource", "")).startswith(START_EXECUTION):
            yield name, state, maps
        for nested in [state.get("ItemProcessor") or state.get("Iterator")] + state.get("Branches", []):
            if nested:
                yield from _child_starts(nested["States"], maps + ((state,) if state.get("Type") == "Map" else ()))


def _task_inputs(maps: tuple, state_input: dict, context: dict):
    """The input of the Task inside ``maps`` for every Map item, as the Map states build it."""
    if not maps:
        yield state_input
        return
    first, rest = maps[0], maps[1:]
    items = _path(first.get("ItemsPath", "$"), state_input, context)
    for index, value in enumerate(items):
        item_context = {**context, "Map": {"Item": {"Index": index, "Value": value}}}
        item = _select(first["ItemSelector"], state_input, item_context) if "ItemSelector" in first else value
        yield from _task_inputs(rest, item, context)


def _definitions() -> dict[str, dict]:
    return {name: json.loads(path.read_text()) for name, path in wiring.STATE_MACHINES.items()}


def _run_child_start() -> tuple[dict, tuple]:
    starts = [(state, maps) for name, state, maps in _child_starts(_definitions()["run"]["States"])
              if name == "RunSubtask"]  # the manager loop's RunDelegation: tests/unit/test_manager_child_names.py
    assert len(starts) == 1, "the run ASL starts the waves' sub-task children from one Task (RunSubtask)"
    return starts[0]


def _names(run_id: str, waves: list[list[str]], redrive_count: int) -> dict[str, str]:
    """Sub-task id -> the name its child execution gets, for a run whose plan has ``waves``."""
    state, maps = _run_child_start()
    context = {"Execution": {"Id": "arn:aws:states:r:1:execution:run:" + run_id, "Name": run_id,
                             "RedriveCount": redrive_count}}
    state_input = {"run_id": run_id, "plan": {"result": {"waves": waves}}}
    names = {}
    for task_input in _task_inputs(maps, state_input, context):
        params = _select(state["Parameters"], task_input, context)
        names[params["Input"]["subtask_id"]] = params["Name"]
    return names


def _longest(adapter: TypeAdapter, char: str = "a", limit: int = 500) -> int:
    """The greatest n <= limit for which ``char * n`` is valid (the ids' patterns accept a lowercase letter)."""
    valid = [n for n in range(1, limit + 1) if _valid(adapter, char * n)]
    assert valid and valid[-1] < limit
    return valid[-1]


def _valid(adapter: TypeAdapter, value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _max_subtasks() -> int:
    def plan(n: int) -> Any:
        return {"subtasks": [{"id": f"s{i}", "title": "t", "instructions": "i"} for i in range(n)]}

    adapter = TypeAdapter(Plan)
    sizes = [n for n in range(1, 200) if _valid(adapter, plan(n))]
    assert sizes and sizes[-1] < 199
    return sizes[-1]


# ---------------------------------------------------------------------------------------------------- tests


def test_the_name_limit_is_80_characters_in_the_service_model():
    import botocore.session

    model = botocore.session.get_session().get_service_model("stepfunctions")
    name = model.operation_model("StartExecution").input_shape.members["name"]
    assert (name.metadata["min"], name.metadata["max"]) == (1, 80)


def test_every_child_execution_name_changes_with_the_redrive_count():
    starts = [(machine, name, state) for machine, definition in _definitions().items()
              for name, state, _ in _child_starts(definition["States"])]
    assert starts, "the run ASL starts the agent loops as child executions"
    for machine, name, state in starts:
        params = state["Parameters"]
        assert "Name" not in params, f"{machine}.{name}: a static child name cannot change on redrive"
        assert "$$.Execution.RedriveCount" in params["Name.$"], f"{machine}.{name}: {params['Name.$']}"


def test_the_longest_child_name_fits_the_limit():
    run_len, subtask_len, n = _longest(TypeAdapter(RunId)), _longest(TypeAdapter(SubtaskId)), _max_subtasks()
    run_id = "r" * run_len
    # the most waves (a chain of n sub-tasks) and the widest wave (n independent ones), with the longest ids
    ids = [(f"{i}" * subtask_len)[:subtask_len] for i in range(n)]
    chain = Plan(subtasks=[SubTask(id=ids[i], title="t", instructions="i", depends_on=ids[i - 1:i])
                           for i in range(n)])
    wide = Plan(subtasks=[SubTask(id=i, title="t", instructions="i") for i in ids])
    assert len(chain.waves()) == n and len(wide.waves()[0]) == n
    for plan in (chain, wide):
        names = _names(run_id, plan.waves(), REDRIVE_COUNT_MAX)
        assert set(names) == set(ids)
        for name in names.values():
            assert 1 <= len(name) <= 80, (len(name), name)
            assert LOGGABLE_NAME.match(name), name


def test_names_are_distinct_per_sub_task_per_run_and_per_redrive():
    waves = Plan(subtasks=[SubTask(id="alpha", title="t", instructions="i"),
                           SubTask(id="beta", title="t", instructions="i"),
                           SubTask(id="gamma", title="t", instructions="i", depends_on=["alpha", "beta"])]).waves()
    assert waves == [["alpha", "beta"], ["gamma"]]
    seen = {}
    for run_id in ("run-a", "run-b"):
        for redrive_count in (0, 1, 2):
            for subtask_id, name in _names(run_id, waves, redrive_count).items():
                assert name not in seen, f"{name} for {(run_id, subtask_id, redrive_count)} and {seen.get(name)}"
                seen[name] = (run_id, subtask_id, redrive_count)
                assert name.startswith(f"{run_id}-"), name  # a run's children are recognisable by its id
    assert len(seen) == 2 * 3 * 3


def test_the_name_depends_on_nothing_that_changes_between_task_retries():
    # StartExecution is idempotent for the same name and input while the execution is open: a Retry of RunSubtask
    # (StepFunctions.SdkClientException...) must send the same name, so no per-attempt field may be in it
    state, _ = _run_child_start()
    args = re.findall(r"\$\$?[.A-Za-z_]*", state["Parameters"]["Name.$"])
    assert args and "States.UUID" not in state["Parameters"]["Name.$"]
    assert [a for a in args if a.startswith(("$$.State", "$$.Task"))] == [], args
