"""The torch side of :mod:`cnnstat.ops.tokens`: tokens, to_map, class_token, pos_embed, scale,
take. Every module takes and returns channels-first tensors: [B, D, N] tokens, [B, C, H, W]
maps."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnstat.errors import CnnstatError
from cnnstat.torch.ops.base import MODULES, builds

# --- modules beyond torch.nn ------------------------------------------------------------------


class Tokens(nn.Module):
    """cnnstat ``tokens``: [B, C, *spatial] -> [B, C, N], row-major (a view)."""

    def forward(self, x):
        return x.flatten(2)


class ToMap(nn.Module):
    """cnnstat ``to_map``: [B, C, N] -> [B, C, *size] (a view)."""

    def __init__(self, size):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x):
        return x.unflatten(2, self.size)

    def extra_repr(self):
        return f"size={self.size}"


class ClassToken(nn.Module):
    """cnnstat ``class_token``: ``n`` learned tokens prepended, [B, D, N] -> [B, D, n + N]."""

    def __init__(self, dim: int, n: int = 1):
        super().__init__()
        self.n = n
        self.token = nn.Parameter(torch.zeros(1, dim, n))
        nn.init.trunc_normal_(self.token, std=0.02)

    def forward(self, x):
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=2)


class PosEmbed(nn.Module):
    """cnnstat ``pos_embed``: adds a learned tensor of the input's shape ``shape`` (no batch);
    with ``split`` (and the tokens' map ``size``), the sum of a table over the map's first
    ``split`` axes and one over the others, after a row per class token (MViT v1)."""

    def __init__(self, shape, split=None, size=None):
        super().__init__()
        self.split, self.size = split, None if size is None else tuple(size)
        if split is None:
            self.embedding = nn.Parameter(torch.zeros(1, *shape))
            nn.init.trunc_normal_(self.embedding, std=0.02)
            return
        d, cls = shape[0], shape[1] - math.prod(self.size)
        self.first = nn.Parameter(torch.zeros(d, math.prod(self.size[:split]), 1))
        self.rest = nn.Parameter(torch.zeros(d, 1, math.prod(self.size[split:])))
        self.cls = nn.Parameter(torch.zeros(d, cls))

    def forward(self, x):
        if self.split is None:
            return x + self.embedding
        table = torch.cat([self.cls, (self.first + self.rest).flatten(1)], dim=1)
        return x + table

    def extra_repr(self):
        return "" if self.split is None else f"split={self.split}, size={self.size}"


class LayerScale(nn.Module):
    """cnnstat ``scale``: a learned multiplier per channel (dim 1), initialised to ``init``
    (ConvNeXt's 1e-6); ``channels`` 1 with ``shared``: one for every value."""

    def __init__(self, channels: int, init: float = 1e-6, shared: bool = False):
        super().__init__()
        self.shared = shared
        self.gamma = nn.Parameter(torch.full((1 if shared else channels,), float(init)))

    def forward(self, x):
        return x * self.gamma.reshape(-1, *(1,) * (x.dim() - 2))


class Shift(nn.Module):
    """cnnstat ``shift``: a learned addend per channel (dim 1), or one for every value
    (``shared``)."""

    def __init__(self, channels: int, shared: bool = False):
        super().__init__()
        self.shared = shared
        self.beta = nn.Parameter(torch.zeros(1 if shared else channels))

    def forward(self, x):
        return x + self.beta.reshape(-1, *(1,) * (x.dim() - 2))


class Take(nn.Module):
    """cnnstat ``take``: token ``index`` of [B, D, N] -> [B, D], or with ``stop`` the tokens
    [index, stop) -> [B, D, stop - index] (views)."""

    def __init__(self, index: int = 0, stop: int | None = None):
        super().__init__()
        self.index, self.stop = index, stop

    def forward(self, x):
        if self.stop is None:
            return x[:, :, self.index]
        return x[:, :, self.index : self.stop]

    def extra_repr(self):
        return f"index={self.index}, stop={self.stop}"


class TokenPool(nn.Module):
    """cnnstat ``token_pool``: max or average pooling over the ``size`` map of the last
    tokens of [B, D, n + N], the first n kept (MViT's pooled skip connection)."""

    def __init__(self, mode, k, s, p, size):
        super().__init__()
        rank = len(size)
        self.mode, self.size = mode, tuple(size)
        pools = (
            (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
            if mode == "max"
            else (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
        )
        self.pool = pools[rank - 1](k, s, p)

    def forward(self, x):
        b, d, n = x.shape
        cls = n - math.prod(self.size)
        pooled = self.pool(x[:, :, cls:].reshape(b, d, *self.size)).flatten(2)
        return torch.cat([x[:, :, :cls], pooled], dim=2)

    def extra_repr(self):
        return f"mode={self.mode!r}, size={self.size}"


# --- build ------------------------------------------------------------------------------------

builds("tokens")(lambda a, shapes: Tokens())


@builds("to_map")
def _build_to_map(a, shapes):
    size = a["size"]
    if size is None:
        raise CnnstatError(
            "to_map: give 'size' to build it in torch (its default is known to the analysis only)"
        )
    if isinstance(size, int):  # a square (cube) map: as many axes as make the N tokens
        n, k = shapes[0][1], 1
        while size > 1 and size**k < n:
            k += 1
        size = (size,) * k
    return ToMap(size)


@builds("class_token")
def _build_class_token(a, shapes):
    return ClassToken(shapes[0][0], a["n"])


@builds("pos_embed")
def _build_pos_embed(a, shapes):
    if a["split"] is not None and a["size"] is None:
        raise CnnstatError(
            "pos_embed: give 'size' to build it in torch (its default is known to the analysis only)"
        )
    size = a["size"]
    if size is not None and not isinstance(size, (list, tuple)):
        size = (size,) * (a["split"] + 1)
    return PosEmbed(shapes[0], a["split"], size)


@builds("scale")
def _build_scale(a, shapes):
    return LayerScale(shapes[0][0], shared=a["shared"])


@builds("shift")
def _build_shift(a, shapes):
    return Shift(shapes[0][0], shared=a["shared"])


@builds("take")
def _build_take(a, shapes):
    return Take(a["index"], a["stop"])


@builds("token_pool")
def _build_token_pool(a, shapes):
    if a["size"] is None:
        raise CnnstatError(
            "token_pool: give 'size' to build it in torch (its default is known to the analysis only)"
        )
    size = a["size"]
    rank = len(size) if isinstance(size, (list, tuple)) else 2
    size = tuple(size) if isinstance(size, (list, tuple)) else (size,) * rank
    k = tuple(a["k"]) if isinstance(a["k"], (list, tuple)) else (a["k"],) * rank
    s = a["s"] if a["s"] is not None else k
    s = tuple(s) if isinstance(s, (list, tuple)) else (s,) * rank
    p = tuple(a["p"]) if isinstance(a["p"], (list, tuple)) else (a["p"],) * rank
    return TokenPool(a["mode"], k, s, p, size)


# --- import -----------------------------------------------------------------------------------


def _plain(op):
    def handle(rec, call):
        rec.emit(call, op, {}, [rec.ref(call.args[0])])

    return handle


def _m_to_map(rec, call):
    rec.emit(call, "to_map", {"size": call.module.size}, [rec.ref(call.args[0])])


def _m_class_token(rec, call):
    rec.emit(call, "class_token", {"n": call.module.n}, [rec.ref(call.args[0])])


def _m_take(rec, call):
    m = call.module
    rec.emit(call, "take", {"index": m.index, "stop": m.stop}, [rec.ref(call.args[0])])


MODULES[Tokens] = _plain("tokens")
MODULES[ToMap] = _m_to_map
MODULES[ClassToken] = _m_class_token


def _m_pos_embed(rec, call):
    m = call.module
    rec.emit(call, "pos_embed", {"split": m.split, "size": m.size}, [rec.ref(call.args[0])])


MODULES[PosEmbed] = _m_pos_embed


def _m_layer_scale(rec, call):
    rec.emit(call, "scale", {"shared": call.module.shared}, [rec.ref(call.args[0])])


MODULES[LayerScale] = _m_layer_scale


def _m_shift(rec, call):
    rec.emit(call, "shift", {"shared": call.module.shared}, [rec.ref(call.args[0])])


MODULES[Shift] = _m_shift
MODULES[Take] = _m_take


def _m_token_pool(rec, call):
    m, pool = call.module, call.module.pool
    a = {"mode": m.mode, "k": pool.kernel_size, "s": pool.stride, "p": pool.padding, "size": m.size}
    a = {k: tuple(v) if isinstance(v, list) else v for k, v in a.items()}
    rec.emit(call, "token_pool", a, [rec.ref(call.args[0])])


MODULES[TokenPool] = _m_token_pool
