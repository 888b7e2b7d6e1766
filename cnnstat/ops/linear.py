"""Fully connected layer."""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Cost, Op, register


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
        if len(shapes[0]) != 1:
            raise OpError(f"fc needs a flat input, got {list(shapes[0])}: add 'flatten' before it")
        return (a["out"],)

    def cost(self, a, shapes, out):
        n_in = shapes[0][0]
        return Cost(weights=n_in * a["out"], biases=a["out"] if a["bias"] else 0, macs=n_in * a["out"])

    def rf(self, a, rfs, shapes, out):
        return rfs[0].collapse()
