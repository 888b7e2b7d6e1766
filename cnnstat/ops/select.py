"""Selection of positions: every s-th position of the spatial axes (strided slicing).

Slicing with step 1 is ``crop`` (:mod:`cnnstat.ops.pad`), of the channels ``slice``
(:mod:`cnnstat.ops.reshape`).
"""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Op, per_axis, register, spatial_rank


@register
class Subsample(Op):
    """Every ``s``-th position along each spatial axis, from position ``offset``: PyTorch's
    strided slice ``x[:, :, o::s, o::s]`` (YOLOv5's Focus takes four of them, offsets 0 and 1,
    and concatenates them). A view: nothing is copied, as slicing in torch.

    ``s``: the step, int or per axis (1 on an axis keeps every position). ``offset``: the
    first position kept, int or per axis (default 0). ``size``: how many positions are kept
    per axis (default: every one that fits, ``ceil((input - offset) / s)``);
    ``x[:, :, a:b:s]`` is offset a, size ``len(range(a, b, s))``.

    0 MACs, no parameters. Receptive field: an output unit is one input unit, so sizes are
    unchanged; the jump is multiplied by ``s`` and the start moves by +offset x jump (output
    unit u is input unit ``offset + u * s``).
    """

    name = "subsample"
    aliases = ("strided_slice",)
    view = True
    args = (
        Arg("s", "axes", aliases=("step", "stride"), help="step per axis (int or per axis)"),
        Arg("offset", "axes", 0, aliases=("start",), help="first position kept per axis"),
        Arg("size", "axes", None, help="positions kept per axis (default: all that fit)"),
    )

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        n = spatial_rank(shape, self.name)
        spatial = shape[1:]
        step = per_axis(a["s"], n, "s")
        offset = per_axis(a["offset"], n, "offset")
        if any(s < 1 for s in step):
            raise OpError(f"'s' must be at least 1, got {list(step)}")
        if any(not 0 <= o < v for o, v in zip(offset, spatial)):
            raise OpError(f"offset {list(offset)} must lie within the input {list(spatial)}")
        fits = tuple(-(-(v - o) // s) for v, o, s in zip(spatial, offset, step))
        if a["size"] is None:
            size = fits
        else:
            size = per_axis(a["size"], n, "size")
            if any(not 1 <= t <= f for t, f in zip(size, fits)):
                raise OpError(
                    f"size {list(size)} at offset {list(offset)}, step {list(step)}: the input "
                    f"{list(spatial)} holds 1 to {list(fits)} positions"
                )
        out = (shape[0], *size)
        rf = rfs[0].window((1,) * n, step, [-o for o in offset], (1,) * n, size)
        return out, self.cost(a, shapes, out), rf

    def frame_args(self, a, native):
        if a["size"] is not None:
            raise OpError("a subsample to a fixed 'size' cannot follow a whole frame")
        return a
