"""``cnnstat explain``: the arithmetic of a layer, checked three ways.

- By hand: the lecture's AlexNet conv1 (55x55x96, 34,944 parameters, 105,415,200 MACs at
  227x227), VGG-16's first conv, AlexNet's grouped conv2 (Caffe's bvlc_alexnet weights
  [256, 48, 5, 5]), computed here from the layer's arguments, not read from the program.
- Against the analysis: for every layer of several zoo models, each step's value equals the
  analysis' figure it derives (output sizes, weights, biases, MACs, field size/jump/start,
  activations and bytes), and every layer explains its output, its parameters, its MACs and
  (where known) its field on every axis. So explain cannot diverge from the analysis.
- Against itself: every step's substituted arithmetic, evaluated here with exact fractions,
  equals the step's value, so the formula shown is the computation made.
"""

from __future__ import annotations

import ast
import json
import math
import re
from fractions import Fraction

import pytest
from click.testing import CliRunner

from cnnstat import explain as E
from cnnstat.analysis import analyze
from cnnstat.cli import cli
from cnnstat.spec.model import parse_spec
from cnnstat.spec.yamlload import load_yaml
from cnnstat.zoo import load, zoo_dir

MODELS = [
    "alexnet",
    "alexnet-owt",
    "vgg16",
    "resnet50",
    "mobilenet_v2",
    "unet",
    "googlenet",
    "fcn8s",
    "r2plus1d_18",
    "shufflenet_v2_x1_0",
    "swin_t",
    "lraspp_mobilenet_v3_large",
]


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def steps_of(analysis, name):
    return E.explain_layer(analysis, name).steps


def one(steps, what, axes=None):
    found = [st for st in steps if st.what == what and (axes is None or st.axes == axes)]
    assert len(found) == 1, (what, found)
    return found[0]


# --- evaluating the substituted arithmetic, independently of cnnstat -----------------------

_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.USub,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
)


def evaluate(text: str) -> Fraction:
    """``(227 - 11 + 0) / 4 + 1`` -> 55 with exact fractions: ``·`` multiplies, ``⌊ ⌋`` and
    ``⌈ ⌉`` round, ``max`` takes the largest."""
    py = (
        text.replace("·", "*")
        .replace("⌊", "floor(")
        .replace("⌋", ")")
        .replace("⌈", "ceil(")
        .replace("⌉", ")")
    )
    py = re.sub(r"(\d+(?:\.\d+)?)", r"F('\1')", py)
    tree = ast.parse(py, mode="eval")
    for node in ast.walk(tree):
        assert isinstance(node, _ALLOWED), (text, ast.dump(node))
    names = {"F": Fraction, "floor": math.floor, "ceil": math.ceil, "max": max}
    return Fraction(eval(compile(tree, "<step>", "eval"), {"__builtins__": {}}, names))


def test_evaluate_itself():
    assert evaluate("⌊(224 - 11 + 0) / 4⌋ + 1") == 54
    assert evaluate("⌈(112 - 3 + 0) / 2⌉ + 1 - 1") == 55
    assert evaluate("(-0.5) + (3 - 1)/2·(1/2)") == 0
    assert evaluate("max(3, 7)") == 7


# --- by hand -----------------------------------------------------------------------------


def test_alexnet_conv1_is_the_lectures():
    a = analyze("alexnet")
    steps = steps_of(a, "conv1")
    assert one(steps, "input").value == (3, 227, 227)
    size = one(steps, "out_size")
    assert size.value == (227 - 11 + 2 * 0) // 4 + 1 == 55 and size.axes == (0, 1)
    assert size.substituted == "(227 - 11 + 0) / 4 + 1"
    assert one(steps, "output").value == (96, 55, 55)
    weights = one(steps, "weights")
    assert weights.value == 11 * 11 * 3 * 96 == 34_848 and weights.substituted == "11·11·3·96"
    assert one(steps, "biases").value == 96
    assert one(steps, "params").value == 34_944  # the lecture's figure
    assert one(steps, "weight_bytes").value == 34_848 * 4
    macs = one(steps, "macs")
    assert macs.value == 55 * 55 * 96 * 11 * 11 * 3 == 105_415_200
    assert one(steps, "rf_size").value == 1 + (11 - 1) * 1 == 11
    assert one(steps, "rf_jump").value == 4
    assert one(steps, "rf_start").value == (11 - 1) / 2
    assert one(steps, "activations").value == 96 * 55 * 55
    assert one(steps, "activation_bytes").value == 96 * 55 * 55 * 4 == 1_161_600


def test_224_rounds_down():
    """At the paper's 224, (224 - 11) / 4 is not whole: torchvision pads by 2 (alexnet-owt),
    floor(217 / 4) + 1 = 55."""
    size = one(steps_of(analyze("alexnet-owt"), "conv1"), "out_size")
    assert size.value == (224 - 11 + 2 * 2) // 4 + 1 == 55
    assert size.substituted == "⌊(224 - 11 + 2·2) / 4⌋ + 1"


def test_grouped_conv_and_vgg():
    a = analyze("alexnet")
    conv2 = steps_of(a, "conv2")
    # Caffe bvlc_alexnet: conv2 weights [256, 48, 5, 5] (two groups of 96 / 2 input channels)
    assert one(conv2, "weights").value == 256 * 48 * 5 * 5 == 307_200
    assert one(conv2, "weights").formula == "K·K·C_in/g·C_out"
    assert one(conv2, "out_size").value == (27 - 5 + 2 * 2) // 1 + 1 == 27
    vgg = analyze("vgg16")
    first = steps_of(vgg, "stage1.unit1.conv1")  # conv1_1: 1,792 parameters (CS231n's VGG table)
    assert one(first, "params").value == 3 * 3 * 3 * 64 + 64 == 1_792
    assert one(first, "macs").value == 224 * 224 * 64 * 3 * 3 * 3 == 86_704_128
    assert one(first, "out_size").substituted == "224 - 3 + 2·1 + 1"


def test_paper_beside_lecture():
    """conv3 reads both towers in the paper; the lecture's alexnet-grouped halves it. The
    spec's own comment on the parameter is quoted, the other model's figures shown beside."""
    spec = load("alexnet")
    a = analyze(spec)
    ex = E.explain_layer(a, "conv3", E.context(spec))
    with open(f"{zoo_dir()}/alexnet.yaml", encoding="utf-8") as f:
        text = f.read()
    comment = re.search(r"conv3_groups: 1\s+# (.*)", text).group(1)
    assert any(c == comment for _, c in ex.comments)
    (beside,) = ex.beside
    assert beside["model"] == "alexnet-grouped"
    assert beside["differs"]["weights"] == (3 * 3 * 256 * 384, 3 * 3 * 128 * 384)
    assert beside["differs"]["groups"] == (1, 2)
    conv1 = E.explain_layer(a, "conv1", E.context(spec))
    assert conv1.beside == []  # the same in both
    assert any("224" in c and "227" in c for _, c in conv1.comments)  # the spec's note on input:


# --- against the analysis, every layer of several zoo models --------------------------------

FIGURE = {
    "weights": lambda la, a: la.weights,
    "biases": lambda la, a: la.biases,
    "buffers": lambda la, a: la.buffers,
    "params": lambda la, a: la.params,
    "macs": lambda la, a: la.macs,
    "output": lambda la, a: tuple(la.output),
    "channels": lambda la, a: la.output[0],
    "weight_bytes": lambda la, a: a.counts(la)["weight_bytes"],
    "activations": lambda la, a: a.counts(la)["activations"],
    "activation_bytes": lambda la, a: a.counts(la)["activation_bytes"],
}
AXIS_FIGURE = {
    "out_size": lambda la, i: la.output[1 + i],
    "rf_size": lambda la, i: la.rf.size[i],
    "rf_jump": lambda la, i: la.rf.jump[i],
    "rf_start": lambda la, i: la.rf.start[i],
}


def check_layer(a, la, ex):
    known = E.tensors(a)
    seen = set()
    for st in ex.steps:
        if st.what in FIGURE:
            assert st.value == FIGURE[st.what](la, a), (la.name, st)
        elif st.what in AXIS_FIGURE:
            for i in st.axes:
                assert Fraction(st.value) == Fraction(AXIS_FIGURE[st.what](la, i)), (la.name, st)
                seen.add((st.what, i))
        elif st.what == "input":
            assert st.value == known[la.inputs[0]][0]
        else:
            assert st.what == "note", st
        if st.substituted:
            assert evaluate(st.substituted) == Fraction(st.value), (la.name, st)
        seen.add(st.what)
    assert {"output", "weights", "macs", "activations", "activation_bytes"} <= seen, la.name
    if la.weights and la.biases:
        assert "params" in seen
    if la.rf is not None and la.rf.size:
        for what in ("rf_size", "rf_jump", "rf_start"):
            assert all((what, i) in seen for i in range(len(la.rf.size))), (la.name, what)


@pytest.mark.parametrize("model", MODELS)
def test_every_layer_agrees_with_the_analysis(model):
    spec = load(model)
    a = analyze(spec)
    explained = E.explain_all(a, E.context(spec))
    assert len(explained) == len(a.layers)
    for la, ex in zip(a.layers, explained):
        check_layer(a, la, ex)
    assert E.reconcile(a, explained)["agree"]


def test_imported_model_agrees():
    """A PyTorch model: the importer's layers are explained by the same ops, the same way
    (torchvision's resnet18 conv1.weight is [64, 3, 7, 7])."""
    from cnnstat.torch import analyze as analyze_torch

    a = analyze_torch("torchvision:resnet18")
    explained = E.explain_all(a)
    for la, ex in zip(a.layers, explained):
        check_layer(a, la, ex)
        assert not any(st.label == "figures as the importer recorded them" for st in ex.steps), la.name
    assert one(explained[0].steps, "weights").value == 64 * 3 * 7 * 7
    assert one(explained[0].steps, "out_size").substituted == "⌊(224 - 7 + 2·3) / 2⌋ + 1"


ODD = """
name: odd
input: [4, 50]
layers:
  - conv: {name: causal, out: 8, k: 3, d: 2, p: causal}
  - conv: {name: same, out: 8, k: 4, s: 3, p: same, bias: false}
  - maxpool: {name: ceil, k: 3, s: 2, ceil: true}
  - conv_transpose: {name: up, out: 6, k: 4, s: 2, p: 1, output_padding: 1, groups: 2}
  - adaptive_avgpool: {name: adapt, size: 7}
  - dwconv: {name: dw, k: 3, mult: 2, p: [[2, 0]]}
  - local: {name: loc, out: 2, k: 2}
  - linear: {name: lin, out: 5}
  - prelu: {name: pr}
  - gap: {name: gap}
  - flatten: {name: flat}
  - fc: {name: fc, out: 3}
"""

ODD3D = """
name: odd3d
input: [3, 8, 20, 22]
layers:
  - conv: {name: c, out: 4, k: [3, 5, 5], s: [1, 2, 2], p: [1, 2, 1]}
  - maxpool: {name: p, k: [1, 3, 3], s: [1, 2, 2], p: [0, 1, 1], ceil: true}
  - conv_transpose: {name: t, out: 2, k: [1, 2, 2], s: [1, 2, 2]}
  - adaptive_maxpool: {name: am, size: [3, 4, 5]}
  - upsample: {name: up, scale: 2}
  - concat:
      a: [{conv: {out: 2, k: 1}}]
      b: identity
  - mul:
      x: identity
      gate: [gap, {conv: {out: 4, k: 1}}, sigmoid]
  - add: {a: identity, b: [{conv: {out: 4, k: 3, p: 1}}]}
"""


GENERIC = """
name: generic
input: [8, 12, 12]
layers:
  - pad: {name: pad, p: [1, 0, 2, 1], mode: reflect}
  - bn: {name: bn}
  - upsample: {name: up, scale: 1.5, mode: bilinear}
  - pixel_unshuffle: {name: unshuffle, factor: 2, pad: true}
  - pixel_shuffle: {name: shuffle, factor: 2}
  - crop: {name: crop, size: 16}
  - groupnorm: {name: gn, groups: 4}
  - tokens: {name: tok}
  - class_token: {name: cls}
  - layernorm: {name: ln}
  - attention: {name: attn, heads: 2}
  - take: {name: take, index: 1, stop: 257}
  - to_map: {name: map, size: 16}
  - conv: {name: last, out: 4, k: 3, s: 2}
"""


SIMPLE = """
name: simple
input: [4, 10, 10]
layers:
  - avgpool: {name: avg, k: 3, s: 2, p: 1, ceil: true}
  - celu
  - elu
  - hardtanh
  - identity
  - leaky_relu
  - mish
  - selu
  - silu
  - softplus
  - tanh
  - logsigmoid
  - log_softmax
  - instancenorm
  - layernorm_all
  - scale
  - pos_embed
  - gmp: {name: gmp}
"""


@pytest.mark.parametrize("text", [ODD, ODD3D, GENERIC, SIMPLE], ids=["1d", "3d", "generic", "simple"])
def test_odd_layers(text):
    """1-D causal and dilated, 'same' padding, ceil mode, transposed and grouped, adaptive
    windows that do not divide, depthwise with uneven padding, locally connected, 3-D, and the
    ops explained by the generic default."""
    a = analyze(parse_spec(load_yaml(text, "odd.yaml"), "odd.yaml"))
    for la, ex in zip(a.layers, E.explain_all(a)):
        check_layer(a, la, ex)


def test_ceil_mode_drops_the_last_window():
    """PyTorch's ceil mode: MaxPool1d(2, 2, padding=1, ceil_mode=True) over 5 units gives 3
    (torch.nn.functional.max_pool1d on a [1, 1, 5] tensor), not ceil((5 + 2 - 2) / 2) + 1 = 4:
    the fourth window would start at 6, past the input and its left padding (5 + 1)."""
    text = "name: p\ninput: [1, 5]\nlayers:\n  - maxpool: {name: p, k: 2, s: 2, p: 1, ceil: true}\n"
    a = analyze(parse_spec(load_yaml(text, "p.yaml"), "p.yaml"))
    steps = steps_of(a, "p")
    size = one(steps, "out_size")
    assert size.value == 3 and size.substituted == "⌈(5 - 2 + 2·1) / 2⌉ + 1 - 1"
    assert any("ceil mode" in st.label for st in steps if st.what == "note")


# --- the command -------------------------------------------------------------------------


def test_cli_layer_text():
    code, out = run("explain", "alexnet", "conv1")
    assert code == 0
    assert "H_out = W_out = ⌊(W - K + 2P) / S⌋ + 1 = (227 - 11 + 0) / 4 + 1 = 55" in out
    assert "weights = K·K·C_in·C_out = 11·11·3·96 = 34,848" in out
    assert "params = weights + biases = 34848 + 96 = 34,944" in out
    assert "MACs = H_out·W_out·C_out·K·K·C_in = 55·55·96·11·11·3 = 105,415,200" in out
    assert "The paper says 224x224" in out


def test_cli_unknown_layer():
    code, out = run("explain", "alexnet", "conv9")
    assert code == 2
    assert out.startswith("error: no layer 'conv9' in alexnet (did you mean 'conv5' or 'conv4' or 'conv3'?)")
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_cli_json():
    code, out = run("explain", "alexnet", "conv1", "--format", "json")
    assert code == 0
    doc = json.loads(out, parse_constant=lambda c: pytest.fail(c))
    (layer,) = doc["layers"]
    assert layer["name"] == "conv1" and layer["output"] == [96, 55, 55]
    for step in layer["steps"]:
        assert set(step) >= {"what", "label"}
        if step["what"] != "note":
            assert set(step) >= {"formula", "substituted", "value"}
    params = [s for s in layer["steps"] if s["what"] == "params"]
    assert params == [
        {
            "what": "params",
            "label": "params",
            "formula": "weights + biases",
            "substituted": "34848 + 96",
            "value": 34944,
        }
    ]
    code, out = run("explain", "lenet5", "--format", "json")
    doc = json.loads(out)
    assert doc["totals"]["agree"] is True
    assert doc["totals"]["sum"]["weights"] == analyze("lenet5").totals()["weights"]


def test_cli_sheet(tmp_path):
    """Without LAYER: a Markdown sheet, one ## section per layer and the totals."""
    code, out = run("explain", "alexnet")
    assert code == 0
    a = analyze("alexnet")
    headings = [line for line in out.splitlines() if line.startswith("#")]
    assert headings[0] == "# alexnet: the arithmetic, layer by layer"
    sections = [h for h in headings if h.startswith("## ")]
    assert [h.split(" ")[1] for h in sections[:-1]] == [la.name for la in a.layers]
    assert sections[-1] == "## Totals"
    assert "The sums of the sections and cnnstat's totals are equal." in out
    total = a.totals()
    t = a.totals()
    row = f"| {t['weights']:,} | {t['biases']:,} | {t['params']:,} | 243.82 MB | {t['macs']:,} |"
    assert row in out
    assert total["weight_bytes"] == 243_818_624 == 60_954_656 * 4
    assert "Beside: `alexnet-grouped`" in out  # the lecture's network beside the paper's
    target = tmp_path / "alexnet.md"
    code, _ = run("explain", "alexnet", "-o", str(target))
    assert code == 0 and target.read_text(encoding="utf-8") == out
    assert [p.name for p in tmp_path.iterdir()] == ["alexnet.md"]  # no temporary file left


def test_cli_output_errors(tmp_path):
    code, out = run("explain", "alexnet", "-o", str(tmp_path / "missing" / "x.md"))
    assert code == 2 and "no such directory" in out
    code, out = run("explain", "alexnet", "conv1", "--input", "3x10x10")
    assert code == 2 and "error: conv: kernel 11" in out and len(out.splitlines()) == 1


def test_names_are_escaped_in_markdown():
    text = "name: m\ninput: [1, 8, 8]\nlayers:\n  - conv: {name: '*x*_<b>', out: 2, k: 3}\n"
    a = analyze(parse_spec(load_yaml(text, "m.yaml"), "m.yaml"))
    sheet = E.sheet(a, E.explain_all(a))
    assert "## \\*x\\*\\_\\<b\\> (conv)" in sheet


def test_spec_comment_helpers():
    assert E._trailing_comment("  - conv: {k: 3}   # three") == "three"
    assert E._trailing_comment("  name: 'a # b'") == ""
    assert E._trailing_comment("# whole line") == ""


def test_control_characters_are_shown_not_obeyed(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text('name: m\ninput: [1, 8, 8]\nlayers:\n  - conv: {name: "a\\e[31mb", out: 2, k: 3}\n')
    code, out = run("explain", str(spec), "-o", str(tmp_path / "m.md"))
    text = (tmp_path / "m.md").read_text(encoding="utf-8")
    assert code == 0 and "\x1b" not in text and "## a\\x1b\\[31mb (conv)" in text
    code, out = run("explain", str(spec), "a\x1b[31mb")
    assert code == 0 and "\x1b" not in out and out.startswith("m: a\\x1b[31mb (conv)")


def test_markdown_and_text_forms():
    code, out = run("explain", "alexnet", "conv1", "--format", "markdown")
    assert code == 0 and out.startswith("# conv1 (conv)\n\nReads `input` 3x227x227.")
    assert "- `params = weights + biases = 34848 + 96 = 34,944`" in out
    code, out = run("explain", "lenet5", "--format", "text")
    a = analyze("lenet5")
    assert code == 0 and [line for line in out.splitlines() if line.startswith("lenet5: ")] == [
        f"lenet5: {la.name} ({la.op})" if la.op == la.kind else f"lenet5: {la.name} ({la.op}, kind {la.kind})"
        for la in a.layers
    ]
    assert "lenet5: f6 (fc)" in out and "lenet5: tanh1 (tanh, kind other)" in out
