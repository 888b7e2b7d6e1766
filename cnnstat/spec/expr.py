"""Arithmetic on spec parameters without ``eval``.

``$name`` is a parameter; ``$(expr)`` is an expression over parameters, numbers and
``+ - * / // % **``, comparisons, ``and/or/not``, ``a if c else b`` and the functions in
:data:`FUNCTIONS`. Expressions are parsed with :mod:`ast` and walked over an allow-list of
node types; anything else (attributes, subscripts, lambdas, names that are not parameters) is
an error.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings

from cnnstat.errors import OpError, brief, did_you_mean


def divisible(value, divisor=8, min_value=None):
    """Round ``value`` to a multiple of ``divisor``, never below ``min_value`` (default:
    ``divisor``) nor more than 10% below ``value``: the channel rounding of MobileNet v2/v3,
    MnasNet and EfficientNet (``_make_divisible`` in their reference code)."""
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


FUNCTIONS = {
    "divisible": divisible,
    "min": min,
    "max": max,
    "abs": abs,
    "ceil": math.ceil,
    "floor": math.floor,
    "round": round,
    "int": int,
}

_BIN = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMP = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_MAX_POW = 256

_cache: dict[str, ast.AST] = {}


def is_expr(value) -> bool:
    return isinstance(value, str) and value.startswith("$")


def _parse(src: str) -> ast.AST:
    tree = _cache.get(src)
    if tree is None:
        text = src[2:-1] if src.startswith("$(") and src.endswith(")") else src[1:]
        if not src.startswith("$(") and not text.isidentifier():
            raise OpError(f"'{src}' is not a parameter reference; write $(...) for arithmetic")
        try:
            with warnings.catch_warnings():  # e.g. "invalid decimal literal": the error says it all
                warnings.simplefilter("ignore")
                tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise OpError(f"cannot parse expression '{src}': {exc.msg}") from None
        _cache[src] = tree
    return tree


def evaluate(value, scope: dict):
    """Resolve ``$...`` strings (also inside lists) against ``scope``; others pass through."""
    if is_expr(value):
        return _eval(_parse(value), scope, value)
    if isinstance(value, list) and any(is_expr(v) or isinstance(v, list) for v in value):
        return [evaluate(v, scope) for v in value]
    return value


def _eval(node, scope, src):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float, bool)):
            return node.value
        if isinstance(node.value, str):
            return node.value
        raise OpError(f"in '{src}': constant {brief(node.value)} is not allowed")
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        raise OpError(f"in '{src}': unknown parameter '{node.id}'" + did_you_mean(node.id, scope))
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left = _eval(node.left, scope, src)
        right = _eval(node.right, scope, src)
        _numbers(src, left, right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_POW:
            raise OpError(f"in '{src}': exponent {right} is too large")
        try:
            return _BIN[type(node.op)](left, right)
        except ZeroDivisionError:
            raise OpError(f"in '{src}': division by zero") from None
        except OverflowError:
            raise OpError(f"in '{src}': result too large") from None
    if isinstance(node, ast.UnaryOp):
        val = _eval(node.operand, scope, src)
        if isinstance(node.op, ast.Not):
            return not val
        _numbers(src, val)
        if isinstance(node.op, ast.USub):
            return -val
        if isinstance(node.op, ast.UAdd):
            return +val
    if isinstance(node, ast.Compare) and all(type(o) in _CMP for o in node.ops):
        left = _eval(node.left, scope, src)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, scope, src)
            try:
                if not _CMP[type(op)](left, right):
                    return False
            except TypeError:
                raise OpError(f"in '{src}': cannot compare {brief(left)} with {brief(right)}") from None
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, scope, src) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        test = _eval(node.test, scope, src)
        return _eval(node.body if test else node.orelse, scope, src)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(a, scope, src) for a in node.args]
        _numbers(src, *args)
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise OpError(f"in '{src}': {node.func.id}(): {exc}") from None
    raise OpError(f"in '{src}': '{ast.unparse(node)}' is not allowed in an expression")


def _numbers(src, *values):
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise OpError(f"in '{src}': {brief(v)} is not a number")
