"""Imported tensors laid out otherwise than channels first: channels last (ConvNeXt, Swin)
and tokens [B, N, D] (ViT). Each construct in a small module, imported: its layers, the
parameters equal to sum(numel) of the module, the MACs equal to PyTorch's FlopCounterMode,
and (where positions are not mixed) the receptive field unchanged by the layout."""

import pytest

pytest.importorskip("torch")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from cnnstat.torch import analyze  # noqa: E402
from cnnstat.torch.check import flop_counter_macs  # noqa: E402
from cnnstat.torch.load import meta_copy  # noqa: E402


def imported(module, shape, complete=True, tracer="auto"):
    """The analysis of ``module`` at ``shape``, checked against the module itself."""
    a = analyze(module, input=shape, tracer=tracer)
    t = a.totals()
    assert t["params"] == sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    assert t["buffers"] == buffers
    if complete:
        assert a.complete, a.incomplete()
        assert t["macs"] == flop_counter_macs(meta_copy(module.eval()), shape)
    return a


def ops(a):
    return [(la.name, la.op) for la in a.layers]


class ChannelsLastMLP(nn.Module):
    """ConvNeXt's block: depthwise conv, channels last, layer norm, Linear, GELU, Linear, back."""

    def __init__(self, c=8):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.ones(c, 1, 1))
        self.head = nn.Conv2d(c, 4, 3)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        y = self.gamma * y.permute(0, 3, 1, 2)
        return self.head(y + x)


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
def test_linear_over_channels_moved_last(tracer):
    a = imported(ChannelsLastMLP(), (8, 12, 10), tracer=tracer)
    assert [op for _, op in ops(a)] == [
        "dwconv",
        "layernorm",
        "linear",
        "gelu",
        "linear",
        "scale",
        "add",
        "conv",
    ]
    layers = {la.name: la for la in a.layers}
    # the layers run channels first: the Linear's output is [32, 12, 10]
    assert layers["fc1"].output == (32, 12, 10) and layers["fc2"].output == (8, 12, 10)
    assert (layers["fc1"].weights, layers["fc1"].biases, layers["fc1"].macs) == (8 * 32, 32, 120 * 8 * 32)
    assert layers["fc2"].rf.size == (7, 7)  # per position: the depthwise conv's field
    assert a.receptive_field().rf.size == (9, 9)


class Tokens(nn.Module):
    """ViT: patches, tokens [B, N, D], class token, position table, pre-norm attention and
    MLP, the class token read by the head."""

    def __init__(self, d=16, heads=4, batch_first=True):
        super().__init__()
        self.batch_first = batch_first
        self.patch = nn.Conv2d(3, d, 4, 4)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, 17, d))
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=batch_first)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        x = self.patch(x)
        b, d = x.shape[0], x.shape[1]
        x = x.reshape(b, d, -1).permute(0, 2, 1)  # [B, N, D]
        x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1) + self.pos
        if not self.batch_first:
            x = x.transpose(0, 1)  # [N, B, D]
        y = self.ln1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        if not self.batch_first:
            x = x.transpose(0, 1)
        return self.head(x[:, 0])


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("tracer", ["fx", "hooks"])
def test_vit_tokens(batch_first, tracer):
    a = imported(Tokens(batch_first=batch_first), (3, 16, 16), tracer=tracer)
    names = dict(ops(a))
    assert [op for _, op in ops(a)] == [
        "conv",
        "tokens",
        "class_token",
        "pos_embed",
        "layernorm",
        "attention",
        "add",
        "layernorm",
        "linear",
        "gelu",
        "linear",
        "add",
        "take",
        "fc",
    ]
    layers = {la.op: la for la in a.layers}
    assert layers["tokens"].output == (16, 16) and layers["class_token"].output == (16, 17)
    assert (layers["class_token"].weights, layers["pos_embed"].weights) == (16, 17 * 16)
    attn = layers["attention"]
    assert (attn.args["heads"], attn.args["dim"], attn.weights, attn.biases) == (4, 16, 4 * 16 * 16, 4 * 16)
    assert attn.macs == 17 * 16 * 48 + 2 * 17 * 17 * 16 + 17 * 16 * 16
    assert layers["take"].output == (16,) and layers["take"].args["index"] == 0
    assert names["attn"] == "attention"
    # global attention: its units see the whole input (the residual add keeps the other
    # branch's field, cnnstat's convention for a global branch)
    assert attn.rf.collapsed and layers["add"].rf.size == (4, 4)


def test_tokens_dropped_and_back_to_a_map():
    class Back(nn.Module):
        """Tokens of a map, class token in, dropped again (x[:, 1:]), back to the map."""

        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 8, 2, 2)
            self.cls = nn.Parameter(torch.zeros(1, 1, 8))
            self.fc = nn.Linear(8, 8)
            self.conv = nn.Conv2d(8, 4, 3)

        def forward(self, x):
            x = self.patch(x)
            b, c, h, w = x.shape
            t = x.flatten(2).transpose(1, 2)
            t = self.fc(torch.cat([self.cls.expand(b, -1, -1), t], 1))[:, 1:]
            return self.conv(t.transpose(1, 2).reshape(b, c, h, w))

    a = imported(Back(), (3, 12, 12))
    assert [op for _, op in ops(a)] == ["conv", "tokens", "class_token", "linear", "take", "to_map", "conv"]
    layers = {la.op: la for la in a.layers}
    assert layers["take"].args == {"index": 1, "stop": 37} and layers["take"].output == (8, 36)
    assert layers["to_map"].output == (8, 6, 6)
    assert a.receptive_field().rf.size == (6, 6)  # 2x2 patches, then a 3x3 conv: positions kept


def test_a_plain_view_and_mean_stays_global_pooling():
    class Pool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x):
            x = self.conv(x)
            return x.view(x.shape[0], x.shape[1], -1).mean(-1)

    a = imported(Pool(), (3, 8, 8))
    assert [op for _, op in ops(a)] == ["conv", "gap"]  # no tokens layer: nothing needed them


@pytest.mark.parametrize("where", ["first", "last"])
def test_learned_scale_per_channel(where):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.gamma = nn.Parameter(torch.ones(8) if where == "last" else torch.ones(8, 1, 1))

        def forward(self, x):
            x = self.conv(x)
            if where == "last":
                return (x.permute(0, 2, 3, 1) * self.gamma).permute(0, 3, 1, 2)
            return x * self.gamma

    a = imported(Scaled(), (3, 8, 8))
    assert [(op, la.weights) for la, (_, op) in zip(a.layers, ops(a))] == [("conv", 216), ("scale", 8)]


def test_a_learned_scalar_is_a_shared_scale_a_bias_is_not_a_scale():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.alpha = nn.Parameter(torch.ones(1))
            self.shift = nn.Parameter(torch.zeros(8, 1, 1))

        def forward(self, x):
            return self.conv(x) * self.alpha + self.shift

    a = imported(Odd(), (3, 8, 8), complete=False)
    assert [i["reason"] for i in a.incomplete()] == ["an operand is a parameter"]  # + shift
    assert [(la.args["shared"], la.weights) for la in a.layers if la.op == "scale"] == [(True, 1)]  # * alpha


def test_concat_of_channels_last_tensors_and_elementwise_after_any_reshape():
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(3, 6, 1)
            self.fc = nn.Linear(10, 5)

        def forward(self, x):
            y = torch.cat([self.a(x).permute(0, 2, 3, 1), self.b(x).permute(0, 2, 3, 1)], dim=-1)
            y = self.fc(y)  # [B, H, W, 5]
            z = torch.relu(y.reshape(y.shape[0], -1, 5, 2))  # an arbitrary reshape: relu still maps
            return z.reshape(y.shape).permute(0, 3, 1, 2)

    a = imported(Cat(), (3, 4, 4))
    assert [op for _, op in ops(a)] == ["conv", "conv", "concat", "linear", "relu"]
    assert a.layers[2].output == (10, 4, 4) and a.layers[-1].output == (5, 4, 4)


def test_one_channel_picked_by_index():
    class Pick(nn.Module):
        """Inception's transform_input: one channel at a time, rescaled, concatenated."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            chans = [torch.unsqueeze(x[:, i], 1) * 0.5 + 0.1 for i in range(3)]
            return self.conv(torch.cat(chans, 1))

    a = imported(Pick(), (3, 8, 8))
    assert [op for _, op in ops(a)] == ["slice", "slice", "slice", "concat", "conv"]
    assert a.receptive_field().rf.size == (3, 3)


def test_multihead_attention_it_cannot_take_is_unsupported():
    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.conv = nn.Conv2d(3, 8, 1)

        def forward(self, x):
            t = self.conv(x).flatten(2).transpose(1, 2)
            return self.attn(t, t * 2, t, need_weights=False)[0]

    a = imported(Cross(), (3, 4, 4), complete=False)
    assert a.incomplete()[0]["call"] == "nn.MultiheadAttention"
    assert "self-attention" in a.incomplete()[0]["reason"]


tv = pytest.importorskip("torchvision")


def test_torchvision_swin_attention_and_patch_merging():
    from torchvision.models.swin_transformer import PatchMerging, ShiftedWindowAttention

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 16, 2, 2)
            self.attn = ShiftedWindowAttention(16, [4, 4], [2, 2], num_heads=2)
            self.merge = PatchMerging(16)

        def forward(self, x):
            x = self.patch(x).permute(0, 2, 3, 1)
            x = x + self.attn(x)
            return self.merge(x).permute(0, 3, 1, 2)

    a = imported(Stage(), (3, 18, 18))  # 9 x 9 positions: padded to 12 x 12 windows, then to 10 x 10
    assert [op for _, op in ops(a)] == ["conv", "attention", "add", "pixel_unshuffle", "layernorm", "linear"]
    layers = {la.op: la for la in a.layers}
    attn = layers["attention"]
    assert (attn.args["window"], attn.args["shift"], attn.args["rel_pos_bias"]) == ((4, 4), (2, 2), True)
    assert attn.buffers == 16 * 16  # the relative position index
    assert layers["pixel_unshuffle"].args == {"factor": 2, "pad": True}
    assert layers["pixel_unshuffle"].output == (64, 5, 5) and layers["linear"].output == (32, 5, 5)


def test_torchvision_swin_v2_attention_with_its_position_mlp():
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 16, 2, 2)
            self.attn = ShiftedWindowAttentionV2(16, [4, 4], [2, 2], num_heads=2)

        def forward(self, x):
            return self.attn(self.patch(x).permute(0, 2, 3, 1))

    module = Block()
    a = imported(module, (3, 16, 16))  # complete: MACs == FlopCounterMode's
    attn = next(la for la in a.layers if la.op == "attention")
    assert (attn.args["rel_pos_mlp"], attn.args["cosine"], attn.args["rel_pos_bias"]) == (512, True, False)
    # qkv and proj, the MLP (2 -> 512 -> 2 heads, no bias at the end) and the logit scale
    assert attn.params == 16 * 48 + 48 + 16 * 16 + 16 + (2 * 512 + 512) + 512 * 2 + 2
    # the MLP on the 7 x 7 table of relative offsets: 49 x (2 x 512 + 512 x 2), by hand
    n, area = 8 * 8, 16
    assert attn.macs == n * 16 * 48 + 2 * n * area * 16 + n * 16 * 16 + 49 * (2 * 512 + 512 * 2)
    assert attn.buffers == 49 * 2 + area * area  # the coordinate table and the index


def test_torchvision_swin_v2_with_another_position_mlp_is_unknown_not_wrong():
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    attn = ShiftedWindowAttentionV2(16, [4, 4], [0, 0], num_heads=2)
    attn.cpb_mlp = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 16, 2, 2)
            self.attn = attn

        def forward(self, x):
            return self.attn(self.patch(x).permute(0, 2, 3, 1))

    a = imported(Block(), (3, 16, 16), complete=False)
    calls = [i["call"] for i in a.incomplete()]
    assert calls == ["torchvision.models.swin_transformer.ShiftedWindowAttentionV2"]


def test_torchvision_video_swin_attention():
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv3d(3, 16, (2, 4, 4), (2, 4, 4))
            self.attn = ShiftedWindowAttention3d(16, [8, 4, 4], [4, 2, 2], num_heads=2)

        def forward(self, x):
            x = self.patch(x).permute(0, 2, 3, 4, 1)
            return (x + self.attn(x)).permute(0, 4, 1, 2, 3)

    a = imported(Block(), (3, 16, 32, 32))  # 8 x 8 x 8 positions: one window in time, no shift
    attn = next(la for la in a.layers if la.op == "attention")
    assert (attn.args["window"], attn.args["shift"]) == ((8, 4, 4), (0, 2, 2))
    assert attn.weights == 3 * 16 * 16 + 16 * 16 + 15 * 7 * 7 * 2  # with the bias table
    # a map smaller than the window: torchvision shrinks the window (4 frames: 4 x 4 x 4, no
    # shift in time) but keeps the table sized by the one it was built with (rel_pos_window)
    b = imported(Block(), (3, 8, 32, 32))  # complete, MACs == FlopCounterMode's
    attn = next(la for la in b.layers if la.op == "attention")
    assert (attn.args["window"], attn.args["shift"]) == ((4, 4, 4), (0, 2, 2))
    assert attn.args["rel_pos_window"] == (8, 4, 4)
    assert attn.weights == 3 * 16 * 16 + 16 * 16 + 15 * 7 * 7 * 2  # the table of the 8 x 4 x 4 window
    assert attn.macs == 4 * 8 * 8 * 16 * 64 + 2 * 4 * 8 * 8 * 64 * 16  # windows of 4 x 4 x 4


def test_torchvision_video_swin_patch_merging():
    """Video Swin's PatchMerging on [B, T, H, W, C]: H and W halved (odd W padded), T kept."""
    from torchvision.models.video.swin_transformer import PatchMerging

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv3d(3, 16, (2, 2, 2), (2, 2, 2))
            self.merge = PatchMerging(16)

        def forward(self, x):
            return self.merge(self.patch(x).permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)

    a = imported(Stage(), (3, 8, 12, 10))  # 4 x 6 x 5 positions -> 4 x 3 x 3
    assert [op for _, op in ops(a)] == ["conv", "pixel_unshuffle", "layernorm", "linear"]
    merge = next(la for la in a.layers if la.op == "pixel_unshuffle")
    assert merge.args == {"factor": (1, 2, 2), "pad": True} and merge.output == (64, 4, 3, 3)
    assert a.layers[-1].output == (32, 4, 3, 3)
    assert merge.rf.size == (2, 4, 4) and merge.rf.jump == (2, 4, 4)


def _partition_layer(kind, c=16, size=8, p=4):
    from functools import partial

    from torchvision.models.maxvit import PartitionAttentionLayer

    return PartitionAttentionLayer(
        c, 8, p, kind, (size, size), 2, nn.GELU, partial(nn.LayerNorm, eps=1e-5), 0.0, 0.0, 0.0
    )


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
@pytest.mark.parametrize("kind", ["window", "grid"])
def test_torchvision_maxvit_partition_attention(kind, tracer):
    """MaxViT's block (window) and grid attention layers: partition (and axis swap), pre-norm
    attention with the relative position bias and MLP, each with its residual, departition."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 2, 2)
            self.attn = _partition_layer(kind)

        def forward(self, x):
            return self.attn(self.stem(x))

    a = imported(Net(), (3, 16, 16), tracer=tracer)  # complete, MACs == FlopCounterMode's
    names = [(name.removeprefix("attn."), op) for name, op in ops(a)]
    assert names == [
        ("stem", "conv"),
        ("attn_layer.0", "layernorm"),
        ("attn_layer.1", "attention"),
        ("add", "add"),
        ("mlp_layer.0", "layernorm"),
        ("mlp_layer.1", "linear"),
        ("mlp_layer.2", "gelu"),
        ("mlp_layer.3", "linear"),
        ("add_1", "add"),
    ]
    attn = next(la for la in a.layers if la.op == "attention")
    # an 8 x 8 map in 4 x 4 windows, or a 4 x 4 grid (every 2nd unit), 2 heads of 8
    assert attn.args[kind] == (4, 4) if kind == "grid" else attn.args[kind] == 4
    assert attn.args["rel_pos_bias"] and attn.args["heads"] == 2
    assert attn.weights == 16 * 48 + 16 * 16 + 7 * 7 * 2 and attn.buffers == 16 * 16
    assert attn.macs == 64 * 16 * 48 + 64 * 16 * 16 + 2 * 64 * 16 * 16
    # the field: a window's 4 units (x 2 pixels of the stem), or a grid's units 0, 2, 4, 6
    assert attn.rf.size == ((8, 8) if kind == "window" else (14, 14))
    assert a.layers[-1].output == (16, 8, 8)


def test_torchvision_maxvit_partition_attention_of_other_modules_is_unknown_not_wrong():
    layer = _partition_layer("window")
    layer.mlp_layer[2] = nn.Sequential(nn.Linear(32, 32), nn.GELU())  # not a per-position activation

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 2, 2)
            self.attn = layer

        def forward(self, x):
            return self.attn(self.stem(x))

    a = imported(Net(), (3, 16, 16), complete=False)
    assert [i["call"] for i in a.incomplete()] == ["torchvision.models.maxvit.PartitionAttentionLayer"]


def _small_mvit(v2: bool):
    """A small MViT as torchvision builds its v1 (separable position table, projection after
    the second norm) or v2 (relative position, residual pooling, projection after attention):
    two blocks, the second widening and pooling the queries (and the skip connection)."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    blocks = [
        MSBlockConfig(1, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2]),
        MSBlockConfig(2, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 2, 2]),
    ]
    return MViT((32, 32), 8, blocks, v2, False, v2, v2, num_classes=10, patch_embed_kernel=(3, 7, 7))


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_torchvision_mvit_blocks(v2):
    a = imported(_small_mvit(v2), (3, 8, 32, 32))  # complete, MACs == FlopCounterMode's
    names = [name for name, _ in ops(a)]
    assert "pos_encoding.class_token" in names and ("pos_encoding.pos_embed" in names) == (not v2)
    layers = {la.name: la for la in a.layers}
    attn = layers["blocks.1.attn"]
    # 1 + 4 x 8 x 8 tokens of 16; queries pooled to 4 x 4 x 4, keys and values to 4 x 4 x 4
    assert attn.output == (32 if v2 else 16, 1 + 4 * 4 * 4)
    assert attn.args["pool_q_stride"] == (1, 2, 2) and attn.args["rel_pos_axes"] == v2
    assert layers["blocks.1.pool_skip"].op == "token_pool"
    assert layers["blocks.1.pool_skip"].output == (32 if v2 else 16, 1 + 4 * 4 * 4)
    assert a.layers[-1].output == (10,)
    if not v2:  # a row per frame (4), per spatial position (8 x 8), for the class token
        assert layers["pos_encoding.pos_embed"].weights == 16 * (4 + 64 + 1)


def test_torchvision_mvit_block_of_other_modules_is_unknown_not_wrong():
    model = _small_mvit(True)
    model.blocks[0].attn.pool_k.norm_act = None  # keys pooled without their norm: not the op's
    a = imported(model, (3, 8, 32, 32), complete=False)
    assert [i["call"] for i in a.incomplete()][:1] == ["torchvision.models.video.mvit.MultiscaleBlock"]
    assert a.incomplete()[0]["layer"] == "blocks.0"
