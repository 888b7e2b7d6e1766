"""Convolution, depthwise convolution and the locally connected (unshared) layer."""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Cost, Op, prod, register, spatial_rank
from cnnstat.ops.window import window

_WINDOW_ARGS = (
    Arg("k", "axes", aliases=("kernel", "kernel_size"), help="kernel size, int or per axis"),
    Arg("s", "axes", 1, aliases=("stride",), help="stride"),
    Arg("p", "padding", 0, aliases=("padding", "pad"), help="int, per axis, 'same' or 'valid'"),
    Arg("d", "axes", 1, aliases=("dilation",), help="dilation"),
    Arg("bias", "bool", True, help="learnable bias per output channel"),
)


def _windowed(a, shapes, rfs, op):
    """The sliding window of ``a`` over ``shapes[0]``: (k, out spatial, RF)."""
    spatial_rank(shapes[0], op)
    k, s, d, pads, out = window(a, shapes[0], op)
    return k, out, rfs[0].window(k, s, [p[0] for p in pads], d, out)


@register
class Conv(Op):
    """Convolution with shared weights. MACs = output elements x k_h x k_w x C_in / groups."""

    name = "conv"
    kind = "conv"
    args = (
        Arg("out", "int", aliases=("channels", "out_channels"), min=1, help="output channels"),
        *_WINDOW_ARGS,
        Arg("groups", "int", 1, aliases=("g",), min=1, help="channel groups"),
    )

    def infer(self, a, shapes, rfs):
        c, g, n = shapes[0][0], a["groups"], a["out"]
        if c % g or n % g:
            raise OpError(f"groups={g} must divide input channels {c} and output channels {n}")
        k, spatial, rf = _windowed(a, shapes, rfs, self.name)
        out = (n, *spatial)
        per_out = c // g * prod(k)
        return out, Cost(weights=n * per_out, biases=n if a["bias"] else 0, macs=prod(out) * per_out), rf


@register
class DepthwiseConv(Op):
    """Depthwise convolution: groups = input channels, ``mult`` filters per channel."""

    name = "dwconv"
    kind = "conv"
    args = (Arg("mult", "int", 1, aliases=("multiplier",), min=1), *_WINDOW_ARGS)

    def infer(self, a, shapes, rfs):
        k, spatial, rf = _windowed(a, shapes, rfs, self.name)
        out = (shapes[0][0] * a["mult"], *spatial)
        kk = prod(k)
        return out, Cost(weights=out[0] * kk, biases=out[0] if a["bias"] else 0, macs=prod(out) * kk), rf


@register
class LocallyConnected(Op):
    """Locally connected layer: a convolution whose weights are not shared across positions.

    Every output position has its own filters (and, with ``bias``, its own bias per channel),
    so weights = output elements x k_h x k_w x C_in; MACs are those of the equivalent conv.
    """

    name = "local"
    kind = "conv"
    fixed_input = True
    args = (
        Arg("out", "int", aliases=("channels", "out_channels"), min=1, help="output channels"),
        *_WINDOW_ARGS,
    )

    def frame_args(self, a, native):
        raise OpError("its weights differ at every position, so it cannot slide over a frame")

    def infer(self, a, shapes, rfs):
        k, spatial, rf = _windowed(a, shapes, rfs, self.name)
        out = (a["out"], *spatial)
        n, per_out = prod(out), shapes[0][0] * prod(k)
        return out, Cost(weights=n * per_out, biases=n if a["bias"] else 0, macs=n * per_out), rf
