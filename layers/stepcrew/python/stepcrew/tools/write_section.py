"""``write_section``: turns structured content into one Markdown report section (no I/O, no model)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from stepcrew.models import ToolContext
from stepcrew.tools.base import Tool, ToolArgs, fit_largest


def _cell_type(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float):
        raise ValueError(f"a table cell must be text, a number or null, not {type(value).__name__}")
    return value


#: One table cell. The before-validator gives one readable error instead of one per union member.
Cell = Annotated[str | int | float | None, BeforeValidator(_cell_type)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        value = int(value) if value.is_integer() else round(value, 4)
    return _one_line(str(value)).replace("|", "\\|")


def count_words(markdown: str) -> int:
    """Whitespace-separated tokens holding at least one letter or digit (Markdown punctuation is not a word)."""
    return sum(1 for token in markdown.split() if any(ch.isalnum() for ch in token))


class Table(ToolArgs):
    """A table: ``columns`` (1-20 names) and ``rows`` (at most 50, each with one cell per column)."""

    columns: list[str] = Field(min_length=1, max_length=20)
    rows: list[list[Cell]] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _row_widths(self) -> Table:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} cells, expected {len(self.columns)} (one per column)")
        return self


def render(heading: str, summary: str, bullets: list[str], table: Table | None) -> str:
    """The section: ``## heading``, the summary paragraph, a bullet list, a Markdown table (floats rounded to 4
    decimal places, ``|`` escaped, empty cell for null). Ends with one newline."""
    parts = [f"## {_one_line(heading).lstrip('#').strip()}", summary.strip()]
    if bullets:
        parts.append("\n".join(f"- {_one_line(b)}" for b in bullets))
    if table is not None:
        lines = ["| " + " | ".join(_cell(c) for c in table.columns) + " |",
                 "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


class WriteSection(Tool):
    """``write_section``: ``{heading, summary, bullets?, table?}`` -> ``{"markdown": str, "words": int}``."""

    name = "write_section"
    arguments_by_reference = True  # a section (summary, bullets, table) often passes 2 KiB: stepcrew.tools.argrefs
    description = ("Write one section of the report as Markdown: a heading, a summary paragraph, optional "
                   "bullet points and an optional table. Put the key numbers in the summary or the table.")

    class Args(ToolArgs):
        heading: str = Field(min_length=1, max_length=200)
        summary: str = Field(min_length=1, max_length=4000)
        bullets: list[str] = Field(default_factory=list, max_length=20)
        table: Table | None = None

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        markdown = render(args.heading, args.summary, args.bullets, args.table)
        return {"markdown": markdown, "words": count_words(markdown)}

    def shrink(self, content: Any, max_bytes: int) -> Any | None:
        """Cut the Markdown at a word boundary and say so in a final line."""
        text = content["markdown"]
        note = "…\n\n*(section truncated to fit the tool output limit)*\n"

        def build(k: int) -> dict[str, Any]:
            cut = text[:k]
            if k < len(text) and " " in cut:
                cut = cut[: cut.rindex(" ")]
            md = cut.rstrip() + note
            return {"markdown": md, "words": count_words(md)}

        return fit_largest(build, len(text), max_bytes)
