"""Never a silently wrong total for an imported PyTorch model: parameters and buffers always
equal the module's (sum of numel, BatchNorm's num_batches_tracked aside), whatever the tracer
understood; MACs of calls cnnstat has no op for are unknown, so MAC totals are lower bounds,
said so in every table, JSON and budget; receptive fields past such a call are unknown.

Checked against sum(p.numel()) of the modules, hand counts, PyTorch's FlopCounterMode (a
lower bound is at most its count; the known part equals it where the unknown calls cost
nothing) and autograd (the field before the unknown call)."""

import json
import textwrap

import pytest
import torch

from cnnstat.errors import SpecError
from cnnstat.torch import analyze
from cnnstat.torch.check import flop_counter_macs
from cnnstat.torch.load import instantiate
from helpers import analyze_text

NETS = '''
import torch
import torch.nn.functional as F
from torch import nn


class Roller(nn.Module):
    def forward(self, x):
        return torch.roll(x, 1, dims=2)


class EvilNames(nn.Module):
    """An unsupported call inside a module whose name holds terminal escapes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.add_module("x\x1b[2J\u202ey", Roller())

    def forward(self, x):
        return getattr(self, "x\x1b[2J\u202ey")(self.conv(x))


class RollNet(nn.Module):
    """conv -> torch.roll (no cnnstat op) -> conv -> mean -> fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 8, 3)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.roll(self.conv1(x), 1, dims=2)
        return self.head(self.conv2(x).mean((2, 3)))


class HeadRoll(nn.Module):
    """The unknown call comes after global pooling: every unit already sees the whole input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.roll(self.conv(x).mean((2, 3), keepdim=True), 1, dims=1)
        return self.fc(torch.flatten(x, 1))


class Layout(nn.Module):
    """Pure layout calls between two convolutions keep the receptive field."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        x = self.conv1(x).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        return self.conv2(x)


class _Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        return x * scale

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class FnNet(nn.Module):
    """A custom autograd.Function reading a parameter (a learned scalar: scale, shared)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.scale = nn.Parameter(torch.ones(1))
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = _Scale.apply(self.conv(x), self.scale)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class FftNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.conv2(torch.fft.rfft2(self.conv(x)).abs())


class SeqNet(nn.Module):
    """conv features as a sequence through an nn.LSTM."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.rnn = nn.LSTM(16, 32, batch_first=True)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        out, _ = self.rnn(self.conv(x).flatten(2).transpose(1, 2))
        return self.fc(out[:, -1])


class Branchy(nn.Module):
    """A submodule the forward does not run (and a BatchNorm it does)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.spare = nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 4))

    def forward(self, x):
        return self.bn(self.conv(x))


class Buffers(nn.Module):
    """A BatchNorm without parameters called twice, a buffer added as a constant, one unread."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8, affine=False)
        self.register_buffer("offset", torch.zeros(1, 8, 1, 1))
        self.register_buffer("spare", torch.zeros(5))

    def forward(self, x):
        return self.bn(self.bn(self.conv(x))) + self.offset


class TableMLP(nn.Module):
    """An nn.Linear run on a parameter table alone (as Swin v2's continuous position bias)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.table = nn.Parameter(torch.zeros(16, 2))
        self.mlp = nn.Linear(2, 4)

    def forward(self, x):
        bias = self.mlp(self.table)
        return self.conv(x) + bias.t().reshape(1, 4, 4, 4)


class SharedRead(nn.Module):
    """A parameter read by a call cnnstat has no op for, then by its own module."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(x + self.fc.bias.sum())


class Unread(nn.Module):
    """Work on parameters alone whose result nothing reads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.table = nn.Parameter(torch.zeros(16, 2))
        self.mlp = nn.Linear(2, 4)

    def forward(self, x):
        self.mlp(self.table)
        return self.conv(x)
'''


@pytest.fixture
def nets(tmp_path, monkeypatch):
    (tmp_path / "nwnets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def numel(model) -> int:
    return sum(p.numel() for p in instantiate(model).parameters())


def buffers(model) -> int:
    return sum(
        b.numel() for n, b in instantiate(model).named_buffers() if not n.endswith("num_batches_tracked")
    )


def flop_counter(model, shape) -> int:
    return flop_counter_macs(instantiate(model, device="meta"), shape)


ROLL_KNOWN = 16 * 32 * 32 * 27 + 8 * 30 * 30 * 144 + 8 * 10  # conv1 + conv2 + head (roll: ?)
ROLL_PARAMS = (16 * 27 + 16) + (8 * 144 + 8) + (8 * 10 + 10)


def test_an_unknown_op_params_whole_macs_a_lower_bound_rf_unknown_after(nets):
    a = analyze("nwnets:RollNet", input=(3, 32, 32))
    t = a.totals()
    assert t["params"] == numel("nwnets:RollNet") == ROLL_PARAMS == 1698
    # MACs: the known part exact, flagged incomplete; torch.roll costs no MAC in PyTorch's
    # counter either, so the known part is its whole count here
    assert t["macs"] == ROLL_KNOWN == flop_counter("nwnets:RollNet", (3, 32, 32)) == 1_479_248
    assert not a.complete
    assert a.incomplete() == [{"layer": "roll", "call": "torch.roll", "reason": "cnnstat has no op for it"}]
    roll = a.layers[1]
    assert (roll.name, roll.op, roll.output, roll.macs, roll.params) == ("roll", "opaque", (16, 32, 32), 0, 0)
    # receptive field: known before the call, unknown at it and after it
    assert [la.rf is None for la in a.layers] == [False, True, True, True, True]
    assert a.layers[0].rf.size == (3, 3)
    assert all(la.rf_unknown == "past torch.roll (at roll)" for la in a.layers[1:])
    rf_layer = a.receptive_field()
    assert rf_layer.name == "mean" and rf_layer.rf is None
    doc = a.to_dict()
    assert doc["complete"] is False and doc["incomplete"] == a.incomplete()
    assert doc["receptive_field"] == {
        "size": None,
        "jump": None,
        "start": None,
        "layer": "mean",
        "unknown": "past torch.roll (at roll)",
    }
    assert doc["layers"][0]["rf"]["size"] == [3, 3] and "rf_unknown" not in doc["layers"][0]
    assert doc["layers"][2]["rf"] is None and doc["layers"][2]["rf_unknown"] == "past torch.roll (at roll)"
    assert doc["layers"][1]["unknown"] == "cnnstat has no op for it" and "unknown" not in doc["layers"][2]


def test_the_field_before_the_unknown_op_is_autograd_s():
    """conv1's 3x3 field, by the gradient of one output unit with respect to the input."""
    net = torch.nn.Conv2d(3, 16, 3, padding=1)
    torch.nn.init.ones_(net.weight)  # no zero weight hides a pixel
    x = torch.zeros(1, 3, 32, 32, requires_grad=True)
    net(x)[0, 0, 16, 16].backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
    seen = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    assert seen == (3, 3) == analyze(net, input=(3, 32, 32)).layers[0].rf.size


def test_warnings_show_names_never_obey_them(nets, run):
    """The stderr warning names the module the unsupported call sits in; its escape codes are
    shown as text, as in the tables, so a model cannot clear or rewrite the user's terminal."""
    res = run("params", "nwnets:EvilNames", "--input", "3x16x16")
    assert res.exit_code == 0
    assert "\x1b" not in res.stderr and "\u202e" not in res.stderr
    assert "warning: unsupported" in res.stderr and "\\x1b[2J\\u202e" in res.stderr, res.stderr


def test_the_tables_show_lower_bounds(nets, run):
    args = ("nwnets:RollNet", "--input", "3x32x32")
    res = run("params", *args)
    assert res.exit_code == 0
    total = next(line for line in res.stdout.splitlines() if line.startswith("│ total"))
    assert "≥ 1.48M" in total and "1,698" not in total and "1.70K" in total
    assert "≥: a lower bound. MACs unknown (counted 0) for 1 call of torch.roll (at roll)" in res.stdout
    assert "warning: unsupported (parameters counted, MACs unknown: totals are lower bounds)" in res.stderr
    res = run("summary", *args)
    rows = {line.split("│")[1].strip(): line for line in res.stdout.splitlines() if line.startswith("│")}
    assert rows["roll"].split("│")[6].strip() == "?"  # its MACs
    assert rows["roll"].split("│")[9].strip() == "?" and rows["conv1"].split("│")[9].strip() == "3x3 /1x1"
    assert "≥ 1.48M" in rows["total"]
    assert "RF ?: unknown past torch.roll (at roll)" in res.stdout
    res = run("summary", *args, "--format", "csv")
    lines = res.stdout.splitlines()
    assert lines[2] == "roll,opaque,other,16x32x32,0,?,16384,65536,?"
    assert lines[-1].startswith("total,,,,1698,>=1479248,")
    res = run("rf", *args)
    assert "Receptive field: unknown (at mean): past torch.roll (at roll)" in res.stdout
    res = run("memory", *args)
    assert "≥" in res.stdout and "their intermediate tensors are not" in res.stdout
    doc = json.loads(run("memory", *args, "--format", "json").stdout)
    assert doc["complete"] is False and doc["incomplete"][0]["call"] == "torch.roll"


def test_flops_and_compare_rows(nets, run):
    res = run(
        "flops", "nwnets:RollNet", "--input", "3x32x32", "--device", "jetson-orin-nano", "--format", "json"
    )
    (row,) = json.loads(res.stdout)
    assert row["complete"] is False and row["incomplete"][0]["layer"] == "roll"
    assert row["macs_per_image"] == ROLL_KNOWN
    assert row["bound"]["verdict"].startswith("unknown: at most")  # the fps is only an upper bound
    res = run("flops", "nwnets:RollNet", "--input", "3x32x32", "--device", "jetson-orin-nano")
    row = next(line for line in res.stdout.splitlines() if line.startswith("│ nwnets:RollNet"))
    assert "≥ 1.48M" in row and "≤ " in row
    res = run("flops", "nwnets:RollNet", "--input", "3x32x32", "--device", "jetson-orin-nano", "--per-layer")
    roll = next(line for line in res.stdout.splitlines() if line.startswith("│ roll"))
    assert roll.split("│")[3].strip() == "?"
    rows = json.loads(run("compare", "nwnets:RollNet", "resnet18", "--format", "json").stdout)
    assert (rows[0]["complete"], rows[1]["complete"]) == (False, True) and rows[1]["incomplete"] == []
    assert rows[0]["rf_size"] is None and rows[0]["rf_unknown"] == "past torch.roll (at roll)"
    assert rows[1]["rf_size"] == [435, 435]
    res = run("compare", "nwnets:RollNet", "resnet18")
    line = next(line for line in res.stdout.splitlines() if line.startswith("│ nwnets:RollNet"))
    assert "≥" in line and "unknown" in line


def test_strict_exits_2(nets, run):
    res = run("summary", "nwnets:RollNet", "--input", "3x32x32", "--strict")
    assert res.exit_code == 2
    assert res.stderr.strip() == "error: unsupported (--strict): 1 call of torch.roll (at roll)"
    res = run("params", "nwnets:Unread", "--input", "3x8x8", "--strict")  # nothing unsupported
    assert res.exit_code == 2
    assert res.stderr.startswith("error: MACs unknown (--strict): 1 call of nn.Linear (at mlp)")


def test_a_field_already_whole_stays_known(nets):
    a = analyze("nwnets:HeadRoll", input=(3, 16, 16))
    assert not a.complete and [la.op for la in a.layers][2] == "opaque"
    assert all(la.rf is not None for la in a.layers)
    assert a.receptive_field().name == "conv" and a.receptive_field().rf.size == (3, 3)


def test_layout_calls_keep_the_field(nets):
    a = analyze("nwnets:Layout", input=(3, 16, 16))
    assert a.complete and [la.op for la in a.layers] == ["conv", "conv"]
    assert a.receptive_field().rf.size == (5, 5)


def test_custom_autograd_function(nets):
    # torch.fx traces into the Function's forward: x * scale, a learned scalar: scale, shared
    a = analyze("nwnets:FnNet", input=(3, 8, 8))
    assert a.totals()["params"] == numel("nwnets:FnNet") == 8 * 27 + 8 + 1 + 18
    scale = next(la for la in a.layers if la.op == "scale")
    assert (scale.weights, scale.biases, scale.args["shared"]) == (1, 0, True)
    assert a.totals()["macs"] == 8 * 36 * 27 + 16 == flop_counter("nwnets:FnNet", (3, 8, 8))
    assert a.complete


def test_fft(nets):
    a = analyze("nwnets:FftNet", input=(3, 8, 8))
    assert a.totals()["params"] == numel("nwnets:FftNet") == 8 * 27 + 8 + 4 * 8 + 4
    calls = [i["call"] for i in a.incomplete()]
    assert len(calls) == 2 and "rfft2" in calls[0] and calls[1] == "Tensor.abs"
    conv2 = a.layers[-1]
    assert conv2.output == (4, 8, 5) and conv2.macs == 4 * 8 * 5 * 8  # the known part after it
    assert a.totals()["macs"] == 8 * 64 * 27 + 4 * 8 * 5 * 8
    assert conv2.rf is None and "rfft2" in conv2.rf_unknown


def test_lstm(nets):
    a = analyze("nwnets:SeqNet", input=(3, 8, 8))
    assert a.totals()["params"] == numel("nwnets:SeqNet")
    rnn = next(la for la in a.layers if la.name == "rnn")
    # nn.LSTM(16, 32): weight_ih 4x32x16, weight_hh 4x32x32; bias_ih, bias_hh 4x32 each
    assert (rnn.op, rnn.kind, rnn.weights, rnn.biases) == ("opaque", "fc", 4 * 32 * (16 + 32), 2 * 4 * 32)
    assert rnn.unknown and rnn.output == (64, 32)
    assert a.totals()["macs"] == 16 * 64 * 27 + 32 * 10  # conv and fc: the known part
    assert "nn.LSTM" in [i["call"] for i in a.incomplete()]
    assert a.to_dict()["torch"]["unsupported"][0]["params"] == 6144 + 256


def test_vit_b_16_is_whole(run):
    # tokens [B, N, D] follow their channels-first base: every call maps (tests/test_torch_tokens.py)
    a = analyze("torchvision:vit_b_16")
    t = a.totals()
    assert t["params"] == 86_567_656 == a.graph.module_params  # torchvision's num_params
    assert a.complete and t["macs"] == flop_counter("torchvision:vit_b_16", (3, 224, 224))
    # the class token [1, 1, 768] and the position table [1, 197, 768] are held by their layers
    held = {la.op: (la.weights, la.kind) for la in a.layers if la.op in ("class_token", "pos_embed")}
    assert held == {"class_token": (768, "other"), "pos_embed": (197 * 768, "other")}
    res = run("params", "torchvision:vit_b_16")
    total = next(line for line in res.stdout.splitlines() if line.startswith("│ total"))
    assert "86.57M" in total and "17.56G" in total and "≥" not in total


def test_unexecuted_submodule_is_counted_at_zero_macs(nets, run):
    a = analyze("nwnets:Branchy", input=(3, 8, 8))
    t = a.totals()
    assert t["params"] == numel("nwnets:Branchy") == (8 * 27 + 8) + 16 + (8 * 72 + 8) + 16 + 36
    assert t["buffers"] == buffers("nwnets:Branchy") == 16 + 16
    assert a.graph.not_executed == {"spare": 8 * 72 + 8 + 16 + 36}
    spare = [la for la in a.layers if la.op == "unused"]
    assert [(la.name, la.kind, la.params, la.buffers, la.macs) for la in spare] == [
        ("spare.0", "conv", 8 * 72 + 8, 0, 0),
        ("spare.1", "other", 16, 16, 0),
        ("spare.2", "fc", 36, 0, 0),
    ]
    assert a.complete  # they do not run: 0 MACs, known
    assert t["macs"] == 8 * 36 * 27 == flop_counter("nwnets:Branchy", (3, 8, 8))
    assert t["activations"] == 2 * 8 * 36 and a.memory()["peak_activation_bytes"] == 4 * (3 * 64 + 2 * 8 * 36)
    res = run("params", "nwnets:Branchy", "--input", "3x8x8")
    assert "≥" not in res.stdout
    assert res.stderr.startswith(
        "note: 636 parameters of modules the forward does not run, counted at 0 MACs"
    )


def test_buffers_are_the_module_s(nets):
    a = analyze("nwnets:Buffers", input=(3, 8, 8))
    assert a.totals()["buffers"] == buffers("nwnets:Buffers") == 16 + 8 + 5
    by_layer = {la.name: (la.op, la.buffers) for la in a.layers if la.buffers}
    # the parameter-free BatchNorm called twice holds its running statistics once
    assert by_layer == {"offset": ("unattributed", 8), "spare": ("unused", 5), "bn": ("bn", 16)}
    assert a.complete  # a buffer added as a constant costs nothing


def test_work_on_parameters_alone(nets):
    a = analyze("nwnets:TableMLP", input=(3, 4, 4))
    assert a.totals()["params"] == numel("nwnets:TableMLP") == 4 * 27 + 4 + 32 + 12
    assert {i["call"]: i["reason"] for i in a.incomplete()} == {
        "nn.Linear": "runs on parameters and constants alone: its MACs are in no layer",
        "operator.add": "an operand is a parameter",
    }
    unread = analyze("nwnets:Unread", input=(3, 8, 8))
    assert unread.totals()["params"] == numel("nwnets:Unread")
    assert [(la.name, la.op, la.params) for la in unread.layers][:2] == [
        ("mlp", "unattributed", 0),
        ("table", "unattributed", 32),  # read, by no layer
    ]


def test_each_parameter_counts_once(nets):
    a = analyze("nwnets:SharedRead", input=(16,))
    assert a.totals()["params"] == numel("nwnets:SharedRead") == 170
    add, fc = a.layers
    assert (add.op, add.weights, add.biases) == ("opaque", 0, 10)  # fc.bias, read first here
    assert (fc.op, fc.weights, fc.biases, fc.macs) == ("fc", 160, 0, 160)


def test_a_spec_cannot_use_the_importer_s_ops():
    for op in ("opaque", "unused", "unattributed"):
        with pytest.raises(SpecError, match=f"unknown op or block '{op}'"):
            analyze_text(f"input: [3, 8, 8]\nlayers:\n  - {op}: {{}}\n")
    a = analyze_text("input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, k: 3}\n")
    assert a.complete and a.to_dict()["complete"] is True and a.to_dict()["incomplete"] == []


# --- budgets ----------------------------------------------------------------------------------


def check(budget_text, run, tmp_path, *args):
    (tmp_path / "cnnstat.toml").write_text(textwrap.dedent(budget_text))
    return run("check", *args)


def test_a_mac_limit_on_an_incomplete_model_fails(nets, run):
    text = '[[budget]]\nmodel = "nwnets:RollNet"\ninput = "3x32x32"\nmax_macs = "1G"\nmax_params = "2K"\n'
    res = check(text, run, nets, "--format", "github")
    assert res.exit_code == 1
    (line, summary) = res.stdout.strip().splitlines()
    assert line == (
        "::error file=cnnstat.toml,line=4::nwnets:RollNet: macs ≥ 1.48M is a lower bound (MACs unknown "
        "for 1 call of torch.roll (at roll)): nothing shows it is within the limit 1.00G "
        "(allow_lower_bounds = true compares the known part)"
    )
    assert summary == "cnnstat check: 1 passed, 1 failed"  # params are complete: that one passes
    doc = json.loads(check(text, run, nets, "--format", "json").stdout)
    (entry,) = doc["budgets"]
    assert entry["values"]["complete"] is False and entry["values"]["macs"] == ROLL_KNOWN
    macs, params = entry["checks"]
    assert (macs["ok"], macs["lower_bound"], params["ok"], params["lower_bound"]) == (
        False,
        True,
        True,
        False,
    )
    res = check(text, run, nets)
    assert "≥ 1.48M" in res.stdout and "lower bound: known part within" in res.stdout


def test_a_lower_bound_over_the_limit_fails_anyway(nets, run):
    text = '[[budget]]\nmodel = "nwnets:RollNet"\ninput = "3x32x32"\nmax_macs = "1M"\n'
    text += "allow_lower_bounds = true\n"
    res = check(text, run, nets, "--format", "github")
    assert res.exit_code == 1
    assert "macs ≥ 1.48M exceeds the limit 1.00M by at least 47.9%" in res.stdout


def test_allow_lower_bounds_compares_the_known_part(nets, run):
    text = (
        '[[budget]]\nmodel = "nwnets:RollNet"\ninput = "3x32x32"\nmax_macs = "1G"\n'
        'max_peak_activation_bytes = "1 MB"\nallow_lower_bounds = true\n'
    )
    res = check(text, run, nets)
    assert res.exit_code == 0, res.stdout
    assert "≥ 1.48M" in res.stdout and "all budgets pass" in res.stdout
    doc = json.loads(check(text, run, nets, "--format", "json").stdout)
    assert [c["lower_bound"] for c in doc["budgets"][0]["checks"]] == [True, True]


def test_an_unknown_receptive_field_fails_its_limit(nets, run):
    text = '[[budget]]\nmodel = "nwnets:RollNet"\ninput = "3x32x32"\nmin_receptive_field = 3\n'
    res = check(text, run, nets, "--format", "github")
    assert res.exit_code == 1
    assert "receptive_field receptive field unknown at mean: past torch.roll (at roll)" in res.stdout


def test_complete_models_pass_as_before(nets, run):
    text = '[[budget]]\nmodel = "nwnets:Branchy"\ninput = "3x8x8"\nmax_macs = "8K"\nmax_params = "1K"\n'
    res = check(text, run, nets)
    assert res.exit_code == 0 and "all budgets pass" in res.stdout
