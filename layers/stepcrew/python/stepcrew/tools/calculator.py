"""``calculator``: safe arithmetic with :mod:`simpleeval` (never ``eval``).

Allowed: numbers, ``+ - * / // % **``, comparisons, ``and``/``or``/``not``, parentheses, list literals as function
arguments, the constants ``pi`` and ``e`` and the functions in :data:`FUNCTIONS`. Everything else (names,
attributes, subscripts, strings, keyword arguments, lambdas, comprehensions, several statements) is rejected.

Limits: every intermediate and final value must be a finite real number with ``abs(value) <= MAX_ABS_VALUE``
(the largest IEEE 754 double, so every result fits a JSON number), exponents are at most ``MAX_EXPONENT`` in
magnitude, lists hold at most ``MAX_LIST_ITEMS`` numbers. Violations raise :class:`CalculationError`.
"""

from __future__ import annotations

import ast
import math
import operator as op
import statistics
import sys
from collections.abc import Callable
from typing import Any

import simpleeval
from pydantic import Field

from stepcrew.models import ToolContext
from stepcrew.tools.base import CalculationError, Tool, ToolArgs

MAX_EXPRESSION_CHARS = 500
MAX_ABS_VALUE = sys.float_info.max  # ~1.8e308: any result converts to a float / JSON number
MAX_EXPONENT = 10_000
MAX_LIST_ITEMS = 1_000

Number = int | float


def _num(x: Any, where: str) -> Number:
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int | float):
        return x
    kind = "a list" if isinstance(x, list | tuple) else type(x).__name__
    raise CalculationError(f"{where} needs numbers, got {kind}")


def _check(x: Any) -> Number:
    """A result must be a finite real number within ±MAX_ABS_VALUE."""
    if isinstance(x, complex):
        raise CalculationError("the result is not a real number (e.g. a fractional power of a negative number)")
    if isinstance(x, float) and not math.isfinite(x):
        raise CalculationError("the result is not a finite number (overflow)")
    if isinstance(x, int | float) and not isinstance(x, bool) and abs(x) > MAX_ABS_VALUE:
        raise CalculationError(f"the result is too large (limit ±{MAX_ABS_VALUE:.4g})")
    return x


def _power(a: Any, b: Any) -> Number:
    a, b = _num(a, "**"), _num(b, "**")
    if abs(b) > MAX_EXPONENT:
        raise CalculationError(f"exponent {b} is too large (limit {MAX_EXPONENT})")
    if abs(a) > 1 and b > 0 and b * math.log10(abs(a)) > math.log10(MAX_ABS_VALUE):
        raise CalculationError(f"the result is too large (limit ±{MAX_ABS_VALUE:.4g})")
    return _check(a ** b)


def _binary(fn: Callable[[Any, Any], Any], symbol: str) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        return _check(fn(_num(a, symbol), _num(b, symbol)))
    return apply


def _values(args: tuple[Any, ...], fname: str) -> list[Number]:
    """Numbers from ``f(1, 2, 3)`` or ``f([1, 2, 3])``."""
    items = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
    if not items:
        raise CalculationError(f"{fname}() needs at least one number")
    if len(items) > MAX_LIST_ITEMS:
        raise CalculationError(f"{fname}() takes at most {MAX_LIST_ITEMS} numbers")
    return [_num(v, f"{fname}()") for v in items]


def _unary(fn: Callable[[Number], Any], fname: str) -> Callable[[Any], Any]:
    def apply(x: Any) -> Any:
        return _check(fn(_num(x, f"{fname}()")))
    apply.__name__ = fname
    return apply


def _aggregate(fn: Callable[[list[Number]], Any], fname: str) -> Callable[..., Any]:
    def apply(*args: Any) -> Any:
        return _check(fn(_values(args, fname)))
    apply.__name__ = fname
    return apply


def _round(x: Any, ndigits: Any = None) -> Number:
    x = _num(x, "round()")
    if ndigits is None:
        return _check(round(x))
    if isinstance(ndigits, bool) or not isinstance(ndigits, int) or abs(ndigits) > 308:
        raise CalculationError("round() needs a whole number of digits between -308 and 308")
    return _check(round(x, ndigits))


def _log(x: Any, base: Any = None) -> Number:
    x = _num(x, "log()")
    return _check(math.log(x) if base is None else math.log(x, _num(base, "log()")))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": _unary(abs, "abs"),
    "round": _round,
    "min": _aggregate(min, "min"),
    "max": _aggregate(max, "max"),
    "sum": _aggregate(math.fsum, "sum"),
    "mean": _aggregate(statistics.fmean, "mean"),
    "median": _aggregate(statistics.median, "median"),
    "sqrt": _unary(math.sqrt, "sqrt"),
    "log": _log,
    "log10": _unary(math.log10, "log10"),
    "exp": _unary(math.exp, "exp"),
    "floor": _unary(math.floor, "floor"),
    "ceil": _unary(math.ceil, "ceil"),
    "pow": _power,
}
NAMES: dict[str, float] = {"pi": math.pi, "e": math.e}

OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: _binary(op.add, "+"),
    ast.Sub: _binary(op.sub, "-"),
    ast.Mult: _binary(op.mul, "*"),
    ast.Div: _binary(op.truediv, "/"),
    ast.FloorDiv: _binary(op.floordiv, "//"),
    ast.Mod: _binary(op.mod, "%"),
    ast.Pow: _power,
    ast.USub: lambda a: _check(-_num(a, "-")),
    ast.UAdd: lambda a: _check(+_num(a, "+")),
    ast.Not: lambda a: not _num(a, "not"),
    ast.Eq: _binary(op.eq, "=="),
    ast.NotEq: _binary(op.ne, "!="),
    ast.Gt: _binary(op.gt, ">"),
    ast.Lt: _binary(op.lt, "<"),
    ast.GtE: _binary(op.ge, ">="),
    ast.LtE: _binary(op.le, "<="),
}

#: AST node types the evaluator accepts; everything else is "not allowed".
ALLOWED_NODES = (ast.Expr, ast.Constant, ast.Name, ast.UnaryOp, ast.BinOp, ast.BoolOp, ast.Compare, ast.Call,
                 ast.List, ast.Tuple)


class _Evaluator(simpleeval.SimpleEval):
    """SimpleEval restricted to :data:`ALLOWED_NODES`, numeric constants and :data:`NAMES`."""

    def __init__(self) -> None:
        super().__init__(operators=OPERATORS, functions=dict(FUNCTIONS), names=dict(NAMES))
        self.nodes = {k: v for k, v in self.nodes.items() if k in ALLOWED_NODES}
        self.nodes[ast.List] = self.nodes[ast.Tuple] = self._eval_sequence

    @staticmethod
    def parse(expr: str) -> ast.AST:
        body = ast.parse(expr.strip()).body
        if len(body) != 1 or not isinstance(body[0], ast.Expr):
            raise CalculationError("give exactly one expression (no statements, assignments or ';')")
        return body[0]

    def _eval(self, node: ast.AST) -> Any:
        if type(node) not in self.nodes:
            raise CalculationError(f"{type(node).__name__} is not allowed: use numbers, operators, pi, e and the "
                                   "listed functions")
        return super()._eval(node)

    def _eval_constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool | int | float):
            return node.value
        raise CalculationError(f"only numbers are allowed, not {type(node.value).__name__} literals")

    def _eval_name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        raise CalculationError(f"unknown name {node.id!r}: the only constants are {', '.join(sorted(NAMES))}")

    def _eval_sequence(self, node: ast.List | ast.Tuple) -> list[Any]:
        if len(node.elts) > MAX_LIST_ITEMS:
            raise CalculationError(f"a list holds at most {MAX_LIST_ITEMS} numbers")
        return [self._eval(e) for e in node.elts]

    def _eval_compare(self, node: ast.Compare) -> Any:
        for operation in node.ops:
            if type(operation) not in self.operators:
                raise CalculationError(f"operator {type(operation).__name__} is not allowed")
        return super()._eval_compare(node)

    def _eval_call(self, node: ast.Call) -> Any:
        if node.keywords:
            raise CalculationError("keyword arguments are not allowed")
        if not isinstance(node.func, ast.Name) or node.func.id not in self.functions:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise CalculationError(f"unknown function {name!r}; allowed: {', '.join(sorted(FUNCTIONS))}")
        return super()._eval_call(node)


def evaluate(expression: str) -> Number | bool:
    """Evaluate ``expression`` and return an int, a float or (for comparisons) a bool.
    Raises :class:`CalculationError` with a one-line reason on any failure."""
    try:
        value = _Evaluator().eval(expression)
    except CalculationError:
        raise
    except SyntaxError as exc:
        raise CalculationError(f"syntax error at column {exc.offset or 0}: {exc.msg}") from None
    except RecursionError:
        raise CalculationError("the expression is nested too deeply") from None
    except ZeroDivisionError:
        raise CalculationError("division by zero") from None
    except OverflowError:
        raise CalculationError(f"the result is too large (limit ±{MAX_ABS_VALUE:.4g})") from None
    except ValueError as exc:
        msg = str(exc)
        raise CalculationError(f"{msg} (e.g. sqrt or log of a negative number)" if "domain" in msg else msg) from None
    except TypeError as exc:
        raise CalculationError(f"wrong arguments: {exc}") from None
    except simpleeval.OperatorNotDefined as exc:
        raise CalculationError(f"operator {type(exc.attr).__name__} is not allowed") from None
    except simpleeval.FeatureNotAvailable as exc:
        raise CalculationError(f"not allowed in an expression: {exc}") from None
    except simpleeval.InvalidExpression as exc:
        raise CalculationError(str(exc)) from None
    if isinstance(value, bool):
        return value
    return _check(_num(value, "the result"))


class Calculator(Tool):
    """``calculator``: ``{expression}`` -> ``{"expression": str, "value": int | float | bool}``."""

    name = "calculator"
    description = ("Evaluate one arithmetic expression exactly; use it for every computed number. "
                   f"+ - * / // % ** ( ), pi, e, {' '.join(sorted(FUNCTIONS))} (list or numbers).")

    class Args(ToolArgs):
        expression: str = Field(min_length=1, max_length=MAX_EXPRESSION_CHARS,
                                description="e.g. '(130 - 104) / 104 * 100'")

    def run(self, args: Args, ctx: ToolContext) -> dict[str, Any]:
        return {"expression": args.expression, "value": evaluate(args.expression)}
