"""Eval suites as data: a golden set of goals over datasets, with the answers a run must contain.

The format (the shipped suite is ``suites/analyst/suite.yaml``)::

    name: analyst
    description: "..."
    gate: {success_min: 0.9, wrong_but_passed_max: 0}     # optional: figure_accuracy_min, tool_accuracy_min
    datasets:
      penguins: {file: penguins.csv}       # relative to the suite file's folder, else to the stepcrew.data folder
    cases:
      - id: penguins-mass-by-species
        goal: "Compare the average body mass ... Which species is the heaviest on average?"
        dataset: penguins
        type: group_comparison
        answerable: true
        truth: penguins_mass_by_species    # name of the ground-truth function (informative here)
        expect:
          entity: "Gentoo"                 # must appear in the report's answer
          entities: ["Gentoo", ...]        # each must appear in the report's answer
          figures: [{name: mean_gentoo, value: 5076.02, tolerance: 0.5}]   # must appear in the report
          tools: [query_dataset]           # must have been called
      - id: weather-forecast
        goal: "Forecast next year's rainfall in Seattle."
        dataset: weather
        type: unanswerable
        answerable: false                  # the run must decline
        reason: forecast

:func:`load_suite` takes a path to such a file (or a folder holding ``suite.yaml``) or the name of a shipped suite
(``analyst``) and validates everything before anything runs. Every problem raises :class:`SuiteError` with a
one-line message naming the source and, for a case, its id and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, model_validator

from stepcrew.models import GOAL_MAX_CHARS
from stepcrew.text import one_line, read_text_file, yaml_mapping

SUITES_DIR = Path(__file__).resolve().parent / "suites"
#: Largest suite file read (bytes): a suite is tens of KB; anything much bigger is a mistake.
SUITE_FILE_MAX_BYTES = 1024 * 1024
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
CaseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class SuiteError(ValueError):
    """A suite could not be loaded or failed validation. The message is one line and names the source."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Gate(_Model):
    """Thresholds a run of the suite must meet (``stepcrew eval --gate``)."""

    success_min: Ratio = Field(description="(correct answers + correct declines) / cases, at least")
    wrong_but_passed_max: int = Field(ge=0, description="wrong reports that passed review, at most")
    figure_accuracy_min: Ratio | None = Field(default=None, description="expected figures found / all, at least")
    tool_accuracy_min: Ratio | None = Field(default=None, description="mean tool accuracy, at least")


class Dataset(_Model):
    file: Text


class Figure(_Model):
    """An expected number: found when some number of the report is within ``tolerance`` of ``value`` (absolute
    values compared, so a decline written as -29.1 % or 29.1 % both count)."""

    name: Name
    value: float
    tolerance: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _finite(self) -> Figure:
        if not (math.isfinite(self.value) and math.isfinite(self.tolerance)):
            raise ValueError("value and tolerance must be finite numbers")
        return self


class Expect(_Model):
    """What an answerable case's report must contain."""

    entity: Text | None = None
    entities: list[Text] = Field(default_factory=list, max_length=50)
    figures: list[Figure] = Field(default_factory=list, max_length=50)
    tools: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(
        default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _unique_figures(self) -> Expect:
        names = [f.name for f in self.figures]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate figure names: {', '.join(dupes)}")
        return self

    @property
    def answer_terms(self) -> list[str]:
        """``entity`` and ``entities``, de-duplicated, in order."""
        return list(dict.fromkeys([*([self.entity] if self.entity else []), *self.entities]))

    @property
    def has_answer(self) -> bool:
        return bool(self.entity or self.entities or self.figures)


class Case(_Model):
    """One goal of the suite over one of its datasets."""

    id: CaseId
    goal: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=GOAL_MAX_CHARS)]
    dataset: Name
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    answerable: bool
    truth: Name | None = None
    reason: Text | None = None
    expect: Expect | None = None

    @model_validator(mode="after")
    def _expectations(self) -> Case:
        if self.answerable and (self.expect is None or not self.expect.has_answer):
            raise ValueError("an answerable case needs expect with an entity, entities or figures")
        if not self.answerable and self.expect is not None and self.expect.has_answer:
            raise ValueError("an unanswerable case expects no entity, entities or figures (only tools)")
        return self

    @property
    def expected(self) -> Expect:
        """``expect``, or an empty one."""
        return self.expect or Expect()


class Suite(_Model):
    """A validated suite. :meth:`dataset_path` gives each dataset's resolved file (set by :func:`load_suite`)."""

    name: Name
    description: str = Field(default="", max_length=4000)
    gate: Gate
    datasets: dict[Name, Dataset] = Field(min_length=1, max_length=100)
    cases: list[Case] = Field(min_length=1, max_length=1000)
    _paths: dict[str, Path] = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr(default="<suite>")

    @property
    def source(self) -> str:
        return self._source

    def dataset_path(self, name: str) -> Path:
        """The absolute file of dataset ``name``. KeyError for an unknown name."""
        if name not in self._paths:
            raise KeyError(name)
        return self._paths[name]

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)


# --------------------------------------------------------------------------------------------- loading
def packaged_suites() -> list[str]:
    """Names of the suites shipped with stepcrew (``stepcrew/evals/suites/<name>/suite.yaml``)."""
    return sorted(p.parent.name for p in SUITES_DIR.glob("*/suite.yaml"))


def _source(path_or_name: str | Path) -> Path:
    text = str(path_or_name).strip()
    if not text:
        raise SuiteError("suite must not be empty: give a suite YAML file or a shipped suite name")
    path = Path(text).expanduser()
    if path.is_dir():
        return path / "suite.yaml"
    if not path.exists() and _NAME.match(text):
        packaged = SUITES_DIR / text / "suite.yaml"
        if packaged.is_file():
            return packaged
        raise SuiteError(f"unknown suite {text!r}; shipped suites: {', '.join(packaged_suites())} "
                         "(or give a path to a suite YAML file)")
    return path


def _read(path: Path) -> str:
    return read_text_file(path, SUITE_FILE_MAX_BYTES, "suite", SuiteError)


def _describe(exc: ValidationError, data: dict, source: str) -> str:
    """The first schema error as one line; inside a case, named by the case's id and the field's path."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = list(first.get("loc", ()))
    where = ""
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        raw_cases = data.get("cases")
        raw = raw_cases[loc[1]] if isinstance(raw_cases, list) and loc[1] < len(raw_cases) else None
        case_id = raw.get("id") if isinstance(raw, dict) else None
        where = f"case {case_id!r}" if isinstance(case_id, str) and case_id else f"case #{loc[1] + 1}"
        loc = loc[2:]
    field = ".".join(str(p) for p in loc)
    where = ": ".join(p for p in (where, field) if p) or "(root)"
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None or first.get("type") == "value_error" else \
        f" (got {one_line(repr(got), 80)})"
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return one_line(f"{source}: invalid suite: {where}: {msg}{shown}{more}")


def parse_suite(text: str, source: str = "<suite>", base_dir: Path | None = None) -> Suite:
    """Parse and validate suite YAML text. ``base_dir``: the folder dataset files are looked up in first (then
    the ``stepcrew.data`` folder). Raises SuiteError."""
    data = yaml_mapping(text, source, "suite", SuiteError)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(_describe(exc, data, source)) from exc
    suite._source = source
    _check(suite, source, base_dir)
    return suite


def _check(suite: Suite, source: str, base_dir: Path | None) -> None:
    """What the schema alone cannot know: unique ids, known datasets and tools, existing dataset files."""
    from stepcrew.tools.datasets import dataset_uri
    from stepcrew.tools.errors import DatasetError
    from stepcrew.tools.registry import known_tools

    ids = [c.id for c in suite.cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SuiteError(f"{source}: duplicate case id(s): {', '.join(dupes)}")
    tools = known_tools()
    for case in suite.cases:
        if case.dataset not in suite.datasets:
            raise SuiteError(f"{source}: case {case.id!r}: unknown dataset {case.dataset!r}; "
                             f"datasets: {', '.join(sorted(suite.datasets))}")
        unknown = [t for t in case.expected.tools if t not in tools]
        if unknown:
            raise SuiteError(f"{source}: case {case.id!r}: expect.tools names unknown tool(s): {', '.join(unknown)}; "
                             f"known tools: {', '.join(sorted(tools))}")
    import stepcrew.data

    data_dir = Path(stepcrew.data.__file__).resolve().parent
    for name, ds in suite.datasets.items():
        candidates = [base_dir / ds.file] if base_dir is not None else []
        candidates.append(data_dir / ds.file)
        path = next((p.resolve() for p in candidates if p.is_file()), None)
        if path is None:
            looked = " or ".join(str(p.parent) for p in candidates)
            raise SuiteError(f"{source}: dataset {name!r}: file {ds.file!r} not found (looked in {looked})")
        try:
            dataset_uri(path)  # the same checks a run's dataset gets (suffix, size, content)
        except DatasetError as exc:
            raise SuiteError(one_line(f"{source}: dataset {name!r}: {exc}")) from exc
        suite._paths[name] = path


def load_suite(path_or_name: str | Path) -> Suite:
    """Load and validate a suite: a YAML file, a folder holding ``suite.yaml``, or a shipped suite's name
    (``analyst``). Raises SuiteError (one line) for an unreadable or malformed file, schema errors (naming the
    case id and field), duplicate case ids, a case naming an unknown dataset, a missing dataset file, an unknown
    tool in ``expect.tools`` and an answerable case without expectations."""
    path = _source(path_or_name)
    return parse_suite(_read(path), source=str(path), base_dir=path.resolve().parent)


__all__ = ["Case", "Dataset", "Expect", "Figure", "Gate", "Suite", "SuiteError", "load_suite", "packaged_suites",
           "parse_suite"]
