"""The torch side of :mod:`cnnstat.ops.attention`: attention (:class:`SelfAttention`) and
matmul (:class:`MatMul`). Channels-first tensors in and out: [B, D, N] tokens, [B, C, *spatial]
maps. The arithmetic is plain ``nn.Linear``, ``torch.matmul`` and convolution, which PyTorch's
flop counter and fvcore both count."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.errors import CnnstatError
from cnnstat.torch.ops.base import FUNCTIONS, MODULES, axes, builds, is_tensor, nd

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


def relative_coords_table(window) -> torch.Tensor:
    """Swin v2's input to its position-bias MLP, for a window of any rank: [prod(2w - 1), rank],
    each relative offset scaled to [-8, 8] per axis and log-spaced,
    sign(x) log2(|x| + 1) / 3 (a window of 1 along an axis: offset 0)."""
    axes_ = [torch.arange(-(w - 1), w, dtype=torch.float32) / max(w - 1, 1) * 8 for w in window]
    table = torch.stack(torch.meshgrid(axes_, indexing="ij"), dim=-1).reshape(-1, len(window))
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0


class SelfAttention(nn.Module):
    """cnnstat ``attention``: multi-head self-attention over all positions of a channels-first
    [B, C, *spatial] tensor ([B, D, N] tokens), or inside (shifted) windows of a map (Swin:
    the map is padded to a multiple of ``window``, rolled by ``shift`` and masked), or with
    keys and values from the map reduced by a k = s = ``sr`` convolution and a layer norm
    (PVT). ``qkv`` = ``nn.Linear(C, 3 dim)`` (PVT: ``q`` and ``kv``), ``proj`` =
    ``nn.Linear(dim, C)``; ``rel_pos_bias`` adds Swin v1's relative position bias table,
    ``rel_pos_mlp`` Swin v2's bias from an MLP (``cpb_mlp``) over the relative coordinates;
    ``cosine``: Swin v2's cosine attention with a learned ``logit_scale`` per head; ``grid``
    (MaxViT): attention among the units ``size / grid`` apart.
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
        rel_pos_mlp: int | None = None,
        grid=None,
        cosine: bool = False,
        out: int | None = None,
        pool_q=None,
        pool_q_stride=1,
        pool_kv=None,
        pool_kv_stride=1,
        rel_pos_axes: bool = False,
        residual_pool: bool = False,
        size=None,
        rel_pos_window=None,
    ):
        super().__init__()
        dim = dim or channels
        self.out = out or channels
        self.pool = {  # MViT's pooling: kernel and stride per axis of the map
            "q": None if pool_q is None else (axes(pool_q, rank), axes(pool_q_stride, rank)),
            "kv": None if pool_kv is None else (axes(pool_kv, rank), axes(pool_kv_stride, rank)),
        }
        self.rel_pos_axes, self.residual_pool = rel_pos_axes, residual_pool
        self.size = None if size is None else axes(size, rank)
        head = dim // heads
        for which, names in (("q", ("q",)), ("kv", ("k", "v"))):
            if self.pool[which] is not None:
                k, st = self.pool[which]
                conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[rank - 1]
                for n in names:
                    pad = tuple(v // 2 for v in k)
                    self.add_module(f"pool_{n}", conv(head, head, k, st, pad, groups=head, bias=False))
                    self.add_module(f"norm_{n}", nn.LayerNorm(head))
        self.channels, self.heads, self.dim, self.sr = channels, heads, dim, sr
        self.window = None if window is None else axes(window, rank)
        self.grid = None if grid is None else axes(grid, rank)
        self.shift = axes(shift or 0, rank) if window is not None else (0,) * rank
        self.rel_pos_bias, self.rel_pos_mlp, self.cosine = rel_pos_bias, rel_pos_mlp, cosine
        group = self.window or self.grid
        self.rel_pos_window = None if rel_pos_window is None else axes(rel_pos_window, rank)
        table_window = self.rel_pos_window or group
        if sr > 1:
            self.q = nn.Linear(channels, dim, bias=qkv_bias)
            self.kv = nn.Linear(channels, 2 * dim, bias=qkv_bias)
            self.reduce = nd((channels, *(1,) * rank), nn.Conv1d, nn.Conv2d, nn.Conv3d)(
                channels, channels, sr, sr
            )
            self.norm = nn.LayerNorm(channels)
        else:
            self.qkv = nn.Linear(channels, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, self.out, bias=proj_bias)
        if rel_pos_bias:
            rows = math.prod(2 * w - 1 for w in table_window)
            self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        if rel_pos_mlp:
            self.cpb_mlp = nn.Sequential(
                nn.Linear(rank, rel_pos_mlp), nn.ReLU(inplace=True), nn.Linear(rel_pos_mlp, heads, bias=False)
            )
            self.register_buffer("relative_coords_table", relative_coords_table(group))
        if rel_pos_bias or rel_pos_mlp:
            self.register_buffer("relative_position_index", relative_position_index(table_window))
        if rel_pos_axes:
            if self.size is None:
                raise ValueError("rel_pos_axes needs the map's size")
            q_map, k_map = (self._pooled_size(self.pool[w]) for w in ("q", "kv"))
            for i, (nq, nk) in enumerate(zip(q_map, k_map)):
                table = nn.Parameter(torch.zeros(2 * max(nq, nk) - 1, head))
                nn.init.trunc_normal_(table, std=0.02)
                self.register_parameter(f"rel_pos_{i}", table)
        if cosine:
            self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))

    def _pooled_size(self, pool) -> tuple:
        if pool is None:
            return self.size
        return tuple((n + 2 * (k // 2) - k) // s + 1 for n, k, s in zip(self.size, *pool))

    @property
    def qkv_bias(self) -> bool:
        return (self.q if self.sr > 1 else self.qkv).bias is not None

    def extra_repr(self):
        return (
            f"heads={self.heads}, dim={self.dim}, window={self.window}, shift={self.shift}, "
            f"grid={self.grid}, sr={self.sr}"
        )

    def forward(self, x):
        if self.pool["q"] is not None or self.pool["kv"] is not None or self.rel_pos_axes:
            return self._pooling(x)
        if self.window is not None or self.grid is not None:
            return self._windowed(x)
        tokens = x.flatten(2).transpose(1, 2)  # [B, N, C]
        if self.sr > 1:
            reduced = self.norm(self.reduce(x).flatten(2).transpose(1, 2))  # [B, N_k, C]
            q = self.q(tokens)
            k, v = self.kv(reduced).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        out = self._attend(q, k, v).transpose(1, 2)
        return out.reshape(x.shape[0], self.out, *x.shape[2:])

    def _attend(self, q, k, v, bias=None, mask=None):
        """[B', N_q, dim] queries, [B', N_k, dim] keys and values -> [B', N_q, C]."""
        b, nq, nk, h = q.shape[0], q.shape[1], k.shape[1], self.heads
        d = self.dim // h
        q = q.reshape(b, nq, h, d).transpose(1, 2)
        k = k.reshape(b, nk, h, d).transpose(1, 2)
        v = v.reshape(b, nk, h, d).transpose(1, 2)
        if self.cosine:  # Swin v2: cosine similarity times a learned scale per head (at most 100)
            attn = torch.matmul(F.normalize(q, dim=-1), F.normalize(k, dim=-1).transpose(-2, -1))
            attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        else:
            attn = torch.matmul(q * d**-0.5, k.transpose(-2, -1))  # [B', h, N_q, N_k]
        if bias is not None:
            attn = attn + bias
        if mask is not None:  # [windows, N_q, N_k], the same for every image
            attn = (attn.unflatten(0, (-1, mask.shape[0])) + mask[None, :, None]).flatten(0, 1)
        out = torch.matmul(attn.softmax(dim=-1), v)  # [B', h, N_q, d]
        return self.proj(out.transpose(1, 2).reshape(b, nq, self.dim))

    def _windowed(self, x):
        """Attention inside (shifted) windows, or among the units of a grid (a window whose
        units lie ``size / grid`` apart)."""
        batch, c, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
        rank = len(spatial)
        if self.grid is not None:  # a window of grid units: every (size / grid)-th
            window = self.grid
            split = [v for n, g in zip(spatial, window) for v in (g, n // g)]
            order = [0, *(2 + 2 * i for i in range(rank)), *(1 + 2 * i for i in range(rank)), 2 * rank + 1]
            y = x.movedim(1, -1).reshape(batch, *split, c).permute(order)
            y = y.reshape(batch * math.prod(spatial) // math.prod(window), math.prod(window), c)
            out = self._attend(*self.qkv(y).chunk(3, dim=-1), self._bias(window))
            out = out.reshape(batch, *(split[1::2]), *window, c).permute(_inverse(order))
            return out.reshape(batch, *spatial, c).movedim(-1, 1)
        window = self.window
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
        bias, mask = self._bias(window), None
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

    def _pooling(self, x):
        """MViT's pooling attention on a map [B, C, *size] or tokens [B, C, n + N] (the last N
        a ``size`` map's positions; the n class tokens are not pooled)."""
        b, c = x.shape[:2]
        if x.dim() > 3:
            size, tokens = tuple(x.shape[2:]), x.flatten(2).transpose(1, 2)
        else:
            size, tokens = self.size, x.transpose(1, 2)
        n, h = tokens.shape[1], self.heads
        cls, d = n - math.prod(size), self.dim // h
        q, k, v = self.qkv(tokens).reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)  # [B, h, N, d]
        k_size = q_size = size
        if self.pool["kv"] is not None:
            k, k_size = self._pool_tokens(k, "k", size, cls)
            v, _ = self._pool_tokens(v, "v", size, cls)
        if self.pool["q"] is not None:
            q, q_size = self._pool_tokens(q, "q", size, cls)
        attn = torch.matmul(q * d**-0.5, k.transpose(-2, -1))  # [B, h, N_q, N_k]
        if self.rel_pos_axes:
            attn = attn.clone()
            attn[:, :, cls:, cls:] += self._rel_pos(q[:, :, cls:], q_size, k_size)
        out = torch.matmul(attn.softmax(dim=-1), v)
        if self.residual_pool:
            out = torch.cat([out[:, :, :cls], out[:, :, cls:] + q[:, :, cls:]], dim=2)
        out = self.proj(out.transpose(1, 2).reshape(b, -1, self.dim)).transpose(1, 2)  # [B, out, N_q]
        return out if x.dim() == 3 else out.reshape(b, self.out, *q_size)

    def _pool_tokens(self, t, name, size, cls):
        """[B, h, n + N, d] -> pooled by ``pool_<name>`` over the map, the class tokens kept,
        then ``norm_<name>`` (MViT's Pool)."""
        b, h, _, d = t.shape
        head, rest = t[:, :, :cls], t[:, :, cls:]
        pooled = self.get_submodule(f"pool_{name}")(rest.reshape(b * h, *size, d).movedim(-1, 1))
        new = tuple(pooled.shape[2:])
        pooled = pooled.reshape(b, h, d, -1).transpose(2, 3)
        return self.get_submodule(f"norm_{name}")(torch.cat([head, pooled], dim=2)), new

    def _rel_pos(self, q, q_size, k_size):
        """MViT v2's decomposed relative position: [B, h, prod(q map), prod(k map)], the sum
        over the axes of each query dotted with its table's row for every key coordinate."""
        b, h, _, d = q.shape
        rank = len(q_size)
        q = q.reshape(b, h, *q_size, d)
        total = 0
        for i, (nq, nk) in enumerate(zip(q_size, k_size)):
            table = self.get_parameter(f"rel_pos_{i}")
            ratio_q, ratio_k = max(nk / nq, 1.0), max(nq / nk, 1.0)
            dist = torch.arange(nq)[:, None] * ratio_q - (torch.arange(nk)[None, :] + 1.0 - nk) * ratio_k
            rows = table[dist.long().to(table.device)]  # [q_i, k_i, d]
            # each query position along axis i times its rows: a batched matrix product
            moved = q.movedim(2 + i, 0)  # [q_i, B, h, ..., d]
            rel = torch.matmul(moved.reshape(nq, -1, d), rows.transpose(1, 2))  # [q_i, M, k_i]
            rel = rel.reshape(*moved.shape[:-1], nk).movedim(0, 2 + i)  # [B, h, *q_size, k_i]
            shape = [b, h, *q_size] + [nk if j == i else 1 for j in range(rank)]
            total = total + rel.reshape(shape)
        return total.reshape(b, h, math.prod(q_size), math.prod(k_size))

    def _bias(self, window):
        """The relative position bias [heads, area, area]: looked up in the table (Swin v1,
        MaxViT) or computed by the MLP from the relative coordinates (Swin v2); None."""
        area = math.prod(window)
        if self.rel_pos_bias:
            table = self.relative_position_bias_table
        elif self.rel_pos_mlp:
            table = self.cpb_mlp(self.relative_coords_table)
        else:
            return None
        index = self.relative_position_index
        if index.numel() != area * area:  # a table for a larger window: its index's first rows,
            big = math.isqrt(index.numel())  # as torchvision's video Swin reads them
            index = index.view(big, big)[:area, :area].flatten()
        bias = table[index].reshape(area, area, self.heads).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias) if self.rel_pos_mlp else bias

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


def _inverse(order) -> list:
    return sorted(range(len(order)), key=order.__getitem__)


class MatMul(nn.Module):
    """cnnstat ``matmul``: ``torch.matmul(a, b)`` of two channels-first tensors."""

    def forward(self, a, b):
        return torch.matmul(a, b)


# --- build ------------------------------------------------------------------------------------


@builds("attention")
def _build_attention(a, shapes):
    shape = shapes[0]
    size = a["size"]
    pooling = any(a[k] for k in ("pool_q", "pool_kv", "rel_pos_axes", "residual_pool"))
    if pooling and len(shape) > 2:
        size = tuple(shape[1:])
    elif pooling and size is None:
        raise CnnstatError(
            "attention: give 'size' (the tokens' map) to build it in torch (its default is known to "
            "the analysis only)"
        )
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
        rank=len(size) if pooling else len(shape) - 1,
        rel_pos_mlp=a["rel_pos_mlp"],
        grid=a["grid"],
        cosine=a["cosine"],
        out=a["out"],
        pool_q=a["pool_q"],
        pool_q_stride=a["pool_q_stride"],
        pool_kv=a["pool_kv"],
        pool_kv_stride=a["pool_kv_stride"],
        rel_pos_axes=a["rel_pos_axes"],
        residual_pool=a["residual_pool"],
        size=size,
        rel_pos_window=a["rel_pos_window"],
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
        "rel_pos_mlp": m.rel_pos_mlp,
        "grid": m.grid,
        "cosine": m.cosine,
        "sr": m.sr,
        "out": m.out,
        "pool_q": m.pool["q"] and m.pool["q"][0],
        "pool_q_stride": m.pool["q"][1] if m.pool["q"] else 1,
        "pool_kv": m.pool["kv"] and m.pool["kv"][0],
        "pool_kv_stride": m.pool["kv"][1] if m.pool["kv"] else 1,
        "rel_pos_axes": m.rel_pos_axes,
        "residual_pool": m.residual_pool,
        "size": m.size if call.args[0].dim() == 3 else None,
        "rel_pos_window": m.rel_pos_window,
    }
    rec.emit(call, "attention", a, [rec.ref(call.args[0])])


def _m_matmul(rec, call):
    rec.emit(call, "matmul", {}, [rec.ref(t) for t in call.args])


def _f_matmul(rec, call):
    """``a @ b`` (torch.matmul, bmm) of two followed tensors of one rank (3 or more), their
    leading axes equal (no broadcasting): cnnstat's ``matmul`` on their shapes as torch has
    them, prod(leading) x m x k x n MACs per sample, as FlopCounterMode's bmm. Their first
    axis must be the traced batch, so that the per-sample shapes are the rest; a product with
    a parameter or a constant, broadcasting, or 2-D operands are not understood."""
    a, b = call.arg(0, "input"), call.arg(1, "other" if call.fname == "matmul" else "mat2")
    refs = [rec.ref(t) if is_tensor(t) else None for t in (a, b)]
    if any(r is None for r in refs):
        return rec.unsupported_call(call, "a product with a parameter or a constant")
    if a.dim() < 3 or a.dim() != b.dim() or not int(a.shape[0]) == int(b.shape[0]) == rec.batch:
        return rec.unsupported_call(call, "operands of other ranks, or not batch first")
    rec.emit(call, "matmul", {}, refs)


def _f_sdpa(rec, call):
    """F.scaled_dot_product_attention(q, k, v) of followed tensors [B, ..., N, d], their
    leading axes equal (batch first): softmax(q k^T / sqrt(d)) v as the two products
    cnnstat's ``matmul`` counts, q @ k^T then the scores @ v -- per sample
    prod(leading) x N_q x N_k x (d + d_v) MACs, FlopCounterMode's count (the softmax and the
    scaling are element-wise: 0 MACs). k^T is k's values read transposed (a view). A mask,
    causal attention, or heads broadcast (grouped or multi-query attention) are not
    understood: unsupported."""
    from cnnstat.torch.recorder import Ref, sample_shape

    q, k, v = call.arg(0, "query"), call.arg(1, "key"), call.arg(2, "value")
    mask = call.arg(3, "attn_mask") if len(call.args) > 3 or "attn_mask" in call.kwargs else None
    causal = call.arg(5, "is_causal") if len(call.args) > 5 or "is_causal" in call.kwargs else False
    if is_tensor(mask) or causal or call.kwargs.get("enable_gqa"):
        return rec.unsupported_call(call, "with a mask, causal or grouped")
    refs = [rec.ref(t) if is_tensor(t) else None for t in (q, k, v)]
    if any(r is None for r in refs):
        return rec.unsupported_call(call, "reads a parameter or a constant")
    lead = tuple(q.shape[:-2])
    if (
        q.dim() < 3
        or tuple(k.shape[:-2]) != lead
        or tuple(v.shape[:-2]) != lead
        or int(q.shape[0]) != rec.batch
    ):
        return rec.unsupported_call(
            call, "queries, keys and values of other leading axes, or not batch first"
        )
    kt = k.transpose(-2, -1)
    rec.bind(kt, Ref(refs[1].name, sample_shape(kt), refs[1].rf))
    scores = torch.empty(*q.shape[:-1], k.shape[-2], device=q.device, dtype=q.dtype)
    rec.emit(call, "matmul", {}, [refs[0], rec.ref(kt)], out=scores)
    if rec.ref(scores) is not None:
        rec.emit(call, "matmul", {}, [rec.ref(scores), refs[2]])


FUNCTIONS["matmul"] = FUNCTIONS["bmm"] = _f_matmul
FUNCTIONS["scaled_dot_product_attention"] = _f_sdpa
MODULES[SelfAttention] = _m_attention
MODULES[MatMul] = _m_matmul
