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

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.conv import window_explained
        from cnnstat.ops.steps import no_weights, shape_step

        _, sizes, field = window_explained(self, a, shapes, rfs, out, rf)
        why = "pooling compares or adds: no multiply-accumulates"
        return sizes + [shape_step(out, "C")] + no_weights(why) + field


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

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import collapse_rf_steps, no_weights, note, shape_step

        what = "averages" if self.name == "gap" else "takes the largest of"
        head = [note(f"global pooling {what} all positions of each channel"), shape_step(out, "C")]
        return (
            head
            + no_weights("pooling multiplies no weights: no multiply-accumulates")
            + collapse_rf_steps(rfs[0], rf)
        )


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
        k = [adaptive_window(n, m) for n, m in zip(shapes[0][1:], out[1:])]
        s = [max(n // m, 1) for n, m in zip(shapes[0][1:], out[1:])]
        return rfs[0].window(k, s, [0] * len(k), [1] * len(k), out[1:])

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops import steps as S

        sizes = [("size", str(m), m) for m in out[1:]]
        steps = S.per_axis("out_size", "{x}_out", sizes) + [S.shape_step(out, "C")]
        steps += S.no_weights("pooling multiplies no weights: no multiply-accumulates")
        if all(o == 1 for o in out[1:]):
            return steps + S.collapse_rf_steps(rfs[0], rf)
        n, m = shapes[0][1:], out[1:]
        k = [adaptive_window(i, o) for i, o in zip(n, m)]
        s = [max(i // o, 1) for i, o in zip(n, m)]
        steps.append(
            S.note(
                "windows [⌊i·n/m⌋, ⌈(i + 1)·n/m⌉) from n = "
                f"{'x'.join(map(str, n))} to m = {'x'.join(map(str, m))}: largest window K = "
                f"{'x'.join(map(str, k))}, stride S = ⌊n/m⌋ = {'x'.join(map(str, s))}"
                + ("" if all(i % o == 0 for i, o in zip(n, m)) else " (the field: the largest window)")
            )
        )
        return steps + S.window_rf_steps(rfs[0], rf, k, s, [1] * len(k), [0] * len(k))


def adaptive_window(n: int, m: int) -> int:
    """The largest window of PyTorch's adaptive pooling from ``n`` to ``m`` units, in O(1):
    ``max(ceil((i + 1) n / m) - floor(i n / m) for i in range(m))``.

    Proof. Write n = q m + r with 0 <= r < m. Then i n / m = i q + i r / m, so window i has
    length L(i) = q + ceil((i + 1) r / m) - floor(i r / m). With a = (i r) mod m,
    i r = m floor(i r / m) + a, hence ceil((i r + r) / m) = floor(i r / m) + ceil((a + r) / m)
    and L(i) = q + ceil((a + r) / m).
    - r = 0: a = 0 and L(i) = q for every i.
    - r > 0: 0 < a + r < 2m, so L(i) is q + 1, or q + 2 exactly when a > m - r. As i runs
      over 0 .. m-1, a = (i r) mod m takes every multiple of g = gcd(r, m) below m (r / g and
      m / g are coprime, so i r / g mod m / g runs through all residues within m / g <= m
      steps); the largest is m - g. So some window has q + 2 iff m - g > m - r, i.e. g < r,
      i.e. r does not divide m; else every window has at most q + 1 (and i = 0 has q + 1).
    Tested against the definition for every n, m <= 60 (tests/test_hostile.py).
    """
    q, r = divmod(n, m)
    if r == 0:
        return q
    return q + 1 if m % r == 0 else q + 2


@register
class AdaptiveMaxPool(AdaptiveAvgPool):
    name = "adaptive_maxpool"
