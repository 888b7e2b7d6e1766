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


def _rf(a, rfs, shapes, out):
    k, s, d, pads, _ = window(a, shapes[0], "")
    return rfs[0].window(k, s, [p[0] for p in pads], d, out[1:])


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

    def _groups(self, a, shape):
        c, g = shape[0], a["groups"]
        if c % g or a["out"] % g:
            raise OpError(f"groups={g} must divide input channels {c} and output channels {a['out']}")
        return c // g

    def shape(self, a, shapes):
        spatial_rank(shapes[0], self.name)
        self._groups(a, shapes[0])
        return (a["out"], *window(a, shapes[0], self.name)[4])

    def cost(self, a, shapes, out):
        per_out = self._groups(a, shapes[0]) * prod(window(a, shapes[0], self.name)[0])
        return Cost(
            weights=a["out"] * per_out,
            biases=a["out"] if a["bias"] else 0,
            macs=prod(out) * per_out,
        )

    rf = staticmethod(_rf)


@register
class DepthwiseConv(Op):
    """Depthwise convolution: groups = input channels, ``mult`` filters per channel."""

    name = "dwconv"
    kind = "conv"
    args = (Arg("mult", "int", 1, aliases=("multiplier",), min=1), *_WINDOW_ARGS)

    def shape(self, a, shapes):
        spatial_rank(shapes[0], self.name)
        return (shapes[0][0] * a["mult"], *window(a, shapes[0], self.name)[4])

    def cost(self, a, shapes, out):
        k = prod(window(a, shapes[0], self.name)[0])
        return Cost(weights=out[0] * k, biases=out[0] if a["bias"] else 0, macs=prod(out) * k)

    rf = staticmethod(_rf)


@register
class LocallyConnected(Op):
    """Locally connected layer: a convolution whose weights are not shared across positions.

    Every output position has its own filters (and, with ``bias``, its own bias per channel),
    so weights = output elements x k_h x k_w x C_in; MACs are those of the equivalent conv.
    """

    name = "local"
    kind = "conv"
    fixed_input = True

    def frame_args(self, a, native):
        raise OpError("its weights differ at every position, so it cannot slide over a frame")

    args = (
        Arg("out", "int", aliases=("channels", "out_channels"), min=1, help="output channels"),
        *_WINDOW_ARGS,
    )

    def shape(self, a, shapes):
        spatial_rank(shapes[0], self.name)
        return (a["out"], *window(a, shapes[0], self.name)[4])

    def cost(self, a, shapes, out):
        per_out = shapes[0][0] * prod(window(a, shapes[0], self.name)[0])
        n = prod(out)
        return Cost(weights=n * per_out, biases=n if a["bias"] else 0, macs=n * per_out)

    rf = staticmethod(_rf)
