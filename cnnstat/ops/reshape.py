"""Shape changes without arithmetic."""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Op, prod, register


@register
class Flatten(Op):
    """[C, H, W] -> [C*H*W]; each unit keeps its receptive field."""

    name = "flatten"
    view = True

    def shape(self, a, shapes):
        if a.get("_frame"):
            return shapes[0]  # frame mode: the following fc slides over the positions
        return (prod(shapes[0]),)

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import channels_step, dot, generic, no_weights, rf_generic, shape_step

        if a.get("_frame") or len(shapes[0]) == 1:
            return generic(self, a, shapes, rfs, out, cost, rf)
        dims = "C·" + "·".join(f"{x}" for x in ("D", "H", "W")[-(len(shapes[0]) - 1) :])
        return [channels_step(dims, dot(shapes[0]), out[0], "output size"), shape_step(out, "D")] + (
            no_weights("a view of the same numbers: no arithmetic") + rf_generic(rfs, rf)
        )

    def frame_args(self, a, native):
        return {**a, "_frame": True}


@register
class ChannelSlice(Op):
    """Channels [start, stop) of the input (ShuffleNet v2's channel split); ``stop`` defaults
    to all remaining channels."""

    name = "slice"
    view = True
    args = (Arg("start", "int", 0, min=0), Arg("stop", "int", None, aliases=("end",)))

    def shape(self, a, shapes):
        c = shapes[0][0]
        stop = c if a["stop"] is None else a["stop"]
        if not 0 <= a["start"] < stop <= c:
            raise OpError(f"channels [{a['start']}, {stop}) are not within the input's {c}")
        return (stop - a["start"], *shapes[0][1:])

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import channels_step, no_weights, rf_generic, shape_step

        stop = shapes[0][0] if a["stop"] is None else a["stop"]
        head = [channels_step("stop - start", f"{stop} - {a['start']}", out[0]), shape_step(out, "C")]
        return head + no_weights("a view of the same numbers: no arithmetic") + rf_generic(rfs, rf)


@register
class ChannelShuffle(Op):
    """Channel shuffle (ShuffleNet): a permutation of the channels in ``groups`` groups."""

    name = "shuffle"
    args = (Arg("groups", "int", aliases=("g",), min=1),)

    def shape(self, a, shapes):
        if shapes[0][0] % a["groups"]:
            raise OpError(f"groups={a['groups']} must divide the input's {shapes[0][0]} channels")
        return shapes[0]
