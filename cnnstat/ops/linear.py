"""Fully connected layer, and the linear layer applied at every position (per token)."""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Cost, Op, prod, register


@register
class FullyConnected(Op):
    """``out`` units each connected to every input. MACs = in x out."""

    name = "fc"
    kind = "fc"
    fixed_input = True
    args = (
        Arg("out", "int", aliases=("units", "out_features"), min=1, help="output units"),
        Arg("bias", "bool", True, help="learnable bias per unit"),
    )

    def shape(self, a, shapes):
        if "_window" in a:
            return (a["out"], *self._positions(a, shapes[0]))
        if len(shapes[0]) != 1:
            raise OpError(f"fc needs a flat input, got {list(shapes[0])}: add 'flatten' before it")
        return (a["out"],)

    def cost(self, a, shapes, out):
        if "_window" in a:
            n_in = a["_channels"] * prod(a["_window"])
            n = prod(out[1:])
        else:
            n_in, n = shapes[0][0], 1
        return Cost(weights=n_in * a["out"], biases=a["out"] if a["bias"] else 0, macs=n * n_in * a["out"])

    def rf(self, a, rfs, shapes, out):
        if "_window" in a:
            w = a["_window"]
            return rfs[0].window(w, (1,) * len(w), (0,) * len(w), (1,) * len(w), out[1:])
        return rfs[0].collapse()

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import Step, bias_step, collapse_rf_steps, generic, shape_step

        if "_window" in a:  # frame mode: the equivalent convolution
            return generic(self, a, shapes, rfs, out, cost, rf)
        c, n = shapes[0][0], a["out"]
        return [
            shape_step(out),
            Step("weights", "weights", "C_in·C_out", f"{c}·{n}", cost.weights),
            bias_step(cost.biases, "C_out", str(n)),
            Step("macs", "MACs", "C_in·C_out", f"{c}·{n}", cost.macs),
        ] + collapse_rf_steps(rfs[0], rf)

    def frame_args(self, a, native):
        """Over a whole frame an fc after spatial features is the convolution over the window
        it saw at the spec's input, slid over every position the frame allows."""
        (shape, extent), *_ = native
        if not extent:  # a flat network (an MLP): nothing to slide
            return a
        return {**a, "_window": extent, "_channels": shape[0] // prod(extent)}

    @staticmethod
    def _positions(a, shape):
        if len(shape) - 1 != len(a["_window"]) or shape[0] != a["_channels"]:
            raise OpError(f"expected [{a['_channels']}, ...] features, got {list(shape)}")
        pos = tuple(s - w + 1 for s, w in zip(shape[1:], a["_window"]))
        if any(p < 1 for p in pos):
            raise OpError(
                f"the frame's {list(shape[1:])} map is smaller than the window {list(a['_window'])}"
            )
        return pos


@register
class Linear(Op):
    """The same ``out`` x C matrix applied at every position (ViT's and ConvNeXt's MLP layers,
    the per-token linear layer): [C, *positions] -> [out, *positions]; a flat [D] input is one
    position, [D] -> [out]. Weights = C x out, MACs = positions x C x out.

    Unlike ``fc`` its weights depend only on the channels, so it runs at any input size (and
    unchanged in frame mode); it does not mix positions, so the receptive field is unchanged.
    A flat input made by ``flatten`` from a map of several positions is refused (its width
    would change with the input size): that is an ``fc``.
    """

    name = "linear"
    aliases = ("pwfc",)
    kind = "fc"
    args = (
        Arg("out", "int", aliases=("units", "out_features"), min=1, help="output features"),
        Arg("bias", "bool", True, help="learnable bias per output feature"),
    )

    def infer(self, a, shapes, rfs):
        shape, rf = shapes[0], rfs[0]
        if len(shape) == 1 and not rf.collapsed and prod(rf.extent) > 1:
            raise OpError(
                f"the flat input {list(shape)} is a flattened map of {'x'.join(map(str, rf.extent))} "
                "positions: use fc (weights sized by the map) or apply linear to the map"
            )
        c, n = shape[0], a["out"]
        out = (n, *shape[1:])
        cost = Cost(weights=c * n, biases=n if a["bias"] else 0, macs=prod(shape[1:]) * c * n)
        return out, cost, rf

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import Step, bias_step, dot, rf_generic, shape_step

        shape, n = shapes[0], a["out"]
        pos, pos_num = ("positions·", f"{dot(shape[1:])}·") if len(shape) > 1 else ("", "")
        return [
            shape_step(out),
            Step("weights", "weights", "C_in·C_out", f"{shape[0]}·{n}", cost.weights),
            bias_step(cost.biases, "C_out", str(n)),
            Step("macs", "MACs", f"{pos}C_in·C_out", f"{pos_num}{shape[0]}·{n}", cost.macs),
        ] + rf_generic(rfs, rf)
