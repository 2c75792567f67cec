"""Small text helpers shared by every layer (this module imports nothing of stepcrew)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def one_line(text: str, limit: int = 4000) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space, clipped to ``limit``
    characters (an ellipsis marks the cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8: what DynamoDB and Step Functions count (a CJK character is 3 bytes)."""
    return len(text.encode("utf-8"))


def clip_bytes(text: str, max_bytes: int, marker: str = "") -> str:
    """``text`` unchanged when its UTF-8 form fits ``max_bytes``; else its longest prefix that fits together with
    ``marker`` (cut on a character boundary, never inside a multi-byte character), then ``marker``."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    room = max(max_bytes - len(marker.encode("utf-8")), 0)
    return data[:room].decode("utf-8", errors="ignore") + marker


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """The first error of a pydantic ``ValidationError`` as one readable line, e.g.
    ``"workers.0.tools.1: String should match pattern '^[a-z]...' (got 'Bad Tool'); 2 more error(s)"``."""
    errors = exc.errors(include_url=False)
    if not errors:
        return one_line(f"{prefix}{exc}")
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {one_line(repr(got), 80)})"
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return one_line(f"{prefix}{loc}: {first.get('msg', 'invalid')}{shown}{more}")


def read_text_file(path: Path, max_bytes: int, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of a small file (a crew, a suite). Raises ``error`` with a one-line message naming ``what``
    when it is larger than ``max_bytes``, unreadable or not UTF-8."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {what} file too large ({size} bytes > {max_bytes})")
        return path.read_text(encoding="utf-8")
    except error:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise error(f"{path}: cannot read {what} file: {reason}") from exc


def yaml_mapping(text: str, source: str, what: str, error: type[Exception]) -> dict:
    """The mapping a small YAML document (a crew, a suite) holds. Raises ``error`` with one line: malformed YAML
    (line and column given) or a document that is not a mapping."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(one_line(f"{source}: malformed YAML{where}: {exc.problem or exc.context}")) from exc
    except yaml.YAMLError as exc:
        raise error(one_line(f"{source}: malformed YAML: {exc}")) from exc
    if not isinstance(data, dict):
        raise error(f"{source}: a {what} file must hold a mapping, got {type(data).__name__}")
    return data
