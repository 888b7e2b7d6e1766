"""The torch side of :mod:`cnnstat.ops.tokens`: tokens, to_map, class_token, pos_embed, scale,
take. Every module takes and returns channels-first tensors: [B, D, N] tokens, [B, C, H, W]
maps."""

from __future__ import annotations

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
    """cnnstat ``pos_embed``: adds a learned tensor of the input's shape ``shape`` (no batch)."""

    def __init__(self, shape):
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, *shape))
        nn.init.trunc_normal_(self.embedding, std=0.02)

    def forward(self, x):
        return x + self.embedding


class LayerScale(nn.Module):
    """cnnstat ``scale``: a learned multiplier per channel (dim 1), initialised to ``init``
    (ConvNeXt's 1e-6)."""

    def __init__(self, channels: int, init: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x):
        return x * self.gamma.reshape(-1, *(1,) * (x.dim() - 2))


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
    return PosEmbed(shapes[0])


@builds("scale")
def _build_scale(a, shapes):
    return LayerScale(shapes[0][0])


@builds("take")
def _build_take(a, shapes):
    return Take(a["index"], a["stop"])


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
MODULES[PosEmbed] = _plain("pos_embed")
MODULES[LayerScale] = _plain("scale")
MODULES[Take] = _m_take
