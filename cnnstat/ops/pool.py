"""Pooling: max/avg with a window, global average, adaptive average/max."""

from __future__ import annotations

from cnnstat.errors import OpError, brief
from cnnstat.ops.base import ZERO, Arg, Op, per_axis, register, spatial_rank
from cnnstat.ops.window import window


class _Pool(Op):
    args = (
        Arg("k", "axes", aliases=("kernel", "kernel_size"), help="window size"),
        Arg("s", "axes", None, aliases=("stride",), help="stride (default: the window size)"),
        Arg("p", "padding", 0, aliases=("padding", "pad"), help="int, per axis/side, 'same', 'causal'"),
        Arg("ceil", "bool", False, aliases=("ceil_mode",), help="round the output size up"),
    )

    def infer(self, a, shapes, rfs):
        spatial_rank(shapes[0], self.name)
        k, s, d, pads, out = window(a, shapes[0], self.name, a["ceil"])
        if all(b == e for b, e in pads):  # torch's own padding, and torch's rule
            if any(2 * b > kk for (b, _), kk in zip(pads, k)):
                raise OpError(f"padding {brief(a['p'])} must be at most half the window {list(k)}")
        else:  # padded before pooling (F.pad): every window must still overlap the input
            spans = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
            if any(max(pair) >= span for pair, span in zip(pads, spans)):
                raise OpError(
                    f"padding {brief(a['p'])} ({[list(pair) for pair in pads]} per axis) must be "
                    f"less than the window {spans} on each side"
                )
        return (shapes[0][0], *out), ZERO, rfs[0].window(k, s, [p[0] for p in pads], d, out)


@register
class MaxPool(_Pool):
    name = "maxpool"
    args = (*_Pool.args, Arg("d", "axes", 1, aliases=("dilation",)))


@register
class AvgPool(_Pool):
    name = "avgpool"


@register
class GlobalAvgPool(Op):
    """Average over all positions: [C, H, W] -> [C, 1, 1] (as PyTorch's AdaptiveAvgPool2d(1))."""

    name = "gap"

    def shape(self, a, shapes):
        return (shapes[0][0],) + (1,) * spatial_rank(shapes[0], self.name)

    def rf(self, a, rfs, shapes, out):
        return rfs[0].collapse()


@register
class GlobalMaxPool(GlobalAvgPool):
    name = "gmp"


@register
class AdaptiveAvgPool(Op):
    """PyTorch's adaptive pooling to ``size``: windows [floor(i*n/m), ceil((i+1)*n/m)).

    The receptive-field step uses the largest window and stride floor(n/m); it is exact when
    the output size divides the input size (the common case, e.g. 7 -> 7 or n -> 1).
    """

    name = "adaptive_avgpool"
    args = (Arg("size", "axes", aliases=("output_size", "out"), help="output size"),)

    def shape(self, a, shapes):
        n = spatial_rank(shapes[0], self.name)
        size = per_axis(a["size"], n, "size")
        if any(v < 1 for v in size):
            raise OpError(f"size must be at least 1, got {list(size)}")
        return (shapes[0][0], *size)

    def rf(self, a, rfs, shapes, out):
        if all(o == 1 for o in out[1:]):
            return rfs[0].collapse()
        k, s = [], []
        for n, m in zip(shapes[0][1:], out[1:]):
            k.append(max(-(-((i + 1) * n) // m) - (i * n) // m for i in range(m)))
            s.append(max(n // m, 1))
        return rfs[0].window(k, s, [0] * len(k), [1] * len(k), out[1:])


@register
class AdaptiveMaxPool(AdaptiveAvgPool):
    name = "adaptive_maxpool"
