"""Normalisations (layernorm, layernorm_all, groupnorm, instancenorm) and activations
(leaky_relu, elu, selu, celu, gelu, mish, softplus, hardtanh, logsigmoid, softmax and
log_softmax over any axis).

Checked against hand computation (PyTorch's parameter shapes: weight and bias [C] for
LayerNorm(C), GroupNorm and affine InstanceNorm, the normalised shape for LayerNorm(shape);
running mean and variance [C]), against the torch modules cnnstat builds (sum of the
parameters' and buffers' numel, PyTorch's FlopCounterMode: 0 MACs), against the importer
reading them back, and numerically against torchvision's ConvNeXt LayerNorm2d.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.analysis import Analysis
from cnnstat.errors import SpecError
from cnnstat.ops import REGISTRY
from cnnstat.spec.build import build as build_spec
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs
from cnnstat.torch.ops.norm import ChannelLayerNorm
from cnnstat.torch.trace import trace_module
from helpers import spec_from_text

SHAPES = {"flat": "[6]", "1d": "[6, 10]", "2d": "[6, 4, 5]", "3d": "[6, 2, 3, 4]"}
NUMEL = {"flat": 6, "1d": 60, "2d": 120, "3d": 144}


def graph_of(layers: str, input="[6, 4, 5]", at=None, frame=False):
    text = f"input: {input}\nlayers:\n" + "".join(f"  - {la}\n" for la in layers.strip().splitlines())
    return build_spec(spec_from_text(text), at, frame=frame)


def one(layer: str, input="[6, 4, 5]"):
    return graph_of(layer, input).layers[-1]


def costs(layer):
    return layer.weights, layer.biases, layer.buffers, layer.macs


# --- the spec side: hand-computed counts --------------------------------------------------------


@pytest.mark.parametrize("rank", SHAPES)
@pytest.mark.parametrize(
    "layer, expected",
    [
        # C = 6 channels: weight [6], bias [6]; running statistics 2 x [6]
        ("layernorm", (6, 6, 0)),
        ("ln: {bias: false}", (6, 0, 0)),
        ("layer_norm: {elementwise_affine: false}", (0, 0, 0)),
        ("groupnorm: {groups: 3}", (6, 6, 0)),
        ("gn: {num_groups: 6, affine: false}", (0, 0, 0)),
        ("groupnorm: {groups: 1, eps: 1.0e-6}", (6, 6, 0)),
    ],
)
def test_channel_norm_counts(layer, expected, rank):
    la = one(layer, SHAPES[rank])
    assert costs(la) == (*expected, 0)  # 0 MACs
    assert la.output == tuple(int(v) for v in SHAPES[rank].strip("[]").split(", "))


@pytest.mark.parametrize("rank", ["1d", "2d", "3d"])
@pytest.mark.parametrize(
    "layer, expected",
    [
        ("instancenorm", (0, 0, 0)),  # PyTorch's defaults: no affine, no running statistics
        ("instance_norm: {affine: true}", (6, 6, 0)),
        ("instancenorm: {track_running_stats: true}", (0, 0, 12)),
        ("instancenorm: {affine: true, track: true}", (6, 6, 12)),
    ],
)
def test_instance_norm_counts(layer, expected, rank):
    assert costs(one(layer, SHAPES[rank])) == (*expected, 0)


@pytest.mark.parametrize("rank", SHAPES)
def test_layernorm_all_counts(rank):
    n = NUMEL[rank]  # weight and bias the input's shape: C x H x W elements each
    assert costs(one("layernorm_all", SHAPES[rank])) == (n, n, 0, 0)
    assert costs(one("layernorm_all: {bias: false}", SHAPES[rank])) == (n, 0, 0, 0)
    assert costs(one("layernorm_all: {affine: false}", SHAPES[rank])) == (0, 0, 0, 0)


def test_norms_keep_the_receptive_field():
    g = graph_of(
        """
        conv: {out: 6, k: 3, s: 2}
        layernorm
        groupnorm: {groups: 2}
        instancenorm
        layernorm_all
        softmax: {dim: 1}
        log_softmax: {dim: -1}
        """,
        "[3, 15, 17]",
    )
    conv = g.layers[0]
    assert conv.rf.size == (3, 3) and conv.rf.jump == (2, 2)
    assert all(la.rf == conv.rf and la.output == conv.output for la in g.layers[1:])


@pytest.mark.parametrize(
    "layer, inplace",
    [
        ("leaky_relu", True),
        ("leaky_relu: {slope: 0.1}", True),
        ("leaky_relu: {negative_slope: 0.2}", True),
        ("elu: {alpha: 0.5}", True),
        ("selu", True),
        ("celu: {alpha: 2.0}", True),
        ("mish", True),
        ("hardtanh: {min: -2, max: 3}", True),
        ("hardtanh: {min_val: 0, max_val: 6}", True),
        ("gelu", False),
        ("gelu: {approximate: tanh}", False),
        ("softplus: {beta: 2, threshold: 10}", False),
        ("logsigmoid", False),
        ("softmax", False),
        ("log_softmax: {dim: 2}", False),
    ],
)
def test_activations_are_free(layer, inplace):
    la = one(layer)
    assert costs(la) == (0, 0, 0, 0) and la.output == (6, 4, 5)
    assert REGISTRY[la.op].inplace is inplace and not REGISTRY[la.op].view


def test_argument_aliases_resolve():
    assert one("leaky_relu: {negative_slope: 0.2}").args == {"slope": 0.2}
    assert one("leaky_relu").args == {"slope": 0.01}
    assert one("hardtanh: {min_val: -3, max_val: 2}").args == {"min": -3, "max": 2}
    assert one("gn: {num_groups: 2}").args == {"groups": 2, "eps": 1e-5, "affine": True}
    assert one("ln").op == "layernorm" and one("instance_norm").op == "instancenorm"


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
def test_softmax_any_axis(dim):
    assert one(f"softmax: {{dim: {dim}}}").args == {"dim": dim}
    assert one(f"log_softmax: {{dim: {dim}}}").output == (6, 4, 5)


# --- errors, located ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, input, where, message",
    [
        (
            "groupnorm: {groups: 4}",
            "[6, 4, 4]",
            "4:5",
            "groupnorm: groups 4 must divide the 6 input channels",
        ),
        ("groupnorm", "[6, 4, 4]", "4:5", "groupnorm needs argument 'groups'"),
        ("groupnorm: {groups: 0}", "[6, 4, 4]", "4:25", "'groups' must be at least 1, got 0"),
        ("softmax: {dim: 3}", "[6, 4, 4]", "4:5", "'dim' must index the input's 3 axes [6, 4, 4] (-3 to 2"),
        ("log_softmax: {dim: -2}", "[6]", "4:5", "'dim' must index the input's 1 axes [6] (-1 to 0"),
        ("gelu: {approximate: erf}", "[6, 4, 4]", "4:25", "'approximate' must be one of none, tanh"),
        ("hardtanh: {min: 1, max: 1}", "[6, 4, 4]", "4:5", "'max' (1) must be greater than 'min' (1)"),
        ("instancenorm", "[6]", "4:5", "instancenorm needs positions to normalise over"),
        ("layernorm: {over: all}", "[6, 4, 4]", "4:17", "layernorm has no argument 'over'"),
        ("leaky_relu: {slope: steep}", "[6, 4, 4]", "4:25", "'slope' must be a number"),
    ],
)
def test_errors_are_located(layer, input, where, message):
    text = f"input: {input}\nlayers:\n  - identity\n  - {layer}\n"
    with pytest.raises(SpecError) as exc:
        build_spec(spec_from_text(text))
    assert str(exc.value).startswith(f"test.yaml:{where}: error: ")
    assert message in str(exc.value)


def test_layernorm_all_is_sized_by_its_input():
    g = graph_of("conv: {out: 4, k: 3, p: 1}\nlayernorm_all", "[3, 8, 8]")
    assert costs(g.layers[-1]) == (4 * 8 * 8, 4 * 8 * 8, 0, 0)
    with pytest.raises(SpecError, match=r"test.yaml:4:5: error: layernorm_all 'layernorm_all1' gets input"):
        graph_of("conv: {out: 4, k: 3, p: 1}\nlayernorm_all", "[3, 8, 8]", at=(3, 16, 16))
    with pytest.raises(SpecError, match="cannot slide over a frame"):
        graph_of("conv: {out: 4, k: 3, p: 1}\nlayernorm_all", "[3, 8, 8]", at=(3, 16, 16), frame=True)
    # an MLP has nothing to slide: frame mode runs it unchanged
    mlp = graph_of("fc: {out: 5}\nlayernorm_all\nfc: {out: 2}", "[7]", frame=True)
    assert costs(mlp.layers[1]) == (5, 5, 0, 0)
    # channel norms are not: any input size
    g = graph_of("layernorm\ngroupnorm: {groups: 3}\ninstancenorm: {affine: true}", at=(6, 9, 9))
    assert [costs(la) for la in g.layers] == [(6, 6, 0, 0)] * 3


# --- torch: build, count, import back -----------------------------------------------------------


def layer_view(graph):
    return [
        (la.name, la.op, la.inputs, la.output, la.weights, la.biases, la.buffers, la.macs, la.rf, la.args)
        for la in graph.layers
    ]


def buffer_numel(module):
    # PyTorch's num_batches_tracked (one integer per norm with running statistics) is not
    # counted by cnnstat, as for bn
    return sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))


def round_trip(graph):
    """The built module (meta device): parameters and buffers as cnnstat counts them,
    FlopCounterMode's MACs, and the importer gives back the same layers (with their args)."""
    meta = build_graph(graph, "meta")
    totals = Analysis(graph).totals()
    assert sum(p.numel() for p in meta.parameters()) == totals["params"]
    assert buffer_numel(meta) == sum(la.buffers for la in graph.layers)
    assert flop_counter_macs(meta, graph.input) == totals["macs"]
    back = trace_module(meta, graph.input, graph.name)
    assert not back.unsupported and not back.not_executed
    assert layer_view(back) == layer_view(graph)
    return meta


EVERY_NEW_OP = """
layernorm
ln: {bias: false, eps: 1.0e-6}
layernorm: {affine: false}
groupnorm: {groups: 3}
groupnorm: {groups: 2, affine: false, eps: 0.001}
instancenorm
instancenorm: {affine: true}
instancenorm: {track_running_stats: true, momentum: 0.2}
instancenorm: {affine: true, track_running_stats: true}
leaky_relu
leaky_relu: {slope: 0.1}
elu: {alpha: 0.5}
selu
celu: {alpha: 2.0}
gelu
gelu: {approximate: tanh}
mish
softplus: {beta: 2.0, threshold: 10.0}
hardtanh
hardtanh: {min: -2.0, max: 3.0}
hardtanh: {min: 0.0, max: 6.0}
logsigmoid
softmax
softmax: {dim: -1}
log_softmax: {dim: 1}
layernorm_all
layernorm_all: {bias: false}
"""


@pytest.mark.parametrize("rank", ["1d", "2d", "3d"])
def test_every_new_op_round_trips(rank):
    meta = round_trip(graph_of(EVERY_NEW_OP, SHAPES[rank]))
    types = [type(m) for m in meta.children()]
    assert types[0] is ChannelLayerNorm and nn.GroupNorm in types and nn.LayerNorm in types
    assert {nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d} & set(types)


def test_flat_ops_round_trip():
    skip = ("instancenorm", "dim: 1", "layernorm_all")
    flat = [la for la in EVERY_NEW_OP.strip().splitlines() if not any(s in la for s in skip)]
    meta = round_trip(graph_of("\n".join(flat), "[6]"))
    assert type(next(meta.children())) is nn.LayerNorm  # a flat [C]: torch's own LayerNorm(C)
    # over a flat [C], layernorm_all is layernorm (the same nn.LayerNorm(C)), and imports so
    graph = graph_of("layernorm_all: {bias: false}", "[6]")
    back = trace_module(build_graph(graph, "meta"), (6,)).layers[0]
    assert (back.op, back.args, costs(back)) == ("layernorm", graph.layers[0].args, (6, 0, 0, 0))


def test_built_modules_run():
    graph = graph_of(EVERY_NEW_OP + "conv: {out: 2, k: 1}\n", "[6, 4, 5]")
    out = build_graph(graph)(torch.randn(2, 6, 4, 5))
    assert tuple(out.shape) == (2, 2, 4, 5) and torch.isfinite(out).all()


def test_channel_layernorm_equals_torchvisions_layernorm2d():
    convnext = pytest.importorskip("torchvision.models.convnext")
    torch.manual_seed(0)
    ours, theirs = ChannelLayerNorm(8, eps=1e-6), convnext.LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        for p in (*ours.parameters(), *theirs.parameters()):
            p.uniform_(0.5, 1.5)
        theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8, 5, 7)
    assert torch.equal(ours(x), theirs(x))
    # any spatial rank: nn.LayerNorm(C) on each position's channels
    for shape in ((3, 8, 11), (3, 8, 2, 3, 4)):
        x = torch.randn(*shape)
        expected = nn.LayerNorm.forward(ours, x.movedim(1, -1)).movedim(-1, 1)
        assert torch.allclose(ours(x), expected, atol=1e-6)
        mean = x.mean(1, keepdim=True)
        var = x.var(1, unbiased=False, keepdim=True)
        w, b = ours.weight.view(1, 8, *[1] * (x.dim() - 2)), ours.bias.view(1, 8, *[1] * (x.dim() - 2))
        assert torch.allclose(ours(x), (x - mean) / torch.sqrt(var + 1e-6) * w + b, atol=1e-5)


# --- torch: importing models written with torch.nn / torch.nn.functional ------------------------


def imported(module, shape, tracer="auto"):
    with torch.device("meta"):
        module = module.to("meta")
    return trace_module(module, shape, type(module).__name__, tracer)


class Stem(nn.Module):
    """conv -> norm -> conv, the norm given."""

    def __init__(self, norm, c=8):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3)
        self.norm = norm
        self.head = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        return self.head(self.norm(self.conv(x)))


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
def test_torchvision_layernorm2d_imports_as_layernorm(tracer):
    convnext = pytest.importorskip("torchvision.models.convnext")
    g = imported(Stem(convnext.LayerNorm2d(8, eps=1e-6)), (3, 10, 12), tracer)
    assert not g.unsupported and not g.not_executed
    conv, norm, head = g.layers
    # traced inside: permute -> F.layer_norm over the channels -> permute back
    assert (norm.op, norm.inputs, norm.output) == ("layernorm", ("conv",), (8, 8, 10))
    assert norm.args == {"eps": 1e-6, "affine": True, "bias": True}
    assert costs(norm) == (8, 8, 0, 0) and head.inputs == (norm.name,) and norm.rf == conv.rf


@pytest.mark.parametrize(
    "norm, op, expected",
    [
        (ChannelLayerNorm(8), "layernorm", (8, 8, 0)),
        (ChannelLayerNorm(8, bias=False), "layernorm", (8, 0, 0)),
        (nn.LayerNorm((8, 8, 10)), "layernorm_all", (640, 640, 0)),
        (nn.LayerNorm([8, 8, 10], elementwise_affine=False), "layernorm_all", (0, 0, 0)),
        (nn.GroupNorm(4, 8), "groupnorm", (8, 8, 0)),
        (nn.GroupNorm(2, 8, affine=False), "groupnorm", (0, 0, 0)),
        (nn.InstanceNorm2d(8), "instancenorm", (0, 0, 0)),
        (nn.InstanceNorm2d(8, affine=True, track_running_stats=True), "instancenorm", (8, 8, 16)),
    ],
)
def test_norm_modules_import(norm, op, expected):
    g = imported(Stem(norm), (3, 10, 12))
    assert not g.unsupported
    la = g.layers[1]
    assert (la.op, *costs(la)) == (op, *expected, 0)


class Functional(nn.Module):
    """Every function the importer maps, on a [N, 8, H, W] tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.gn_w, self.gn_b = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))
        self.in_w, self.in_b = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))
        self.ln_w, self.ln_b = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))

    def forward(self, x):
        x = self.conv(x)
        x = F.group_norm(x, 2, self.gn_w, self.gn_b, 1e-3)
        x = F.instance_norm(x, weight=self.in_w, bias=self.in_b)
        x = torch.instance_norm(x, None, None, None, None, True, 0.1, 1e-5, False)
        x = F.layer_norm(x.permute(0, 2, 3, 1), (8,), self.ln_w, self.ln_b, 1e-6).permute(0, 3, 1, 2)
        x = F.leaky_relu(x, 0.1)
        x = F.elu(x, alpha=0.5)
        x = F.selu(x)
        x = F.celu(x, 2.0)
        x = F.gelu(x, approximate="tanh")
        x = F.mish(x)
        x = F.softplus(x, beta=2.0)
        x = F.hardtanh(x, -2.0, 3.0)
        x = F.logsigmoid(x)
        x = torch.clamp(x, 0, 6)
        x = x.clamp(min=0)
        x = F.softmax(x, dim=-1)
        x = F.log_softmax(x, 2)
        return x.softmax(1)


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
def test_functions_import(tracer):
    g = imported(Functional(), (3, 10, 12), tracer)
    assert not g.unsupported and not g.not_executed
    view = [(la.op, la.args, la.weights, la.biases) for la in g.layers[1:]]
    assert view == [
        ("groupnorm", {"groups": 2, "eps": 1e-3, "affine": True}, 8, 8),
        ("instancenorm", {"affine": True, "track_running_stats": False, "eps": 1e-5, "momentum": 0.1}, 8, 8),
        ("instancenorm", {"affine": False, "track_running_stats": False, "eps": 1e-5, "momentum": 0.1}, 0, 0),
        ("layernorm", {"eps": 1e-6, "affine": True, "bias": True}, 8, 8),
        ("leaky_relu", {"slope": 0.1}, 0, 0),
        ("elu", {"alpha": 0.5}, 0, 0),
        ("selu", {}, 0, 0),
        ("celu", {"alpha": 2.0}, 0, 0),
        ("gelu", {"approximate": "tanh"}, 0, 0),
        ("mish", {}, 0, 0),
        ("softplus", {"beta": 2.0, "threshold": 20.0}, 0, 0),
        ("hardtanh", {"min": -2.0, "max": 3.0}, 0, 0),
        ("logsigmoid", {}, 0, 0),
        ("relu6", {}, 0, 0),
        ("relu", {}, 0, 0),
        ("softmax", {"dim": -1}, 0, 0),
        ("log_softmax", {"dim": 1}, 0, 0),
        ("softmax", {"dim": 0}, 0, 0),
    ]
    assert sum(la.weights + la.biases for la in g.layers) == sum(p.numel() for p in Functional().parameters())


@pytest.mark.parametrize(
    "module, op, args",
    [
        (nn.LeakyReLU(0.2, inplace=True), "leaky_relu", {"slope": 0.2}),
        (nn.ELU(), "elu", {"alpha": 1.0}),
        (nn.GELU(), "gelu", {"approximate": "none"}),
        (nn.Softplus(), "softplus", {"beta": 1.0, "threshold": 20.0}),
        (nn.Hardtanh(), "hardtanh", {"min": -1.0, "max": 1.0}),
        (nn.Hardtanh(0.0, 6.0), "relu6", {}),
        (nn.ReLU6(), "relu6", {}),
        (nn.Mish(), "mish", {}),
        (nn.SELU(), "selu", {}),
        (nn.CELU(0.5), "celu", {"alpha": 0.5}),
        (nn.LogSigmoid(), "logsigmoid", {}),
        (nn.Softmax(1), "softmax", {"dim": 0}),
        (nn.Softmax(-2), "softmax", {"dim": -2}),
        (nn.LogSoftmax(dim=3), "log_softmax", {"dim": 2}),
        (nn.Softmax2d(), "softmax", {"dim": -3}),  # the channels of [N, C, H, W]
    ],
)
def test_activation_modules_import(module, op, args):
    la = imported(Stem(module), (3, 10, 12)).layers[1]
    assert (la.op, la.args) == (op, args)


class Tokens(nn.Module):
    """[N, L, D] features last: a transformer's LayerNorm, and one over a flat [N, D]."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(5 * 16, 16)
        self.flat_norm = nn.LayerNorm(16)

    def forward(self, x):
        y = self.norm(x)
        return self.flat_norm(self.fc(x.flatten(1))), y


def test_layer_norm_over_last_axis_is_not_guessed():
    g = imported(Tokens(), (5, 16))
    ops = {la.name: la.op for la in g.layers}
    assert ops["flat_norm"] == "layernorm"  # [N, 16]: the channels of a flat tensor
    assert [u["at"] for u in g.unsupported] == ["norm"]  # [N, 5, 16]: its last axis
    assert "normalises the last axes [16] of a [5, 16] input" in g.unsupported[0]["detail"]
    assert g.unsupported[0]["params"] == 32


def test_softmax_over_the_batch_is_unsupported():
    g = imported(Stem(nn.Softmax(0)), (3, 10, 12))
    assert [u["call"] for u in g.unsupported] == ["nn.Softmax"]
    assert "over dim 0 of a 4-D tensor (the batch)" in g.unsupported[0]["detail"]


def test_clamps_that_map_to_nothing_are_unsupported():
    class Clamp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.conv(x).clamp(min=-1.0)

    g = imported(Clamp(), (3, 4, 4))
    assert "clamps to [-1.0, None]" in g.unsupported[0]["detail"]


def test_torchvision_convnext_norms():
    """ConvNeXt-T: 5 LayerNorm2d (stem, three downsamplings, head) and one nn.LayerNorm per
    block (18) over the channels of a permuted [N, H, W, C] tensor: all import as layernorm,
    with the parameters torch allocates for them."""
    models = pytest.importorskip("torchvision.models")
    with torch.device("meta"):
        net = models.convnext_tiny()
    g = trace_module(net, (3, 224, 224), "convnext_tiny")
    norms = [la for la in g.layers if la.op == "layernorm"]
    modules = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == len(modules) == 23
    assert sum(la.weights + la.biases for la in norms) == sum(
        p.numel() for m in modules for p in m.parameters()
    )
