"""``process`` per crew: parallel (default), sequential, hierarchical and hybrid (a manager, not a worker) are
validated and loaded; an unknown process is a one-line CrewError."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stepcrew.crew import CREW_DIR, CrewError, load_crew, packaged_crews
from stepcrew.models import Plan, SubTask

DEFAULT = yaml.safe_load((CREW_DIR / "default.yaml").read_text())


def _crew_file(tmp_path: Path, **changes) -> str:
    path = tmp_path / "crew.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT, "name": "mine", **changes}))
    return str(path)


def test_the_default_crew_is_parallel_and_the_sequential_crew_ships():
    assert load_crew("default").process == "parallel"
    assert "sequential" in packaged_crews()
    seq = load_crew("sequential")
    assert seq.process == "sequential" and seq.workers == load_crew("default").workers


@pytest.mark.parametrize("changes, message", [
    ({"process": "star"}, "process"),
    ({"process": "hierarchical"}, "needs a manager role"),
    ({"process": "hybrid"}, "needs a manager role"),
    ({"process": "hierarchical", "manager": DEFAULT["workers"][0]}, "is also a worker"),
    ({"manager": {**DEFAULT["planner"], "name": "boss"}}, "has no manager"),
    ({"process": "hierarchical", "manager": {**DEFAULT["planner"], "name": "boss", "tools": ["teleport"]}},
     "role 'boss' names unknown tool"),
    ({"process": "hybrid", "manager": {**DEFAULT["planner"], "name": "boss"}, "max_delegations": 0},
     "max_delegations"),
])
def test_bad_processes_are_one_line_crew_errors(tmp_path, changes, message):
    with pytest.raises(CrewError, match=message) as info:
        load_crew(_crew_file(tmp_path, **changes))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("process", ["hierarchical", "hybrid"])
def test_a_crew_with_a_manager_loads_and_the_packaged_ones_ship(tmp_path, process):
    crew = load_crew(_crew_file(tmp_path, process=process, manager={**DEFAULT["planner"], "name": "boss"}))
    assert crew.process == process and crew.manager.name == "boss"
    packaged = load_crew(process)
    assert packaged.process == process and packaged.manager is not None
    assert packaged.workers == load_crew("default").workers
    assert load_crew("parallel").process == "parallel"
    assert {"default", "parallel", "sequential", "hierarchical", "hybrid"} <= set(packaged_crews())


@pytest.mark.parametrize("changes, message", [
    ({"process": "star"}, "process"),
    ({"process": "hierarchical"}, "needs a manager role"),
    ({"process": "hybrid", "manager": DEFAULT["workers"][1]}, "is also a worker"),
])
def test_the_cli_refuses_a_bad_crew_process_with_exit_2_and_one_line(tmp_path, changes, message):
    from stepcrew.cli import app

    result = CliRunner().invoke(app, ["run", "Compute 6 times 7", "--crew", _crew_file(tmp_path, **changes), "--json"])
    assert result.exit_code == 2
    text = (result.stderr if result.stderr_bytes else result.output).strip()
    assert message in text and "Traceback" not in text


def test_the_cli_refuses_a_bad_process_with_exit_2_before_any_run(tmp_path):
    from stepcrew.cli import app

    result = CliRunner().invoke(app, ["run", "Compute 6 times 7", "--crew", _crew_file(tmp_path, process="hybrid"),
                                      "--json"])
    assert result.exit_code == 2
    assert "needs a manager role" in (result.stderr if result.stderr_bytes else result.output)


def _sub(i, deps=()):
    return SubTask(id=i, title=i, instructions=f"do {i}", depends_on=list(deps))


def test_a_sequential_plan_is_a_chain_in_dependency_order():
    # c depends on b, listed first; a and d are independent: waves [a, b, d], [c] -> chain a, b, d, c
    plan = Plan(subtasks=[_sub("c", ["b"]), _sub("a"), _sub("b"), _sub("d")])
    chain = plan.sequential()
    assert [(s.id, s.depends_on) for s in chain.subtasks] == [
        ("a", []), ("b", ["a"]), ("d", ["a", "b"]), ("c", ["a", "b", "d"])]
    assert chain.waves() == [["a"], ["b"], ["d"], ["c"]]
    assert [s.instructions for s in chain.subtasks] == ["do a", "do b", "do d", "do c"]
    assert plan.subtasks[0].depends_on == ["b"]  # the original is left as it was
