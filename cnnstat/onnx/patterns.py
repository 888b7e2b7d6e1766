"""Subgraphs exporters write for one operation, read back as that operation.

- **GELU** written with ``Erf`` (torch's exact ``nn.GELU`` below opset 20):
  ``x / sqrt(2) -> Erf -> + 1 -> * x -> * 0.5`` (the products in either order): one
  ``gelu`` layer.
- **torch.roll** (Swin's cyclic shift): ``Concat(x[s:], x[:s])`` along one axis. The values
  of ``x`` moved along that axis: no layer, no cost; the receptive field is unknown past it
  (a unit's field moves with the values; cnnstat's fields do not say where from).
- **Strided slices concatenated** (Swin's patch merging, ``x[0::2, 0::2]``,
  ``x[1::2, 0::2]``, ... along the channels): ``pixel_unshuffle`` by the step, whatever the
  order of the pieces in the channels.

Slices are taken lazily: a Slice whose only reader is such a Concat (or another strided
Slice) makes a *pending* tensor (:class:`Pending`), resolved by the Concat; a node of
another kind reading a pending strided slice is an opaque layer, and a roll that turns out
not to be one is sliced as usual at the Concat (no wrong count either way).
"""

from __future__ import annotations

import math

from cnnstat.onnx import ops as O
from cnnstat.onnx import views as V
from cnnstat.onnx.convert import Act, Const, Unfollowed
from cnnstat.onnx.fold import attrs
from cnnstat.onnx.ops import HANDLERS, act, handles

# Operators that read pending slices (any other reader makes an opaque layer).
PATTERN_INPUTS = {"Slice", "Concat"}
ROLL = "a cyclic shift (torch.roll)"


class Pending(Act):
    """A slice not yet taken: ``pending`` is ``("roll", source, axis, start, stop)`` (step 1,
    read by a Concat along ``axis``) or ``("strided", source, {axis: (start, step)})``.
    Its own view is the ONNX tensor's (``raw``); its field unknown until resolved."""

    __slots__ = ("pending",)

    def __init__(self, pending, dims, lost):
        shape, view = V.raw(tuple(dims))
        super().__init__(pending[1].name, shape, None, view, lost)
        self.pending = pending


def _const_value(b, name):
    x = b.tensors.get(name)
    return x.value if isinstance(x, Const) and x.value is not None and x.value.size == 1 else None


def _readers(b, name):
    return b.consumers.get(name, [])


# --- GELU -------------------------------------------------------------------------------------------


def _near(v, want) -> bool:
    return v is not None and math.isclose(float(v), want, rel_tol=1e-5)


def _other(node, name):
    """The other input of a two-input node reading ``name``."""
    ins = list(node.input)
    if len(ins) != 2 or name not in ins:
        return None
    return ins[1] if ins[0] == name else ins[0]


@handles("Erf")
def _erf(b, node):
    """``0.5 * x * (1 + erf(x / sqrt(2)))``: a ``gelu`` layer on x."""
    scaled = node.input[0]
    pre = b.producer.get(scaled)
    if pre is None or pre.op_type not in ("Div", "Mul") or len(pre.input) != 2:
        raise Unfollowed("an Erf that is not part of a GELU")
    x_name, c = pre.input
    want = math.sqrt(2) if pre.op_type == "Div" else 1 / math.sqrt(2)
    if not _near(_const_value(b, c), want):
        x_name, c = c, x_name
        if pre.op_type == "Div" or not _near(_const_value(b, c), want):
            raise Unfollowed("an Erf that is not part of a GELU")
    x = b.tensors.get(x_name)
    if not isinstance(x, Act) or len(_readers(b, node.output[0])) != 1:
        raise Unfollowed("an Erf that is not part of a GELU")
    add = _readers(b, node.output[0])[0]
    one = _other(add, node.output[0])
    if add.op_type != "Add" or not _near(_const_value(b, one), 1.0):
        raise Unfollowed("an Erf that is not part of a GELU")
    # then * x and * 0.5, in either order (or * (0.5 * x))
    need, cur, taken = {"x", "half"}, add.output[0], [add]
    while need:
        readers = _readers(b, cur)
        if len(readers) != 1 or readers[0].op_type != "Mul":
            raise Unfollowed("an Erf that is not part of a GELU")
        mul = readers[0]
        other = _other(mul, cur)
        if other == x_name and "x" in need:
            need.discard("x")
        elif _near(_const_value(b, other), 0.5) and "half" in need:
            need.discard("half")
        elif _is_half_x(b, other, x_name) and need == {"x", "half"}:
            need.clear()
        else:
            raise Unfollowed("an Erf that is not part of a GELU")
        taken.append(mul)
        cur = mul.output[0]
    b.skip.update(id(n) for n in taken)
    b.emit(node, "gelu", {"approximate": "none"}, [x], out=cur, view=O.same(x))


def _is_half_x(b, name, x_name) -> bool:
    pre = b.producer.get(name)
    if pre is None or pre.op_type != "Mul" or len(_readers(b, name)) != 1:
        return False
    other = _other(pre, x_name)
    return other is not None and _near(_const_value(b, other), 0.5)


# --- rolls and strided slices --------------------------------------------------------------------------


def _roll_reader(b, node, k):
    """The Concat that reads this Slice's output as half of a roll along ONNX axis ``k``:
    its only reader, a Concat of two outputs of Slices of one tensor along ``k``."""
    readers = _readers(b, node.output[0])
    if len(readers) != 1 or readers[0].op_type != "Concat" or len(readers[0].input) != 2:
        return None
    cat = readers[0]
    parts = [b.producer.get(n) for n in cat.input]
    if any(p is None or p.op_type != "Slice" or p.input[0] != node.input[0] for p in parts):
        return None
    return cat


@handles("Slice")
def _slice(b, node):
    x = act(b, node)
    cuts = O.slice_cuts(b, node, x.dims)
    out_dims = list(x.dims)
    for k, s, e, st in cuts:
        out_dims[k] = max(0, -(-(e - s) // st))
    if getattr(x, "pending", None) or any(st != 1 for _, _, _, st in cuts):
        return _strided(b, node, x, cuts, out_dims)
    if len(cuts) == 1:
        k, s, e, _ = cuts[0]
        cat = _roll_reader(b, node, k)
        if cat is not None and attrs(cat).get("axis", 0) % len(x.dims) == k and (s == 0 or e == x.dims[k]):
            lost = (*x.lost, (ROLL, b.node_base)) if x.rf is None else ((ROLL, b.node_base),)
            return b.bind(node.output[0], Pending(("roll", x, k, s, e), out_dims, lost))
    return O._slice(b, node)


def _strided(b, node, x, cuts, out_dims):
    """A slice with a step over whole axes (``x[1::2]``): pending, for a patch merge."""
    pend = getattr(x, "pending", None)
    if pend is not None and pend[0] != "strided":
        raise Unfollowed("slices a rolled slice")
    src, taken = (pend[1], dict(pend[2])) if pend else (x, {})
    for k, s, e, st in cuts:
        n = x.dims[k]
        if k in taken or not 0 <= s < st or e != n or n % st:
            raise Unfollowed(f"slices [{s}:{e}:{st}] of an axis of {n}")
        taken[k] = (s, st)
    lost = ((f"a slice with step {cuts[0][3]}", b.node_base),)
    b.bind(node.output[0], Pending(("strided", src, taken), out_dims, lost))


@handles("Concat")
def _concat(b, node):
    ins = [b.get(node, i) for i in range(len(node.input))]
    pend = [getattr(x, "pending", None) for x in ins]
    if all(p is not None and p[0] == "strided" for p in pend):
        return _patch_merge(b, node, [p for p in pend])
    if all(p is not None and p[0] == "roll" for p in pend) and len(pend) == 2:
        (_, src, k, s1, e1), (_, src2, k2, s2, e2) = pend
        n = src.dims[k]
        if src2 is src and k2 == k and e1 == n and s2 == 0 and e2 == s1 and 0 < s1 < n:
            rf = src.rf if src.rf is not None and src.rf.collapsed else None
            lost = () if rf is not None else ins[0].lost
            return b.bind(node.output[0], Act(src.name, src.shape, rf, src.view, lost))
    if any(p is not None and p[0] == "strided" for p in pend):
        raise Unfollowed("concatenates strided slices that make no patch merge")
    for p, name in zip(pend, node.input):  # not a roll after all: slice as usual
        if p is not None:
            O._select(b, node, p[1], p[2], p[3], p[4], False, name)
    return O._concat(b, node)


def _patch_merge(b, node, pend):
    """``concat([x[i::r, j::r] for every (i, j)], channels)``: ``pixel_unshuffle`` by r."""
    src = pend[0][1]
    cuts = pend[0][2]
    if any(p[1] is not src or set(p[2]) != set(cuts) for p in pend):
        raise Unfollowed("concatenates strided slices of different tensors")
    steps = {st for _, st in cuts.values()}
    r = steps.pop() if len(steps) == 1 else None
    k = attrs(node).get("axis", 0) % len(src.dims)
    s = src.shape
    offsets = sorted(tuple(p[2][a][0] for a in sorted(cuts)) for p in pend)
    spatial = sorted(V.axis_of(src.view, a, s) or 0 for a in cuts)
    every = sorted(_offsets(len(cuts), r)) if r else None
    if r is None or len(s) != 3 or V.axis_of(src.view, k, s) != 0 or spatial != [1, 2] or offsets != every:
        raise Unfollowed("concatenates strided slices that make no patch merge")

    def view(shape):
        v = V.with_axis(src.view, 0, shape[0])
        return V.with_axis(V.with_axis(v, 1, shape[1]), 2, shape[2])

    b.emit(node, "pixel_unshuffle", {"factor": r}, [src], view=view)


def _offsets(n, r):
    if n == 0:
        return [()]
    return [(i, *rest) for i in range(r) for rest in _offsets(n - 1, r)]


# Each pattern's handler replaces the plain one (which it calls when the pattern is absent).
assert HANDLERS["Slice"] is _slice and HANDLERS["Concat"] is _concat
