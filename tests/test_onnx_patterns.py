"""ONNX subgraphs read back as the operation they were exported from (cnnstat/onnx/patterns.py):
erf-based GELU, torch.roll, strided slices concatenated (Swin's patch merging), a learned
table gathered and added (Swin's relative position bias), and torchvision's swin_t end to end.

Each is checked against a hand count (onnx.helper models) or against the same module's
sum(p.numel()), PyTorch import and FlopCounterMode (torch exports), and nothing is opaque."""

from __future__ import annotations

import math

import pytest

onnx = pytest.importorskip("onnx")

import numpy as np  # noqa: E402
from onnx import helper  # noqa: E402
from test_onnx import init, ints, model  # noqa: E402

from cnnstat.onnx import analyze  # noqa: E402
from helpers import onnx_saver  # noqa: E402

torch = pytest.importorskip("torch")


@pytest.fixture
def save(tmp_path):
    return onnx_saver(tmp_path)


def ops(a):
    return [la.op for la in a.layers]


def gelu_nodes(x, out, order="x-first"):
    """torch's export of exact GELU: Div(sqrt 2), Erf, Add 1, then * x and * 0.5."""
    nodes = [
        helper.make_node("Constant", [], ["r2"], value=helper.make_tensor("r2", 1, [], [math.sqrt(2)])),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", 1, [], [1.0])),
        helper.make_node("Constant", [], ["half"], value=helper.make_tensor("half", 1, [], [0.5])),
        helper.make_node("Div", [x, "r2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["p"]),
    ]
    if order == "x-first":
        nodes += [helper.make_node("Mul", [x, "p"], ["m"]), helper.make_node("Mul", ["m", "half"], [out])]
    else:
        nodes += [helper.make_node("Mul", ["p", "half"], ["m"]), helper.make_node("Mul", ["m", x], [out])]
    return nodes


@pytest.mark.parametrize("order", ["x-first", "half-first"])
def test_erf_gelu_is_one_gelu_layer(save, order):
    w = init("w", 4, 3, 3, 3)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), *gelu_nodes("c", "y", order)]
    a = analyze(save(model(nodes, inits=[w])))
    assert a.complete and ops(a) == ["conv", "gelu"]
    assert a.layers[1].output == (4, 8, 8) and a.layers[1].args["approximate"] == "none"
    assert a.totals()["macs"] == 4 * 8 * 8 * 27  # the conv's alone: GELU is 0 MACs


def test_an_erf_that_is_no_gelu_stays_opaque(save):
    nodes = [helper.make_node("Erf", ["x"], ["y"])]
    a = analyze(save(model(nodes)))
    assert not a.complete and ops(a) == ["opaque"]


def test_roll_is_no_layer_and_its_field_unknown(save):
    """torch.roll(x, -3, dims=2) exports as Concat(x[:, :, 3:], x[:, :, :3]) along H."""
    w = init("w", 4, 3, 3, 3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["c", "s3", "big", "ax"], ["a"]),
        helper.make_node("Slice", ["c", "zero", "s3", "ax"], ["b"]),
        helper.make_node("Concat", ["a", "b"], ["y"], axis=2),
    ]
    inits = [w, ints("s3", [3]), ints("big", [2**62]), ints("zero", [0]), ints("ax", [2])]
    a = analyze(save(model(nodes, inits=inits)))
    assert a.complete and ops(a) == ["conv"]
    assert a.receptive_field() is None or a.layers[-1].rf is not None  # the conv's own field
    # a concat of two slices that is no roll is still sliced (crops), not dropped
    nodes[2] = helper.make_node("Slice", ["c", "zero", "s3", "ax"], ["b"])
    nodes[1] = helper.make_node("Slice", ["c", "zero", "s3", "ax"], ["a"])
    a = analyze(save(model(nodes, inits=inits)))
    assert ops(a)[:3] == ["conv", "crop", "crop"]


def test_strided_slices_concatenated_are_a_pixel_unshuffle(save):
    """x[:, :, i::2, j::2] for the four (i, j), concatenated along the channels: Swin's patch
    merging, a space-to-depth by 2; then a 1x1 conv over the 4C channels."""
    w = init("w", 5, 12, 1, 1)
    nodes, parts = [], []
    for i in (0, 1):
        nodes.append(helper.make_node("Slice", ["x", f"s{i}", "big", "h", "two"], [f"r{i}"]))
        for j in (0, 1):
            nodes.append(helper.make_node("Slice", [f"r{i}", f"s{j}", "big", "w_ax", "two"], [f"p{i}{j}"]))
    parts = ["p00", "p10", "p01", "p11"]  # torch's order: x0, x1, x2, x3
    nodes.append(helper.make_node("Concat", parts, ["cat"], axis=1))
    nodes.append(helper.make_node("Conv", ["cat", "w"], ["y"]))
    inits = [w, ints("s0", [0]), ints("s1", [1]), ints("big", [2**62]), ints("h", [2]), ints("w_ax", [3])]
    inits.append(ints("two", [2]))
    a = analyze(save(model(nodes, inits=inits)))
    assert a.complete and ops(a) == ["pixel_unshuffle", "conv"]
    assert a.layers[0].output == (12, 4, 4) and a.layers[0].args["factor"] == 2
    assert a.totals()["params"] == 5 * 12 and a.totals()["macs"] == 5 * 12 * 16
    assert a.receptive_field().rf.size == (2, 2)  # pixel_unshuffle's own field


def test_a_strided_slice_read_otherwise_is_opaque(save):
    nodes = [
        helper.make_node("Slice", ["x", "zero", "big", "h", "two"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    inits = [ints("zero", [0]), ints("big", [2**62]), ints("h", [2]), ints("two", [2])]
    a = analyze(save(model(nodes, inits=inits)))
    assert not a.complete and ops(a) == ["opaque"]


def test_relative_position_bias_gathered_from_a_table(save):
    """Swin's bias: table[(2w-1)^2, heads][index].reshape(N, N, heads).permute(2, 0, 1)
    .unsqueeze(0) added to the logits Q.K^T: the table's (2w-1)^2 x heads parameters, 0 MACs."""
    w, heads, d = 2, 2, 4
    n = w * w
    rows = (2 * w - 1) ** 2
    index = np.arange(n * n) % rows
    nodes = [
        helper.make_node("Reshape", ["x", "shp"], ["q"]),  # [1, heads, N, d]
        helper.make_node("Transpose", ["q"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["logits"]),
        helper.make_node("Gather", ["table", "index"], ["g"], axis=0),
        helper.make_node("Reshape", ["g", "nnh"], ["g2"]),
        helper.make_node("Transpose", ["g2"], ["g3"], perm=[2, 0, 1]),
        helper.make_node("Unsqueeze", ["g3", "zero"], ["bias"]),
        helper.make_node("Add", ["logits", "bias"], ["y"]),
    ]
    inits = [
        init("table", rows, heads),
        ints("index", index),
        ints("shp", [1, heads, n, d]),
        ints("nnh", [n, n, heads]),
        ints("zero", [0]),
    ]
    a = analyze(save(model(nodes, shape=(1, heads * d, w, w), inits=inits)))
    assert a.complete, a.incomplete_text()
    assert ops(a) == ["matmul", "add"]
    assert a.totals()["params"] == rows * heads
    assert a.totals()["macs"] == heads * n * d * n  # Q.K^T alone: the bias add is 0 MACs
    assert a.totals()["buffers"] == n * n  # the int64 index: a buffer, as the module's is


# --- torch exports ---------------------------------------------------------------------------------


def exported(module, shape, tmp_path, name="m.onnx", opset=17):
    """Exported at opset 17 (below 20 torch writes GELU with Erf, below 17 layer norm
    written out)."""
    from test_onnx import export

    return export(module, shape, tmp_path / name, opset=opset)


def same_as_torch(module, shape, path):
    """The export reads complete, with the module's sum(p.numel()) and the PyTorch import's
    MACs (themselves checked against FlopCounterMode in the torch tests)."""
    from cnnstat.torch import analyze as torch_analyze

    got = analyze(path)
    want = torch_analyze(module, input=shape)
    assert got.complete, got.incomplete_text()
    assert got.totals()["params"] == sum(p.numel() for p in module.parameters()) == want.totals()["params"]
    assert got.totals()["macs"] == want.totals()["macs"]
    assert not got.graph.unsupported
    return got, want


@pytest.mark.filterwarnings("ignore")
def test_torch_gelu_exports_read_as_gelu(tmp_path):
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(8, 4, 1), torch.nn.GELU()
    )
    got, _ = same_as_torch(m, (3, 16, 16), exported(m, (3, 16, 16), tmp_path))
    assert ops(got) == ["conv", "gelu", "conv", "gelu"]
    got, _ = same_as_torch(m, (3, 16, 16), exported(m, (3, 16, 16), tmp_path, "m20.onnx", opset=20))
    assert ops(got) == ["conv", "gelu", "conv", "gelu"]  # opset 20's Gelu


@pytest.mark.filterwarnings("ignore")
def test_torch_patch_merging_and_roll(tmp_path):
    """torchvision's PatchMerging on a channels-last map, after a roll: a pixel_unshuffle,
    a layer norm over the 4C channels and a linear to 2C, as the PyTorch import counts them."""
    from torchvision.models.swin_transformer import PatchMerging

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 2, stride=2)
            self.merge = PatchMerging(8)

        def forward(self, x):
            x = self.stem(x).permute(0, 2, 3, 1)
            x = torch.roll(x, shifts=(-1, -1), dims=(1, 2))
            return self.merge(x)

    m = Net()
    got = analyze(exported(m, (3, 16, 16), tmp_path))
    assert got.complete and not got.graph.unsupported
    assert ops(got) == ["conv", "pixel_unshuffle", "layernorm", "linear"]
    assert got.totals()["params"] == sum(p.numel() for p in m.parameters())
    # by hand (the PyTorch import follows torch.roll only inside Swin's attention module):
    # stem 8 x (8 x 8) x (3 x 2 x 2), reduction (4 x 4) x 32 x 16
    assert got.totals()["macs"] == 8 * 64 * 12 + 16 * 32 * 16
    assert got.layers[1].output == (32, 4, 4)


@pytest.fixture(scope="module")
def swin_t(tmp_path_factory):
    """torchvision's swin_t exported once at 112 x 112 (stage 4's 4 x 4 map is padded to its
    7 x 7 window and cropped back; the shifted blocks roll)."""
    import torchvision
    from test_onnx import export

    m = torchvision.models.swin_t()
    path = export(m, (3, 112, 112), tmp_path_factory.mktemp("swin") / "swin_t.onnx", opset=17)
    return m, path


@pytest.mark.filterwarnings("ignore")
def test_swin_t_through_onnx_equals_the_pytorch_import(swin_t):
    from cnnstat.torch.check import flop_counter_macs

    m, path = swin_t
    got, want = same_as_torch(m, (3, 112, 112), path)
    assert got.totals()["params"] == 28_288_354  # torchvision's published num_params for swin_t
    with torch.device("meta"):
        import torchvision

        meta = torchvision.models.swin_t()
    assert got.totals()["macs"] == flop_counter_macs(meta, (3, 112, 112)) == 1_341_970_944
    # the relative position index: a buffer in each of the 12 blocks for the PyTorch import;
    # the exporter stores the 12 equal indices as one initializer, a buffer counted once
    assert want.totals()["buffers"] == 12 * 49 * 49 and got.totals()["buffers"] == 49 * 49


# --- layer norm written out, Einsum, Attention ------------------------------------------------------------


class EinsumAttention(torch.nn.Module):
    """Attention written with torch.einsum (two heads of 8), its output through a learned
    matrix by einsum, then a layer norm: exported at opset 14, the layer norm is written out
    (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add)."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(16, 48)
        self.w = torch.nn.Parameter(torch.rand(16, 8))
        self.ln = torch.nn.LayerNorm(8)

    def forward(self, x):
        q, k, v = self.qkv(x).reshape(1, -1, 3, 2, 8).permute(2, 0, 3, 1, 4)
        a = torch.einsum("bhid,bhjd->bhij", q, k).softmax(-1)
        o = torch.einsum("bhij,bhjd->bhid", a, v).transpose(1, 2).reshape(1, -1, 16)
        return self.ln(torch.einsum("bnd,dk->bnk", o, self.w))


@pytest.mark.filterwarnings("ignore")
def test_einsum_and_a_written_out_layer_norm(tmp_path):
    from cnnstat.torch.check import flop_counter_macs

    m = EinsumAttention().eval()
    path = str(tmp_path / "ein.onnx")
    torch.onnx.export(
        m, (torch.rand(1, 10, 16),), path, dynamo=False, opset_version=14, do_constant_folding=False
    )
    a = analyze(path, input=(10, 16))
    assert a.complete and not a.graph.unsupported
    assert ops(a) == [
        "linear",
        "slice",
        "slice",
        "slice",
        "matmul",
        "softmax",
        "matmul",
        "linear",
        "layernorm",
    ]
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters()) == 16 * 48 + 48 + 16 * 8 + 16
    # by hand: qkv 10 x 16 x 48, Q.K^T and A.V 2 heads x 10 x 10 x 8 each, the einsum product 10 x 16 x 8
    hand = 10 * 16 * 48 + 2 * (2 * 10 * 10 * 8) + 10 * 16 * 8
    assert a.totals()["macs"] == hand == flop_counter_macs(EinsumAttention().to("meta"), (10, 16))
    ln = a.layers[-1]
    assert ln.weights == 8 and ln.biases == 8 and ln.args["eps"] == pytest.approx(1e-5)


def test_einsum_of_a_constant_and_unreadable_ones(save):
    """A learned operand on the left ('kd,bnd->bnk'), and an einsum of three operands (opaque)."""
    w = init("w", 5, 8)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Einsum", ["w", "t"], ["y"], equation="kd,bnd->bnk"),
    ]
    a = analyze(save(model(nodes, shape=(1, 8, 6), inits=[w])))
    assert a.complete and ops(a) == ["linear"] and a.totals()["macs"] == 6 * 8 * 5
    nodes[1] = helper.make_node("Einsum", ["t", "t", "t"], ["y"], equation="bnd,bnd,bnd->bnd")
    a = analyze(save(model(nodes, shape=(1, 8, 6))))
    assert not a.complete and ops(a) == ["opaque"]


@pytest.mark.skipif(onnx.defs.onnx_opset_version() < 23, reason="Attention is opset 23")
def test_attention_operator(save):
    """Opset 23's Attention on projected [1, S, H*d] queries, keys and values: Q.K^T and A.V."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1])]
    nodes += [helper.make_node("MatMul", ["t", f"w{n}"], [n]) for n in "qkv"]
    nodes.append(helper.make_node("Attention", ["q", "k", "v"], ["y"], q_num_heads=2, kv_num_heads=2))
    inits = [init(f"w{n}", 8, 8, value=np.full((8, 8), i + 1.0)) for i, n in enumerate("qkv")]
    a = analyze(save(model(nodes, shape=(1, 8, 6), inits=inits, opset=23)))
    assert a.complete and ops(a) == ["linear", "linear", "linear", "matmul", "matmul"]
    # projections 3 x 6 x 8 x 8; per head (2 heads of 4): Q.K^T 6 x 6 x 4, A.V 6 x 6 x 4
    assert a.totals()["macs"] == 3 * 6 * 8 * 8 + 2 * (2 * 6 * 6 * 4)
    assert a.totals()["params"] == 3 * 64
    assert a.layers[-1].output == (2, 6, 4)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_opset_20_gelu(save, approximate):
    nodes = [helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)]
    a = analyze(save(model(nodes, opset=20)))
    assert a.complete and ops(a) == ["gelu"] and a.layers[0].args["approximate"] == approximate


# --- layer names -----------------------------------------------------------------------------------------


def test_module_paths_from_torch_node_names():
    from cnnstat.onnx.convert import module_path

    assert module_path("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert module_path("/layer2/layer2.0/downsample/downsample.0/Conv") == "layer2.0.downsample.0"
    assert module_path("/features/features.1/features.1.1/attn/MatMul") == "features.1.1.attn"
    assert module_path("/Flatten") == ""


@pytest.mark.filterwarnings("ignore")
def test_layer_names_are_the_pytorch_imports(tmp_path, run):
    """torchvision's resnet18 through ONNX: every layer named as the PyTorch import names it
    (torch's node names /layer1/layer1.0/conv1/Conv are module paths), so summary --depth
    folds the two alike."""
    import torchvision

    from cnnstat.torch import analyze as torch_analyze

    m = torchvision.models.resnet18()
    path = exported(m, (3, 64, 64), tmp_path)
    got, want = analyze(path), torch_analyze(m, input=(3, 64, 64))
    assert [la.name for la in got.layers] == [la.name for la in want.layers]
    assert got.layers[4].name == "layer1.0.conv1" and got.layers[9].name == "layer1.0.add"
    out = run("summary", path, "--depth", "1", "--format", "csv").stdout.splitlines()
    assert [line.split(",")[0] for line in out[1:] if not line.startswith("total")] == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "flatten",
        "fc",
    ]


# --- channel shuffle --------------------------------------------------------------------------------------


class Shuffle(torch.nn.Module):
    """torchvision's channel_shuffle as written in its ShuffleNet (view, transpose, view):
    what torch exports; nn.ChannelShuffle (the zoo's torch build) has no ONNX export."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _swap_shuffles(module):
    for name, child in module.named_children():
        if isinstance(child, torch.nn.ChannelShuffle):
            setattr(module, name, Shuffle(child.groups))
        else:
            _swap_shuffles(child)
    return module


@pytest.mark.filterwarnings("ignore")
def test_shufflenet_v2_through_onnx(tmp_path):
    """A channel shuffle is a reordering of the channels: no layer; the split after it (chunk)
    and the convolutions reading it keep exact counts and fields. The zoo's spec and
    torchvision's model, exported, equal the spec and the PyTorch import (params, buffers,
    MACs, receptive field)."""
    import torchvision
    from test_onnx import rf_tuple

    from cnnstat.analysis import Analysis
    from cnnstat.spec.build import build
    from cnnstat.torch import analyze as torch_analyze
    from cnnstat.torch import build as torch_build
    from cnnstat.zoo import get

    keys = ("params", "weights", "biases", "buffers", "macs")
    spec, shape = get("shufflenet_v2_x0_5"), (3, 64, 64)
    got = analyze(exported(_swap_shuffles(torch_build(spec, input=shape)), shape, tmp_path, "spec.onnx"))
    want = Analysis(build(spec, shape))
    assert got.complete and {k: got.totals()[k] for k in keys} == {k: want.totals()[k] for k in keys}
    assert rf_tuple(got) == rf_tuple(want) == ((527, 527), (32, 32), (0.0, 0.0))
    assert "shuffle" not in ops(got)
    m = torchvision.models.shufflenet_v2_x0_5()
    got = analyze(exported(m, shape, tmp_path, "tv.onnx"))
    want = torch_analyze(m, input=shape)
    assert got.complete and {k: got.totals()[k] for k in keys} == {k: want.totals()[k] for k in keys}
    assert got.totals()["params"] == sum(p.numel() for p in m.parameters()) == 1_366_792
    assert rf_tuple(got) == rf_tuple(want)


@pytest.mark.filterwarnings("ignore")
def test_local_response_norm_written_out_is_one_lrn(tmp_path):
    """torch exports nn.LocalResponseNorm as x^2, a reshape to 5-D, a pad and an average pool
    over the channels, a squeeze in an If on the shape, * alpha, + k, ^ beta, x / that: one
    ``lrn`` layer, the receptive field the convolution's (as for the spec's lrn)."""
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.LocalResponseNorm(5, k=2.0), torch.nn.Conv2d(8, 4, 1)
    )
    a = analyze(exported(m, (3, 12, 12), tmp_path))
    assert a.complete and ops(a) == ["conv", "lrn", "conv"]
    assert a.layers[1].name == "1" and a.layers[1].args["size"] == 5 and a.layers[1].args["k"] == 2.0
    assert a.totals()["macs"] == 8 * 100 * 27 + 4 * 100 * 8
    assert a.receptive_field().rf.size == (3, 3)


@pytest.mark.filterwarnings("ignore")
def test_tanh_gelu_written_out_is_one_gelu(tmp_path):
    """GELU(approximate='tanh') exports as x*x, *x, *0.044715, +x, *sqrt(2/pi), Tanh, +1, *x,
    *0.5: one gelu layer; a plain Tanh stays tanh."""
    m = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(16, 4), torch.nn.Tanh()
    )
    path = str(tmp_path / "g.onnx")
    torch.onnx.export(
        m, (torch.rand(1, 5, 8),), path, dynamo=False, opset_version=17, do_constant_folding=False
    )
    a = analyze(path, input=(5, 8))
    assert a.complete and ops(a) == ["linear", "gelu", "linear", "tanh"]
    assert a.layers[1].args["approximate"] == "tanh" and a.layers[1].name == "1"
    assert a.totals()["macs"] == 5 * 8 * 16 + 5 * 16 * 4  # by hand: the two linear layers
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())


def test_onnxruntime_fused_attention(save):
    """com.microsoft Attention on [1, S, C] tokens: the q, k, v projection (C x 3C weights,
    3C biases), Q.K^T and A.V per head; by hand."""
    s, c, heads = 6, 8, 2
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Attention", ["t", "w", "bias"], ["y"], domain="com.microsoft", num_heads=heads),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, c, s])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=[init("w", c, 3 * c), init("bias", 3 * c)],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    a = analyze(save(helper.make_model(graph, opset_imports=opsets)))
    assert a.complete and ops(a) == ["linear", "matmul", "matmul"]
    assert (a.totals()["weights"], a.totals()["biases"]) == (c * 3 * c, 3 * c)
    assert a.totals()["macs"] == s * c * 3 * c + 2 * (heads * s * s * (c // heads))
    assert a.layers[-1].output == (heads, s, c // heads)
