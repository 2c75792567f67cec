"""Crews as data: the packaged default crew, loading from a path, and every CrewError case."""

from pathlib import Path

import pytest
import yaml

from stepcrew.crew import CREW_DIR, CrewError, load_crew, packaged_crews, parse_crew, validate_crew
from stepcrew.tools.registry import known_tools

DEFAULT_YAML = CREW_DIR / "default.yaml"


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "crew.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _default_data() -> dict:
    return yaml.safe_load(DEFAULT_YAML.read_text())


def test_default_crew_has_planner_two_workers_reviewer_synthesizer_with_known_tools():
    crew = load_crew("default")
    assert "default" in packaged_crews()
    assert crew.planner.name == "planner" and crew.reviewer.name == "reviewer"
    assert crew.synthesizer.name == "synthesizer"
    assert len(crew.workers) >= 2
    analyst = crew.worker("data_analyst")
    assert {"describe_dataset", "query_dataset", "calculator"} <= set(analyst.tools)
    assert "write_section" in crew.worker("writer").tools
    for role in [crew.planner, *crew.workers, crew.reviewer, crew.synthesizer]:
        assert role.role and role.goal and role.backstory and role.expertise and role.output_rules
        assert set(role.tools) <= known_tools()


def test_crew_loads_from_a_yaml_path(tmp_path):
    data = _default_data() | {"name": "mine"}
    crew = load_crew(str(_write(tmp_path, data)))
    assert crew.name == "mine"


def test_unknown_crew_name_lists_the_packaged_crews():
    with pytest.raises(CrewError, match=r"unknown crew 'nope'; packaged crews: .*default"):
        load_crew("nope")


def test_empty_name_is_rejected():
    with pytest.raises(CrewError, match="must not be empty"):
        load_crew("  ")


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(CrewError, match=r"missing\.yaml: cannot read crew file"):
        load_crew(str(tmp_path / "missing.yaml"))


def test_a_directory_is_unreadable(tmp_path):
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(CrewError, match="cannot read crew file"):
        load_crew(str(folder))


def test_malformed_yaml_says_where(tmp_path):
    path = _write(tmp_path, "name: x\nplanner:\n  role: [unclosed\n  goal: y\n")
    with pytest.raises(CrewError, match=r"malformed YAML at line \d+, column \d+") as err:
        load_crew(str(path))
    assert "\n" not in str(err.value)


def test_a_yaml_list_is_not_a_crew(tmp_path):
    with pytest.raises(CrewError, match="must hold a mapping, got list"):
        load_crew(str(_write(tmp_path, "- a\n- b\n")))


def test_schema_error_names_the_field(tmp_path):
    data = _default_data()
    del data["planner"]
    with pytest.raises(CrewError, match=r"invalid crew: planner: Field required"):
        load_crew(str(_write(tmp_path, data)))


def test_schema_error_shows_the_bad_value_and_counts_the_rest(tmp_path):
    data = _default_data()
    data["workers"][0]["tools"] = ["Bad Tool"]
    data["reviewer"]["model_tier"] = "huge"
    with pytest.raises(CrewError, match=r"workers\.0\.tools\.0: String should match pattern .*'Bad Tool'.*1 more"):
        load_crew(str(_write(tmp_path, data)))


def test_duplicate_worker_names_are_a_schema_error(tmp_path):
    data = _default_data()
    data["workers"][1]["name"] = data["workers"][0]["name"]
    with pytest.raises(CrewError, match="duplicate worker names: data_analyst"):
        load_crew(str(_write(tmp_path, data)))


def test_unknown_tools_are_named_with_the_role(tmp_path):
    data = _default_data()
    data["workers"][1]["tools"] = ["write_section", "teleport"]
    with pytest.raises(CrewError, match=r"role 'writer' names unknown tool\(s\): teleport; known tools: calculator"):
        load_crew(str(_write(tmp_path, data)))


def test_validate_crew_uses_the_given_tool_set():
    crew = parse_crew(DEFAULT_YAML.read_text())
    assert validate_crew(crew, known_tools()) is crew
    with pytest.raises(CrewError, match="unknown tool"):
        validate_crew(crew, {"calculator"})
