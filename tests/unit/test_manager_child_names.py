"""Names of the child executions the manager loop starts (``RunDelegation`` in ``RunDelegations``): unique per
delegation (its ``seq``) and per redrive, within StartExecution's 80 characters for the longest run id and the
largest sequence number a run can reach, and free of per-attempt fields (a Task retry must send the same name)."""

from __future__ import annotations

import re

from pydantic import TypeAdapter
from stepcrew.models import MAX_DELEGATIONS_CAP, RunId
from stepcrew.domain.manager import MAX_MANAGER_ASKS

from test_child_execution_names import LOGGABLE_NAME, REDRIVE_COUNT_MAX, _child_starts, _definitions, _longest, \
    _select


def _delegation_start():
    starts = [(state, maps) for name, state, maps in _child_starts(_definitions()["run"]["States"])
              if name == "RunDelegation"]
    assert len(starts) == 1
    return starts[0]


def _names(run_id: str, seqs: list[int], redrive_count: int) -> list[str]:
    state, (map_state,) = _delegation_start()
    context = {"Execution": {"Id": "arn:aws:states:r:1:execution:run:" + run_id, "Name": run_id,
                             "RedriveCount": redrive_count}}
    names = []
    for index, seq in enumerate(seqs):
        item_context = {**context, "Map": {"Item": {"Index": index, "Value": {"subtask_id": "s", "seq": seq}}}}
        item = _select(map_state["ItemSelector"], {"run_id": run_id}, item_context)
        names.append(_select(state["Parameters"], item, context)["Name"])
    return names


def test_the_longest_delegation_name_fits_the_limit():
    # the largest seq: every allowed delegation plus every rejected one (MAX_MANAGER_ASKS asks of 8 orders per round)
    largest = MAX_DELEGATIONS_CAP * (1 + MAX_MANAGER_ASKS * 8)
    (name,) = _names("r" * _longest(TypeAdapter(RunId)), [largest], REDRIVE_COUNT_MAX)
    assert 1 <= len(name) <= 80 and LOGGABLE_NAME.match(name), name


def test_names_are_distinct_per_delegation_and_per_redrive():
    seen = set()
    for run_id in ("run-a", "run-b"):
        for redrive in (0, 1, 2):
            for name in _names(run_id, [1, 2, 3, 10, 11], redrive):
                assert name not in seen and name.startswith(f"{run_id}-")
                seen.add(name)
    assert len(seen) == 2 * 3 * 5


def test_the_name_depends_on_nothing_that_changes_between_task_retries():
    state, _ = _delegation_start()
    expression = state["Parameters"]["Name.$"]
    assert "$$.Execution.RedriveCount" in expression and "States.UUID" not in expression
    assert not [a for a in re.findall(r"\$\$?[.A-Za-z_]*", expression) if a.startswith(("$$.State", "$$.Task"))]
