"""Convolution, depthwise convolution, the locally connected (unshared) layer and the transposed
convolution."""

from __future__ import annotations

import math
from fractions import Fraction

from cnnstat.errors import OpError
from cnnstat.ops.base import MAX_PERIOD, Arg, Cost, Op, per_axis, prod, register, spatial_rank
from cnnstat.ops.window import window

_WINDOW_ARGS = (
    Arg("k", "axes", aliases=("kernel", "kernel_size"), help="kernel size, int or per axis"),
    Arg("s", "axes", 1, aliases=("stride",), help="stride"),
    Arg("p", "padding", 0, aliases=("padding", "pad"), help="int, per axis/side, 'same', 'valid', 'causal'"),
    Arg("d", "axes", 1, aliases=("dilation",), help="dilation"),
    Arg("bias", "bool", True, help="learnable bias per output channel"),
)


def _windowed(a, shapes, rfs, op):
    """The sliding window of ``a`` over ``shapes[0]``: (k, out spatial, RF)."""
    spatial_rank(shapes[0], op)
    k, s, d, pads, out = window(a, shapes[0], op)
    return k, out, rfs[0].window(k, s, [p[0] for p in pads], d, out)


def window_explained(op, a, shapes, rfs, out, rf) -> tuple:
    """``(k, size steps, receptive-field steps)`` of a sliding window (``cnnstat explain``): the
    output size per axis and the field's step, from the same :func:`window` that ``infer``
    resolves the kernel, stride, dilation and padding with."""
    from cnnstat.ops import steps as S

    k, s, d, pads, _ = window(a, shapes[0], op.name, a.get("ceil", False))
    sizes = S.window_size_steps(shapes[0][1:], k, s, d, pads, out[1:], a.get("ceil", False))
    return k, sizes + S.pad_note(a, pads), S.window_rf_steps(rfs[0], rf, k, s, d, [p[0] for p in pads])


def _in_per_group(c: int, g: int) -> tuple:
    """``("C_in", "3")`` or, grouped, ``("C_in/g", "96/2")``."""
    return ("C_in", str(c)) if g == 1 else ("C_in/g", f"{c}/{g}")


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

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import Step, bias_step, dot, kernel_symbol, note, out_symbol, shape_step

        k, sizes, field = window_explained(self, a, shapes, rfs, out, rf)
        c, g, n = shapes[0][0], a["groups"], a["out"]
        cin, cin_num = _in_per_group(c, g)
        ks, kn = kernel_symbol(k), dot(k)
        steps = (
            [note(f"groups g = {g}: each filter reads C_in/g = {c // g} of the {c} input channels")]
            if g > 1
            else []
        )
        return (
            steps
            + sizes
            + [
                shape_step(out),
                Step("weights", "weights", f"{ks}·{cin}·C_out", f"{kn}·{cin_num}·{n}", cost.weights),
                bias_step(cost.biases, "C_out", str(n)),
                Step(
                    "macs",
                    "MACs",
                    f"{out_symbol(len(k))}·C_out·{ks}·{cin}",
                    f"{dot(out[1:])}·{n}·{kn}·{cin_num}",
                    cost.macs,
                ),
            ]
            + field
        )


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

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import (
            Step,
            bias_step,
            channels_step,
            dot,
            kernel_symbol,
            note,
            out_symbol,
            shape_step,
        )

        k, sizes, field = window_explained(self, a, shapes, rfs, out, rf)
        c, m = shapes[0][0], a["mult"]
        ks, kn = kernel_symbol(k), dot(k)
        return (
            [note("depthwise: each filter reads one input channel (groups = C_in)")]
            + sizes
            + [
                channels_step("C_in·mult", f"{c}·{m}", out[0]),
                shape_step(out),
                Step("weights", "weights", f"{ks}·C_out", f"{kn}·{out[0]}", cost.weights),
                bias_step(cost.biases, "C_out", str(out[0])),
                Step(
                    "macs",
                    "MACs",
                    f"{out_symbol(len(k))}·C_out·{ks}",
                    f"{dot(out[1:])}·{out[0]}·{kn}",
                    cost.macs,
                ),
            ]
            + field
        )


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

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import Step, bias_step, dot, kernel_symbol, note, out_symbol, shape_step

        k, sizes, field = window_explained(self, a, shapes, rfs, out, rf)
        c, ks, kn, pos = shapes[0][0], kernel_symbol(k), dot(k), out_symbol(len(k))
        units, units_num = f"{pos}·C_out", f"{dot(out[1:])}·{out[0]}"
        return (
            [note("locally connected: every output position has its own filters")]
            + sizes
            + [
                shape_step(out),
                Step("weights", "weights", f"{units}·{ks}·C_in", f"{units_num}·{kn}·{c}", cost.weights),
                bias_step(cost.biases, units, units_num),
                Step("macs", "MACs", f"{units}·{ks}·C_in", f"{units_num}·{kn}·{c}", cost.macs),
            ]
            + field
        )


def transposed_reads(k: int, s: int, p: int, d: int) -> tuple:
    """Per output unit ``r < s`` of a transposed convolution along one axis, the input units it
    reads (a ``range``): output ``o = i*s - p + j*d`` for input ``i`` and tap ``j < k``, so
    ``j*d = o + p (mod s)``. With ``g = gcd(d, s)`` and ``q = s/g``, unit ``r`` reads nothing
    unless ``g`` divides ``r + p``; its taps are ``j = j0, j0 + q, ... < k`` and its inputs
    step by ``d/g``. Output ``o + s`` reads the same inputs shifted by one."""
    g = math.gcd(d, s)
    q = s // g
    reads = []
    for r in range(s):
        c = r + p
        j0 = c // g * pow(d // g, -1, q) % q if q > 1 else 0
        if c % g or j0 > k - 1:
            reads.append(range(0))
            continue
        last = j0 + (k - 1 - j0) // q * q
        reads.append(range((c - last * d) // s, (c - j0 * d) // s + 1, d // g))
    return tuple(reads)


@register
class ConvTranspose(Op):
    """Transposed convolution (PyTorch's ConvTranspose1d/2d/3d; "deconvolution", "up-convolution").

    Output size per axis, PyTorch's formula: ``(in - 1)*s - 2p + d*(k - 1) + output_padding + 1``
    (``p`` removes p units from each side of the full output; ``output_padding`` adds units at
    the end, and must be smaller than the stride or the dilation). Weights
    ``C_in x C_out/groups x prod(k)``, biases ``C_out``. MACs = input elements x prod(k) x
    C_out/groups: every input element is multiplied by every tap of its ``C_out/groups``
    filters (fvcore's and PyTorch's flop counter's count, FLOPs = 2 x MACs); products that
    land in the cropped border ``p`` are counted too, as those counters do.

    Receptive field: output unit ``o`` reads input units ``i`` with ``o = i*s - p + j*d``
    (``j < k``); with ``g = gcd(d, s)``, the units with the most taps read
    ``floor((k - 1) / (s/g)) + 1`` input units spanning ``floor((k - 1) / (s/g)) * d/g + 1``;
    the jump divides by ``s`` and the fields depend on the unit's phase (tracked exactly).
    """

    name = "conv_transpose"
    aliases = ("deconv", "upconv")
    kind = "conv"
    args = (
        Arg("out", "int", aliases=("channels", "out_channels"), min=1, help="output channels"),
        Arg("k", "axes", aliases=("kernel", "kernel_size"), help="kernel size, int or per axis"),
        Arg("s", "axes", 1, aliases=("stride",), help="stride (the upsampling factor)"),
        Arg("p", "axes", 0, aliases=("padding", "pad"), help="units cropped from each side of the output"),
        Arg(
            "output_padding",
            "axes",
            0,
            aliases=("out_pad", "output_pad"),
            help="units added at the end of the output (< stride or dilation)",
        ),
        Arg("d", "axes", 1, aliases=("dilation",), help="dilation"),
        Arg("groups", "int", 1, aliases=("g",), min=1, help="channel groups"),
        Arg("bias", "bool", True, help="learnable bias per output channel"),
    )

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        n = spatial_rank(shape, self.name)
        c, g, c_out = shape[0], a["groups"], a["out"]
        if c % g or c_out % g:
            raise OpError(f"groups={g} must divide input channels {c} and output channels {c_out}")
        k, s, p, op, d = (
            per_axis(a[key], n, name)
            for key, name in (
                ("k", "kernel"),
                ("s", "stride"),
                ("p", "padding"),
                ("output_padding", "output_padding"),
                ("d", "dilation"),
            )
        )
        for name, vals, least in (("kernel", k, 1), ("stride", s, 1), ("dilation", d, 1)):
            if any(v < least for v in vals):
                raise OpError(f"{name} must be at least {least}, got {list(vals)}")
        if max(s) > MAX_PERIOD:  # the receptive field tracks one stride's output phases
            raise OpError(f"stride must be at most {MAX_PERIOD}, got {list(s)}")
        for name, vals in (("padding", p), ("output_padding", op)):
            if any(v < 0 for v in vals):
                raise OpError(f"{name} must not be negative, got {list(vals)}")
        if any(o >= ss and o >= dd for o, ss, dd in zip(op, s, d)):
            raise OpError(
                f"output_padding {list(op)} must be smaller than the stride {list(s)} "
                f"or the dilation {list(d)} on each axis"
            )
        spatial = tuple(
            (size - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i, size in enumerate(shape[1:])
        )
        if min(spatial) < 1:
            raise OpError(
                f"output would be {list(spatial)}: padding {list(p)} crops more than the "
                f"{[v + 2 * pp for v, pp in zip(spatial, p)]} units the kernel produces"
            )
        per_tap = c_out // g * prod(k)
        cost = Cost(
            weights=c * per_tap,
            biases=c_out if a["bias"] else 0,
            macs=prod(shape) * per_tap,
        )
        reads = [transposed_reads(k[i], s[i], p[i], d[i]) for i in range(n)]
        taps = [max(r[-1] - r[0] + 1 if r else 0 for r in rd) for rd in reads]
        offset = [Fraction(2 * p[i] - d[i] * (k[i] - 1), 2 * s[i]) for i in range(n)]
        rf = rfs[0].upsample(taps, s, offset, spatial, reads)
        return (c_out, *spatial), cost, rf

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops import steps as S

        n = len(shapes[0]) - 1
        k, s, p, op, d = (per_axis(a[key], n, key) for key in ("k", "s", "p", "output_padding", "d"))
        c, g, c_out = shapes[0][0], a["groups"], a["out"]
        rows = [
            (
                lambda x: f"({x} - 1)·S - 2P + d·(K - 1) + P_out + 1",
                f"({shapes[0][1 + i]} - 1)·{s[i]} - 2·{p[i]} + {d[i]}·({k[i]} - 1) + {op[i]} + 1",
                out[1 + i],
            )
            for i in range(n)
        ]
        ks, kn = S.kernel_symbol(k), S.dot(k)
        cout, cout_num = ("C_out", str(c_out)) if g == 1 else ("C_out/g", f"{c_out}/{g}")
        ins = "·".join(f"{x}_in" for x in S.axis_names(n))
        steps = S.per_axis("out_size", "{x}_out", rows) + [
            S.note("P_out: output_padding; P: units cropped from each side of the full output"),
            S.shape_step(out),
            S.Step("weights", "weights", f"C_in·{cout}·{ks}", f"{c}·{cout_num}·{kn}", cost.weights),
            S.bias_step(cost.biases, "C_out", str(c_out)),
            S.Step(
                "macs",
                "MACs",
                f"{ins}·C_in·{cout}·{ks}",
                f"{S.dot(shapes[0][1:])}·{c}·{cout_num}·{kn}",
                cost.macs,
            ),
            S.note(
                "MACs: each input element times every tap of its C_out/g filters (as fvcore, PyTorch count)"
            ),
        ]
        field = S.rf_generic(rfs, rf)
        if rf is not None and rfs[0] is not None:
            jumps = [("j / S", f"{S.num(rfs[0].jump[i])}/{s[i]}", rf.jump[i]) for i in range(n)]
            field = [st for st in field if st.what != "rf_jump"] + S.per_axis("rf_jump", "j'", jumps)
        return steps + field
