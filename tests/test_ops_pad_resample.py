"""Padding forms (per side, mappings, causal), pad, crop, upsample and pixel (un)shuffle.

Checked against hand computation (shapes, TensorFlow's 'same' formula), torch running the
same padding on real tensors (F.pad + convolution, torch's own padding='same', F.interpolate's
output sizes), autograd (which input pixels each output unit reads: the receptive field, unit
by unit), and the torch round trip (build -> sum(numel), FlopCounterMode MACs -> import back).
"""

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.analysis import Analysis
from cnnstat.errors import OpError, SpecError
from cnnstat.memory import activation_memory
from cnnstat.ops import REGISTRY
from cnnstat.ops.window import paddings, sides
from cnnstat.spec.build import build
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs
from cnnstat.torch.ops.pad import Crop
from cnnstat.torch.ops.resample import UpsampleLike
from cnnstat.torch.trace import trace_module
from helpers import analyze_text, error_of, graph_of, last, spec_from_text

# --- padding forms ----------------------------------------------------------------------------

K3, S1, D1 = (3, 3), (1, 1), (1, 1)


@pytest.mark.parametrize(
    "p, pads",
    [
        (1, [(1, 1), (1, 1)]),
        ([1, 2], [(1, 1), (2, 2)]),  # per axis
        ([0, 1, 2, 3], [(0, 1), (2, 3)]),  # per side: [top, bottom, left, right]
        ([[0, 1], [2, 3]], [(0, 1), (2, 3)]),  # [before, after] pairs
        ({"top": 0, "bottom": 1, "right": 3}, [(0, 1), (0, 3)]),  # missing sides are 0
        ({}, [(0, 0), (0, 0)]),
        ("valid", [(0, 0), (0, 0)]),
    ],
)
def test_padding_forms_2d(p, pads):
    assert paddings(p, (8, 8), K3, S1, D1) == pads


def test_padding_forms_1d_and_3d():
    assert paddings({"left": 3}, (8,), (3,), (1,), (1,)) == [(3, 0)]
    assert paddings([[3, 0]], (8,), (3,), (1,), (1,)) == [(3, 0)]
    assert paddings("causal", (8,), (3,), (1,), (2,)) == [(4, 0)]  # d * (k - 1) before
    assert paddings("causal", (8,), (2,), (2,), (1,)) == [(1, 0)]
    three = ((3, 3, 3), (1, 1, 1), (1, 1, 1))
    assert paddings([1, 2, 3, 4, 5, 6], (8, 8, 8), *three) == [(1, 2), (3, 4), (5, 6)]
    assert paddings({"front": 1, "right": 2}, (8, 8, 8), *three) == [(1, 0), (0, 0), (0, 2)]


@pytest.mark.parametrize(
    "size, k, s, pads",
    [
        # TensorFlow: out = ceil(in / s), pad_along = max((out - 1) * s + k - in, 0), top = half
        (20, 3, 2, (0, 1)),  # out 10, pad 1: all after
        (9, 4, 2, (1, 2)),  # out 5, pad 3
        (9, 4, 1, (1, 2)),  # out 9, pad 3
        (10, 1, 2, (0, 0)),
        (7, 5, 3, (2, 2)),  # out 3, pad 4
    ],
)
def test_same_padding_is_tensorflows_formula(size, k, s, pads):
    assert paddings("same", (size,), (k,), (s,), (1,)) == [pads]


@pytest.mark.parametrize(
    "p, rank, message",
    [
        ([3, 0], 1, "on a 1-D input: write the two sides as {left: 3, right: 0}"),
        (
            [1, 2, 3],
            2,
            "a list of 3 integers on a 2-D input; give 2 (one per axis) or 4, per side "
            "[top, bottom, left, right]",
        ),
        ([1, 2, 3, 4], 3, "give 3 (one per axis) or 6, per side [front, back, top, bottom, left, right]"),
        ({"front": 1}, 2, "unknown side 'front' (a 3-D side); a 2-D input has top, bottom, left, right"),
        ({"top": 1}, 1, "unknown side 'top' (a 2-D side); a 1-D input has left, right"),
        ({"top": "$x"}, 2, "expressions are not evaluated inside a mapping"),
        ({"top": True}, 2, "side 'top' must be an integer"),
        ([[0, 1]], 2, "1 [before, after] pairs on a 2-D input; give 2"),
        ([0.5, 1], 2, "padding must be an integer, a list of integers or a mapping of sides"),
    ],
)
def test_padding_form_errors(p, rank, message):
    with pytest.raises(OpError) as exc:
        sides(p, rank)
    assert message in str(exc.value)


def test_padding_errors_in_paddings():
    with pytest.raises(OpError, match="'causal' is for 1-D"):
        paddings("causal", (8, 8), K3, S1, D1)
    with pytest.raises(OpError, match="must not be negative"):
        paddings([0, -1, 0, 0], (8, 8), K3, S1, D1)
    with pytest.raises(OpError, match="'same', 'valid' or 'causal', got 'full'"):
        paddings("full", (8, 8), K3, S1, D1)


def test_conv_with_per_side_padding():
    # H: (10 + 0 + 1 - 3) // 2 + 1 = 5; the field starts at (3 - 1) / 2 - 0 = 1
    layer = last("conv: {out: 4, k: 3, s: 2, p: [0, 1, 0, 1]}", "[3, 10, 10]")
    assert layer.output == (4, 5, 5)
    assert layer.macs == 4 * 5 * 5 * 3 * 9
    assert (layer.rf.size, layer.rf.jump, layer.rf.start) == ((3, 3), (2, 2), (1, 1))
    # top 2: H = 10 + 2 - 3 + 1 = 10 rows, the first field centred at 1 - 2 = -1
    layer = last("conv: {out: 4, k: 3, p: {top: 2}}", "[3, 10, 10]")
    assert layer.output == (4, 10, 8)
    assert layer.rf.start == (-1, 1)
    layer = last("dwconv: {k: 3, p: [[2, 0], [0, 0]]}", "[3, 10, 10]")
    assert layer.output == (3, 10, 8)
    layer = last("local: {out: 2, k: 3, p: {left: 1, right: 1}}", "[3, 6, 6]")
    assert layer.output == (2, 4, 6)
    assert layer.weights == 2 * 4 * 6 * 3 * 9


def test_pooling_padding_rule():
    # Symmetric padding: torch's own, at most half the window (torch refuses more).
    assert "must be at most half the window [3, 3]" in error_of("maxpool: {k: 3, s: 1, p: 2}")
    # Asymmetric padding goes through F.pad: each side less than the window, so that every
    # window overlaps the input.
    assert last("maxpool: {k: 2, s: 2, p: [0, 1, 0, 1]}", "[3, 7, 7]").output == (3, 4, 4)
    assert last("avgpool: {k: 3, s: 1, p: {top: 2}}", "[3, 7, 7]").output == (3, 7, 5)
    msg = error_of("maxpool: {k: 2, s: 1, p: {bottom: 2}}")
    assert "([[0, 2], [0, 0]] per axis) must be less than the window [2, 2] on each side" in msg


# --- 'same' and 'causal' against torch on real tensors -----------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_matches_torch_same_at_stride_1():
    for k, d in ((4, 1), (3, 2), (2, 3)):
        graph = graph_of(f"conv: {{out: 3, k: {k}, d: {d}, p: same, name: c}}", "[2, 9, 8]")
        ours = build_graph(graph).c.double()
        theirs = nn.Conv2d(2, 3, k, dilation=d, padding="same").double()
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(2, 2, 9, 8, dtype=torch.float64)
        assert ours(x).shape[2:] == (9, 8)
        torch.testing.assert_close(ours(x), theirs(x))


def test_same_padding_at_stride_2_is_f_pad_then_conv():
    # TensorFlow's rule for in 9, k 4, s 2: out 5, pad 3 = 1 before + 2 after
    graph = graph_of("conv: {out: 3, k: 4, s: 2, p: same, name: c}", "[2, 9, 9]")
    ours = build_graph(graph).c.double()
    x = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    expected = F.conv2d(F.pad(x, (1, 2, 1, 2)), ours.weight, ours.bias, stride=2)
    assert expected.shape[2:] == (5, 5) == graph.layers[0].output[1:]
    torch.testing.assert_close(ours(x), expected)


def test_causal_conv_is_f_pad_before_then_conv():
    graph = graph_of("conv: {out: 2, k: 3, d: 2, p: causal, name: c}", "[2, 20]")
    ours = build_graph(graph).c.double()
    x = torch.randn(1, 2, 20, dtype=torch.float64)
    expected = F.conv1d(F.pad(x, (4, 0)), ours.weight, ours.bias, dilation=2)
    assert graph.layers[0].output == (2, 20) == tuple(expected.shape[1:])
    torch.testing.assert_close(ours(x), expected)
    # causal: changing the future does not change the past
    y = x.clone()
    y[..., 11:] += 1
    torch.testing.assert_close(ours(y)[..., :11], ours(x)[..., :11])
    # at stride s the output is ceil(L / s), as Keras' causal convolution
    assert last("conv: {out: 2, k: 3, s: 2, p: causal}", "[2, 21]").output == (2, 11)


# --- autograd: the exact field of every output unit ---------------------------------------------


def expected_field(rf, axis, unit, size):
    """Unit ``unit``'s (first, last) input pixel along ``axis`` from cnnstat's RF, clipped to
    the input (positions outside it are padding)."""
    table = rf.table(axis)
    period = len(table)
    q, r = divmod(unit, period)
    block = Fraction(period) * Fraction(rf.jump[axis])
    assert block.denominator == 1
    first, last = table[r][0] + q * int(block), table[r][1] + q * int(block)
    return max(first, 0), min(last, size - 1)


def measured_field(module, in_shape, index):
    """(first, last) input pixel per spatial axis with a non-zero gradient of the output
    unit at spatial position ``index`` (all its channels: pixel_unshuffle spreads a unit's
    r x r pixels over r^2 channels)."""
    x = torch.ones(1, *in_shape, dtype=torch.float64, requires_grad=True)
    out = module(x)
    out[(0, slice(None), *index)].sum().backward()
    grad = x.grad[0].abs().sum(0)
    fields = []
    for axis in range(grad.dim()):
        other = tuple(a for a in range(grad.dim()) if a != axis)
        hit = (grad.sum(other) if other else grad).nonzero().flatten()
        fields.append((int(hit.min()), int(hit.max())))
    return fields


def positive(module):
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(0.5, 1.5)
    return module.double()


def check_every_unit(graph, units=None):
    """Every output unit's field (along the diagonal for 2-D) equals autograd's."""
    module = positive(build_graph(graph))
    rf, out = graph.layers[-1].rf, graph.layers[-1].output[1:]
    spatial = graph.input[1:]
    n = len(out)
    for u in units or range(max(out)):
        index = tuple(min(u, o - 1) for o in out)
        got = measured_field(module, graph.input, index)
        want = [expected_field(rf, i, index[i], spatial[i]) for i in range(n)]
        assert got == want, (index, got, want)


@pytest.mark.parametrize(
    "layer, input",
    [
        ("upsample: {scale: 2}", "[1, 5, 7]"),
        ("upsample: {scale: 3}", "[1, 5, 4]"),
        ("upsample: {scale: 1.5}", "[1, 6, 7]"),
        ("upsample: {scale: 0.5}", "[1, 9, 8]"),
        ("upsample: {size: [11, 5]}", "[1, 4, 7]"),
        ("upsample: {scale: 2, mode: bilinear}", "[1, 5, 7]"),
        ("upsample: {scale: [3, 2], mode: bilinear}", "[1, 5, 7]"),
        ("upsample: {size: [12, 9], mode: bilinear}", "[1, 5, 7]"),
        ("upsample: {scale: 2, mode: bilinear, align_corners: true}", "[1, 5, 7]"),
        ("upsample: {size: [9, 13], mode: bilinear, align_corners: true}", "[1, 5, 7]"),
        ("upsample: {scale: 0.5, mode: bilinear}", "[1, 10, 9]"),
        ("upsample: {scale: 2, mode: bicubic}", "[1, 6, 7]"),
        ("upsample: {size: [10, 9], mode: bicubic, align_corners: true}", "[1, 4, 5]"),
        ("upsample: {scale: 4, mode: linear}", "[1, 6]"),
        ("upsample: {scale: 2, mode: trilinear}", "[1, 3, 4, 5]"),
        ("upsample: {scale: 2}", "[1, 3, 4, 2]"),
        ("pixel_shuffle: {factor: 2}", "[4, 5, 6]"),
        ("pixel_shuffle: {factor: 3}", "[9, 3, 4]"),
        ("pixel_unshuffle: {factor: 2}", "[1, 6, 8]"),
    ],
)
def test_resampling_fields_unit_by_unit(layer, input):
    check_every_unit(graph_of(layer, input))


def test_fields_through_pad_crop_and_upsampling_stacks():
    stack = """
    conv: {out: 2, k: 3, s: 2, p: {top: 1, left: 2}}
    pad: {p: [1, 0, 2, 3]}
    crop: {size: [16, 18], offset: [2, 3]}
    upsample: {scale: 2, mode: bilinear}
    conv: {out: 2, k: 3, p: [0, 2, 1, 1]}
    pixel_unshuffle: {factor: 2}
    conv: {out: 4, k: 2}
    pixel_shuffle: {factor: 2}
    """
    # Units near the border read intermediate padding (zeros, not pixels: the field is
    # positional, as for any padded convolution): check the central units, every phase.
    graph = graph_of(stack, "[2, 40, 41]")
    centre = min(graph.layers[-1].output[1:]) // 2
    check_every_unit(graph, range(centre - 4, centre + 4))


def test_causal_dilated_stack_field_reaches_back_into_padding():
    # WaveNet: k = 2, dilations 1, 2, ..., 512, causal: the field is 1 + (1 + 2 + ... + 512)
    # = 1024 samples, the last of them the unit's own time step; output unit t is centred
    # 1023 / 2 samples before t, so the first unit's field starts 1023 samples before the signal.
    layers = "\n".join(f"conv: {{out: 1, k: 2, d: {2**i}, p: causal}}" for i in range(10))
    graph = graph_of(layers, "[1, 1100]")
    rf = graph.layers[-1].rf
    assert rf.size == (1024,) and rf.jump == (1,) and rf.start == (-511.5,)
    assert graph.layers[-1].output == (1, 1100)
    module = positive(build_graph(graph))
    for t in (0, 1, 511, 1022, 1023, 1024, 1099):
        assert measured_field(module, graph.input, (t,)) == [(max(t - 1023, 0), t)]
        assert expected_field(rf, 0, t, 1100) == (max(t - 1023, 0), t)


# --- pad ------------------------------------------------------------------------------------------


def test_pad_shapes_and_fields():
    layer = last("pad: {p: {top: 1, bottom: 2, left: 3}}", "[3, 8, 8]")
    assert layer.output == (3, 11, 11)
    assert (layer.weights, layer.biases, layer.macs) == (0, 0, 0)
    assert (layer.rf.size, layer.rf.jump, layer.rf.start) == ((1, 1), (1, 1), (-1, -3))
    assert last("pad: {p: 2}", "[3, 8, 8]").output == (3, 12, 12)
    assert last("pad: {p: [1, 2]}", "[3, 8, 8]").output == (3, 10, 12)
    assert last("pad: {p: [0, 1, 2, 3]}", "[3, 8, 8]").output == (3, 9, 13)
    assert last("pad: {p: {left: 5}}", "[2, 8]").output == (2, 13)
    assert last("pad: {p: [1, 0, 0, 0, 2, 2], mode: replicate}", "[2, 4, 5, 6]").output == (2, 5, 5, 10)
    # after a stride-2 conv (field centre 1, jump 2) one unit of padding moves the start by -2
    graph = graph_of("conv: {out: 2, k: 3, s: 2}\npad: {p: {top: 1}}", "[3, 9, 9]")
    assert graph.layers[-1].rf.start == (-1, 1)
    assert graph.layers[-1].rf.size == (3, 3) and graph.layers[-1].rf.jump == (2, 2)


def test_pad_modes_against_torch():
    for mode, p in (("reflect", 7), ("circular", 8), ("replicate", 20), ("constant", 20)):
        graph = graph_of(f"pad: {{p: [{p}, 0, 0, 1], mode: {mode}, name: pad}}", "[1, 8, 8]")
        out = build_graph(graph).pad(torch.randn(1, 1, 8, 8))
        assert tuple(out.shape[1:]) == graph.layers[0].output == (1, 8 + p, 9)


@pytest.mark.parametrize(
    "layer, message",
    [
        ("pad: {p: [8, 0, 0, 0], mode: reflect}", "reflect padding [[8, 0], [0, 0]] must be less than the"),
        ("pad: {p: {top: 9}, mode: circular}", "at most the input size [8, 8] on each side (it would wrap"),
        ("pad: {p: [-1, 0, 0, 0]}", "negative padding [-1, 0, 0, 0] would crop: use 'crop'"),
        ("pad: {p: same}", "'p' is an amount (an integer, per axis, per side or {top: 1, ...}), not 'same'"),
        ("pad: {p: 1, mode: reflect, value: 2}", "mode reflect takes no 'value'"),
        ("pad: {p: 1, mode: zeros}", "'mode' must be one of constant, reflect, replicate, circular"),
        ("pad: {mode: reflect}", "pad needs argument 'p'"),
    ],
)
def test_pad_errors(layer, message):
    assert message in error_of(layer, "[3, 8, 8]")


# --- crop -----------------------------------------------------------------------------------------


def test_crop_shapes_and_fields():
    layer = last("crop: {size: 6}", "[3, 9, 10]")
    assert layer.output == (3, 6, 6)
    # centred: offset (9 - 6) // 2 = 1, (10 - 6) // 2 = 2 (an odd remainder stays at the end)
    assert layer.rf.start == (1, 2) and layer.rf.size == (1, 1)
    layer = last("crop: {size: [6, 5], offset: [0, 4]}", "[3, 9, 10]")
    assert layer.output == (3, 6, 5) and layer.rf.start == (0, 4)
    # Caffe FCN-32s: a crop at offset 19 of a stride-32 map is 19 x 32 input pixels further
    graph = graph_of("conv: {out: 2, k: 32, s: 32}\ncrop: {size: 2, offset: 3}", "[1, 256, 256]")
    assert graph.layers[-1].rf.start == (15.5 + 3 * 32, 15.5 + 3 * 32)
    assert last("crop: {size: 3}", "[2, 8]").output == (2, 3)
    assert Analysis(graph_of("crop: {size: 4}", "[3, 8, 8]")).totals()["macs"] == 0


@pytest.mark.parametrize(
    "layer, message",
    [
        ("crop: {size: 10}", "size [10, 10] is larger than its input [9, 10] (pad instead)"),
        ("crop: {size: 6, offset: [4, 0]}", "offset [4, 0] + size [6, 6] must lie within the input [9, 10]"),
        ("crop: {size: 6, offset: -1}", "offset [-1, -1] + size [6, 6] must lie within"),
        ("crop: {offset: 1}", "crop: needs 'size' (int or per axis)"),
        ("crop: {size: [1, 2, 3]}", "'size' must be an integer or a list of 2 integers"),
    ],
)
def test_crop_errors(layer, message):
    assert message in error_of(layer, "[3, 9, 10]")


# --- upsample and pixel (un)shuffle ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args, torch_kw",
    [
        ("scale: 2", dict(scale_factor=2)),
        ("scale: [2, 3]", dict(scale_factor=(2, 3))),
        ("scale: 1.5", dict(scale_factor=1.5)),
        ("scale: 1.1", dict(scale_factor=1.1)),
        ("scale: 0.5", dict(scale_factor=0.5)),
        ("scale: 0.3", dict(scale_factor=0.3)),
        ("size: [5, 4]", dict(size=(5, 4))),
        ("size: 11, mode: bilinear", dict(size=11, mode="bilinear")),
    ],
)
def test_upsample_sizes_are_torchs(args, torch_kw):
    layer = last(f"upsample: {{{args}}}", "[4, 7, 9]")
    out = F.interpolate(torch.zeros(1, 4, 7, 9), **torch_kw)
    assert layer.output == tuple(out.shape[1:])
    assert (layer.weights, layer.biases, layer.macs) == (0, 0, 0)


def test_upsample_fields_by_hand():
    # nearest x2: units 0 and 1 both read input unit 0; centres 0 and 0 - 1/2 jump: start -1/4
    rf = last("upsample: {scale: 2}", "[1, 8, 8]").rf
    assert (rf.size, rf.jump, rf.start) == ((1, 1), (Fraction(1, 2),) * 2, (Fraction(-1, 4),) * 2)
    # bilinear x2 (half-pixel centres): unit 0 reads (-1, 0), unit 1 reads (0, 1)
    rf = last("upsample: {scale: 2, mode: bilinear}", "[1, 8, 8]").rf
    assert (rf.size, rf.start) == ((2, 2), (Fraction(-1, 4),) * 2)
    assert rf.table(0) == ((-1, 0), (0, 1))
    # bicubic reads 4
    rf = last("upsample: {scale: 2, mode: bicubic}", "[1, 8, 8]").rf
    assert rf.size == (4, 4) and rf.table(0) == ((-2, 1), (-1, 2))
    # align_corners, 4 -> 7: src = o / 2; even units fall on an input unit (1 tap)
    rf = last("upsample: {size: 7, mode: bilinear, align_corners: true}", "[1, 4, 4]").rf
    assert rf.table(0) == ((0, 0), (0, 1)) and rf.start == (0, 0) and rf.jump == (Fraction(1, 2),) * 2
    # 1/3 with half-pixel centres: src = 3o + 1, a whole number: one tap
    rf = last("upsample: {size: 3, mode: bilinear}", "[1, 9, 9]").rf
    assert rf.size == (1, 1) and rf.start == (1, 1) and rf.jump == (3, 3)
    # a scale written as a decimal is the fraction it stands for
    rf = last("upsample: {scale: 0.3333333333333333}", "[1, 9, 9]").rf
    assert rf.jump == (3, 3) and rf.size == (1, 1)
    assert last("upsample: {scale: 1.1}", "[1, 20, 20]").rf.jump == (Fraction(10, 11),) * 2
    # a 1 x 1 map (DeepLab's image pooling) resized: every unit reads that one unit
    rf = last("gap\nupsample: {size: [8, 8], mode: bilinear}", "[3, 8, 8]").rf
    assert rf.collapsed and rf.size == (8, 8)


def test_pixel_shuffle_and_unshuffle():
    layer = last("pixel_shuffle: {factor: 2}", "[12, 5, 6]")
    assert layer.output == (3, 10, 12)
    assert (layer.rf.size, layer.rf.jump, layer.rf.start) == ((1, 1), (Fraction(1, 2),) * 2, (-0.25, -0.25))
    layer = last("pixel_unshuffle: {factor: 3}", "[2, 6, 9]")
    assert layer.output == (18, 2, 3)
    assert (layer.rf.size, layer.rf.jump, layer.rf.start) == ((3, 3), (3, 3), (1, 1))
    assert (layer.weights, layer.macs) == (0, 0)
    assert last("pixel_unshuffle: {factor: 2}\npixel_shuffle: {factor: 2}", "[2, 6, 8]").output == (2, 6, 8)


@pytest.mark.parametrize(
    "layer, input, message",
    [
        ("upsample: {scale: 2, size: 8}", "[3, 4, 4]", "give one of 'scale' and 'size', not both"),
        ("upsample: {mode: nearest}", "[3, 4, 4]", "upsample: needs 'scale', 'size' or 'like: LAYER'"),
        ("upsample: {size: [8, 8, 8]}", "[3, 4, 4]", "'size' must be an integer or a list of 2 integers"),
        ("upsample: {scale: [2, 2, 2]}", "[3, 4, 4]", "'scale' must be a positive number or a list of 2"),
        ("upsample: {scale: 0}", "[3, 4, 4]", "'scale' must be a positive number"),
        ("upsample: {scale: 0.1}", "[3, 4, 4]", "output size [0, 0] is empty (input [4, 4], scale 0.1)"),
        ("upsample: {size: [0, 2]}", "[3, 4, 4]", "output size [0, 2] is empty (input [4, 4])"),
        (
            "upsample: {scale: 2, mode: bilinear}",
            "[3, 4]",
            "mode bilinear needs a 2-D input, got [3, 4] (use linear)",
        ),
        ("upsample: {scale: 2, mode: linear}", "[3, 4, 4]", "(use bilinear or bicubic)"),
        ("upsample: {scale: 2, align_corners: true}", "[3, 4, 4]", "align_corners applies to the linear"),
        ("upsample: {scale: 2, mode: area}", "[3, 4, 4]", "'mode' must be one of nearest, linear"),
        (
            "pixel_shuffle: {factor: 2}",
            "[6, 4, 4]",
            "the input's 6 channels are not divisible by factor^2 = 4",
        ),
        ("pixel_shuffle: {factor: 2}", "[8, 4]", "needs a [C, H, W] input, got [8, 4]"),
        (
            "pixel_unshuffle: {factor: 2}",
            "[3, 4, 5]",
            "the input's size [4, 5] is not a multiple of factor 2",
        ),
        ("pixel_shuffle: {factor: 0}", "[3, 4, 5]", "'factor' must be at least 1"),
    ],
)
def test_resample_errors(layer, input, message):
    assert message in error_of(layer, input)


def test_memory_flags():
    # crop is a slice (a view in torch); pad and the resamplings allocate their output
    assert REGISTRY["crop"].view
    assert not any(REGISTRY[n].view or REGISTRY[n].inplace for n in ("pad", "upsample", "pixel_shuffle"))
    # a crop adds no activation memory: the peak is input + conv output (fp32), not input +
    # conv output + crop (64 + 16 x 64 + 16 x 36 floats) as a copy would make it; a pad
    # allocates (the caller holds the input throughout)
    graph = graph_of("conv: {out: 16, k: 1}\ncrop: {size: 6}", "[1, 8, 8]")
    assert activation_memory(graph)["peak_activation_bytes"] == 4 * (64 + 16 * 64)
    graph = graph_of("conv: {out: 16, k: 1}\npad: {p: 1}", "[1, 8, 8]")
    assert activation_memory(graph)["peak_activation_bytes"] == 4 * (64 + 16 * 64 + 16 * 100)


def test_aliases():
    assert last("interpolate: {scale: 2}", "[1, 4, 4]").op == "upsample"
    assert last("resize: {size: 3, mode: bilinear}", "[1, 4, 4]").output == (1, 3, 3)


# --- frame mode -----------------------------------------------------------------------------------


def test_frame_mode():
    layers = "conv: {out: 2, k: 3, p: 1}\nupsample: {scale: 2, mode: bilinear}\ncrop: {size: 4}"
    with pytest.raises(SpecError, match="crop in frame mode: a crop to a fixed 'size' cannot follow"):
        graph_of(layers, "[3, 8, 8]", frame_input=(3, 32, 32))
    graph = graph_of(layers.rsplit("\n", 1)[0] + "\npad: {p: 1}", "[3, 8, 8]", frame_input=(3, 32, 32))
    assert graph.layers[-1].output == (2, 66, 66)
    layers = "conv: {out: 2, k: 3, p: 1}\nupsample: {size: 16}"
    with pytest.raises(SpecError, match="fixed 'size' cannot follow a whole frame: use 'scale'"):
        graph_of(layers, "[3, 8, 8]", frame_input=(3, 32, 32))


# --- errors are located -----------------------------------------------------------------------


def test_errors_are_located():
    text = "input: [3, 8, 8]\nlayers:\n  - conv: {out: 2, k: 3}\n  - conv: {out: 2, k: 3, p: [1, 2, 3]}\n"
    with pytest.raises(SpecError) as exc:
        build(spec_from_text(text))
    assert str(exc.value).startswith(
        "test.yaml:4:5: error: conv: padding: a list of 3 integers on a 2-D input; give 2 (one per "
        "axis) or 4, per side [top, bottom, left, right]"
    )
    text = "input: [3, 8]\nlayers:\n  - pad:\n      p: {top: 1}\n"
    with pytest.raises(SpecError) as exc:
        build(spec_from_text(text))
    assert str(exc.value).startswith("test.yaml:3:5: error: pad: 'p': unknown side 'top' (a 2-D side)")
    text = "input: [3, 8, 8]\nlayers:\n  - maxpool: {k: 2, p: full}\n"
    with pytest.raises(SpecError) as exc:
        build(spec_from_text(text))
    assert str(exc.value).startswith(
        "test.yaml:3:24: error: maxpool: 'p' must be an integer, a list, a mapping of sides, 'same', "
        "'valid' or 'causal', got 'full'"
    )


# --- torch round trip -------------------------------------------------------------------------


def layer_view(graph):
    return [
        (la.name, la.op, la.inputs, la.output, la.weights, la.biases, la.macs, la.rf) for la in graph.layers
    ]


def assert_round_trip(graph):
    """params == sum(numel), FlopCounterMode MACs == cnnstat's, and the module imports back as
    the same layers; then the real module runs and gives the last layer's shape."""
    meta = build_graph(graph, "meta")
    totals = Analysis(graph).totals()
    assert sum(p.numel() for p in meta.parameters()) == totals["params"]
    assert flop_counter_macs(meta, graph.input) == totals["macs"]
    back = trace_module(meta, graph.input)
    assert not back.unsupported and not back.not_executed
    assert layer_view(back) == layer_view(graph)
    out = build_graph(graph)(torch.randn(1, *graph.input))
    assert tuple(out.shape[1:]) == graph.layers[-1].output
    return back


ROUND_TRIP_2D = """
conv: {out: 4, k: 3, s: 2, p: [0, 1, 0, 1]}
dwconv: {k: 3, p: {top: 2, left: 1, right: 1}}
maxpool: {k: 2, s: 1, p: {bottom: 1, right: 1}}
avgpool: {k: 3, s: 1, p: [[2, 0], [1, 1]]}
local: {out: 4, k: 3, p: [[1, 1], [0, 2]]}
pad: {p: {top: 1, right: 2}, mode: reflect}
pad: {p: [1, 0, 0, 2], value: 1.5}
pad: {p: 1, mode: replicate}
pad: {p: [1, 2], mode: circular}
crop: {size: [8, 9]}
crop: {size: 6, offset: [1, 2]}
upsample: {scale: 2, mode: bilinear}
upsample: {size: [20, 16], mode: bicubic, align_corners: true}
upsample: {scale: 1.5}
pixel_unshuffle: {factor: 2}
pixel_shuffle: {factor: 2}
upsample: {scale: [0.5, 2], mode: bilinear, align_corners: true}
conv: {out: 4, k: 3, p: same}
"""

ROUND_TRIP_1D = """
conv: {out: 4, k: 2, d: 2, p: causal}
conv: {out: 4, k: 3, p: {left: 2}}
maxpool: {k: 3, s: 2, p: causal}
pad: {p: {left: 3}, mode: reflect}
crop: {size: 9, offset: 2}
upsample: {scale: 3, mode: linear}
upsample: {size: 20}
"""

ROUND_TRIP_3D = """
conv: {out: 2, k: 3, p: [0, 1, 1, 1, 1, 1]}
pad: {p: {front: 1, right: 2}, mode: replicate}
crop: {size: [3, 6, 7]}
upsample: {scale: [1, 2, 2], mode: trilinear}
upsample: {size: [4, 5, 6]}
"""


@pytest.mark.parametrize(
    "layers, input",
    [(ROUND_TRIP_2D, "[3, 16, 16]"), (ROUND_TRIP_1D, "[2, 16]"), (ROUND_TRIP_3D, "[2, 4, 8, 8]")],
    ids=["2d", "1d", "3d"],
)
def test_round_trip(layers, input):
    assert_round_trip(graph_of(layers, input))


def test_padding_kept_for_the_importer():
    # Asymmetric padding runs as F.pad + the layer; the module keeps the spec's padding in a
    # form the importer reads back: 'causal' as such, [before, after] pairs as a mapping.
    graph = graph_of(
        "conv: {out: 2, k: 3, p: [[2, 0]], name: c}\nmaxpool: {k: 3, p: causal, name: m}", "[3, 8]"
    )
    module = build_graph(graph)
    assert module.c.pads == (2, 0) and module.c.cnnstat_padding == {"left": 2}
    assert module.m.pads == (2, 0) and module.m.cnnstat_padding == "causal"
    graph = graph_of("conv: {out: 2, k: 3, p: [[1, 0], [0, 2]], name: c}", "[3, 8, 8]")
    conv = build_graph(graph).c
    assert conv.pads == (0, 2, 1, 0)  # F.pad's order: last axis first
    assert conv.cnnstat_padding == {"top": 1, "right": 2}


# --- importing torch modules and functions ----------------------------------------------------


class Pads(nn.Module):
    def __init__(self):
        super().__init__()
        self.zero = nn.ZeroPad2d((1, 0, 2, 3))
        self.const = nn.ConstantPad2d(1, 0.5)
        self.reflect = nn.ReflectionPad2d((2, 2, 0, 1))
        self.replicate = nn.ReplicationPad2d(1)
        self.circular = nn.CircularPad2d((0, 1, 1, 0))

    def forward(self, x):
        x = self.circular(self.replicate(self.reflect(self.const(self.zero(x)))))
        x = F.pad(x, (1, 1), value=2.0)  # the last axis only
        x = F.pad(x, (-1, -2, 0, -1))  # negative: a crop
        return F.pad(x, (0, 0, 0, 0, 1, 1))  # the channels: not a cnnstat pad


def test_import_padding_modules():
    graph = trace_module(Pads().to("meta"), (3, 8, 8))
    ops = [(la.op, la.output) for la in graph.layers if la.op != "opaque"]
    assert ops == [
        ("pad", (3, 13, 9)),
        ("pad", (3, 15, 11)),
        ("pad", (3, 16, 15)),
        ("pad", (3, 18, 17)),
        ("pad", (3, 19, 18)),
        ("pad", (3, 19, 20)),
        ("crop", (3, 18, 17)),
    ]
    first = graph.layers[0]
    assert first.args["p"] == ((2, 3), (1, 0)) and first.rf.start == (-2, -1)
    crop = next(la for la in graph.layers if la.op == "crop")
    assert crop.args == {"size": (18, 17), "offset": (0, 1), "like": None}
    assert [u["detail"] for u in graph.unsupported] == [
        "pads the channel or batch axis (cnnstat pads spatial axes)"
    ]


def test_import_padding_1d_3d():
    seq = nn.Sequential(nn.ReflectionPad1d((3, 1)), nn.ConstantPad1d(2, 1.0), nn.ZeroPad1d((0, 4)))
    graph = trace_module(seq.to("meta"), (2, 10))
    assert [la.output for la in graph.layers] == [(2, 14), (2, 18), (2, 22)]
    assert graph.layers[0].args["p"] == ((3, 1),)
    seq = nn.Sequential(nn.ReplicationPad3d((1, 0, 0, 2, 3, 3)), nn.ZeroPad3d(1))
    graph = trace_module(seq.to("meta"), (2, 4, 5, 6))
    assert [la.output for la in graph.layers] == [(2, 10, 7, 7), (2, 12, 9, 9)]


class Resamples(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.up_nearest = nn.UpsamplingNearest2d(scale_factor=3)
        self.up_bilinear = nn.UpsamplingBilinear2d(size=(20, 21))
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = nn.PixelUnshuffle(2)

    def forward(self, x):
        a = self.up(x)
        b = self.up_nearest(x)
        c = self.up_bilinear(x)
        d = self.shuffle(self.unshuffle(a))
        e = F.interpolate(x, scale_factor=(1.5, 2), mode="bicubic", align_corners=False)
        f = F.interpolate(x, scale_factor=1.5, recompute_scale_factor=True)
        g = F.pixel_unshuffle(F.pixel_shuffle(torch.cat([x, x, x, x], 1), 2), 2)
        h = F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)
        i = F.interpolate(x, size=(3, 3), mode="area")
        return a, b, c, d, e, f, g, h, i


def test_import_resampling():
    graph = trace_module(Resamples().to("meta"), (3, 6, 8))
    rows = [(la.op, la.output) for la in graph.layers if la.op != "opaque"]
    assert rows == [
        ("upsample", (3, 12, 16)),
        ("upsample", (3, 18, 24)),
        ("upsample", (3, 20, 21)),
        ("pixel_unshuffle", (12, 6, 8)),
        ("pixel_shuffle", (3, 12, 16)),
        ("upsample", (3, 9, 16)),
        ("upsample", (3, 9, 12)),
        ("concat", (12, 6, 8)),
        ("pixel_shuffle", (3, 12, 16)),
        ("pixel_unshuffle", (12, 6, 8)),
    ]
    args = [la.args for la in graph.layers if la.op == "upsample"]
    assert args[0] == {"scale": 2, "size": None, "mode": "bilinear", "align_corners": False, "like": None}
    assert args[1]["mode"] == "nearest" and args[1]["scale"] == 3
    assert args[2] == {
        "scale": None,
        "size": (20, 21),
        "mode": "bilinear",
        "align_corners": True,
        "like": None,
    }
    assert args[3]["scale"] == (1.5, 2)
    assert args[4]["size"] == (9, 12)  # recompute_scale_factor: torch samples with out / in
    assert [u["detail"] for u in graph.unsupported] == [
        "antialias=True (reads more input units than the mode's taps)",
        "mode 'area'",
    ]
    # the imported fields are the spec op's (which the autograd tests check)
    spec = last("upsample: {size: [20, 21], mode: bilinear, align_corners: true}", "[3, 6, 8]")
    assert graph.layers[2].rf == spec.rf and spec.rf.jump == (Fraction(5, 19), Fraction(7, 20))


class UNetSkip(nn.Module):
    """A U-Net level: the encoder's map cropped to the decoder's size (Crop with a reference)
    and DeepLab's image pooling resized to the feature map (UpsampleLike)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 4, 3)
        self.down = nn.MaxPool2d(2)
        self.mid = nn.Conv2d(4, 4, 3)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.crop = Crop()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.resize = UpsampleLike("bilinear", False)

    def forward(self, x):
        e = self.enc(x)
        u = self.up(self.mid(self.down(e)))
        skip = self.crop(e, u)
        g = self.resize(self.pool(u), u)
        return torch.cat([skip, u, g], 1)


def test_import_crop_and_resize_to_a_reference():
    graph = trace_module(UNetSkip().to("meta"), (3, 20, 20))
    assert not graph.unsupported
    by = {la.name: la for la in graph.layers}
    # enc 18x18 -> pool 9x9 -> mid 7x7 -> up 14x14; the skip cropped centrally: offset 2
    assert by["crop"].output == (4, 14, 14) and by["crop"].inputs == ("enc", "up")
    assert by["crop"].rf.start == (1 + 2, 1 + 2)
    assert by["resize"].output == (4, 14, 14) and by["resize"].inputs == ("pool", "up")
    assert by["cat"].output == (12, 14, 14)
    # built back from the imported graph: the same layers again
    assert_round_trip(graph)


# --- `like: NAME`: crop or resize to an earlier layer's spatial size -------------------------

LIKE_SPEC = """
input: [3, 64, 64]
layers:
  - conv: {out: 8, k: 3, name: enc}
  - maxpool: {k: 2}
  - conv: {out: 16, k: 3}
  - conv_transpose: {out: 8, k: 2, s: 2, name: up}
  - crop: {from: enc, like: up, name: skip}
  - concat: {a: {from: up}, b: {from: skip}}
  - gap: {name: pool}
  - upsample: {like: enc, mode: bilinear, name: back}
"""


def test_crop_and_upsample_like_a_named_layer():
    a = analyze_text(LIKE_SPEC)
    layers = {la.name: la for la in a.layers}
    assert layers["up"].output == (8, 58, 58)  # (62 // 2 - 2) * 2
    assert layers["skip"].output == (8, 58, 58)  # enc's 62x62 centre-cropped
    assert layers["skip"].inputs == ("enc", "up")
    assert layers["concat1"].output == (16, 58, 58)
    assert layers["back"].output == (16, 62, 62) and layers["back"].inputs == ("pool", "enc")
    # The crop's field is enc's, shifted by the centring offset (62 - 58) // 2 = 2 units.
    assert layers["skip"].rf.start == (3.0, 3.0) and layers["skip"].rf.size == (3, 3)


def test_like_follows_a_whole_frame_and_other_inputs():
    from cnnstat.spec.build import build

    spec = spec_from_text(LIKE_SPEC)
    for frame in (False, True):
        g = build(spec, (3, 100, 132), frame=frame)
        out = {la.name: la.output for la in g.layers}
        assert out["skip"] == out["up"] == (8, 94, 126)  # ((98 // 2) - 2) * 2, ((130 // 2) - 2) * 2
        assert out["back"] == (16, 98, 130)


def test_like_inputs_are_not_activation_traffic():
    from cnnstat.throughput import moved_elements

    a = analyze_text(LIKE_SPEC)
    moved = {la.name: n for la, n in moved_elements(a.graph)}
    assert moved["back"] == 16 * 1 * 1 + 16 * 62 * 62  # reads the pooled map, not enc
    assert moved["skip"] == 0  # a view


@pytest.mark.parametrize(
    "layer, message",
    [
        ("crop: {like: nowhere}", "'from': no earlier layer named 'nowhere'"),
        ("crop: {like: 3}", "crop: 'like' must be the name of an earlier layer, got 3"),
        ("crop: {size: 4, like: c}", "give 'size' or 'like', not both"),
        ("upsample: {scale: 2, like: c}", "give one of 'scale' and 'like', not both"),
    ],
)
def test_like_errors(layer, message):
    text = f"input: [3, 16, 16]\nlayers:\n  - conv: {{out: 4, k: 3, name: c}}\n  - {layer}\n"
    with pytest.raises(SpecError) as err:
        analyze_text(text)
    assert message in str(err.value)
    assert str(err.value).startswith("test.yaml:4:")


def test_like_round_trips_through_torch():
    from cnnstat.spec.build import build
    from cnnstat.torch.builder import build_graph
    from cnnstat.torch.check import flop_counter_macs

    g = build(spec_from_text(LIKE_SPEC))
    meta = build_graph(g, "meta")
    assert sum(p.numel() for p in meta.parameters()) == sum(la.params for la in g.layers)
    assert flop_counter_macs(meta, g.input) == sum(la.macs for la in g.layers)
    real = build_graph(g)
    import torch

    assert tuple(real(torch.zeros(1, *g.input)).shape) == (1, 16, 62, 62)


# --- pixel_unshuffle with pad (Swin's patch merging of odd maps) ------------------------------


def test_pixel_unshuffle_pad_by_hand():
    # 5x7 padded to 6x8 (one zero row and column at the end): 3x4 blocks of 2x2
    layer = last("pixel_unshuffle: {factor: 2, pad: true}", "[2, 5, 7]")
    assert layer.output == (8, 3, 4) and layer.args["pad"] is True
    assert (layer.weights, layer.biases, layer.macs) == (0, 0, 0)
    # the field of a 2x2 window of stride 2: the last row's and column's blocks reach into the
    # padding, as a convolution's field does
    assert (layer.rf.size, layer.rf.jump, layer.rf.start) == ((2, 2), (2, 2), (0.5, 0.5))
    # 7x8 by 3: 9x9 (two rows, one column of padding), 3x3 blocks
    layer = last("pixel_unshuffle: {factor: 3, pad: true}", "[1, 7, 8]")
    assert layer.output == (9, 3, 3) and layer.rf.size == (3, 3) and layer.rf.start == (1, 1)
    # multiples of the factor: pad changes nothing
    plain, padded = (last(f"pixel_unshuffle: {{factor: 2{p}}}", "[3, 6, 8]") for p in ("", ", pad: true"))
    assert (plain.output, plain.rf) == (padded.output, padded.rf) == ((12, 3, 4), padded.rf)
    assert "(pad: true pads it at the end, as Swin's patch merging)" in error_of(
        "pixel_unshuffle: {factor: 2}", "[3, 5, 8]"
    )


@pytest.mark.parametrize("input", ["[1, 7, 9]", "[2, 5, 6]", "[1, 8, 3]"])
def test_pixel_unshuffle_pad_fields_unit_by_unit(input):
    check_every_unit(graph_of("pixel_unshuffle: {factor: 2, pad: true}", input))
    stack = "conv: {out: 2, k: 3, p: 1}\npixel_unshuffle: {factor: 3, pad: true}\nconv: {out: 2, k: 2}"
    check_every_unit(graph_of(stack, "[1, 13, 11]"))


def test_pixel_unshuffle_pad_round_trip():
    graph = graph_of(
        "conv: {out: 4, k: 3, s: 2}\npixel_unshuffle: {factor: 2, pad: true}\n"
        "conv: {out: 4, k: 1}\npixel_unshuffle: {factor: 2, pad: true}",
        "[3, 21, 19]",
    )
    assert [la.output for la in graph.layers] == [(4, 10, 9), (16, 5, 5), (4, 5, 5), (16, 3, 3)]
    back = assert_round_trip(graph)
    assert [la.args.get("pad") for la in back.layers if la.op == "pixel_unshuffle"] == [True, True]


@pytest.mark.parametrize("hw", [(7, 9), (6, 5), (8, 8)])
def test_pixel_unshuffle_pad_is_torchvisions_patch_merging(hw):
    """Swin's PatchMerging (pad the end to even sizes, gather 2x2, LayerNorm 4C, linear 4C -> 2C)
    as the spec writes it, against torchvision's module with the same weights; torchvision's
    concat channel (dy + 2 dx) C + ch is pixel_unshuffle's 4 ch + 2 dy + dx."""
    from torchvision.models.swin_transformer import PatchMerging, _patch_merging_pad

    c = 3
    graph = graph_of(
        "pixel_unshuffle: {factor: 2, pad: true}\nlayernorm\nlinear: {out: 6, bias: false}",
        f"[{c}, {hw[0]}, {hw[1]}]",
    )
    ours = build_graph(graph).double()
    torch.manual_seed(0)
    ref = PatchMerging(c).double().eval()
    perm = [(dy + 2 * dx) * c + ch for ch in range(c) for dy in (0, 1) for dx in (0, 1)]
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
        ours.layernorm1.weight.copy_(ref.norm.weight[perm])
        ours.layernorm1.bias.copy_(ref.norm.bias[perm])
        ours.linear1.linear.weight.copy_(ref.reduction.weight[:, perm])
        x = torch.randn(1, c, *hw, dtype=torch.float64)
        gathered = _patch_merging_pad(x.permute(0, 2, 3, 1))[..., perm].permute(0, 3, 1, 2)
        assert torch.equal(ours.pixel_unshuffle1(x), gathered)
        want = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert torch.allclose(ours(x), want, rtol=1e-12, atol=1e-12)
    assert want.shape[1:] == graph.layers[-1].output == (6, -(-hw[0] // 2), -(-hw[1] // 2))
    assert Analysis(graph).totals()["params"] == sum(p.numel() for p in ref.parameters())
