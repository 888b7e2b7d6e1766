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
- **GELU with tanh**, **layer norm** (below opset 17) and **local response norm** written
  out: one ``gelu``, ``layernorm``, ``lrn`` layer; where the walk has already made layers
  of the pieces (no parameters, no MACs), they are taken back.
- **Einsum** of two operands, opset 23's **Attention** and onnxruntime's fused
  ``com.microsoft`` **Attention**: ``linear`` and ``matmul`` layers, MACs from the
  equation or the heads.

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
from cnnstat.onnx.fold import attrs, constant_value
from cnnstat.onnx.ops import act, handles

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
    """The value of a one-element constant, also of a Constant node the walk has not reached
    yet (exporters write each constant just before the node that reads it)."""
    x = b.tensors.get(name)
    value = x.value if isinstance(x, Const) else None
    node = b.producer.get(name)
    if x is None and node is not None and node.op_type == "Constant":
        value = constant_value(node)
    return value if value is not None and value.size == 1 else None


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
    found = _gelu_tail(b, node, x_name)
    if found is None:
        raise Unfollowed("an Erf that is not part of a GELU")
    taken, cur = found
    b.skip.update(id(n) for n in taken)
    b.emit(node, "gelu", {"approximate": "none"}, [x], out=cur, view=O.same(x))


def _gelu_tail(b, node, x_name):
    """After the Erf (Tanh) of a GELU: ``+ 1``, then ``* x`` and ``* 0.5`` in either order (or
    ``* (0.5 * x)``): (the nodes, the output), or None."""
    if len(_readers(b, node.output[0])) != 1:
        return None
    add = _readers(b, node.output[0])[0]
    one = _other(add, node.output[0])
    if add.op_type != "Add" or not _near(_const_value(b, one), 1.0):
        return None
    need, cur, taken = {"x", "half"}, add.output[0], [add]
    while need:
        readers = _readers(b, cur)
        if len(readers) != 1 or readers[0].op_type != "Mul":
            return None
        mul = readers[0]
        other = _other(mul, cur)
        if other == x_name and "x" in need:
            need.discard("x")
        elif _near(_const_value(b, other), 0.5) and "half" in need:
            need.discard("half")
        elif _is_half_x(b, other, x_name) and need == {"x", "half"}:
            need.clear()
        else:
            return None
        taken.append(mul)
        cur = mul.output[0]
    return taken, cur


def _scaled_by(b, name, value):
    """The other input of the Mul making ``name`` when its constant is ``value``; else None."""
    mul = _made_by(b, name, "Mul")
    if mul is None or len(mul.input) != 2:
        return None
    for i in (0, 1):
        if _near(_const_value(b, mul.input[i]), value):
            return mul.input[1 - i]
    return None


def _cube_of(b, name):
    """x when ``name`` is ``x * (x * x)`` or ``x ^ 3``; else None."""
    node = b.producer.get(name)
    if node is not None and node.op_type == "Pow" and _near(_const_value(b, node.input[1]), 3.0):
        return node.input[0]
    if node is None or node.op_type != "Mul" or len(node.input) != 2:
        return None
    for i in (0, 1):
        sq = _made_by(b, node.input[1 - i], "Mul")
        if sq is not None and list(sq.input) == [node.input[i]] * 2:
            return node.input[i]
    return None


@handles("Tanh")
def _tanh(b, node):
    """``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))`` (torch's GELU with
    approximate='tanh'): one ``gelu`` layer, the layers its pieces made taken back; any other
    Tanh a ``tanh`` layer."""
    inner = _scaled_by(b, node.input[0], math.sqrt(2 / math.pi))
    add = inner and _made_by(b, inner, "Add")
    x_name = cube = None
    if add is not None and len(add.input) == 2:
        for i in (0, 1):
            c = _scaled_by(b, add.input[1 - i], 0.044715)
            if c is not None and _cube_of(b, c) == add.input[i]:
                x_name, cube = add.input[i], c
    x = b.tensors.get(x_name) if x_name else None
    tail = _gelu_tail(b, node, x_name) if isinstance(x, Act) else None
    if tail is None:
        return O.HANDLERS_PLAIN["Tanh"](b, node)
    chain = [node.input[0], inner, add.input[0], add.input[1], cube]
    cube_node = b.producer[cube]
    chain += [n for n in cube_node.input if n != x_name]
    made = {b.tensors[n].name for n in chain if isinstance(b.tensors.get(n), Act)} - {x.name}
    layers = [la for la in b.layers if la.name in made]
    if any(la.op not in ("mul", "add") or la.weights or la.biases for la in layers):
        return O.HANDLERS_PLAIN["Tanh"](b, node)
    for la in layers:
        b.layers.remove(la)
        b.taken.discard(la.name)
    taken, out = tail
    b.skip.update(id(n) for n in taken)
    b.emit(node, "gelu", {"approximate": "tanh"}, [x], out=out, view=O.same(x))


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


# --- layer norm written out (torch's export below opset 17) -------------------------------------------


def _only(b, name, op_type):
    """The one node reading ``name``, when it is an ``op_type``; else None."""
    readers = _readers(b, name)
    return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None


def _reduce_axes(b, node):
    a = attrs(node)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        v = b.tensors.get(node.input[1])
        axes = v.value.reshape(-1).tolist() if isinstance(v, Const) and v.value is not None else None
    return None if axes is None else sorted(int(v) for v in axes)


def _layernorm_parts(b, node, x):
    """The nodes of ``(x - mean) / sqrt(var + eps) [* w] [+ c]`` from this ReduceMean on, or None:
    (nodes taken, eps, the weight's Const or None, the shift's Const or None, the output)."""
    mean_name, x_name = node.output[0], node.input[0]
    sub = _only(b, mean_name, "Sub")
    if sub is None or list(sub.input) != [x_name, mean_name]:
        return None
    dev = sub.output[0]
    readers = _readers(b, dev)
    pw = next((n for n in readers if n.op_type == "Pow"), None)
    div = next((n for n in readers if n.op_type == "Div"), None)
    if len(readers) != 2 or pw is None or div is None or list(pw.input)[0] != dev:
        return None
    if not _near(_const_value(b, pw.input[1]), 2.0):
        return None
    var = _only(b, pw.output[0], "ReduceMean")
    if var is None or _reduce_axes(b, var) != _reduce_axes(b, node):
        return None
    add = _only(b, var.output[0], "Add")
    eps = add is not None and _const_value(b, _other(add, var.output[0]))
    sqrt = add is not None and _only(b, add.output[0], "Sqrt")
    if eps is None or eps is False or not sqrt or list(div.input) != [dev, sqrt.output[0]]:
        return None
    taken, out, w, c = [sub, pw, var, add, sqrt, div], div.output[0], None, None
    mul = _only(b, out, "Mul")
    if mul is not None and isinstance(b.tensors.get(_other(mul, out)), Const):
        w = b.tensors[_other(mul, out)]
        taken.append(mul)
        out = mul.output[0]
    shift = _only(b, out, "Add")
    if shift is not None and isinstance(b.tensors.get(_other(shift, out)), Const):
        c = b.tensors[_other(shift, out)]
        taken.append(shift)
        out = shift.output[0]
    return taken, float(eps), w, c, out


@handles("ReduceMean")
def _reduce_mean(b, node):
    """A layer norm written out (ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, then
    Mul by the weight and Add of the bias): a ``layernorm`` layer; else a reduction."""
    x = act(b, node)
    axes = _reduce_axes(b, node)
    parts = _layernorm_parts(b, node, x) if axes is not None else None
    if parts is None:
        return O._reduce(b, node)
    taken, eps, w, c, out = parts
    dims = x.dims
    axes = sorted(v % len(dims) for v in axes)
    params = (w.params if w is not None else ()) + (c.params if c is not None else ())
    args = {"eps": eps, "affine": bool(w is not None and w.params), "bias": bool(c is not None and c.params)}
    if (w is not None and not w.params) or (c is not None and not c.params):
        raise Unfollowed("a layer norm whose scale or shift is computed, not learned")
    if len(axes) == 1 and axes[0] == len(dims) - 1 and V.axis_of(x.view, axes[0], x.shape) == 0:
        op = "layernorm"
    elif axes == list(range(1, len(dims))) and not x.view[0]:
        op = "layernorm_all"
    else:
        what = f"a layer norm over ONNX axes {axes} of {list(dims)}"
        raise Unfollowed(f"{what}: not the channels (nor all axes)")
    b.skip.update(id(n) for n in taken)
    b.emit(node, op, args, [x], params=params, out=out, view=O.same(x))


# --- Einsum ------------------------------------------------------------------------------------------


def _einsum_terms(eq: str, ranks):
    """(input terms, output term) of an einsum equation, ``...`` expanded; None when it
    cannot be read."""
    eq = eq.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        return None
    spare = [chr(c) for c in range(ord("A"), ord("Z") + 1) if chr(c) not in eq]
    out = []
    for t, r in zip(terms, ranks):
        n = r - (len(t) - 3) if "..." in t else None
        out.append(t.replace("...", "".join(spare[:n])) if n is not None else t)
    if not arrow:
        counts = {}
        for t in out:
            for ch in t:
                counts[ch] = counts.get(ch, 0) + 1
        rhs = "".join(sorted(ch for ch, n in counts.items() if n == 1))
    elif "..." in rhs:
        n = max((r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t), default=0)
        rhs = rhs.replace("...", "".join(spare[:n]))
    if any(not t.isalpha() or len(set(t)) != len(t) for t in (*out, rhs)):
        return None
    return out, rhs


@handles("Einsum")
def _einsum(b, node):
    """Two operands: a matrix product. Its MACs are the product of the sizes of every index
    (each output element sums over the contracted ones), written as ``matmul`` of
    (batch, m, k) by (batch, k, n): batch = indices of both operands and the output, m (n)
    those of the first (second) and the output, k the contracted ones. A learned operand's
    initializers are the layer's parameters. One operand (a transpose, a sum): no MACs."""
    ins = [b.get(node, i) for i in range(len(node.input))]
    if any(x is None or x.dims is None for x in ins) or len(ins) not in (1, 2):
        raise Unfollowed(f"an Einsum of {len(ins)} operands")
    got = _einsum_terms(O.text(attrs(node).get("equation", "")), [len(x.dims) for x in ins])
    if got is None:
        raise Unfollowed("its equation cannot be read")
    terms, rhs = got
    size = {}
    for t, x in zip(terms, ins):
        for ch, n in zip(t, x.dims):
            if size.setdefault(ch, n) != n and n != 1:
                raise Unfollowed(f"index {ch} has sizes {size[ch]} and {n}")
    if len(ins) == 1:
        raise Unfollowed("an Einsum of one operand")
    a_t, b_t = terms
    if any(ch not in rhs and ch not in other for t, other in ((a_t, b_t), (b_t, a_t)) for ch in t):
        raise Unfollowed("sums an index of one operand alone")
    groups = {
        "batch": [ch for ch in rhs if ch in a_t and ch in b_t],
        "m": [ch for ch in rhs if ch in a_t and ch not in b_t],
        "n": [ch for ch in rhs if ch in b_t and ch not in a_t],
        "k": [ch for ch in a_t if ch in b_t and ch not in rhs],
    }
    if not groups["k"]:  # a broadcast product: torch counts it as a bmm of k = 1, cnnstat's ops as 0
        raise Unfollowed("an element-wise product (no index is summed)")
    linear = _einsum_linear(b, node, ins, terms, rhs, groups, size)
    if linear:
        return linear
    prod_of = {g: math.prod(size[ch] for ch in chs) for g, chs in groups.items()}
    sa = (prod_of["batch"], prod_of["m"], prod_of["k"])
    sb = (prod_of["batch"], prod_of["k"], prod_of["n"])
    acts = [x for x in ins if isinstance(x, Act)]
    extra = tuple(p for x in ins if isinstance(x, Const) for p in O.weights_of(x))
    rfs = []
    for x in (ins[0], ins[1]):
        x = x if isinstance(x, Act) else acts[0]
        rfs.append(x.rf.collapse() if x.rf is not None else None)
    lost = tuple(o for x in acts if x.rf is None for o in x.lost)
    out_dims = [size[ch] for ch in rhs]
    where = {ch: g for g in ("batch", "m", "n") for ch in groups[g]}

    def view(shape):
        axis = {"batch": 0, "m": 1, "n": 2}
        v = []
        for ch in rhs:
            g = groups[where[ch]]
            stride = math.prod(size[c] for c in g[g.index(ch) + 1 :])
            v.append(((axis[where[ch]], stride, size[ch]),) if size[ch] > 1 else ())
        return tuple(v)

    if len(out_dims) == 0 or math.prod(out_dims) != math.prod(sa[:2]) * sb[2]:
        raise Unfollowed("its output is no product of its operands' indices")
    inputs = [ins[0] if isinstance(ins[0], Act) else acts[0], ins[1] if isinstance(ins[1], Act) else acts[0]]
    b.emit(node, "matmul", {}, inputs, shapes=[sa, sb], rfs=rfs, lost=lost, extra=extra, view=view)


def _einsum_linear(b, node, ins, terms, rhs, groups, size):
    """An activation times a learned matrix over one of its axes (``bnd,dk->bnk``, the
    output laid out as the input with that axis replaced): ``linear`` (``fc``), as a MatMul
    with a constant. None when the Einsum is no such product."""
    i = 0 if isinstance(ins[0], Act) else 1
    x, w = ins[i], ins[1 - i]
    if not isinstance(x, Act) or not isinstance(w, Const) or len(w.dims) != 2:
        return None
    xt, wt = terms[i], terms[1 - i]
    if len(groups["k"]) != 1 or len(groups["n" if i == 0 else "m"]) != 1:
        return None
    d = groups["k"][0]
    new = groups["n" if i == 0 else "m"][0]
    if set(wt) != {d, new} or rhs != xt.replace(d, new):
        return None
    return O._contract(b, node, x, xt.index(d), size[new], O.weights_of(w)) or True


# --- Attention (opset 23) -----------------------------------------------------------------------------


def _heads(x, n_heads, what):
    """(heads, positions, head width) of an Attention operand: [B, H, S, d], or [B, S, H * d]
    with ``n_heads``."""
    dims = x.dims
    if dims[0] != 1:
        raise Unfollowed(f"its {what} holds {dims[0]} sequences in the batch axis")
    if len(dims) == 4:
        return dims[1], dims[2], dims[3]
    if len(dims) == 3 and n_heads and dims[2] % n_heads == 0:
        return n_heads, dims[1], dims[2] // n_heads
    raise Unfollowed(f"its {what} is {list(dims)} without the number of heads")


@handles("Attention")
def _attention(b, node):
    """ONNX's Attention (opset 23) on projected Q, K, V: the products Q.K^T and A.V, two
    ``matmul`` layers (H x Sq x Skv x d and H x Sq x Skv x d_v MACs; keys and values shared
    by groups of query heads are counted per query head, as the operator computes them). A
    cache (past keys and values) or a read of its extra outputs is not followed."""
    a = attrs(node)
    q, k, v = (act(b, node, i) for i in range(3))
    if any(b.get(node, i) is not None for i in (4, 5)):
        raise Unfollowed("it reads a key/value cache")
    if any(o and b.readers.get(o) for o in node.output[1:]):
        raise Unfollowed("its cache or logits outputs are read")
    hq, sq, d = _heads(q, a.get("q_num_heads"), "Q")
    hk, skv, dk = _heads(k, a.get("kv_num_heads"), "K")
    hv, sv, dv = _heads(v, a.get("kv_num_heads"), "V")
    if dk != d or sv != skv or hk != hv or hq % hk:
        raise Unfollowed(f"Q {list(q.dims)}, K {list(k.dims)}, V {list(v.dims)} do not match")
    lost = tuple(o for x in (q, k, v) if x.rf is None for o in x.lost)
    rfs = [x.rf.collapse() if x.rf is not None else None for x in (q, k)]
    logits = b.emit(
        node, "matmul", {}, [q, k], shapes=[(hq, sq, d), (hq, d, skv)], rfs=rfs, lost=lost, out=""
    )
    if len(q.dims) == 4:
        view = V.canonical
    else:

        def view(shape):
            return ((), ((1, 1, sq),) if sq > 1 else (), V.whole(shape, 0) + V.whole(shape, 2))

    rfs = [logits.rf, v.rf.collapse() if v.rf is not None else None]
    b.emit(
        node, "matmul", {}, [logits, v], shapes=[(hq, sq, skv), (hq, skv, dv)], rfs=rfs, lost=lost, view=view
    )


# --- local response norm written out (torch's export of nn.LocalResponseNorm) ----------------------------


def _made_by(b, name, *op_types):
    node = b.producer.get(name)
    return node if node is not None and node.op_type in op_types else None


def _lrn_chain(b, node):
    """``x / (k + alpha * avg_pool3d(pad(x^2 unsqueezed)))^beta``, walked back from the Div:
    (x's name, size, alpha, beta, k, the chain's tensors) or None."""
    x_name, d = node.input
    pw = _made_by(b, d, "Pow")
    add = pw and _made_by(b, pw.input[0], "Add")
    mul = add and next((_made_by(b, n, "Mul") for n in add.input if _made_by(b, n, "Mul")), None)
    if not (pw and add and mul):
        return None
    beta, k = _const_value(b, pw.input[1]), _const_value(b, _other(add, mul.output[0]))
    scaled = next((n for n in mul.input if _const_value(b, n) is None), None)
    alpha = _const_value(b, _other(mul, scaled)) if scaled else None
    if beta is None or k is None or alpha is None:
        return None
    chain, cur = [pw.output[0], add.output[0], mul.output[0]], scaled
    while _made_by(b, cur, "Reshape", "Squeeze", "Identity", "If"):
        chain.append(cur)
        prev = b.producer[cur]
        if prev.op_type == "If":  # torch's squeeze of the pooled tensor: both branches on one input
            branches = [
                [m for m in a.g.node if m.op_type != "Constant"] for a in prev.attribute if a.type == 5
            ]
            reads = {n for g in branches for m in g for n in m.input[:1]}
            if len(reads) != 1 or any(
                len(g) != 1 or g[0].op_type not in ("Squeeze", "Identity") for g in branches
            ):
                return None
            cur = reads.pop()
        else:
            cur = prev.input[0]
    pool = _made_by(b, cur, "AveragePool")
    pad = pool and _made_by(b, pool.input[0], "Pad")
    unsq = pad and _made_by(b, pad.input[0], "Unsqueeze", "Reshape")
    sq = unsq and _made_by(b, unsq.input[0], "Mul")
    if not (pool and pad and unsq and sq) or list(sq.input) != [x_name, x_name]:
        return None
    kernel = attrs(pool).get("kernel_shape")
    if not kernel or list(kernel[1:]) != [1] * (len(kernel) - 1):
        return None
    chain += [cur, pad.output[0], unsq.output[0], sq.output[0]]
    return x_name, int(kernel[0]), float(alpha), float(beta), float(k), chain


@handles("Div")
def _div(b, node):
    """A local response norm written out ends in a Div: one ``lrn`` layer, the layers its
    pieces made (square, pad, average pool: no parameters, no MACs) taken back."""
    found = _lrn_chain(b, node) if len(node.input) == 2 else None
    x = found and b.tensors.get(found[0])
    if not found or not isinstance(x, Act):
        return O._arith(b, node)
    x_name, size, alpha, beta, k, chain = found
    made = {b.tensors[n].name for n in chain if isinstance(b.tensors.get(n), Act)} - {x.name}
    layers = [la for la in b.layers if la.name in made]
    if any(la.op not in ("mul", "pad", "avgpool") or la.weights or la.biases for la in layers):
        return O._arith(b, node)
    for la in layers:
        b.layers.remove(la)
        b.taken.discard(la.name)
    b.emit(node, "lrn", {"size": size, "alpha": alpha, "beta": beta, "k": k}, [x], view=O.same(x))


@handles("com.microsoft.Attention")
def _ms_attention(b, node):
    """onnxruntime's fused self-attention (com.microsoft Attention) on tokens [1, S, C]: the
    q, k, v projection (``linear``, its weight [C, Hq + Hk + Hv] and bias), then Q.K^T and
    A.V (two ``matmul``); no output projection (the operator has none). A mask is a setting;
    a past state, relative position bias or other extras are not followed."""
    a = attrs(node)
    x = act(b, node)
    w, bias = b.get(node, 1), b.get(node, 2)
    if not isinstance(w, Const) or w.dims is None or len(w.dims) != 2 or isinstance(bias, Act):
        raise Unfollowed("its weight is not a constant [C, 3C]")
    if any(i < len(node.input) and node.input[i] for i in range(4, len(node.input))):
        raise Unfollowed("it reads a past state or an extra bias")
    if any(o and b.readers.get(o) for o in node.output[1:]):
        raise Unfollowed("its present state output is read")
    heads = a.get("num_heads")
    sizes = [int(v) for v in a.get("qkv_hidden_sizes", [])] or [w.dims[1] // 3] * 3
    dims = x.dims
    if len(dims) != 3 or dims[0] != 1 or V.axis_of(x.view, 2, x.shape) != 0 or len(x.shape) != 2:
        raise Unfollowed(f"its input {list(dims)} is no [1, S, C] of tokens")
    s = dims[1]
    hq, hk, hv = sizes
    if not heads or sum(sizes) != w.dims[1] or hq != hk or hq % heads or hv % heads or w.dims[0] != dims[2]:
        raise Unfollowed(f"weights {list(w.dims)}, hidden sizes {sizes}, {heads} heads do not match")
    params = O.weights_of(w) + (O.weights_of(bias) if bias is not None else ())
    qkv = b.emit(
        node,
        "linear",
        {"out": sum(sizes), "bias": bool(bias is not None and O.weights_of(bias))},
        [x],
        params=params,
        out="",
        view=O.same(x),
    )
    d, dv = hq // heads, hv // heads
    rfs = [qkv.rf.collapse() if qkv.rf is not None else None] * 2
    logits = b.emit(node, "matmul", {}, [qkv, qkv], shapes=[(heads, s, d), (heads, d, s)], rfs=rfs, out="")

    def view(shape):
        return ((), ((1, 1, s),) if s > 1 else (), V.whole(shape, 0) + V.whole(shape, 2))

    rfs = [logits.rf, rfs[0]]
    b.emit(node, "matmul", {}, [logits, qkv], shapes=[(heads, s, s), (heads, s, dv)], rfs=rfs, view=view)
