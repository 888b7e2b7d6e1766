"""ConvNeXt (specs/convnext.yaml), ViT (specs/vit.yaml) and Swin (specs/swin.yaml) against
torchvision's published figures and its own modules.

tests/test_zoo.py and tests/test_torch_build.py already check every zoo model's invariants and
its build -> torch -> import round trip; this file pins torchvision's published numbers, counts
torchvision's modules on the meta device (sum(p.numel()), buffers, PyTorch's FlopCounterMode),
runs the built modules against torchvision's with the same weights (the specs compute what
torchvision computes, not only the same counts), and checks the receptive fields by hand and by
autograd (ConvNeXt: tests/test_rf_oracle.py; Swin: test_ops_attention's structural weights).
"""

import dataclasses

import pytest
import torch
import torchvision
from torch import nn

from cnnstat.analysis import Analysis, analyze
from cnnstat.spec.build import build as build_spec
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs
from cnnstat.zoo import get, list_models
from helpers import assert_published

# torchvision's weights metadata (torchvision/models/{convnext,vision_transformer,
# swin_transformer}.py, *_Weights.IMAGENET1K_V1): "num_params" exact and "_ops" (GMAC of conv,
# linear and attention matrix products at 224x224) to the printed digits.
TORCHVISION = {
    "convnext_tiny": (28_589_128, 4.456),
    "convnext_small": (50_223_688, 8.684),
    "convnext_base": (88_591_464, 15.355),
    "convnext_large": (197_767_336, 34.361),
    "vit_b_16": (86_567_656, 17.564),
    "vit_b_32": (88_224_232, 4.409),
    "vit_l_16": (304_326_632, 61.555),
    "vit_l_32": (306_535_400, 15.378),
    "swin_t": (28_288_354, 4.491),
    "swin_s": (49_606_258, 8.741),
    "swin_b": (87_768_224, 15.431),
}
# cnnstat's exact MACs (== FlopCounterMode on torchvision's module, below)
MACS = {
    "convnext_tiny": 4_455_531_264,
    "convnext_small": 8_683_712_256,
    "convnext_base": 15_354_729_472,
    "convnext_large": 34_361_433_600,
    "vit_b_16": 17_563_828_224,
    "vit_b_32": 4_409_186_304,
    "vit_l_16": 61_554_712_576,
    "vit_l_32": 15_377_539_072,
    "swin_t": 4_490_566_656,
    "swin_s": 8_740_875_264,
    "swin_b": 15_430_946_816,
}
# torchvision's buffers: Swin's relative_position_index, 49 x 49 per block (12 or 24 blocks)
BUFFERS = {"swin_t": 12 * 49 * 49, "swin_s": 24 * 49 * 49, "swin_b": 24 * 49 * 49}

# ViT-H/14 at 518x518 (ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1): vit.yaml's layers with other
# params and input; not a zoo variant (see vit.yaml).
VIT_H_14 = {"patch": 14, "width": 1280, "depth": 32, "heads": 16, "mlp": 5120}


def small(name, input=None, **params):
    """A zoo spec's layers with other params (and input)."""
    spec = get(name)
    return build_spec(dataclasses.replace(spec, params={**spec.params, **params}, input=input or spec.input))


def test_the_zoo_has_them():
    assert set(TORCHVISION) <= set(list_models())
    assert list_models("convnext*") == ["convnext_base", "convnext_large", "convnext_small", "convnext_tiny"]
    assert list_models("vit*") == ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32"]
    assert list_models("swin*") == ["swin_b", "swin_s", "swin_t"]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_figures(name):
    params, gmac = TORCHVISION[name]
    assert_published(name, params, gmac)
    totals = analyze(name).totals()
    assert totals["macs"] == MACS[name]
    assert totals["buffers"] == BUFFERS.get(name, 0)
    assert get(name).input == (3, 224, 224)


@pytest.mark.parametrize("name", [*TORCHVISION, "vit_h_14"])
def test_pinned_figures_are_the_installed_torchvision_metadata(name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    if name == "vit_h_14":
        assert weights.name == "IMAGENET1K_SWAG_E2E_V1"
        assert (weights.meta["num_params"], weights.meta["_ops"]) == (633_470_440, 1016.717)
        assert weights.transforms.keywords["crop_size"] == 518
        return
    assert weights.name == "IMAGENET1K_V1"
    assert (weights.meta["num_params"], weights.meta["_ops"]) == TORCHVISION[name]
    assert weights.transforms.keywords["crop_size"] == 224


def meta_module(name, **kwargs):
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_module(name):
    """torchvision's own module on the meta device: its parameters, its buffers, and PyTorch's
    FlopCounterMode (conv, linear, and the attention's matrix products) at 224x224."""
    module = meta_module(name)
    assert sum(p.numel() for p in module.parameters()) == TORCHVISION[name][0]
    assert sum(b.numel() for b in module.buffers()) == BUFFERS.get(name, 0)
    assert flop_counter_macs(module, (3, 224, 224)) == MACS[name]


# torchvision's Swin at 1920x1080 (meta device, FlopCounterMode): its windows are padded at run
# time and its patch merging pads odd maps (135x240 -> 136x240 after stage 2, 34x60 after 3)
SWIN_FULL_HD_MACS = {"swin_t": 190_578_132_096, "swin_s": 372_499_207_296, "swin_b": 657_475_847_680}


def test_swin_t_over_a_full_hd_frame(run):
    import json

    res = run("flops", "swin_t", "--mode", "frame", "--resolution", "1920x1080", "--format", "json")
    assert res.exit_code == 0, res.stdout[-2000:]
    (row,) = json.loads(res.stdout)
    assert row["macs_per_frame"] == SWIN_FULL_HD_MACS["swin_t"] and row["output"] == [1000, 1, 1]
    graph = build_spec(get("swin_t"), (3, 1080, 1920))
    layers = {la.name: la for la in graph.layers}
    maps = [layers[f"stage{k}.0.wmsa.add1"].output[1:] for k in (1, 2, 3, 4)]
    assert maps == [(270, 480), (135, 240), (68, 120), (34, 60)]
    module = meta_module("swin_t")
    assert (
        sum(p.numel() for p in module.parameters())
        == Analysis(graph).totals()["params"]
        == TORCHVISION["swin_t"][0]
    )
    assert flop_counter_macs(module, (3, 1080, 1920)) == SWIN_FULL_HD_MACS["swin_t"]


@pytest.mark.parametrize("name", ["swin_s", "swin_b"])
def test_swin_at_full_hd_is_torchvisions(name):
    totals = Analysis(build_spec(get(name), (3, 1080, 1920))).totals()
    assert totals["macs"] == SWIN_FULL_HD_MACS[name] and totals["params"] == TORCHVISION[name][0]
    assert flop_counter_macs(meta_module(name), (3, 1080, 1920)) == SWIN_FULL_HD_MACS[name]


def test_vit_h_14_from_the_same_layers():
    totals = Analysis(small("vit_b_16", (3, 518, 518), **VIT_H_14)).totals()
    assert totals["params"] == 633_470_440
    assert round(totals["macs"] / 1e9, 3) == 1016.717
    module = meta_module("vit_h_14", image_size=518)
    assert sum(p.numel() for p in module.parameters()) == totals["params"]
    assert flop_counter_macs(module, (3, 518, 518)) == totals["macs"] == 1_016_716_764_160


# --- layer by layer, by hand ---------------------------------------------------------------------


def layers(name):
    return {la.name: la for la in analyze(name).layers}


def test_convnext_blocks():
    ls = layers("convnext_tiny")
    assert ls["stem"].output == (96, 56, 56) and ls["stem"].params == 96 * 3 * 16 + 96
    block = "stage3.block.4.add1.main."
    assert ls[block + "dwconv1"].params == 384 * 49 + 384
    assert ls[block + "linear1"].output == (1536, 14, 14)
    assert ls[block + "linear1"].params == 384 * 1536 + 1536
    assert ls[block + "linear1"].macs == 14 * 14 * 384 * 1536
    assert ls[block + "scale1"].params == 384  # layer scale
    # downsampling: LayerNorm then 2x2 stride-2 conv; none before stage 1
    assert ls["stage4.conv1"].output == (768, 7, 7) and ls["stage4.conv1"].params == 384 * 768 * 4 + 768
    assert "stage1.conv1" not in ls and "stage1.layernorm1" not in ls
    assert ls["fc1"].params == 768 * 1000 + 1000
    assert sum(name.endswith(".add1") for name in ls) == 3 + 3 + 9 + 3
    assert sum(name.endswith(".add1") for name in layers("convnext_large")) == 3 + 3 + 27 + 3


def test_vit_layers():
    ls = layers("vit_b_16")
    assert ls["tokens1"].output == (768, 196)
    assert ls["class_token1"].output == (768, 197) and ls["class_token1"].params == 768
    assert ls["pos_embed1"].params == 768 * 197
    attn = ls["layer.11.add1.attn.attention1"]
    assert attn.params == 768 * 2304 + 2304 + 768 * 768 + 768
    assert attn.macs == 197 * 768 * 2304 + 197 * 768 * 768 + 2 * 197 * 197 * 768
    assert ls["layer.11.add2.mlp.linear1"].output == (3072, 197)
    assert ls["take1"].output == (768,) and ls["head"].params == 768 * 1000 + 1000
    assert "layer.12.add1" not in ls
    assert layers("vit_b_32")["pos_embed1"].params == 768 * (7 * 7 + 1)


def test_swin_layers_against_torchvisions_modules():
    ls = layers("swin_t")
    ref = meta_module("swin_t")

    def numel(module):
        return sum(p.numel() for p in module.parameters())

    # stage 3, block 4 (torchvision's features[5][4]): a W-MSA block
    attn = ls["stage3.2.wmsa.add1.attn.attention1"]
    assert attn.output == (384, 14, 14)
    assert attn.params == numel(ref.features[5][4].attn) == 384 * 1152 + 1152 + 384 * 384 + 384 + 169 * 12
    assert attn.buffers == ref.features[5][4].attn.relative_position_index.numel() == 49 * 49
    # 14x14 map, 4 windows of 49: projections, then Q.K^T and A.V in each window
    assert attn.macs == 196 * 384 * 1152 + 196 * 384 * 384 + 2 * 196 * 49 * 384
    mlp = ls["stage3.2.swmsa.add2.mlp.linear1"]
    assert mlp.output == (1536, 14, 14) and mlp.params == numel(ref.features[5][5].mlp[0])
    # patch merging (features[2], [4], [6]): LayerNorm(4C) and a linear 4C -> 2C without bias
    for merge, tv in (("merge1", 2), ("merge2", 4), ("merge3", 6)):
        got = sum(ls[f"{merge}.{la}"].params for la in ("pixel_unshuffle1", "layernorm1", "linear1"))
        assert got == numel(ref.features[tv])
    assert ls["merge1.pixel_unshuffle1"].output == (384, 28, 28)
    assert ls["merge1.linear1"].output == (192, 28, 28) and ls["merge1.linear1"].biases == 0
    assert ls["norm"].output == (768, 7, 7) and ls["head"].params == numel(ref.head)


# --- the built modules compute what torchvision's do -----------------------------------------------
# The zoo's specs with small widths and depths (their layers unchanged) against torchvision's
# classes with the same configuration, in float64 with the same weights: the spec computes what
# torchvision computes (layer order, shifts and masks, the class token's place), not only the
# same counts. Small, so that a forward costs milliseconds.


def _cpu(meta):
    """A module made on the meta device, in float64 on the CPU, its parameters random."""
    module = meta.to(torch.float64).to_empty(device="cpu").eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.2, generator=gen)
    return module


def _torchvision(cls, *args, **kwargs):
    with torch.device("meta"):
        return _cpu(cls(*args, **kwargs))


def _copy(ours, ref, pairs):
    """Copy torchvision's parameters into the built module: ``pairs`` maps our parameter name
    to (torchvision's name, transform). Every parameter of both is used exactly once."""
    theirs = dict(ref.named_parameters())
    assert set(pairs) == {n for n, _ in ours.named_parameters()}
    assert sorted(src for src, _ in pairs.values()) == sorted(theirs)
    with torch.no_grad():
        for name, (src, fn) in pairs.items():
            ours.get_parameter(name).copy_(fn(theirs[src]))


def _same(x):
    return x


def _pairs(prefix, src, names=(("weight", "weight"), ("bias", "bias")), fn=_same):
    return {f"{prefix}.{n}": (f"{src}.{m}", fn) for n, m in names}


def _block_pairs(ours, theirs, qkv, proj, ln1, ln2, mlp1, mlp2):
    """A pre-norm encoder block (blocks/transformer.yaml) from torchvision's names."""
    attn = f"{ours}.add1.attn.attention1"
    pairs = _pairs(f"{ours}.add1.attn.layernorm1", f"{theirs}.{ln1}")
    pairs |= _pairs(attn, theirs, (("qkv.weight", qkv[0]), ("qkv.bias", qkv[1])))
    pairs |= _pairs(attn, theirs, (("proj.weight", proj[0]), ("proj.bias", proj[1])))
    pairs |= _pairs(f"{ours}.add2.mlp.layernorm1", f"{theirs}.{ln2}")
    pairs |= _pairs(f"{ours}.add2.mlp.linear1.linear", f"{theirs}.{mlp1}")
    pairs |= _pairs(f"{ours}.add2.mlp.linear2.linear", f"{theirs}.{mlp2}")
    return pairs


def _compare(graph, ours, ref):
    assert sum(p.numel() for p in ours.parameters()) == Analysis(graph).totals()["params"]
    assert sum(p.numel() for p in ref.parameters()) == Analysis(graph).totals()["params"]
    x = torch.randn(1, *graph.input, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape == (1, 1000)
    assert want.abs().max() > 0.1  # not a vanishing signal
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9), (got - want).abs().max()


@pytest.mark.parametrize("hw", [(64, 64), (72, 84)])
def test_built_swin_is_torchvisions(hw):
    """Swin-T's layers at width 16 (heads 1-2-4-8), depths 2-2-2-2. At 64x64: maps of 16, 8, 4
    and 2, padded to whole 7x7 windows (21, 14, 7, 7); shifted windows with their masks in
    stages 1-2, no shift where one window covers the map (stages 3-4). At 72x84: maps 18x21,
    9x11, 5x6 and 3x3: patch merging pads the odd maps by a zero row or column at their end
    (pixel_unshuffle's pad, torchvision's _patch_merging_pad)."""
    from torchvision.models.swin_transformer import SwinTransformer

    from cnnstat.torch.ops.attention import relative_position_index

    c, depths = 16, (2, 2, 2, 2)
    graph = small("swin_t", (3, *hw), c=c, h=1, n3=2)
    maps = [la.output[1:] for la in graph.layers if la.name.endswith(".wmsa.add1")]
    assert maps == (
        [(16, 16), (8, 8), (4, 4), (2, 2)] if hw == (64, 64) else [(18, 21), (9, 11), (5, 6), (3, 3)]
    )
    ours = _cpu(build_graph(graph, "meta"))
    ref = _torchvision(SwinTransformer, [4, 4], c, list(depths), [1, 2, 4, 8], [7, 7])
    for m in ref.modules():  # to_empty left the buffers uninitialised: torchvision's own index
        if hasattr(m, "define_relative_position_index"):
            m.define_relative_position_index()
    buffers = [name for name, _ in ours.named_buffers()]
    assert len(buffers) == sum(depths)
    for name in buffers:  # and ours (cnnstat's function, checked equal to torchvision's below)
        module, _, buffer = name.rpartition(".")
        ours.get_submodule(module).register_buffer(buffer, relative_position_index((7, 7)))
    index = ref.features[1][0].attn.relative_position_index
    assert all(torch.equal(b, index) for b in ours.buffers())

    pairs = _pairs("patch_embed", "features.0.0") | _pairs("layernorm1", "features.0.2")
    pairs |= _pairs("norm", "norm") | _pairs("head", "head")
    qkv, proj = ("attn.qkv.weight", "attn.qkv.bias"), ("attn.proj.weight", "attn.proj.bias")
    for stage, depth in enumerate(depths, 1):
        for i in range(depth):
            ours_block = f"stage{stage}.{i // 2}.{('wmsa', 'swmsa')[i % 2]}"
            theirs = f"features.{2 * stage - 1}.{i}"
            pairs |= _block_pairs(ours_block, theirs, qkv, proj, "norm1", "norm2", "mlp.0", "mlp.3")
            table = f"{ours_block}.add1.attn.attention1.relative_position_bias_table"
            pairs[table] = (f"{theirs}.attn.relative_position_bias_table", _same)
    for k in (1, 2, 3):
        # pixel_unshuffle's channel 4ch + 2dy + dx is torchvision's concat channel
        # (dy + 2dx) C + ch (x0 = [0::2, 0::2], x1 = [1::2, 0::2], x2 = [0::2, 1::2], x3 = [1::2, 1::2])
        width = c * 2 ** (k - 1)
        perm = [(dy + 2 * dx) * width + ch for ch in range(width) for dy in (0, 1) for dx in (0, 1)]
        pairs |= _pairs(f"merge{k}.layernorm1", f"features.{2 * k}.norm", fn=lambda t, p=perm: t[p])
        pairs[f"merge{k}.linear1.linear.weight"] = (
            f"features.{2 * k}.reduction.weight",
            lambda t, p=perm: t[:, p],
        )
    _copy(ours, ref, pairs)
    _compare(graph, ours, ref)


def test_built_convnext_is_torchvisions():
    """ConvNeXt-T's layers at widths 16-32-64-128, depths 3-3-2-3, at 64x64."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    widths, depths = (16, 32, 64, 128), (3, 3, 2, 3)
    graph = small("convnext_tiny", (3, 64, 64), c1=16, c2=32, c3=64, c4=128, n3=2)
    ours = _cpu(build_graph(graph, "meta"))
    setting = [CNBlockConfig(w, n, d) for w, n, d in zip(widths, (*widths[1:], None), depths)]
    ref = _torchvision(ConvNeXt, setting)
    pairs = _pairs("stem", "features.0.0") | _pairs("layernorm1", "features.0.1")
    pairs |= _pairs("layernorm2", "classifier.0") | _pairs("fc1", "classifier.2")
    for stage, depth in enumerate(depths, 1):
        if stage > 1:
            pairs |= _pairs(f"stage{stage}.layernorm1", f"features.{2 * stage - 2}.0")
            pairs |= _pairs(f"stage{stage}.conv1", f"features.{2 * stage - 2}.1")
        for i in range(depth):
            ours_block, theirs = f"stage{stage}.block.{i}.add1.main", f"features.{2 * stage - 1}.{i}"
            pairs |= _pairs(f"{ours_block}.dwconv1", f"{theirs}.block.0")
            pairs |= _pairs(f"{ours_block}.layernorm1", f"{theirs}.block.2")
            pairs |= _pairs(f"{ours_block}.linear1.linear", f"{theirs}.block.3")
            pairs |= _pairs(f"{ours_block}.linear2.linear", f"{theirs}.block.5")
            pairs[f"{ours_block}.scale1.gamma"] = (f"{theirs}.layer_scale", lambda t: t.flatten())
    _copy(ours, ref, pairs)
    _compare(graph, ours, ref)


def test_built_vit_is_torchvisions():
    """ViT's layers at width 64, 4 heads, MLP 128, 2 blocks, patches of 32 at 224x224."""
    from torchvision.models.vision_transformer import VisionTransformer

    graph = small("vit_b_16", patch=32, width=64, depth=2, heads=4, mlp=128)
    ours = _cpu(build_graph(graph, "meta"))
    ref = _torchvision(VisionTransformer, 224, 32, 2, 4, 64, 128)
    pairs = _pairs("conv_proj", "conv_proj") | _pairs("ln", "encoder.ln") | _pairs("head", "heads.head")
    pairs["class_token1.token"] = ("class_token", lambda t: t.transpose(1, 2))  # [1, 1, D] -> [1, D, 1]
    pairs["pos_embed1.embedding"] = ("encoder.pos_embedding", lambda t: t.transpose(1, 2))  # [1, D, N]
    for i in range(2):
        pairs |= _block_pairs(
            f"layer.{i}",
            f"encoder.layers.encoder_layer_{i}",
            ("self_attention.in_proj_weight", "self_attention.in_proj_bias"),
            ("self_attention.out_proj.weight", "self_attention.out_proj.bias"),
            "ln_1",
            "ln_2",
            "mlp.0",
            "mlp.3",
        )
    _copy(ours, ref, pairs)
    _compare(graph, ours, ref)


# --- receptive fields --------------------------------------------------------------------------------


def test_convnext_receptive_field_by_hand():
    # stem 4x4/4 (field 4, jump 4); every 7x7 depthwise conv adds 6 x jump; every 2x2/2
    # downsampling conv adds 1 x jump and doubles the jump: 4, 8, 16, 32
    def field(depths):
        size, jump = 4, 4
        for stage, n in enumerate(depths):
            if stage:
                size, jump = size + jump, 2 * jump
            size += n * 6 * jump
        return size

    for name, depths in (("convnext_tiny", (3, 3, 9, 3)), ("convnext_small", (3, 3, 27, 3))):
        layer = analyze(name).receptive_field()
        assert layer.name == "stage4.block.2.add1"  # before global pooling
        assert layer.rf.size == (field(depths),) * 2 and layer.rf.jump == (32, 32)
        assert layer.rf.start == (15.5, 15.5)  # centred: every conv pads symmetrically
    assert field((3, 3, 9, 3)) == 1688 and field((3, 3, 27, 3)) == 3416
    assert analyze("convnext_large").receptive_field().rf.size == (3416, 3416)


def test_convnext_receptive_field_by_autograd(monkeypatch):
    """tests/test_rf_oracle.py's autograd oracle, with the layer norms (per position, over
    channels) made identities as the oracle does for the other channel-wise normalisations."""
    import test_rf_oracle as oracle

    monkeypatch.setattr(oracle, "POINTWISE", (*oracle.POINTWISE, nn.LayerNorm))
    compared = oracle.check_rf(oracle.oracle_graph("convnext_tiny"))
    assert len(compared) == 2  # the network's (clipped) field and an inner one, both equal


def test_vit_receptive_field_is_a_patch():
    # The attention gives every token the whole image (collapsed, as global pooling); the
    # residual add keeps the per-token path's field, so the network's field is one patch.
    for name, patch in (("vit_b_16", 16), ("vit_b_32", 32), ("vit_l_16", 16)):
        a = analyze(name)
        layer = a.receptive_field()
        assert layer.name == "ln"
        assert layer.rf.size == layer.rf.jump == (patch, patch)
        assert layer.rf.start == ((patch - 1) / 2,) * 2
        attn = {la.name: la for la in a.layers}["layer.0.add1.attn.attention1"]
        assert attn.rf.collapsed and attn.rf.size == (224, 224)


def _measured_field(graph, name, unit):
    """Per axis, the first and last input pixel whose gradient reaches ``unit`` of layer
    ``name`` (float64, random weights; the Swin mask's -100 logits leak ~e^-100, far below the
    threshold)."""
    torch.manual_seed(0)
    module = build_graph(graph).double().eval()
    out = {}
    module.get_submodule(name).register_forward_hook(lambda m, i, o: out.setdefault("y", o))
    x = torch.randn(1, *graph.input, dtype=torch.float64, requires_grad=True)
    module(x)
    y = out["y"]
    weights = torch.randn(y.shape[1], dtype=torch.float64)  # a LayerNorm's outputs sum to a constant
    (grad,) = torch.autograd.grad((y[(0, slice(None), *unit)] * weights).sum(), x)
    grad = grad[0].abs().sum(0)
    hit = (grad > grad.max() * 1e-25).nonzero()
    return [(int(hit[:, i].min()), int(hit[:, i].max())) for i in range(hit.shape[1])]


SWIN_FIELD = dict(c=8, h=1, n3=2)  # narrow and shallow: the fields are those of swin_t


def test_swin_window_attention_field_by_autograd():
    # W-MSA: every unit sees exactly its 7x7 window of 4x4 patches (28 pixels)
    graph = small("swin_t", **SWIN_FIELD)
    name = "stage1.0.wmsa.add1"
    layer = {la.name: la for la in graph.layers}[name]
    assert layer.rf.size == (28, 28) and layer.rf.jump == (4, 4)
    assert _measured_field(graph, name, (9, 12)) == [(28, 55), (28, 55)]


def test_swin_shifted_window_field_by_autograd():
    graph = small("swin_t", **SWIN_FIELD)
    name = "stage1.0.swmsa.add1"
    layer = {la.name: la for la in graph.layers}[name]
    # unit 5 lies in the shifted window of units 3-9, which straddles windows 0-6 and 7-13
    measured = _measured_field(graph, name, (5, 5))
    assert measured == [(0, 55), (0, 55)]
    assert layer.rf.size == (56, 56)


# cnnstat rf swin_t --input 3x896x896 (the fields stay inside the image up to stage 3):
# layer -> (size, start) per axis, jump 4 in stage 1, 8 after the first merge, 16 in stage 3
SWIN_T_896 = {
    "stage1.0.wmsa.add1": (28, 1.5),  # a 7x7 window of 4x4 patches
    "stage1.0.swmsa.add1": (56, 3.5),  # a shifted window straddles two: 14 patches
    "merge1.pixel_unshuffle1": (84, 5.5),  # a 2x2 merge straddles two shifted windows: 21
    "stage2.0.swmsa.add2": (168, 7.5),
    "stage3.2.swmsa.add2": (840, 15.5),
    "norm": (1288, 31.5),
}


def test_swin_t_fields_at_896_by_autograd():
    """The fields of cnnstat rf swin_t --input 3x896x896 against autograd through the built
    network, with test_ops_attention's structural weights, on a Swin-T of width 8 at 896x128
    (the fields along H depend on neither the width nor W; 128 columns keep the backward passes
    cheap, and stage 3's 8 columns are padded to two windows, shifted): for a run of units
    covering every phase, each unit's field is the analyzer's (per phase, clipped to the image)
    on both axes, and the widest along H is the reported size."""
    from test_ops_attention import measured_fields, reported_field

    full = {la.name: la for la in Analysis(build_spec(get("swin_t"), (3, 896, 896))).layers}
    for name, (size, start) in SWIN_T_896.items():
        assert full[name].rf.size == (size, size) and full[name].rf.start == (start, start), name
    graph = small("swin_t", (3, 896, 128), c=8, h=1)
    layers = {la.name: la for la in graph.layers}
    probes = {}
    for name in ("stage1.0.swmsa.add1", "merge1.pixel_unshuffle1", "stage3.2.swmsa.add2"):
        assert layers[name].rf.size[0] == full[name].rf.size[0]
        assert layers[name].rf.phases[0] == full[name].rf.phases[0]
        rows, cols = layers[name].output[1:]
        probes[name] = [(rows // 2 - 4 + k, k % cols) for k in range(8)]  # a period (7) and one
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other tests: one thread runs faster
    try:
        found = measured_fields(graph, probes)
    finally:
        torch.set_num_threads(threads)
    for name, units in probes.items():
        for unit, got in zip(units, found[name]):
            assert got == reported_field(layers[name].rf, unit, (896, 128)), f"{name} unit {unit}"
        assert max(f[0][1] - f[0][0] + 1 for f in found[name]) == layers[name].rf.size[0], name


def test_swin_receptive_field_covers_the_input():
    # stage 4's 7x7 map is one window: every final unit sees the whole 224x224 image (the
    # reported field, before global pooling, is at least that)
    for name in ("swin_t", "swin_s", "swin_b"):
        layer = analyze(name).receptive_field()
        assert layer.name == "norm" and layer.output[1:] == (7, 7)
        assert layer.rf.jump == (32, 32) and min(layer.rf.size) >= 224
    stage4 = layers("swin_t")["stage4.0.wmsa.add1.attn.attention1"]
    assert stage4.output == (768, 7, 7)
