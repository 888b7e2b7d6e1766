"""Normalisation: batch norm (learnable scale/shift, running statistics) and LRN."""

from __future__ import annotations

from cnnstat.ops.base import Arg, Cost, Op, register


@register
class BatchNorm(Op):
    """Per channel: weight (gamma) and bias (beta) when ``affine``; running mean and
    variance are buffers, not parameters (PyTorch's num_batches_tracked is not counted)."""

    name = "bn"
    args = (Arg("affine", "bool", True), Arg("eps", "float", 1e-5), Arg("momentum", "float", 0.1))

    def cost(self, a, shapes, out):
        c = shapes[0][0]
        return Cost(weights=c if a["affine"] else 0, biases=c if a["affine"] else 0, buffers=2 * c)


@register
class LocalResponseNorm(Op):
    """Local response normalisation across channels (AlexNet); no parameters."""

    name = "lrn"
    args = (
        Arg("size", "int", 5, aliases=("local_size", "n"), min=1),
        Arg("alpha", "float", 1e-4),
        Arg("beta", "float", 0.75),
        Arg("k", "float", 1.0),
    )
