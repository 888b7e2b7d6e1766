"""Import of the transformer modules of torch and torchvision as cnnstat ops (the builders
of these ops are in attention.py and resample.py):

- ``nn.MultiheadAttention`` self-attention on tokens (batch first or not) -> ``attention``;
- torchvision's Swin ``ShiftedWindowAttention`` (v1), ``ShiftedWindowAttentionV2`` and the
  video ``ShiftedWindowAttention3d`` -> ``attention`` with ``window``, ``shift`` and (v1, 3-D)
  ``rel_pos_bias``;
- torchvision's Swin patch merging (``_patch_merging_pad``) -> ``pixel_unshuffle`` (factor 2;
  video Swin's, on [B, T, H, W, C]: factor [1, 2, 2]);
- torchvision's MaxViT ``PartitionAttentionLayer`` -> its per-position calls on the map;
- timm's ``Attention`` (``timm.layers.attention``: ViT, DeiT, PiT, CrossViT's blocks) on
  tokens -> ``attention``;
- timm's Swin ``SwinTransformerBlock`` (v1) -> its per-position calls on the map, the
  attention in shifted windows; its ``PatchMerging`` -> ``pixel_unshuffle``, layer norm,
  linear.

The torchvision classes and functions are looked up by qualified name
(:data:`~cnnstat.torch.ops.base.NAMED_MODULES`), so that mapping them imports nothing. They
run on channels-last tensors [B, *positions, C]: the layer is the op on the channels-first
tensor and torch's output is its output laid out alike (:meth:`Recorder.emit_laid`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from cnnstat.torch.ops.base import MODULES, NAMED_FUNCTIONS, NAMED_MODULES, is_tensor

SWIN = "torchvision.models.swin_transformer"
VIDEO_SWIN = "torchvision.models.video.swin_transformer"
MAXVIT = "torchvision.models.maxvit"
MVIT = "torchvision.models.video.mvit"
TIMM_ATTENTION = "timm.layers.attention"
TIMM_SWIN = "timm.models.swin_transformer"
TIMM_PVT = "timm.models.pvt_v2"
TIMM_TWINS = "timm.models.twins"


def _channels_last(ref, x) -> bool:
    """x [B, *positions, C] is its channels-first base with the channels moved last."""
    _, perm = ref.layout(x.dim())
    n = x.dim()
    return perm == (0, *range(2, n), 1)


def _m_multihead(rec, call):
    """nn.MultiheadAttention(x, x, x): self-attention over tokens [B, N, D] (batch_first) or
    [N, B, D], where D holds the channels of [D, N] tokens. Its parameters are attention's:
    in_proj (3 D x D, + 3 D biases) and out_proj (D x D + D). Cross-attention, separate key
    and value widths, bias_k/bias_v, add_zero_attn and masks are not an op of cnnstat."""
    m = call.module
    q = call.arg(0, "query")
    k, v = call.arg(1, "key"), call.arg(2, "value")
    masks = [call.kwargs.get(n) for n in ("key_padding_mask", "attn_mask")] + list(call.args[4:5])
    if k is not q or v is not q:
        return rec.unsupported_call(call, "attends to other keys or values (cnnstat: self-attention)")
    if any(is_tensor(t) for t in masks) or call.kwargs.get("is_causal") or len(call.args) > 5:
        return rec.unsupported_call(call, "with a mask")
    if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
        return rec.unsupported_call(call, "separate key/value widths, bias_k/bias_v or add_zero_attn")
    ref = rec.ref(q)
    if ref is None or q.dim() != 3:
        return rec.unsupported_call(call, "on a tensor cnnstat does not follow")
    base, perm = ref.layout(q.dim())
    want = (0, 2, 1) if m.batch_first else (2, 0, 1)
    if perm != want or len(base.shape) != 2:
        return rec.unsupported_call(
            call, f"on a {list(ref.shape)} tensor whose last axis is not the features of [D, N] tokens"
        )
    a = {
        "heads": m.num_heads,
        "dim": m.embed_dim,
        "qkv_bias": m.in_proj_bias is not None,
        "proj_bias": m.out_proj.bias is not None,
    }
    out = call.out[0] if isinstance(call.out, (tuple, list)) else call.out
    # the averaged attention weights (need_weights=True), call.out[1], are not followed
    rec.emit_laid(call, "attention", a, [ref], out=out)


def _m_timm_attention(rec, call):
    """timm's ``Attention`` (ViT and kin) on tokens [B, N, C], the channels of [C, N] tokens
    moved last: ``qkv`` = Linear(C, 3 dim), softmax(q k^T / sqrt(d)) v per head, ``proj`` =
    Linear(dim, out): cnnstat's ``attention`` (heads, dim, out). A mask, causal attention,
    a gate, q/k normalisation or a norm before ``proj`` (modules other than ``nn.Identity``)
    are not that op: unsupported."""
    m = call.module
    x = call.arg(0, "x")
    mask = call.arg(1, "attn_mask") if len(call.args) > 1 or "attn_mask" in call.kwargs else None
    causal = call.arg(2, "is_causal") if len(call.args) > 2 or "is_causal" in call.kwargs else False
    if is_tensor(mask) or causal:
        return rec.unsupported_call(call, "with a mask or causal")
    extras = [getattr(m, n, None) for n in ("q_norm", "k_norm", "norm")]
    if getattr(m, "gate", None) is not None or any(
        e is not None and not isinstance(e, nn.Identity) for e in extras
    ):
        return rec.unsupported_call(call, "a gate or q/k/output normalisation (cnnstat's attention has none)")
    ref = rec.ref(x)
    if ref is None or x.dim() != 3:
        return rec.unsupported_call(call, "on a tensor cnnstat does not follow")
    base, perm = ref.layout(3)
    if perm != (0, 2, 1) or len(base.shape) != 2:
        return rec.unsupported_call(
            call, f"on a {list(ref.shape)} tensor whose last axis is not the features of [D, N] tokens"
        )
    channels = int(x.shape[-1])
    dim = m.qkv.out_features // 3
    a = {
        "heads": m.num_heads,
        "dim": dim,
        "qkv_bias": m.qkv.bias is not None,
        "proj_bias": m.proj.bias is not None,
    }
    if m.proj.out_features != channels:
        a["out"] = m.proj.out_features
    rec.emit_laid(call, "attention", a, [ref])


def _window(rec, call, window, shift, rel_pos_bias: bool, **more):
    """A Swin block's window attention on x [B, *positions, C] (channels last); ``more``:
    further arguments of the op (Swin v2's ``rel_pos_mlp``, ``cosine``)."""
    m = call.module
    x = call.args[0] if call.args else call.kwargs["x"]
    ref = rec.ref(x)
    if ref is None or not _channels_last(ref, x):
        return rec.unsupported_call(call, "on a tensor that is not a map with its channels last")
    a = {
        "heads": m.num_heads,
        "qkv_bias": m.qkv.bias is not None,
        "proj_bias": m.proj.bias is not None,
        "window": tuple(int(v) for v in window),
        "shift": tuple(int(v) for v in shift),
        "rel_pos_bias": rel_pos_bias,
        **more,
    }
    rec.emit_laid(call, "attention", a, [ref])


def _m_swin(rec, call):
    """torchvision's ShiftedWindowAttention (Swin v1): window, shift and the relative
    position bias table ((2w - 1)^2 x heads) with its index buffer (w^4 entries)."""
    m = call.module
    _window(rec, call, m.window_size, m.shift_size, True)


def _m_swin_v2(rec, call):
    """torchvision's ShiftedWindowAttentionV2 (Swin v2): attention in shifted windows, cosine
    (a logit scale per head) and its continuous position bias, ``cpb_mlp`` = Linear(2, hidden),
    ReLU, Linear(hidden, heads) without bias, run on the constant table of relative
    coordinates: ``rel_pos_mlp: hidden``, its MACs in the layer. Another MLP has other
    parameters than the op's, and the recorder refuses it (an opaque layer)."""
    m = call.module
    first = m.cpb_mlp[0] if isinstance(m.cpb_mlp, nn.Sequential) and len(m.cpb_mlp) else None
    if not isinstance(first, nn.Linear) or len(m.cpb_mlp) != 3:
        return rec.unsupported_call(call, "a position-bias MLP other than Linear, ReLU, Linear")
    hidden = first.out_features
    _window(rec, call, m.window_size, m.shift_size, False, rel_pos_mlp=hidden, cosine=True)


def _m_swin3d(rec, call):
    """torchvision's video ShiftedWindowAttention3d: window and shift over (T, H, W), each
    shrunk to the map where the map is smaller (as torchvision does: the window becomes the
    map, no shift), and the relative position bias table, sized for the window it was built
    with (``rel_pos_window`` where the window shrank)."""
    m = call.module
    x = call.args[0] if call.args else call.kwargs["x"]
    size = tuple(int(v) for v in x.shape[1:-1])
    window, shift = list(m.window_size), list(m.shift_size)
    for i, s in enumerate(size):
        if s <= window[i]:
            window[i], shift[i] = s, 0
    more = {} if window == list(m.window_size) else {"rel_pos_window": tuple(m.window_size)}
    _window(rec, call, window, shift, True, **more)


def _f_patch_merging_pad(rec, call):
    """torchvision's Swin patch merging (its padding and gather): [B, H, W, C] ->
    [B, ceil(H/2), ceil(W/2), 4C], the 2 x 2 neighbours of each position concatenated over
    the channels (zero-padded to even H and W): ``pixel_unshuffle`` with factor 2 (its
    channels in another order, which no count depends on). Video Swin's [B, T, H, W, C]
    (the last two positions axes merged, T kept): factor [1, 2, 2]."""
    x = call.arg(0, "x")
    ref = rec.ref(x)
    if ref is None or x.dim() not in (4, 5) or not _channels_last(ref, x):
        return rec.unsupported_call(call, "on a tensor that is not a 2-D or 3-D map with its channels last")
    pad = any(int(v) % 2 for v in x.shape[-3:-1])
    factor = 2 if x.dim() == 4 else (1, 2, 2)
    rec.emit_laid(call, "pixel_unshuffle", {"factor": factor, "pad": pad}, [ref])


def _activation(module) -> bool:
    """torch.nn's activations without parameters (GELU, ReLU, SiLU, ...): shape-preserving."""
    params = any(True for _ in module.parameters())
    return type(module).__module__ == "torch.nn.modules.activation" and not params


def _output(module, inp):
    """A meta tensor shaped as the output of a Linear, LayerNorm or activation on ``inp``,
    made without running the module: running it would cost a layer norm's decomposition and,
    under the hooks tracer, be recorded as a call of its own."""
    width = module.out_features if isinstance(module, nn.Linear) else inp.shape[-1]
    return torch.empty(*inp.shape[:-1], width, device=inp.device, dtype=inp.dtype)


def _m_partition_attention(rec, call):
    """torchvision's MaxViT ``PartitionAttentionLayer`` on a map x [B, C, H, W]: the map cut
    into p x p windows (``window``) or into the units p apart (``grid``, after an axis swap),
    then per position ``x + attn(norm(x))`` and ``x + mlp(norm(x))``, and the map put back.

    Its partition, swap and departition only reorder positions, which the per-position calls
    do not see; so the layer is recorded as those calls on the map with its channels last
    (as Swin's blocks run), under its own modules' names: ``attn_layer.0`` layernorm,
    ``attn_layer.1`` attention (``window: p`` or ``grid: size / p``, with the relative
    position bias table of the partition), ``add``, ``mlp_layer.0`` .. ``.3`` layernorm,
    linear, activation, linear, ``add_1``. The dropouts and the stochastic depth (identity
    in eval mode) are not recorded. Other modules inside (but another parameter-free
    activation) are refused: the whole layer is then an opaque one."""
    m = call.module
    x = call.arg(0, "x")
    ref = rec.ref(x)
    attn, mlp = list(m.attn_layer), list(m.mlp_layer)
    known = (
        len(attn) >= 2
        and isinstance(attn[0], nn.LayerNorm)
        and type(attn[1]).__qualname__ == "RelativePositionalMultiHeadAttention"
        and len(mlp) >= 4
        and isinstance(mlp[0], nn.LayerNorm)
        and isinstance(mlp[1], nn.Linear)
        and isinstance(mlp[3], nn.Linear)
        and _activation(mlp[2])
        and all(isinstance(d, nn.Dropout) for d in attn[2:] + mlp[4:])
        and m.partition_type in ("window", "grid")
    )
    if not known:
        return rec.unsupported_call(call, "a partition attention layer of other modules than torchvision's")
    if ref is None or x.dim() != 4 or ref.layout(4)[1] != (0, 1, 2, 3):
        return rec.unsupported_call(call, "on a tensor that is not a channels-first map")
    from cnnstat.torch.recorder import Call, Ref, rf_for, sample_shape

    path, size = call.base, tuple(int(v) for v in x.shape[2:])
    y = x.permute(0, 2, 3, 1)  # the map, channels last
    shape = sample_shape(y)
    rec.bind(y, Ref(ref.name, shape, rf_for(ref.rf, shape), ref, (("permute", shape),), (0, 2, 3, 1)))
    run, add = _calls(rec, path)
    a = attn[1]
    group = {"window": m.p} if m.partition_type == "window" else {"grid": tuple(v // m.p for v in size)}
    args = {
        "heads": a.n_heads,
        "dim": a.n_heads * a.head_dim,
        "qkv_bias": a.to_qkv.bias is not None,
        "proj_bias": a.merge.bias is not None,
        "rel_pos_bias": True,
        **group,
    }
    h = run("attn_layer.0", attn[0], y)
    out = torch.empty(*h.shape[:-1], a.merge.out_features, device=h.device, dtype=h.dtype)
    buffers = [rec.buffers[id(b)] for b in a.buffers() if id(b) in rec.buffers]
    name = f"{path}.attn_layer.1"
    inner = Call(name, call.label, "", a, (h,), {}, out, name, buffers)
    rec.emit_laid(inner, "attention", args, [rec.ref(h)])
    y = add(y, out)
    h = y
    for i, module in enumerate(mlp[:4]):
        h = run(f"mlp_layer.{i}", module, h)
    y = add(y, h)
    made = rec.ref(y)
    if made is not None:
        rec.bind(call.out, made.layout(4)[0] if made.base is not None else made)


def _calls(rec, path):
    """(run, add): record a module's call on ``inp`` (its output made by :func:`_output`), and
    ``a + b``, under ``path`` -- the calls of a block the importer reads as a whole."""

    def run(name, module, inp):
        out = _output(module, inp)
        rec.module_call(f"{path}.{name}", module, (inp,), {}, out)
        return out

    def add(a, b):
        out = a + b
        rec.function_call(path, "add", "operator.add", (a, b), {}, out)
        return out

    return run, add


def _timm_swin_known(m) -> bool:
    """timm's SwinTransformerBlock as timm builds it: layer norms, WindowAttention with its
    relative position bias table, an Mlp of Linear, activation, Linear (no norm inside)."""
    attn, mlp = m.attn, m.mlp
    return (
        isinstance(m.norm1, nn.LayerNorm)
        and isinstance(m.norm2, nn.LayerNorm)
        and type(attn).__qualname__ == "WindowAttention"
        and hasattr(attn, "relative_position_bias_table")
        and isinstance(getattr(mlp, "fc1", None), nn.Linear)
        and isinstance(getattr(mlp, "fc2", None), nn.Linear)
        and _activation(getattr(mlp, "act", None) or nn.Identity())
        and isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity)
        and not getattr(m, "dynamic_mask", False)
    )


def _m_timm_swin_block(rec, call):
    """timm's Swin v1 ``SwinTransformerBlock`` on a map x [B, H, W, C] (channels last):
    ``x + attn(norm1(x))`` with the attention in windows of ``window_size`` shifted by
    ``shift_size`` (the map rolled, padded to whole windows, partitioned, masked where shifted
    windows wrap, put back: what cnnstat's ``attention`` with ``window``, ``shift`` and
    ``rel_pos_bias`` does, as torchvision's Swin), then ``x + mlp(norm2(x))``. Its partition
    and rolls only reorder positions, which the per-position calls do not see; so the block
    is recorded as those calls under its modules' names (``norm1``, ``attn`` holding the
    block's shift mask buffer, ``add``, ``norm2``, ``mlp.fc1``, ``mlp.act``, ``mlp.fc2``,
    ``add_1``). Dropouts and stochastic depth (identities in eval mode) are not recorded.
    Another block (other modules inside, a mask made at run time) is one opaque layer."""
    from cnnstat.torch.recorder import Call

    m = call.module
    x = call.arg(0, "x")
    ref = rec.ref(x)
    if not _timm_swin_known(m):
        return rec.unsupported_call(call, "a Swin block of other modules than timm's")
    if ref is None or x.dim() != 4 or not _channels_last(ref, x):
        return rec.unsupported_call(call, "on a tensor that is not a map with its channels last")
    attn, mlp, path = m.attn, m.mlp, call.base
    run, add = _calls(rec, path)
    args = {
        "heads": attn.num_heads,
        "dim": attn.qkv.out_features // 3,
        "qkv_bias": attn.qkv.bias is not None,
        "proj_bias": attn.proj.bias is not None,
        "window": tuple(int(v) for v in m.window_size),
        "shift": tuple(int(v) for v in m.shift_size),
        "rel_pos_bias": True,
    }
    h = run("norm1", m.norm1, x)
    out = torch.empty(*h.shape[:-1], attn.proj.out_features, device=h.device, dtype=h.dtype)
    buffers = [rec.buffers[id(b)] for b in m.buffers() if id(b) in rec.buffers]  # mask, index
    inner = Call(f"{path}.attn", call.label, "", attn, (h,), {}, out, f"{path}.attn", buffers)
    rec.emit_laid(inner, "attention", args, [rec.ref(h)])
    y = add(x, out)
    h = run("norm2", m.norm2, y)
    for name in ("fc1", "act", "fc2"):
        h = run(f"mlp.{name}", getattr(mlp, name), h)
    y = add(y, h)
    made = rec.ref(y)
    if made is not None:
        rec.bind(call.out, made)


def _m_timm_patch_merging(rec, call):
    """timm's Swin ``PatchMerging`` on x [B, H, W, C] (channels last): the 2 x 2 neighbours
    of each position concatenated over the channels (zero-padded to even H and W), then
    ``norm`` (LayerNorm) and ``reduction`` (Linear): ``pixel_unshuffle`` with factor 2 (its
    channels in another order, which no count depends on), then those calls, under the
    modules' names. Other modules inside: one opaque layer."""
    m = call.module
    x = call.arg(0, "x")
    ref = rec.ref(x)
    if not (isinstance(m.norm, nn.LayerNorm) and isinstance(m.reduction, nn.Linear)):
        return rec.unsupported_call(call, "a patch merging of other modules than timm's")
    if ref is None or x.dim() != 4 or not _channels_last(ref, x):
        return rec.unsupported_call(call, "on a tensor that is not a map with its channels last")
    from cnnstat.torch.recorder import Call

    path = call.base
    b, h, w, c = (int(v) for v in x.shape)
    merged = torch.empty(b, (h + 1) // 2, (w + 1) // 2, 4 * c, device=x.device, dtype=x.dtype)
    inner = Call(path, call.label, "", None, (x,), {}, merged, path, [])
    rec.emit_laid(inner, "pixel_unshuffle", {"factor": 2, "pad": bool(h % 2 or w % 2)}, [ref], params=[])
    run, _ = _calls(rec, path)
    out = run("reduction", m.reduction, run("norm", m.norm, merged))
    made = rec.ref(out)
    if made is not None:
        rec.bind(call.out, made)


def _pool_args(pool, head: int):
    """(kernel, stride) of MViT's ``Pool`` of a depthwise convolution (padding k // 2, no
    bias) and a layer norm over the head's width; None if it is another pooling."""
    conv, norm = pool.pool, pool.norm_act
    ok = (
        isinstance(conv, nn.Conv3d)
        and conv.groups == conv.in_channels == conv.out_channels == head
        and conv.bias is None
        and tuple(conv.padding) == tuple(k // 2 for k in conv.kernel_size)
        and tuple(conv.dilation) == (1, 1, 1)
        and not pool.norm_before_pool
        and isinstance(norm, nn.Sequential)
        and len(norm) == 1
        and isinstance(norm[0], nn.LayerNorm)
    )
    return (tuple(conv.kernel_size), tuple(conv.stride)) if ok else None


def _m_mvit_block(rec, call):
    """torchvision's MViT ``MultiscaleBlock`` on tokens x [B, 1 + T H W, C] (a class token
    before the map's positions) and the map's size thw: pre-norm pooling attention
    (``attention`` with ``pool_q``/``pool_kv``, v2's ``rel_pos_axes`` and ``residual_pool``,
    ``size`` thw), the skip connection pooled as the queries are (``token_pool``, max), the
    projection to the new width where the block widens (v1 on the second norm's output, v2
    on the first's), the MLP, each branch added. Recorded as those calls on the tokens under
    the block's own module names; anything else inside is refused (an opaque layer)."""
    m = call.module
    x, thw = call.arg(0, "x"), call.arg(1, "thw")
    ref = rec.ref(x)
    attn = m.attn
    head = attn.head_dim
    pools = {n: getattr(attn, f"pool_{n}") for n in ("q", "k", "v")}
    pooled = {n: p and _pool_args(p, head) for n, p in pools.items()}
    mlp = [c for c in m.mlp if not isinstance(c, nn.Dropout)]
    skip = m.pool_skip
    known = (
        isinstance(m.norm1, nn.LayerNorm)
        and isinstance(m.norm2, nn.LayerNorm)
        and all(pooled[n] is not None for n, p in pools.items() if p is not None)
        and (pools["k"] is None) == (pools["v"] is None)
        and pooled["k"] == pooled["v"]
        and all(isinstance(c, nn.Linear) for c in attn.project if not isinstance(c, nn.Dropout))
        and (attn.rel_pos_h is None) == (attn.rel_pos_w is None) == (attn.rel_pos_t is None)
        and len(mlp) == 3
        and isinstance(mlp[0], nn.Linear)
        and isinstance(mlp[2], nn.Linear)
        and _activation(mlp[1])
        and (skip is None or (isinstance(skip.pool, nn.MaxPool3d) and skip.norm_act is None))
    )
    if not known:
        return rec.unsupported_call(call, "a multiscale block of other modules than torchvision's")
    if ref is None or x.dim() != 3 or ref.layout(3)[1] != (0, 2, 1):
        return rec.unsupported_call(call, "on a tensor that is not tokens [B, N, C]")
    from cnnstat.torch.recorder import Call

    path, size, b = call.base, tuple(int(v) for v in thw), x.shape[0]

    def empty(n, width):
        return torch.empty(b, n, width, device=x.device, dtype=x.dtype)

    def run(name, module, inp):
        out = _output(module, inp)
        rec.module_call(f"{path}.{name}", module, (inp,), {}, out)
        return out

    def add(u, v):
        out = empty(u.shape[1], u.shape[2])
        rec.function_call(path, "add", "operator.add", (u, v), {}, out)
        return out

    def emit(name, module, op, args, inp, out):
        buffers = [rec.buffers[id(t)] for t in module.buffers() if id(t) in rec.buffers]
        inner = Call(f"{path}.{name}", call.label, "", module, (inp,), {}, out, f"{path}.{name}", buffers)
        rec.emit_laid(inner, op, args, [rec.ref(inp)])
        return out

    def after(p, n):  # the map after a pooling of kernel k, stride s, padding k // 2
        return n if p is None else tuple((v + 2 * (k // 2) - k) // st + 1 for v, k, st in zip(n, *p))

    q_map, cls = after(pooled["q"], size), x.shape[1] - math.prod(size)
    linear = next(c for c in attn.project if isinstance(c, nn.Linear))
    args = {
        "heads": attn.num_heads,
        "dim": attn.output_dim,
        "out": linear.out_features,
        "qkv_bias": attn.qkv.bias is not None,
        "proj_bias": linear.bias is not None,
        "pool_q": pooled["q"] and pooled["q"][0],
        "pool_q_stride": pooled["q"][1] if pooled["q"] else 1,
        "pool_kv": pooled["k"] and pooled["k"][0],
        "pool_kv_stride": pooled["k"][1] if pooled["k"] else 1,
        "rel_pos_axes": attn.rel_pos_h is not None,
        "residual_pool": attn.residual_pool,
        "size": size,
    }
    xn = run("norm1", m.norm1, x)
    x_attn = emit("attn", attn, "attention", args, xn, empty(cls + math.prod(q_map), linear.out_features))
    if m.project is not None and m.proj_after_attn:
        x = run("project", m.project, xn)
    if skip is not None:
        p = skip.pool
        targs = {"mode": "max", "k": _three(p.kernel_size), "s": _three(p.stride), "p": _three(p.padding)}
        targs["size"] = size
        x = emit("pool_skip", skip, "token_pool", targs, x, empty(x_attn.shape[1], x.shape[2]))
    x = add(x, x_attn)
    xn = run("norm2", m.norm2, x)
    if m.project is not None and not m.proj_after_attn:
        x = run("project", m.project, xn)
    h = xn
    for i, c in zip((0, 1, 3), mlp):
        h = run(f"mlp.{i}", c, h)
    out = add(x, h)
    made = rec.ref(out)
    if made is not None:
        rec.bind(call.out[0], made)


def _m_mvit_position(rec, call):
    """torchvision's MViT ``PositionalEncoding`` on tokens x [B, T H W, C]: the class token
    prepended (``class_token``), then v1's separable position table added, a row per frame,
    one per spatial position and one for the class token (``pos_embed`` with ``split: 1``;
    v2 has none: its position is relative, in the attention)."""
    m = call.module
    x = call.arg(0, "x")
    ref = rec.ref(x)
    if ref is None or x.dim() != 3 or ref.layout(3)[1] != (0, 2, 1):
        return rec.unsupported_call(call, "on a tensor that is not tokens [B, N, C]")
    from cnnstat.torch.recorder import Call

    b, n, c = x.shape
    tables = [m.spatial_pos, m.temporal_pos, m.class_pos]
    with_cls = torch.empty(b, n + 1, c, device=x.device, dtype=x.dtype)
    inner = Call(f"{call.base}.class_token", call.label, "", None, (x,), {}, with_cls, call.owner)
    rec.emit_laid(inner, "class_token", {"n": 1}, [ref], params=[rec.params[id(m.class_token)]])
    if all(t is None for t in tables):
        out = with_cls
    elif any(t is None for t in tables):
        return rec.unsupported_call(call, "some of the position tables")
    else:
        out = torch.empty_like(with_cls)
        size = (m.temporal_size, *m.spatial_size)
        names = [rec.params[id(t)] for t in tables]
        inner = Call(f"{call.base}.pos_embed", call.label, "", None, (with_cls,), {}, out, call.owner)
        rec.emit_laid(inner, "pos_embed", {"split": 1, "size": size}, [rec.ref(with_cls)], params=names)
    made = rec.ref(out)
    if made is not None:
        rec.bind(call.out, made)


def _m_timm_pvt_attention(rec, call):
    """timm's PVT v2 ``Attention(x, feat_size)`` and Twins' ``GlobalSubSampleAttn(x, size)``:
    queries from ``q``, keys and values from ``kv`` on the map reduced by the k = s = sr
    convolution ``sr`` and the layer norm ``norm`` (sr = 1: the whole map): cnnstat's
    ``attention`` with ``sr`` on the tokens' map (see :func:`_on_map`). PVT's linear variant
    (average pooling to 7 x 7 and a GELU) is not that op: unsupported."""
    m = call.module
    if getattr(m, "pool", None) is not None or getattr(m, "act", None) is not None:
        return rec.unsupported_call(call, "linear attention (pooling to 7 x 7; cnnstat's sr: a convolution)")
    sr = m.sr
    if sr is not None and not _k_equals_s(sr):
        return rec.unsupported_call(call, "a reduction other than a k = s convolution")
    a = {
        "heads": m.num_heads,
        "dim": m.dim,
        "qkv_bias": m.q.bias is not None,
        "proj_bias": m.proj.bias is not None,
        "sr": 1 if sr is None else int(sr.kernel_size[0]),
    }
    _on_map(rec, call, a)


def _m_timm_twins_local(rec, call):
    """Twins' ``LocallyGroupedAttn(x, size)``: attention inside ws x ws windows of the
    tokens' map (``qkv``, ``proj``): cnnstat's ``attention`` with ``window`` (no shift, no
    bias) on the map. Twins pads the map to whole windows and applies ``proj`` after the crop,
    where cnnstat's op projects the padded windows: a map that is not whole windows is
    unsupported."""
    m = call.module
    size = call.arg(1, "size")
    if not isinstance(size, (list, tuple)) or any(int(v) % m.ws for v in size):
        return rec.unsupported_call(call, f"a map that is not whole {m.ws} x {m.ws} windows (padded)")
    a = {
        "heads": m.num_heads,
        "dim": m.dim,
        "qkv_bias": m.qkv.bias is not None,
        "proj_bias": m.proj.bias is not None,
        "window": (m.ws, m.ws),
    }
    _on_map(rec, call, a)


def _on_map(rec, call, a):
    """``attention`` (arguments ``a``, the module's parameters) of a module called as
    ``(x, size)`` on tokens [B, N, C] (the channels of [C, N] tokens moved last, N = the
    positions of the ``size`` map): the tokens' map (``to_map``, no arithmetic), the op on
    it, and its output as tokens again. A module whose parameters differ from the op's is
    refused by the count check of :meth:`Recorder.emit`."""
    from cnnstat.torch.ops.reshape import _tokens_maker
    from cnnstat.torch.recorder import Ref, rf_for, sample_shape

    x, size = call.args[0] if call.args else None, call.args[1] if len(call.args) > 1 else None
    ref = rec.ref(x)
    if ref is None or x.dim() != 3 or not isinstance(size, (list, tuple)) or len(size) != 2:
        return rec.unsupported_call(call, "on a tensor cnnstat does not follow")
    base, perm = ref.layout(3)
    size = tuple(int(v) for v in size)
    if perm != (0, 2, 1) or len(base.shape) != 2 or base.shape[1] != math.prod(size):
        return rec.unsupported_call(
            call, f"on a {list(ref.shape)} tensor that is not the [D, N] tokens of a {list(size)} map"
        )
    as_map = copy.copy(call)
    as_map.base = f"{call.base}.to_map"
    first = torch.empty((rec.batch, int(x.shape[-1]), *size), device="meta")
    rec.emit(as_map, "to_map", {"size": size}, [base], params=[], out=first)
    mapped = rec.ref(first)
    if mapped is None:
        return
    out = torch.empty((rec.batch, call.module.proj.out_features, *size), device="meta")
    rec.emit(call, "attention", a, [mapped], out=out)
    made = rec.ref(out)
    if made is None:
        return
    actual = sample_shape(call.out)
    as_tokens = copy.copy(call)
    as_tokens.base = f"{call.base}.tokens"
    make = _tokens_maker(rec, as_tokens, made, (0, 2, 1))
    rec.bind(call.out, Ref(made.name, actual, rf_for(made.rf, actual), made, (), None, make))


def _k_equals_s(conv) -> bool:
    """A convolution of one kernel size k on every axis, stride k, no padding, dilation or
    groups: cnnstat attention's ``sr`` reduction."""
    return (
        conv.kernel_size == conv.stride
        and len(set(conv.kernel_size)) == 1
        and not any(conv.padding)
        and set(conv.dilation) == {1}
        and conv.groups == 1
    )


def _three(v) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * 3


MODULES[nn.MultiheadAttention] = _m_multihead
NAMED_MODULES[f"{SWIN}.ShiftedWindowAttention"] = _m_swin
NAMED_MODULES[f"{SWIN}.ShiftedWindowAttentionV2"] = _m_swin_v2
NAMED_MODULES[f"{VIDEO_SWIN}.ShiftedWindowAttention3d"] = _m_swin3d
NAMED_FUNCTIONS[f"{SWIN}._patch_merging_pad"] = _f_patch_merging_pad
NAMED_MODULES[f"{MAXVIT}.PartitionAttentionLayer"] = _m_partition_attention
NAMED_MODULES[f"{MVIT}.MultiscaleBlock"] = _m_mvit_block
NAMED_MODULES[f"{MVIT}.PositionalEncoding"] = _m_mvit_position
NAMED_MODULES[f"{TIMM_ATTENTION}.Attention"] = _m_timm_attention
NAMED_MODULES[f"{TIMM_SWIN}.SwinTransformerBlock"] = _m_timm_swin_block
NAMED_MODULES[f"{TIMM_SWIN}.PatchMerging"] = _m_timm_patch_merging
NAMED_MODULES[f"{TIMM_PVT}.Attention"] = _m_timm_pvt_attention
NAMED_MODULES[f"{TIMM_TWINS}.GlobalSubSampleAttn"] = _m_timm_pvt_attention
NAMED_MODULES[f"{TIMM_TWINS}.LocallyGroupedAttn"] = _m_timm_twins_local
