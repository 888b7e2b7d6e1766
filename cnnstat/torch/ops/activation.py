"""The torch side of :mod:`cnnstat.ops.activation`: element-wise activations, softmax,
log-softmax, dropout, identity, prelu."""

from __future__ import annotations

import math
import numbers

from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, elementwise

_ELEMENTWISE = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "mish": nn.Mish,
    "sigmoid": nn.Sigmoid,
    "logsigmoid": nn.LogSigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def _plain(cls):
    return lambda a, shapes: cls()


for _op, _cls in _ELEMENTWISE.items():
    builds(_op)(_plain(_cls))
    MODULES[_cls] = elementwise(_op)
    if _op != "identity":
        FUNCTIONS[_op] = elementwise(_op)
FUNCTIONS["log_sigmoid"] = elementwise("logsigmoid")  # F.logsigmoid's own name


def _torch_dim(dim: int) -> int:
    """cnnstat's axis (without batch) -> torch's (with batch)."""
    return dim + 1 if dim >= 0 else dim


builds("softmax")(lambda a, shapes: nn.Softmax(dim=_torch_dim(a["dim"])))
builds("log_softmax")(lambda a, shapes: nn.LogSoftmax(dim=_torch_dim(a["dim"])))
builds("dropout")(lambda a, shapes: nn.Dropout(a["p"]))
builds("prelu")(lambda a, shapes: nn.PReLU(1 if a["shared"] else shapes[0][0]))
builds("leaky_relu")(lambda a, shapes: nn.LeakyReLU(a["slope"]))
builds("elu")(lambda a, shapes: nn.ELU(a["alpha"]))
builds("celu")(lambda a, shapes: nn.CELU(a["alpha"]))
builds("gelu")(lambda a, shapes: nn.GELU(approximate=a["approximate"]))
builds("softplus")(lambda a, shapes: nn.Softplus(beta=a["beta"], threshold=a["threshold"]))


@builds("hardtanh")
def _build_hardtanh(a, shapes):
    m = nn.Hardtanh(a["min"], a["max"])
    m.cnnstat_op = "hardtanh"  # the importer keeps it hardtanh where [0, 6] would read as relu6
    return m


# --- import -----------------------------------------------------------------------------------


def _input(call):
    return call.args[0] if call.args else call.kwargs["input"]


def softmax(rec, call, op, x, dim):
    """``op`` (softmax, log_softmax) over torch's ``dim`` of ``x``; None: torch's implicit
    choice (dim 0 for 0-, 1- and 3-D inputs, else 1)."""
    n = x.dim()
    if dim is None:
        dim = 0 if n in (0, 1, 3) else 1
    if not -n <= dim < n or dim % n == 0:
        return rec.unsupported_call(call, f"{op} over dim {dim} of a {n}-D tensor (the batch)")
    rec.emit(call, op, {"dim": dim - 1 if dim > 0 else dim}, [rec.ref(x)])


def _softmax(op):
    def module(rec, call):
        softmax(rec, call, op, _input(call), call.module.dim)

    def function(rec, call):
        softmax(rec, call, op, call.arg(0, "input"), call.arg(1, "dim", None))

    return module, function


def _m_softmax2d(rec, call):
    softmax(rec, call, "softmax", _input(call), -3)  # nn.Softmax2d: over the channels of [N, C, H, W]


def _scalar(op, args):
    """Handlers of a one-input op whose arguments are module attributes / function arguments:
    ``args`` = ((cnnstat name, torch name, position in the function, default, type), ...)."""

    def module(rec, call):
        a = {name: kind(getattr(call.module, attr)) for name, attr, _, _, kind in args}
        rec.emit(call, op, a, [rec.ref(_input(call))])

    def function(rec, call):
        a = {name: kind(call.arg(i, attr, default)) for name, attr, i, default, kind in args}
        rec.emit(call, op, a, [rec.ref(call.arg(0, "input"))])

    return module, function


_WITH_ARGS = {
    "leaky_relu": (nn.LeakyReLU, (("slope", "negative_slope", 1, 0.01, float),)),
    "elu": (nn.ELU, (("alpha", "alpha", 1, 1.0, float),)),
    "celu": (nn.CELU, (("alpha", "alpha", 1, 1.0, float),)),
    "gelu": (nn.GELU, (("approximate", "approximate", 1, "none", str),)),
    "softplus": (nn.Softplus, (("beta", "beta", 1, 1.0, float), ("threshold", "threshold", 2, 20.0, float))),
}
for _op, (_cls, _args) in _WITH_ARGS.items():
    MODULES[_cls], FUNCTIONS[_op] = _scalar(_op, _args)
for _op, _cls in (("softmax", nn.Softmax), ("log_softmax", nn.LogSoftmax)):
    MODULES[_cls], FUNCTIONS[_op] = _softmax(_op)
MODULES[nn.Softmax2d] = _m_softmax2d


def _m_dropout(rec, call):
    rec.emit(call, "dropout", {"p": float(call.module.p)}, [rec.ref(call.args[0])])


def _f_dropout(rec, call):
    rec.emit(call, "dropout", {"p": float(call.arg(1, "p", 0.5))}, [rec.ref(call.arg(0, "input"))])


def _bound(v):
    """A clamp bound as a float (None: none), or False where it is not a number (a tensor)."""
    if v is None:
        return None
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return float(v)
    return False


def clamped(rec, call, x, low, high, op=None):
    """A clamp of ``x`` to [low, high]: relu ([0, inf)), relu6 ([0, 6]) or hardtanh (two
    finite bounds); ``op``: the op a built module says it is."""
    low, high = _bound(low), _bound(high)
    if op is None and low == 0 and high is None:
        return rec.emit(call, "relu", {}, [rec.ref(x)])
    if op is None and low == 0 and high == 6:
        return rec.emit(call, "relu6", {}, [rec.ref(x)])
    if all(isinstance(v, float) and math.isfinite(v) for v in (low, high)) and low < high:
        return rec.emit(call, "hardtanh", {"min": low, "max": high}, [rec.ref(x)])
    rec.unsupported_call(call, f"clamps to [{low}, {high}] (relu, relu6 and finite hardtanh ranges map)")


def _m_hardtanh(rec, call):
    m = call.module
    clamped(rec, call, _input(call), m.min_val, m.max_val, getattr(m, "cnnstat_op", None))


def _f_hardtanh(rec, call):
    clamped(rec, call, call.arg(0, "input"), call.arg(1, "min_val", -1.0), call.arg(2, "max_val", 1.0))


def _f_clamp(rec, call):
    clamped(rec, call, call.arg(0, "input"), call.arg(1, "min", None), call.arg(2, "max", None))


def _f_clamp_min(rec, call):
    clamped(rec, call, call.arg(0, "input"), call.arg(1, "min", None), None)


def _m_prelu(rec, call):
    rec.emit(call, "prelu", {"shared": call.module.num_parameters == 1}, [rec.ref(call.args[0])])


def _f_prelu(rec, call):
    w = call.arg(1, "weight")
    a = {"shared": w.numel() == 1}
    rec.emit(call, "prelu", a, [rec.ref(call.arg(0, "input"))], params=rec.param_names([w]))


for _cls in (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout):
    MODULES[_cls] = _m_dropout
for _name in (
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "stochastic_depth",
):
    FUNCTIONS[_name] = _f_dropout
MODULES[nn.Hardtanh] = _m_hardtanh
FUNCTIONS["hardtanh"] = _f_hardtanh
FUNCTIONS["clamp"] = FUNCTIONS["clip"] = _f_clamp
FUNCTIONS["clamp_min"] = _f_clamp_min
MODULES[nn.PReLU] = _m_prelu
FUNCTIONS["prelu"] = _f_prelu
