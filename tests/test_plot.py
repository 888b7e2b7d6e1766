"""`cnnstat plot` and the spec's `accuracy:`: charts checked by their data, not their pixels.

Every chart's points are read back from the matplotlib Figure (scatter offsets and sizes, bar
heights, line data) and compared with the Analysis, or with numbers computed here by hand; the
zoo's accuracy with its source (torchvision's weights metadata, read here directly; the papers'
tables, transcribed below as the errors they print).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnstat import plot
from cnnstat.analysis import analyze
from cnnstat.errors import CnnstatError, SpecError
from cnnstat.spec.model import load_spec_file
from cnnstat.zoo import list_models, models

REPO = Path(__file__).resolve().parent.parent

ROLLNET = """\
import torch
from torch import nn


class RollNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.roll(self.conv(x), 1, dims=2)
        return self.head(self.conv2(x).mean((2, 3)))
"""

SPEC = """\
name: tiny
input: [3, 32, 32]
accuracy: {top1: 50, top5: 80.5, dataset: Toy-10, source: a test}
layers:
  - conv: {out: 8, k: 3}
variants:
  tiny-wide:
    accuracy: {top1: 60.25, dataset: Toy-10, source: another test}
  tiny-none: {description: no accuracy of its own}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "rollnet.py").write_text(ROLLNET, encoding="utf-8")
    (tmp_path / "tiny.yaml").write_text(SPEC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def by_gid(fig, gid: str):
    """The one artist of ``fig`` with this gid."""
    found = [a for a in fig.findobj() if a.get_gid() == gid]
    assert len(found) == 1, (gid, found)
    return found[0]


def bars(fig) -> list:
    """The bars of a layers chart, in layer order."""
    found = [r for r in fig.axes[0].patches if str(r.get_gid()).startswith("layers-bar-")]
    assert [r.get_gid() for r in found] == [f"layers-bar-{i}" for i in range(len(found))]
    return found


def json_of(run, *args):
    res = run(*args, "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# --- accuracy in specs ---------------------------------------------------------------------------


def test_accuracy_is_parsed_per_model_and_never_inherited(workdir):
    spec = load_spec_file("tiny.yaml")
    assert spec.accuracy == {"top1": 50.0, "top5": 80.5, "dataset": "Toy-10", "source": "a test"}
    assert spec.variant("tiny-wide").accuracy == {
        "top1": 60.25,
        "dataset": "Toy-10",
        "source": "another test",
    }
    assert spec.variant("tiny-none").accuracy is None  # another network: not tiny's accuracy


@pytest.mark.parametrize(
    "accuracy, message, column",
    [
        ("{top1: 100.5, dataset: D, source: S}", "top1 must be a percentage in [0, 100], got 100.5", 18),
        ("{top1: -1, dataset: D, source: S}", "top1 must be a percentage in [0, 100], got -1", 18),
        ("{top1: .nan, dataset: D, source: S}", "top1 must be a number (a percentage), got nan", 18),
        ("{top1: '76', dataset: D, source: S}", "top1 must be a number (a percentage), got '76'", 18),
        ("{top1: true, dataset: D, source: S}", "top1 must be a number (a percentage), got True", 18),
        ("{top1: 70, top5: 60, dataset: D, source: S}", "top5 (60) is below top1 (70)", 28),
        ("{top1: 70, dataset: D}", "accuracy needs 'source'", 11),
        ("{top1: 70, dataset: '', source: S}", "dataset must be a non-empty string", 31),
        ("{top1: 70, dataset: D, source: S, top-1: 3}", "unknown key 'top-1' in accuracy", 45),
        ("76.1", "accuracy must be a mapping", 11),
    ],
)
def test_a_bad_accuracy_is_one_located_error(workdir, run, accuracy, message, column):
    text = SPEC.replace(
        "accuracy: {top1: 50, top5: 80.5, dataset: Toy-10, source: a test}", f"accuracy: {accuracy}"
    )
    (workdir / "bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec_file("bad.yaml")
    assert message in str(info.value)
    assert (info.value.loc.line, info.value.loc.col) == (3, column)
    res = run("params", "bad.yaml")
    assert res.exit_code == 2 and res.output.count("error:") == 1, res.output


def test_a_bad_accuracy_in_a_variant_fails_the_file(workdir):
    (workdir / "bad.yaml").write_text(SPEC.replace("top1: 60.25", "top1: 160.25"), encoding="utf-8")
    with pytest.raises(SpecError, match=r"top1 must be a percentage in \[0, 100\], got 160.25") as info:
        load_spec_file("bad.yaml")  # the variant is not even asked for
    assert info.value.loc.line == 8


# The zoo's accuracy taken from papers and releases, as they print it: error rates (%), or
# accuracy where the source prints accuracy. The spec holds 100 - error.
PUBLISHED_ERRORS = {
    # Krizhevsky et al., NIPS 2012, table 2: 1 CNN, ILSVRC-2012 validation.
    "alexnet": (40.7, 18.2),
    # Kaiming He's deep-residual-networks README: 1-crop validation error, centre 224x224.
    "resnet50-v1": (24.7, 7.8),
    "resnet101-v1": (23.6, 7.1),
    "resnet152-v1": (23.0, 6.7),
    # hujie-frank/SENet README, table 1: single centre 224x224 crop, validation error.
    "se_resnet50": (22.37, 6.36),
    "se_resnet101": (21.75, 5.72),
    "se_resnet152": (21.34, 5.54),
    "se_resnext50_32x4d": (20.97, 5.54),
    "se_resnext101_32x4d": (19.81, 4.96),
}
PUBLISHED_ACCURACY = {
    "darknet19": (72.9, 91.2),  # YOLO9000, section 3
    "darknet53": (77.2, 93.8),  # YOLOv3, table 2
    "mobilenet_v1": (70.6, None),  # MobileNets, table 8 (top-1 only)
    "bn_inception": (73.522, 91.56),  # Cadene's README, BNInception (their porting)
    "inception_resnet_v2": (80.4, 95.3),  # Cadene's README, TF-slim's InceptionResNetV2
}
# No top-1 accuracy to give: the lecture's regrouped AlexNet and LeNet-5 variant (never trained
# as such), U-Net and the segmentation models (they report mIoU).
WITHOUT = {
    "alexnet-grouped",
    "lenet5",
    "unet",
    "fcn8s",
    "fcn32s",
    "fcn_resnet50",
    "deeplabv3_resnet50",
    "lraspp_mobilenet_v3_large",
}
TORCHVISION_SOURCE = re.compile(r"^torchvision (\w+_Weights)\.(\w+) \(meta\['_metrics'\]\)$")


def test_every_zoo_accuracy_equals_its_source():
    import torchvision.models

    seen, specs = set(), {spec.name: spec for spec in models()}
    for spec in specs.values():
        acc = spec.accuracy
        if spec.name in WITHOUT:
            assert acc is None, spec.name
            continue
        assert acc is not None, spec.name
        seen.add(spec.name)
        m = TORCHVISION_SOURCE.match(acc["source"])
        if spec.name in PUBLISHED_ERRORS:
            top1_err, top5_err = PUBLISHED_ERRORS[spec.name]
            assert (acc["top1"], acc["top5"]) == (round(100 - top1_err, 3), round(100 - top5_err, 3))
        elif spec.name in PUBLISHED_ACCURACY:
            assert (acc["top1"], acc.get("top5")) == PUBLISHED_ACCURACY[spec.name], spec.name
        else:
            assert m, f"{spec.name}: {acc['source']}"
            weights = torchvision.models.get_weight(f"{m.group(1)}.{m.group(2)}")
            metrics = weights.meta["_metrics"][acc["dataset"]]
            assert (acc["top1"], acc["top5"]) == (metrics["acc@1"], metrics["acc@5"]), spec.name
            # the default weights of the torchvision model the spec is: equal parameters
            tv_name = {"alexnet-owt": "alexnet", "inception_v3-noaux": "inception_v3"}.get(
                spec.name, spec.name
            )
            assert torchvision.models.get_model_weights(tv_name).DEFAULT is weights
            reference = "inception_v3" if spec.name == "inception_v3-noaux" else spec.name  # + the aux head
            params = analyze(specs[reference]).totals()["params"]
            assert params == weights.meta["num_params"], spec.name
        if not m:
            assert re.search(r"table|section|README", acc["source"]), spec.name  # where, in the source
    assert len(seen) == 68 and len(seen) + len(WITHOUT) == len(list_models())


def test_torchvision_models_read_their_weights_metadata():
    import torchvision.models

    meta = torchvision.models.get_model_weights("regnet_y_400mf").DEFAULT.meta["_metrics"]["ImageNet-1K"]
    acc, why = plot.accuracy_of("torchvision:regnet_y_400mf")
    assert (acc["top1"], acc["top5"], acc["dataset"], why) == (
        meta["acc@1"],
        meta["acc@5"],
        "ImageNet-1K",
        "",
    )
    assert plot.accuracy_of("torchvision:regnet_y_400mf", kwargs={"num_classes": 10})[0] is None
    acc, why = plot.accuracy_of("torchvision:fcn_resnet50")
    assert acc is None and why == "torchvision's weights report miou, pixel_acc, no top-1 accuracy"
    assert plot.accuracy_of("rollnet.py:RollNet")[0] is None
    assert plot.accuracy_of("model.onnx") == (None, "an ONNX file carries no accuracy")


# --- compare -------------------------------------------------------------------------------------


def test_compare_points_are_the_analysis_and_the_spec_accuracy():
    names = ["resnet50", "vgg16", "mobilenet_v2", "unet", "r3d_18"]
    entries = plot.compare_entries(names)
    data = plot.compare_data(entries)
    assert data["dataset"] == "ImageNet-1K"  # the one most models report
    assert [p["model"] for p in data["points"]] == ["resnet50", "vgg16", "mobilenet_v2"]
    assert data["skipped"] == [
        {"model": "unet", "reason": "no accuracy in its spec"},
        {"model": "r3d_18", "reason": "accuracy on Kinetics-400, not ImageNet-1K"},
    ]
    fig = plot.compare_figure(entries)
    scatter = by_gid(fig, "compare-points")
    offsets, sizes = scatter.get_offsets(), scatter.get_sizes()
    for p, (x, y), area in zip(data["points"], offsets, sizes):
        t = analyze(p["model"]).totals()
        assert x == t["macs"] / 1e9 and p["macs"] == t["macs"]
        assert y == models(p["model"])[0].accuracy["top1"]
        assert area == pytest.approx(t["params"] * data["area_per_param"])  # area proportional to params
    assert max(sizes) == pytest.approx(1600.0)  # the largest model (vgg16)
    assert offsets[1][0] == 15_470_264_320 / 1e9 and sizes[1] / sizes[0] == pytest.approx(
        138_357_544 / 25_557_032
    )
    labels = {t.get_text() for t in fig.findobj() if str(t.get_gid()).startswith("compare-label-")}
    assert labels == {"resnet50", "vgg16", "mobilenet_v2"}
    notes = by_gid(fig, "compare-notes").get_text()
    assert "unet (no accuracy in its spec)" in notes and "r3d_18 (accuracy on Kinetics-400" in notes
    fig = plot.compare_figure(entries, highlight="vgg16")  # a report's own model among others
    assert list(by_gid(fig, "compare-points").get_linewidths()) == [0.5, 2.0, 0.5]


def test_compare_on_another_dataset_and_lower_bounds():
    entries = [
        {"model": "a", "input": [3], "macs": 2_000_000_000, "params": 10, "complete": False, "why": "",
         "accuracy": {"top1": 60.0, "dataset": "K", "source": "s"}},
        {"model": "b", "input": [3], "macs": 10**9, "params": 40, "complete": True, "why": "",
         "accuracy": {"top1": 70.0, "dataset": "I", "source": "s"}},
        {"model": "c", "input": [3], "macs": 0, "params": 40, "complete": True, "why": "",
         "accuracy": {"top1": 70.0, "dataset": "K", "source": "s"}},
    ]  # fmt: skip
    data = plot.compare_data(entries, dataset="K")
    assert [(p["model"], p["gmacs"], p["macs_lower_bound"]) for p in data["points"]] == [("a", 2.0, True)]
    assert [s["model"] for s in data["skipped"]] == ["b", "c"]  # never drawn at zero
    fig = plot.compare_figure(entries, dataset="K")
    label = [t.get_text() for t in fig.findobj() if str(t.get_gid()).startswith("compare-label-")]
    assert label == ["a (≥)"]


def test_plot_compare_cli(run, workdir):
    res = run("plot", "compare", "tiny.yaml", "unet", "-o", "c.svg")
    assert res.exit_code == 0, res.output
    assert "note: unet not drawn: no accuracy in its spec" in res.stderr
    assert Path("c.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    res = run("plot", "compare", "unet", "lenet5", "-o", "c.png")
    assert res.exit_code == 2 and "no model to draw: none has a top-1 accuracy" in res.stderr
    doc = json_of(run, "plot", "compare", "tiny.yaml", "unet", "vgg16", "resnet18")
    assert [(p["model"], p["top1"], p["params"]) for p in doc["points"]] == [
        ("vgg16", 71.592, 138_357_544),
        ("resnet18", 69.758, 11_689_512),
    ]
    assert doc["skipped"][0] == {"model": "tiny.yaml", "reason": "accuracy on Toy-10, not ImageNet-1K"}
    doc = json_of(run, "plot", "compare", "tiny.yaml", "vgg16", "--dataset", "Toy-10")
    assert [(p["model"], p["gmacs"]) for p in doc["points"]] == [("tiny.yaml", 8 * 30 * 30 * 27 / 1e9)]


def test_plot_compare_torchvision_model(run):
    import torchvision.models

    doc = json_of(run, "plot", "compare", "torchvision:mobilenet_v3_small")
    (point,) = doc["points"]
    meta = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT.meta
    assert point["params"] == meta["num_params"] and round(point["gmacs"], 3) == meta["_ops"]
    assert point["top1"] == meta["_metrics"]["ImageNet-1K"]["acc@1"]


# --- layers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, key", [("macs", "macs"), ("params", "params"), ("activations", "activation_bytes")]
)
def test_layer_bars_are_the_layers_counts(metric, key):
    a = analyze("resnet18", dtype="fp16")
    fig = plot.layers_figure(a, metric)
    heights = [r.get_height() for r in bars(fig)]
    assert heights == [a.counts(layer)[key] for layer in a.layers]
    assert sum(heights) == a.totals()[key]
    conv1 = a.layers[0]
    by_hand = {
        "macs": 64 * 112 * 112 * 7 * 7 * 3,
        "params": 7 * 7 * 3 * 64,
        "activation_bytes": 64 * 112 * 112 * 2,
    }
    assert heights[0] == by_hand[key] and conv1.name == "conv1"


def test_many_layers_are_lines_not_bars(monkeypatch):
    from cnnstat.plot import draw

    monkeypatch.setattr(draw, "MAX_BARS", 10)  # past it, one artist per kind instead of a bar each
    a = analyze("resnet18")
    fig = plot.layers_figure(a, "macs", log=True)
    drawn = {}
    for kind in ("conv", "fc", "other"):
        lines = [x for x in fig.findobj() if x.get_gid() == f"layers-lines-{kind}"]
        for seg in lines[0].get_segments() if lines else []:
            drawn[int(seg[0][0])] = seg[1][1]
    assert drawn == {i: a.counts(la)["macs"] for i, la in enumerate(a.layers)}
    assert not bars(fig)


def test_blocks_follow_the_name_prefixes():
    a = analyze("resnet50")
    data = plot.layers_data(a)
    names = [layer.name for layer in a.layers]
    assert data["depth"] == 1 and [b["name"] for b in data["blocks"]] == [
        "layer1",
        "layer2",
        "layer3",
        "layer4",
    ]
    for b in data["blocks"]:
        inside = [i for i, n in enumerate(names) if n.startswith(b["name"] + ".")]
        assert (b["first"], b["last"]) == (inside[0], inside[-1])
    assert plot.layers_data(analyze("mobilenet_v2"))["depth"] == 2  # features.stage1 ... under features.
    assert plot.layers_data(analyze("alexnet"))["blocks"] == []  # conv1, relu1, ...: no block
    fig = plot.layers_figure(a, log=True)
    assert fig.axes[0].get_yscale() == "log"
    dashed = [line.get_xdata()[0] for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert dashed == [x for b in data["blocks"] for x in (b["first"] - 0.5, b["last"] + 0.5)]


def test_unknown_macs_are_not_bars(run, workdir):
    doc = json_of(run, "plot", "layers", "rollnet.py:RollNet", "--input", "3x32x32")
    assert [(b["name"], b["value"]) for b in doc["bars"]] == [
        ("conv", 16 * 32 * 32 * 3 * 3 * 3),
        ("roll", None),  # torch.roll: MACs unknown, not 0
        ("conv2", 16 * 32 * 32 * 3 * 3 * 16),
        ("mean", 0),
        ("head", 16 * 10),
    ]
    from cnnstat.torch.analysis import analyze as torch_analyze

    fig = plot.layers_figure(torch_analyze("rollnet.py:RollNet", input=(3, 32, 32)))
    assert math.isnan(bars(fig)[1].get_height())
    assert list(by_gid(fig, "layers-unknown").get_xdata()) == [1]


# --- receptive field -----------------------------------------------------------------------------


def test_rf_lines_are_the_fields_by_hand():
    a = analyze("vgg16")
    fig = plot.rf_figure(a)
    size, jump = by_gid(fig, "rf-size-H").get_ydata(), by_gid(fig, "rf-jump-H").get_ydata()
    # r' = r + (k - 1) j, j' = j s: conv3 (+2, x1), relu (+0), conv3 (+2), relu, pool2/2 (+1, x2), ...
    r, j, expected = 1, 1, []
    for layer in a.layers:
        if layer.op == "conv":
            r += 2 * j
        elif layer.op == "maxpool":
            r, j = r + j, j * 2
        elif layer.op == "fc":  # flatten keeps the field; an fc sees the whole input
            break
        expected.append((r, j))
    assert [(int(s), int(k)) for s, k in zip(size[: len(expected)], jump)] == expected
    assert expected[-1] == (212, 32)  # VGG-16's field: 212 pixels, jump 32
    assert all(math.isnan(v) for v in size[len(expected) :])  # fc and after: the whole input
    assert "network: 212x212 pixels, jump 32x32" in fig.axes[0].get_title()


def test_an_unknown_rf_is_a_gap_said_in_the_legend(workdir):
    from cnnstat.torch.analysis import analyze as torch_analyze

    a = torch_analyze("rollnet.py:RollNet", input=(3, 32, 32))
    data = plot.rf_data(a)
    assert [p["state"] for p in data["points"]] == ["known", "unknown", "unknown", "unknown", "unknown"]
    fig = plot.rf_figure(a)
    size = by_gid(fig, "rf-size-H").get_ydata()
    assert size[0] == 3 and all(math.isnan(v) for v in size[1:])
    assert [line.get_label() for line in fig.axes[0].get_lines()][:1] == ["size (H = W)"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "gap: unknown (4 layers), past torch.roll (at roll)" in legend


# --- roofline ------------------------------------------------------------------------------------


def test_roofline_points_by_hand():
    from cnnstat.hardware import get_device

    a = analyze("vgg16")
    dev = get_device("jetson-orin-nano")
    data = plot.roofline_data(a, dev, "fp16")
    conv = data["points"][0]
    # conv1_1: 64 x 224 x 224 outputs of 3 x 3 x 3 MACs; reads the 3x224x224 input, writes its
    # output, reads 1,728 weights and 64 biases, 2 bytes each at fp16
    macs = 64 * 224 * 224 * 27
    moved = 2 * (3 * 224 * 224 + 64 * 224 * 224 + 1728 + 64)
    assert (conv["name"], conv["macs"], conv["bytes"]) == ("stage1.unit1.conv1", macs, moved)
    assert conv["intensity"] == macs / moved
    assert conv["attainable"] == pytest.approx(min(5e12, macs / moved * 68e9))  # 10 TFLOPS fp16 = 5T MAC/s
    assert data["peak_macs_per_second"] == 5e12 and data["ridge"] == 5e12 / 68e9
    fig = plot.roofline_figure(a, dev, "fp16")
    drawn = {}
    for bound in ("compute", "memory"):
        for x, y in by_gid(fig, f"roofline-{bound}").get_offsets():
            drawn[float(x)] = float(y)
    assert drawn == {p["intensity"]: pytest.approx(min(5e12, p["intensity"] * 68e9)) for p in data["points"]}
    convs = [la for la in a.layers if la.macs]
    assert len(data["points"]) == len(convs) == 16  # 13 convs, 3 fcs; relu, pool, ...: no MACs
    net = data["network"]
    times = [max(p["macs"] / 5e12, p["bytes"] / 68e9) for p in data["points"]]
    assert net["time_s"] == pytest.approx(sum(times) + data["no_macs"]["time_s"])
    assert net["rate"] == pytest.approx(a.totals()["macs"] / net["time_s"])
    assert list(by_gid(fig, "roofline-network").get_offsets()[0]) == [net["intensity"], net["rate"]]
    roof_x, roof_y = by_gid(fig, "roofline-roof").get_data()
    assert roof_x[1] == data["ridge"] and roof_y[1] == 5e12 and roof_y[0] == roof_x[0] * 68e9


def test_the_bound_that_limits_the_model():
    a = analyze("vgg16")
    assert plot.roofline_data(a, "h100-sxm")["network"]["bound"] == "compute"  # fp32: 33.5 T MAC/s
    assert plot.roofline_data(a, "jetson-orin-nano", "int8")["network"]["bound"] == "memory"


def test_plot_roofline_cli(run, workdir):
    doc = json_of(run, "plot", "roofline", "resnet18", "--device", "rtx4090", "--dtype", "fp16")
    assert doc["device"] == "rtx4090" and doc["peak_macs_per_second"] == 165.2e12 / 2
    res = run("plot", "roofline", "resnet18", "--device", "cpu-8core-avx2", "--dtype", "fp16", "-o", "r.png")
    assert res.exit_code == 2 and "has no figure for fp16" in res.stderr
    res = run("plot", "roofline", "resnet18", "--device", "rtx4090", "-o", "r.pdf")
    assert res.exit_code == 0 and Path("r.pdf").read_bytes().startswith(b"%PDF")


# --- files, formats, no matplotlib ---------------------------------------------------------------


def test_save_by_extension_atomically(workdir):
    fig = plot.rf_figure(analyze("alexnet"))
    for name, magic in (("f.png", b"\x89PNG"), ("f.svg", b"<?xml"), ("f.PDF", b"%PDF")):
        plot.save(fig, name)
        assert Path(name).read_bytes().startswith(magic)
    with pytest.raises(
        CnnstatError, match=r"f.jpg: unknown image format \(extension '.jpg'\): use .png, .svg or .pdf"
    ):
        plot.save(fig, "f.jpg")
    with pytest.raises(CnnstatError, match="cannot write image 'missing/f.png': no such directory 'missing'"):
        plot.save(fig, "missing/f.png")
    os.mkdir("d.png")
    with pytest.raises(CnnstatError, match="cannot write image 'd.png': it is a directory"):
        plot.save(fig, "d.png")
    os.rmdir("d.png")
    assert sorted(os.listdir(workdir)) == [
        "f.PDF",
        "f.png",
        "f.svg",
        "rollnet.py",
        "tiny.yaml",
    ]  # no temp file
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat("f.png").st_mode & 0o777 == 0o666 & ~mask


def test_to_svg_is_inline_and_stable():
    fig = plot.layers_figure(analyze("lenet5"))
    svg = plot.to_svg(fig)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert "<text" not in svg  # glyphs as paths: no font needed where it is shown
    assert svg == plot.to_svg(fig)


def test_cli_errors(run, workdir):
    for args, message in (
        (["layers", "vgg16"], "give -o FILE (.png, .svg or .pdf) to draw, or --format json for the data"),
        (["layers", "vgg16", "-o", "x.gif"], "unknown image format"),
        (["layers", "nonet", "-o", "x.png"], "unknown model 'nonet'"),
        (["roofline", "vgg16", "--device", "tpu", "-o", "x.png"], "unknown device 'tpu'"),
    ):
        res = run("plot", *args)
        assert res.exit_code == 2 and message in res.stderr and res.stderr.count("error") == 1, res.output
    res = run("plot", "layers", "vgg16", "--format", "json", "-o", "layers.json")
    assert res.exit_code == 0 and json.loads(Path("layers.json").read_text())["metric"] == "macs"


def test_without_matplotlib(run, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    res = run("plot", "layers", "vgg16", "-o", "v.png")
    assert res.exit_code == 2 and "install cnnstat[plot]" in res.stderr
    with pytest.raises(CnnstatError, match=r"install cnnstat\[plot\]"):
        plot.rf_figure(analyze("vgg16"))
    assert json_of(run, "plot", "rf", "vgg16")["network"]["size"] == [212, 212]  # the data needs none


def test_other_commands_never_import_matplotlib():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from cnnstat.cli import cli\n"
        "r = CliRunner()\n"
        "for args in (['params', 'vgg16'], ['summary', 'resnet18'],\n"
        "             ['plot', 'layers', 'vgg16', '--format', 'json']):\n"
        "    assert r.invoke(cli, args).exit_code == 0\n"
        "    assert 'matplotlib' not in sys.modules, args\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


# --- the docs' images ----------------------------------------------------------------------------


def test_the_docs_images_are_drawn_from_the_analysis(tmp_path):
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import make_plots
    finally:
        sys.path.remove(str(REPO / "docs"))
    drawn = make_plots.make(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(name for name, *_ in make_plots.FIGURES)
    page = (REPO / "docs" / "plots.md").read_text(encoding="utf-8")
    for name in drawn:
        assert f"(img/{name})" in page and (REPO / "docs" / "img" / name).is_file()
    data, fig = drawn["compare-zoo.png"]
    offsets = by_gid(fig, "compare-points").get_offsets()
    zoo = {spec.name: spec for spec in models()}
    for p, (x, y) in zip(data["points"], offsets):
        spec = zoo[p["model"]]
        assert x == analyze(spec).totals()["macs"] / 1e9 and y == spec.accuracy["top1"]
    assert len(data["points"]) == 65 and len(data["skipped"]) == 11  # 3 on Kinetics-400
    data, fig = drawn["layers-resnet50.png"]
    a = analyze("resnet50")
    assert [r.get_height() for r in bars(fig)] == [a.counts(la)["macs"] for la in a.layers]
    data, fig = drawn["rf-resnet50.png"]
    assert by_gid(fig, "rf-size-H").get_ydata()[-4] == 427  # layer4's last relu: 427 pixels
    data, fig = drawn["roofline-mobilenet_v2.png"]
    assert data["network"]["bound"] == "memory" and data["dtype"] == "fp16"
