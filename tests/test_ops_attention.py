"""Transformer-era ops: linear (per position), tokens, learned tensors, matmul, attention.

Every figure is checked against something independent: hand computation, ``sum(p.numel())``
of torch modules written here (features-last, as ViT, Swin, PVT and ConvNeXt are written) or of
torchvision's own (vit_b_16, convnext_tiny, ShiftedWindowAttention), PyTorch's FlopCounterMode
(FLOPs = 2 x MACs), fvcore, autograd for receptive fields, and nn.MultiheadAttention /
torchvision's shifted window attention for what the built modules compute.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from test_torch_build import assert_matches
from torch import nn

from cnnstat.analysis import Analysis
from cnnstat.errors import SpecError
from cnnstat.ops import REGISTRY
from cnnstat.spec.build import build as build_spec
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import fvcore_macs
from cnnstat.torch.ops.attention import SelfAttention
from helpers import analyze_text, spec_from_text

# layernorm and gelu belong to another op family. Where they are not registered, stand-ins
# with the same shapes and MACs (0) keep the whole-network tests meaningful: 'identity' for
# layernorm (its 2C parameters per layer then added by hand) and 'relu' for gelu.
HAS_LN = "layernorm" in REGISTRY
LN = "layernorm" if HAS_LN else "identity"
GELU = "gelu" if "gelu" in REGISTRY else "relu"


def norms(text: str) -> str:
    return text.replace("layernorm", LN).replace("gelu", GELU)


def ln_params(graph) -> int:
    """The stand-ins' missing layer-norm parameters (scale and shift per channel)."""
    return 0 if HAS_LN else sum(2 * la.output[0] for la in graph.layers if la.op == "identity")


def one(layer_yaml: str, input="[64, 8, 8]"):
    return analyze_text(f"input: {input}\nlayers:\n  - {layer_yaml}\n").layers[-1]


def torch_macs(module, *inputs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- linear -------------------------------------------------------------------------------------


def test_linear_on_a_map_tokens_and_a_vector():
    la = one("linear: {out: 24}", "[16, 5, 7]")
    assert la.output == (24, 5, 7) and la.kind == "fc"
    assert (la.weights, la.biases, la.macs) == (16 * 24, 24, 35 * 16 * 24)
    assert la.rf.size == (1, 1) and not la.rf.collapsed  # per position: the field is unchanged
    la = one("pwfc: {out: 3072, bias: false}", "[768, 197]")
    assert la.output == (3072, 197) and (la.weights, la.biases, la.macs) == (768 * 3072, 0, 197 * 768 * 3072)
    a = analyze_text("input: [16, 5, 7]\nlayers:\n  - gap\n  - flatten\n  - linear: {out: 10}\n")
    assert a.layers[-1].output == (10,) and a.layers[-1].macs == 160  # one position, as fc


def test_linear_runs_at_any_input_and_unchanged_in_frame_mode():
    spec = spec_from_text(
        "input: [3, 32, 32]\nlayers:\n  - conv: {out: 8, k: 4, s: 4}\n  - linear: {out: 6}\n"
    )
    for frame in (False, True):
        la = build_spec(spec, (3, 64, 96), frame=frame).layers[-1]
        assert la.output == (6, 16, 24) and la.weights == 48 and la.macs == 16 * 24 * 8 * 6


# --- tokens and learned tensors -----------------------------------------------------------------


VIT_STEM = """
input: [3, 64, 48]
layers:
  - conv: {out: 32, k: 16, s: 16}
  - tokens
  - class_token: {n: 2}
  - pos_embed
  - scale
  - take: {index: 2, stop: 14}
  - to_map
  - tokens: {name: again}
  - take: {index: 5}
"""


def test_tokens_class_tokens_pos_embed_scale_take():
    a = analyze_text(VIT_STEM)
    conv, tok, cls, pos, scale, rest, fmap, again, one_token = a.layers
    assert tok.output == (32, 12) and tok.macs == tok.weights == 0
    # the map's field is kept: one entry per axis of the 4x3 map, its extent the map's size
    assert tok.rf == conv.rf and tok.rf.extent == (4, 3) and tok.spatial
    assert cls.output == (32, 14) and cls.weights == 2 * 32 and cls.kind == "other"
    assert pos.output == (32, 14) and pos.weights == 32 * 14 and pos.macs == 0
    assert scale.weights == 32 and scale.biases == scale.macs == 0
    assert rest.output == (32, 12) and fmap.output == (32, 4, 3)  # class tokens dropped, map back
    assert fmap.rf == conv.rf
    # token 5 of the 4x3 map is at row 1, column 2: its own 16x16 field
    assert one_token.output == (32,) and one_token.rf.size == (16, 16)
    assert one_token.rf.start == (7.5 + 16, 7.5 + 32) and not one_token.spatial
    assert a.receptive_field().name == "again"  # the last layer whose units cover part of the input
    assert a.totals()["params"] == conv.weights + conv.biases + 64 + 32 * 14 + 32


def test_pos_embed_on_a_map_and_fixed_input():
    la = one("pos_embed", "[8, 5, 6]")
    assert la.weights == 8 * 5 * 6
    spec = spec_from_text("input: [8, 5, 6]\nlayers:\n  - pos_embed\n")
    with pytest.raises(
        SpecError, match=r"^test.yaml:3:5: error: pos_embed 'pos_embed1' gets input \[8, 6, 6\]"
    ):
        build_spec(spec, (8, 6, 6))
    with pytest.raises(
        SpecError, match="pos_embed in frame mode: its weights are sized for the spec's input"
    ):
        build_spec(spec, (8, 9, 9), frame=True)


# --- attention ----------------------------------------------------------------------------------


def test_vit_b_block_attention_by_hand():
    la = one("attention: {heads: 12}", "[768, 197]")
    assert la.output == (768, 197) and la.kind == "fc"
    assert la.weights == 768 * 2304 + 768 * 768  # qkv, proj
    assert la.biases == 2304 + 768
    assert la.macs == 197 * 768 * 2304 + 197 * 768 * 768 + 2 * 197 * 197 * 768
    assert la.rf.collapsed


def test_attention_inner_width_and_biases():
    # dim 32 != C 64: qkv 64 -> 96, proj 32 -> 64; 4 heads of 8
    la = one("mhsa: {heads: 4, dim: 32, qkv_bias: false, proj_bias: false}", "[64, 5, 6]")
    assert (la.weights, la.biases) == (64 * 96 + 32 * 64, 0)
    assert la.macs == 30 * 64 * 96 + 30 * 32 * 64 + 2 * 30 * 30 * 32
    assert la.output == (64, 5, 6)


def test_window_attention_pads_to_whole_windows():
    # Swin-T stage 1: 56x56 map, 7x7 windows, 96 channels, 3 heads
    la = one("attention: {heads: 3, window: 7, shift: 3, rel_pos_bias: true}", "[96, 56, 56]")
    n, area = 56 * 56, 49
    assert la.macs == n * 96 * 288 + n * 96 * 96 + 2 * n * area * 96
    assert la.weights == 96 * 288 + 96 * 96 + 13 * 13 * 3 and la.biases == 288 + 96
    assert la.buffers == area * area  # the relative position index
    # 30x45 map, 7x7 windows: padded to 35x49, every MAC at the padded size
    la = one("attention: {heads: 3, window: 7}", "[96, 30, 45]")
    n = 35 * 49
    assert la.macs == n * 96 * 384 + 2 * n * 49 * 96 and la.weights == 96 * 384
    # per axis windows
    la = one("attention: {heads: 2, window: [2, 4]}", "[8, 4, 6]")
    assert la.macs == 4 * 8 * 8 * 32 + 2 * 4 * 8 * 8 * 8


def test_swin_v2_position_mlp_and_cosine_by_hand():
    # Swin-V2-T stage 1: 64x64 map, 8x8 windows, 96 channels, 3 heads, the bias from an MLP
    # 2 -> 512 -> 3 over the 15 x 15 relative offsets, cosine attention (a logit scale per head)
    la = one("attention: {heads: 3, window: 8, shift: 4, rel_pos_mlp: 512, cosine: true}", "[96, 64, 64]")
    n, area, rows = 64 * 64, 64, 15 * 15
    mlp = rows * (2 * 512 + 512 * 3)  # 576,000: run once per call on the table
    assert la.macs == n * 96 * 288 + n * 96 * 96 + 2 * n * area * 96 + mlp
    assert la.weights == 96 * 288 + 96 * 96 + (2 * 512 + 512 * 3) + 3
    assert la.biases == 288 + 96 + 512  # qkv, proj, the MLP's first layer
    assert la.buffers == rows * 2 + area * area  # the coordinate table, the index
    # 3-D windows: 3 coordinates per offset
    la = one("attention: {heads: 1, window: [2, 2, 2], rel_pos_mlp: 4}", "[4, 2, 2, 2]")
    assert la.macs == 8 * 4 * 16 + 2 * 8 * 8 * 4 + 27 * (3 * 4 + 4 * 1)
    assert (la.weights, la.biases, la.buffers) == (4 * 16 + 3 * 4 + 4, 12 + 4 + 4, 27 * 3 + 64)
    # cosine alone (global attention): only the scale
    la = one("attention: {heads: 4, cosine: true}", "[8, 3, 3]")
    assert la.weights == 4 * 8 * 8 + 4 and la.macs == 9 * 8 * 32 + 2 * 9 * 9 * 8


def test_relative_position_table_of_a_larger_window():
    # Video Swin-T's stage 4 on 4 frames of 7 x 7 (an 8 x 112 x 112 clip): the window 8 x 7 x 7
    # shrinks to 4 x 7 x 7, the table stays 15 x 13 x 13 rows, the index 392^2
    text = "attention: {heads: 24, window: [4, 7, 7], rel_pos_bias: true, rel_pos_window: [8, 7, 7]}"
    la = one(text, "[768, 4, 7, 7]")
    assert la.weights == 4 * 768 * 768 + 15 * 13 * 13 * 24 and la.buffers == (8 * 49) ** 2
    n = 4 * 49
    assert la.macs == n * 768 * 4 * 768 + 2 * n * n * 768  # one window: the map


def test_video_swin_attention_on_a_map_smaller_than_its_window_computes_what_torchvision_does():
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    torch.manual_seed(0)
    ref = ShiftedWindowAttention3d(12, [4, 4, 4], [0, 0, 0], 3).eval()
    ours = SelfAttention(12, 3, window=(2, 4, 4), rel_pos_bias=True, rel_pos_window=4, rank=3).eval()
    with torch.no_grad():
        for name in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias", "relative_position_bias_table"):
            ours.get_parameter(name).copy_(ref.get_parameter(name))
        x = torch.randn(2, 12, 2, 8, 8)  # 2 frames: torchvision's window becomes 2 x 4 x 4
        want = ref(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        assert torch.allclose(ours(x), want, atol=1e-5)
    assert numel(ours) == numel(ref)


def test_grid_attention_by_hand():
    # MaxViT-T stage 1 grid attention: 56x56 map, a 7x7 grid (units 8 apart), 64 channels,
    # 2 heads of 32, the relative position table of the grid
    la = one("attention: {heads: 2, grid: 7, rel_pos_bias: true}", "[64, 56, 56]")
    n = 56 * 56
    assert la.macs == n * 64 * 192 + n * 64 * 64 + 2 * n * 49 * 64  # as window: 7
    assert la.weights == 64 * 192 + 64 * 64 + 13 * 13 * 2 and la.buffers == 49 * 49
    assert la.macs == one("attention: {heads: 2, window: 7, rel_pos_bias: true}", "[64, 56, 56]").macs
    # every unit's field spans the map but its offset's first and last units: unit 0 of an
    # axis sees units 0, 8, ..., 48 (49 units), unit 7 units 7 .. 55
    assert la.rf.size == (49, 49) and la.rf.phases[0][0] == (0, 48) and la.rf.phases[0][7] == (7, 55)
    la = one("attention: {heads: 1, grid: [2, 3]}", "[4, 4, 9]")
    assert la.macs == 36 * 4 * 16 + 2 * 36 * 6 * 4


def test_pixel_unshuffle_per_axis_as_video_swins_patch_merging():
    # Video Swin-T's first merge: [96, 8, 56, 56] -> [384, 8, 28, 28], H and W halved, T kept
    la = one("pixel_unshuffle: {factor: [1, 2, 2]}", "[96, 8, 56, 56]")
    assert la.output == (384, 8, 28, 28) and la.macs == 0 and la.params == 0
    assert la.rf.size == (1, 2, 2) and la.rf.jump == (1, 2, 2)
    # an odd map padded at its end, as torchvision pads it: 7 -> 4
    la = one("pixel_unshuffle: {factor: [1, 2, 2], pad: true}", "[8, 3, 7, 7]")
    assert la.output == (32, 3, 4, 4)
    la = one("pixel_unshuffle: {factor: [2, 3]}", "[2, 4, 9]")  # per axis on a 2-D map
    assert la.output == (12, 2, 3)


def test_pooling_attention_as_mvit_v2_s_block_1_by_hand():
    # MViT-V2-S's block 1: tokens [96, 1 + 8 x 56 x 56] (a class token and the map), widened
    # to 192 in 2 heads of 96; queries pooled by a 3x3x3 depthwise convolution of stride
    # 1x2x2 (8 x 28 x 28), keys and values of stride 1x4x4 (8 x 14 x 14); relative position
    # tables per axis; the pooled queries added to the output
    text = (
        "input: [96, 8, 56, 56]\nlayers:\n  - tokens\n  - class_token\n"
        "  - attention: {heads: 2, dim: 192, out: 192, pool_q: 3, pool_q_stride: [1, 2, 2], pool_kv: 3,"
        " pool_kv_stride: [1, 4, 4], rel_pos_axes: true, residual_pool: true}\n"
    )
    la = analyze_text(text).layers[-1]
    n, nq, nk = 1 + 8 * 56 * 56, 1 + 8 * 28 * 28, 1 + 8 * 14 * 14
    assert la.output == (192, nq)
    head = 96
    pools = head * 27 + 2 * head * 27  # q, k, v: head_dim x 27 each, shared by the heads
    rel = (2 * 8 - 1 + 2 * 28 - 1 + 2 * 28 - 1) * head  # t: 15 rows, h and w: 55 rows
    assert la.weights == 96 * 576 + 192 * 192 + pools + 3 * head + rel  # + the norms' scales
    assert la.biases == 576 + 192 + 3 * head  # qkv, proj, the norms' shifts
    assert la.weights + la.biases == 113_280
    assert la.macs == (
        n * 96 * 576  # qkv on every token
        + 192 * 8 * 28 * 28 * 27  # the queries' pooling (the class token is not pooled)
        + 2 * 192 * 8 * 14 * 14 * 27  # keys and values
        + 2 * nq * nk * 192  # Q.K^T and A.V
        + 192 * 8 * 28 * 28 * (8 + 14 + 14)  # relative position: each query x each key coordinate
        + nq * 192 * 192  # proj
    )
    assert la.rf.collapsed and la.rf.extent == (8, 28, 28)  # the next block's map
    # on a map (no class token), without the relative position: the pooled map out
    la = one("attention: {heads: 2, pool_q: 3, pool_q_stride: 2, pool_kv: 3}", "[8, 6, 6]")
    assert la.output == (8, 3, 3)  # (6 + 2 - 3) // 2 + 1
    assert la.macs == 36 * 8 * 24 + 8 * 9 * 9 + 2 * 8 * 36 * 9 + 2 * 9 * 36 * 8 + 9 * 8 * 8
    assert la.weights == 8 * 24 + 8 * 8 + 3 * (4 * 9 + 4)


def test_token_pool_and_separable_pos_embed_by_hand():
    a = analyze_text(
        """
        input: [96, 8, 56, 56]
        layers:
          - tokens
          - class_token
          - pos_embed: {split: 1}
          - token_pool: {k: [1, 3, 3], s: [1, 4, 4], p: [0, 1, 1]}
        """
    )
    pos, pool = a.layers[-2], a.layers[-1]
    # MViT-B's: a row per frame, one per spatial position, one for the class token
    assert pos.weights == 96 * (1 + 8 + 56 * 56) and pos.macs == 0
    assert pool.output == (96, 1 + 8 * 14 * 14) and pool.macs == 0 and pool.params == 0
    assert pool.rf.size == (1, 3, 3) and pool.rf.jump == (1, 4, 4) and pool.rf.extent == (8, 14, 14)


def test_spatial_reduction_attention():
    # PVT-Small stage 1: 56x56 map, 64 channels, 1 head, sr 8 -> 7x7 keys and values
    la = one("attention: {heads: 1, sr: 8}", "[64, 56, 56]")
    n, nk = 56 * 56, 7 * 7
    assert la.weights == 3 * 64 * 64 + 64 * 64 + 64 * 64 * 64 + 64  # q, kv, proj; conv; norm scale
    assert la.biases == 3 * 64 + 64 + 64 + 64  # qkv, proj, conv, norm shift
    assert la.macs == n * 64 * 64 + nk * 64 * 128 + nk * 64 * 64 * 64 + 2 * n * nk * 64 + n * 64 * 64
    # 30x45 map, sr 4: floor -> 7x11
    la = one("attention: {heads: 2, sr: 4}", "[8, 30, 45]")
    n, nk = 30 * 45, 7 * 11
    assert la.macs == n * 8 * 8 + nk * 8 * 16 + nk * 8 * 8 * 16 + 2 * n * nk * 8 + n * 8 * 8


def test_matmul():
    a = analyze_text(
        """
        input: [8, 6, 5]
        layers:
          - matmul:
              a: [conv: {out: 4, k: 1}]
              b: [conv: {out: 4, k: 1}, tokens, to_map: {size: [5, 6]}]
        """
    )
    mm = a.layers[-1]
    assert mm.op == "matmul" and mm.inputs == ("matmul1.a.conv1", "matmul1.b.to_map1")
    assert mm.output == (4, 6, 6)  # 4 x (6x5 @ 5x6)
    assert mm.macs == 4 * 6 * 5 * 6 and mm.weights == 0 and mm.rf.collapsed


# --- errors, located ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layers, message",
    [
        ("  - attention: {heads: 5}", "3:5: error: attention: heads=5 must divide the width 768"),
        ("  - attention: {heads: 4, dim: 30}", "3:5: error: attention: heads=4 must divide the width 30"),
        ("  - tokens\n  - attention: {heads: 1, window: 7}", "4:5: error: attention: 'window' over tokens"),
        ("  - attention: {heads: 1, shift: 3}", "3:5: error: attention: 'shift' needs 'window'"),
        ("  - attention: {heads: 1, window: 7, shift: 7}", "3:5: error: attention: 'shift' [7, 7] must be"),
        (
            "  - attention: {heads: 1, rel_pos_bias: true}",
            "3:5: error: attention: 'rel_pos_bias' needs 'window'",
        ),
        ("  - attention: {heads: 1, sr: 15}", "3:5: error: attention: the map 14x14 is smaller than sr=15"),
        ("  - attention: {heads: 1, sr: 2, window: 7}", "3:5: error: attention: 'window' and 'sr' do not"),
        (
            "  - pixel_unshuffle: {factor: [1, 2, 2]}",
            "3:5: error: pixel_unshuffle: 'factor' must be an integer or a list of 2",
        ),
        (
            "  - pixel_unshuffle: {factor: [0, 2]}",
            "3:5: error: pixel_unshuffle: 'factor' must be at least 1, got [0, 2]",
        ),
        (
            "  - pixel_unshuffle: {factor: [2, 3]}",
            "3:5: error: pixel_unshuffle: the input's size [14, 14] is not a multiple",
        ),
        (
            "  - tokens\n  - attention: {heads: 1}\n  - attention: {heads: 1, pool_q: 3}",
            "5:5: error: attention: the tokens' map is not known: give 'size'",
        ),
        (
            "  - tokens\n  - attention: {heads: 1, pool_q: 3, size: 15}",
            "4:5: error: attention: 196 tokens are fewer",
        ),
        (
            "  - attention: {heads: 1, pool_q: 3, window: 7}",
            "3:5: error: attention: 'window' does not combine",
        ),
        (
            "  - attention: {heads: 1, size: 14}",
            "3:5: error: attention: 'size' (the tokens' map) is for pooling",
        ),
        ("  - pos_embed: {split: 1}", "3:5: error: pos_embed needs tokens [D, N]"),
        ("  - tokens\n  - pos_embed: {split: 2}", "4:5: error: pos_embed: 'split' 2 must be less than"),
        ("  - token_pool: {k: 3}", "3:5: error: token_pool needs tokens [D, N]"),
        (
            "  - attention: {heads: 1, window: 7, rel_pos_window: 8}",
            "3:5: error: attention: 'rel_pos_window' sizes",
        ),
        (
            "  - attention: {heads: 1, window: 7, rel_pos_bias: true, rel_pos_window: 5}",
            "3:5: error: attention: 'rel_pos_window' [5, 5] is smaller than the window [7, 7]",
        ),
        ("  - attention: {heads: 1, grid: 7, window: 7}", "3:5: error: attention: 'window' and 'grid' do"),
        ("  - attention: {heads: 1, grid: 7, sr: 2}", "3:5: error: attention: 'grid' and 'sr' do not"),
        ("  - attention: {heads: 1, grid: 5}", "3:5: error: attention: the map 14x14 is not a multiple"),
        ("  - attention: {heads: 1, rel_pos_mlp: 8}", "3:5: error: attention: 'rel_pos_mlp' needs"),
        (
            "  - attention: {heads: 1, window: 7, rel_pos_mlp: 8, rel_pos_bias: true}",
            "3:5: error: attention: 'rel_pos_bias' (a table) and 'rel_pos_mlp' (an MLP) are two biases",
        ),
        (
            "  - attention: {heads: 1, window: 7, rel_pos_mlp: 0}",
            "3:51: error: attention: 'rel_pos_mlp' must be at least 1, got 0",
        ),
        ("  - attention: {heads: 0}", "3:24: error: attention: 'heads' must be at least 1, got 0"),
        (
            "  - gap\n  - flatten\n  - attention: {heads: 1}",
            "5:5: error: attention needs tokens [D, N] or a map",
        ),
        (
            "  - tokens\n  - class_token\n  - to_map",
            "5:5: error: to_map: 197 tokens do not make a 14x14 map (196 positions): if the first 1 are "
            "class tokens, drop them first (take: {index: 1, stop: 197})",
        ),
        (
            "  - tokens\n  - attention: {heads: 1}\n  - to_map",
            "5:5: error: to_map: the tokens' map is not known",
        ),
        (
            "  - class_token",
            "3:5: error: class_token needs tokens [D, N], got [768, 14, 14]: use 'tokens' first",
        ),
        ("  - take", "3:5: error: take needs tokens [D, N]"),
        ("  - tokens\n  - take: {index: 196}", "4:5: error: take: index 196 is outside the 196 tokens"),
        (
            "  - flatten\n  - linear: {out: 3}",
            "4:5: error: linear: the flat input [150528] is a flattened map",
        ),
        ("  - gap\n  - flatten\n  - tokens", "5:5: error: tokens needs a map [C, H, W], got [768]"),
        (
            "  - matmul:\n      a: identity\n      b: [conv: {out: 2, k: 1}]",
            "3:5: error: matmul: branch 'a' is [768, 14, 14], branch 'b' is [2, 14, 14]: needs (..., m, k) @",
        ),
    ],
)
def test_errors_are_located(layers, message):
    with pytest.raises(SpecError) as exc:
        build_spec(spec_from_text(f"input: [768, 14, 14]\nlayers:\n{layers}\n"))
    assert str(exc.value).startswith("test.yaml:" + message)


# --- torch: built modules, FlopCounterMode, fvcore, round trip -------------------------------------

EVERY_NEW_OP = """
cnnstat: 1
name: every-new-op
input: [3, 48, 40]
layers:
  - conv: {out: 24, k: 8, s: 8}
  - linear: {out: 16}
  - tokens
  - class_token: {n: 2}
  - pos_embed
  - scale
  - add:
      attn: [attention: {heads: 4}]
      skip: identity
  - linear: {out: 32, bias: false}
  - linear: {out: 16}
  - take: {index: 2, stop: 32}
  - to_map: {size: [6, 5]}
  - attention: {heads: 2, window: 4, shift: 2, rel_pos_bias: true, dim: 8}
  - attention: {heads: 2, window: [3, 2]}
  - attention: {heads: 2, window: [4, 3], shift: [2, 1], rel_pos_mlp: 16, cosine: true}
  - attention: {heads: 2, grid: [3, 5], rel_pos_bias: true}
  - attention: {heads: 2, grid: [2, 1], rel_pos_mlp: 8}
  - attention: {heads: 4, sr: 2, qkv_bias: false}
  - matmul:
      a: identity
      b: [tokens, to_map: {size: [5, 6]}]
  - attention: {heads: 2, dim: 8, out: 12, pool_q: [3, 2], pool_q_stride: [2, 1], pool_kv: 3}
  - tokens
  - take
  - linear: {out: 10}
"""

THREE_D = """
cnnstat: 1
name: three-d
input: [6, 7, 5, 9]
layers:
  - attention: {heads: 3, window: [2, 3, 4], shift: [1, 1, 2], rel_pos_bias: true}
  - attention: {heads: 3, window: [4, 2, 3], shift: [2, 1, 0], rel_pos_mlp: 8, cosine: true}
  - attention: {heads: 3, grid: [7, 1, 3], rel_pos_bias: true}
  - attention: {heads: 3, window: [2, 5, 2], rel_pos_bias: true, rel_pos_window: [3, 5, 4]}
  - pixel_unshuffle: {factor: [1, 2, 2], pad: true}
  - linear: {out: 6}
  - attention: {heads: 2, sr: 2}
  - tokens
  - attention: {heads: 1, dim: 4}
"""

MVIT = """
cnnstat: 1
name: mvit-like
input: [3, 8, 32, 32]
layers:
  - conv: {out: 16, k: [3, 7, 7], s: [2, 4, 4], p: [1, 3, 3]}
  - tokens
  - class_token
  - pos_embed: {split: 1, size: [4, 8, 8]}
  - attention: {heads: 2, pool_q: 3, pool_kv: 3, pool_kv_stride: [1, 4, 4], rel_pos_axes: true,
                residual_pool: true, size: [4, 8, 8]}
  - token_pool: {k: [1, 3, 3], s: [1, 2, 2], p: [0, 1, 1], size: [4, 8, 8]}
  - attention: {heads: 2, dim: 32, out: 32, pool_q: 3, pool_q_stride: [1, 2, 2], pool_kv: 3,
                pool_kv_stride: [1, 2, 2], rel_pos_axes: true, size: [4, 4, 4]}
  - token_pool: {mode: avg, k: [2, 2, 2], size: [4, 2, 2]}
  - take
  - fc: {out: 10}
"""

ONE_D = """
cnnstat: 1
name: one-d
input: [6, 50]
layers:
  - attention: {heads: 3, window: 8, shift: 3, rel_pos_bias: true}
  - attention: {heads: 2, sr: 4}
  - linear: {out: 4}
"""


@pytest.mark.parametrize("spec", [EVERY_NEW_OP, THREE_D, ONE_D, MVIT], ids=["2d", "3d", "1d", "mvit"])
def test_built_modules_match(spec):
    """params == sum(numel), FlopCounterMode == fvcore == cnnstat's MACs, the module imports
    back to the same layers, and the real forward gives the spec's shapes."""
    graph = build_spec(spec_from_text(spec))
    assert_matches(graph, build_graph(graph, "meta"))
    module = build_graph(graph)
    macs = Analysis(graph).totals()["macs"]
    assert fvcore_macs(module, graph.input)["macs"] == macs
    out = module(torch.randn(2, *graph.input))
    assert tuple(out.shape[1:]) == graph.layers[-1].output


def test_to_map_without_size_is_built_only_with_its_size():
    from cnnstat.errors import CnnstatError

    graph = build_spec(spec_from_text("input: [4, 6, 6]\nlayers:\n  - tokens\n  - to_map\n"))
    assert graph.layers[-1].output == (4, 6, 6)
    with pytest.raises(CnnstatError, match="to_map: give 'size' to build it in torch"):
        build_graph(graph, "meta")


def test_global_attention_computes_what_multihead_attention_does():
    torch.manual_seed(0)
    ours = SelfAttention(32, 4, rank=2).eval()
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(ours.qkv.weight)
        mha.in_proj_bias.copy_(ours.qkv.bias)
        mha.out_proj.weight.copy_(ours.proj.weight)
        mha.out_proj.bias.copy_(ours.proj.bias)
        x = torch.randn(2, 32, 5, 6)
        tokens = x.flatten(2).transpose(1, 2)
        want = mha(tokens, tokens, tokens, need_weights=False)[0].transpose(1, 2).reshape(x.shape)
        assert torch.allclose(ours(x), want, atol=1e-5)
    assert numel(ours) == numel(mha)


def _swin(dim, heads, window, shift):
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    return ShiftedWindowAttention(dim, [window, window], [shift, shift], heads).eval()


def test_shifted_windows_compute_what_torchvisions_swin_does():
    """Padding to whole windows, the cyclic shift, its mask and the relative position bias."""
    torch.manual_seed(0)
    ref = _swin(12, 3, 4, 2)
    ours = SelfAttention(12, 3, window=4, shift=2, rel_pos_bias=True, rank=2).eval()
    with torch.no_grad():
        for name in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias", "relative_position_bias_table"):
            ours.get_parameter(name).copy_(ref.get_parameter(name))
        assert torch.equal(ours.relative_position_index, ref.relative_position_index)
        x = torch.randn(2, 12, 10, 11)  # padded to 12x12
        want = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert torch.allclose(ours(x), want, atol=1e-5)


@pytest.mark.parametrize("size", [(56, 56), (30, 45)])
def test_window_attention_against_torchvision_swin(size):
    ref = _swin(96, 3, 7, 3)
    la = one("attention: {heads: 3, window: 7, shift: 3, rel_pos_bias: true}", f"[96, {size[0]}, {size[1]}]")
    assert la.weights + la.biases == numel(ref)
    assert la.buffers == ref.relative_position_index.numel()
    with torch.device("meta"):
        ref = _swin(96, 3, 7, 3)
    assert torch_macs(ref, torch.empty(1, *size, 96, device="meta")) == la.macs


def test_swin_v2_windows_compute_what_torchvisions_swin_v2_does():
    """Cosine attention with its logit scale and the bias from the MLP over the log-spaced
    relative coordinates, in shifted windows of a padded map; counts as the op's."""
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    torch.manual_seed(0)
    ref = ShiftedWindowAttentionV2(12, [4, 4], [2, 2], 3).eval()
    ours = SelfAttention(12, 3, window=4, shift=2, rel_pos_mlp=512, cosine=True, rank=2).eval()
    assert sorted(n for n, _ in ours.named_parameters()) == sorted(n for n, _ in ref.named_parameters())
    with torch.no_grad():
        for name, p in ref.named_parameters():
            ours.get_parameter(name).copy_(p)
        ours.logit_scale.fill_(math.log(20.0))  # not its initial value, as trained models
        ref.logit_scale.fill_(math.log(20.0))
        assert torch.allclose(ours.relative_coords_table, ref.relative_coords_table.reshape(-1, 2))
        assert torch.equal(ours.relative_position_index, ref.relative_position_index)
        x = torch.randn(2, 12, 10, 11)  # padded to 12x12
        want = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert torch.allclose(ours(x), want, atol=1e-5)
    la = one("attention: {heads: 3, window: 4, shift: 2, rel_pos_mlp: 512, cosine: true}", "[12, 10, 11]")
    assert la.weights + la.biases == numel(ref)
    assert la.buffers == sum(b.numel() for b in ref.buffers())
    with torch.device("meta"):
        ref = ShiftedWindowAttentionV2(12, [4, 4], [2, 2], 3).eval()
    assert torch_macs(ref, torch.empty(1, 10, 11, 12, device="meta")) == la.macs


@pytest.mark.parametrize("kind", ["grid", "window"])
def test_grid_and_window_attention_compute_what_maxvits_does(kind):
    """MaxViT's partition (and for the grid its axis swap), its relative positional attention
    and the departition, against cnnstat's ``grid`` / ``window`` with ``rel_pos_bias``. One
    head: MaxViT scales by the features' width, not the head's (no count depends on it)."""
    from torchvision.models.maxvit import (
        RelativePositionalMultiHeadAttention,
        SwapAxes,
        WindowDepartition,
        WindowPartition,
    )

    torch.manual_seed(0)
    c, size, g = 8, (12, 12), 3
    ref = RelativePositionalMultiHeadAttention(c, c, g * g).eval()
    ours = SelfAttention(c, 1, rel_pos_bias=True, rank=2, **{kind: g}).eval()
    p = size[0] // g if kind == "grid" else g  # MaxViT's partition: p x p windows
    swap = SwapAxes(-2, -3) if kind == "grid" else nn.Identity()
    with torch.no_grad():
        for mine, theirs in (("qkv", "to_qkv"), ("proj", "merge")):
            ours.get_submodule(mine).load_state_dict(ref.get_submodule(theirs).state_dict())
        ours.relative_position_bias_table.copy_(ref.relative_position_bias_table)
        assert torch.equal(ours.relative_position_index, ref.relative_position_index.flatten())
        x = torch.randn(2, c, *size)
        y = swap(ref(swap(WindowPartition()(x, p))))
        want = WindowDepartition()(y, p, size[0] // p, size[1] // p)
        assert torch.allclose(ours(x), want, atol=1e-5)
    la = one(f"attention: {{heads: 1, {kind}: {g}, rel_pos_bias: true}}", f"[{c}, 12, 12]")
    assert la.weights + la.biases == numel(ref)
    with torch.device("meta"):
        ref = RelativePositionalMultiHeadAttention(c, c, g * g)
    windows = size[0] * size[1] // (g * g)
    assert torch_macs(ref, torch.empty(1, windows, g * g, c, device="meta")) == la.macs


class PVTAttention(nn.Module):
    """PVT's spatial-reduction attention as its authors write it (features last, q and kv
    projections, a k = s = sr convolution and a layer norm for keys and values)."""

    def __init__(self, dim, heads, sr):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr = nn.Conv2d(dim, dim, sr, sr)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, hw):
        b, n, c = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, c // h).permute(0, 2, 1, 3)
        r = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, *hw)).flatten(2).transpose(1, 2))
        k, v = self.kv(r).reshape(b, -1, 2, h, c // h).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (c // h) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("dim, heads, sr, hw", [(64, 1, 8, (56, 56)), (32, 2, 4, (30, 45))])
def test_spatial_reduction_against_pvts_attention(dim, heads, sr, hw):
    la = one(f"attention: {{heads: {heads}, sr: {sr}}}", f"[{dim}, {hw[0]}, {hw[1]}]")
    with torch.device("meta"):
        ref = PVTAttention(dim, heads, sr)
    assert la.weights + la.biases == numel(ref)
    assert torch_macs(ref, torch.empty(1, math.prod(hw), dim, device="meta"), hw) == la.macs


# --- receptive fields, measured by autograd --------------------------------------------------------


def _field(module, x, unit) -> list:
    """First and last input index with a non-zero gradient of output ``unit``, per axis."""
    x = x.clone().requires_grad_(True)
    module(x)[(0, slice(None), *unit)].sum().backward()
    hit = x.grad[0].abs().sum(0) != 0
    out = []
    for axis in range(hit.dim()):
        other = tuple(a for a in range(hit.dim()) if a != axis)
        idx = hit.any(dim=other).nonzero().flatten() if other else hit.nonzero().flatten()
        out.append((int(idx.min()), int(idx.max())))
    return out


def structural(module: nn.Module) -> nn.Module:
    """``module`` (cnnstat's built modules) with its connectivity made measurable: every
    weight positive (so is the input below: a gradient is a sum of positive terms, zero exactly
    off the field), attention with zero queries, keys and position bias (the logits are
    constant, so the softmax's mixed-sign derivative meets no weights; the values carry the
    connectivity, and they read every unit a query may attend to), Swin's mask exact (its -100
    logits, a weight of e^-100 by torchvision's convention not attended to, made -1e8: exp
    gives 0), layer norms and GELU (per position, derivatives of mixed sign) the identity."""
    with torch.no_grad():
        for p in module.parameters():
            fan = p[0].numel() if p.dim() > 1 else 1
            p.uniform_(0.5 / fan, 1.5 / fan)
    for m in list(module.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, (nn.LayerNorm, nn.GELU)):
                setattr(m, name, nn.Identity())
        if isinstance(m, SelfAttention):
            with torch.no_grad():
                m.qkv.weight[: 2 * m.dim] = 0
                if m.qkv.bias is not None:
                    m.qkv.bias[: 2 * m.dim] = 0
                if m.rel_pos_bias:
                    m.relative_position_bias_table.zero_()
            m._mask = lambda *args, mask=m._mask: mask(*args) * 1e6
    return module


def measured_fields(graph, probes: dict) -> dict:
    """``{layer name: [unit, ...]}`` -> per unit, per spatial axis, the first and last input
    pixel whose gradient reaches the unit (float64, :func:`structural` weights; summed over
    the unit's channels). The layers after the last probed one are not built."""
    last = max(i for i, la in enumerate(graph.layers) if la.name in probes)
    pruned = copy.copy(graph)
    pruned.layers = graph.layers[: last + 1]
    torch.manual_seed(0)
    module = structural(build_graph(pruned).double().eval())
    outputs = {}
    for name in probes:
        module.get_submodule(name).register_forward_hook(lambda m, i, o, n=name: outputs.setdefault(n, o))
    x = (torch.rand(1, *graph.input, dtype=torch.float64) + 0.5).requires_grad_(True)
    module(x)
    found = {}
    for name, units in probes.items():
        y = outputs[name][0].sum(0)
        found[name] = []
        for unit in units:
            (grad,) = torch.autograd.grad(y[tuple(unit)], x, retain_graph=True)
            assert (grad >= 0).all() and torch.isfinite(grad).all()
            hit = grad[0].sum(0) != 0
            per_axis = []
            for axis in range(hit.dim()):
                other = tuple(a for a in range(hit.dim()) if a != axis)
                idx = (hit.any(dim=other) if other else hit).nonzero().flatten()
                per_axis.append((int(idx.min()), int(idx.max())) if len(idx) else None)
            found[name].append(per_axis)
    return found


def reported_field(rf, unit, sizes) -> list:
    """Per axis, the analyzer's field of ``unit`` (``RF.table``: unit ``u + P`` sees unit
    ``u``'s field shifted by ``P x jump``) clipped to the input's ``sizes``."""
    out = []
    for i, n in enumerate(sizes):
        table = rf.table(i)
        period = len(table)
        first, last = table[unit[i] % period]
        shift = unit[i] // period * period * rf.jump[i]
        first, last = max(first + shift, 0), min(last + shift, n - 1)
        out.append((int(first), int(last)) if first <= last else None)
    return out


def diagonal(extent) -> list:
    """Units that take every index on every axis (a field along an axis depends only on the
    unit's index on that axis: windows and masks are products over the axes)."""
    return [tuple(k % e for e in extent) for k in range(max(extent))]


def test_window_fields_by_hand():
    # W-MSA over 28 units, windows of 7: units 0-6 all see units 0-6
    text = "input: [8, 28]\nlayers:\n  - attention: {heads: 2, window: 7}\n"
    wmsa, swmsa = analyze_text(text + "  - attention: {heads: 2, window: 7, shift: 3}\n").layers
    assert wmsa.rf.phases == (((0, 6),) * 7,) and wmsa.rf.size == (7,) and wmsa.rf.jump == (1,)
    # centre 3 - u for u = 0..6: mean 0 (a sliding window of 7 centred, padded by 3, has the same)
    assert wmsa.rf.start == (0,)
    # SW-MSA, shift 3: units 3-9 attend to each other; they straddle W-MSA's windows 0-6 and
    # 7-13, so they see 14 units (sliding windows would say 7 + 7 - 1 = 13); units 0-2 are
    # the window of units -4..2 (the map's start: 0-2 only, torchvision's mask)
    assert swmsa.rf.phases == (((-7, 6),) * 3 + ((0, 13),) * 4,)
    assert swmsa.rf.size == (14,)
    # centres -0.5 (units 0-2) and 6.5 (3-6) less u: mean (-4.5 + 8) / 7 = 0.5
    assert swmsa.rf.start == (0.5,)
    # no shift where one window covers the map (torchvision turns it off): 5 rows, windows of 7
    la = one("attention: {heads: 2, window: 7, shift: 3}", "[8, 5, 9]")
    assert la.rf.phases == (((0, 6),) * 7, ((-4, 2),) * 3 + ((3, 9),) * 4)
    assert la.rf.size == (7, 7)  # the 5 rows and their padding to a whole window
    assert la.rf.start == (0, 0)


ONE_D_WINDOWS = """
input: [8, 28]
layers:
  - attention: {heads: 2, window: 7}
  - attention: {heads: 2, window: 7, shift: 3}
"""

# 30 units: padded to 35 (windows of 7), then to 16 (windows of 4); conv k = s = 2 merges as
# Swin's patch merging does (1-D: pixel_unshuffle is 2-D)
ONE_D_PADDED = """
input: [4, 30]
layers:
  - attention: {heads: 2, window: 7, shift: 3}
  - attention: {heads: 2, window: 7}
  - attention: {heads: 2, window: 7, shift: 3}
  - conv: {out: 4, k: 2, s: 2}
  - attention: {heads: 2, window: 4, shift: 2}
  - attention: {heads: 2, window: 4}
"""

# per-axis windows and shifts, a 22 x 17 map (padded to 24 x 20), Swin's patch merging of an
# odd map (17 -> 9 columns), then 11 x 9 in windows of 3 (padded to 12 x 9)
TWO_D_WINDOWS = """
input: [4, 22, 17]
layers:
  - attention: {heads: 2, window: [3, 4], shift: [1, 2], rel_pos_bias: true}
  - attention: {heads: 2, window: [3, 4]}
  - pixel_unshuffle: {factor: 2, pad: true}
  - linear: {out: 4}
  - attention: {heads: 2, window: 3, shift: 1}
  - attention: {heads: 2, window: 3, rel_pos_bias: true}
"""

# grid attention: 12 rows in a grid of 3 (units 4 apart), 8 columns in a grid of 2 (4 apart),
# after a 3x3 convolution, then windows
GRID = """
input: [4, 12, 8]
layers:
  - conv: {out: 4, k: 3, p: 1}
  - attention: {heads: 2, grid: [3, 2], rel_pos_bias: true}
  - attention: {heads: 2, window: 4}
"""

# one window covers the 5 rows: no shift along them (torchvision), shifted along the 9 columns
SMALL_MAP = """
input: [4, 5, 9]
layers:
  - attention: {heads: 2, window: 7}
  - attention: {heads: 2, window: 7, shift: 3}
  - attention: {heads: 2, window: 7}
"""


@pytest.mark.parametrize(
    "text, sizes",
    [
        (ONE_D_WINDOWS, {"attention1": (7,), "attention2": (14,)}),
        (ONE_D_PADDED, {"attention1": (7,), "attention2": (14,), "attention3": (21,)}),
        (TWO_D_WINDOWS, {"attention1": (3, 4), "attention2": (6, 8), "pixel_unshuffle1": (9, 8)}),
        (SMALL_MAP, {"attention1": (5, 7)}),  # reported (7, 7): 2 of the 7 rows are padding
        # unit 1 of the rows reads rows 1, 5, 9 through the convolution: 0 .. 10
        (GRID, {"attention1": (11, 7)}),
    ],
    ids=["1d", "1d-padded-merged", "2d-padded-merged", "one-window", "grid"],
)
def test_window_fields_by_autograd(text, sizes):
    """Every layer: each unit's measured field (every unit in 1-D, every index of every axis in
    2-D) is the analyzer's per-phase field clipped to the input; ``sizes``: the widest field
    measured, where the input holds it whole the reported size (the analyzer's)."""
    graph = build_spec(spec_from_text(text))
    probes = {la.name: diagonal(la.output[1:]) for la in graph.layers}
    found = measured_fields(graph, probes)
    for la in graph.layers:
        for unit, got in zip(probes[la.name], found[la.name]):
            assert got == reported_field(la.rf, unit, graph.input[1:]), f"{la.name} unit {unit}"
        if la.name in sizes:
            axes = range(len(graph.input) - 1)
            assert tuple(max(f[i][1] - f[i][0] + 1 for f in found[la.name]) for i in axes) == sizes[la.name]
            if text != SMALL_MAP:
                assert la.rf.size == sizes[la.name]


def test_windows_as_torchvisions_swin_attention_reads():
    """torchvision's own ShiftedWindowAttention (channels last) measured the same way: the
    analyzer's per-unit fields are those of torchvision's padding, roll and mask."""
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    la = one("attention: {heads: 2, window: [3, 4], shift: [1, 2], rel_pos_bias: true}", "[6, 22, 17]")
    torch.manual_seed(0)
    ref = structural(ShiftedWindowAttention(6, [3, 4], [1, 2], 2).double().eval())
    with torch.no_grad():
        ref.qkv.weight[:12] = 0
        ref.qkv.bias[:12] = 0
        ref.relative_position_bias_table.zero_()
    x = (torch.rand(1, 22, 17, 6, dtype=torch.float64) + 0.5).requires_grad_(True)
    softmax = F.softmax
    # the logits are 0, or -100 where masked: made -1e8, whose exp is 0 (not attended to)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "softmax", lambda a, dim: softmax(a * 1e6, dim))
        y = ref(x)[0].sum(-1)
    for unit in diagonal((22, 17)):
        (grad,) = torch.autograd.grad(y[unit], x, retain_graph=True)
        hit = grad[0].sum(-1) != 0
        rows, cols = hit.any(1).nonzero().flatten(), hit.any(0).nonzero().flatten()
        got = [(int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))]
        assert got == reported_field(la.rf, unit, (22, 17)), unit
    assert la.rf.size == (3, 4)


def test_global_attention_sees_everything():
    torch.manual_seed(0)
    module = SelfAttention(8, 2, rank=2).double()
    x = torch.randn(1, 8, 5, 7, dtype=torch.float64)
    assert _field(module, x, (0, 0)) == [(0, 4), (0, 6)]
    la = one("attention: {heads: 2}", "[8, 5, 7]")
    assert la.rf.collapsed and la.rf.size == (5, 7) and la.rf.start == (2.0, 3.0)


# --- whole networks -------------------------------------------------------------------------------

VIT = """
cnnstat: 1
name: vit
input: [3, RES, RES]
PARAMS
blocks:
  encoder_block:
    description: pre-norm attention and MLP, each with a residual connection
    body:
      - add:
          attn: [layernorm, attention: {heads: $heads}]
          skip: identity
      - add:
          mlp: [layernorm, linear: {out: $mlp}, gelu, linear: {out: $width}]
          skip: identity
layers:
  - conv: {name: conv_proj, out: $width, k: $patch, s: $patch}
  - tokens
  - class_token
  - pos_embed
  - encoder_block: {name: layer, repeat: $depth}
  - layernorm
  - take
  - fc: {name: head, out: $classes}
"""


VIT_PARAMS = dict(res=224, patch=16, width=768, depth=12, heads=12, mlp=3072, classes=1000)


def vit(**params) -> str:
    values = {**VIT_PARAMS, **params}
    line = "params: {" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"
    return norms(VIT).replace("PARAMS", line).replace("RES", str(values["res"]))


class ReferenceViT(nn.Module):
    """A ViT as it is usually written (features last, timm's layout), independently of cnnstat."""

    def __init__(self, res, patch, width, depth, heads, mlp, classes, norm=nn.LayerNorm):
        super().__init__()
        n = (res // patch) ** 2
        self.patch = nn.Conv2d(3, width, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, width))
        self.heads = heads
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                dict(
                    norm1=norm(width),
                    qkv=nn.Linear(width, 3 * width),
                    proj=nn.Linear(width, width),
                    norm2=norm(width),
                    fc1=nn.Linear(width, mlp),
                    fc2=nn.Linear(mlp, width),
                )
            )
            for _ in range(depth)
        )
        self.norm = norm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        b, n, c = x.shape
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["norm1"](x)).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1)
            x = x + blk["proj"]((attn @ v).transpose(1, 2).reshape(b, n, c))
            x = x + blk["fc2"](F.gelu(blk["fc1"](blk["norm2"](x))))
        return self.head(self.norm(x)[:, 0])


def test_small_vit_against_an_independent_module():
    params = dict(res=64, patch=16, width=48, depth=2, heads=3, mlp=96, classes=10)
    graph = build_spec(spec_from_text(vit(**params)))
    t = Analysis(graph).totals()
    ref = ReferenceViT(**params, norm=nn.LayerNorm if HAS_LN else (lambda c: nn.Identity()))
    assert t["params"] == numel(ref)
    assert t["macs"] == torch_macs(ref, torch.empty(1, 3, 64, 64))
    # by hand: patches 16 x 48 x 768; per block, 17 tokens: qkv, proj, QK^T and AV, two MLP layers
    per_block = 17 * 48 * 144 + 17 * 48 * 48 + 2 * 17 * 17 * 48 + 2 * 17 * 48 * 96
    assert t["macs"] == 16 * 48 * 768 + 2 * per_block + 48 * 10
    if HAS_LN:  # (the importer binds an nn.Identity stand-in's output to the stand-in)
        assert_matches(graph, build_graph(graph, "meta"))
    # receptive field: every unit sees the whole input from the first attention on; the
    # network's field is, as before global pooling in a CNN, that of the units before it: a patch
    layers = {la.name: la for la in graph.layers}
    assert layers["layer.0.add1.attn.attention1"].rf.collapsed
    assert layers["layer.0.add1.attn.attention1"].rf.size == (64, 64)
    rf_layer = Analysis(graph).receptive_field()
    assert rf_layer.name == f"{LN}1" and rf_layer.rf.size == (16, 16) and rf_layer.rf.jump == (16, 16)


def test_vit_b_16_is_torchvisions():
    """ViT-B/16 at 224x224: parameters as torchvision's vit_b_16, MACs as FlopCounterMode
    counts torchvision's module and as its weights' metadata publishes (17.564 GFLOPS)."""
    from torchvision.models import ViT_B_16_Weights, vit_b_16

    graph = build_spec(spec_from_text(vit()))
    t = Analysis(graph).totals()
    with torch.device("meta"):
        ref = vit_b_16().eval()
    assert t["params"] + ln_params(graph) == numel(ref) == 86_567_656
    assert t["macs"] == torch_macs(ref, torch.empty(1, 3, 224, 224, device="meta")) == 17_563_828_224
    assert round(t["macs"] / 1e9, 3) == ViT_B_16_Weights.IMAGENET1K_V1.meta["_ops"]


CONVNEXT_T = """
cnnstat: 1
name: convnext_tiny
input: [3, 224, 224]
blocks:
  cnblock:
    params: {dim: int}
    body:
      - add:
          main: [dwconv: {k: 7, p: 3}, layernorm, linear: {out: $(4 * dim)}, gelu, linear: {out: $dim}, scale]
          skip: identity
  stage:
    params: {dim: int, n: int, down: true}
    body:
      - layernorm: {if: $down}
      - conv: {if: $down, out: $dim, k: 2, s: 2}
      - cnblock: {name: block, repeat: $n, dim: $dim}
layers:
  - conv: {out: 96, k: 4, s: 4}
  - layernorm
  - stage: {dim: 96, n: 3, down: false}
  - stage: {dim: 192, n: 3}
  - stage: {dim: 384, n: 9}
  - stage: {dim: 768, n: 3}
  - gap
  - layernorm
  - flatten
  - fc: {out: 1000}
"""


def test_convnext_tiny_is_torchvisions():
    """ConvNeXt-T: linear over maps, layer scale; parameters and MACs as torchvision's."""
    from torchvision.models import ConvNeXt_Tiny_Weights, convnext_tiny

    graph = build_spec(spec_from_text(norms(CONVNEXT_T)))
    t = Analysis(graph).totals()
    with torch.device("meta"):
        ref = convnext_tiny().eval()
    assert t["params"] + ln_params(graph) == numel(ref) == 28_589_128
    assert t["macs"] == torch_macs(ref, torch.empty(1, 3, 224, 224, device="meta")) == 4_455_531_264
    assert round(t["macs"] / 1e9, 3) == ConvNeXt_Tiny_Weights.IMAGENET1K_V1.meta["_ops"]
