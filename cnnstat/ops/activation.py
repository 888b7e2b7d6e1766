"""Element-wise ops that keep the shape: activations, softmax, dropout, identity.

All count 0 MACs (cnnstat counts multiply-accumulates of weighted sums only) and keep the
receptive field of their input.
"""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Cost, Op, register


def _elementwise(name: str, doc: str, args=(), inplace=True, view=False):
    attrs = {"name": name, "args": tuple(args), "__doc__": doc, "inplace": inplace, "view": view}
    return register(type(name.capitalize(), (Op,), attrs))


# In place as PyTorch's reference models run them (ReLU(inplace=True), ...), and so is every
# activation whose torch module has an ``inplace`` option (LeakyReLU as Darknet/YOLO run it,
# ELU, SELU, CELU, Hardtanh, Mish); sigmoid, tanh, GELU, softplus, log-sigmoid and softmax
# allocate their output; dropout (at inference) and identity return their input.
_elementwise("relu", "max(0, x)")
_elementwise("relu6", "min(max(0, x), 6) (MobileNet v2)")
_elementwise("hardswish", "x * relu6(x + 3) / 6 (MobileNet v3)")
_elementwise("hardsigmoid", "relu6(x + 3) / 6 (MobileNet v3)")
_elementwise("silu", "x * sigmoid(x), a.k.a. swish (EfficientNet)")
_elementwise(
    "leaky_relu",
    "max(0, x) + slope * min(0, x), a fixed slope (Darknet/YOLO: 0.1)",
    [Arg("slope", "float", 0.01, aliases=("negative_slope",), help="slope for x < 0")],
)
_elementwise(
    "elu", "x for x > 0, alpha * (exp(x) - 1) otherwise (Clevert et al. 2016)", [Arg("alpha", "float", 1.0)]
)
_elementwise("selu", "scale * elu(x, alpha) with SELU's fixed scale and alpha (Klambauer et al. 2017)")
_elementwise("celu", "max(0, x) + min(0, alpha * (exp(x / alpha) - 1))", [Arg("alpha", "float", 1.0)])
_elementwise("mish", "x * tanh(softplus(x)) (Misra 2019; YOLOv4)")
_elementwise(
    "gelu",
    "x * Phi(x), Phi the standard normal CDF; approximate: tanh uses the tanh formula",
    [Arg("approximate", "str", "none", choices=("none", "tanh"), help="none | tanh")],
    inplace=False,
)
_elementwise(
    "softplus",
    "log(1 + exp(beta * x)) / beta; x where beta * x > threshold",
    [Arg("beta", "float", 1.0), Arg("threshold", "float", 20.0)],
    inplace=False,
)
_elementwise("sigmoid", "1 / (1 + exp(-x))", inplace=False)
_elementwise("logsigmoid", "log(sigmoid(x))", inplace=False)
_elementwise("tanh", "hyperbolic tangent", inplace=False)
_elementwise("dropout", "dropout (identity at inference)", [Arg("p", "float", 0.5)], view=True)
_elementwise("identity", "passes its input through", view=True)


@register
class Hardtanh(Op):
    """x clamped to [min, max] (PyTorch's Hardtanh: [-1, 1] by default). min 0, max 6 is
    relu6, as PyTorch implements ReLU6; models imported from PyTorch show clamps to [0, 6]
    and [0, inf) as relu6 and relu."""

    name = "hardtanh"
    inplace = True
    args = (
        Arg("min", "float", -1.0, aliases=("min_val",), help="lower bound"),
        Arg("max", "float", 1.0, aliases=("max_val",), help="upper bound"),
    )

    def shape(self, a, shapes):
        if not a["min"] < a["max"]:
            raise OpError(f"'max' ({a['max']}) must be greater than 'min' ({a['min']})")
        return shapes[0]


class _Softmax(Op):
    inplace = False
    args = (Arg("dim", "int", 0, help="axis, without batch: 0 = channels; negative from the last"),)

    def shape(self, a, shapes):
        shape, dim = shapes[0], a["dim"]
        if not -len(shape) <= dim < len(shape):
            raise OpError(
                f"'dim' must index the input's {len(shape)} axes {list(shape)} "
                f"({-len(shape)} to {len(shape) - 1}, batch excluded), got {dim}"
            )
        return shape


@register
class Softmax(_Softmax):
    """exp(x) / sum(exp(x)) over axis ``dim`` of the input without batch: 0 (the default)
    is the channels, 1 the first spatial axis (the positions of [C, L]); negative counts from
    the last axis. Convention: normalising over an axis gives every unit context along it
    but, as for the norms' statistics, no window: the receptive field is the input's."""

    name = "softmax"


@register
class LogSoftmax(_Softmax):
    """log(softmax(x)) over axis ``dim`` (as softmax: 0 = channels, negative from the last
    axis); the receptive field is the input's (softmax's convention)."""

    name = "log_softmax"


@register
class PReLU(Op):
    """max(0, x) + a * min(0, x) with a learnable slope per channel (He et al. 2015),
    or one slope for all channels with ``shared: true`` (PyTorch's default)."""

    name = "prelu"
    args = (Arg("shared", "bool", False),)

    def cost(self, a, shapes, out):
        return Cost(weights=1 if a["shared"] else shapes[0][0])

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops.steps import Step, generic

        steps = generic(self, a, shapes, rfs, out, cost, rf)
        weights = Step(
            "weights", "weights", *(("1 (shared)", "1") if a["shared"] else ("C", str(shapes[0][0])))
        )
        return [weights._replace(value=cost.weights) if st.what == "weights" else st for st in steps]
