"""The torch side of :mod:`cnnstat.ops.pool`: maxpool, avgpool, gap, gmp, adaptive pooling."""

from __future__ import annotations

from torch import nn

from cnnstat.ops.window import portable
from cnnstat.torch.ops.base import FUNCTIONS, MODULES, NEG_INF, SamePad, builds, nd, t, window

# --- modules beyond torch.nn ------------------------------------------------------------------


class SamePadMaxPool1d(SamePad, nn.MaxPool1d):
    pad_value = NEG_INF


class SamePadMaxPool2d(SamePad, nn.MaxPool2d):
    pad_value = NEG_INF


class SamePadMaxPool3d(SamePad, nn.MaxPool3d):
    pad_value = NEG_INF


class SamePadAvgPool1d(SamePad, nn.AvgPool1d):
    pass


class SamePadAvgPool2d(SamePad, nn.AvgPool2d):
    pass


class SamePadAvgPool3d(SamePad, nn.AvgPool3d):
    pass


_MAX = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_MAX_PADDED = (SamePadMaxPool1d, SamePadMaxPool2d, SamePadMaxPool3d)
_AVG_PADDED = (SamePadAvgPool1d, SamePadAvgPool2d, SamePadAvgPool3d)
_ADAPTIVE_AVG = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_ADAPTIVE_MAX = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


# --- build ------------------------------------------------------------------------------------


def _pool_builder(is_max):
    def build(a, shapes):
        shape = shapes[0]
        k, s, d, pads = window(a, shape)
        kw = dict(kernel_size=k, stride=s, ceil_mode=a["ceil"])
        if is_max:
            kw["dilation"] = d
        if all(b == e for b, e in pads):
            return nd(shape, *(_MAX if is_max else _AVG))(padding=tuple(b for b, _ in pads), **kw)
        pool = nd(shape, *(_MAX_PADDED if is_max else _AVG_PADDED))(padding=0, **kw)
        pool._set_pads(pads, portable(a["p"]))
        return pool

    return build


builds("maxpool")(_pool_builder(True))
builds("avgpool")(_pool_builder(False))


def _adaptive_module(avg, shape, size, op=None):
    pool = nd(shape, *(_ADAPTIVE_AVG if avg else _ADAPTIVE_MAX))(
        size if isinstance(size, int) else tuple(size)
    )
    if op:
        pool.cnnstat_op = op  # the importer maps it back to gap/gmp, not adaptive pooling to 1
    return pool


@builds("gap")
def _build_gap(a, shapes):
    return _adaptive_module(True, shapes[0], 1, "gap")


@builds("gmp")
def _build_gmp(a, shapes):
    return _adaptive_module(False, shapes[0], 1, "gmp")


@builds("adaptive_avgpool")
def _build_adaptive_avg(a, shapes):
    return _adaptive_module(True, shapes[0], a["size"])


@builds("adaptive_maxpool")
def _build_adaptive_max(a, shapes):
    return _adaptive_module(False, shapes[0], a["size"])


# --- import -----------------------------------------------------------------------------------


def _m_pool(op):
    def handle(rec, call):
        m = call.module
        if getattr(m, "return_indices", False):
            return rec.unsupported_call(call, "return_indices=True")
        a = {
            "k": t(m.kernel_size),
            "s": t(m.stride) or None,
            "p": t(getattr(m, "cnnstat_padding", m.padding)),
        }
        a["ceil"] = m.ceil_mode
        if op == "maxpool":
            a["d"] = t(m.dilation)
        rec.emit(call, op, a, [rec.ref(call.args[0])])

    return handle


def adaptive(rec, call, x, size, avg, op=None):
    """Adaptive pooling to ``size``; ``op`` 'gap'/'gmp' where the module says it is one."""
    ref = rec.ref(x)
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
        adaptive(rec, call, call.args[0], m.output_size, avg, getattr(m, "cnnstat_op", None))

    return handle


def _f_pool(op):
    def handle(rec, call):
        k = t(call.arg(1, "kernel_size"))
        s = t(call.arg(2, "stride", None)) or None
        a = {"k": k, "s": s, "p": t(call.arg(3, "padding", 0))}
        if op == "maxpool":
            a["d"] = t(call.arg(4, "dilation", 1))
            a["ceil"] = bool(call.arg(5, "ceil_mode", False))
            if call.arg(6, "return_indices", False):
                return rec.unsupported_call(call, "return_indices=True")
        else:
            a["ceil"] = bool(call.arg(4, "ceil_mode", False))
        rec.emit(call, op, a, [rec.ref(call.arg(0, "input"))])

    return handle


def _f_adaptive(avg):
    def handle(rec, call):
        if not avg and call.arg(2, "return_indices", False):
            return rec.unsupported_call(call, "return_indices=True")
        adaptive(rec, call, call.arg(0, "input"), call.arg(1, "output_size"), avg)

    return handle


def _f_reduce(op):
    """x.mean((2, 3)) / amax over every spatial axis: global pooling. Also over every position
    of a map with its channels moved last (``x.mean((1, 2))`` of [B, H, W, C]) or of tokens
    (``x.mean(1)`` of [B, N, D]) without ``keepdim``: the pooling of the channels-first base
    ([B, C], as torch's result)."""

    def handle(rec, call):
        x = call.arg(0, "input")
        dims = call.arg(1, "dim", None)
        n = x.dim()
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        if len(x.shape) >= 3 and {d % n for d in dims} == set(range(2, n)):
            return rec.emit(call, op, {}, [rec.ref(x)])
        ref = rec.ref(x)
        base, perm = ref.layout(n) if ref is not None else (None, None)
        keep = call.arg(2, "keepdim", False)
        if perm is not None and not keep and base.base is None and len(x.shape) >= 3:
            axes = {perm[d % n] for d in dims}
            if axes == set(range(2, len(base.shape) + 1)) and None not in axes:
                return rec.emit(call, op, {}, [base])
        return rec.unsupported_call(call, f"reduces dims {list(dims)} of a {n}-D tensor")

    return handle


for _cls in (*_MAX, *_MAX_PADDED):
    MODULES[_cls] = _m_pool("maxpool")
for _cls in (*_AVG, *_AVG_PADDED):
    MODULES[_cls] = _m_pool("avgpool")
for _cls in _ADAPTIVE_AVG:
    MODULES[_cls] = _m_adaptive(True)
for _cls in _ADAPTIVE_MAX:
    MODULES[_cls] = _m_adaptive(False)
for _n in ("1d", "2d", "3d"):
    FUNCTIONS[f"max_pool{_n}"] = _f_pool("maxpool")
    FUNCTIONS[f"avg_pool{_n}"] = _f_pool("avgpool")
    FUNCTIONS[f"adaptive_avg_pool{_n}"] = _f_adaptive(True)
    FUNCTIONS[f"adaptive_max_pool{_n}"] = _f_adaptive(False)
FUNCTIONS["mean"] = _f_reduce("gap")
FUNCTIONS["amax"] = _f_reduce("gmp")
