"""Resampling: interpolation (upsample / resize) and pixel (un)shuffle."""

from __future__ import annotations

import math
from fractions import Fraction

from cnnstat.errors import OpError, brief
from cnnstat.ops.base import MAX_PERIOD, Arg, Op, per_axis, register, spatial_rank

MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear")
_RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}  # torch's rule


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scales(scale, n) -> tuple:
    """The scale per axis: a positive number, or one per axis."""
    values = scale if isinstance(scale, (list, tuple)) else (scale,) * n
    if len(values) != n or not all(_number(v) and v > 0 for v in values):
        raise OpError(f"'scale' must be a positive number or a list of {n}, got {brief(scale)}")
    return tuple(values)


def _exact(v) -> Fraction:
    """A scale as the fraction it stands for: the nearest with a denominator up to 1000
    (1.1 -> 11/10, 0.3333333333333333 -> 1/3), not the double's binary expansion."""
    return Fraction(v) if isinstance(v, int) else Fraction(repr(float(v))).limit_denominator(1000)


def _axis(mode, align, n_in, n_out, scale):
    """``(taps, factor, offset, reads)`` of one axis for :meth:`RF.upsample`, as torch samples.

    Output unit ``o`` reads around input coordinate ``src(o) = offset + o / factor``:
    ``nearest``: floor(o / scale); linear modes with ``align_corners`` false:
    (o + 0.5) / scale - 0.5 (``scale``: the given factor, else out / in); with
    ``align_corners``: o * (in - 1) / (out - 1). (Bi/tri)linear reads floor(src) and the next
    unit, bicubic floor(src) - 1 to floor(src) + 2; where ``src`` is a whole number the other
    taps weigh 0 and the unit reads one input unit. ``reads``: those units for the output
    units of one period (the factor's numerator).
    """
    if n_in == 1:  # every tap reads the one input unit
        return 1, Fraction(n_out), Fraction(0), (range(0, 1),) * n_out
    if mode == "nearest":
        factor, offset = scale or Fraction(n_out, n_in), Fraction(0)
    elif align:
        factor = Fraction(n_out - 1, n_in - 1) if n_out > 1 else Fraction(n_out, n_in)
        offset = Fraction(0)
    else:
        factor = scale or Fraction(n_out, n_in)
        offset = (1 / factor - 1) / 2
    if factor.numerator > MAX_PERIOD:
        raise OpError(
            f"{n_in} -> {n_out} units: the sampling pattern repeats every {factor.numerator} "
            f"output units, more than the {MAX_PERIOD} cnnstat tracks"
        )
    reads = []
    for o in range(factor.numerator):
        src = offset + o / factor
        first = math.floor(src)
        if mode == "nearest" or src == first:
            reads.append(range(first, first + 1))
        elif mode == "bicubic":
            reads.append(range(first - 1, first + 3))
        else:
            reads.append(range(first, first + 2))
    return max(map(len, reads)), factor, offset, tuple(reads)


@register
class Upsample(Op):
    """Interpolation to a ``size`` or by a ``scale``, as torch's ``nn.Upsample`` /
    ``F.interpolate`` (a scale below 1 downsamples, without antialiasing).

    Output size: ``size`` (int or per axis), or floor(input x ``scale``) per axis (``scale``:
    a number or one per axis, torch's rule), or the spatial size of an earlier layer with
    ``like: NAME`` (DeepLab's image pooling: ``upsample: {like: feat, mode: bilinear}``),
    which also follows a whole frame. ``mode``: nearest (default, any rank), linear (1-D), bilinear and
    bicubic (2-D), trilinear (3-D); ``align_corners`` (linear modes only) as torch.

    0 MACs, no parameters, by convention: interpolation weights are fixed by the geometry, not
    learned, so they are not the multiply-accumulates of a layer (fvcore counts 1 to 4 FLOPs
    per output element for upsampling; cnnstat, like PyTorch's FlopCounterMode, counts none).

    Receptive field (:meth:`RF.upsample`): per axis, ``taps`` input units read by an output
    unit (nearest 1, linear modes 2, bicubic 4; 1 where every output unit falls on an input
    unit, or the input has one unit), ``factor`` output units per input unit (the given
    ``scale``, which torch samples with, else out / in; (out - 1) / (in - 1) with
    ``align_corners``), and the first output unit centred ``offset`` input units after the
    first input unit: 0 for nearest and with ``align_corners``, 0.5 / factor - 0.5 otherwise.
    The geometry takes a fractional scale as the fraction it stands for (the nearest with a
    denominator up to 1000: 1.1 = 11/10); the output size, torch's rule, uses the number.
    """

    name = "upsample"
    aliases = ("interpolate", "resize")
    args = (
        Arg("scale", "any", None, aliases=("scale_factor", "factor"), help="factor, number or per axis"),
        Arg("size", "axes", None, aliases=("output_size",), help="output size, int or per axis"),
        Arg("mode", "str", "nearest", choices=MODES, help="nearest, (bi/tri)linear or bicubic"),
        Arg("align_corners", "bool", False, help="linear modes: corner pixels aligned (torch)"),
        Arg("like", "layer", None, help="resize to the spatial size of this earlier layer"),
    )
    data_inputs = 1  # `like` gives only its size

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        n = spatial_rank(shape, self.name)
        mode, align, spatial = a["mode"], a["align_corners"], shape[1:]
        if mode in _RANK and _RANK[mode] != n:
            fits = [m for m, r in _RANK.items() if r == n]
            raise OpError(
                f"mode {mode} needs a {_RANK[mode]}-D input, got {list(shape)}"
                + (f" (use {' or '.join(fits)})" if fits else "")
            )
        if align and mode == "nearest":
            raise OpError("align_corners applies to the linear and bicubic modes, not nearest")
        given = [f"'{k}'" for k in ("scale", "size") if a[k] is not None]
        given += ["'like'"] * (len(shapes) > 1)
        if not given:
            raise OpError("needs 'scale', 'size' or 'like: LAYER'")
        if len(given) > 1:
            raise OpError(f"give one of {' and '.join(given)}, not both")
        scales = (None,) * n
        if a["scale"] is not None:
            values = _scales(a["scale"], n)
            out = tuple(math.floor(float(v) * s) for v, s in zip(spatial, values))
            scales = tuple(_exact(s) for s in values)
        elif a["size"] is not None:
            out = per_axis(a["size"], n, "size")
        else:
            if len(shapes[1]) != len(shape):
                raise OpError(f"cannot resize {list(shape)} to the size of {list(shapes[1])}")
            out = tuple(shapes[1][1:])
        if any(v < 1 for v in out):
            by = f", scale {brief(a['scale'])}" if a["scale"] is not None else ""
            raise OpError(f"output size {list(out)} is empty (input {list(spatial)}{by})")
        taps, factor, offset, reads = zip(
            *(_axis(mode, align, i, o, s) for i, o, s in zip(spatial, out, scales))
        )
        rf = rfs[0].upsample(taps, factor, offset, out, reads)
        return (shape[0], *out), self.cost(a, shapes, None), rf

    def frame_args(self, a, native):
        if a["size"] is not None:
            raise OpError("upsampling to a fixed 'size' cannot follow a whole frame: use 'scale'")
        return a


def _factor(a):
    r = a["factor"]
    if r < 1:
        raise OpError(f"'factor' must be at least 1, got {r}")
    return r


@register
class PixelShuffle(Op):
    """Sub-pixel convolution's rearrangement (ESPCN): [C x r^2, H, W] -> [C, H x r, W x r],
    2-D inputs only, as torch's ``nn.PixelShuffle``. 0 MACs, no parameters.

    Receptive field: output unit (y, x) is input unit (y // r, x // r): an upsampling by r
    with one tap and offset 0.
    """

    name = "pixel_shuffle"
    args = (Arg("factor", "int", aliases=("r", "upscale_factor"), min=1, help="upscale factor r"),)

    def infer(self, a, shapes, rfs):
        c, *spatial = shapes[0]
        r = _factor(a)
        if len(spatial) != 2:
            raise OpError(f"needs a [C, H, W] input, got {list(shapes[0])}")
        if c % (r * r):
            raise OpError(f"the input's {c} channels are not divisible by factor^2 = {r * r}")
        out = (c // (r * r), spatial[0] * r, spatial[1] * r)
        return (
            out,
            self.cost(a, shapes, out),
            rfs[0].upsample((1, 1), (r, r), (0, 0), out[1:], ((range(0, 1),) * r,) * 2),
        )


@register
class PixelUnshuffle(Op):
    """The inverse of ``pixel_shuffle`` (space-to-depth): [C, H, W] -> [C x r^2, H / r, W / r],
    2-D inputs whose H and W are multiples of r (unless ``pad``), as torch's
    ``nn.PixelUnshuffle``. 0 MACs, no parameters. A factor per axis (``factor: [1, 2, 2]``)
    takes any map: [C, *spatial] -> [C x prod(r), *(spatial / r)] (Video Swin's patch
    merging of [C, T, H, W] halves H and W: [1, 2, 2]).

    ``pad: true``: H and W that are not multiples of r are first zero-padded at their end
    (bottom, right) up to the next multiple, as torchvision's Swin ``PatchMerging`` pads an odd
    map by one row and column: [C, H, W] -> [C x r^2, ceil(H / r), ceil(W / r)]; the padding
    costs 0 MACs, as ``pad``.

    Receptive field: each output position gathers an r x r block: a window k = r, stride r
    (with ``pad``, the last block's padded units lie outside the input, as a convolution's
    padding).
    """

    name = "pixel_unshuffle"
    args = (
        Arg("factor", "axes", aliases=("r", "downscale_factor"), help="downscale factor r, or one per axis"),
        Arg("pad", "bool", False, help="zero-pad H and W at their end to multiples of r (Swin)"),
    )

    def infer(self, a, shapes, rfs):
        c, *spatial = shapes[0]
        if isinstance(a["factor"], int):
            r = _factor(a)
            if len(spatial) != 2:
                raise OpError(f"needs a [C, H, W] input (or a factor per axis), got {list(shapes[0])}")
        else:
            r = per_axis(a["factor"], len(spatial), "factor")
            if any(v < 1 for v in r):
                raise OpError(f"'factor' must be at least 1, got {list(r)}")
        rs = per_axis(r, len(spatial), "factor")
        if not a["pad"] and any(v % f for v, f in zip(spatial, rs)):
            raise OpError(
                f"the input's size {spatial} is not a multiple of factor {r} "
                "(pad: true pads it at the end, as Swin's patch merging)"
            )
        out = (c * math.prod(rs), *(-(-v // f) for v, f in zip(spatial, rs)))
        n = len(rs)
        return out, self.cost(a, shapes, out), rfs[0].window(rs, rs, (0,) * n, (1,) * n, out[1:])
