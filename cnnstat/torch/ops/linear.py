"""The torch side of :mod:`cnnstat.ops.linear`: fc, and linear (the same matrix at every
position, :class:`PointwiseLinear`)."""

from __future__ import annotations

from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds

# --- modules beyond torch.nn ------------------------------------------------------------------


class PointwiseLinear(nn.Module):
    """cnnstat ``linear``: an ``nn.Linear(C, out)`` applied over the channels (dim 1) of a
    channels-first tensor [B, C, *positions] -> [B, out, *positions]; a flat [B, D] input is
    one position. Its weight is the Linear's [out, C], so ``sum(p.numel())`` is cnnstat's
    count and PyTorch's flop counter sees one matrix product of positions x C x out MACs."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, x):
        if x.dim() == 2:
            return self.linear(x)
        return self.linear(x.movedim(1, -1)).movedim(-1, 1)


@builds("fc")
def _build_fc(a, shapes):
    if "_window" in a:  # frame mode: the convolution over the fc's window, at every position
        conv = nn.Conv2d if len(a["_window"]) == 2 else nn.Conv3d
        return conv(a["_channels"], a["out"], a["_window"], bias=a["bias"])
    return nn.Linear(shapes[0][0], a["out"], bias=a["bias"])


@builds("linear")
def _build_linear(a, shapes):
    return PointwiseLinear(shapes[0][0], a["out"], bias=a["bias"])


# --- import -----------------------------------------------------------------------------------


def linear(rec, call, x, out: int, bias: bool, params=None):
    """torch's linear over the last axis of ``x``: ``fc`` on a flat [B, D] input; ``linear``
    (the same matrix at every position) where the last axis holds the channels of a
    channels-first base (channels moved last, tokens [B, N, D]); anything else (the last
    axis a position axis) is left to ``fc``, which refuses it."""
    ref = rec.ref(x)
    a = {"out": out, "bias": bias}
    if ref is not None and x.dim() > 2:
        _, perm = ref.layout(x.dim())
        if perm is not None and perm[-1] == 1:
            return rec.emit_laid(call, "linear", a, [ref], params=params)
    rec.emit(call, "fc", a, [ref], params=params)


def _m_linear(rec, call):
    m = call.module
    linear(rec, call, call.args[0] if call.args else call.kwargs["input"], m.out_features, m.bias is not None)


def _m_pointwise(rec, call):
    m = call.module.linear
    rec.emit(call, "linear", {"out": m.out_features, "bias": m.bias is not None}, [rec.ref(call.args[0])])


def _f_linear(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(1, "weight"), call.arg(2, "bias")
    params = rec.param_names([w, b] if b is not None else [w])
    linear(rec, call, x, w.shape[0], b is not None, params)


MODULES[nn.Linear] = _m_linear
MODULES[PointwiseLinear] = _m_pointwise
FUNCTIONS["linear"] = _f_linear
