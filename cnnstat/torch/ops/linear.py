"""The torch side of :mod:`cnnstat.ops.linear`: fc."""

from __future__ import annotations

from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds


@builds("fc")
def _build_fc(a, shapes):
    return nn.Linear(shapes[0][0], a["out"], bias=a["bias"])


def _m_linear(rec, call):
    m = call.module
    rec.emit(call, "fc", {"out": m.out_features, "bias": m.bias is not None}, [rec.ref(call.args[0])])


def _f_linear(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(1, "weight"), call.arg(2, "bias")
    params = rec.param_names([w, b] if b is not None else [w])
    rec.emit(call, "fc", {"out": w.shape[0], "bias": b is not None}, [rec.ref(x)], params=params)


MODULES[nn.Linear] = _m_linear
FUNCTIONS["linear"] = _f_linear
