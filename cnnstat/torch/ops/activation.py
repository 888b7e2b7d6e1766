"""The torch side of :mod:`cnnstat.ops.activation`: element-wise activations, softmax,
dropout, identity, prelu."""

from __future__ import annotations

from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, elementwise

_ELEMENTWISE = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
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


@builds("softmax")
def _build_softmax(a, shapes):
    return nn.Softmax(dim=a["dim"] + 1 if a["dim"] >= 0 else a["dim"])


@builds("dropout")
def _build_dropout(a, shapes):
    return nn.Dropout(a["p"])


@builds("prelu")
def _build_prelu(a, shapes):
    return nn.PReLU(1 if a["shared"] else shapes[0][0])


# --- import -----------------------------------------------------------------------------------


def _softmax_dim(dim):
    """torch's dim (with batch) -> cnnstat's (without)."""
    return 0 if dim is None else (dim - 1 if dim > 0 else dim)


def _m_softmax(rec, call):
    rec.emit(call, "softmax", {"dim": _softmax_dim(call.module.dim)}, [rec.ref(call.args[0])])


def _f_softmax(rec, call):
    a = {"dim": _softmax_dim(call.arg(1, "dim", None))}
    rec.emit(call, "softmax", a, [rec.ref(call.arg(0, "input"))])


def _m_dropout(rec, call):
    rec.emit(call, "dropout", {"p": float(call.module.p)}, [rec.ref(call.args[0])])


def _f_dropout(rec, call):
    rec.emit(call, "dropout", {"p": float(call.arg(1, "p", 0.5))}, [rec.ref(call.arg(0, "input"))])


def clamped(rec, call, x, low, high):
    if low == 0 and high is None:
        return rec.emit(call, "relu", {}, [rec.ref(x)])
    if low == 0 and high == 6:
        return rec.emit(call, "relu6", {}, [rec.ref(x)])
    rec.unsupported_call(call, f"clamps to [{low}, {high}] (only relu and relu6 map)")


def _m_hardtanh(rec, call):
    clamped(rec, call, call.args[0], call.module.min_val, call.module.max_val)


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


MODULES[nn.Softmax] = _m_softmax
FUNCTIONS["softmax"] = _f_softmax
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
