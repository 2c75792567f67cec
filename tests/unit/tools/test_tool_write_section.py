"""write_section: Markdown rendering, argument validation, the output cap."""

import json

import pytest

from stepcrew.models import TOOL_OUTPUT_MAX_BYTES
from stepcrew.tools.write_section import WriteSection, count_words


def _write(make_invocation, **arguments):
    return WriteSection().invoke(make_invocation("write_section", arguments))


def test_renders_heading_summary_bullets_and_table(make_invocation):
    result = _write(make_invocation, heading="Body mass by species",
                    summary="Gentoo penguins are the heaviest.",
                    bullets=["Gentoo: 5076.0 g", "Adelie:\n3700.7 g"],
                    table={"columns": ["species", "n", "mass_g", "note"],
                           "rows": [["Gentoo", 124, 5076.016129, None], ["Adelie", 152, 3700.0, "a|b"]]})
    assert result.ok and not result.truncated
    assert result.content["markdown"] == (
        "## Body mass by species\n\n"
        "Gentoo penguins are the heaviest.\n\n"
        "- Gentoo: 5076.0 g\n"
        "- Adelie: 3700.7 g\n\n"
        "| species | n | mass_g | note |\n"
        "|---|---|---|---|\n"
        "| Gentoo | 124 | 5076.0161 |  |\n"
        "| Adelie | 152 | 3700 | a\\|b |\n")
    assert result.content["words"] == count_words(result.content["markdown"]) == 26


def test_heading_only_summary_is_enough(make_invocation):
    result = _write(make_invocation, heading="## Findings", summary="Three species.")
    assert result.content == {"markdown": "## Findings\n\nThree species.\n", "words": 3}


@pytest.mark.parametrize(("arguments", "line"), [
    ({"summary": "s"}, "heading: Field required"),
    ({"heading": "h", "summary": ""}, "summary: String should have at least 1 character"),
    ({"heading": "h" * 201, "summary": "s"}, "heading: String should have at most 200 characters"),
    ({"heading": "h", "summary": "s", "bullets": ["b"] * 21}, "bullets: List should have at most 20 items after "
                                                              "validation, not 21"),
    ({"heading": "h", "summary": "s", "table": {"columns": ["a", "b"], "rows": [["x"]]}},
     "table: Value error, row 0 has 1 cells, expected 2 (one per column)"),
    ({"heading": "h", "summary": "s", "table": {"columns": ["a"], "rows": [["x"]] * 51}},
     "table.rows: List should have at most 50 items after validation, not 51"),
    ({"heading": "h", "summary": "s", "table": {"columns": ["a"], "rows": [[["nested"]]]}},
     "table.rows.0.0: Value error, a table cell must be text, a number or null, not list"),
    ({"heading": "h", "summary": "s", "footer": "f"}, "footer: Extra inputs are not permitted"),
])
def test_invalid_arguments(make_invocation, arguments, line):
    result = _write(make_invocation, **arguments)
    assert result.error.type == "InvalidArguments"
    assert line in result.error.message.splitlines()


def test_a_huge_section_is_cut_to_the_cap(make_invocation):
    # Given a table of 50 rows x 20 long cells (far above 8 KiB of Markdown)
    table = {"columns": [f"c{i}" for i in range(20)], "rows": [["word " * 20] * 20] * 50}
    # When
    result = _write(make_invocation, heading="Everything", summary="All the data.", table=table)
    # Then
    assert result.ok and result.truncated
    markdown = result.content["markdown"]
    assert markdown.startswith("## Everything\n\nAll the data.\n\n| c0 |")
    assert markdown.endswith("*(section truncated to fit the tool output limit)*\n")
    assert result.content["words"] == count_words(markdown)
    assert len(json.dumps(result.content)) <= TOOL_OUTPUT_MAX_BYTES
