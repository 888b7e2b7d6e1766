"""torch modules and functions -> cnnstat ops.

A handler reads the call's arguments and asks the recorder for a layer of an existing cnnstat
op (``rec.emit``); the op's own handler in :mod:`cnnstat.ops` does the arithmetic. Layout calls
(view, flatten, transpose, ...) become ``flatten`` or ``shuffle`` layers or nothing; arithmetic
with a constant is free (no layer). Anything else is unsupported (listed, not counted).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.torch import modules as M
from cnnstat.torch.recorder import Ref, rf_for, sample_shape, tensors_in

# --- helpers ---------------------------------------------------------------------------------


def _t(v):
    if isinstance(v, (list, tuple, torch.Size)):
        return tuple(int(x) for x in v)
    return v


def _ref(rec, t):
    return rec.ref(t)


def _is_tensor(v):
    return isinstance(v, torch.Tensor)


def _conv_op(in_channels, out, groups, k, s, p, d, bias):
    args = dict(k=_t(k), s=_t(s), p=_t(p), d=_t(d), bias=bias)
    if groups > 1 and groups == in_channels and out % in_channels == 0:
        return "dwconv", {**args, "mult": out // in_channels}
    return "conv", {**args, "out": out, "groups": groups}


def _elementwise(op):
    def handle(rec, call):
        rec.emit(call, op, {}, [_ref(rec, call.args[0] if call.args else call.kwargs["input"])])

    return handle


# --- modules ---------------------------------------------------------------------------------


def _m_conv(rec, call):
    m = call.module
    p = getattr(m, "cnnstat_padding", m.padding)
    op, a = _conv_op(
        m.in_channels, m.out_channels, m.groups, m.kernel_size, m.stride, p, m.dilation, m.bias is not None
    )
    rec.emit(call, op, a, [_ref(rec, call.args[0])])


def _m_local(rec, call):
    m = call.module
    a = dict(out=m.out_channels, k=_t(m.kernel_size), s=_t(m.stride), p=_t(m.padding), d=_t(m.dilation))
    rec.emit(call, "local", {**a, "bias": m.bias is not None}, [_ref(rec, call.args[0])])


def _m_linear(rec, call):
    m = call.module
    rec.emit(call, "fc", {"out": m.out_features, "bias": m.bias is not None}, [_ref(rec, call.args[0])])


def _m_bn(rec, call):
    m = call.module
    a = {"affine": m.affine, "eps": m.eps, "momentum": m.momentum if m.momentum is not None else 0.0}
    rec.emit(call, "bn", a, [_ref(rec, call.args[0])])


def _m_lrn(rec, call):
    m = call.module
    rec.emit(
        call, "lrn", {"size": m.size, "alpha": m.alpha, "beta": m.beta, "k": m.k}, [_ref(rec, call.args[0])]
    )


def _m_pool(op):
    def handle(rec, call):
        m = call.module
        if getattr(m, "return_indices", False):
            return rec.unsupported_call(call, "return_indices=True")
        a = {
            "k": _t(m.kernel_size),
            "s": _t(m.stride) or None,
            "p": _t(getattr(m, "cnnstat_padding", m.padding)),
        }
        a["ceil"] = m.ceil_mode
        if op == "maxpool":
            a["d"] = _t(m.dilation)
        rec.emit(call, op, a, [_ref(rec, call.args[0])])

    return handle


def _adaptive(rec, call, x, size, avg, op=None):
    """Adaptive pooling to ``size``; ``op`` 'gap'/'gmp' where the module says it is one."""
    ref = _ref(rec, x)
    if op in ("gap", "gmp"):
        return rec.emit(call, op, {}, [ref])
    n = len(ref.shape) - 1
    size = (size,) * n if isinstance(size, int) else tuple(size)
    size = tuple(ref.shape[1 + i] if v is None else int(v) for i, v in enumerate(size))
    rec.emit(call, "adaptive_avgpool" if avg else "adaptive_maxpool", {"size": size}, [ref])


def _m_adaptive(avg):
    def handle(rec, call):
        if getattr(call.module, "return_indices", False):
            return rec.unsupported_call(call, "return_indices=True")
        m = call.module
        _adaptive(rec, call, call.args[0], m.output_size, avg, getattr(m, "cnnstat_op", None))

    return handle


def _m_softmax(rec, call):
    dim = call.module.dim
    rec.emit(
        call,
        "softmax",
        {"dim": 0 if dim is None else (dim - 1 if dim > 0 else dim)},
        [_ref(rec, call.args[0])],
    )


def _m_dropout(rec, call):
    rec.emit(call, "dropout", {"p": float(call.module.p)}, [_ref(rec, call.args[0])])


def _m_hardtanh(rec, call):
    _clamped(rec, call, call.args[0], call.module.min_val, call.module.max_val)


def _m_prelu(rec, call):
    rec.emit(call, "prelu", {"shared": call.module.num_parameters == 1}, [_ref(rec, call.args[0])])


def _m_shuffle(rec, call):
    rec.emit(call, "shuffle", {"groups": call.module.groups}, [_ref(rec, call.args[0])])


def _m_flatten(rec, call):
    _layout(rec, call, call.args[0])


def _m_merge(op):
    def handle(rec, call):
        rec.emit(call, op, {}, [_ref(rec, t) for t in call.args])

    return handle


def _m_slice(rec, call):
    m = call.module
    rec.emit(call, "slice", {"start": m.start, "stop": m.stop}, [_ref(rec, call.args[0])])


_ELEMENTWISE_MODULES = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.SiLU: "silu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Identity: "identity",
}

MODULES = {
    **{cls: _elementwise(op) for cls, op in _ELEMENTWISE_MODULES.items()},
    nn.Conv1d: _m_conv,
    nn.Conv2d: _m_conv,
    M.SamePadConv1d: _m_conv,
    M.SamePadConv2d: _m_conv,
    M.LocallyConnected: _m_local,
    nn.Linear: _m_linear,
    nn.BatchNorm1d: _m_bn,
    nn.BatchNorm2d: _m_bn,
    nn.LocalResponseNorm: _m_lrn,
    nn.MaxPool1d: _m_pool("maxpool"),
    nn.MaxPool2d: _m_pool("maxpool"),
    M.SamePadMaxPool1d: _m_pool("maxpool"),
    M.SamePadMaxPool2d: _m_pool("maxpool"),
    nn.AvgPool1d: _m_pool("avgpool"),
    nn.AvgPool2d: _m_pool("avgpool"),
    M.SamePadAvgPool1d: _m_pool("avgpool"),
    M.SamePadAvgPool2d: _m_pool("avgpool"),
    nn.AdaptiveAvgPool1d: _m_adaptive(True),
    nn.AdaptiveAvgPool2d: _m_adaptive(True),
    nn.AdaptiveMaxPool1d: _m_adaptive(False),
    nn.AdaptiveMaxPool2d: _m_adaptive(False),
    nn.Softmax: _m_softmax,
    nn.Dropout: _m_dropout,
    nn.Dropout1d: _m_dropout,
    nn.Dropout2d: _m_dropout,
    nn.AlphaDropout: _m_dropout,
    nn.FeatureAlphaDropout: _m_dropout,
    nn.Hardtanh: _m_hardtanh,
    nn.PReLU: _m_prelu,
    nn.ChannelShuffle: _m_shuffle,
    nn.Flatten: _m_flatten,
    M.Add: _m_merge("add"),
    M.Mul: _m_merge("mul"),
    M.Concat: _m_merge("concat"),
    M.ChannelSlice: _m_slice,
}


def module_handler(module):
    """The handler for a module's class; a subclass inherits it unless it changes ``forward``."""
    for cls in type(module).__mro__:
        handler = MODULES.get(cls)
        if handler is not None:
            return handler if type(module).forward is cls.forward else None
    return None


def is_leaf(module) -> bool:
    """Modules the tracers do not look inside: mapped ones, and torch.nn's own (as torch.fx)."""
    if module_handler(module) is not None:
        return True
    where = type(module).__module__
    return (where.startswith("torch.nn") or where.startswith("torch.ao.nn")) and not isinstance(
        module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    )


def module_label(module) -> str:
    cls = type(module)
    if cls.__module__.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


# --- functions -------------------------------------------------------------------------------


def _f_conv(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(1, "weight"), call.arg(2, "bias")
    s, p, d, g = (
        call.arg(3, "stride", 1),
        call.arg(4, "padding", 0),
        call.arg(5, "dilation", 1),
        call.arg(6, "groups", 1),
    )
    op, a = _conv_op(x.shape[1], w.shape[0], g, tuple(w.shape[2:]), s, p, d, b is not None)
    rec.emit(call, op, a, [_ref(rec, x)], params=rec.param_names([w, b] if b is not None else [w]))


def _f_linear(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(1, "weight"), call.arg(2, "bias")
    params = rec.param_names([w, b] if b is not None else [w])
    rec.emit(call, "fc", {"out": w.shape[0], "bias": b is not None}, [_ref(rec, x)], params=params)


def _f_batch_norm(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(3, "weight"), call.arg(4, "bias")
    params = rec.param_names([t for t in (w, b) if t is not None])
    rec.emit(
        call,
        "bn",
        {"affine": w is not None, "eps": float(call.arg(7, "eps", 1e-5))},
        [_ref(rec, x)],
        params=params,
    )


def _f_lrn(rec, call):
    a = {
        "size": call.arg(1, "size"),
        "alpha": call.arg(2, "alpha", 1e-4),
        "beta": call.arg(3, "beta", 0.75),
        "k": call.arg(4, "k", 1.0),
    }
    rec.emit(call, "lrn", a, [_ref(rec, call.arg(0, "input"))])


def _f_pool(op):
    def handle(rec, call):
        k = _t(call.arg(1, "kernel_size"))
        s = _t(call.arg(2, "stride", None)) or None
        a = {"k": k, "s": s, "p": _t(call.arg(3, "padding", 0))}
        if op == "maxpool":
            a["d"] = _t(call.arg(4, "dilation", 1))
            a["ceil"] = bool(call.arg(5, "ceil_mode", False))
            if call.arg(6, "return_indices", False):
                return rec.unsupported_call(call, "return_indices=True")
        else:
            a["ceil"] = bool(call.arg(4, "ceil_mode", False))
        rec.emit(call, op, a, [_ref(rec, call.arg(0, "input"))])

    return handle


def _f_adaptive(avg):
    def handle(rec, call):
        if not avg and call.arg(2, "return_indices", False):
            return rec.unsupported_call(call, "return_indices=True")
        _adaptive(rec, call, call.arg(0, "input"), call.arg(1, "output_size"), avg)

    return handle


def _f_reduce(op):
    """x.mean((2, 3)) / amax over every spatial axis: global pooling."""

    def handle(rec, call):
        x = call.arg(0, "input")
        dims = call.arg(1, "dim", None)
        n = x.dim()
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        if len(x.shape) < 3 or {d % n for d in dims} != set(range(2, n)):
            return rec.unsupported_call(call, f"reduces dims {list(dims)} of a {n}-D tensor")
        rec.emit(call, op, {}, [_ref(rec, x)])

    return handle


def _f_softmax(rec, call):
    dim = call.arg(1, "dim", None)
    dim = 0 if dim is None else (dim - 1 if dim > 0 else dim)
    rec.emit(call, "softmax", {"dim": dim}, [_ref(rec, call.arg(0, "input"))])


def _f_dropout(rec, call):
    rec.emit(call, "dropout", {"p": float(call.arg(1, "p", 0.5))}, [_ref(rec, call.arg(0, "input"))])


def _clamped(rec, call, x, low, high):
    if low == 0 and high is None:
        return rec.emit(call, "relu", {}, [_ref(rec, x)])
    if low == 0 and high == 6:
        return rec.emit(call, "relu6", {}, [_ref(rec, x)])
    rec.unsupported_call(call, f"clamps to [{low}, {high}] (only relu and relu6 map)")


def _f_hardtanh(rec, call):
    _clamped(rec, call, call.arg(0, "input"), call.arg(1, "min_val", -1.0), call.arg(2, "max_val", 1.0))


def _f_clamp(rec, call):
    _clamped(rec, call, call.arg(0, "input"), call.arg(1, "min", None), call.arg(2, "max", None))


def _f_clamp_min(rec, call):
    _clamped(rec, call, call.arg(0, "input"), call.arg(1, "min", None), None)


def _f_prelu(rec, call):
    w = call.arg(1, "weight")
    rec.emit(
        call,
        "prelu",
        {"shared": w.numel() == 1},
        [_ref(rec, call.arg(0, "input"))],
        params=rec.param_names([w]),
    )


def _f_shuffle(rec, call):
    rec.emit(call, "shuffle", {"groups": int(call.arg(1, "groups"))}, [_ref(rec, call.arg(0, "input"))])


def _operands(rec, call):
    """(tracked Refs, untracked tensor operands) of an element-wise binary call."""
    values = [call.arg(0, "input"), call.arg(1, "other")]
    refs = [rec.ref(v) for v in values if _is_tensor(v) and rec.ref(v) is not None]
    others = [v for v in values if _is_tensor(v) and rec.ref(v) is None]
    return refs, others


def _f_binary(op):
    """add / mul of two tracked tensors: a merge; with a constant: free (no layer). A
    parameter operand (a learned scale or offset) is not a cnnstat op: unsupported."""

    def handle(rec, call):
        refs, others = _operands(rec, call)
        if rec.param_names(others):
            return rec.unsupported_call(call, "an operand is a parameter", rec.param_names(others))
        if len(refs) == 2 and op is not None:
            return rec.emit(call, op, {}, refs)
        if len(refs) == 2:
            return rec.unsupported_call(call, "between two tensors")
        rec.bind(call.out, refs[0])

    return handle


def _f_cat(rec, call):
    tensors = call.arg(0, "tensors")
    dim = call.arg(1, "dim", 0)
    refs = [rec.ref(t) for t in tensors]
    if any(r is None for r in refs):
        return rec.unsupported_call(call, "concatenates a constant")
    if dim % tensors[0].dim() != 1:
        return rec.unsupported_call(call, f"concatenates along dim {dim} (cnnstat: channels, dim 1)")
    rec.emit(call, "concat", {}, refs)


def _f_split(rec, call):
    """chunk / split / tensor_split along channels: one slice layer per part."""
    x = call.arg(0, "input")
    dim = call.arg(2, "dim", 0) if call.fname in ("chunk", "split", "tensor_split") else 0
    if dim % x.dim() != 1:
        return rec.unsupported_call(call, f"splits along dim {dim} (cnnstat: channels, dim 1)")
    ref, start = rec.ref(x), 0
    for part in call.out:
        stop = start + part.shape[1]
        rec.emit(call, "slice", {"start": start, "stop": stop}, [ref], out=part)
        start = stop


def _f_narrow(rec, call):
    x, dim, start, length = (
        call.arg(0, "input"),
        call.arg(1, "dim"),
        call.arg(2, "start"),
        call.arg(3, "length"),
    )
    if dim % x.dim() != 1:
        return rec.unsupported_call(call, f"narrows dim {dim} (cnnstat: channels, dim 1)")
    rec.emit(call, "slice", {"start": int(start), "stop": int(start + length)}, [rec.ref(x)])


def _f_getitem(rec, call):
    x, index = call.args[0], call.args[1]
    if not _is_tensor(x):
        return  # an element of a tuple (chunk, split): already known
    index = index if isinstance(index, tuple) else (index,)
    rest = [i for i in index[2:] if i is not Ellipsis and i != slice(None)]
    ok = (
        len(index) >= 2
        and index[0] == slice(None)
        and isinstance(index[1], slice)
        and index[1].step in (None, 1)
        and not rest
    )
    if not ok:
        return rec.unsupported_call(call, "indexes other than a channel range x[:, a:b]")
    c = x.shape[1]
    start, stop, _ = index[1].indices(c)
    rec.emit(call, "slice", {"start": start, "stop": stop}, [rec.ref(x)])


def _shuffle_groups(base: Ref, steps) -> int | None:
    """view (g, C/g, ...) -> transpose(1, 2) -> view back: ShuffleNet's channel shuffle."""
    steps = [s for s in steps if s[0] != "contiguous"]
    if len(steps) != 3 or steps[1][0] not in ("transpose", "permute", "swapaxes"):
        return None
    c, spatial = base.shape[0], base.shape[1:]
    first, second = steps[0][1], steps[1][1]
    if len(first) < 2 or first[2:] != spatial or first[0] * first[1] != c:
        return None
    if second != (first[1], first[0], *spatial):
        return None
    return first[0]


def _layout(rec, call, x):
    """A call that only rearranges values: nothing, a flatten, or a channel shuffle."""
    src = rec.ref(x)
    base = src.base or src
    actual = sample_shape(call.out)
    steps = (*src.steps, (call.fname, actual))
    if actual == base.shape:
        groups = _shuffle_groups(base, steps)
        if groups:
            return rec.emit(call, "shuffle", {"groups": groups}, [base])
        return rec.bind(call.out, base)
    if len(actual) == 1 and len(base.shape) > 1:
        return rec.emit(call, "flatten", {}, [base])
    rec.bind(call.out, Ref(base.name, actual, rf_for(base.rf, actual), base, steps))


def _f_layout(rec, call):
    _layout(rec, call, call.args[0] if call.args else call.kwargs["input"])


def _f_same(rec, call):
    """Copies and casts (clone, detach, to, float): the same values."""
    rec.bind(call.out, rec.ref(call.args[0] if call.args else call.kwargs["input"]))


_ELEMENTWISE_FUNCTIONS = ("relu", "relu6", "hardswish", "hardsigmoid", "silu", "sigmoid", "tanh")

FUNCTIONS = {
    **{name: _elementwise(name) for name in _ELEMENTWISE_FUNCTIONS},
    "conv1d": _f_conv,
    "conv2d": _f_conv,
    "linear": _f_linear,
    "batch_norm": _f_batch_norm,
    "local_response_norm": _f_lrn,
    "max_pool1d": _f_pool("maxpool"),
    "max_pool2d": _f_pool("maxpool"),
    "avg_pool1d": _f_pool("avgpool"),
    "avg_pool2d": _f_pool("avgpool"),
    "adaptive_avg_pool1d": _f_adaptive(True),
    "adaptive_avg_pool2d": _f_adaptive(True),
    "adaptive_max_pool1d": _f_adaptive(False),
    "adaptive_max_pool2d": _f_adaptive(False),
    "mean": _f_reduce("gap"),
    "amax": _f_reduce("gmp"),
    "softmax": _f_softmax,
    "dropout": _f_dropout,
    "dropout1d": _f_dropout,
    "dropout2d": _f_dropout,
    "feature_dropout": _f_dropout,
    "alpha_dropout": _f_dropout,
    "feature_alpha_dropout": _f_dropout,
    "stochastic_depth": _f_dropout,
    "hardtanh": _f_hardtanh,
    "clamp": _f_clamp,
    "clip": _f_clamp,
    "clamp_min": _f_clamp_min,
    "prelu": _f_prelu,
    "channel_shuffle": _f_shuffle,
    "native_channel_shuffle": _f_shuffle,
    "add": _f_binary("add"),
    "mul": _f_binary("mul"),
    "sub": _f_binary(None),
    "div": _f_binary(None),
    "cat": _f_cat,
    "concat": _f_cat,
    "concatenate": _f_cat,
    "chunk": _f_split,
    "split": _f_split,
    "tensor_split": _f_split,
    "narrow": _f_narrow,
    "getitem": _f_getitem,
    **{
        name: _f_layout
        for name in (
            "view",
            "reshape",
            "flatten",
            "unflatten",
            "permute",
            "transpose",
            "swapaxes",
            "contiguous",
            "squeeze",
            "unsqueeze",
        )
    },
    **{name: _f_same for name in ("clone", "detach", "to", "float", "type_as", "type")},
}

_ALIASES = {
    "iadd": "add",
    "radd": "add",
    "isub": "sub",
    "rsub": "sub",
    "imul": "mul",
    "rmul": "mul",
    "truediv": "div",
    "itruediv": "div",
    "rtruediv": "div",
    "true_divide": "div",
    "divide": "div",
    "multiply": "mul",
    "subtract": "sub",
    "max_pool2d_with_indices": "max_pool2d",
    "max_pool1d_with_indices": "max_pool1d",
}


def canonical(name: str) -> str:
    """One name for torch.add, Tensor.add_, Tensor.__iadd__, operator.iadd: 'add'."""
    name = name.strip("_")
    return _ALIASES.get(name, name)


def function_handler(name: str):
    return FUNCTIONS.get(name)


def function_label(func) -> str:
    """'torch.roll', 'F.relu', 'Tensor.view', 'operator.add' for messages."""
    if isinstance(func, str):
        return f"Tensor.{func}"
    name = getattr(func, "__name__", repr(func))
    qual = getattr(func, "__qualname__", name) or name
    if qual.startswith(("TensorBase.", "Tensor.")) or getattr(torch.Tensor, name, None) is func:
        return f"Tensor.{name}"
    if getattr(torch, name, None) is func:
        return f"torch.{name}"
    if getattr(F, name, None) is func:
        return f"F.{name}"
    if getattr(operator, name, None) is func:
        return f"operator.{name}"
    return f"{getattr(func, '__module__', None) or '?'}.{qual}"


__all__ = ["FUNCTIONS", "MODULES", "canonical", "function_handler", "is_leaf", "module_handler", "tensors_in"]
