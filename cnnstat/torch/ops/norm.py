"""The torch side of :mod:`cnnstat.ops.norm`: bn, lrn."""

from __future__ import annotations

from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, nd


@builds("bn")
def _build_bn(a, shapes):
    shape = shapes[0]
    cls = nd(shape, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    return cls(shape[0], eps=a["eps"], momentum=a["momentum"], affine=a["affine"])


@builds("lrn")
def _build_lrn(a, shapes):
    return nn.LocalResponseNorm(a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])


def _m_bn(rec, call):
    m = call.module
    a = {"affine": m.affine, "eps": m.eps, "momentum": m.momentum if m.momentum is not None else 0.0}
    rec.emit(call, "bn", a, [rec.ref(call.args[0])])


def _m_lrn(rec, call):
    m = call.module
    rec.emit(
        call, "lrn", {"size": m.size, "alpha": m.alpha, "beta": m.beta, "k": m.k}, [rec.ref(call.args[0])]
    )


def _f_batch_norm(rec, call):
    x, w, b = call.arg(0, "input"), call.arg(3, "weight"), call.arg(4, "bias")
    params = rec.param_names([t for t in (w, b) if t is not None])
    a = {"affine": w is not None, "eps": float(call.arg(7, "eps", 1e-5))}
    rec.emit(call, "bn", a, [rec.ref(x)], params=params)


def _f_lrn(rec, call):
    a = {
        "size": call.arg(1, "size"),
        "alpha": call.arg(2, "alpha", 1e-4),
        "beta": call.arg(3, "beta", 0.75),
        "k": call.arg(4, "k", 1.0),
    }
    rec.emit(call, "lrn", a, [rec.ref(call.arg(0, "input"))])


for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
    MODULES[_cls] = _m_bn
MODULES[nn.LocalResponseNorm] = _m_lrn
FUNCTIONS["batch_norm"] = _f_batch_norm
FUNCTIONS["local_response_norm"] = _f_lrn
