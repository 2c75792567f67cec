"""JSON-safe values for tool results, with the standard library only: the tools' Lambdas (through
:mod:`stepcrew.tools.base`) and the SQL child process (:mod:`stepcrew.tools.sandbox`, which keeps pydantic and the
models out of its start) share this one conversion."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any


def to_jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: dates/times -> ISO 8601 strings, Decimal -> int or float, NaN/±inf -> None,
    UUID -> str, bytes -> hex string, tuples/sets -> lists, dict keys -> str; anything else unknown -> ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return str(value)
