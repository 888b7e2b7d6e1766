"""Sliding-window arithmetic shared by convolution, locally connected layers and pooling, and
the padding amounts they (and the ``pad`` op) accept."""

from __future__ import annotations

from collections.abc import Mapping

from cnnstat.errors import OpError, brief
from cnnstat.ops.base import per_axis

# Side names per spatial rank, axis by axis (first spatial axis first): the names of
# torch's F.pad documentation (left/right: the last axis, top/bottom, front/back: the first).
SIDES = {
    1: (("left", "right"),),
    2: (("top", "bottom"), ("left", "right")),
    3: (("front", "back"), ("top", "bottom"), ("left", "right")),
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _order(n: int) -> str:
    return "[" + ", ".join(s for pair in SIDES[n] for s in pair) + "]"


def sides(p, n: int, what: str = "padding") -> list:
    """``(before, after)`` per spatial axis of explicit amounts (``n`` axes, 1 to 3).

    - an integer: every side;
    - a list of ``n`` integers: one per axis, the same before and after;
    - a list of ``2 * n`` integers, ``n`` > 1: per side, axis by axis, first spatial axis
      first, before then after: ``[top, bottom, left, right]`` for [C, H, W],
      ``[front, back, top, bottom, left, right]`` for [C, D, H, W] (not F.pad's order, which
      starts at the last axis). A 1-D input has no such form: ``[3, 0]`` would mean one thing
      for [C, L] and another for [C, H, W], so 1-D sides are written as a mapping;
    - a list of ``n`` ``[before, after]`` pairs: ``[[0, 1], [0, 1]]``, ``[[3, 0]]``;
    - a mapping of sides: ``{top: 0, bottom: 1, left: 0, right: 1}`` (see :data:`SIDES`:
      left/right for the last axis, top/bottom for H, front/back for D); missing sides are 0.

    The values are returned as given (the caller decides about negative ones).
    """
    if _is_int(p):
        return [(p, p)] * n
    if isinstance(p, Mapping):
        return _from_mapping(p, n, what)
    if isinstance(p, (list, tuple)) and p:
        if all(_is_int(v) for v in p):
            if len(p) == n:
                return [(v, v) for v in p]
            if len(p) == 2 * n and n > 1:
                return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
            if n == 1 and len(p) == 2:
                raise OpError(
                    f"{what} {brief(p)} on a 1-D input: write the two sides as "
                    f"{{left: {p[0]}, right: {p[1]}}} (a list of integers is one per axis)"
                )
            raise OpError(
                f"{what}: a list of {len(p)} integers on a {n}-D input; give {n} (one per axis)"
                + (f" or {2 * n}, per side {_order(n)}" if n > 1 else "")
            )
        pairs = all(isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_int, v)) for v in p)
        if pairs and len(p) == n:
            return [tuple(v) for v in p]
        if pairs:
            raise OpError(f"{what}: {len(p)} [before, after] pairs on a {n}-D input; give {n}")
    raise OpError(
        f"{what} must be an integer, a list of integers or a mapping of sides "
        f"{{{', '.join(s + ': ...' for pair in SIDES[n] for s in pair)}}}, got {brief(p)}"
    )


def _from_mapping(p, n, what) -> list:
    names = [s for pair in SIDES[n] for s in pair]
    for key, value in p.items():
        if key not in names:
            other = [r for r in (1, 2, 3) if r != n and any(key in pair for pair in SIDES[r])]
            hint = f" (a {other[0]}-D side)" if other else ""
            raise OpError(f"{what}: unknown side '{key}'{hint}; a {n}-D input has {', '.join(names)}")
        if not _is_int(value):
            expr = isinstance(value, str) and value.startswith("$")
            raise OpError(
                f"{what}: side '{key}' must be an integer, got {brief(value)}"
                + (" (expressions are not evaluated inside a mapping: use a list)" if expr else "")
            )
    return [(p.get(before, 0), p.get(after, 0)) for before, after in SIDES[n]]


def as_mapping(pads) -> dict:
    """``(before, after)`` per axis -> the mapping of sides (a plain dict, nonzero sides)."""
    names = SIDES[len(pads)]
    return {name: v for pair, amounts in zip(names, pads) for name, v in zip(pair, amounts) if v}


def portable(p):
    """Padding ``p`` in a form that an importer's int-tuple conversion keeps: a mapping as a
    plain dict, ``[before, after]`` pairs as the mapping of sides; anything else unchanged."""
    if isinstance(p, Mapping):
        return dict(p)
    if isinstance(p, (list, tuple)) and p and all(isinstance(v, (list, tuple)) for v in p):
        return as_mapping([tuple(v) for v in p])
    return p


def paddings(p, sizes, k, s, d) -> list:
    """``(before, after)`` per axis of a sliding window's padding ``p`` over ``sizes``.

    ``p`` is ``valid`` (none), ``same``, ``causal`` or explicit amounts (:func:`sides`: an
    integer, one per axis, per side ``[top, bottom, left, right]``, ``[before, after]`` pairs or
    a mapping ``{top: 0, bottom: 1, left: 0, right: 1}``), none of them negative.

    ``same`` follows TensorFlow: output = ceil(input / stride); the total padding
    ``max((out - 1) * s + d * (k - 1) + 1 - input, 0)`` is split with the extra pixel after
    (at stride 1 this is also PyTorch's ``padding='same'``).

    ``causal`` (1-D only, Keras' Conv1D ``padding='causal'``, WaveNet, TCNs): ``d * (k - 1)``
    before and nothing after, so output unit ``t`` sees inputs up to ``t`` only and
    output = ceil(input / stride).
    """
    n = len(sizes)
    if p == "valid":
        return [(0, 0)] * n
    if p == "same":
        pads = []
        for i in range(n):
            out = -(-sizes[i] // s[i])
            total = max((out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - sizes[i], 0)
            pads.append((total // 2, total - total // 2))
        return pads
    if p == "causal":
        if n != 1:
            raise OpError(
                f"padding 'causal' is for 1-D [C, L] inputs; for a {n}-D input give the sides, "
                f"e.g. {{{SIDES[n][0][0]}: {d[0] * (k[0] - 1)}}}"
            )
        return [(d[0] * (k[0] - 1), 0)]
    if isinstance(p, str):
        raise OpError(
            f"padding must be an integer, a list, a mapping of sides, 'same', 'valid' or 'causal', got '{p}'"
        )
    pads = sides(p, n)
    if any(v < 0 for pair in pads for v in pair):
        raise OpError(f"padding must not be negative, got {brief(p)}")
    return pads


def out_size(size, k, s, pad, d, ceil=False) -> int:
    """Output length along one axis (PyTorch's formula, with its ceil-mode rule)."""
    span = d * (k - 1) + 1
    padded = size + pad[0] + pad[1]
    if span > padded:
        raise OpError(f"kernel {k} (spans {span}) is larger than its padded input {padded}")
    if not ceil:
        return (padded - span) // s + 1
    out = -(-(padded - span) // s) + 1
    if (out - 1) * s >= size + pad[0]:  # the last window must start inside input or left pad
        out -= 1
    return out


def window(a: dict, shape, op: str, ceil=False):
    """Resolve ``k``, ``s``, ``d`` and padding for ``shape`` = (C, *spatial).

    Returns ``(k, s, d, pads, out_spatial)``.
    """
    spatial = shape[1:]
    n = len(spatial)
    k = per_axis(a["k"], n, "kernel")
    s = per_axis(a["s"] if a.get("s") is not None else a["k"], n, "stride")
    d = per_axis(a.get("d", 1), n, "dilation")
    for name, vals in (("kernel", k), ("stride", s), ("dilation", d)):
        if any(v < 1 for v in vals):
            raise OpError(f"{name} must be at least 1, got {list(vals)}")
    pads = paddings(a.get("p", 0), spatial, k, s, d)
    out = tuple(out_size(spatial[i], k[i], s[i], pads[i], d[i], ceil) for i in range(n))
    return k, s, d, pads, out
