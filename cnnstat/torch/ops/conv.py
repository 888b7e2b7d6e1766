"""The torch side of :mod:`cnnstat.ops.conv`: conv, dwconv, local, conv_transpose."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.errors import CnnstatError
from cnnstat.ops.window import paddings, portable
from cnnstat.torch.ops.base import (
    FUNCTIONS,
    MODULES,
    NAMED_MODULES,
    SamePad,
    axes,
    builds,
    nd,
    pad_arg,
    t,
    window,
)

TIMM_STD_CONV = "timm.layers.std_conv"

# --- modules beyond torch.nn ------------------------------------------------------------------


class SamePadConv1d(SamePad, nn.Conv1d):
    pass


class SamePadConv2d(SamePad, nn.Conv2d):
    pass


class SamePadConv3d(SamePad, nn.Conv3d):
    pass


class LocallyConnected(nn.Module):
    """A convolution whose filters are not shared across positions (cnnstat ``local``).

    Arguments as cnnstat's: ``in_size`` is the input's spatial size (the weights depend on it),
    ``kernel_size``, ``stride``, ``padding`` (int, per axis, ``'same'`` or ``'valid'``) and
    ``dilation`` an int or one per axis. ``weight`` is [positions, C_in*k_h*k_w, C_out] and
    ``bias`` [C_out, *out_size], so ``sum(p.numel())`` is cnnstat's count. The forward unfolds
    the input into columns and multiplies each position's column by its own filters in one
    ``torch.bmm``: fvcore and PyTorch's flop counter count positions x C_in*k_h*k_w x C_out
    multiply-accumulates, the MACs of the equivalent convolution. 1-D inputs [N, C, L] run as
    [N, C, 1, L].
    """

    def __init__(
        self, in_channels, out_channels, in_size, kernel_size, stride=1, padding=0, dilation=1, bias=True
    ):
        super().__init__()
        n = len(in_size)
        axes = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * n  # noqa: E731
        self.in_channels, self.out_channels, self.in_size = in_channels, out_channels, tuple(in_size)
        self.kernel_size, self.stride, self.dilation = axes(kernel_size), axes(stride), axes(dilation)
        self.padding = padding
        pads = paddings(padding, self.in_size, self.kernel_size, self.stride, self.dilation)
        self.out_size = tuple(
            (size + p[0] + p[1] - d * (k - 1) - 1) // s + 1
            for size, p, k, s, d in zip(self.in_size, pads, self.kernel_size, self.stride, self.dilation)
        )
        lift = (lambda v: (1, *v)) if n == 1 else tuple  # noqa: E731
        self._k, self._s, self._d = lift(self.kernel_size), lift(self.stride), lift(self.dilation)
        self._pads = pad_arg(([(0, 0)] if n == 1 else []) + list(pads))
        fan_in = in_channels * math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(math.prod(self.out_size), fan_in, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels, *self.out_size)) if bias else None
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        one_d = len(self.in_size) == 1
        if one_d:
            x = x.unsqueeze(2)
        if any(self._pads):
            x = F.pad(x, self._pads)
        cols = F.unfold(x, self._k, dilation=self._d, stride=self._s)  # [N, C_in*k_h*k_w, L]
        out = torch.bmm(cols.permute(2, 0, 1), self.weight)  # [L, N, C_out]
        out = out.permute(1, 2, 0).reshape(x.shape[0], self.out_channels, *self.out_size)
        return out if self.bias is None else out + self.bias

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"
        )


# --- build ------------------------------------------------------------------------------------


def _conv(a, shape, out, groups):
    k, s, d, pads = window(a, shape)
    kw = dict(kernel_size=k, stride=s, dilation=d, groups=groups, bias=a["bias"])
    if all(b == e for b, e in pads):
        cls = nd(shape, nn.Conv1d, nn.Conv2d, nn.Conv3d)
        return cls(shape[0], out, padding=tuple(b for b, _ in pads), **kw)
    conv = nd(shape, SamePadConv1d, SamePadConv2d, SamePadConv3d)(shape[0], out, padding=0, **kw)
    conv._set_pads(pads, portable(a["p"]))
    return conv


@builds("conv")
def _build_conv(a, shapes):
    return _conv(a, shapes[0], a["out"], a["groups"])


@builds("dwconv")
def _build_dwconv(a, shapes):
    return _conv(a, shapes[0], shapes[0][0] * a["mult"], shapes[0][0])


@builds("local")
def _build_local(a, shapes):
    shape = shapes[0]
    if len(shape) > 3:
        raise CnnstatError("a 3-D locally connected layer has no torch module")
    p = portable(a["p"])
    return LocallyConnected(shape[0], a["out"], shape[1:], a["k"], a["s"], p, a["d"], a["bias"])


@builds("conv_transpose")
def _build_conv_transpose(a, shapes):
    shape = shapes[0]
    cls = nd(shape, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    n = len(shape) - 1
    return cls(
        shape[0],
        a["out"],
        axes(a["k"], n),
        stride=axes(a["s"], n),
        padding=axes(a["p"], n),
        output_padding=axes(a["output_padding"], n),
        groups=a["groups"],
        bias=a["bias"],
        dilation=axes(a["d"], n),
    )


# --- import -----------------------------------------------------------------------------------


def conv_op(in_channels, out, groups, k, s, p, d, bias):
    """(cnnstat op, arguments) of a torch convolution: dwconv where groups = input channels."""
    args = dict(k=t(k), s=t(s), p=t(p), d=t(d), bias=bias)
    if groups > 1 and groups == in_channels and out % in_channels == 0:
        return "dwconv", {**args, "mult": out // in_channels}
    return "conv", {**args, "out": out, "groups": groups}


def _m_conv(rec, call):
    m = call.module
    p = getattr(m, "cnnstat_padding", m.padding)
    op, a = conv_op(
        m.in_channels, m.out_channels, m.groups, m.kernel_size, m.stride, p, m.dilation, m.bias is not None
    )
    rec.emit(call, op, a, [rec.ref(call.args[0])])


def _m_local(rec, call):
    m = call.module
    a = dict(out=m.out_channels, k=t(m.kernel_size), s=t(m.stride), p=t(m.padding), d=t(m.dilation))
    rec.emit(call, "local", {**a, "bias": m.bias is not None}, [rec.ref(call.args[0])])


def _f_conv(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(1, "weight"), call.arg(2, "bias")
    s, p, d, g = (
        call.arg(3, "stride", 1),
        call.arg(4, "padding", 0),
        call.arg(5, "dilation", 1),
        call.arg(6, "groups", 1),
    )
    op, a = conv_op(x.shape[1], w.shape[0], g, tuple(w.shape[2:]), s, p, d, b is not None)
    rec.emit(call, op, a, [rec.ref(x)], params=rec.param_names([w, b] if b is not None else [w]))


def _m_scaled_std_conv(rec, call):
    """timm's ScaledStdConv2d (NF-Nets: scaled weight standardisation): F.conv2d with the
    weight standardised per output channel and multiplied by a learned ``gain`` per output
    channel, computed from the parameters alone. conv(x, w g) + b = g conv(x, w) + b:
    counted as the convolution (its weight and bias) then a ``scale`` by the gain (one value
    per output channel), the bias before the gain -- the same parameters, multiply-accumulates
    (the standardisation works on the weights, not per input) and receptive field. The
    ``Same`` variant's run-time padding (``same_pad``: timm's ``pad_same``, TensorFlow's, the
    extra pixel after) is cnnstat's ``same``."""
    m = call.module
    padding = "same" if getattr(m, "same_pad", False) else m.padding
    if padding == "same" and any(v != 0 for v in t(m.padding)):
        return rec.unsupported_call(call, "pads at run time and in the convolution")
    x = call.arg(0, "x")
    op, a = conv_op(
        m.in_channels,
        m.out_channels,
        m.groups,
        m.kernel_size,
        m.stride,
        padding,
        m.dilation,
        m.bias is not None,
    )
    own = rec.param_names([m.weight, m.bias] if m.bias is not None else [m.weight])
    mid = torch.empty_like(call.out)
    rec.emit(call, op, a, [rec.ref(x)], params=own, out=mid)
    rec.emit(call, "scale", {}, [rec.ref(mid)], params=rec.param_names([m.gain]))


def _transposed(rec, call, x, out, k, s, p, d, groups, bias, params=None):
    """Emit conv_transpose; output_padding is what the output's size says (a module called
    with ``output_size`` chooses it at run time)."""
    n = len(k)
    s, p, d = axes(t(s), n), axes(t(p), n), axes(t(d), n)
    full = [(size - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 for i, size in enumerate(x.shape[2:])]
    extra = tuple(int(o) - f for o, f in zip(call.out.shape[2:], full))
    a = dict(out=out, k=t(k), s=s, p=p, output_padding=extra, d=d, groups=groups, bias=bias)
    rec.emit(call, "conv_transpose", a, [rec.ref(x)], params=params)


def _m_conv_transpose(rec, call):
    m = call.module
    x, bias = call.arg(0, "input"), m.bias is not None
    _transposed(rec, call, x, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups, bias)


def _f_conv_transpose(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(1, "weight"), call.arg(2, "bias")
    s, p, g, d = (
        call.arg(3, "stride", 1),
        call.arg(4, "padding", 0),
        call.arg(6, "groups", 1),
        call.arg(7, "dilation", 1),
    )
    params = rec.param_names([w, b] if b is not None else [w])
    _transposed(rec, call, x, w.shape[1] * g, tuple(w.shape[2:]), s, p, d, g, b is not None, params)


for _cls in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    MODULES[_cls] = _m_conv_transpose
for _name in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
    FUNCTIONS[_name] = _f_conv_transpose
for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d, SamePadConv1d, SamePadConv2d, SamePadConv3d):
    MODULES[_cls] = _m_conv
MODULES[LocallyConnected] = _m_local
for _cls in ("ScaledStdConv2d", "ScaledStdConv2dSame"):
    NAMED_MODULES[f"{TIMM_STD_CONV}.{_cls}"] = _m_scaled_std_conv
for _name in ("conv1d", "conv2d", "conv3d"):
    FUNCTIONS[_name] = _f_conv
