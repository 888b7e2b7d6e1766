"""Padding and cropping of the spatial axes."""

from __future__ import annotations

from cnnstat.errors import OpError, brief
from cnnstat.ops.base import Arg, Op, per_axis, register, spatial_rank
from cnnstat.ops.window import sides

MODES = ("constant", "reflect", "replicate", "circular")


def _shift(rf, before, out):
    """The receptive field after moving the origin ``before`` units (negative: into the
    input) along each axis: sizes and jumps unchanged, start -before x jump."""
    n = len(before)
    return rf.window((1,) * n, (1,) * n, list(before), (1,) * n, out)


@register
class Pad(Op):
    """Pads the spatial axes: output = input + before + after along each axis (channels and
    batch are not padded). 0 MACs, no parameters; it allocates its output.

    ``p``: an integer (every side), one per axis, per side axis by axis (``[top, bottom,
    left, right]`` for [C, H, W], ``[front, back, top, bottom, left, right]`` for
    [C, D, H, W]; not F.pad's last-axis-first order), ``[before, after]`` pairs, or a mapping
    ``{top: 0, bottom: 1, left: 0, right: 1}`` (missing sides 0; a 1-D input's sides are
    ``{left: 3, right: 0}``). ``mode`` as torch's F.pad: ``constant`` (``value``, default 0),
    ``reflect`` (each side less than the input size), ``replicate``, ``circular`` (each side
    at most the input size). Negative amounts crop: use ``crop``.

    Receptive field: each unit still sees one position; the first output unit is the
    position ``before`` units ahead of the first input unit, so the start moves by
    -before x jump (the field does not grow). Padded positions count as positions outside
    the input whatever the mode (reflect/replicate/circular fill them from pixels inside:
    the RF is positional).
    """

    name = "pad"
    args = (
        Arg(
            "p",
            "padding",
            aliases=("padding", "pad"),
            help="int, per axis, per side or {top: 1, ...}",
        ),
        Arg("mode", "str", "constant", choices=MODES, help="constant, reflect, replicate or circular"),
        Arg("value", "float", 0.0, aliases=("fill",), help="the constant mode's fill value"),
    )

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        n = spatial_rank(shape, self.name)
        if isinstance(a["p"], str):
            raise OpError(
                f"'p' is an amount (an integer, per axis, per side or {{top: 1, ...}}), not '{a['p']}'"
            )
        pads = sides(a["p"], n, "'p'")
        if any(v < 0 for pair in pads for v in pair):
            raise OpError(f"negative padding {brief(a['p'])} would crop: use 'crop' (size, offset)")
        mode, spatial = a["mode"], shape[1:]
        if mode != "constant" and a["value"] != 0:
            raise OpError(f"mode {mode} takes no 'value' (it fills from the input)")
        if mode == "reflect" and any(max(pair) >= size for pair, size in zip(pads, spatial)):
            raise OpError(
                f"reflect padding {[list(p) for p in pads]} must be less than the input size "
                f"{list(spatial)} on each side"
            )
        if mode == "circular" and any(max(pair) > size for pair, size in zip(pads, spatial)):
            raise OpError(
                f"circular padding {[list(p) for p in pads]} must be at most the input size "
                f"{list(spatial)} on each side (it would wrap around more than once)"
            )
        out = tuple(size + b + e for size, (b, e) in zip(spatial, pads))
        return (shape[0], *out), self.cost(a, shapes, None), _shift(rfs[0], [b for b, _ in pads], out)


@register
class Crop(Op):
    """A window of the spatial axes (a view: nothing is copied, as slicing in torch).

    ``size``: the output's spatial size (int or per axis). ``offset``: where the window
    starts along each axis (int or per axis; Caffe's Crop ``offset``); by default the window
    is centred, ``offset = (input - size) // 2`` (an odd difference leaves the extra pixel
    after, at the end). ``like: NAME`` crops to the spatial size of an earlier layer (U-Net's
    crop-and-concat: ``crop: {from: enc4, like: up4}``), which also follows a whole frame; the
    importer makes the same second input from Caffe-style crop-to-a-tensor.

    0 MACs, no parameters. Receptive field: sizes and jumps unchanged, the start moves by
    +offset x jump (output unit 0 is input unit ``offset``).
    """

    name = "crop"
    view = True
    args = (
        Arg("size", "axes", None, aliases=("output_size",), help="output size, int or per axis"),
        Arg("offset", "axes", None, aliases=("offsets",), help="window start per axis (default: centred)"),
        Arg("like", "layer", None, help="crop to the spatial size of this earlier layer"),
    )
    data_inputs = 1  # `like` gives only its size

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        n = spatial_rank(shape, self.name)
        spatial = shape[1:]
        if len(shapes) > 1:
            if a["size"] is not None:
                raise OpError("give 'size' or 'like', not both")
            if len(shapes[1]) != len(shape):
                raise OpError(f"cannot crop {list(shape)} to the size of {list(shapes[1])}")
            size = tuple(shapes[1][1:])
        elif a["size"] is None:
            raise OpError("needs 'size' (int or per axis) or 'like: LAYER'")
        else:
            size = per_axis(a["size"], n, "size")
        if any(v < 1 for v in size):
            raise OpError(f"size must be at least 1, got {list(size)}")
        if any(t > v for t, v in zip(size, spatial)):
            raise OpError(f"size {list(size)} is larger than its input {list(spatial)} (pad instead)")
        if a["offset"] is None:
            offset = tuple((v - t) // 2 for t, v in zip(size, spatial))
        else:
            offset = per_axis(a["offset"], n, "offset")
            if any(o < 0 or o + t > v for o, t, v in zip(offset, size, spatial)):
                raise OpError(
                    f"offset {list(offset)} + size {list(size)} must lie within the input {list(spatial)}"
                )
        out = (shape[0], *size)
        return out, self.cost(a, shapes, out), _shift(rfs[0], [-o for o in offset], size)

    def frame_args(self, a, native):
        if a["size"] is not None:
            raise OpError("a crop to a fixed 'size' cannot follow a whole frame")
        return a
