"""Static bounds on a query before DuckDB runs it: functions that build huge values in one expression.

DuckDB's memory limit covers its buffer manager, and an interrupt lands between vectors: one expression such as
``repeat('x', 2000000000)`` allocates outside both and runs for tens of seconds (seen: 29-33 s against a 10 s limit,
1 GB RSS against a 614 MiB cap). So the query's syntax tree (DuckDB's own parser, ``json_serialize_sql``) is read
first, and a query is refused, with a message the model can act on, when it

- calls ``repeat``, ``lpad``, ``rpad`` with a count that is not a literal of at most :data:`MAX_REPEAT`;
- calls ``range`` / ``generate_series`` with arguments that are not literals or span more than :data:`MAX_SERIES`
  values;
- aggregates strings or lists (``string_agg``, ``group_concat``, ``listagg``, ``list``, ``array_agg``): values that
  grow with the table (a report wants counts, sums and means);
- uses a recursive CTE (no bound on its rows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from stepcrew.tools.errors import LimitExceeded

MAX_REPEAT = 10_000
MAX_SERIES = 1_000_000
_PADS = {"repeat": 1, "lpad": 1, "rpad": 1}  # function -> index of its count argument
_SERIES = {"range", "generate_series"}
_GROWING_AGGREGATES = {"string_agg", "group_concat", "listagg", "list", "array_agg", "histogram"}


def _nodes(tree: Any) -> Iterator[dict]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _literal(arg: dict) -> float | None:
    """The number of a literal argument (a negative literal is ``-`` applied to one), else None."""
    expr = arg.get("expression", arg)
    if expr.get("class") == "CONSTANT":
        try:
            value = float(str((expr.get("literal") or {}).get("text") or expr.get("value", {}).get("value")))
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None
    if expr.get("class") == "FUNCTION" and expr.get("function_name") == "-" and len(expr.get("arguments", [])) == 1:
        inner = _literal(expr["arguments"][0])
        return -inner if inner is not None else None
    return None


def check_sql_bounds(cursor: Any, sql: str) -> None:
    """Raise LimitExceeded when ``sql`` builds an unbounded value (see the module docstring). A statement DuckDB
    cannot parse passes here (executing it gives the parser's QueryError)."""
    try:
        tree = json.loads(cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    except Exception:  # noqa: BLE001 - parse problems are reported by the real execution
        return
    if tree.get("error"):
        return
    for node in _nodes(tree):
        if node.get("type") == "RECURSIVE_CTE_NODE":
            raise LimitExceeded("recursive CTEs are not allowed: their rows are unbounded; use GROUP BY")
        if node.get("class") != "FUNCTION":
            continue
        name = str(node.get("function_name", "")).lower()
        args = node.get("arguments") or node.get("children") or []
        if name in _PADS:
            count = _literal(args[_PADS[name]]) if len(args) > _PADS[name] else None
            if count is None or count > MAX_REPEAT:
                raise LimitExceeded(f"{name}() builds huge values: its count must be a number of at most "
                                    f"{MAX_REPEAT}")
        elif name in _SERIES:
            values = [_literal(a) for a in args]
            if not values or any(v is None for v in values):
                raise LimitExceeded(f"{name}() needs literal bounds (at most {MAX_SERIES} values)")
            start, stop, step = (0.0, values[0], 1.0) if len(values) == 1 else (
                values[0], values[1], values[2] if len(values) > 2 else 1.0)
            if step == 0 or (stop - start) / step > MAX_SERIES:
                raise LimitExceeded(f"{name}() may produce at most {MAX_SERIES} values")
        elif name in _GROWING_AGGREGATES:
            raise LimitExceeded(f"{name}() builds values that grow with the table: aggregate to numbers (count, sum, "
                                "avg, min, max) or return rows with LIMIT")
