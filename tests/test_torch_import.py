"""PyTorch models -> cnnstat: torchvision's models against the zoo and torchvision's published
metadata, a model of functional calls with an unsupported op, the fx -> hooks fallback, the
MODEL forms, --kwargs, --strict, and the error messages."""

import json
import textwrap

import pytest
import torch
import torchvision
from torch import nn

from cnnstat.analysis import analyze as analyze_spec
from cnnstat.errors import CnnstatError
from cnnstat.torch import analyze, verify
from cnnstat.torch.analysis import import_graph

# torchvision name -> the zoo spec it must equal
TORCHVISION = {
    "alexnet": "alexnet-owt",
    "vgg16": "vgg16",
    "resnet50": "resnet50",
    "densenet121": "densenet121",
    "mobilenet_v2": "mobilenet_v2",
    "googlenet": "googlenet",
    "inception_v3": "inception_v3-noaux",  # the eval forward: AuxLogits is not run (see below)
    "efficientnet_b0": "efficientnet_b0",
    "shufflenet_v2_x1_0": "shufflenet_v2_x1_0",
    "squeezenet1_0": "squeezenet1_0",
}


def rf(a):
    layer = a.receptive_field()
    return layer.rf.size, layer.rf.jump, layer.rf.start


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_equals_zoo_and_published(name, tracer):
    a = analyze(f"torchvision:{name}", tracer=tracer)
    zoo = analyze_spec(TORCHVISION[name])
    t, z = a.totals(), zoo.totals()
    assert a.graph.tracer == tracer and not a.graph.unsupported and a.complete
    # what runs equals the zoo spec; modules the forward does not run count at 0 MACs
    assert (t["params"] - sum(a.graph.not_executed.values()), t["macs"]) == (z["params"], z["macs"])
    assert a.graph.input == zoo.graph.input
    assert rf(a) == rf(zoo)
    # torchvision's weights metadata: num_params, and _ops = GMAC of conv + linear layers
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    assert t["params"] == meta["num_params"]
    digits = len(str(meta["_ops"]).split(".")[1])
    assert round(t["macs"] / 1e9, digits) == meta["_ops"]


def test_inception_v3_aux_head_is_counted_at_0_macs():
    # torchvision's inception_v3 keeps AuxLogits (its 27,161,264 published parameters include
    # it), but the eval forward never runs it: cnnstat counts its parameters (as the zoo's
    # inception_v3 does) at 0 MACs (as inception_v3-noaux, 5.713 GMAC as published), and lists it.
    a = analyze("torchvision:inception_v3")
    assert a.graph.not_executed == {"AuxLogits": 3_326_696}
    assert a.totals()["params"] == analyze_spec("inception_v3").totals()["params"] == 27_161_264
    assert a.totals()["macs"] == analyze_spec("inception_v3-noaux").totals()["macs"] and a.complete
    unused = [la for la in a.layers if la.op == "unused"]
    assert [la.name for la in unused] == [
        "AuxLogits.conv0.conv",
        "AuxLogits.conv0.bn",
        "AuxLogits.conv1.conv",
        "AuxLogits.conv1.bn",
        "AuxLogits.fc",
    ]
    assert [la.kind for la in unused] == ["conv", "other", "conv", "other", "fc"]
    # conv0: 768 -> 128, 1x1, no bias; conv1: 128 -> 768, 5x5; their BNs; fc 768 -> 1000
    assert [(la.weights, la.biases, la.buffers, la.macs) for la in unused] == [
        (768 * 128, 0, 0, 0),
        (128, 128, 256, 0),
        (128 * 768 * 25, 0, 0, 0),
        (768, 768, 1536, 0),
        (768_000, 1000, 0, 0),
    ]
    assert sum(la.params for la in unused) == 3_326_696
    assert a.to_dict()["torch"]["not_executed"] == {"AuxLogits": 3_326_696}


def test_googlenet_is_built_as_published_unless_asked():
    # torchvision's published GoogLeNet has no auxiliary heads (its weights builder drops them)
    with_aux = analyze("torchvision:googlenet", kwargs={"aux_logits": True})
    assert with_aux.totals()["params"] == 13_004_888  # the heads exist, do not run in eval: 0 MACs
    assert sum(with_aux.graph.not_executed.values()) == 13_004_888 - 6_624_904
    assert with_aux.totals()["macs"] == analyze("torchvision:googlenet").totals()["macs"]


def test_torchvision_shufflenet_channel_shuffle_is_recognised():
    a = analyze("torchvision:shufflenet_v2_x1_0")
    ops = [la.op for la in a.layers]
    assert ops.count("shuffle") == 16 and ops.count("slice") == 26
    assert a.layers[ops.index("shuffle")].name == "stage2.0.view"  # view, transpose, view: one shuffle


def test_layer_names_are_module_paths():
    names = [la.name for la in analyze("torchvision:resnet50").layers]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert names[4:9] == ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.bn2"]
    # a module called three times (Bottleneck's relu) gives three layers; the residual add
    assert {"layer1.0.relu_1", "layer1.0.relu_2", "layer1.0.add", "flatten", "fc"} <= set(names)


def test_full_hd_without_allocating(tmp_path):
    a = analyze("torchvision:resnet50", input=(3, 1080, 1920))
    assert a.totals()["macs"] == 169_573_744_640  # fvcore: conv 169,571,696,640 + linear 2,048,000


NETS = '''
import torch
import torch.nn.functional as F
from torch import nn

CONSTANT = 3


class FunctionalNet(nn.Module):
    """Functional calls of every mapped kind, and one unsupported op (torch.roll)."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(16, 3, 3, 3))
        self.b1 = nn.Parameter(torch.zeros(16))
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(F.conv2d(x, self.w1, self.b1, stride=2, padding=1))
        y = torch.roll(self.conv2(x), 1, dims=2)
        y = torch.roll(y, 1, dims=3)
        x = torch.cat([x, y + x], dim=1)
        x = self.bn(x) * torch.sigmoid(F.adaptive_avg_pool2d(x, 1))
        x = F.max_pool2d(x, 2)
        x = x.view(x.size(0), x.size(1), -1).mean(-1)
        return self.fc(x.reshape(x.shape[0], -1) * 0.5)


class Branchy(nn.Module):
    """Python control flow on a tensor's size: torch.fx cannot trace it; hooks can."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.big = nn.Conv2d(8, 8, 3, stride=2)
        self.small = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv(x)
        x = self.big(x) if x.shape[-1] > 64 else self.small(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x.relu(), 1), 1))


class Shared(nn.Module):
    """One conv applied twice: its weights count once, its MACs twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))


class WithMatmul(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.proj = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        return torch.matmul(self.conv(x).flatten(2).transpose(1, 2), self.proj)


class NeedsArgs(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)

    def forward(self, x):
        return self.conv(x)


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def factory(width=8):
    layers = [nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2)]
    return nn.Sequential(*layers)


def not_a_module():
    return 42


instance = factory(4)
'''


@pytest.fixture
def nets(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "nets.py"


def test_functional_calls_and_an_unsupported_op(nets):
    a = analyze("nets:FunctionalNet", input=(3, 32, 32))
    ops = [(la.name, la.op) for la in a.layers]
    assert ops == [
        ("conv2d", "conv"),
        ("relu", "relu"),
        ("conv2", "conv"),
        ("roll", "opaque"),
        ("roll_1", "opaque"),
        ("add", "add"),
        ("cat", "concat"),
        ("bn", "bn"),
        ("adaptive_avg_pool2d", "adaptive_avgpool"),
        ("sigmoid", "sigmoid"),
        ("mul", "mul"),
        ("max_pool2d", "maxpool"),
        ("mean", "gap"),
        ("fc", "fc"),
    ]
    # torch.roll has no cnnstat op: listed (twice), its MACs unknown, not silently zero
    doc = a.to_dict()
    (roll,) = doc["torch"]["unsupported"]
    assert roll["call"] == "torch.roll" and roll["calls"] == 2 and roll["at"] == ["roll", "roll_1"]
    assert doc["complete"] is False and [i["layer"] for i in doc["incomplete"]] == ["roll", "roll_1"]
    # the known part: conv1: 16x16x16 outputs x 27; conv2: 16x16x16 x 144; fc: 32 x 10
    assert a.totals()["macs"] == 4096 * 27 + 4096 * 144 + 320
    assert a.totals()["params"] == 16 * 27 + 16 + 16 * 144 + 64 + 330
    r = verify("nets:FunctionalNet", input=(3, 32, 32))
    assert r["equal"] and r["macs"]["fvcore"] == a.totals()["macs"]


def test_unsupported_on_the_cli_and_strict(nets, run):
    res = run("params", "nets:FunctionalNet", "--input", "3x32x32", "--format", "json")
    assert res.exit_code == 0
    assert (
        "warning: unsupported (parameters counted, MACs unknown: totals are lower bounds): "
        "2 calls of torch.roll (at roll, roll_1)"
    ) in res.stderr
    assert json.loads(res.stdout)["torch"]["unsupported"][0]["calls"] == 2
    res = run("summary", "nets:FunctionalNet", "--input", "3x32x32", "--strict")
    assert res.exit_code == 2
    assert res.stderr.strip() == "error: unsupported (--strict): 2 calls of torch.roll (at roll, roll_1)"


def test_fx_falls_back_to_hooks(nets):
    a = analyze("nets:Branchy", input=(3, 32, 32))
    assert a.graph.tracer == "hooks" and "TraceError" in a.graph.fx_error
    names = ["big", "conv", "small", "relu", "adaptive_avg_pool2d", "flatten", "fc"]
    assert [la.name for la in a.layers] == names
    assert a.graph.not_executed == {"big": 584}  # the branch not taken at 32x32: counted, 0 MACs
    assert (a.layers[0].op, a.layers[0].params, a.layers[0].macs) == ("unused", 584, 0) and a.complete
    assert a.totals()["params"] == 224 + 584 + 72 + 36
    big = analyze("nets:Branchy", input=(3, 80, 80))
    assert ("big", "conv") in [(la.name, la.op) for la in big.layers] and big.graph.not_executed == {
        "small": 72
    }
    assert verify("nets:Branchy", input=(3, 80, 80))["equal"]


def test_a_module_called_twice(nets):
    a = analyze("nets:Shared", input=(4, 8, 8))
    assert [la.name for la in a.layers] == ["conv", "conv_1"]
    assert a.totals()["params"] == 4 * 4 * 9 + 4
    assert a.totals()["macs"] == 2 * 64 * 4 * 4 * 9
    assert verify("nets:Shared", input=(4, 8, 8))["equal"]


def test_matmul_is_a_listed_difference(nets, run):
    res = run("verify", "nets:WithMatmul", "--input", "3x32x32")
    assert res.exit_code == 1
    assert (
        "DIFFERENT" in res.stdout
        and "unsupported (parameters counted, MACs unknown): torch.matmul" in res.stdout
    )
    assert "≥ 194,400" in res.stdout  # cnnstat's MACs: a lower bound
    r = verify("nets:WithMatmul", input=(3, 32, 32))
    assert r["macs"]["fvcore"] - r["macs"]["cnnstat"] == 900 * 8 * 8  # the matmul's MACs
    assert r["params"]["cnnstat"] == r["params"]["torch"] == 224 + 64 and r["complete"] is False
    assert r["differences"] == [
        {
            "module": "(root)",
            "cnnstat_macs": 0,
            "fvcore_macs": 57_600,
            "cnnstat_params": 64,  # held by the unsupported matmul
            "torch_params": 64,
        }
    ]


def test_model_forms(nets, run):
    file_form = analyze(f"{nets}:factory", input=(3, 16, 16)).totals()
    assert file_form == analyze("nets:factory", input=(3, 16, 16)).totals()
    assert analyze("nets:factory", kwargs={"width": 16}, input=(3, 16, 16)).totals()["params"] == 16 * 28 + 34
    assert analyze("nets:instance", input=(3, 16, 16)).totals()["params"] == 4 * 28 + 10
    assert analyze("torchvision.models:resnet18").totals()["params"] == 11_689_512
    res = run("params", "nets:NeedsArgs", "--kwargs", "width=5", "--resolution", "40x30", "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["input"] == [3, 30, 40] and doc["totals"]["params"] == 5 * 27 + 5
    res = run("params", "nets:NeedsArgs", "--kwargs", '{"width": 6}', "--format", "json")
    assert json.loads(res.stdout)["totals"]["params"] == 6 * 28
    assert analyze("nets:Flat").graph.input == (3072,)  # an MLP: its first Linear's inputs


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuchmodule:Net"], "error: cannot import module 'nosuchmodule': no module named 'nosuchmodule'"),
        (
            ["nets:FunctionalNett"],
            "error: 'nets' has no attribute 'FunctionalNett' (did you mean 'FunctionalNet'?)",
        ),
        (["nets:CONSTANT"], "error: 'nets:CONSTANT' is a int, not an nn.Module, a module class or a factory"),
        (["nets:not_a_module"], "error: 'nets:not_a_module' returned a int, not an nn.Module"),
        (["nets:NeedsArgs"], "error: calling 'nets:NeedsArgs' failed: TypeError: "),
        (["nets:instance", "--kwargs", "width=3"], "error: 'nets:instance' is a module instance"),
        (["nets:factory", "--kwargs", "width="], "error: --kwargs: malformed 'width='"),
        (["nope/missing.py:Net"], "error: no such file: 'nope/missing.py'"),
        (["torchvision:resnet5O"], "error: torchvision has no model 'resnet5O' (did you mean 'resnet50'"),
        (["nets:Flat", "--input", "3x64x64"], "error: the forward of 'nets:Flat' fails at input 3x64x64"),
        (["vgg16", "--kwargs", "a=1"], "error: --kwargs applies to PyTorch models (MODEL as module:attr)"),
        (
            ["nets:factory", "--input", "3x16x16", "--resolution", "8x8"],
            "error: give --input or --resolution",
        ),
    ],
)
def test_errors_are_one_line(nets, run, args, message):
    res = run("params", *args)
    assert res.exit_code == 2
    assert res.stderr.startswith(message), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_import_failure_names_the_cause(tmp_path, run):
    (tmp_path / "broken.py").write_text("import torch\nraise ValueError('no weights here')\n")
    res = run("params", f"{tmp_path / 'broken.py'}:Net")
    assert res.exit_code == 2
    assert (
        res.stderr.strip()
        == f"error: importing '{tmp_path / 'broken.py'}' failed: ValueError: no weights here"
    )


def test_commands_take_pytorch_models(run):
    for command in ("params", "summary", "rf"):
        res = run(command, "torchvision:squeezenet1_1", "--format", "json")
        assert res.exit_code == 0, (command, res.stderr)
        doc = json.loads(res.stdout)
        assert doc["model"] == "torchvision:squeezenet1_1" and doc["totals"]["params"] == 1_235_496
        assert doc["torch"] == {
            "tracer": "fx",
            "module_params": 1_235_496,
            "module_buffers": 0,
            "unsupported": [],
            "not_executed": {},
        }
        assert doc["complete"] is True and doc["incomplete"] == []
    res = run("memory", "torchvision:squeezenet1_1", "--format", "json")
    assert json.loads(res.stdout)["memory"]["weight_bytes"] == 4 * 1_235_496 - 4 * 3_944  # biases apart


def test_python_api_takes_a_module():
    model = torchvision.models.resnet18()
    a = analyze(model, input=(3, 224, 224))
    assert a.name == "ResNet" and a.totals()["params"] == 11_689_512
    assert next(model.parameters()).device.type == "cpu"  # the caller's module is left as it was


def test_missing_attr_on_import_graph():
    with pytest.raises(CnnstatError, match="torchvision has no model"):
        import_graph("torchvision:nope")


class BufferScale(nn.Module):
    """Arithmetic on buffers alone (a gain computed from a buffer), then applied: torch.fx
    used to run it while tracing and keep the result as an anonymous constant, so the
    buffer looked unread."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.register_buffer("gain", torch.full((8,), 2.0))
        self.register_buffer("spare", torch.zeros(5))  # never read

    def forward(self, x):
        return self.conv(x) * (self.gain * 3).view(1, -1, 1, 1)


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
def test_buffer_arithmetic_counts_the_buffer_as_read(tracer):
    a = analyze(BufferScale(), input=(3, 10, 10), tracer=tracer)
    assert a.graph.tracer == tracer and a.complete
    by = {la.name: la for la in a.layers}
    # the gain is read (its 8 elements held by an 'unattributed' layer: no op claims a
    # constant product), the spare buffer is not: 'unused', listed apart
    read = [la for la in a.layers if la.op == "unattributed"]
    assert [(la.buffers, la.args["module"]) for la in read] == [(8, "")]
    assert [la.buffers for la in a.layers if la.op == "unused"] == [5]
    assert a.totals()["buffers"] == 8 + 5 and by["conv"].macs == 64 * 8 * 27


def _small_mvit_v2():
    """torchvision's MViT v2 (relative positions, residual pooling) with two small blocks, the
    second pooling its queries: MViT.forward calls the fx-wrapped ``_unsqueeze(x, 5, 2)[0]``
    (a tuple: the tensor and its former number of axes) before the patch convolution."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    blocks = [
        MSBlockConfig(1, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2]),
        MSBlockConfig(2, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 2, 2]),
    ]
    return MViT((32, 32), 8, blocks, True, False, True, True, num_classes=10, patch_embed_kernel=(3, 7, 7))


def _layers(a):
    slots = ("name", "op", "args", "inputs", "output", "weights", "biases", "buffers", "macs", "rf")
    return [tuple(getattr(la, s) for s in slots) for la in a.layers]


def test_mvit_traces_with_fx_as_with_hooks():
    from cnnstat.torch.check import flop_counter_macs

    model = _small_mvit_v2().eval()
    fx, hooks = (analyze(model, input=(3, 8, 32, 32), tracer=t) for t in ("fx", "hooks"))
    assert (fx.graph.tracer, hooks.graph.tracer) == ("fx", "hooks") and fx.complete
    # _unsqueeze added no layer: the patch convolution reads the input itself
    assert fx.layers[0].name == "conv_proj" and fx.layers[0].inputs == ("input",)
    assert _layers(fx) == _layers(hooks) and fx.totals() == hooks.totals()
    assert fx.totals()["params"] == sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        meta = _small_mvit_v2().eval()
    assert fx.totals()["macs"] == flop_counter_macs(meta, (3, 8, 32, 32))


def _unsqueeze(x):
    """Named as MViT's (torch.fx records the name; its canonical name is ``unsqueeze``)."""
    return x.unsqueeze(1), x.dim()


torch.fx.wrap("_unsqueeze")


class PairUnsqueeze(nn.Module):
    """A wrapped ``_unsqueeze`` returning a tuple that is not MViT's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)

    def forward(self, x):
        return self.conv(_unsqueeze(x)[0].squeeze(1))


def test_another_tuple_returning_unsqueeze_is_reported_not_guessed():
    a = analyze(PairUnsqueeze(), input=(3, 10), tracer="fx")
    assert not a.complete
    assert [u["call"] for u in a.graph.unsupported] == [f"{__name__}._unsqueeze"]
