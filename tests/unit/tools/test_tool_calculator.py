"""calculator: safe arithmetic with simpleeval, typed errors, argument validation."""

import math

import pytest

from stepcrew.tools.calculator import MAX_EXPRESSION_CHARS, Calculator, evaluate
from stepcrew.tools.errors import CalculationError


@pytest.mark.parametrize(("expression", "expected"), [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 // 2 + 7 % 2", 4),
    ("2 ** 10", 1024),
    ("2 ** -2", 0.25),
    ("(5076.0 - 3700.7) / 3700.7 * 100", (5076.0 - 3700.7) / 3700.7 * 100),
    ("sqrt(16) + abs(-2)", 6.0),
    ("round(pi, 3)", 3.142),
    ("round(2.7)", 3),
    ("floor(2.7) + ceil(2.1)", 5),
    ("log(100, 10) + log10(1000) + log(e)", 6.0),
    ("exp(0)", 1.0),
    ("pow(2, 8)", 256),
    ("min(4, 2, 8) + max([1, 9, 3])", 11),
    ("mean([3700.7, 3733.1, 5076.0])", (3700.7 + 3733.1 + 5076.0) / 3),
    ("sum([1, 2, 3.5])", 6.5),
    ("median([5, 1, 3])", 3),
    ("5076.0 > 3733.1", True),
    ("not 0", True),
])
def test_evaluates_arithmetic(expression, expected):
    # When / Then
    assert evaluate(expression) == pytest.approx(expected)
    assert type(evaluate(expression)) is type(expected)


@pytest.mark.parametrize(("expression", "reason"), [
    ("1 / 0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("x + 1", "unknown name 'x'"),
    ("__import__('os')", "unknown function '__import__'"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("(1).__class__", "Attribute is not allowed"),
    ("abs.__globals__", "Attribute is not allowed"),
    ("'a' * 3", "only numbers are allowed"),
    ("[1, 2][0]", "Subscript is not allowed"),
    ("[x for x in [1]]", "ListComp is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("1 if 1 else 2", "IfExp is not allowed"),
    ("1 in [1]", "operator In is not allowed"),
    ("1 << 3", "operator LShift is not allowed"),
    ("a = 1", "exactly one expression"),
    ("1; 2", "exactly one expression"),
    ("max(x=1)", "keyword arguments"),
    ("2 ** 100000", "exponent 100000 is too large"),
    ("10 ** 400", "too large"),
    ("10 ** 300 * 10 ** 300", "too large"),
    ("9e307 * 10", "not a finite number"),
    ("exp(1000)", "too large"),
    ("sqrt(-1)", "math domain error"),
    ("(-8) ** (1 / 3)", "not a real number"),
    ("mean()", "at least one number"),
    ("sum([1, [2]])", "needs numbers"),
    ("[1, 2]", "needs numbers"),
    ("round(2.5, 1.5)", "whole number of digits"),
    ("1 +", "syntax error"),
    ("-" * 450 + "1", "nested too deeply"),
])
def test_rejects_with_a_clear_reason(expression, reason):
    with pytest.raises(CalculationError) as info:
        evaluate(expression)
    assert reason in str(info.value)


def test_invoke_returns_expression_and_value(make_invocation):
    # Given a calculator call as the model sends it
    inv = make_invocation("calculator", {"expression": "  (5076.0 - 3700.7) / 3700.7 * 100 "})
    # When
    result = Calculator().invoke(inv)
    # Then
    assert result.ok and not result.truncated
    assert result.content["expression"] == "(5076.0 - 3700.7) / 3700.7 * 100"
    assert result.content["value"] == pytest.approx(37.1632, abs=1e-4)


def test_invoke_maps_calculation_errors_to_typed_errors(make_invocation):
    result = Calculator().invoke(make_invocation("calculator", {"expression": "1/0"}))
    assert not result.ok
    assert result.error.type == "CalculationError"
    assert result.error.message == "division by zero"


@pytest.mark.parametrize(("arguments", "line"), [
    ({}, "expression: Field required"),
    ({"expression": "   "}, "expression: String should have at least 1 character"),
    ({"expression": "1" * (MAX_EXPRESSION_CHARS + 1)}, "expression: String should have at most 500 characters"),
    ({"expression": "1", "mode": "fast"}, "mode: Extra inputs are not permitted"),
    ({"expression": 5}, "expression: Input should be a valid string"),
])
def test_invalid_arguments_are_reported_one_line_each(make_invocation, arguments, line):
    result = Calculator().invoke(make_invocation("calculator", arguments))
    assert not result.ok
    assert result.error.type == "InvalidArguments"
    assert line in result.error.message.splitlines()


def test_pi_and_e_are_the_only_constants():
    assert evaluate("pi") == math.pi
    assert evaluate("e") == math.e
    with pytest.raises(CalculationError, match="unknown name 'tau'"):
        evaluate("tau")
    with pytest.raises(CalculationError, match="only numbers are allowed, not NoneType"):
        evaluate("None")
