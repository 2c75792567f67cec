"""The state folder: where it is, the errors for a folder that cannot be read, and the earlier file format.

Kept runs live in ``<folder>/table.db`` (:mod:`stepcrew.local.durable`: every write durable before the call
returns). This module holds what both layouts share: :func:`default_state_dir`, :class:`StateFileError`, the
DynamoDB-JSON <-> JSON-safe conversion of binary values, and :func:`read_legacy_items`, the reader of the state
version 1 file (``<folder>/table.json``, ``{"version": 1, "items": [<item in DynamoDB JSON>...]}``, saved whole at
process exit by earlier stepcrew versions), which :class:`stepcrew.local.durable.StateDB` imports once.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

FILE_VERSION = 1


def default_state_dir() -> Path:
    """``$STEPCREW_HOME/state``, else ``~/.stepcrew/state`` (not created here)."""
    home = os.environ.get("STEPCREW_HOME")
    return (Path(home) if home else Path.home() / ".stepcrew") / "state"


def _map_value(typed: dict, convert: Any) -> dict:
    """One typed DynamoDB JSON value (``{"<tag>": ...}``) with ``convert`` applied to its binary parts. Only the type
    tag decides: inside ``M`` the keys are attribute names (user data such as run ``inputs``), so a key literally
    named ``B`` is never mistaken for a binary value."""
    ((tag, inner),) = typed.items()
    if tag == "B":
        return {tag: convert(inner)}
    if tag == "BS":
        return {tag: [convert(b) for b in inner]}
    if tag == "M":
        return {tag: _map_binary(inner, convert)}
    if tag == "L":
        return {tag: [_map_value(v, convert) for v in inner]}
    return typed


def _map_binary(item: dict, convert: Any) -> dict:
    """An item (attribute name -> typed value) with ``convert`` applied to every binary value (``B``, ``BS``)."""
    return {name: _map_value(typed, convert) for name, typed in item.items()}


def _encode(value: Any) -> Any:
    """DynamoDB JSON from boto3 (bytes for B/BS) -> JSON-safe (base64 text)."""
    return _map_binary(value, lambda b: base64.b64encode(b).decode())


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode`."""
    return _map_binary(value, base64.b64decode)


class StateFileError(ValueError):
    """The state folder cannot be read (corrupt, or written by a newer stepcrew) or is misconfigured. The message
    names the file and what to do; nothing is changed."""


def read_legacy_items(folder: Path) -> list[dict]:
    """Items of ``<folder>/table.json`` (encoded: binary as base64 text), [] if there is no file. Raises
    :class:`StateFileError` for a file that is not valid JSON, of a newer version, or of another format."""
    path = Path(folder) / "table.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise StateFileError(f"{path} is not valid JSON ({type(exc).__name__}): the state folder {folder} looks "
                             "corrupt; move the file away to start with an empty state (nothing was changed)") from None
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > FILE_VERSION:
        raise StateFileError(f"{path} was written by a newer stepcrew (state version {version}, this one reads "
                             f"{FILE_VERSION}): upgrade stepcrew or use another STEPCREW_HOME (nothing was changed)")
    if not isinstance(data, dict) or version != FILE_VERSION or not isinstance(data.get("items"), list):
        raise StateFileError(f"{path}: not a stepcrew state file of version {FILE_VERSION} (nothing was changed)")
    return data["items"]
