"""Element-wise ops that keep the shape: activations, dropout, identity."""

from __future__ import annotations

from cnnstat.ops.base import Arg, Cost, Op, register


def _elementwise(name: str, doc: str, args=(), inplace=True, view=False):
    attrs = {"name": name, "args": tuple(args), "__doc__": doc, "inplace": inplace, "view": view}
    return register(type(name.capitalize(), (Op,), attrs))


# In place as PyTorch's reference models run them (ReLU(inplace=True), ...); sigmoid, tanh
# and softmax allocate their output; dropout (at inference) and identity return their input.
_elementwise("relu", "max(0, x)")
_elementwise("relu6", "min(max(0, x), 6) (MobileNet v2)")
_elementwise("hardswish", "x * relu6(x + 3) / 6 (MobileNet v3)")
_elementwise("hardsigmoid", "relu6(x + 3) / 6 (MobileNet v3)")
_elementwise("silu", "x * sigmoid(x), a.k.a. swish (EfficientNet)")
_elementwise("sigmoid", "1 / (1 + exp(-x))", inplace=False)
_elementwise("tanh", "hyperbolic tangent", inplace=False)
_elementwise("softmax", "softmax over channels", [Arg("dim", "int", 0)], inplace=False)
_elementwise("dropout", "dropout (identity at inference)", [Arg("p", "float", 0.5)], view=True)
_elementwise("identity", "passes its input through", view=True)


@register
class PReLU(Op):
    """max(0, x) + a * min(0, x) with a learnable slope per channel (He et al. 2015),
    or one slope for all channels with ``shared: true`` (PyTorch's default)."""

    name = "prelu"
    args = (Arg("shared", "bool", False),)

    def cost(self, a, shapes, out):
        return Cost(weights=1 if a["shared"] else shapes[0][0])
