"""Multi-head self-attention (ViT, Swin, PVT) and the matrix product it is made of.

Conventions: the projections are linear layers (MACs = tokens x inputs x outputs, biases not
MACs); the attention itself is two matrix products, Q.K^T and A.V, of N_q x N_k x dim MACs
each; the 1/sqrt(d) scaling, the softmax, masks and relative position biases count 0. These
are the multiply-accumulates PyTorch's FlopCounterMode counts (FLOPs = 2 x MACs).
"""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import RF, Arg, Cost, Op, per_axis, prod, register
from cnnstat.ops.tokens import token_map, with_extent


def _dims(values) -> str:
    return "x".join(str(v) for v in values)


def global_rf(rf: RF) -> RF:
    """Every unit sees the whole input: :meth:`RF.collapse` (already collapsed: unchanged)."""
    return rf if rf.collapsed or not rf.size else rf.collapse()


def window_reads(window: int, shift: int, size: int) -> tuple:
    """The input units that output unit ``r`` of one period (``window`` units) reads along one
    axis of ``size`` units, as torchvision's ``shifted_window_attention`` partitions it.

    The map is padded at its end to ``P`` units, a multiple of ``window``, and rolled by
    ``-shift``: window ``n`` of the rolled map holds units ``n w + shift .. n w + shift + w - 1``
    (mod P), and the mask keeps apart the units the roll brought together (the last window's,
    from the map's end and from its start). So unit ``u`` attends to the ``w`` units from
    ``u - (u - shift) mod w``, the aligned windows moved by ``shift``; the first group holds
    only units ``0 .. shift - 1`` and the last ends at ``P - 1``. The reads are periodic: at the
    map's ends they reach past it, as a convolution's field reaches into its padding (clipped to
    the map, they are torchvision's groups). No shift where one window covers the padded map
    (``size <= window``), as torchvision."""
    shift = shift if size > window else 0
    firsts = (r - (r - shift) % window for r in range(window))
    return tuple(range(f, f + window) for f in firsts)


def window_rf(rf: RF, window: tuple, shift: tuple, spatial: tuple) -> RF:
    """The field after attention in (shifted) windows: a unit's field is the union of the
    fields of the units of its window (:func:`window_reads`), tracked exactly per phase by
    :meth:`RF.upsample` with factor 1 and a period of one window."""
    rank = len(window)
    reads = tuple(window_reads(w, s, n) for w, s, n in zip(window, shift, spatial))
    return rf.upsample(window, (1,) * rank, (0,) * rank, rf.extent, reads)


def grid_rf(rf: RF, grid: tuple, spatial: tuple) -> RF:
    """The field after grid attention (MaxViT): along an axis of ``size`` units split into
    ``g`` cells of ``s = size / g`` units, unit ``u`` attends to units ``u mod s + m s``,
    m < g, so its field is the union of theirs: every unit's field spans the map but for
    the first ``u mod s`` and last ``s - 1 - u mod s`` units, tracked exactly (a period of
    the whole map, one read pattern per unit)."""
    rank = len(grid)
    reads = tuple(tuple(range(u % (n // g), n, n // g) for u in range(n)) for g, n in zip(grid, spatial))
    spans = tuple(n - n // g + 1 for g, n in zip(grid, spatial))  # first to last unit read
    return rf.upsample(spans, (1,) * rank, (0,) * rank, rf.extent, reads)


POOLING = ("pool_q", "pool_kv", "rel_pos_axes", "residual_pool")


@register
class Attention(Op):
    """Multi-head self-attention over all positions of [D, N] tokens or a [C, *spatial] map;
    the output has the input's positions (with pooling, the pooled queries') and ``out``
    channels (default C). ``dim`` (default C) is the width of queries, keys and values,
    split over ``heads``; the output projection maps it to ``out``.

    Weights: qkv 3 x C x dim (+ 3 x dim biases with ``qkv_bias``), proj dim x C (+ C with
    ``proj_bias``). MACs, N positions: N x C x 3dim + N x dim x C (projections)
    + 2 x N x N_k x dim (Q.K^T and A.V; N_k = N globally).

    - ``window`` (Swin): attention inside non-overlapping windows of a map. The map is padded
      up to a multiple of the window (as torchvision's Swin does) and every MAC is counted at
      the padded size N_p: N_p x C x 4dim + 2 x N_p x window area x dim. ``shift`` (shifted
      windows: a cyclic roll and a mask) costs the same. ``rel_pos_bias``: Swin v1's learned
      relative position bias, a table of prod(2w - 1) x heads weights (plus the index, window
      area^2 buffer entries); ``rel_pos_window``: the table and index sized for a larger
      window than the one used (Video Swin on a map smaller than its window: torchvision
      shrinks the window to the map and keeps the table it was built with, reading the first
      rows of its index). ``rel_pos_mlp: hidden`` (Swin v2's continuous position bias):
      the bias comes from an MLP, Linear(rank, hidden) + ReLU + Linear(hidden, heads) without
      bias, run once per call on the constant table of the prod(2w - 1) relative coordinates
      (rank x hidden + hidden x heads weights + hidden biases; buffers: the table, rank
      entries per row, and the index, area^2); its MACs, prod(2w - 1) x (rank x hidden +
      hidden x heads), are counted in this layer, as PyTorch's FlopCounterMode counts them
      (and torchvision's published figures, which are FlopCounterMode's).
    - ``grid`` (MaxViT's grid attention): attention among the g units (per axis) spaced
      size / g apart, the map split into a g x ... grid of cells and each unit attending to
      the units at its offset in every cell (a dilated window); the map must be a multiple
      of g. It costs what ``window: g`` costs (N x C x 4dim + 2 x N x prod(g) x dim), with
      ``rel_pos_bias`` (or ``rel_pos_mlp``) sized by g.
    - ``cosine`` (Swin v2): cosine similarity of queries and keys times a learned per-head
      logit scale: + heads weights; the normalisation and scaling count 0 MACs, as softmax.
    - Pooling attention (MViT): on a map [C, *size], or on tokens [C, n + N] whose last N
      are a map's positions (its ``size``: by default the tokens' own map, the receptive
      field's extent; the first n, class tokens, are not pooled). ``pool_q`` / ``pool_kv``:
      the queries / the keys and values pooled by a depthwise convolution of that kernel,
      padding k // 2, stride ``pool_q_stride`` / ``pool_kv_stride``, whose weights (head_dim
      x prod(k), no bias) the heads share, followed by a layer norm over head_dim (2 x head_dim
      parameters); N_q, N_k: n + the pooled maps' positions. MACs: (n + N) x C x 3dim (qkv)
      + dim x N_pooled x prod(k) per pooling (one for q, two for k and v) + 2 x N_q x N_k x dim
      + N_q x dim x out. ``rel_pos_axes`` (MViT v2): a relative position table per axis,
      (2 max(q_i, k_i) - 1) x head_dim weights, each query's position dotted with its row for
      every key coordinate of that axis: dim x prod(q map) x sum(k map) MACs (the einsums
      and matrix product torchvision runs). ``residual_pool`` (MViT v2): the pooled queries
      added to the output (0 MACs). The output is [out, N_q] tokens (or the pooled map);
      its receptive field is the whole input, its extent the queries' map (for the next
      block's ``size``).
    - ``out``: the output projection's width (dim x out weights; default C).
    - ``sr`` (PVT's spatial reduction): keys and values come from the map reduced by a
      convolution k = s = sr (C x C x sr^2 weights + C biases, N_k x C x C x sr^2 MACs)
      followed by a layer norm (C weights + C biases), both counted in this layer; N_k =
      prod(floor(size / sr)); queries cost N x C x dim, keys and values N_k x C x 2dim.

    Kind fc: its weights are linear projections (with ``sr`` the reduction convolution's
    and the norm's are counted here too, in this one layer).

    Receptive field: global attention (and ``sr``) gives every unit the whole input
    (collapsed, as global pooling does; a residual ``add`` keeps the field of its other
    branch, as for a squeeze-excitation gate, and ``to_map`` right after the attention needs
    its ``size``). With windows, per axis: a unit attends to every unit of its window, so its
    field is the union of theirs, tracked exactly per phase (:func:`window_rf`; with ``grid``
    unit ``u`` reads units ``u mod s`` + multiples of s = size / g, a period of the whole
    map: :func:`grid_rf`). Unshifted,
    unit ``u`` reads units ``u - u mod w .. u - u mod w + w - 1``; shifted, the windows move
    by ``shift``: ``u - (u - shift) mod w`` onwards (torchvision rolls the map by ``-shift``
    and masks what the roll brings together, so no window wraps around; no shift where one
    window covers the map). The padding to whole windows is read as a convolution reads its
    padding. Fields then differ from unit to unit: ``size`` is the largest any unit has (an
    SW-MSA window after a W-MSA straddles two of its windows: 2w units where sliding windows
    would give 2w - 1), ``start`` the mean over a window of each unit's field centre less
    ``unit x jump``. Masked pairs (torchvision's -100 logits, a weight of about e^-100) count
    as not attending.
    """

    name = "attention"
    aliases = ("mhsa", "self_attention")
    kind = "fc"
    args = (
        Arg("heads", "int", aliases=("num_heads",), min=1, help="attention heads"),
        Arg("dim", "int", None, aliases=("inner_dim",), min=1, help="width of q, k, v (default: C)"),
        Arg("qkv_bias", "bool", True, help="biases of the q, k, v projections"),
        Arg("proj_bias", "bool", True, help="bias of the output projection"),
        Arg("window", "axes", None, aliases=("window_size",), help="window size (Swin), int or per axis"),
        Arg("shift", "axes", 0, aliases=("shift_size",), help="window shift (Swin), int or per axis"),
        Arg("rel_pos_bias", "bool", False, help="Swin's relative position bias table"),
        Arg(
            "rel_pos_window",
            "axes",
            None,
            help="the window rel_pos_bias's table is sized for (default: window)",
        ),
        Arg("rel_pos_mlp", "int", None, min=1, help="hidden width of Swin v2's position-bias MLP"),
        Arg("grid", "axes", None, aliases=("grid_size",), help="grid attention (MaxViT): units per axis"),
        Arg("cosine", "bool", False, help="cosine attention with a learned logit scale (Swin v2)"),
        Arg("sr", "int", 1, aliases=("sr_ratio",), min=1, help="spatial reduction of keys/values (PVT)"),
        Arg("out", "int", None, min=1, help="output width of the projection (default: C)"),
        Arg("pool_q", "axes", None, help="MViT: kernel of the queries' pooling convolution"),
        Arg("pool_q_stride", "axes", 1, help="MViT: its stride"),
        Arg("pool_kv", "axes", None, help="MViT: kernel of the keys' and values' pooling convolutions"),
        Arg("pool_kv_stride", "axes", 1, help="MViT: their stride"),
        Arg("rel_pos_axes", "bool", False, help="MViT v2's relative position, one table per axis"),
        Arg("residual_pool", "bool", False, help="MViT v2: the pooled queries added to the output"),
        Arg("size", "axes", None, help="MViT: the map of the tokens (default: the tokens' own map)"),
    )

    def infer(self, a, shapes, rfs):
        shape, rf = shapes[0], rfs[0]
        if len(shape) < 2:
            raise OpError(f"attention needs tokens [D, N] or a map [C, H, W], got {list(shape)}")
        c, spatial = shape[0], shape[1:]
        rank, n = len(spatial), prod(spatial)
        dim, heads, sr = a["dim"] or c, a["heads"], a["sr"]
        if dim % heads:
            raise OpError(f"heads={heads} must divide the width {dim}")
        if any(a[k] for k in POOLING):
            return self._pooled(a, shape, rf, dim)
        if a["size"] is not None:
            raise OpError("'size' (the tokens' map) is for pooling attention: give 'pool_q' or 'pool_kv'")
        out_c = a["out"] or c
        windowed, grid = a["window"] is not None, a["grid"] is not None
        local = windowed or grid  # attention inside groups of a map
        if (local or sr > 1) and rf.size and len(rf.size) != rank:
            what = "window" if windowed else "grid" if grid else "sr"
            raise OpError(f"'{what}' over tokens of a {_dims(rf.extent)} map: give it the map (to_map first)")
        shift = per_axis(a["shift"], rank, "shift")
        if any(shift) and not windowed:
            raise OpError("'shift' needs 'window'")
        for what in ("rel_pos_bias", "rel_pos_mlp"):
            if a[what] and not local:
                raise OpError(f"'{what}' needs 'window' or 'grid' (its table is sized by it)")
        if a["rel_pos_bias"] and a["rel_pos_mlp"]:
            raise OpError("'rel_pos_bias' (a table) and 'rel_pos_mlp' (an MLP) are two biases: use one")
        if windowed and grid:
            raise OpError("'window' and 'grid' do not combine: use one")
        if local and sr > 1:
            raise OpError(f"'{'window' if windowed else 'grid'}' and 'sr' do not combine: use one")

        weights = 3 * c * dim + dim * out_c + (heads if a["cosine"] else 0)
        biases = (3 * dim if a["qkv_bias"] else 0) + (out_c if a["proj_bias"] else 0)
        buffers = 0
        if local:
            what = "window" if windowed else "grid"
            w = per_axis(a[what], rank, what)
            if any(v < 1 for v in w):
                raise OpError(f"'{what}' must be at least 1, got {list(w)}")
            if windowed:
                if any(not 0 <= s < v for s, v in zip(shift, w)):
                    raise OpError(f"'shift' {list(shift)} must be within [0, window {list(w)})")
                padded = prod(-(-s // v) * v for s, v in zip(spatial, w))
            else:
                if any(s % v for s, v in zip(spatial, w)):
                    raise OpError(f"the map {_dims(spatial)} is not a multiple of the grid {_dims(w)}")
                padded = n
            area = prod(w)
            macs = padded * c * 3 * dim + 2 * padded * area * dim + padded * dim * out_c
            rows = prod(2 * v - 1 for v in w)  # relative offsets
            if a["rel_pos_bias"]:
                table = per_axis(a["rel_pos_window"] or w, rank, "rel_pos_window")
                if any(t < v for t, v in zip(table, w)):
                    raise OpError(f"'rel_pos_window' {list(table)} is smaller than the window {list(w)}")
                weights += prod(2 * v - 1 for v in table) * heads
                buffers += prod(table) ** 2
            elif a["rel_pos_window"] is not None:
                raise OpError("'rel_pos_window' sizes the table of 'rel_pos_bias': give it")
            if a["rel_pos_mlp"]:
                hidden = a["rel_pos_mlp"]
                weights += rank * hidden + hidden * heads
                biases += hidden
                buffers += rows * rank + area * area
                macs += rows * (rank * hidden + hidden * heads)
            if rf.collapsed:
                out_rf = rf
            elif windowed:
                out_rf = window_rf(rf, w, shift, spatial)
            else:
                out_rf = grid_rf(rf, w, spatial)
        elif sr > 1:
            reduced = tuple(s // sr for s in spatial)
            if min(reduced) < 1:
                raise OpError(f"the map {_dims(spatial)} is smaller than sr={sr}")
            nk, kk = prod(reduced), sr**rank
            weights += c * c * kk + c  # reduction conv, norm's scale
            biases += c + c  # conv's bias, norm's shift
            macs = n * c * dim + nk * c * 2 * dim + nk * c * c * kk + 2 * n * nk * dim + n * dim * out_c
            out_rf = global_rf(rf)
        else:
            macs = n * c * 3 * dim + 2 * n * n * dim + n * dim * out_c
            out_rf = global_rf(rf)
        cost = Cost(weights=weights, biases=biases, buffers=buffers, macs=macs)
        return (out_c, *spatial), cost, out_rf

    def _pooled(self, a, shape, rf, dim):
        """Pooling attention (MViT): see the class docstring."""
        c, heads = shape[0], a["heads"]
        for what in ("window", "grid", "rel_pos_bias", "rel_pos_window", "rel_pos_mlp", "cosine"):
            if a[what]:
                raise OpError(f"'{what}' does not combine with pooling attention (pool_q, pool_kv)")
        if a["sr"] > 1:
            raise OpError("'sr' does not combine with pooling attention (pool_q, pool_kv)")
        if len(shape) > 2:  # a map: no class tokens
            size, cls = tuple(shape[1:]), 0
            if a["size"] is not None and per_axis(a["size"], len(size), "size") != size:
                raise OpError(f"'size' {_dims(per_axis(a['size'], len(size), 'size'))} is not the map's")
        else:
            size, cls = token_map(a, shape, rf)
        rank, head = len(size), dim // heads
        out_c = a["out"] or c

        def pooled(kernel, stride, what):
            if kernel is None:
                return size, 1
            k, s = per_axis(kernel, rank, what), per_axis(stride, rank, f"{what}_stride")
            if any(v < 1 for v in k + s):
                raise OpError(f"'{what}' and its stride must be at least 1, got {list(k)}, {list(s)}")
            return tuple((n + 2 * (v // 2) - v) // t + 1 for n, v, t in zip(size, k, s)), prod(k)

        q_map, kq = pooled(a["pool_q"], a["pool_q_stride"], "pool_q")
        kv_map, kkv = pooled(a["pool_kv"], a["pool_kv_stride"], "pool_kv")
        if min(q_map + kv_map) < 1:
            raise OpError(f"pooling the {_dims(size)} map leaves no position")
        nq, nk = cls + prod(q_map), cls + prod(kv_map)
        weights = 3 * c * dim + dim * out_c
        biases = (3 * dim if a["qkv_bias"] else 0) + (out_c if a["proj_bias"] else 0)
        macs = (cls + prod(size)) * c * 3 * dim + 2 * nq * nk * dim + nq * dim * out_c
        for kernel, taps, pooled_map, count in ((a["pool_q"], kq, q_map, 1), (a["pool_kv"], kkv, kv_map, 2)):
            if kernel is not None:  # depthwise convolution shared by the heads, then a layer norm
                weights += count * (head * taps + head)
                biases += count * head
                macs += count * dim * prod(pooled_map) * taps
        if a["rel_pos_axes"]:
            weights += sum(2 * max(q, k) - 1 for q, k in zip(q_map, kv_map)) * head
            macs += dim * prod(q_map) * sum(kv_map)
        out_rf = with_extent(global_rf(rf) if rf.size else rf, q_map)  # the queries' map
        out_shape = (out_c, nq) if len(shape) == 2 else (out_c, *q_map)
        return out_shape, Cost(weights=weights, biases=biases, macs=macs), out_rf


@register
class MatMul(Op):
    """Matrix product of two named branches, in order, over the last two axes of their
    (channels-first) shapes: (..., m, k) @ (..., k, n) -> (..., m, n), leading axes equal
    (no broadcasting). No weights; unlike the other merges it counts MACs:
    prod(leading axes) x m x k x n. It mixes positions: the receptive field becomes the
    whole input (collapsed)."""

    name = "matmul"
    merge = True

    def infer(self, a, shapes, rfs):
        names = a["branches"]
        if len(shapes) != 2:
            raise OpError(f"matmul multiplies two branches, got {len(shapes)}")
        x, y = shapes
        described = f"branch '{names[0]}' is {list(x)}, branch '{names[1]}' is {list(y)}"
        if len(x) < 2 or len(x) != len(y) or x[:-2] != y[:-2] or x[-1] != y[-2]:
            raise OpError(f"{described}: needs (..., m, k) @ (..., k, n)")
        out = (*x[:-1], y[-1])
        rf = next((r for r in rfs if not r.collapsed), rfs[0])
        return out, Cost(macs=prod(x) * y[-1]), global_rf(rf)
