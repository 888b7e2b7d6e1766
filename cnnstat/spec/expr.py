"""Arithmetic on spec parameters without ``eval``.

``$name`` is a parameter; ``$(expr)`` is an expression over parameters, numbers and
``+ - * / // % **``, comparisons, ``and/or/not``, ``a if c else b`` and the functions in
:data:`FUNCTIONS`. Expressions are parsed with :mod:`ast` and walked over an allow-list of
node types; anything else (attributes, subscripts, lambdas, names that are not parameters) is
an error.

Specs may come from untrusted pull requests, so every expression costs little whatever it
says: its text is at most :data:`MAX_CHARS` characters and :data:`MAX_DEPTH` levels deep;
every integer it produces (constants and intermediate results included) has at most
:data:`MAX_INT_BITS` bits, checked before a power is computed; every float is finite; and
``round``'s digits are bounded. Anything else is an error naming the expression.
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


def _round(number, ndigits=None):
    """``round`` with at most :data:`MAX_ROUND_DIGITS` digits either way (``round(1, -10**9)``
    would compute 10**(10**9))."""
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS):
        raise ValueError(f"ndigits must be an integer from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return round(number) if ndigits is None else round(number, ndigits)


FUNCTIONS = {
    "divisible": divisible,
    "min": min,
    "max": max,
    "abs": abs,
    "ceil": math.ceil,
    "floor": math.floor,
    "round": _round,
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
MAX_INT_BITS = 4096  # the largest integer an expression may produce (about 1,233 digits)
MAX_DEPTH = 100  # operators nested in one expression (its syntax tree's depth)
MAX_CHARS = 10_000  # the longest expression
MAX_ROUND_DIGITS = 1000

_cache: dict[str, ast.AST] = {}


def is_expr(value) -> bool:
    return isinstance(value, str) and value.startswith("$")


def _parse(src: str) -> ast.AST:
    tree = _cache.get(src)
    if tree is None:
        text = src[2:-1] if src.startswith("$(") and src.endswith(")") else src[1:]
        if not src.startswith("$(") and not text.isidentifier():
            raise OpError(f"{_shown(src)} is not a parameter reference; write $(...) for arithmetic")
        if len(src) > MAX_CHARS:
            raise OpError(f"expression {_shown(src)} is longer than {MAX_CHARS:,} characters")
        try:
            with warnings.catch_warnings():  # e.g. "invalid decimal literal": the error says it all
                warnings.simplefilter("ignore")
                tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise OpError(f"cannot parse expression {_shown(src)}: {exc.msg}") from None
        except (RecursionError, MemoryError):  # CPython's parser on thousands of nested operators
            raise OpError(f"expression {_shown(src)} is nested more than {MAX_DEPTH} deep") from None
        _check_depth(tree, src)
        _cache[src] = tree
    return tree


def _check_depth(tree, src):
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise OpError(f"expression {_shown(src)} is nested more than {MAX_DEPTH} deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


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
            return _bounded(node.value, src)
        if isinstance(node.value, str):
            return node.value
        raise OpError(f"in {_shown(src)}: constant {brief(node.value)} is not allowed")
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        raise OpError(f"in {_shown(src)}: unknown parameter '{node.id}'" + did_you_mean(node.id, scope))
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left = _eval(node.left, scope, src)
        right = _eval(node.right, scope, src)
        _numbers(src, left, right)
        if isinstance(node.op, ast.Pow) and type(left) is int and type(right) is int and right > 0:
            # |left| ** right has at least (bit_length - 1) * right + 1 bits: refuse before
            # computing (((10**256)**256)**256 would take minutes and gigabytes).
            if (abs(left).bit_length() - 1) * right >= MAX_INT_BITS:
                raise OpError(f"in {_shown(src)}: integer too large (more than {MAX_INT_BITS} bits)")
        try:
            result = _BIN[type(node.op)](left, right)
        except ZeroDivisionError:
            raise OpError(f"in {_shown(src)}: division by zero") from None
        except OverflowError:
            raise OpError(f"in {_shown(src)}: result too large") from None
        return _bounded(result, src)
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
                raise OpError(f"in {_shown(src)}: cannot compare {brief(left)} with {brief(right)}") from None
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
            result = FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise OpError(f"in {_shown(src)}: {node.func.id}(): {exc}") from None
        return _bounded(result, src)
    raise OpError(f"in {_shown(src)}: {_shown(ast.unparse(node))} is not allowed in an expression")


def _shown(src: str) -> str:
    """The expression quoted for a message, abbreviated past 200 characters."""
    return f"'{src}'" if len(src) <= 200 else f"'{src[:197]}...'"


def _bounded(value, src):
    """``value`` if it is a bounded integer, a finite float or another type; else an error."""
    if type(value) is int:
        if value.bit_length() > MAX_INT_BITS:
            raise OpError(f"in {_shown(src)}: integer too large (more than {MAX_INT_BITS} bits)")
    elif type(value) is float:
        if not math.isfinite(value):
            raise OpError(f"in {_shown(src)}: the result is not finite ({value})")
    elif isinstance(value, complex):
        raise OpError(f"in {_shown(src)}: the result is not a real number")
    return value


def _numbers(src, *values):
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise OpError(f"in {_shown(src)}: {brief(v)} is not a number")
