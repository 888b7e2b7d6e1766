"""ONNX operators -> cnnstat ops: one handler per operator, ``HANDLERS[op_type](builder,
node)``. A handler reads the node (its attributes, its constant inputs' values), picks the
cnnstat op and asks the builder for a layer (:meth:`~cnnstat.onnx.convert.Builder.emit`), or
only re-arranges its input (layout operators, arithmetic with a constant: no layer). It
raises :class:`~cnnstat.onnx.convert.Unfollowed` when cnnstat's ops cannot express the node:
the node is then an opaque layer, with the reason.
"""

from __future__ import annotations

import math

from cnnstat.onnx import views as V
from cnnstat.onnx.convert import Act, Const, Unfollowed, rf_for
from cnnstat.onnx.fold import attrs
from cnnstat.ops.base import prod

HANDLERS: dict = {}
LAYOUT = "a layout cnnstat cannot follow"


def handles(*names):
    def register(fn):
        for name in names:
            HANDLERS[name] = fn
        return fn

    return register


# --- helpers ------------------------------------------------------------------------------------


def act(b, node, i=0) -> Act:
    x = b.get(node, i)
    if not isinstance(x, Act):
        raise Unfollowed(f"input {i} is {'absent' if x is None else 'a constant'}")
    return x


def const(b, node, i, what: str) -> Const | None:
    x = b.get(node, i)
    if isinstance(x, Act):
        raise Unfollowed(f"its {what} is an activation, not a constant")
    return x


def params_of(x) -> tuple:
    return x.params if isinstance(x, Const) else ()


def weights_of(x) -> tuple:
    """The parameters a weight slot (a convolution's, a matrix product's weight or bias) is
    made of: its initializers, else the Constant nodes holding it (a weight is learned
    however the file stores it; elsewhere a Constant node is a setting)."""
    if not isinstance(x, Const):
        return ()
    return x.params or x.soft


def same(x):
    """The output laid out as ``x``, its channels resized to the output's."""
    return lambda shape: x.view if shape == x.shape else V.with_axis(x.view, 0, shape[0])


def chw(b, x) -> tuple:
    """(shape, rf, lost): ``x`` as ONNX shows it to an operator that reads axis 1 as channels
    and the rest as spatial axes. Its own cnnstat tensor when the layout is channels first;
    else the ONNX tensor as it is, with the field unknown (unless every unit already sees
    the whole input)."""
    dims = x.dims
    if dims and dims[0] != 1:
        raise Unfollowed(f"its input holds {dims[0]} images or groups in the batch axis ({list(dims)})")
    if V.is_canonical(x.view, x.shape) or V.channels_shuffled(x.view, x.shape):
        return x.shape, x.rf, ()
    shape = tuple(dims[1:])
    if x.rf is None:
        return shape, None, x.lost
    rf = rf_for(x.rf, shape)
    if rf is not None:
        return shape, rf, ()
    return shape, None, ((LAYOUT, b.node_base),)


def emit_chw(b, node, op, args, x, **kw):
    shape, rf, lost = chw(b, x)
    return b.emit(node, op, args, [x], shapes=[shape], rfs=[rf], lost=lost, **kw)


def ints(a, key, default):
    v = a.get(key)
    return [int(i) for i in v] if v is not None else default


def pad_pairs(pads, n):
    """ONNX pads [x1_begin, x2_begin, ..., x1_end, x2_end] -> cnnstat padding."""
    pairs = [(int(pads[i]), int(pads[i + n])) for i in range(n)]
    if all(p == pairs[0] for p in pairs) and pairs[0][0] == pairs[0][1]:
        return pairs[0][0]
    if all(p0 == p1 for p0, p1 in pairs):
        return [p0 for p0, _ in pairs]
    return [list(p) for p in pairs]


def window_padding(a, spatial, k, s, d):
    n = len(spatial)
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "SAME_UPPER":
        return "same"
    if auto == "VALID":
        return 0
    if auto == "SAME_LOWER":
        pairs = []
        for i in range(n):
            out = -(-spatial[i] // s[i])
            total = max((out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - spatial[i], 0)
            pairs.append([total - total // 2, total // 2])
        return pairs
    return pad_pairs(ints(a, "pads", [0] * (2 * n)), n)


def text(v):
    return v.decode() if isinstance(v, bytes) else v


# --- element-wise ---------------------------------------------------------------------------------


def _unary(op, args=None):
    def handle(b, node):
        x = act(b, node)
        a = args(attrs(node)) if args else {}
        b.emit(node, op, a, [x], view=same(x))

    return handle


for _onnx, _op in (
    ("Relu", "relu"),
    ("Sigmoid", "sigmoid"),
    ("Tanh", "tanh"),
    ("HardSwish", "hardswish"),
    ("Mish", "mish"),
    ("Selu", "selu"),
):
    HANDLERS[_onnx] = _unary(_op)
HANDLERS["LeakyRelu"] = _unary("leaky_relu", lambda a: {"slope": a.get("alpha", 0.01)})
HANDLERS["Elu"] = _unary("elu", lambda a: {"alpha": a.get("alpha", 1.0)})
HANDLERS["Celu"] = _unary("celu", lambda a: {"alpha": a.get("alpha", 1.0)})
HANDLERS["Softplus"] = _unary("softplus")
HANDLERS["HardSigmoid"] = _unary("hardsigmoid")
HANDLERS["Gelu"] = _unary("gelu", lambda a: {"approximate": text(a.get("approximate", "none"))})
HANDLERS_PLAIN = dict(HANDLERS)  # before cnnstat.onnx.patterns puts its own in front of some


@handles("Dropout")
def _dropout(b, node):
    x = act(b, node)
    ratio = b.get(node, 1)
    p = 0.5
    if isinstance(ratio, Const) and ratio.value is not None:
        p = float(ratio.value)
    elif "ratio" in attrs(node):
        p = attrs(node)["ratio"]
    b.emit(node, "dropout", {"p": p}, [x], view=same(x))


@handles("Identity", "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear")
def _same(b, node):
    """The same values (a copy, a cast, a (de)quantisation): no layer; quantisation scales
    and zero points are settings, not parameters."""
    b.bind(node.output[0], act(b, node))


@handles("Clip")
def _clip(b, node):
    x = act(b, node)
    a = attrs(node)
    lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
    if b.get(node, 1) is not None:
        lo = float(b.value(const(b, node, 1, "min"), "min"))
    if b.get(node, 2) is not None:
        hi = float(b.value(const(b, node, 2, "max"), "max"))
    if lo == 0 and hi == 6:
        b.emit(node, "relu6", {}, [x], view=same(x))
    elif lo == 0 and hi == math.inf:
        b.emit(node, "relu", {}, [x], view=same(x))
    else:
        b.emit(node, "hardtanh", {"min": lo, "max": hi}, [x], view=same(x))


@handles("PRelu")
def _prelu(b, node):
    x, slope = act(b, node), const(b, node, 1, "slope")
    if slope is None or slope.dims is None:
        raise Unfollowed("its slope is unknown")
    b.emit(node, "prelu", {"shared": prod(slope.dims) == 1}, [x], params=slope.params, view=same(x))


@handles("Softmax", "LogSoftmax")
def _softmax(b, node):
    x = act(b, node)
    dims = x.dims
    default = -1 if b.opset >= 13 else 1
    k = attrs(node).get("axis", default) % len(dims)
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    j = V.axis_of(x.view, k, x.shape)
    if j is not None:
        return b.emit(node, op, {"dim": j}, [x], view=same(x))
    shape, batched = _raw(dims)
    dim = k - 1 if batched else k
    rf = rf_for(x.rf, shape)
    lost = x.lost if x.rf is None else (() if rf is not None else ((LAYOUT, b.node_base),))
    b.emit(node, op, {"dim": dim}, [x], shapes=[shape], rfs=[rf], lost=lost, view=_raw_view(batched))


def _raw(dims):
    """(cnnstat shape, whether the batch axis was dropped) of a tensor taken as ONNX lays it out."""
    shape, _ = V.raw(dims)
    return shape, bool(dims) and dims[0] == 1


def _raw_view(batched):
    return (
        (lambda s: V.canonical(s))
        if batched
        else (lambda s: V.raw(s)[1] if s and s[0] != 1 else _unbatched(s))
    )


def _unbatched(s):
    return tuple(((j, 1, n),) if n > 1 else () for j, n in enumerate(s))


# --- normalisation ------------------------------------------------------------------------------


@handles("BatchNormalization")
def _bn(b, node):
    x = act(b, node)
    scale, bias = const(b, node, 1, "scale"), const(b, node, 2, "bias")
    mean, var = const(b, node, 3, "mean"), const(b, node, 4, "variance")
    for out in node.output[1:]:
        if out and b.readers.get(out):
            raise Unfollowed("its running statistics outputs are read (training mode)")
    affine = bool(params_of(scale) or params_of(bias))
    eps = attrs(node).get("epsilon", 1e-5)
    emit_chw(
        b,
        node,
        "bn",
        {"affine": affine, "eps": eps},
        x,
        params=params_of(scale) + params_of(bias),
        buffers=params_of(mean) + params_of(var),
    )


@handles("InstanceNormalization")
def _instancenorm(b, node):
    """Instance norm; on a map whose channels a reshape put in G groups ([1, G, C/G * H * W],
    torch's export of nn.GroupNorm) a group norm, its affine the Mul and Add that follow."""
    x = act(b, node)
    scale, bias = const(b, node, 1, "scale"), const(b, node, 2, "bias")
    params = params_of(scale) + params_of(bias)
    eps = attrs(node).get("epsilon", 1e-5)
    v, s = x.view, x.shape
    if len(v) == 3 and not v[0] and len(v[1]) == 1 and v[1][0][0] == 0 and not params:
        _, stride, groups = v[1][0]
        minor = ((0, 1, stride),) if stride > 1 else ()
        if stride * groups == s[0] and tuple(v[2]) == minor + tuple(
            (j, 1, s[j]) for j in range(1, len(s)) if s[j] > 1
        ):
            return b.emit(
                node, "groupnorm", {"groups": groups, "eps": eps, "affine": False}, [x], view=same(x)
            )
    emit_chw(b, node, "instancenorm", {"affine": bool(params), "eps": eps}, x, params=params)


@handles("GroupNormalization")
def _groupnorm(b, node):
    x = act(b, node)
    scale, bias = const(b, node, 1, "scale"), const(b, node, 2, "bias")
    a = attrs(node)
    args = {"groups": a["num_groups"], "eps": a.get("epsilon", 1e-5), "affine": bool(params_of(scale))}
    emit_chw(b, node, "groupnorm", args, x, params=params_of(scale) + params_of(bias))


@handles("LayerNormalization")
def _layernorm(b, node):
    x = act(b, node)
    scale, bias = const(b, node, 1, "scale"), const(b, node, 2, "bias")
    for out in node.output[1:]:
        if out and b.readers.get(out):
            raise Unfollowed("its mean or inverse deviation output is read")
    a = attrs(node)
    dims = x.dims
    first = a.get("axis", -1) % len(dims)
    args = {
        "eps": a.get("epsilon", 1e-5),
        "affine": bool(params_of(scale)),
        "bias": bool(params_of(bias)),
    }
    params = params_of(scale) + params_of(bias)
    if first == len(dims) - 1 and V.axis_of(x.view, first, x.shape) == 0:
        return b.emit(node, "layernorm", args, [x], params=params, view=same(x))
    pieces = [p for k in range(first, len(dims)) for p in x.view[k]]
    every = [p for axis in x.view for p in axis]
    if first >= 1 and sorted(pieces) == sorted(every):
        return b.emit(node, "layernorm_all", args, [x], params=params, view=same(x))
    raise Unfollowed(f"normalises ONNX axes {first}.. of {list(dims)}: not the channels (nor all axes)")


@handles("LRN")
def _lrn(b, node):
    a = attrs(node)
    args = {
        "size": a["size"],
        "alpha": a.get("alpha", 1e-4),
        "beta": a.get("beta", 0.75),
        "k": a.get("bias", 1.0),
    }
    emit_chw(b, node, "lrn", args, act(b, node))


# --- convolution and pooling ----------------------------------------------------------------------


def _conv_inputs(b, node):
    """What Conv and ConvTranspose read alike: (x, weight, bias, shape, rf, lost, attributes,
    kernel, strides, dilations), the kernel from the weight's dims unless given."""
    x = act(b, node)
    w, bias = const(b, node, 1, "weight"), const(b, node, 2, "bias")
    if w is None or w.dims is None:
        raise Unfollowed("its weight's shape is unknown")
    shape, rf, lost = chw(b, x)
    n = len(shape) - 1
    a = attrs(node)
    k = ints(a, "kernel_shape", list(w.dims[2:]))
    s, d = ints(a, "strides", [1] * n), ints(a, "dilations", [1] * n)
    return x, w, bias, shape, rf, lost, a, k, s, d


@handles("Conv")
def _conv(b, node):
    x, w, bias, shape, rf, lost, a, k, s, d = _conv_inputs(b, node)
    n = len(shape) - 1
    g = a.get("group", 1)
    if len(k) != n:
        raise Unfollowed(f"a {len(k)}-D kernel on a {n}-D input")
    args = {"k": k, "s": s, "d": d, "p": window_padding(a, shape[1:], k, s, d), "bias": bias is not None}
    out = w.dims[0]
    c = shape[0]
    if g > 1 and g == c and w.dims[1] == 1 and out % c == 0:
        op, args["mult"] = "dwconv", out // c
    else:
        op, args["out"], args["groups"] = "conv", out, g
    params = weights_of(w) + weights_of(bias)
    b.emit(node, op, args, [x], shapes=[shape], rfs=[rf], lost=lost, params=params)


@handles("ConvTranspose")
def _conv_transpose(b, node):
    x, w, bias, shape, rf, lost, a, k, s, d = _conv_inputs(b, node)
    n = len(shape) - 1
    op = ints(a, "output_padding", [0] * n)
    g = a.get("group", 1)
    auto = text(a.get("auto_pad", "NOTSET"))
    target = ints(a, "output_shape", None)
    if target is not None and len(target) > n:
        target = target[-n:]
    if target is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [v * st for v, st in zip(shape[1:], s)]
    if target is not None:
        begin, end = [], []
        for i in range(n):
            total = s[i] * (shape[1 + i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - target[i]
            if auto == "SAME_UPPER":
                begin.append(total // 2), end.append(total - total // 2)
            else:
                begin.append(total - total // 2), end.append(total // 2)
    else:
        pads = ints(a, "pads", [0] * (2 * n))
        begin, end = pads[:n], pads[n:]
    p, out_pad = [], []
    for i in range(n):
        if end[i] < begin[i]:
            raise Unfollowed(f"crops more at the start than at the end ({begin[i]} and {end[i]} units)")
        p.append(begin[i])
        out_pad.append(op[i] - (end[i] - begin[i]))
        if out_pad[-1] < 0:
            raise Unfollowed(f"crops {end[i] - begin[i]} more units at the end than its output padding adds")
    args = {
        "out": w.dims[1] * g,
        "k": k,
        "s": s,
        "p": p,
        "output_padding": out_pad,
        "d": d,
        "groups": g,
        "bias": bias is not None,
    }
    b.emit(
        node,
        "conv_transpose",
        args,
        [x],
        shapes=[shape],
        rfs=[rf],
        lost=lost,
        params=weights_of(w) + weights_of(bias),
    )


@handles("MaxPool", "AveragePool")
def _pool(b, node):
    x = act(b, node)
    if len(node.output) > 1 and node.output[1] and b.readers.get(node.output[1]):
        raise Unfollowed("its indices output is read")
    shape, rf, lost = chw(b, x)
    n = len(shape) - 1
    a = attrs(node)
    k = ints(a, "kernel_shape", None)
    s, d = ints(a, "strides", [1] * n), ints(a, "dilations", [1] * n)
    args = {"k": k, "s": s, "p": window_padding(a, shape[1:], k, s, d), "ceil": bool(a.get("ceil_mode", 0))}
    if node.op_type == "MaxPool":
        op, args["d"] = "maxpool", d
    elif any(v != 1 for v in d):
        raise Unfollowed(f"average pooling with dilation {d}")
    else:
        op = "avgpool"
    b.emit(node, op, args, [x], shapes=[shape], rfs=[rf], lost=lost)


@handles("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(b, node):
    emit_chw(b, node, "gap" if node.op_type == "GlobalAveragePool" else "gmp", {}, act(b, node))


@handles("ReduceMean", "ReduceMax")
def _reduce(b, node):
    """Over all spatial axes of a channels-first map: global pooling."""
    x = act(b, node)
    a = attrs(node)
    dims = x.dims
    axes = a.get("axes")
    if axes is None and b.get(node, 1) is not None:
        axes = b.value(const(b, node, 1, "axes"), "axes").reshape(-1).tolist()
    if axes is None or len(dims) < 3:
        raise Unfollowed("reduces over every axis")
    if sorted(v % len(dims) for v in axes) != list(range(2, len(dims))):
        raise Unfollowed(f"reduces over axes {list(axes)} (cnnstat: all spatial axes of [N, C, ...])")
    op = "gap" if node.op_type == "ReduceMean" else "gmp"
    keep = a.get("keepdims", 1)
    view = None if keep else (lambda s: ((), V.whole(s, 0)))
    emit_chw(b, node, op, {}, x, view=view)


# --- resampling and padding ---------------------------------------------------------------------


@handles("Resize", "Upsample")
def _resize(b, node):
    x = act(b, node)
    a = attrs(node)
    shape, rf, lost = chw(b, x)
    dims = x.dims
    n = len(dims) - 2
    if n < 1:
        raise Unfollowed(f"resizes a {list(dims)} tensor")
    mode = text(a.get("mode", "nearest"))
    ctm = text(
        a.get("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else "asymmetric")
    )
    nearest = text(a.get("nearest_mode", "round_prefer_floor"))
    scales = sizes = None
    at = 1 if node.op_type == "Upsample" else 2
    if b.get(node, at) is not None:
        v = b.value(const(b, node, at, "scales"), "scales")
        scales = [float(s) for s in v.reshape(-1)] if v.size else None
    if node.op_type == "Resize" and b.get(node, 3) is not None:
        v = b.value(const(b, node, 3, "sizes"), "sizes")
        sizes = [int(s) for s in v.reshape(-1)] if v.size else None
    axes = a.get("axes")
    if axes is not None:  # opset 18: scales or sizes of these axes only
        full_s, full_z = [1.0] * len(dims), list(dims)
        for i, ax in enumerate(axes):
            if scales is not None:
                full_s[ax % len(dims)] = scales[i]
            if sizes is not None:
                full_z[ax % len(dims)] = sizes[i]
        scales = full_s if scales is not None else None
        sizes = full_z if sizes is not None else None
    if scales is None and sizes is None:
        raise Unfollowed("neither its scales nor its sizes are given")
    if (
        scales is not None
        and (scales[0] != 1 or scales[1] != 1)
        or sizes is not None
        and list(sizes[:2]) != list(dims[:2])
    ):
        raise Unfollowed("resizes the batch or channel axis")
    if a.get("keep_aspect_ratio_policy", b"stretch") not in (b"stretch", "stretch") and sizes is not None:
        raise Unfollowed("keeps the aspect ratio (keep_aspect_ratio_policy)")
    if mode == "nearest":
        op_mode, exact = "nearest", ctm == "asymmetric" and nearest == "floor"
    elif mode == "linear":
        op_mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(n)
        exact = ctm in ("half_pixel", "pytorch_half_pixel", "align_corners")
    elif mode == "cubic" and n == 2:
        op_mode = "bicubic"
        exact = ctm in ("half_pixel", "pytorch_half_pixel", "align_corners")
        exact = exact and a.get("cubic_coeff_a", -0.75) == -0.75 and not a.get("exclude_outside", 0)
    else:
        op_mode = None
    if op_mode is None:
        raise Unfollowed(f"mode {mode} on a {n}-D input")
    exact = exact and not a.get("antialias", 0)
    args = {"mode": op_mode, "align_corners": ctm == "align_corners" and mode != "nearest"}
    if scales is not None:
        args["scale"] = scales[2:]
    else:
        args["size"] = sizes[2:]
    if not exact:
        how = f"{mode}, {ctm}{', ' + nearest if mode == 'nearest' else ''}"
        what = f"Resize ({how}): sampling cnnstat does not model"
        lost = (*lost, (what, b.node_base))
    b.emit(node, "upsample", args, [x], shapes=[shape], rfs=[rf], lost=lost)


@handles("Pad")
def _pad(b, node):
    x = act(b, node)
    a = attrs(node)
    dims = x.dims
    r = len(dims)
    pads = a.get("pads")
    if b.get(node, 1) is not None:
        pads = b.value(const(b, node, 1, "pads"), "pads").reshape(-1).tolist()
    if pads is None:
        raise Unfollowed("its pads are not given")
    axes = list(range(r))
    if b.get(node, 3) is not None:
        axes = [int(v) % r for v in b.value(const(b, node, 3, "axes"), "axes").reshape(-1)]
    begin, end = [0] * r, [0] * r
    for i, ax in enumerate(axes):
        begin[ax], end[ax] = int(pads[i]), int(pads[i + len(axes)])
    if not any(begin) and not any(end):
        return b.bind(node.output[0], x)  # pads of 0 (Swin's pad to whole windows, none needed)
    mode = text(a.get("mode", "constant"))
    if not V.is_canonical(x.view, x.shape) and not (begin[:2] == [0, 0] and end[:2] == [0, 0]):
        return _pad_laid(b, node, x, begin, end, mode)
    if any(begin[:2]) or any(end[:2]):
        raise Unfollowed("pads the batch or channel axis")
    pairs = [[begin[i], end[i]] for i in range(2, r)]
    if all(v >= 0 for p in pairs for v in p):
        value = 0.0
        if b.get(node, 2) is not None:
            value = float(b.value(const(b, node, 2, "constant value"), "constant value").reshape(-1)[0])
        modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
        if mode not in modes:
            raise Unfollowed(f"mode {mode}")
        args = {"p": pairs, "mode": modes[mode], "value": value if mode == "constant" else 0.0}
        return emit_chw(b, node, "pad", args, x)
    if all(v <= 0 for p in pairs for v in p):
        size = [dims[i] + begin[i] + end[i] for i in range(2, r)]
        return emit_chw(b, node, "crop", {"size": size, "offset": [-v for v in begin[2:]]}, x)
    raise Unfollowed("pads some sides and crops others")


def _pad_laid(b, node, x, begin, end, mode):
    """Non-negative constant padding of a map laid out otherwise than channels first (Swin's
    [1, H, W, C]): each padded ONNX axis must be one of its spatial axes, whole."""
    pairs = [[0, 0] for _ in x.shape[1:]]
    for k in range(len(begin)):
        if begin[k] or end[k]:
            j = V.axis_of(x.view, k, x.shape) if x.view[k] else None
            if j is None or j == 0 or begin[k] < 0 or end[k] < 0:
                raise Unfollowed(f"pads ONNX axis {k} of {list(x.dims)}, which is no spatial axis")
            pairs[j - 1] = [begin[k], end[k]]
    if mode != "constant":
        raise Unfollowed(f"mode {mode} on a map laid out otherwise than channels first")
    value = 0.0
    if b.get(node, 2) is not None:
        value = float(b.value(const(b, node, 2, "constant value"), "constant value").reshape(-1)[0])

    def view(shape):
        v = x.view
        for j in range(1, len(shape)):
            v = V.with_axis(v, j, shape[j])
        return v

    return b.emit(node, "pad", {"p": pairs, "mode": "constant", "value": value}, [x], view=view)


@handles("DepthToSpace", "SpaceToDepth")
def _depth_space(b, node):
    r = attrs(node)["blocksize"]
    op = "pixel_shuffle" if node.op_type == "DepthToSpace" else "pixel_unshuffle"
    emit_chw(b, node, op, {"factor": r}, act(b, node))


# --- merges and arithmetic ------------------------------------------------------------------------


def _merged(b, acts):
    """(shapes, rfs, lost, view) for an element-wise merge of ``acts``."""
    first = acts[0]
    if all(x.view == first.view and x.shape == first.shape for x in acts):
        return [x.shape for x in acts], [x.rf for x in acts], (), same(first)
    if all(V.channels_first(x.view, x.shape) or V.channels_shuffled(x.view, x.shape) for x in acts):
        got = [chw(b, x) for x in acts]
        lost = tuple(o for g in got for o in g[2])
        return [g[0] for g in got], [g[1] for g in got], lost, V.canonical
    clean = _arranged(acts)
    if clean is not None:  # the same ONNX dims: read every input in the layout of one that is a map
        rfs, lost = [], []
        for x in acts:
            alike = x.view == clean.view and x.shape == clean.shape
            rf = x.rf if alike else rf_for(x.rf, clean.shape)
            if rf is None and x.rf is not None:
                lost.append((LAYOUT, b.node_base))
            rfs.append(rf)
        return [clean.shape] * len(acts), rfs, tuple(lost), same(clean)
    shapes, rfs, lost = [], [], []
    for x in acts:
        s, batched = _raw(x.dims)
        if not batched:
            raise Unfollowed(f"its input holds {x.dims[0]} images or groups in the batch axis")
        rf = rf_for(x.rf, s)
        if rf is None and x.rf is not None:
            lost.append((LAYOUT, b.node_base))
        shapes.append(s)
        rfs.append(rf)
    return shapes, rfs, tuple(lost), V.canonical


def _arranged(acts):
    """Of inputs of equal ONNX dims, the first whose layout is its cnnstat tensor's axes,
    each whole, in some order (a map or tokens under a transpose); None when none is."""
    if any(x.dims != acts[0].dims for x in acts):
        return None
    for x in acts:
        if x.view and not x.view[0]:
            found = [V.axis_of(x.view, k, x.shape) for k in range(1, len(x.view)) if x.view[k]]
            if None not in found and sorted(found) == [j for j, n in enumerate(x.shape) if n > 1]:
                return x
    return None


def _broadcast(c: Const, x: Act):
    """The constant's dims aligned to ``x``'s (numpy broadcasting), or None."""
    if c.dims is None or len(c.dims) > len(x.dims):
        return None
    return (1,) * (len(x.dims) - len(c.dims)) + tuple(c.dims)


def _per_channel(c: Const, x: Act) -> bool:
    """The constant holds one value per channel of ``x``, along the axis the channels are."""
    cd = _broadcast(c, x)
    k = V.holds_whole(x.view, x.shape, 0)
    if cd is None or k is None:
        return False
    return cd[k] == x.shape[0] and all(v == 1 for i, v in enumerate(cd) if i != k)


FOLDS = ("conv", "dwconv", "conv_transpose", "linear", "fc", "local")


def _fold_bias(b, node, i, x, c) -> bool:
    """A bias added right after the layer that made ``x`` (exporters write nn.Linear on
    tokens as MatMul + Add): the layer gets the bias."""
    entry = b.fresh.get(node.input[i])
    if entry is None or b.readers.get(node.input[i]) != 1:
        return False
    layer, _node, inputs, shapes, rfs, params = entry
    if layer.op not in FOLDS or layer.args.get("bias") or layer.name != x.name:
        return False
    from cnnstat.ops import REGISTRY

    op = REGISTRY[layer.op]
    a = {**layer.args, "bias": True}
    placeholders = [r if r is not None else V_placeholder(s) for r, s in zip(rfs, shapes)]
    _shape, cost, _rf = op.infer(a, shapes, placeholders)
    new = [p for p in c.params if p not in b.counted]
    if cost.biases != sum(b.sizes.get(p, 0) for p in c.params):
        return False
    layer.args = a
    layer.biases += sum(b.sizes[p] for p in new)
    b.counted.update(c.params)
    b.used.update(c.params)
    b.bind(node.output[0], x)
    return True


NORMS = ("groupnorm", "instancenorm", "layernorm", "layernorm_all")


def _fold_affine(b, node, i, x, c) -> bool:
    """``norm(x) * w + c`` per channel, the norm without its own affine (torch's export of
    nn.GroupNorm): one norm layer with its scale and shift."""
    entry = b.fresh.get(node.input[i])
    if entry is None or b.readers.get(node.input[i]) != 1:
        return False
    scale_layer, _node, inputs, _shapes, _rfs, scale_params = entry
    if scale_layer.op != "scale" or scale_layer.name != x.name or len(inputs) != 1:
        return False
    norm_act = inputs[0]
    found = [e for e in b.fresh.values() if e[0].name == norm_act.name]
    if not found:
        return False
    norm, _n, n_inputs, n_shapes, n_rfs, _p = found[0]
    if norm.op not in NORMS or norm.args.get("affine") or b.layers[-1] is not scale_layer:
        return False
    from cnnstat.ops import REGISTRY

    a = {**norm.args, "affine": True}
    placeholders = [r if r is not None else V_placeholder(s) for r, s in zip(n_rfs, n_shapes)]
    _shape, cost, _rf = REGISTRY[norm.op].infer(a, n_shapes, placeholders)
    weights = sum(b.sizes.get(p, 0) for p in scale_params)
    biases = sum(b.sizes.get(p, 0) for p in c.params)
    if (cost.weights, cost.biases) != (weights, biases) or any(p in b.counted for p in c.params):
        return False
    b.layers.pop()
    b.taken.discard(scale_layer.name)
    norm.args = a
    norm.weights += scale_layer.weights
    norm.biases += biases
    b.counted.update(c.params)
    b.used.update(c.params)
    b.bind(node.output[0], Act(norm.name, x.shape, x.rf, x.view, x.lost))
    return True


def V_placeholder(shape):
    from cnnstat.ops.base import RF

    return RF.input(tuple(shape[1:]) if len(shape) > 1 else ())


@handles("Add", "Sub", "Mul", "Div")
def _arith(b, node):
    """Two activations: a merge (Sub imports as add, Div as mul: the same shapes, 0 MACs).
    An activation and a constant: free when the constant is a setting (one element, or no
    initializer); a per-channel initializer is a bias right after a layer (Add) or a scale
    (Mul, Div); an initializer of the activation's shape a position embedding (Add)."""
    ins = [b.get(node, 0), b.get(node, 1)]
    acts = [x for x in ins if isinstance(x, Act)]
    additive = node.op_type in ("Add", "Sub")
    if len(acts) == 2:
        shapes, rfs, lost, view = _merged(b, acts)
        return b.emit(
            node, "add" if additive else "mul", {}, acts, shapes=shapes, rfs=rfs, lost=lost, view=view
        )
    i = 0 if isinstance(ins[0], Act) else 1
    x, c = ins[i], ins[1 - i]
    if c is None or c.dims is None:
        raise Unfollowed("its constant operand's shape is unknown")
    if not c.params or prod(c.dims) <= 1:
        if _broadcast(c, x) is None or any(cv not in (1, xv) for cv, xv in zip(_broadcast(c, x), x.dims)):
            raise Unfollowed(f"broadcasts {list(x.dims)} to a larger shape")
        return b.bind(node.output[0], x)  # arithmetic with a setting: no layer, no parameter
    if i == 1 and node.op_type in ("Sub", "Div"):
        raise Unfollowed(f"{'subtracts' if additive else 'divides'} an activation from a learned tensor")
    if additive:
        if _per_channel(c, x) and (_fold_bias(b, node, i, x, c) or _fold_affine(b, node, i, x, c)):
            return None
        if _broadcast(c, x) == tuple(x.dims) and sum(b.sizes.get(p, 0) for p in c.params) == prod(c.dims):
            return b.emit(node, "pos_embed", {}, [x], params=c.params, view=same(x))
        return _learned(b, node, x, c, "add")
    if _per_channel(c, x):
        return b.emit(node, "scale", {}, [x], params=c.params, view=same(x))
    return _learned(b, node, x, c, "mul")


def _learned(b, node, x, c, op):
    """An activation plus (times) a learned tensor that broadcasts to it, however computed
    from its initializers (Swin's relative position bias: a table gathered by a constant
    index, added to the attention logits): an element-wise ``add`` (``mul``) holding those
    initializers, 0 MACs."""
    cd = _broadcast(c, x)
    if cd is None or any(cv not in (1, xv) for cv, xv in zip(cd, x.dims)):
        verb = "adds" if op == "add" else "multiplies by"
        raise Unfollowed(f"{verb} a learned tensor of shape {list(c.dims)}")
    return b.emit(node, op, {}, [x], extra=c.params, extra_buffers=c.index, view=same(x))


@handles("Pow")
def _pow(b, node):
    """An activation to a constant power (torch's LRN export: ``(k + a * avg(x^2)) ^ b``):
    arithmetic with a setting, as ``x * 0.5``: no layer, no cost."""
    x, e = b.get(node, 0), b.get(node, 1)
    if not isinstance(x, Act) or not isinstance(e, Const) or e.numel != 1 or e.params:
        raise Unfollowed("a power that is not an activation to a constant")
    b.bind(node.output[0], x)


@handles("Sum")
def _sum(b, node):
    acts = [b.get(node, k) for k in range(len(node.input))]
    if not all(isinstance(x, Act) for x in acts):
        raise Unfollowed("adds a constant")
    if len(acts) == 1:
        return b.bind(node.output[0], acts[0])
    shapes, rfs, lost, view = _merged(b, acts)
    b.emit(node, "add", {}, acts, shapes=shapes, rfs=rfs, lost=lost, view=view)


# --- matrix products ------------------------------------------------------------------------------


def _contract(b, node, x, k, n, params, bias=None):
    """``x`` times a learned matrix over ONNX axis ``k``, ``n`` outputs: fc on a flat input,
    linear over the channels; over another axis, the ONNX tensor with that axis as its
    channels (its field collapses when the axis holds every position, else is unknown)."""
    bias_params = weights_of(bias) if bias is not None and bias.numel is not None and bias.numel > 1 else ()
    args = {"out": n, "bias": bool(bias_params)}
    allp = tuple(params) + bias_params
    j = V.axis_of(x.view, k, x.shape)
    if j == 0 or (x.shape == (1,) and not x.view[k]):
        if len(x.shape) == 1:
            return b.emit(node, "fc", args, [x], params=allp)
        return b.emit(node, "linear", args, [x], params=allp, view=same(x))
    dims = x.dims
    batched = dims[0] == 1
    order = [k] + [i for i in range(len(dims)) if i != k and not (i == 0 and batched)]
    shape = tuple(dims[i] for i in order)
    pos = [p for axis in x.view for p in axis if p[0] != 0]
    if x.rf is None:
        rf, lost = None, x.lost
    elif x.rf.collapsed:
        rf, lost = rf_for(x.rf, shape), ()
    elif sorted(x.view[k]) == sorted(pos) and pos:
        rf, lost = rf_for(x.rf.collapse(), shape), ()  # the axis holds every position
    else:
        rf, lost = None, (("a product over part of the positions", b.node_base),)
    in_view = tuple(
        ((order.index(i), 1, dims[i]),) if i in order and dims[i] > 1 else () for i in range(len(dims))
    )
    y = Act(x.name, shape, rf, in_view, lost)
    if len(shape) == 1:
        return b.emit(node, "fc", args, [y], params=allp, rfs=[rf], lost=lost)
    return b.emit(node, "linear", args, [y], params=allp, rfs=[rf], lost=lost, view=same(y))


@handles("MatMul")
def _matmul(b, node):
    x, y = b.get(node, 0), b.get(node, 1)
    if isinstance(x, Act) and isinstance(y, Act):
        sx, bx = _raw(x.dims)
        sy, by = _raw(y.dims)
        if not (bx and by):
            if len(x.dims) != len(y.dims):
                raise Unfollowed(f"multiplies {list(x.dims)} by {list(y.dims)} (broadcast)")
            sx, sy, bx = tuple(x.dims), tuple(y.dims), False
        return b.emit(node, "matmul", {}, [x, y], shapes=[sx, sy], view=_raw_view(bx))
    if isinstance(x, Act):
        if y is None or y.dims is None or len(y.dims) != 2:
            raise Unfollowed(f"multiplies by a constant of shape {None if y is None else y.dims}")
        return _contract(b, node, x, len(x.dims) - 1, y.dims[1], weights_of(y))
    if x is None or x.dims is None or len(x.dims) != 2 or len(y.dims) < 2:
        raise Unfollowed("multiplies a constant by an activation")
    return _contract(b, node, y, len(y.dims) - 2, x.dims[0], weights_of(x))


@handles("Gemm")
def _gemm(b, node):
    a = attrs(node)
    x, w, c = b.get(node, 0), b.get(node, 1), b.get(node, 2)
    if not isinstance(x, Act) or not isinstance(w, Const) or isinstance(c, Act) or a.get("transA", 0):
        raise Unfollowed("its activation is not the first operand")
    if w.dims is None or len(w.dims) != 2:
        raise Unfollowed("its weight's shape is unknown")
    n = w.dims[0] if a.get("transB", 0) else w.dims[1]
    _contract(b, node, x, len(x.dims) - 1, n, weights_of(w), c)


# --- layout: views, and the layers they make ------------------------------------------------------


def _place(b, node, x, view, out=None):
    """``x`` under ``view`` (a reshape's result): the same tensor, or a layer where the
    layout is one cnnstat writes as an op: flatten ([1, C*H*W]), tokens ([1, C, H*W] or
    [1, H*W, C]) or to_map (tokens back to a map)."""
    out = node.output[0] if out is None else out
    s = x.shape
    if V.is_canonical(view, s) or view[0]:
        return b.bind(out, Act(x.name, s, x.rf, view, x.lost))
    if len(view) == 2 and len(s) > 1:
        return b.emit(node, "flatten", {}, [x], out=out)
    if len(view) == 3 and len(s) >= 3:
        for c, p in ((1, 2), (2, 1)):
            if V.axis_of(view, c, s) == 0 and V.covers_all(view[p], s, range(1, len(s))):

                def tokens_view(shape, c=c, p=p):
                    v = [(), (), ()]
                    v[c], v[p] = V.whole(shape, 0), V.whole(shape, 1)
                    return tuple(v)

                return b.emit(node, "tokens", {}, [x], out=out, view=tokens_view)
    r = _pixel_shuffled(view, s)
    if r:
        op, factor = r
        return b.emit(node, op, {"factor": factor}, [x], out=out)
    if len(s) == 2 and len(view) >= 4:
        c = V.holds_whole(view, s, 0)
        others = [k for k in range(1, len(view)) if k != c]
        pieces = [p for k in others for p in view[k]]
        single = all(len(view[k]) <= 1 for k in others)
        if c is not None and single and V.normalize((tuple(pieces),))[0] == V.whole(s, 1):
            d = V.dims(view)
            size = [d[k] for k in others]

            def map_view(shape, c=c, others=others):
                v = [()] * (len(others) + 2)
                v[c] = V.whole(shape, 0)
                for i, k in enumerate(others):
                    v[k] = V.whole(shape, i + 1)
                return tuple(v)

            return b.emit(node, "to_map", {"size": tuple(size)}, [x], out=out, view=map_view)
    b.bind(out, Act(x.name, s, x.rf, view, x.lost))


def _pixel_shuffled(view, s):
    """('pixel_unshuffle' | 'pixel_shuffle', r) when a [1, C, H, W] map's view is torch's
    pixel (un)shuffle by r, written as reshape, transpose, reshape; else None."""
    if len(s) != 3 or len(view) != 4 or view[0]:
        return None
    c, h, w = s
    # unshuffle: channels [C, r, r] (C major), positions [H / r, W / r]
    for r in range(2, min(h, w) + 1):
        if h % r or w % r:
            continue
        want = (
            V.whole(s, 0) + ((1, 1, r), (2, 1, r)),
            ((1, r, h // r),) if h > r else (),
            ((2, r, w // r),) if w > r else (),
        )
        if view[1:] == want:
            return "pixel_unshuffle", r
    # shuffle: channels C x r x r (C major) spread as the minor parts of H and W
    for r in range(2, int(c**0.5) + 1):
        if c % (r * r):
            continue
        major = ((0, r * r, c // (r * r)),) if c > r * r else ()
        want = (
            major,
            ((1, 1, h), (0, r, r)) if h > 1 else ((0, r, r),),
            ((2, 1, w), (0, 1, r)) if w > 1 else ((0, 1, r),),
        )
        if view[1:] == want:
            return "pixel_shuffle", r
    return None


def _reshaped(b, node, x, new_dims):
    if prod(new_dims) != prod(x.dims):
        raise Unfollowed(f"reshapes {list(x.dims)} ({prod(x.dims)} values) to {list(new_dims)}")
    view = V.reshape(x.view, new_dims)
    if view is None:  # an arrangement the pieces cannot follow: the ONNX tensor as it is
        shape, view = V.raw(tuple(new_dims))
        rf = rf_for(x.rf, shape)
        lost = x.lost if x.rf is None else (() if rf is not None else ((LAYOUT, b.node_base),))
        return b.bind(node.output[0], Act(x.name, shape, rf, view, lost))
    _place(b, node, x, view)


def _known(b, name):
    d = b.onnx_dims(name)
    return d if d is not None and None not in d else None


@handles("Reshape")
def _reshape(b, node):
    x = act(b, node)
    new = _known(b, node.output[0])
    if new is None:
        target = [int(v) for v in b.value(const(b, node, 1, "shape"), "shape").reshape(-1)]
        allowzero = attrs(node).get("allowzero", 0)
        target = [x.dims[i] if v == 0 and not allowzero else v for i, v in enumerate(target)]
        if -1 in target:
            rest = prod(v for v in target if v != -1)
            target[target.index(-1)] = prod(x.dims) // rest if rest else 0
        new = tuple(target)
    _reshaped(b, node, x, new)


@handles("Flatten")
def _flatten(b, node):
    x = act(b, node)
    axis = attrs(node).get("axis", 1) % (len(x.dims) + 1) if x.dims else 0
    d = x.dims
    _reshaped(b, node, x, (prod(d[:axis]), prod(d[axis:])))


@handles("Squeeze", "Unsqueeze")
def _squeeze(b, node):
    x = act(b, node)
    new = _known(b, node.output[0])
    if new is None:
        a = attrs(node)
        axes = a.get("axes")
        if axes is None and b.get(node, 1) is not None:
            axes = b.value(const(b, node, 1, "axes"), "axes").reshape(-1).tolist()
        d = list(x.dims)
        if node.op_type == "Squeeze":
            r = len(d)
            drop = {v % r for v in axes} if axes is not None else {i for i, v in enumerate(d) if v == 1}
            new = tuple(v for i, v in enumerate(d) if i not in drop)
        else:
            r = len(d) + len(axes)
            for ax in sorted(v % r for v in axes):
                d.insert(ax, 1)
            new = tuple(d)
    _reshaped(b, node, x, new)


@handles("Transpose")
def _transpose(b, node):
    x = act(b, node)
    r = len(x.view)
    perm = attrs(node).get("perm")
    perm = list(range(r))[::-1] if perm is None else [p % r for p in perm]
    if sorted(perm) != list(range(r)):
        raise Unfollowed(f"perm {list(perm)} is not a permutation of {r} axes")
    b.bind(node.output[0], Act(x.name, x.shape, x.rf, V.transpose(x.view, perm), x.lost))


@handles("Expand")
def _expand(b, node):
    x = act(b, node)
    new = _known(b, node.output[0])
    if new is None or tuple(new) != tuple(x.dims):
        raise Unfollowed("repeats values (Expand)")
    b.bind(node.output[0], x)


# --- selections -----------------------------------------------------------------------------------


def _select(b, node, x, k, start, stop, drop, out):
    """Indices [start, stop) of ONNX axis ``k`` (``drop``: a single index, the axis removed):
    channels (slice), tokens (take), a spatial window (crop), or the leading part of the
    channels split over several axes (slice: the q, k, v of one projection)."""
    s, view = x.shape, x.view
    n = V.dims(view)[k]
    if not 0 <= start < stop <= n:
        raise Unfollowed(f"selects [{start}, {stop}) of {n}")

    def finish(v):
        v = tuple(v)
        return v[:k] + v[k + 1 :] if drop else v

    if start == 0 and stop == n:
        return b.bind(out, Act(x.name, s, x.rf, finish(view), x.lost))
    j = V.axis_of(view, k, s)
    m = stop - start
    if j == 0:
        return b.emit(
            node,
            "slice",
            {"start": start, "stop": stop},
            [x],
            out=out,
            view=lambda shape: finish(V.with_axis(view, 0, shape[0])),
        )
    if j is not None and len(s) == 2:
        if drop:
            return b.emit(
                node,
                "take",
                {"index": start},
                [x],
                out=out,
                view=lambda shape: finish(V.with_axis(view, 1, 1)),
            )
        return b.emit(
            node,
            "take",
            {"index": start, "stop": stop},
            [x],
            out=out,
            view=lambda shape: V.with_axis(view, 1, m),
        )
    if j is not None and len(s) <= 4:
        size, offset = list(s[1:]), [0] * (len(s) - 1)
        size[j - 1], offset[j - 1] = m, start
        return b.emit(
            node,
            "crop",
            {"size": size, "offset": offset},
            [x],
            out=out,
            view=lambda shape: finish(V.with_axis(view, j, m)),
        )
    pieces = view[k]
    if len(pieces) == 1 and pieces[0][0] == 0 and pieces[0][1] * pieces[0][2] == s[0]:
        stride = pieces[0][1]

        def sliced(shape):
            v = list(view)
            v[k] = ((0, stride, m),) if m > 1 else ()
            return finish(V.normalize(tuple(v)))

        return b.emit(
            node, "slice", {"start": start * stride, "stop": stop * stride}, [x], out=out, view=sliced
        )
    if k == 1 and V.channels_shuffled(view, s):  # channels in another order: any m of them

        def picked(shape):
            v = list(view)
            v[1] = V.whole(shape, 0)
            return finish(tuple(v))

        return b.emit(node, "slice", {"start": start, "stop": stop}, [x], out=out, view=picked)
    return _select_raw(b, node, x, k, start, stop, finish, out)


def _select_raw(b, node, x, k, start, stop, finish, out):
    """A selection along an ONNX axis that is no whole cnnstat axis (a map put back together
    from windows, then cropped): a ``slice`` of the ONNX tensor as it is, the selected axis
    taken as its channels; its field collapsed or unknown."""
    dims = x.dims
    batched = dims[0] == 1
    order = [k] + [i for i in range(len(dims)) if i != k and not (i == 0 and batched)]
    shape = tuple(dims[i] for i in order)
    rf = rf_for(x.rf, shape)
    lost = x.lost if x.rf is None else (() if rf is not None else ((LAYOUT, b.node_base),))
    in_view = tuple(
        ((order.index(i), 1, dims[i]),) if i in order and dims[i] > 1 else () for i in range(len(dims))
    )
    y = Act(x.name, shape, rf, in_view, lost)
    return b.emit(
        node,
        "slice",
        {"start": start, "stop": stop},
        [y],
        rfs=[rf],
        lost=lost,
        out=out,
        view=lambda s: finish(V.with_axis(in_view, 0, s[0])),
    )


@handles("Gather")
def _gather(b, node):
    x = b.get(node, 0)
    if not isinstance(x, Act):
        raise Unfollowed("looks values up in a table")
    idx = b.value(const(b, node, 1, "indices"), "indices")
    k = attrs(node).get("axis", 0) % len(x.dims)
    n = x.dims[k]
    flat = [int(v) % n for v in idx.reshape(-1)] if idx.size else []
    if idx.ndim == 0:
        return _select(b, node, x, k, flat[0], flat[0] + 1, True, node.output[0])
    if idx.ndim == 1 and flat and flat == list(range(flat[0], flat[0] + len(flat))):
        return _select(b, node, x, k, flat[0], flat[-1] + 1, False, node.output[0])
    raise Unfollowed("gathers indices that are no range")


def slice_cuts(b, node, dims) -> list:
    """A Slice node's cuts: (ONNX axis, start, stop, step) of each axis it does not keep
    whole, starts and stops clamped (step 1) or as ONNX reads them (other steps)."""
    starts = b.value(const(b, node, 1, "starts"), "starts").reshape(-1).tolist()
    ends = b.value(const(b, node, 2, "ends"), "ends").reshape(-1).tolist()
    axes = list(range(len(starts)))
    if b.get(node, 3) is not None:
        axes = b.value(const(b, node, 3, "axes"), "axes").reshape(-1).tolist()
    steps = [1] * len(starts)
    if b.get(node, 4) is not None:
        steps = b.value(const(b, node, 4, "steps"), "steps").reshape(-1).tolist()
    cuts = []
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax = int(ax) % len(dims)
        n = dims[ax]
        if st < 1:
            raise Unfollowed(f"slices with step {st}")
        s = min(max(s + n if s < 0 else s, 0), n)
        e = min(max(e + n if e < 0 else e, 0), n)
        if (s, e, st) != (0, n, 1):
            cuts.append((ax, int(s), int(e), int(st)))
    return cuts


@handles("Slice")
def _slice(b, node):
    x = act(b, node)
    cuts = slice_cuts(b, node, x.dims)
    if any(st != 1 for _, _, _, st in cuts):
        raise Unfollowed(f"slices with step {[st for _, _, _, st in cuts if st != 1][0]}")
    if not cuts:
        return b.bind(node.output[0], x)
    for i, (ax, s, e, _) in enumerate(cuts):
        out = node.output[0] if i == len(cuts) - 1 else ""
        x = _select(b, node, x, ax, s, e, False, out)


@handles("Split")
def _split(b, node):
    x = act(b, node)
    a = attrs(node)
    dims = x.dims
    k = a.get("axis", 0) % len(dims)
    parts = a.get("split")
    if parts is None and b.get(node, 1) is not None:
        parts = b.value(const(b, node, 1, "split"), "split").reshape(-1).tolist()
    if parts is None:
        outs = len(node.output)
        size = -(-dims[k] // outs)
        parts = [min(size, dims[k] - i * size) for i in range(outs)]
    start = 0
    for out, n in zip(node.output, parts):
        if out:
            _select(b, node, x, k, start, start + int(n), False, out)
        start += int(n)


@handles("Concat")
def _concat(b, node):
    ins = [b.get(node, i) for i in range(len(node.input))]
    acts = [x for x in ins if isinstance(x, Act)]
    k = attrs(node)["axis"] % len(acts[0].dims)
    if len(ins) == 1:
        return b.bind(node.output[0], acts[0])
    if len(acts) == len(ins):
        first = acts[0]
        rest = [x.view[:k] + x.view[k + 1 :] for x in acts]
        if all(V.axis_of(x.view, k, x.shape) == 0 or (x.shape[0] == 1 and not x.view[k]) for x in acts):
            if all(r == rest[0] for r in rest) and all(x.shape[1:] == first.shape[1:] for x in acts):
                return b.emit(node, "concat", {}, acts, view=same(first))
        if k == 1 and all(
            V.channels_first(x.view, x.shape) or V.channels_shuffled(x.view, x.shape) for x in acts
        ):
            shapes, rfs, lost, view = _merged(b, acts)
            return b.emit(node, "concat", {}, acts, shapes=shapes, rfs=rfs, lost=lost, view=view)
        raise Unfollowed(f"concatenates along ONNX axis {k}, which is not the channels")
    # learned tokens before the sequence: ViT's class token (DeiT's distillation token)
    x = acts[0]
    lead = ins[: ins.index(x)]
    if len(acts) == 1 and lead and all(isinstance(c, Const) and c.dims is not None for c in lead):
        if len(x.shape) == 2 and V.axis_of(x.view, k, x.shape) == 1 and ins[-1] is x:
            ok = all(
                len(c.dims) == len(x.dims)
                and all(c.dims[i] == x.dims[i] for i in range(len(x.dims)) if i != k)
                for c in lead
            )
            if ok:
                n = sum(c.dims[k] for c in lead)
                params = tuple(p for c in lead for p in c.params)
                return b.emit(
                    node,
                    "class_token",
                    {"n": n},
                    [x],
                    params=params,
                    view=lambda shape: V.with_axis(x.view, 1, shape[1]),
                )
    raise Unfollowed("concatenates a constant")


# --- control flow ----------------------------------------------------------------------------------


@handles("If")
def _if(b, node):
    """An If whose condition is a constant (torch's exports test a shape: LRN's squeeze of a
    3-D input) runs its branch's nodes in place, when the other branch holds no parameter;
    any other If is control flow."""
    cond = b.get(node, 0)
    if isinstance(cond, Const) and cond.value is not None and cond.value.size == 1:
        branches = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
        taken = branches.get("then_branch" if bool(cond.value.reshape(-1)[0]) else "else_branch")
        other = [g for g in branches.values() if g is not taken]
        if taken is not None and not len(taken.initializer) and not any(_holds(b, g) for g in other):
            for j, n in enumerate(taken.node):
                b.step(n, j)
            for out, g_out in zip(node.output, taken.output):
                if g_out.name not in b.tensors:
                    raise Unfollowed(f"its branch's output '{g_out.name}' is made by no node of it")
                b.bind(out, b.tensors[g_out.name])
            return None
    return _control_flow(b, node)


def _holds(b, graph) -> bool:
    """A subgraph holds parameters: initializers, or reads of the outer ones."""
    import onnx

    probe = onnx.NodeProto()
    probe.op_type = "If"
    probe.attribute.add().CopyFrom(onnx.helper.make_attribute("then_branch", graph))
    return b.holds_params(probe)


@handles("Loop", "Scan")
def _control_flow(b, node):
    """Control flow: an opaque layer holding every parameter of its subgraphs (both of an
    If's branches; a Loop's body once, whatever its trip count), MACs unknown (the totals a
    lower bound), the receptive field unknown past it."""
    what = {"If": "both branches", "Loop": "the loop body", "Scan": "the scan body"}[node.op_type]
    raise Unfollowed(f"control flow: the parameters of {what} are counted, its MACs are unknown")
