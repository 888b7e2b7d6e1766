"""Import of the transformer modules of torch and torchvision as cnnstat ops (the builders
of these ops are in attention.py and resample.py):

- ``nn.MultiheadAttention`` self-attention on tokens (batch first or not) -> ``attention``;
- torchvision's Swin ``ShiftedWindowAttention`` (v1), ``ShiftedWindowAttentionV2`` and the
  video ``ShiftedWindowAttention3d`` -> ``attention`` with ``window``, ``shift`` and (v1, 3-D)
  ``rel_pos_bias``;
- torchvision's Swin patch merging (``_patch_merging_pad``) -> ``pixel_unshuffle`` (factor 2;
  video Swin's, on [B, T, H, W, C]: factor [1, 2, 2]);
- torchvision's MaxViT ``PartitionAttentionLayer`` -> its per-position calls on the map.

The torchvision classes and functions are looked up by qualified name
(:data:`~cnnstat.torch.ops.base.NAMED_MODULES`), so that mapping them imports nothing. They
run on channels-last tensors [B, *positions, C]: the layer is the op on the channels-first
tensor and torch's output is its output laid out alike (:meth:`Recorder.emit_laid`).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnstat.torch.ops.base import MODULES, NAMED_FUNCTIONS, NAMED_MODULES, is_tensor

SWIN = "torchvision.models.swin_transformer"
VIDEO_SWIN = "torchvision.models.video.swin_transformer"
MAXVIT = "torchvision.models.maxvit"


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
    map, no shift), and the relative position bias table."""
    m = call.module
    x = call.args[0] if call.args else call.kwargs["x"]
    size = tuple(int(v) for v in x.shape[1:-1])
    window, shift = list(m.window_size), list(m.shift_size)
    for i, s in enumerate(size):
        if s <= window[i]:
            window[i], shift[i] = s, 0
    _window(rec, call, window, shift, True)


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
        and not any(True for _ in mlp[2].parameters())  # an activation
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

    def run(name, module, inp):
        # the output's shape, without running a layer norm on meta (its decomposition costs
        # milliseconds) or a Linear; the activation runs
        if isinstance(module, (nn.Linear, nn.LayerNorm)):
            width = module.out_features if isinstance(module, nn.Linear) else inp.shape[-1]
            out = torch.empty(*inp.shape[:-1], width, device=inp.device, dtype=inp.dtype)
        else:
            out = module(inp)
        rec.module_call(f"{path}.{name}", module, (inp,), {}, out)
        return out

    def add(a, b):
        out = a + b
        rec.function_call(path, "add", "operator.add", (a, b), {}, out)
        return out

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


MODULES[nn.MultiheadAttention] = _m_multihead
NAMED_MODULES[f"{SWIN}.ShiftedWindowAttention"] = _m_swin
NAMED_MODULES[f"{SWIN}.ShiftedWindowAttentionV2"] = _m_swin_v2
NAMED_MODULES[f"{VIDEO_SWIN}.ShiftedWindowAttention3d"] = _m_swin3d
NAMED_FUNCTIONS[f"{SWIN}._patch_merging_pad"] = _f_patch_merging_pad
NAMED_MODULES[f"{MAXVIT}.PartitionAttentionLayer"] = _m_partition_attention
