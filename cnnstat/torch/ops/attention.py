"""The torch side of :mod:`cnnstat.ops.attention`: attention (:class:`SelfAttention`) and
matmul (:class:`MatMul`). Channels-first tensors in and out: [B, D, N] tokens, [B, C, *spatial]
maps. The arithmetic is plain ``nn.Linear``, ``torch.matmul`` and convolution, which PyTorch's
flop counter and fvcore both count."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.torch.ops.base import MODULES, axes, builds, nd

# --- modules beyond torch.nn ------------------------------------------------------------------


def relative_position_index(window) -> torch.Tensor:
    """Swin's index into the relative position bias table, for a window of any rank:
    [area * area], entry (i, j) the row of the offset between positions i and j."""
    coords = torch.stack(torch.meshgrid([torch.arange(w) for w in window], indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]  # [rank, area, area]
    index = torch.zeros_like(rel[0])
    for i, w in enumerate(window):
        index = index * (2 * w - 1) + rel[i] + (w - 1)
    return index.flatten()


class SelfAttention(nn.Module):
    """cnnstat ``attention``: multi-head self-attention over all positions of a channels-first
    [B, C, *spatial] tensor ([B, D, N] tokens), or inside (shifted) windows of a map (Swin:
    the map is padded to a multiple of ``window``, rolled by ``shift`` and masked), or with
    keys and values from the map reduced by a k = s = ``sr`` convolution and a layer norm
    (PVT). ``qkv`` = ``nn.Linear(C, 3 dim)`` (PVT: ``q`` and ``kv``), ``proj`` =
    ``nn.Linear(dim, C)``; ``rel_pos_bias`` adds Swin v1's relative position bias table.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        dim: int | None = None,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        window=None,
        shift=None,
        rel_pos_bias: bool = False,
        sr: int = 1,
        rank: int = 1,
    ):
        super().__init__()
        dim = dim or channels
        self.channels, self.heads, self.dim, self.sr = channels, heads, dim, sr
        self.window = None if window is None else axes(window, rank)
        self.shift = axes(shift or 0, rank) if window is not None else (0,) * rank
        self.rel_pos_bias = rel_pos_bias
        if sr > 1:
            self.q = nn.Linear(channels, dim, bias=qkv_bias)
            self.kv = nn.Linear(channels, 2 * dim, bias=qkv_bias)
            self.reduce = nd((channels, *(1,) * rank), nn.Conv1d, nn.Conv2d, nn.Conv3d)(
                channels, channels, sr, sr
            )
            self.norm = nn.LayerNorm(channels)
        else:
            self.qkv = nn.Linear(channels, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, channels, bias=proj_bias)
        if rel_pos_bias:
            rows = math.prod(2 * w - 1 for w in self.window)
            self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(self.window))

    @property
    def qkv_bias(self) -> bool:
        return (self.q if self.sr > 1 else self.qkv).bias is not None

    def extra_repr(self):
        return f"heads={self.heads}, dim={self.dim}, window={self.window}, shift={self.shift}, sr={self.sr}"

    def forward(self, x):
        if self.window is not None:
            return self._windowed(x)
        tokens = x.flatten(2).transpose(1, 2)  # [B, N, C]
        if self.sr > 1:
            reduced = self.norm(self.reduce(x).flatten(2).transpose(1, 2))  # [B, N_k, C]
            q = self.q(tokens)
            k, v = self.kv(reduced).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        return self._attend(q, k, v).transpose(1, 2).reshape(x.shape)

    def _attend(self, q, k, v, bias=None, mask=None):
        """[B', N_q, dim] queries, [B', N_k, dim] keys and values -> [B', N_q, C]."""
        b, nq, nk, h = q.shape[0], q.shape[1], k.shape[1], self.heads
        d = self.dim // h
        q = q.reshape(b, nq, h, d).transpose(1, 2) * d**-0.5
        k = k.reshape(b, nk, h, d).transpose(1, 2)
        v = v.reshape(b, nk, h, d).transpose(1, 2)
        attn = torch.matmul(q, k.transpose(-2, -1))  # [B', h, N_q, N_k]
        if bias is not None:
            attn = attn + bias
        if mask is not None:  # [windows, N_q, N_k], the same for every image
            attn = (attn.unflatten(0, (-1, mask.shape[0])) + mask[None, :, None]).flatten(0, 1)
        out = torch.matmul(attn.softmax(dim=-1), v)  # [B', h, N_q, d]
        return self.proj(out.transpose(1, 2).reshape(b, nq, self.dim))

    def _windowed(self, x):
        batch, c, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
        rank, window = len(spatial), self.window
        y = x.movedim(1, -1)  # [B, *spatial, C]
        pads = [(-s) % w for s, w in zip(spatial, window)]
        if any(pads):
            y = F.pad(y, (0, 0) + tuple(v for p in reversed(pads) for v in (0, p)))
        padded = tuple(s + p for s, p in zip(spatial, pads))
        # no shift along an axis one window covers (as torchvision's Swin)
        shift = tuple(0 if w >= p else s for s, w, p in zip(self.shift, window, padded))
        dims = tuple(range(1, rank + 1))
        if any(shift):
            y = torch.roll(y, [-s for s in shift], dims)
        counts = [p // w for p, w in zip(padded, window)]
        area, windows = math.prod(window), math.prod(counts)
        split = [v for n, w in zip(counts, window) for v in (n, w)]
        order = [0, *(1 + 2 * i for i in range(rank)), *(2 + 2 * i for i in range(rank)), 2 * rank + 1]
        y = y.reshape(batch, *split, c).permute(order).reshape(batch * windows, area, c)
        bias = mask = None
        if self.rel_pos_bias:
            table = self.relative_position_bias_table[self.relative_position_index]
            bias = table.reshape(area, area, self.heads).permute(2, 0, 1)
        if any(shift):
            mask = self._mask(padded, shift, split, order, x)
        q, k, v = self.qkv(y).chunk(3, dim=-1)
        out = self._attend(q, k, v, bias, mask)  # [B * windows, area, C]
        inverse = [0, *(v for i in range(rank) for v in (1 + i, 1 + rank + i)), 2 * rank + 1]
        out = out.reshape(batch, *counts, *window, c).permute(inverse).reshape(batch, *padded, c)
        if any(shift):
            out = torch.roll(out, list(shift), dims)
        out = out[(slice(None), *(slice(0, s) for s in spatial))]
        return out.movedim(-1, 1)

    def _mask(self, padded, shift, split, order, like):
        """Swin's mask: -100 between positions of a window that the roll brought from
        different regions of the map."""
        label = torch.zeros(padded, dtype=torch.long, device=like.device)
        for i, (p, w, s) in enumerate(zip(padded, self.window, shift)):
            idx = torch.arange(p, device=like.device)
            region = (idx >= p - w).long() + (idx >= p - s).long() if s else torch.zeros_like(idx)
            label = label + (region * 3**i).reshape(*(1,) * i, p, *(1,) * (len(padded) - 1 - i))
        label = label.reshape(1, *split, 1).permute(order).reshape(-1, math.prod(self.window))
        differ = label[:, None, :] != label[:, :, None]
        return differ.to(like.dtype) * -100.0


class MatMul(nn.Module):
    """cnnstat ``matmul``: ``torch.matmul(a, b)`` of two channels-first tensors."""

    def forward(self, a, b):
        return torch.matmul(a, b)


# --- build ------------------------------------------------------------------------------------


@builds("attention")
def _build_attention(a, shapes):
    shape = shapes[0]
    return SelfAttention(
        shape[0],
        a["heads"],
        a["dim"],
        qkv_bias=a["qkv_bias"],
        proj_bias=a["proj_bias"],
        window=a["window"],
        shift=a["shift"],
        rel_pos_bias=a["rel_pos_bias"],
        sr=a["sr"],
        rank=len(shape) - 1,
    )


builds("matmul")(lambda a, shapes: MatMul())


# --- import -----------------------------------------------------------------------------------


def _m_attention(rec, call):
    m = call.module
    a = {
        "heads": m.heads,
        "dim": m.dim,
        "qkv_bias": m.qkv_bias,
        "proj_bias": m.proj.bias is not None,
        "window": m.window,
        "shift": m.shift if m.window is not None else 0,
        "rel_pos_bias": m.rel_pos_bias,
        "sr": m.sr,
    }
    rec.emit(call, "attention", a, [rec.ref(call.args[0])])


def _m_matmul(rec, call):
    rec.emit(call, "matmul", {}, [rec.ref(t) for t in call.args])


MODULES[SelfAttention] = _m_attention
MODULES[MatMul] = _m_matmul
