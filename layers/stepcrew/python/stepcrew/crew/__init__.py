"""Crews as data: load a crew from YAML and check it against the tool registry.

``load_crew("default")`` reads the packaged ``stepcrew/crew/default.yaml``; any other argument that looks like
a path (holds a ``/`` or ends in ``.yaml``/``.yml``) is read as a YAML file. Every problem raises
:class:`CrewError` with a one-line message that names the source: unknown crew name, unreadable file, malformed
YAML (with line and column), schema errors (the first pydantic error, readable) and unknown tools.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from stepcrew.text import describe_validation_error, read_text_file, yaml_mapping
from stepcrew.models import Crew

CREW_DIR = Path(__file__).resolve().parent
#: Largest crew file read (bytes): a crew is a few KB; anything bigger is a mistake, not a crew.
CREW_FILE_MAX_BYTES = 256 * 1024
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class CrewError(ValueError):
    """A crew could not be loaded or failed validation. The message is one line and names the source."""


def packaged_crews() -> list[str]:
    """Names of the crews shipped with stepcrew (``stepcrew/crew/<name>.yaml``)."""
    return sorted(p.stem for p in CREW_DIR.glob("*.yaml"))


def _source(name_or_path: str) -> Path:
    if _NAME.match(name_or_path):
        path = CREW_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise CrewError(f"unknown crew {name_or_path!r}; packaged crews: {', '.join(packaged_crews())} "
                            "(or give a path to a YAML file)")
        return path
    return Path(name_or_path).expanduser()


def _read(path: Path) -> str:
    return read_text_file(path, CREW_FILE_MAX_BYTES, "crew", CrewError)


def parse_crew(text: str, source: str = "<crew>") -> Crew:
    """Parse crew YAML text into a :class:`~stepcrew.models.Crew` (schema only, no tool check).
    Raises CrewError for malformed YAML (line/column given), a non-mapping document or a schema error."""
    data = yaml_mapping(text, source, "crew", CrewError)
    try:
        return Crew.model_validate(data)
    except ValidationError as exc:
        raise CrewError(describe_validation_error(exc, prefix=f"{source}: invalid crew: ")) from exc


def validate_crew(crew: Crew, known_tools: set[str] | None = None) -> Crew:
    """Check that every role's tools exist (``known_tools``, default: :func:`stepcrew.tools.registry.known_tools`)
    (the manager's too, for a hierarchical or hybrid crew; the model has checked its process and manager already).
    Returns the crew; raises CrewError naming the first role with unknown tools."""
    if known_tools is None:
        from stepcrew.tools.registry import known_tools as registry_tools

        known_tools = registry_tools()
    for role in [crew.planner, *crew.workers, crew.synthesizer, crew.reviewer, *filter(None, [crew.manager])]:
        unknown = [t for t in role.tools if t not in known_tools]
        if unknown:
            raise CrewError(f"crew {crew.name!r}: role {role.name!r} names unknown tool(s): {', '.join(unknown)}; "
                            f"known tools: {', '.join(sorted(known_tools))}")
    return crew


def load_crew(name_or_path: str) -> Crew:
    """Load and validate a crew: a packaged crew name (``"default"``) or a path to a YAML file.
    Raises CrewError (see the module docstring for the cases)."""
    if not name_or_path or not name_or_path.strip():
        raise CrewError("crew name must not be empty")
    path = _source(name_or_path.strip())
    return validate_crew(parse_crew(_read(path), source=str(path)))


__all__ = ["CREW_DIR", "CrewError", "load_crew", "packaged_crews", "parse_crew", "validate_crew"]
