"""The lecture's figures (../shared/seeds: "Deep Learning Basics", Shao-Yi Chien, NTU).

AlexNet slide: conv 1.89M parameters = 7.56MB, FC 58.62M = 234.49MB, conv 591M MAC,
FC 58.62M MAC, Full-HD 30 fps 805 GFLOPS (no overlap). VGG slide: conv ~14M / 56MB,
FC ~124M / 496MB, conv 15.52G MAC, FC 123.63M MAC, Full-HD 30 fps 19.3 TFLOPS.
"""

import json

import pytest

from cnnstat.analysis import analyze
from cnnstat.throughput import throughput_row, tile_count
from helpers import analyze_text

FULL_HD = (1920, 1080)


def test_alexnet_grouped_reproduces_the_lecture():
    k = analyze("alexnet-grouped").by_kind()
    assert k["conv"]["weights"] == 1_890_336  # "1.89M parameters"
    assert k["conv"]["weight_bytes"] == 7_561_344  # "7.56MB" (fp32, MB = 10^6 bytes)
    assert k["fc"]["weights"] == 58_621_952  # "58.62M parameters"
    assert k["fc"]["weight_bytes"] == 234_487_808  # "234.49MB"
    assert k["conv"]["macs"] == 591_024_672  # "591M Floating MAC"
    assert k["fc"]["macs"] == 58_621_952  # "58.62M Floating MAC"


def test_alexnet_grouped_full_hd_30fps():
    a = analyze("alexnet-grouped")
    row = throughput_row(a, FULL_HD, 30, 1, tile=(224, 224))
    # 1920*1080 / 224^2 = 2025/49 tiles of 649,646,624 MACs, 30 times a second: "805 GFLOPS"
    assert row["tiles"] == pytest.approx(2025 / 49)
    assert row["macs_per_second"] == pytest.approx(649_646_624 * 2025 / 49 * 30)
    assert round(row["macs_per_second"] / 1e9, 1) == 805.4


def test_alexnet_paper_network():
    # Krizhevsky et al. 2012 / Caffe bvlc_alexnet: conv3 sees both halves of conv2.
    a = analyze("alexnet")
    k = a.by_kind()
    assert k["conv"]["weights"] == 2_332_704
    assert k["conv"]["macs"] == 665_784_864
    assert k["fc"]["weights"] == 58_621_952
    # Caffe's bvlc_alexnet has 60,965,224 learnable parameters ("60M parameters" in the paper).
    assert a.totals()["params"] == 60_965_224


def test_vgg16_by_kind():
    k = analyze("vgg16").by_kind()
    assert k["conv"]["weights"] == 14_710_464  # lecture: "~14M"
    assert k["fc"]["weights"] == 123_633_664  # lecture: "~124M"
    assert k["conv"]["macs"] == 15_346_630_656  # lecture: 15.52G (not reproduced, see README)
    assert k["fc"]["macs"] == 123_633_664  # lecture: "123.63M Floating MAC"
    # The lecture's 56MB and 496MB are ~14M x 4 and ~124M x 4 bytes; exact fp32 figures:
    assert k["conv"]["weight_bytes"] == 58_841_856
    assert k["fc"]["weight_bytes"] == 494_534_656


def test_vgg16_full_hd_30fps():
    row = throughput_row(analyze("vgg16"), FULL_HD, 30, 1, tile=(224, 224))
    # 15,470,264,320 MACs x 2025/49 tiles x 30 = 19.18 T (the lecture prints 19.3 T).
    assert row["macs_per_second"] == 19_179_970_560_000


def test_flops_cli_prints_the_lecture_figure(run):
    res = run("flops", "alexnet-grouped", "--resolution", "1920x1080", "--fps", "30", "--format", "json")
    assert res.exit_code == 0
    (row,) = json.loads(res.stdout)
    assert row["tile"] == [224, 224]
    assert row["macs_per_image"] == 649_646_624
    assert round(row["macs_per_second"] / 1e9, 1) == 805.4
    table = run("flops", "alexnet-grouped", "--resolution", "1920x1080", "--fps", "30").stdout
    assert "805.43G" in table
    assert "1 MAC = one multiply-accumulate" in table


def test_params_cli_lecture_layout(run):
    out = run("params", "alexnet-grouped").stdout
    assert "Convolution: 1.89M weights = 7.56 MB" in out
    assert "Fully connected: 58.62M weights = 234.49 MB" in out


def test_whole_tiles():
    assert tile_count(FULL_HD, (224, 224), "whole") == 9 * 5
    assert tile_count((224, 224), (224, 224), "whole") == 1
    assert tile_count((225, 224), (224, 224), "whole") == 2


# --- the lecture's toy examples ---------------------------------------------------------


def test_seven_inputs_three_hidden_units():
    # "# input units: 7, # hidden units: 3 — global connectivity 21, local connectivity 9"
    fc = analyze_text("input: [7]\nlayers:\n  - fc: {out: 3, bias: false}\n")
    assert fc.totals()["params"] == 21
    local = analyze_text("input: [1, 7]\nlayers:\n  - local: {out: 1, k: 3, s: 2, bias: false}\n")
    assert local.layers[0].output == (1, 3)
    assert local.totals()["params"] == 9  # "without weight sharing: 9"
    conv = analyze_text("input: [1, 7]\nlayers:\n  - conv: {out: 1, k: 3, s: 2, bias: false}\n")
    assert conv.totals()["params"] == 3  # "with weight sharing: 3"


def test_200x200_image():
    # Ranzato, CVPR 2014 tutorial, as quoted in the lecture.
    fc = analyze_text("input: [1, 200, 200]\nlayers:\n  - flatten\n  - fc: {out: 40000, bias: false}\n")
    assert fc.totals()["params"] == 1_600_000_000  # "~2B parameters" on the slide: 40K x 40K
    local = analyze_text("input: [1, 200, 200]\nlayers:\n  - local: {out: 1, k: 10, p: same, bias: false}\n")
    assert local.layers[0].output == (1, 200, 200)  # 40K hidden units
    assert local.totals()["params"] == 4_000_000  # "Filter size 10x10: 4M parameters"
    conv = analyze_text("input: [1, 200, 200]\nlayers:\n  - conv: {out: 100, k: 10, bias: false}\n")
    assert conv.totals()["params"] == 10_000  # "100 filters, 10x10: 10K parameters"


def test_32x32_shrinks_through_5x5_convs():
    a = analyze_text(
        "input: [3, 32, 32]\nlayers:\n  - conv: {out: 6, k: 5}\n  - relu\n  - conv: {out: 10, k: 5}\n"
    )
    assert [la.output[1:] for la in a.layers] == [(28, 28), (28, 28), (24, 24)]
    assert a.layers[0].weights == 5 * 5 * 3 * 6  # each neuron: a 75-dimensional dot product


@pytest.mark.parametrize("n", [3, 5, 7])
@pytest.mark.parametrize("depth", [1, 2, 3, 5, 10])
def test_stacked_convs_receptive_field(n, depth):
    a = analyze_text(f"input: [1, 64, 64]\nlayers:\n  - conv: {{out: 4, k: {n}, p: same, repeat: {depth}}}\n")
    assert a.receptive_field().rf.size == (1 + depth * (n - 1),) * 2  # 1 + L(n-1)
    assert a.receptive_field().rf.jump == (1, 1)


def test_vgg16_receptive_field():
    # Pool5 of VGG-16: 212 pixels, effective stride 32 (the design note's check; also in
    # Araujo et al., "Computing Receptive Fields of CNNs", Distill 2019, table 1: VGG-16 212).
    rf = analyze("vgg16").receptive_field()
    assert rf.name.endswith("maxpool1") and rf.output == (512, 7, 7)
    assert rf.rf.size == (212, 212)
    assert rf.rf.jump == (32, 32)
