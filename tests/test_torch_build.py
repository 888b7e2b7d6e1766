"""Spec -> nn.Module (cnnstat.torch.build), checked by independent code: for every zoo model,
sum(p.numel()) of the built module, fvcore's FlopCountAnalysis (a real forward), PyTorch's
FlopCounterMode (meta device), and the importer reading the module back layer by layer."""

import math

import pytest
import torch
from torch import nn

from cnnstat.analysis import Analysis
from cnnstat.errors import SpecError
from cnnstat.spec.build import build as build_spec
from cnnstat.torch import build
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs, fvcore_macs
from cnnstat.torch.ops.conv import LocallyConnected
from cnnstat.torch.trace import trace_module
from cnnstat.zoo import list_models, load
from helpers import spec_from_text

ZOO = list_models()
FULL_HD = (1080, 1920)


def layer_view(graph):
    return [
        (la.name, la.op, la.inputs, la.output, la.weights, la.biases, la.macs, la.rf) for la in graph.layers
    ]


def assert_matches(graph, meta):
    """params, FlopCounterMode MACs and the imported graph of the built module == cnnstat's."""
    totals = Analysis(graph).totals()
    assert sum(p.numel() for p in meta.parameters()) == totals["params"]
    assert flop_counter_macs(meta, graph.input) == totals["macs"]
    back = trace_module(meta, graph.input, graph.name)
    assert not back.unsupported and not back.not_executed
    assert layer_view(back) == layer_view(graph)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_at_its_input(name):
    graph = build_spec(load(name))
    meta = build_graph(graph, "meta")
    modules = dict(meta.named_modules())
    assert all(la.name in modules for la in graph.layers), "module names are the spec's layer names"
    assert_matches(graph, meta)


# Specs that refuse a Full-HD frame (exit 2 in the CLI) are checked at their own input only:
# fc layers sized by the spec's input (the zoo's VGGs have no adaptive pool before fc1, unlike
# torchvision's), and BN-Inception, whose ceil-mode pooling branch comes out one row shorter
# than its convolution branches at 1080 rows (67 vs 68), so the concatenation is impossible.
FC_SIZED = "sized for the spec's input"
REFUSE_FULL_HD = {
    **dict.fromkeys(["alexnet", "alexnet-grouped", "lenet5"], FC_SIZED),
    **{f"vgg{n}{bn}": FC_SIZED for n in (11, 13, 16, 19) for bn in ("", "_bn")},
    "bn_inception": r"concat: spatial sizes differ: .* \[320, 67, 120\]",
    # ViT's position embedding holds one vector per token of the spec's input (197 at 224x224)
    **{
        f"vit_{s}_{p}": r"pos_embed 'pos_embed1' gets input .* sized for the spec's input"
        for s in ("b", "l")
        for p in (16, 32)
    },
}


@pytest.mark.parametrize("name", ZOO)
def test_zoo_at_full_hd(name):
    spec = load(name)
    frame = (*spec.input[:-2], *FULL_HD)  # video models [C, D, H, W]: D frames of Full-HD
    if name in REFUSE_FULL_HD:
        with pytest.raises(SpecError, match=REFUSE_FULL_HD[name]):
            build_spec(spec, frame)
        return
    graph = build_spec(spec, frame)
    assert_matches(graph, build_graph(graph, "meta"))


# fvcore runs a real forward (seconds per model on a 2-core machine, more at Full-HD), so the
# suite runs it on one model of each family and op mix; `cnnstat verify` (no MODEL) checks the
# whole zoo, `cnnstat verify --resolution 1920x1080` the whole zoo at Full-HD. PyTorch's
# FlopCounterMode covers every model at both sizes above.
FVCORE_AT_OWN_INPUT = [
    "lenet5",
    "alexnet",
    "vgg11_bn",
    "googlenet",
    "inception_v3",
    "bn_inception",
    "densenet121",
    "mobilenet_v1",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "squeezenet1_0",
    "shufflenet_v2_x0_5",
    "resnet18",
    "se_resnext50_32x4d",
]


def test_fvcore_agrees_at_the_models_input(run):
    import json

    res = run("verify", *FVCORE_AT_OWN_INPUT, "--format", "json")
    assert res.exit_code == 0, res.stdout[-2000:]
    rows = json.loads(res.stdout)
    assert [r["model"] for r in rows] == FVCORE_AT_OWN_INPUT
    for r in rows:
        assert r["equal"], r["model"]
        assert r["params"]["cnnstat"] == r["params"]["torch"]
        assert r["macs"]["cnnstat"] == r["macs"]["fvcore"] == r["macs"]["flop_counter"]


@pytest.mark.parametrize(
    "name", ["mobilenet_v1", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1", "alexnet-owt"]
)
def test_fvcore_at_full_hd(name):
    spec = load(name)
    graph = build_spec(spec, (3, *FULL_HD))
    module = build_graph(graph)
    assert sum(p.numel() for p in module.parameters()) == Analysis(graph).totals()["params"]
    assert fvcore_macs(module, graph.input)["macs"] == Analysis(graph).totals()["macs"]


def test_auxiliary_outputs_are_returned_so_fvcore_sees_them():
    # inception_v3's aux head is a second sink of the graph: the module returns both, so a
    # jit trace (fvcore) does not prune the aux head as dead code.
    graph = build_spec(load("inception_v3"))
    out = build_graph(graph, "meta")(torch.empty(1, *graph.input, device="meta"))
    assert isinstance(out, tuple) and [o.shape[-1] for o in out] == [1000, 1000]
    assert fvcore_macs(build_graph(graph), graph.input)["macs"] == 5_718_899_296


EVERY_OP = """
cnnstat: 1
name: every-op
input: [3, 20, 20]
layers:
  - conv: {out: 8, k: 3, s: 2, p: same, name: c_same}
  - bn
  - prelu
  - dwconv: {mult: 2, k: 3, p: 1, bias: false}
  - relu6
  - local: {out: 4, k: 3, p: 1}
  - hardswish
  - conv: {out: 12, k: [1, 3], p: [0, 1], groups: 2, d: 1}
  - lrn
  - maxpool: {k: 2, s: 2, ceil: true}
  - add:
      a: [silu]
      b: identity
  - concat:
      a: [slice: {start: 0, stop: 6}]
      b: [slice: {start: 6}]
  - shuffle: {groups: 3}
  - mul:
      x: identity
      gate: [gap, conv: {out: 12, k: 1}, hardsigmoid]
  - avgpool: {k: 3, s: 1, p: 1}
  - adaptive_avgpool: {size: 2}
  - adaptive_maxpool: {size: 2}
  - prelu: {shared: true}
  - gmp
  - flatten
  - fc: {out: 10}
  - dropout
  - tanh
  - sigmoid
  - identity
  - fc: {out: 4, bias: false}
  - softmax
"""

ONE_D = """
cnnstat: 1
name: every-op-1d
input: [2, 50]
layers:
  - conv: {out: 4, k: 5, s: 2, p: same}
  - bn
  - local: {out: 3, k: 3, s: 2}
  - maxpool: {k: 2, p: same}
  - relu
  - avgpool: {k: 2}
  - gap
  - flatten
  - fc: {out: 2}
"""


@pytest.mark.parametrize("text", [EVERY_OP, ONE_D], ids=["2d", "1d"])
def test_every_op_has_a_torch_module(text):
    graph = build_spec(spec_from_text(text))
    assert_matches(graph, build_graph(graph, "meta"))
    module = build_graph(graph)
    assert fvcore_macs(module, graph.input)["macs"] == Analysis(graph).totals()["macs"]
    out = module(torch.randn(2, *graph.input))
    assert tuple(out.shape[1:]) == graph.layers[-1].output


def test_same_padding_is_tensorflows():
    # 'same' at stride 2 pads the extra pixel after: 20 -> 10 positions, as TensorFlow
    graph = build_spec(spec_from_text(EVERY_OP))
    conv = dict(build_graph(graph).named_modules())["c_same"]
    assert conv.pads == (0, 1, 0, 1) and conv.padding == (0, 0)
    x = torch.randn(1, 3, 20, 20)
    manual = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    assert torch.equal(conv(x), manual)


def test_locally_connected_is_a_convolution_with_unshared_weights():
    """With the same filters at every position it computes what conv2d does."""
    torch.manual_seed(0)
    local = LocallyConnected(3, 5, (9, 11), kernel_size=3, stride=2, padding=1)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    positions = math.prod(local.out_size)
    assert local.out_size == (5, 6)
    with torch.no_grad():
        local.weight.copy_(conv.weight.reshape(5, -1).t().expand(positions, -1, -1))
        local.bias.copy_(conv.bias[:, None, None].expand(5, *local.out_size))
    x = torch.randn(2, 3, 9, 11)
    assert torch.allclose(local(x), conv(x), atol=1e-5)
    # cnnstat's count: out elements x C_in x k x k weights, one bias per out element
    assert local.weight.numel() == 5 * 30 * 3 * 9 and local.bias.numel() == 5 * 30


def test_build_api_names_and_device():
    module = build("resnet18")
    assert isinstance(module.get_submodule("layer1.block.0.add1.main.conv1"), nn.Conv2d)
    assert next(module.parameters()).device.type == "cpu" and not module.training
    meta = build("vgg16", device="meta")
    assert next(meta.parameters()).device.type == "meta"
    assert sum(p.numel() for p in meta.parameters()) == 138_357_544
    lenet = build("lenet5")
    assert lenet(torch.randn(3, 1, 32, 32)).shape == (3, 10)


def test_build_at_another_input():
    module = build("resnet18", input=(3, 96, 128), device="meta")
    assert module(torch.empty(1, 3, 96, 128, device="meta")).shape == (1, 1000)


def test_build_stays_a_function_once_its_module_is_imported():
    import cnnstat.torch
    import cnnstat.torch.builder  # noqa: F401

    assert callable(cnnstat.torch.build) and cnnstat.torch.build.__module__ == "cnnstat.torch"
