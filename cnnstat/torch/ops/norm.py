"""The torch side of :mod:`cnnstat.ops.norm`: bn, lrn, layernorm, layernorm_all, groupnorm,
instancenorm, grn (:class:`GlobalResponseNorm`; timm's imports as it), normalize."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, NAMED_MODULES, builds, nd, t

# --- modules beyond torch.nn ------------------------------------------------------------------


class ChannelLayerNorm(nn.LayerNorm):
    """Layer norm over dim 1 (the channels) of a channels-first tensor [N, C, *]: cnnstat's
    ``layernorm``. Weight and bias have shape [C] (an ``nn.LayerNorm(C)``); the forward moves
    the channels last, applies ``F.layer_norm`` over them and moves them back, as
    torchvision's ``convnext.LayerNorm2d`` does for [N, C, H, W], for any number of spatial
    axes."""

    def forward(self, x):
        x = F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class Normalize(nn.Module):
    """Lp normalisation over dim 1, the channels (cnnstat ``normalize``): ``F.normalize``."""

    def __init__(self, p: float = 2.0, eps: float = 1e-12):
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x):
        return F.normalize(x, self.p, 1, self.eps)

    def extra_repr(self):
        return f"p={self.p}, eps={self.eps}"


# --- build ------------------------------------------------------------------------------------


@builds("bn")
def _build_bn(a, shapes):
    shape = shapes[0]
    cls = nd(shape, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    return cls(shape[0], eps=a["eps"], momentum=a["momentum"], affine=a["affine"])


@builds("lrn")
def _build_lrn(a, shapes):
    return nn.LocalResponseNorm(a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])


@builds("layernorm")
def _build_layernorm(a, shapes):
    shape = shapes[0]
    cls = nn.LayerNorm if len(shape) == 1 else ChannelLayerNorm
    return cls(shape[0], eps=a["eps"], elementwise_affine=a["affine"], bias=a["bias"])


@builds("layernorm_all")
def _build_layernorm_all(a, shapes):
    return nn.LayerNorm(list(shapes[0]), eps=a["eps"], elementwise_affine=a["affine"], bias=a["bias"])


@builds("groupnorm")
def _build_groupnorm(a, shapes):
    return nn.GroupNorm(a["groups"], shapes[0][0], eps=a["eps"], affine=a["affine"])


class GlobalResponseNorm(nn.Module):
    """cnnstat ``grn`` on a channels-first [B, C, *positions] tensor: per channel the L2 norm
    over the positions, divided by its mean over the channels (+ eps), x + weight (x n) +
    bias."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        g = x.flatten(2).norm(p=2, dim=2)  # [B, C]
        n = g / (g.mean(dim=1, keepdim=True) + self.eps)
        shape = (1, -1, *(1,) * (x.dim() - 2))
        return (
            x
            + self.weight.view(shape) * (x * n.view(*n.shape, *(1,) * (x.dim() - 2)))
            + self.bias.view(shape)
        )


@builds("grn")
def _build_grn(a, shapes):
    return GlobalResponseNorm(shapes[0][0], eps=a["eps"])


@builds("instancenorm")
def _build_instancenorm(a, shapes):
    shape = shapes[0]
    cls = nd(shape, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    return cls(
        shape[0],
        eps=a["eps"],
        momentum=a["momentum"],
        affine=a["affine"],
        track_running_stats=a["track_running_stats"],
    )


builds("normalize")(lambda a, shapes: Normalize(a["p"], a["eps"]))


# --- import -----------------------------------------------------------------------------------


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


# Layer norm. cnnstat's tensors are channels first; torch's LayerNorm normalises the last
# axes. What imports:
# - the last axes are all of the input's (batch apart): a flat [N, C] -> layernorm, more
#   axes -> layernorm_all;
# - the last axis holds the channels of a channels-first tensor whose axes were rearranged
#   (x.permute(0, 2, 3, 1): torchvision's convnext.LayerNorm2d and Swin; tokens [B, N, D] as
#   ViT's, from ``tokens`` and a transpose; see Ref.perm): layernorm over those channels, on
#   the channels-first tensor, and the output is that layer's output laid out alike;
# - anything else (the last axis a position axis, a tensor of unknown layout) is listed as
#   unsupported: what cnnstat calls its channels is not known.


def layer_norm(rec, call, x, normalized, w, b, eps, params):
    """Emit the layer norm of ``x`` over its last axes ``normalized`` (weight ``w``, bias
    ``b``, None when absent) whose parameter names are ``params``.
    Without a weight, ``bias`` keeps its default (it only matters with ``affine``)."""
    src = rec.ref(x)
    if src is None:
        return rec.unsupported_call(call, "normalises a tensor cnnstat does not follow", params)
    normalized = (normalized,) if isinstance(normalized, int) else t(normalized)
    if w is None and b is not None:
        return rec.unsupported_call(call, "a bias without a weight", params)
    a = {"eps": float(eps), "affine": w is not None, "bias": b is not None or w is None}
    shape = src.shape
    base, perm = src.layout(x.dim())
    if src.base is None or not src.steps:
        if normalized != shape:
            return rec.unsupported_call(
                call,
                f"normalises the last axes {list(normalized)} of a {list(shape)} input (cnnstat: "
                "the channels, dim 1, or all axes; a tensor whose last axis is not its channels)",
                params,
            )
        op = "layernorm" if len(shape) == 1 else "layernorm_all"
        return rec.emit(call, op, a, [src], params=params)
    if not (perm is not None and len(shape) > 1 and perm[-1] == 1 and normalized == (base.shape[0],)):
        return rec.unsupported_call(
            call,
            f"normalises the last axes {list(normalized)} of {list(shape)}, a rearranged "
            f"{list(base.shape)} (only its channels moved last import, as layernorm)",
            params,
        )
    rec.emit_laid(call, "layernorm", a, [src], params=params)


def _m_layernorm(rec, call):
    m = call.module
    x = call.args[0] if call.args else call.kwargs["input"]
    params = rec.param_names([p for p in (m.weight, m.bias) if p is not None])
    layer_norm(rec, call, x, m.normalized_shape, m.weight, m.bias, m.eps, params)


def _m_channel_layernorm(rec, call):
    m = call.module
    a = {"eps": m.eps, "affine": m.weight is not None, "bias": m.bias is not None or m.weight is None}
    rec.emit(call, "layernorm", a, [rec.ref(call.args[0] if call.args else call.kwargs["input"])])


def _f_layer_norm(rec, call):
    w, b = call.arg(2, "weight"), call.arg(3, "bias")
    params = rec.param_names([p for p in (w, b) if p is not None])
    x, normalized = call.arg(0, "input"), call.arg(1, "normalized_shape")
    layer_norm(rec, call, x, normalized, w, b, call.arg(4, "eps", 1e-5), params)


def _m_groupnorm(rec, call):
    m = call.module
    a = {"groups": m.num_groups, "eps": m.eps, "affine": m.affine}
    rec.emit(call, "groupnorm", a, [rec.ref(call.args[0] if call.args else call.kwargs["input"])])


def _f_group_norm(rec, call):
    x, groups = call.arg(0, "input"), call.arg(1, "num_groups")
    w, b = call.arg(2, "weight"), call.arg(3, "bias")
    params = rec.param_names([p for p in (w, b) if p is not None])
    if (w is None) != (b is None):
        return rec.unsupported_call(call, "a weight without a bias or a bias without a weight", params)
    a = {"groups": int(groups), "eps": float(call.arg(4, "eps", 1e-5)), "affine": w is not None}
    rec.emit(call, "groupnorm", a, [rec.ref(x)], params=params)


def _m_instancenorm(rec, call):
    m = call.module
    a = {
        "affine": m.affine,
        "track_running_stats": m.track_running_stats,
        "eps": m.eps,
        "momentum": m.momentum if m.momentum is not None else 0.0,
    }
    rec.emit(call, "instancenorm", a, [rec.ref(call.args[0] if call.args else call.kwargs["input"])])


# F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum,
# eps); torch.instance_norm(input, weight, bias, running_mean, running_var, use_input_stats,
# momentum, eps, cudnn_enabled): both canonical 'instance_norm', told apart by the label.
_F_INSTANCE = ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats", "momentum", "eps")
_TORCH_INSTANCE = (
    "input",
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "use_input_stats",
    "momentum",
    "eps",
)


def _f_instance_norm(rec, call):
    order = _TORCH_INSTANCE if call.label.startswith("torch.") else _F_INSTANCE
    defaults = {"use_input_stats": True, "momentum": 0.1, "eps": 1e-5}
    v = {name: call.arg(i, name, defaults.get(name)) for i, name in enumerate(order)}
    w, b = v["weight"], v["bias"]
    params = rec.param_names([p for p in (w, b) if p is not None])
    if (w is None) != (b is None):
        return rec.unsupported_call(call, "a weight without a bias or a bias without a weight", params)
    a = {
        "affine": w is not None,
        "track_running_stats": v["running_mean"] is not None,
        "eps": float(v["eps"]),
        "momentum": float(v["momentum"] if v["momentum"] is not None else 0.0),
    }
    rec.emit(call, "instancenorm", a, [rec.ref(v["input"])], params=params)


def _m_frozen_bn(rec, call):
    """torchvision's FrozenBatchNorm2d (detection backbones): batch norm whose scale and shift
    are fixed buffers, not parameters: ``bn`` without affine parameters; its four buffers
    (weight, bias, running mean and variance) are counted as the module's."""
    rec.emit(call, "bn", {"affine": False, "eps": float(call.module.eps)}, [rec.ref(call.args[0])])


def _m_normalize(rec, call):
    m = call.module
    rec.emit(call, "normalize", {"p": float(m.p), "eps": float(m.eps)}, [rec.ref(call.args[0])])


def _f_normalize(rec, call):
    """F.normalize(input, p=2.0, dim=1, eps=1e-12) over the channels: of a channels-first
    tensor (dim 1), or of one whose axes were rearranged, along the axis that holds its
    channels (the layer runs on the channels-first base, see Ref.perm)."""
    x = call.arg(0, "input")
    a = {"p": float(call.arg(1, "p", 2.0)), "eps": float(call.arg(3, "eps", 1e-12))}
    src = rec.ref(x)
    if src is None:
        return rec.unsupported_call(call, "normalises a tensor cnnstat does not follow")
    dim = int(call.arg(2, "dim", 1)) % x.dim()
    if src.base is None:
        if dim != 1:
            return rec.unsupported_call(call, f"normalises along dim {dim} (cnnstat: the channels, dim 1)")
        return rec.emit(call, "normalize", a, [src])
    _, perm = src.layout(x.dim())
    if perm is None or perm[dim] != 1:
        return rec.unsupported_call(call, f"normalises along dim {dim}, which does not hold the channels")
    rec.emit_laid(call, "normalize", a, [src])


for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
    MODULES[_cls] = _m_bn
NAMED_MODULES["torchvision.ops.misc.FrozenBatchNorm2d"] = _m_frozen_bn
MODULES[nn.LocalResponseNorm] = _m_lrn
MODULES[nn.LayerNorm] = _m_layernorm
MODULES[ChannelLayerNorm] = _m_channel_layernorm
MODULES[nn.GroupNorm] = _m_groupnorm
for _cls in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
    MODULES[_cls] = _m_instancenorm
FUNCTIONS["batch_norm"] = _f_batch_norm
FUNCTIONS["local_response_norm"] = _f_lrn
FUNCTIONS["layer_norm"] = _f_layer_norm
FUNCTIONS["group_norm"] = _f_group_norm
FUNCTIONS["instance_norm"] = _f_instance_norm
FUNCTIONS["normalize"] = _f_normalize
MODULES[Normalize] = _m_normalize


def _m_grn(rec, call):
    """cnnstat's GlobalResponseNorm, and timm's (``timm.layers.grn``: NHWC, its channels last
    (``channel_dim`` -1, norms over dims 1, 2), or NCHW): ``grn`` of the channels-first map."""
    m = call.module
    x = call.arg(0, "x")
    ref = rec.ref(x)
    if ref is None:
        return rec.unsupported_call(call, "on a tensor cnnstat does not follow")
    _, perm = ref.layout(x.dim())
    n = x.dim()
    channel = getattr(m, "channel_dim", 1) % n
    spatial = {d % n for d in getattr(m, "spatial_dim", range(2, n))}
    want = (0, 1, *range(2, n)) if channel == 1 else (0, *range(2, n), 1)
    if perm != want or spatial != set(range(n)) - {0, channel}:
        return rec.unsupported_call(call, "on a tensor whose channels are not its channel_dim")
    rec.emit_laid(call, "grn", {"eps": float(m.eps)}, [ref])


MODULES[GlobalResponseNorm] = _m_grn
NAMED_MODULES["timm.layers.grn.GlobalResponseNorm"] = _m_grn
