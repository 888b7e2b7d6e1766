"""timm's modules mapped onto cnnstat ops, each against independent figures: parameters
against torch's ``sum(numel())``, MACs against PyTorch's FlopCounterMode on the same module,
and by hand; what is not the op stays unsupported (MACs a lower bound)."""

import pytest

pytest.importorskip("timm")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from cnnstat.torch.analysis import analyze  # noqa: E402
from cnnstat.torch.check import flop_counter_macs  # noqa: E402
from cnnstat.torch.load import meta_copy  # noqa: E402


class Tokens(nn.Module):
    """A 1x1 conv to C channels, its map as tokens [B, N, C], then ``block``."""

    def __init__(self, block, channels=64):
        super().__init__()
        self.embed = nn.Conv2d(3, channels, 1, bias=False)
        self.block = block

    def forward(self, x):
        return self.block(self.embed(x).flatten(2).transpose(1, 2))


def test_attention():
    from timm.layers.attention import Attention

    m = Tokens(Attention(64, num_heads=4, qkv_bias=True)).eval()
    a = analyze(m, input=(3, 7, 7))
    assert a.complete and not a.graph.unsupported
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    n, c = 49, 64
    by_hand = n * 3 * c + n * c * 3 * c + 2 * n * n * c + n * c * c  # embed, qkv, q.k^T and a.v, proj
    assert a.totals()["macs"] == by_hand == flop_counter_macs(meta_copy(m), (3, 7, 7))


def test_attention_with_qk_norm_is_unsupported():
    from timm.layers.attention import Attention

    m = Tokens(Attention(64, num_heads=4, qk_norm=True, norm_layer=nn.LayerNorm)).eval()
    a = analyze(m, input=(3, 7, 7))
    assert not a.complete
    assert [u["call"] for u in a.graph.unsupported] == ["timm.layers.attention.Attention"]
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    assert a.totals()["macs"] < flop_counter_macs(meta_copy(m), (3, 7, 7))  # a lower bound


def test_poolformer_difference_of_two_branches():
    """PoolFormer's token mixer, pool(x) - x, and a quotient of two branches: an ``add`` and a
    ``mul`` of the same shapes (0 MACs), as the ONNX import reads Sub and Div; a learned
    tensor minus an activation is not an op of cnnstat: unsupported."""

    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
            self.gate = nn.Conv2d(8, 8, 1)

        def forward(self, x):
            x = self.conv(x)
            y = self.pool(x) - x
            return y / self.gate(x).sigmoid()

    m = Mixer().eval()
    a = analyze(m, input=(3, 8, 8))
    assert a.complete and not a.graph.unsupported
    assert [la.op for la in a.graph.layers if la.op in ("add", "mul")] == ["add", "mul"]
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    assert a.totals()["macs"] == 64 * (8 * 27 + 8 * 8) == flop_counter_macs(meta_copy(m), (3, 8, 8))

    class FromLearned(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)
            self.w = nn.Parameter(torch.zeros(8, 1, 1))

        def forward(self, x):
            return self.w - self.conv(x)

    a = analyze(FromLearned().eval(), input=(3, 8, 8))
    assert [u["call"] for u in a.graph.unsupported] == ["operator.sub"]
    assert a.totals()["params"] == 3 * 8 + 8 + 8


@pytest.mark.parametrize("same", [False, True])
def test_scaled_std_conv(same):
    """NF-Net's ScaledStdConv2d: a convolution of a weight computed from the weight and a gain
    per output channel -- the conv and a scale by the gain (8 values): every parameter held,
    the convolution's MACs. 7 -> 4 at stride 2: padding 1 (timm's default), or the Same
    variant's TensorFlow padding at run time (1 before, 1 after)."""
    from timm.layers.std_conv import ScaledStdConv2d, ScaledStdConv2dSame

    conv = ScaledStdConv2dSame(3, 8, 3, stride=2) if same else ScaledStdConv2d(3, 8, 3, stride=2)
    m = nn.Sequential(conv).eval()
    a = analyze(m, input=(3, 7, 7))
    assert a.complete and not a.graph.unsupported
    assert [la.op for la in a.graph.layers if la.op != "input"] == ["conv", "scale"]
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters()) == 8 * 27 + 8 + 8
    assert a.graph.layers[-1].output == (8, 4, 4)
    assert a.totals()["macs"] == 4 * 4 * 8 * 27 == flop_counter_macs(meta_copy(m), (3, 7, 7))


class Gate(nn.Module):
    """A conv, then an ECA-like gate: the map's mean over positions, a 1-D conv across the
    channels, a sigmoid, [B, C, 1, 1] multiplied into the map (``expand``: expanded first)."""

    def __init__(self, expand: str = ""):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.eca = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.expand = expand

    def forward(self, x):
        x = self.conv(x)
        y = self.eca(x.mean((2, 3)).view(x.shape[0], 1, -1)).sigmoid().view(x.shape[0], -1, 1, 1)
        if self.expand == "expand_as":
            y = y.expand_as(x)
        elif self.expand == "expand":
            y = y.expand(-1, -1, x.shape[2], x.shape[3])
        elif self.expand == "channels":  # dim 1 expanded: not a repeat of positions
            return x[:, :1] * y[:, :1].expand(-1, 8, -1, -1)
        return x * y


@pytest.mark.parametrize("expand", ["expand_as", "expand"])
def test_expand_of_a_gate(expand):
    """ECA-Net's gate expanded to the map it gates: nearest upsampling of [8, 1, 1] to
    [8, 8, 8], 0 MACs; the same MACs and receptive field as the gate broadcast by the
    multiplication itself."""
    m = Gate(expand).eval()
    a = analyze(m, input=(3, 8, 8))
    assert a.complete and not a.graph.unsupported
    up = [la for la in a.graph.layers if la.op == "upsample"]
    assert len(up) == 1 and up[0].output == (8, 8, 8) and up[0].macs == 0
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters()) == 8 * 27 + 8 + 3
    conv, eca = 64 * 8 * 27, 8 * 3
    assert a.totals()["macs"] == conv + eca == flop_counter_macs(meta_copy(m), (3, 8, 8))
    plain = analyze(Gate().eval(), input=(3, 8, 8))
    assert plain.complete and plain.totals()["macs"] == a.totals()["macs"]
    assert plain.graph.layers[-1].rf == a.graph.layers[-1].rf


def test_expand_of_channels_is_unsupported():
    a = analyze(Gate("channels").eval(), input=(3, 8, 8))
    assert "Tensor.expand" in [u["call"] for u in a.graph.unsupported]
    assert not a.complete


def test_shared_scale():
    """NF-Net's skip-init gain and HGNetV2's learnable affine: x times one learned value --
    ``scale`` with ``shared``: 1 weight, 0 MACs (built back as a torch module: 1 parameter)."""
    from cnnstat.ops import REGISTRY
    from cnnstat.torch.builder import build_graph

    class Gain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.gain = nn.Parameter(torch.tensor(0.0))

        def forward(self, x):
            return self.conv(x).mul_(self.gain)

    m = Gain().eval()
    a = analyze(m, input=(3, 8, 8))
    assert a.complete and not a.graph.unsupported
    scale = [la for la in a.graph.layers if la.op == "scale"]
    assert len(scale) == 1 and scale[0].args["shared"] and scale[0].weights == 1 and scale[0].macs == 0
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters()) == 8 * 27 + 8 + 1
    assert a.totals()["macs"] == 64 * 8 * 27 == flop_counter_macs(meta_copy(m), (3, 8, 8))
    assert REGISTRY["scale"].cost({"shared": False}, [(8, 4, 4)], (8, 4, 4)).weights == 8
    built = build_graph(a.graph, "meta")
    assert sum(p.numel() for p in built.parameters()) == a.totals()["params"]


def test_swin_blocks_and_patch_merging():
    """timm's Swin v1 (a small one: 56 x 56, two stages): its blocks are layer norms,
    attention in windows of 7 shifted by 3 in every other block (relative position bias
    table, the shift mask a buffer of the layer), the MLP and two adds; its patch merging
    pixel_unshuffle, layer norm, linear; the head's mean over the channels-last map gap.
    Parameters and buffers against torch, MACs against FlopCounterMode."""
    from timm.models.swin_transformer import SwinTransformer

    m = SwinTransformer(img_size=56, window_size=7, embed_dim=32, depths=(2, 2), num_heads=(2, 4)).eval()
    a = analyze(m, input=(3, 56, 56))
    assert a.complete and not a.graph.unsupported
    attn = [la for la in a.graph.layers if la.op == "attention"]
    # the second stage's 7 x 7 map is one window: no shift there (timm's rule, as torchvision's)
    shifts = [(0, 0), (3, 3), (0, 0), (0, 0)]
    assert [(la.args["window"], la.args["shift"]) for la in attn] == [((7, 7), s) for s in shifts]
    assert [la.op for la in a.graph.layers if la.name.startswith("layers.1.downsample")] == [
        "pixel_unshuffle",
        "layernorm",
        "linear",
    ]
    assert [la.op for la in a.graph.layers if la.name.startswith("head.global_pool")][0] == "gap"
    buffers = sum(b.numel() for b in m.buffers())
    assert (a.totals()["params"], a.totals()["buffers"]) == (sum(p.numel() for p in m.parameters()), buffers)
    assert a.totals()["macs"] == flop_counter_macs(meta_copy(m), (3, 56, 56))


def test_mean_over_tokens():
    """ViT-style global average pooling of tokens, x.mean(1) of [B, N, D]: gap of the map."""

    class Pool(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 16, 2, 2)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(self.embed(x).flatten(2).transpose(1, 2).mean(1))

    m = Pool().eval()
    a = analyze(m, input=(3, 8, 8))
    assert a.complete and [la.op for la in a.graph.layers][-2:] == ["gap", "fc"]
    assert a.totals()["macs"] == 16 * 16 * 12 + 16 * 4 == flop_counter_macs(meta_copy(m), (3, 8, 8))


@pytest.mark.parametrize("channels_last", [True, False])
def test_global_response_norm(channels_last):
    """ConvNeXt V2's GRN (timm's, NHWC or NCHW): cnnstat's grn, weight C + bias C, 0 MACs,
    the receptive field unchanged; built back as a torch module it computes what timm's does
    (same weights, random input)."""
    from timm.layers.grn import GlobalResponseNorm

    from cnnstat.torch.builder import build_graph

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.grn = GlobalResponseNorm(8, channels_last=channels_last)

        def forward(self, x):
            x = self.conv(x)
            if channels_last:
                return self.grn(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            return self.grn(x)

    m = Block().eval()
    a = analyze(m, input=(3, 6, 6))
    assert a.complete and not a.graph.unsupported
    grn = [la for la in a.graph.layers if la.op == "grn"]
    assert len(grn) == 1 and (grn[0].weights, grn[0].biases, grn[0].macs) == (8, 8, 0)
    assert grn[0].rf == a.graph.layers[1].rf  # the conv's
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    assert a.totals()["macs"] == 36 * 8 * 27 == flop_counter_macs(meta_copy(m), (3, 6, 6))

    built = build_graph(a.graph, "cpu").eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
        ours = dict(built.named_parameters())
        for name, p in m.named_parameters():
            ours[name].copy_(p)
        x = torch.randn(2, 3, 6, 6)
        assert torch.allclose(built(x), m(x), atol=1e-5)


def test_star_relu_power_and_learned_scalars():
    """MetaFormer's StarReLU, s * relu(x) ** 2 + b with learned scalars s and b: the power of
    a constant is free (as x * 2), s a shared scale, b a shared shift (1 weight, 1 bias);
    2 ** x (a tensor exponent) is not understood."""
    from timm.models.metaformer import StarReLU

    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), StarReLU()).eval()
    a = analyze(m, input=(3, 6, 6))
    assert a.complete and not a.graph.unsupported
    ops = [(la.op, la.weights, la.biases) for la in a.graph.layers if la.op in ("scale", "shift")]
    assert ops == [("scale", 1, 0), ("shift", 0, 1)]
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters()) == 8 * 27 + 8 + 2
    assert a.totals()["macs"] == 36 * 8 * 27 == flop_counter_macs(meta_copy(m), (3, 6, 6))

    class Exp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)

        def forward(self, x):
            return 2 ** self.conv(x)

    a = analyze(Exp().eval(), input=(3, 4, 4))
    assert not a.complete and len(a.graph.unsupported) == 1


class Context(nn.Module):
    """GCNet's global context block: attention-pooled context, (B, C, HW) @ (B, HW, 1), a 1x1
    conv, added to every position of the map."""

    def __init__(self, learned_product: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.key = nn.Conv2d(8, 1, 1)
        self.transform = nn.Conv2d(8, 8, 1)
        self.w = nn.Parameter(torch.zeros(36, 1)) if learned_product else None

    def forward(self, x):
        x = self.conv(x)
        b, c, h, w = x.shape
        weights = self.w if self.w is not None else self.key(x).view(b, h * w, 1).softmax(1)
        context = (x.view(b, c, h * w) @ weights).view(b, c, 1, 1)
        return x + self.transform(context)


def test_matmul_and_a_context_added_to_every_position():
    m = Context().eval()
    a = analyze(m, input=(3, 6, 6))
    assert a.complete and not a.graph.unsupported
    ops = [la.op for la in a.graph.layers]
    assert ops[-3:] == ["conv", "upsample", "add"] and "matmul" in ops
    matmul = next(la for la in a.graph.layers if la.op == "matmul")
    assert matmul.macs == 8 * 36 * 1
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    by_hand = 36 * 8 * 27 + 36 * 8 + 8 * 36 + 8 * 8  # conv, key, the product, transform
    assert a.totals()["macs"] == by_hand == flop_counter_macs(meta_copy(m), (3, 6, 6))


def test_matmul_with_a_parameter_is_unsupported():
    m = Context(learned_product=True).eval()
    a = analyze(m, input=(3, 6, 6))
    assert "operator.matmul" in [u["call"] for u in a.graph.unsupported]
    assert not a.complete and a.totals()["macs"] < flop_counter_macs(meta_copy(m), (3, 6, 6))
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())


def test_mapping_timm_imports_nothing():
    """timm's classes are mapped by qualified name: the importer (and the spec path) loads
    without importing timm."""
    import subprocess
    import sys

    code = (
        "import sys, cnnstat.torch.mapping, cnnstat.torch.analysis; "
        "from cnnstat.cli import cli; assert 'timm' not in sys.modules, 'timm imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class Inline(nn.Module):
    """Attention written inline: q, k, v from three Linears on tokens, split into 2 heads,
    F.scaled_dot_product_attention (with a mask: ``masked``)."""

    def __init__(self, masked: bool = False):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 1)
        self.q, self.k, self.v = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 8)
        self.masked = masked

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # [B, N, 16]
        b, n, _ = t.shape
        q, k, v = (f(t).view(b, n, 2, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        mask = torch.zeros(n, n, device=x.device) if self.masked else None
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_scaled_dot_product_attention():
    """q @ k^T and the scores @ v: 2 heads x 36 x 36 x (8 + 4) MACs, FlopCounterMode's."""
    m = Inline().eval()
    a = analyze(m, input=(3, 6, 6))
    assert a.complete and not a.graph.unsupported
    products = [la.macs for la in a.graph.layers if la.op == "matmul"]
    assert products == [2 * 36 * 8 * 36, 2 * 36 * 36 * 4]
    n = 36
    by_hand = n * 3 * 16 + n * 16 * 16 * 2 + n * 16 * 8 + sum(products)
    assert a.totals()["macs"] == by_hand == flop_counter_macs(meta_copy(m), (3, 6, 6))


def test_scaled_dot_product_attention_with_a_mask_is_unsupported():
    m = Inline(masked=True).eval()
    a = analyze(m, input=(3, 6, 6))
    assert [u["call"] for u in a.graph.unsupported] == ["F.scaled_dot_product_attention"]
    assert a.totals()["macs"] < flop_counter_macs(meta_copy(m), (3, 6, 6))


class PvtBlock(nn.Module):
    """A 1x1 conv to 16 channels, its map as tokens, then timm's PVT v2 ``Attention`` (sr:
    spatial reduction; ``fused``: F.scaled_dot_product_attention, else q @ k^T written out)
    on the layer-normed tokens, added back, and the map again."""

    def __init__(self, sr=2, linear=False, fused=True):
        from timm.models.pvt_v2 import Attention

        super().__init__()
        self.embed = nn.Conv2d(3, 16, 1)
        self.norm = nn.LayerNorm(16)
        self.attn = Attention(16, num_heads=2, sr_ratio=sr, linear_attn=linear)
        self.attn.fused_attn = fused

    def forward(self, x):
        h, w = x.shape[2:]
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = t + self.attn(self.norm(t), (h, w))
        return t.transpose(1, 2).reshape(x.shape[0], 16, h, w)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("sr", [1, 2])
def test_pvt_v2_attention(sr, fused):
    """PVT v2's inline attention (q, kv linears, kv.unbind(0)) is cnnstat's attention with sr
    on the tokens' map: by hand (n = 64 queries, n_k = 64 / sr^2 keys, C = dim = 16) and as
    FlopCounterMode counts it, fused or written out."""
    m = PvtBlock(sr, fused=fused).eval()
    a = analyze(m, input=(3, 8, 8))
    assert a.complete and not a.graph.unsupported
    assert "attention" in [la.op for la in a.graph.layers]
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    n, nk, c = 64, 64 // sr**2, 16
    reduce = nk * c * c * sr**2 if sr > 1 else 0
    attention = n * c * c + nk * c * 2 * c + reduce + 2 * n * nk * c + n * c * c
    assert a.totals()["macs"] == n * 3 * c + attention == flop_counter_macs(meta_copy(m), (3, 8, 8))


def test_pvt_v2_linear_attention_is_unsupported():
    m = PvtBlock(1, linear=True).eval()
    a = analyze(m, input=(3, 8, 8))
    assert [u["call"] for u in a.graph.unsupported] == ["timm.models.pvt_v2.Attention"]
    assert a.totals()["macs"] < flop_counter_macs(meta_copy(m), (3, 8, 8))
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())


class TwinsBlock(nn.Module):
    """PvtBlock with Twins' locally grouped attention (ws x ws windows) or its global
    sub-sampled attention (sr) instead."""

    def __init__(self, local=True, fused=True):
        from timm.models.twins import GlobalSubSampleAttn, LocallyGroupedAttn

        super().__init__()
        self.embed = nn.Conv2d(3, 16, 1)
        self.attn = (
            LocallyGroupedAttn(16, num_heads=2, ws=4) if local else GlobalSubSampleAttn(16, 2, sr_ratio=2)
        )
        self.attn.fused_attn = fused

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return t + self.attn(t, tuple(x.shape[2:]))


@pytest.mark.parametrize("fused", [True, False])
def test_twins_locally_grouped_attention(fused):
    """4 windows of 4 x 4 on an 8 x 8 map: per window 16 x 16 x 48 (qkv), 2 x 16 x 16 x 16
    (q k^T and a v over both heads), 16 x 16 x 16 (proj), as FlopCounterMode counts it."""
    m = TwinsBlock(fused=fused).eval()
    a = analyze(m, input=(3, 8, 8))
    assert a.complete and not a.graph.unsupported
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    by_hand = 64 * 3 * 16 + 4 * (16 * 16 * 48 + 2 * 16 * 16 * 16 + 16 * 16 * 16)
    assert a.totals()["macs"] == by_hand == flop_counter_macs(meta_copy(m), (3, 8, 8))


def test_twins_padded_windows_are_unsupported():
    """A 6 x 6 map in 4 x 4 windows: Twins pads, and projects after the crop, unlike
    cnnstat's windowed attention: unsupported, a lower bound."""
    m = TwinsBlock().eval()
    a = analyze(m, input=(3, 6, 6))
    assert [u["call"] for u in a.graph.unsupported] == ["timm.models.twins.LocallyGroupedAttn"]
    assert a.totals()["macs"] < flop_counter_macs(meta_copy(m), (3, 6, 6))


def test_twins_global_subsampled_attention():
    m = TwinsBlock(local=False).eval()
    a = analyze(m, input=(3, 8, 8))
    assert a.complete and not a.graph.unsupported
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    n, nk, c = 64, 16, 16
    attention = n * c * c + nk * c * 2 * c + nk * c * c * 4 + 2 * n * nk * c + n * c * c
    assert a.totals()["macs"] == n * 3 * c + attention == flop_counter_macs(meta_copy(m), (3, 8, 8))
