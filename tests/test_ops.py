"""Each op's shape, cost and receptive-field step against hand calculations.

Output sizes follow PyTorch's documented formulas (nn.Conv2d / nn.MaxPool2d "Shape" sections):
out = floor((in + 2p - d(k-1) - 1) / s + 1), with ceil instead of floor in ceil_mode and the
last window dropped when it would start in the right padding.
"""

import pytest

from helpers import analyze_text


def one(layer_yaml: str, input="[3, 32, 32]"):
    a = analyze_text(f"input: {input}\nlayers:\n  - {layer_yaml}\n")
    return a.layers[-1]


@pytest.mark.parametrize(
    "args, out_hw",
    [
        ("k: 3", (30, 30)),
        ("k: 3, p: 1", (32, 32)),
        ("k: 3, s: 2, p: 1", (16, 16)),
        ("k: 3, d: 2", (28, 28)),
        ("k: [3, 5], p: [1, 2]", (32, 32)),
        ("k: [1, 7], s: [1, 2]", (32, 13)),
        ("k: 4, p: same", (32, 32)),  # even kernel: 3 pixels of padding, 1 before, 2 after
        ("k: 3, s: 2, p: same", (16, 16)),  # ceil(32 / 2)
        ("k: 5, p: valid", (28, 28)),
    ],
)
def test_conv_shapes(args, out_hw):
    layer = one(f"conv: {{out: 8, {args}}}")
    assert layer.output == (8, *out_hw)


def test_conv_cost():
    layer = one("conv: {out: 8, k: [3, 5], p: [1, 2]}")
    assert layer.weights == 8 * 3 * 3 * 5
    assert layer.biases == 8
    assert layer.macs == 8 * 32 * 32 * 3 * 3 * 5  # output elements x k_h x k_w x C_in


def test_grouped_conv():
    layer = one("conv: {out: 8, k: 3, p: 1, groups: 4, bias: false}", "[16, 10, 10]")
    assert layer.weights == 8 * (16 // 4) * 9
    assert layer.biases == 0
    assert layer.macs == 8 * 100 * 4 * 9


def test_depthwise_conv():
    layer = one("dwconv: {k: 3, p: 1}", "[16, 10, 10]")
    assert layer.output == (16, 10, 10)
    assert (layer.weights, layer.biases, layer.macs) == (16 * 9, 16, 16 * 100 * 9)
    layer = one("dwconv: {k: 3, mult: 2, bias: false}", "[16, 10, 10]")
    assert layer.output == (32, 8, 8)
    assert layer.weights == 32 * 9


def test_locally_connected_2d():
    layer = one("local: {out: 4, k: 3}", "[2, 5, 5]")
    assert layer.output == (4, 3, 3)
    assert layer.weights == 9 * 4 * 2 * 9  # every output position has its own filters
    assert layer.biases == 4 * 9
    assert layer.macs == 4 * 9 * 2 * 9


def test_conv1d():
    layer = one("conv: {out: 4, k: 3, s: 2}", "[2, 11]")
    assert layer.output == (4, 5)
    assert layer.weights == 4 * 2 * 3
    assert layer.rf.size == (3,) and layer.rf.jump == (2,)


def test_fc():
    layer = one("fc: {out: 10}", "[100]")
    assert (layer.weights, layer.biases, layer.macs) == (1000, 10, 1000)


@pytest.mark.parametrize(
    "args, out_hw",
    [
        ("k: 2", (16, 16)),
        ("k: 3, s: 2", (15, 15)),
        ("k: 3, s: 2, ceil: true", (16, 16)),
        ("k: 3, s: 2, p: 1", (16, 16)),
        ("k: 2, s: 2, p: 1, ceil: true", (17, 17)),
    ],
)
def test_pool_shapes(args, out_hw):
    assert one(f"maxpool: {{{args}}}").output == (3, *out_hw)
    assert one(f"avgpool: {{{args}}}").output == (3, *out_hw)


def test_ceil_mode_drops_a_window_starting_in_padding():
    # in 5, k 2, s 2, p 1: ceil((5 + 2 - 2) / 2) + 1 = 4, but window 4 would start at 6 > 5 + 1
    assert one("maxpool: {k: 2, s: 2, p: 1, ceil: true}", "[1, 5, 5]").output == (1, 3, 3)


def test_pools_have_no_cost():
    for layer in ("maxpool: {k: 2}", "avgpool: {k: 2}", "gap", "relu", "lrn", "softmax", "dropout"):
        got = one(layer)
        assert (got.weights, got.biases, got.macs) == (0, 0, 0), layer


def test_global_and_adaptive_pooling():
    assert one("gap").output == (3, 1, 1)
    assert one("gap", "[3, 9]").output == (3, 1)
    assert one("adaptive_avgpool: {size: [4, 2]}").output == (3, 4, 2)
    # 13 -> 6: windows [floor(13i/6), ceil(13(i+1)/6)) are all 3 pixels wide
    layer = one("adaptive_avgpool: {size: 6}", "[1, 13, 13]")
    assert layer.output == (1, 6, 6)
    assert layer.rf.size == (3, 3)


def test_batchnorm_and_prelu():
    bn = one("bn", "[16, 4, 4]")
    assert (bn.weights, bn.biases, bn.buffers, bn.params) == (16, 16, 32, 32)
    assert one("bn: {affine: false}", "[16, 4, 4]").params == 0
    assert one("prelu", "[16, 4, 4]").weights == 16
    assert one("prelu: {shared: true}", "[16, 4, 4]").weights == 1


def test_flatten_keeps_the_receptive_field_and_fc_collapses_it():
    a = analyze_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 2, k: 3}\n  - flatten\n  - fc: {out: 5}\n")
    conv, flat, fc = a.layers
    assert flat.output == (2 * 6 * 6,)
    assert flat.rf.size == conv.rf.size == (3, 3)
    assert fc.rf.size == (8, 8) and fc.rf.collapsed  # one unit sees the whole 8x8 input
    assert a.receptive_field() is conv


def test_receptive_field_arithmetic():
    # conv 3x3/1 p1 -> pool 2/2 -> conv 3x3/1 p1: sizes 3, 4, 8; jumps 1, 2, 2;
    # starts 0, 0.5, 0.5 (centres of the first unit's field, in input pixels)
    a = analyze_text(
        "input: [1, 16, 16]\nlayers:\n  - conv: {out: 1, k: 3, p: 1}\n  - maxpool: {k: 2}\n"
        "  - conv: {out: 1, k: 3, p: 1}\n"
    )
    assert [la.rf.size[0] for la in a.layers] == [3, 4, 8]
    assert [la.rf.jump[0] for la in a.layers] == [1, 2, 2]
    assert [la.rf.start[0] for la in a.layers] == [0, 0.5, 0.5]
    dil = one("conv: {out: 1, k: 3, d: 2}", "[1, 16, 16]")
    assert dil.rf.size == (5, 5) and dil.rf.start == (2, 2)


def test_merges():
    a = analyze_text(
        """
        input: [8, 16, 16]
        layers:
          - add: {a: [conv: {out: 8, k: 3, p: 1}], b: identity}
          - concat: {x: identity, y: [conv: {out: 4, k: 1}]}
          - mul: {x: identity, gate: [gap, conv: {out: 12, k: 1}, sigmoid]}
        """
    )
    by_name = {la.name: la for la in a.layers}
    assert by_name["add1"].output == (8, 16, 16)
    assert by_name["add1"].inputs == ("add1.a.conv1", "input")
    assert by_name["concat1"].output == (12, 16, 16)
    assert by_name["mul1"].output == (12, 16, 16)
    # the add's receptive field is the largest over its branches (3, from the conv branch)
    assert by_name["add1"].rf.size == (3, 3)


def test_channel_slice_and_shuffle():
    assert one("slice: {stop: 2}").output == (2, 32, 32)
    assert one("slice: {start: 1}").output == (2, 32, 32)
    shuffle = one("shuffle: {groups: 3}", "[6, 4, 4]")
    assert shuffle.output == (6, 4, 4) and shuffle.params == 0


def test_more_activations_are_free():
    for name in ("relu6", "hardswish", "hardsigmoid", "silu"):
        layer = one(name)
        assert layer.output == (3, 32, 32) and (layer.params, layer.macs) == (0, 0)


def test_divisible_rounds_like_make_divisible():
    from cnnstat.spec.expr import divisible

    # torchvision's _make_divisible: round to the nearest multiple, at least the divisor,
    # and never more than 10% below the value
    assert [divisible(v) for v in (16, 24, 37.5, 15, 4)] == [16, 24, 40, 16, 8]
    assert divisible(10) == 16  # 8 would be more than 10% below 10
    assert divisible(3, 1, 1) == 3


def test_squeeze_excitation_gate_leaves_the_receptive_field_alone():
    a = analyze_text(
        """
        input: [8, 16, 16]
        layers:
          - conv: {out: 8, k: 3, p: 1}
          - mul: {x: identity, gate: [gap, conv: {out: 8, k: 1}, sigmoid]}
        """
    )
    conv, gate_pool, gate_conv, gate_act, mul = a.layers
    assert gate_pool.rf.collapsed
    assert mul.rf == conv.rf._replace(extent=(16, 16))
    assert mul.rf.size == (3, 3) and mul.rf.jump == (1, 1)
