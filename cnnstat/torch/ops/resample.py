"""The torch side of :mod:`cnnstat.ops.resample`: upsample (nn.Upsample, F.interpolate; a map's
size-1 positions expanded, ``Tensor.expand``/``expand_as``) and pixel (un)shuffle."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from cnnstat.ops.resample import MODES
from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, t

_LINEAR = ("linear", "bilinear", "bicubic", "trilinear")


class UpsampleLike(nn.Module):
    """Interpolation to the spatial size of the second argument of ``forward`` (cnnstat
    ``upsample`` with a reference input: DeepLab's image pooling branch resized back to the
    feature map)."""

    def __init__(self, mode="nearest", align_corners=None):
        super().__init__()
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x, like):
        return F.interpolate(x, size=tuple(like.shape[2:]), mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self):
        return f"mode={self.mode!r}, align_corners={self.align_corners}"


class PaddedPixelUnshuffle(nn.Module):
    """cnnstat ``pixel_unshuffle`` with ``pad: true``: H and W zero-padded at their end to
    multiples of the factor (as torchvision's Swin ``PatchMerging``), then
    ``F.pixel_unshuffle``. A factor per axis (a tuple) takes a map of any rank (padded only
    with ``pad``), its channels in ``F.pixel_unshuffle``'s order."""

    def __init__(self, downscale_factor, pad: bool = True):
        super().__init__()
        self.downscale_factor, self.pad = downscale_factor, pad

    def forward(self, x):
        r = self.downscale_factor
        if isinstance(r, int):
            x = F.pad(x, (0, -x.shape[-1] % r, 0, -x.shape[-2] % r))
            return F.pixel_unshuffle(x, r)
        if self.pad:
            x = F.pad(x, tuple(v for s, f in zip(reversed(x.shape[2:]), reversed(r)) for v in (0, -s % f)))
        (b, c), sizes, n = x.shape[:2], x.shape[2:], len(r)
        x = x.reshape(b, c, *(v for s, f in zip(sizes, r) for v in (s // f, f)))
        x = x.permute(0, 1, *(3 + 2 * i for i in range(n)), *(2 + 2 * i for i in range(n)))
        return x.reshape(b, c * math.prod(r), *(s // f for s, f in zip(sizes, r)))

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"


# --- build ------------------------------------------------------------------------------------


@builds("upsample")
def _build_upsample(a, shapes):
    align = a["align_corners"] if a["mode"] in _LINEAR else None
    if len(shapes) > 1:
        return UpsampleLike(a["mode"], align)
    size, scale = a["size"], a["scale"]
    return nn.Upsample(
        size=tuple(size) if isinstance(size, (list, tuple)) else size,
        scale_factor=tuple(scale) if isinstance(scale, (list, tuple)) else scale,
        mode=a["mode"],
        align_corners=align,
    )


builds("pixel_shuffle")(lambda a, shapes: nn.PixelShuffle(a["factor"]))
builds("pixel_unshuffle")(
    lambda a, shapes: (
        PaddedPixelUnshuffle(tuple(a["factor"]), a["pad"])
        if isinstance(a["factor"], (list, tuple))
        else (PaddedPixelUnshuffle if a["pad"] else nn.PixelUnshuffle)(a["factor"])
    )
)


# --- import -----------------------------------------------------------------------------------


def _number(v):
    """A torch scale (2.0, (2.0, 1.5)) as cnnstat writes it: whole numbers as ints."""
    if isinstance(v, (list, tuple)):
        return tuple(_number(x) for x in v)
    v = float(v)
    return int(v) if v.is_integer() else v


def interpolated(rec, call, x, size, scale, mode, align_corners, recompute=None, antialias=False):
    """An upsample layer (F.interpolate, nn.Upsample and its variants)."""
    if mode not in MODES:
        return rec.unsupported_call(call, f"mode '{mode}'")
    if antialias:
        return rec.unsupported_call(call, "antialias=True (reads more input units than the mode's taps)")
    a = {"mode": mode, "align_corners": bool(align_corners)}
    if size is not None or recompute:  # torch samples with out / in when it recomputes the scale
        a["size"] = t(size) if size is not None else tuple(int(v) for v in call.out.shape[2:])
    else:
        a["scale"] = _number(scale)
    rec.emit(call, "upsample", a, [rec.ref(x)])


def _m_upsample(rec, call):
    m = call.module
    interpolated(
        rec, call, call.args[0], m.size, m.scale_factor, m.mode, m.align_corners, m.recompute_scale_factor
    )


def _m_upsample_like(rec, call):
    m = call.module
    refs = [rec.ref(v) for v in call.args[:2]]
    if len(refs) < 2 or refs[1] is None:
        return rec.unsupported_call(call, "resizes to the size of an untracked tensor")
    a = {"mode": m.mode, "align_corners": bool(m.align_corners)}
    rec.emit(call, "upsample", a, refs)


def _f_interpolate(rec, call):
    rec_args = [call.arg(i, n, d) for i, (n, d) in enumerate(_INTERPOLATE)]
    interpolated(rec, call, *rec_args)


_INTERPOLATE = (
    ("input", None),
    ("size", None),
    ("scale_factor", None),
    ("mode", "nearest"),
    ("align_corners", None),
    ("recompute_scale_factor", None),
    ("antialias", False),
)


def _f_upsample_fixed(mode, align_corners):
    """F.upsample_nearest / F.upsample_bilinear (input, size, scale_factor)."""

    def handle(rec, call):
        x, size, scale = call.arg(0, "input"), call.arg(1, "size"), call.arg(2, "scale_factor")
        interpolated(rec, call, x, size, scale, mode, align_corners)

    return handle


def _m_shuffle(op, attr):
    def handle(rec, call):
        rec.emit(call, op, {"factor": int(getattr(call.module, attr))}, [rec.ref(call.args[0])])

    return handle


def _m_padded_unshuffle(rec, call):
    a = {"factor": call.module.downscale_factor, "pad": getattr(call.module, "pad", True)}
    rec.emit(call, "pixel_unshuffle", a, [rec.ref(call.args[0])])


def _f_shuffle(op, name):
    def handle(rec, call):
        rec.emit(call, op, {"factor": int(call.arg(1, name))}, [rec.ref(call.arg(0, "input"))])

    return handle


def _f_expand(rec, call):
    """``x.expand(...)`` / ``x.expand_as(y)`` of a channels-first map [B, C, *positions] that
    repeats positions of size 1 (a squeeze-excitation gate [B, C, 1, 1] expanded to the map it
    gates, ECA-Net's): each value repeated, nearest upsampling to the expanded size, 0 MACs.
    The tensor is read as torch lays it out (dim 1 the channels), as a convolution reads it.
    Anything else (new axes, the batch or dim 1 expanded) is not understood: unsupported."""
    x, out = call.arg(0, "input"), call.out
    ref = rec.ref(x)
    n = x.dim()
    if ref is None or n < 3 or out.dim() != n or tuple(out.shape[:2]) != tuple(x.shape[:2]):
        return rec.unsupported_call(call, "expands other than a map's positions of size 1")
    if any(a != b and a != 1 for a, b in zip(x.shape[2:], out.shape[2:])):
        return rec.unsupported_call(call, "expands other than a map's positions of size 1")
    rec.emit(call, "upsample", {"size": tuple(int(v) for v in out.shape[2:])}, [ref])


MODULES[nn.Upsample] = _m_upsample  # nn.UpsamplingNearest2d / UpsamplingBilinear2d: subclasses
MODULES[nn.UpsamplingNearest2d] = _m_upsample
MODULES[nn.UpsamplingBilinear2d] = _m_upsample
MODULES[UpsampleLike] = _m_upsample_like
MODULES[nn.PixelShuffle] = _m_shuffle("pixel_shuffle", "upscale_factor")
MODULES[nn.PixelUnshuffle] = _m_shuffle("pixel_unshuffle", "downscale_factor")
MODULES[PaddedPixelUnshuffle] = _m_padded_unshuffle
FUNCTIONS["interpolate"] = FUNCTIONS["upsample"] = _f_interpolate
FUNCTIONS["upsample_nearest"] = _f_upsample_fixed("nearest", None)
FUNCTIONS["upsample_bilinear"] = _f_upsample_fixed("bilinear", True)
FUNCTIONS["pixel_shuffle"] = _f_shuffle("pixel_shuffle", "upscale_factor")
FUNCTIONS["pixel_unshuffle"] = _f_shuffle("pixel_unshuffle", "downscale_factor")
FUNCTIONS["expand"] = FUNCTIONS["expand_as"] = _f_expand
