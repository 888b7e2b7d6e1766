"""ONNX models: `cnnstat params model.onnx` (cnnstat.onnx).

Operator by operator, ONNX files written here with onnx.helper (no torch): shapes,
parameters, MACs and receptive fields against hand counts. The rules the PyTorch import
keeps (never a wrong total): parameters always complete, unknown operators' MACs a stated
lower bound, --strict. Every error case: one message, exit 2. Then parity: zoo specs built
with cnnstat.torch.build and torchvision models, exported with torch.onnx.export and analysed
as ONNX, equal the spec's (and torchvision's published) parameters, MACs and receptive field.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

onnx = pytest.importorskip("onnx")  # the onnx extra (in dev)

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnstat.analysis import Analysis  # noqa: E402
from cnnstat.errors import CnnstatError  # noqa: E402
from cnnstat.onnx import analyze  # noqa: E402
from cnnstat.spec.build import build  # noqa: E402
from helpers import analyze_text, onnx_saver, spec_from_text  # noqa: E402

NEWEST = onnx.defs.onnx_opset_version()
F = TensorProto.FLOAT


# --- writing models -------------------------------------------------------------------------------


def init(name, *dims, dtype=np.float32, value=None):
    """An initializer of ``dims`` (values 1, 2, 3, ...: no two alike, so nothing is shared)."""
    if value is None:
        value = np.arange(1, int(np.prod(dims)) + 1, dtype=dtype).reshape(dims)
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def floats(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def model(nodes, shape=(1, 3, 8, 8), inits=(), opset=17, out="y", name="x"):
    """A one-input model: input ``name`` of ``shape`` (ints or dim names), output ``out``."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(name, F, list(shape))],
        [helper.make_tensor_value_info(o, F, None) for o in ([out] if isinstance(out, str) else out)],
        initializer=list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.fixture
def save(tmp_path):
    return onnx_saver(tmp_path)


def layer(a, op):
    found = [la for la in a.layers if la.op == op]
    assert len(found) == 1, [(la.name, la.op) for la in a.layers]
    return found[0]


def only(a):
    """The single non-layout layer's (op, output, weights, biases, buffers, macs)."""
    la = a.layers[-1]
    return la.op, list(la.output), la.weights, la.biases, la.buffers, la.macs


def rf(la):
    return la.rf.size, la.rf.jump, la.rf.start


# --- convolution ------------------------------------------------------------------------------------


def test_conv_groups_pads_stride(save):
    """Conv, 2 groups, pads 1, stride 2: 16 x 4 x 3 x 3 weights + 16 biases; every one of the
    16 x 4 x 4 outputs sums 4 x 3 x 3 products."""
    m = model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, pads=[1, 1, 1, 1], strides=[2, 2])],
        shape=(1, 8, 8, 8),
        inits=[init("w", 16, 4, 3, 3), init("b", 16)],
    )
    a = analyze(save(m))
    assert only(a) == ("conv", [16, 4, 4], 16 * 4 * 9, 16, 0, 16 * 4 * 4 * 4 * 9)
    assert a.layers[0].kind == "conv" and a.layers[0].args["groups"] == 2
    assert rf(a.layers[0]) == ((3, 3), (2, 2), (0.0, 0.0))  # unit 0 centred on pixel 0 (pad 1)
    assert a.complete


def test_depthwise_conv_same_upper(save):
    """group = C: dwconv; auto_pad SAME_UPPER on 7 at stride 2: ceil(7 / 2) = 4 outputs, the
    total padding 2 split 1 before, 1 after."""
    m = model(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=8, strides=[2, 2], auto_pad="SAME_UPPER")],
        shape=(1, 8, 7, 7),
        inits=[init("w", 16, 1, 3, 3)],  # 2 filters per channel
    )
    a = analyze(save(m))
    assert only(a) == ("dwconv", [16, 4, 4], 16 * 9, 0, 0, 16 * 16 * 9)
    assert a.layers[0].args["mult"] == 2
    assert rf(a.layers[0]) == ((3, 3), (2, 2), (0.0, 0.0))


def test_conv_same_lower_puts_the_extra_pixel_first(save):
    """SAME_LOWER, k 2 on 4: one pixel of padding, before (start -0.5: the first unit's
    window is pixels -1 and 0)."""
    m = model(
        [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER")],
        shape=(1, 1, 4, 4),
        inits=[init("w", 1, 1, 2, 2)],
    )
    a = analyze(save(m))
    assert only(a)[1] == [1, 4, 4]
    assert rf(a.layers[0]) == ((2, 2), (1, 1), (-0.5, -0.5))


def test_conv_1d_and_3d(save):
    m1 = model(
        [helper.make_node("Conv", ["x", "w"], ["y"], dilations=[2])],
        shape=(1, 4, 20),
        inits=[init("w", 8, 4, 3)],
    )
    a = analyze(save(m1))
    assert only(a) == ("conv", [8, 16], 96, 0, 0, 8 * 16 * 4 * 3)
    assert a.layers[0].rf.size == (5,)
    m3 = model(
        [helper.make_node("Conv", ["x", "w"], ["y"], strides=[1, 2, 2])],
        shape=(1, 3, 4, 8, 8),
        inits=[init("w", 6, 3, 3, 3, 3)],
    )
    a = analyze(save(m3))
    assert only(a) == ("conv", [6, 2, 3, 3], 6 * 3 * 27, 0, 0, 6 * 2 * 3 * 3 * 3 * 27)


def test_conv_transpose(save):
    """k 4, s 2, pads 1: (8 - 1) x 2 - 2 + 4 = 16; weights C_in x C_out x 16; every input
    element is multiplied by 16 x C_out weights."""
    m = model(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
        shape=(1, 4, 8, 8),
        inits=[init("w", 4, 6, 4, 4), init("b", 6)],
    )
    a = analyze(save(m))
    assert only(a) == ("conv_transpose", [6, 16, 16], 4 * 6 * 16, 6, 0, 4 * 8 * 8 * 16 * 6)
    assert a.layers[0].rf.jump == (0.5, 0.5)


def test_conv_transpose_output_shape_and_asymmetric_pads(save):
    """output_shape 15 at s 2, k 3 from 8: total padding 2 x 7 + 3 - 15 = 2, 1 on each side.
    Pads 0 before and 1 after with output padding 1: (8 - 1) x 2 + 3 + 1 - 0 - 1 = 17, torch's
    padding 0 with output padding 0 (the unit cropped at the end is the one it adds)."""
    m = model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[15, 15])],
        shape=(1, 2, 8, 8),
        inits=[init("w", 2, 3, 3, 3)],
    )
    a = analyze(save(m))
    assert only(a)[:2] == ("conv_transpose", [3, 15, 15])
    assert a.layers[0].args["p"] == [1, 1]
    m = model(
        [
            helper.make_node(
                "ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[0, 0, 1, 1], output_padding=[1, 1]
            )
        ],
        shape=(1, 2, 8, 8),
        inits=[init("w", 2, 3, 3, 3)],
    )
    a = analyze(save(m))
    assert only(a)[:2] == ("conv_transpose", [3, 17, 17])
    assert a.layers[0].args["output_padding"] == [0, 0] and a.layers[0].args["p"] == [0, 0]


# --- fully connected and matrix products ------------------------------------------------------------


def test_gap_flatten_gemm(save):
    """GlobalAveragePool -> Flatten -> Gemm (transB: weight [out, in], torch's layout)."""
    m = model(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1),
        ],
        shape=(1, 8, 5, 5),
        inits=[init("w", 10, 8), init("b", 10)],
    )
    a = analyze(save(m))
    assert [la.op for la in a.layers] == ["gap", "flatten", "fc"]
    assert only(a) == ("fc", [10], 80, 10, 0, 80)
    assert a.layers[-1].kind == "fc" and a.layers[-1].rf.collapsed


def test_matmul_on_tokens_with_bias_is_linear(save):
    """[1, N, D] x W[D, out] + b: the exporters' nn.Linear on tokens. linear over the
    channels at each of the N positions: N x D x out MACs; the bias folds into it."""
    m = model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["b", "h"], ["y"]),
        ],
        shape=(1, 7, 16),
        inits=[init("w", 16, 32), init("b", 32)],
    )
    a = analyze(save(m))
    assert len(a.layers) == 1
    assert only(a) == ("linear", [32, 7], 512, 32, 0, 7 * 16 * 32)


def test_matmul_of_two_activations(save):
    """Q.K^T of 4 heads: [1, 4, 9, 8] x [1, 4, 8, 9] -> 4 x 9 x 8 x 9 MACs, no parameters."""
    m = model(
        [
            helper.make_node("Transpose", ["x"], ["k"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["x", "k"], ["y"]),
        ],
        shape=(1, 4, 9, 8),
    )
    a = analyze(save(m))
    assert only(a) == ("matmul", [4, 9, 9], 0, 0, 0, 4 * 9 * 8 * 9)


def test_matmul_over_positions_collapses_the_field(save):
    """A token-mixing product (MLP-Mixer): W[N', N] x [1, N, C] over every position."""
    m = model(
        [
            helper.make_node("Conv", ["x", "cw"], ["c"], strides=[2, 2]),
            helper.make_node("Reshape", ["c", "s"], ["t"]),  # [1, 4, 9]: tokens of a 3 x 3 map
            helper.make_node("MatMul", ["t", "w"], ["y"]),  # mixes the 9 positions
        ],
        shape=(1, 1, 7, 7),
        inits=[init("cw", 4, 1, 3, 3), ints("s", [1, 4, 9]), init("w", 9, 5)],
    )
    a = analyze(save(m))
    assert only(a) == ("linear", [5, 4], 45, 0, 0, 4 * 9 * 5)
    assert a.layers[-1].rf.collapsed and a.layers[-1].rf.size == (7, 7)


# --- normalisation --------------------------------------------------------------------------------


def test_batchnorm_params_and_buffers(save):
    m = model(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
        shape=(1, 6, 4, 4),
        inits=[init("s", 6), init("b", 6), init("m", 6), init("v", 6)],
    )
    a = analyze(save(m))
    assert only(a) == ("bn", [6, 4, 4], 6, 6, 12, 0)


def test_instance_group_layer_norm(save):
    nodes = [
        helper.make_node("InstanceNormalization", ["x", "s", "b"], ["i"]),
        helper.make_node("GroupNormalization", ["i", "s", "b"], ["g"], num_groups=2),
        helper.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("LayerNormalization", ["t", "s2", "b2"], ["l"], axis=-1),
        helper.make_node("Transpose", ["l"], ["y"], perm=[0, 3, 1, 2]),
    ]
    inits = [init("s", 4), init("b", 4), init("s2", 4), init("b2", 4, value=np.arange(4) + 9)]
    a = analyze(save(model(nodes, shape=(1, 4, 5, 5), inits=inits, opset=21)))
    assert [(la.op, la.weights, la.biases) for la in a.layers] == [
        ("instancenorm", 4, 4),
        ("groupnorm", 0, 0),  # s and b are the instance norm's: counted once
        ("layernorm", 4, 4),  # over the channels, made last by the transpose
    ]
    assert a.totals()["params"] == 16 and a.totals()["macs"] == 0
    assert a.layers[-1].rf.size == (1, 1)


def test_layernorm_over_every_axis(save):
    m = model(
        [helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=1)],
        shape=(1, 2, 3, 4),
        inits=[init("s", 2, 3, 4)],
    )
    assert only(analyze(save(m))) == ("layernorm_all", [2, 3, 4], 24, 0, 0, 0)


# --- activations and element-wise ----------------------------------------------------------------


@pytest.mark.parametrize(
    "node, op",
    [
        (("Relu", {}), "relu"),
        (("Sigmoid", {}), "sigmoid"),
        (("Tanh", {}), "tanh"),
        (("HardSigmoid", {}), "hardsigmoid"),
        (("HardSwish", {}), "hardswish"),
        (("LeakyRelu", {"alpha": 0.1}), "leaky_relu"),
        (("Elu", {}), "elu"),
        (("Selu", {}), "selu"),
        (("Softplus", {}), "softplus"),
        (("Gelu", {"approximate": "tanh"}), "gelu"),
        (("Mish", {}), "mish"),
        (("LRN", {"size": 5}), "lrn"),
        (("Softmax", {"axis": 1}), "softmax"),
        (("Dropout", {}), "dropout"),
    ],
)
def test_activations(save, node, op):
    kind, attrs = node
    m = model([helper.make_node(kind, ["x"], ["y"], **attrs)], shape=(1, 3, 4, 4), opset=NEWEST)
    a = analyze(save(m))
    assert only(a) == (op, [3, 4, 4], 0, 0, 0, 0)
    assert a.layers[0].rf.size == (1, 1)


@pytest.mark.parametrize("lo, hi, op", [(0.0, 6.0, "relu6"), (0.0, None, "relu"), (-1.0, 1.0, "hardtanh")])
def test_clip(save, lo, hi, op):
    names = ["x", "lo"] + (["hi"] if hi is not None else [])
    inits = [floats("lo", lo)] + ([floats("hi", hi)] if hi is not None else [])
    a = analyze(save(model([helper.make_node("Clip", names, ["y"])], inits=inits)))
    assert only(a)[:2] == (op, [3, 8, 8]) and a.totals()["params"] == 0  # bounds: settings


def test_prelu_per_channel_and_shared(save):
    a = analyze(save(model([helper.make_node("PRelu", ["x", "s"], ["y"])], inits=[init("s", 3, 1, 1)])))
    assert only(a) == ("prelu", [3, 8, 8], 3, 0, 0, 0)
    a = analyze(save(model([helper.make_node("PRelu", ["x", "s"], ["y"])], inits=[init("s", 1)])))
    assert only(a) == ("prelu", [3, 8, 8], 1, 0, 0, 0)  # a learned slope: a parameter


def test_arithmetic(save):
    """Two activations: add / mul (Sub, Div likewise); a one-element constant: free; a
    per-channel initializer: scale; an initializer of the whole shape: pos_embed."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Sub", ["x", "r"], ["s"]),  # add
        helper.make_node("Div", ["s", "half"], ["d"]),  # free: a setting
        helper.make_node("Mul", ["d", "gamma"], ["g"]),  # scale: 3 weights
        helper.make_node("Add", ["g", "table"], ["p"]),  # pos_embed: 3 x 8 x 8
        helper.make_node("Mul", ["p", "r"], ["y"]),  # mul
    ]
    inits = [floats("half", 0.5), init("gamma", 3, 1, 1), init("table", 1, 3, 8, 8)]
    a = analyze(save(model(nodes, inits=inits)))
    assert [la.op for la in a.layers] == ["relu", "add", "scale", "pos_embed", "mul"]
    assert a.totals()["params"] == 3 + 192 and a.totals()["macs"] == 0
    assert a.complete


def test_squeeze_excitation(save):
    """GlobalAveragePool -> 1x1 convs -> HardSigmoid -> Mul broadcasting [1, C, 1, 1]."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"]),
        helper.make_node("Conv", ["p", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["e"]),
        helper.make_node("HardSigmoid", ["e"], ["s"]),
        helper.make_node("Mul", ["x", "s"], ["y"]),
    ]
    a = analyze(
        save(model(nodes, shape=(1, 8, 6, 6), inits=[init("w1", 2, 8, 1, 1), init("w2", 8, 2, 1, 1)]))
    )
    assert only(a) == ("mul", [8, 6, 6], 0, 0, 0, 0)
    assert a.totals()["macs"] == 16 + 16
    assert a.receptive_field().rf.size == (1, 1)  # the gate gives context, not a window


# --- pooling, resampling, padding ------------------------------------------------------------------


def test_pools(save):
    nodes = [
        helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("GlobalMaxPool", ["a"], ["y"]),
    ]
    a = analyze(save(model(nodes, shape=(1, 3, 9, 9))))
    assert [(la.op, list(la.output)) for la in a.layers] == [
        ("maxpool", [3, 5, 5]),
        ("avgpool", [3, 3, 3]),  # ceil((5 - 2) / 2) + 1
        ("gmp", [3, 1, 1]),
    ]
    assert rf(a.layers[1]) == ((5, 5), (4, 4), (1.0, 1.0))


def test_reduce_mean_over_the_map_is_global_pooling(save):
    m = model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)],
        inits=[ints("axes", [2, 3])],
        opset=18,
    )
    a = analyze(save(m))
    assert only(a)[:2] == ("gap", [3, 1, 1])


@pytest.mark.parametrize(
    "attrs, op_mode, exact",
    [
        (
            {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
            "nearest",
            True,
        ),
        ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, "bilinear", True),
        ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, "bilinear", True),
        ({"mode": "cubic", "coordinate_transformation_mode": "pytorch_half_pixel"}, "bicubic", True),
        ({"mode": "nearest"}, "nearest", False),  # ONNX's default: half_pixel, round_prefer_floor
    ],
)
def test_resize(save, attrs, op_mode, exact):
    """Resize by scales [1, 1, 2, 2]: 0 MACs; the field as torch samples where the
    coordinate mode is torch's, unknown (not guessed) where it is not."""
    m = model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)],
        inits=[floats("scales", [1, 1, 2, 2])],
    )
    a = analyze(save(m))
    la = layer(a, "upsample")
    assert (list(la.output), la.args["mode"], la.macs) == ([3, 16, 16], op_mode, 0)
    assert a.complete
    assert (la.rf is not None) == exact
    if not exact:
        assert "sampling cnnstat does not model" in la.rf_unknown


def test_resize_to_sizes(save):
    m = model(
        [helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")],
        inits=[ints("sizes", [1, 3, 12, 20])],
    )
    assert only(analyze(save(m)))[:2] == ("upsample", [3, 12, 20])


def test_pad_and_negative_pad(save):
    m = model(
        [helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")],
        inits=[ints("pads", [0, 0, 1, 2, 0, 0, 3, 4])],
    )
    a = analyze(save(m))
    assert only(a)[:2] == ("pad", [3, 12, 14])
    assert a.layers[0].args["mode"] == "reflect" and a.layers[0].rf.start == (-1.0, -2.0)
    m = model(
        [helper.make_node("Pad", ["x", "pads"], ["y"])], inits=[ints("pads", [0, 0, -1, 0, 0, 0, -2, -3])]
    )
    a = analyze(save(m))
    assert only(a)[:2] == ("crop", [3, 5, 5]) and a.layers[0].rf.start == (1.0, 0.0)


def test_depth_to_space_and_back(save):
    nodes = [
        helper.make_node("DepthToSpace", ["x"], ["d"], blocksize=2, mode="CRD"),
        helper.make_node("SpaceToDepth", ["d"], ["y"], blocksize=2),
    ]
    a = analyze(save(model(nodes, shape=(1, 8, 3, 3))))
    assert [(la.op, list(la.output)) for la in a.layers] == [
        ("pixel_shuffle", [2, 6, 6]),
        ("pixel_unshuffle", [8, 3, 3]),
    ]


# --- layout, selections and merges -------------------------------------------------------------


def test_channel_slice_split_concat(save):
    nodes = [
        helper.make_node("Slice", ["x", "st", "en", "ax"], ["s"]),  # channels 2..6
        helper.make_node("Split", ["x", "parts"], ["a", "b"], axis=1),
        helper.make_node("Concat", ["s", "a", "b"], ["y"], axis=1),
    ]
    inits = [ints("st", [2]), ints("en", [6]), ints("ax", [1]), ints("parts", [3, 5])]
    a = analyze(save(model(nodes, shape=(1, 8, 4, 4), inits=inits, opset=13)))
    assert [(la.op, list(la.output)) for la in a.layers] == [
        ("slice", [4, 4, 4]),
        ("slice", [3, 4, 4]),
        ("slice", [5, 4, 4]),
        ("concat", [12, 4, 4]),
    ]


def test_spatial_slice_is_a_crop(save):
    m = model(
        [helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])],
        inits=[ints("st", [1, 2]), ints("en", [-1, 8]), ints("ax", [2, 3])],
    )
    a = analyze(save(m))
    assert [(la.op, list(la.output)) for la in a.layers] == [("crop", [3, 6, 8]), ("crop", [3, 6, 6])]
    assert a.layers[-1].rf.start == (1.0, 2.0)


def test_tokens_and_back_to_a_map(save):
    """Conv -> [1, C, H*W] (tokens) -> transpose -> LayerNorm over C -> back -> conv: the
    field goes through the token layout."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2]),
        helper.make_node("Reshape", ["c", "s1"], ["t"]),
        helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 2, 1]),
        helper.make_node("LayerNormalization", ["tt", "g"], ["n"]),
        helper.make_node("Transpose", ["n"], ["nt"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["nt", "s2"], ["m"]),
        helper.make_node("Conv", ["m", "w2"], ["y"]),
    ]
    inits = [
        init("w", 4, 3, 2, 2),
        ints("s1", [1, 4, 16]),
        init("g", 4),
        ints("s2", [1, 4, 4, 4]),
        init("w2", 2, 4, 3, 3),
    ]
    a = analyze(save(model(nodes, inits=inits)))
    assert [la.op for la in a.layers] == ["conv", "tokens", "layernorm", "to_map", "conv"]
    assert rf(a.layers[-1]) == ((6, 6), (2, 2), (2.5, 2.5))


def test_class_token_and_take(save):
    """ViT's stem and head: patches -> tokens [1, N, D], a learned token concatenated before
    them, a learned position table added, the first token taken."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], strides=[4, 4]),  # [1, 8, 2, 2]
        helper.make_node("Reshape", ["c", "s"], ["t"]),  # [1, 8, 4]
        helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 2, 1]),  # [1, 4, 8]
        helper.make_node("Concat", ["cls", "tt"], ["cat"], axis=1),
        helper.make_node("Add", ["cat", "pos"], ["p"]),
        helper.make_node("Gather", ["p", "zero"], ["y"], axis=1),
    ]
    inits = [
        init("w", 8, 3, 4, 4),
        ints("s", [1, 8, 4]),
        init("cls", 1, 1, 8),
        init("pos", 1, 5, 8),
        ints("zero", 0),
    ]
    a = analyze(save(model(nodes, inits=inits)))
    assert [(la.op, list(la.output), la.weights) for la in a.layers] == [
        ("conv", [8, 2, 2], 8 * 48),
        ("tokens", [8, 4], 0),
        ("class_token", [8, 5], 8),
        ("pos_embed", [8, 5], 40),
        ("take", [8], 0),
    ]
    assert rf(a.layers[-1]) == ((4, 4), (4, 4), (1.5, 1.5))  # the first token's: the class token


def test_heads_split_and_merged(save):
    """[1, N, 3D] -> q, k, v (channel slices) -> heads -> attention -> back: the q, k, v
    and head splits are views of the projection's channels."""
    d, n, h = 8, 5, 2
    nodes = [
        helper.make_node("MatMul", ["x", "wqkv"], ["qkv"]),
        helper.make_node("Reshape", ["qkv", "s5"], ["r"]),  # [1, N, 3, h, d/h]
        helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 3, 1, 4]),  # [3, 1, h, N, d/h]
        helper.make_node("Gather", ["t", "i0"], ["q"], axis=0),
        helper.make_node("Gather", ["t", "i1"], ["k"], axis=0),
        helper.make_node("Gather", ["t", "i2"], ["v"], axis=0),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"]),
        helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ot", "s3"], ["m"]),
        helper.make_node("MatMul", ["m", "wo"], ["y"]),
    ]
    inits = [
        init("wqkv", d, 3 * d),
        ints("s5", [1, n, 3, h, d // h]),
        ints("i0", 0),
        ints("i1", 1),
        ints("i2", 2),
        ints("s3", [1, n, d]),
        init("wo", d, d),
    ]
    a = analyze(save(model(nodes, shape=(1, n, d), inits=inits)))
    assert [la.op for la in a.layers] == [
        "linear",
        "slice",
        "slice",
        "slice",
        "matmul",
        "softmax",
        "matmul",
        "linear",
    ]
    assert a.totals()["macs"] == n * d * 3 * d + 2 * n * n * d + n * d * d  # cnnstat's attention op
    assert a.totals()["params"] == 4 * d * d and a.complete


def test_shared_initializers_count_once(save):
    """Two convs reading one weight (and a bias shared through Identity, as exporters
    deduplicate equal tensors): counted once."""
    nodes = [
        helper.make_node("Identity", ["b"], ["b2"]),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c", "w", "b2"], ["y"], pads=[1, 1, 1, 1]),
    ]
    a = analyze(save(model(nodes, shape=(1, 4, 6, 6), inits=[init("w", 4, 4, 3, 3), init("b", 4)])))
    assert a.totals()["params"] == 4 * 4 * 9 + 4
    assert a.totals()["macs"] == 2 * 4 * 36 * 36
    assert [(la.weights, la.biases) for la in a.layers] == [(144, 4), (0, 0)]


def test_shape_tensors_and_scalars_are_not_parameters(save):
    """A reshape's int64 shape (an initializer, or a Constant node, or computed from Shape),
    a float scalar: settings, not parameters; unused initializers are not counted."""
    nodes = [
        helper.make_node(
            "Constant", [], ["s"], value=numpy_helper.from_array(np.array([1, -1], dtype=np.int64))
        ),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Reshape", ["x", "shape"], ["x2"]),
        helper.make_node("Mul", ["x2", "scale"], ["m"]),
        helper.make_node("Reshape", ["m", "s"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["y"]),
    ]
    inits = [floats("scale", [0.125]), init("w", 12, 2), init("unused", 100)]
    a = analyze(save(model(nodes, shape=(1, 3, 2, 2), inits=inits)))
    assert [la.op for la in a.layers] == ["flatten", "fc"]
    assert a.totals()["params"] == 24
    assert a.to_dict()["onnx"]["unused_initializers"] == 2  # the scalar and the unused tensor


def test_constant_nodes_as_weights_and_as_settings(save):
    """A weight held in a Constant node is a weight (counted); Constant nodes elsewhere are
    settings: torch writes InstanceNorm2d(affine=False)'s ones and zeros so (not counted)."""

    def constant(name, value):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))

    nodes = [
        constant("w", np.arange(1, 4 * 3 * 9 + 1, dtype=np.float32).reshape(4, 3, 3, 3)),
        constant("b", np.arange(4, dtype=np.float32)),
        constant("one", np.ones(4, dtype=np.float32)),
        constant("zero", np.zeros(4, dtype=np.float32)),
        helper.make_node("Conv", ["x", "w", "b"], ["c"]),
        helper.make_node("InstanceNormalization", ["c", "one", "zero"], ["y"]),
    ]
    a = analyze(save(model(nodes)))
    assert [(la.op, la.weights, la.biases) for la in a.layers] == [("conv", 108, 4), ("instancenorm", 0, 0)]
    assert a.layers[1].args["affine"] is False


def test_pixel_shuffles_written_as_reshapes(save):
    """torch exports pixel_unshuffle as reshape -> transpose -> reshape: one layer."""
    nodes = [
        helper.make_node("Reshape", ["x", "s6"], ["r"]),  # [1, C, H/2, 2, W/2, 2]
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 1, 3, 5, 2, 4]),
        helper.make_node("Reshape", ["t", "s4"], ["u"]),  # [1, 4C, H/2, W/2]
        helper.make_node("Conv", ["u", "w"], ["y"]),
    ]
    inits = [ints("s6", [1, 3, 4, 2, 4, 2]), ints("s4", [1, 12, 4, 4]), init("w", 2, 12, 1, 1)]
    a = analyze(save(model(nodes, inits=inits)))
    assert [(la.op, list(la.output)) for la in a.layers] == [
        ("pixel_unshuffle", [12, 4, 4]),
        ("conv", [2, 4, 4]),
    ]
    assert rf(a.layers[-1]) == ((2, 2), (2, 2), (0.5, 0.5))


# --- what cnnstat cannot follow: never a wrong total ----------------------------------------------


UNKNOWN = [
    helper.make_node("Conv", ["x", "w"], ["c"]),
    helper.make_node("Erf", ["c"], ["e"]),
    helper.make_node("Einsum", ["e", "t"], ["z"], equation="bchw,hw->bchw"),
    helper.make_node("Conv", ["z", "w2"], ["y"]),
]
UNKNOWN_INITS = [init("w", 4, 3, 3, 3), init("t", 6, 6), init("w2", 2, 4, 1, 1)]


def test_unknown_operators_are_opaque_layers(save, run):
    path = save(model(UNKNOWN, inits=UNKNOWN_INITS))
    a = analyze(path)
    assert [la.op for la in a.layers] == ["conv", "opaque", "opaque", "conv"]
    assert a.totals()["params"] == 108 + 36 + 8  # every initializer, the einsum's too
    assert a.layers[2].weights == 36 and a.layers[2].kind == "fc"
    assert not a.complete and [i["call"] for i in a.incomplete()] == ["Erf", "Einsum"]
    assert a.totals()["macs"] == 4 * 36 * 27 + 2 * 36 * 4  # the known part: a lower bound
    assert a.layers[0].rf is not None and a.layers[-1].rf is None
    assert "Erf" in a.layers[-1].rf_unknown
    out = run("params", path)
    assert out.exit_code == 0
    assert "≥" in out.stdout and "unsupported" in out.stderr and "Erf" in out.stderr
    d = json.loads(run("params", path, "--format", "json").stdout)
    assert d["complete"] is False and [u["call"] for u in d["onnx"]["unsupported"]] == ["Erf", "Einsum"]
    strict = run("params", path, "--strict")
    assert strict.exit_code == 2 and "--strict" in strict.stderr and "Traceback" not in strict.output
    for mode in ("tile", "frame"):  # flops reads the ONNX file through frame_graph: --strict holds there too
        strict = run("flops", path, "--mode", mode, "--resolution", "8x8", "--strict")
        assert strict.exit_code == 2 and "unsupported (--strict)" in strict.stderr, strict.output
    assert run("flops", path).exit_code == 0


def test_initializers_read_by_nodes_on_constants_alone(save):
    """A weight computed from other initializers (w = a x b, a matrix product of constants):
    the initializers count, the product's MACs are in no layer (flagged unknown)."""
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["w"]),
        helper.make_node("Reshape", ["w", "s"], ["w4"]),
        helper.make_node("Conv", ["x", "w4"], ["y"]),
    ]
    inits = [init("a", 8, 2), init("b", 2, 27), ints("s", [8, 3, 3, 3])]
    a = analyze(save(model(nodes, inits=inits)))
    assert a.totals()["params"] == 16 + 54
    assert not a.complete
    assert {la.op for la in a.layers} == {"unattributed", "opaque"}


# --- inputs: symbolic dims, batch, layout ------------------------------------------------------------


def dynamic_conv():
    return model(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        shape=("N", 3, "H", "W"),
        inits=[init("w", 8, 3, 3, 3)],
    )


def test_symbolic_dims_bound_by_input_and_batch(save, run):
    path = save(dynamic_conv())
    with pytest.raises(CnnstatError, match=r"symbolic dimensions \('H', 'W'\): give --input"):
        analyze(path)
    a = analyze(path, input=(3, 32, 48), batch=4)
    assert a.graph.input == (3, 32, 48)
    assert a.totals()["macs"] == 4 * 8 * 32 * 48 * 27
    d = json.loads(run("params", path, "--input", "3x16x16", "--batch", "2", "--format", "json").stdout)
    assert d["totals"]["macs"] == 2 * 8 * 256 * 27 and d["batch"] == 2
    d = json.loads(run("params", path, "--resolution", "20x10", "--format", "json").stdout)
    assert d["input"] == [3, 10, 20]


def test_fixed_inputs(save, run):
    path = save(model([helper.make_node("Relu", ["x"], ["y"])], shape=(1, 3, 8, 8)))
    out = run("params", path, "--input", "3x16x16")
    assert out.exit_code == 2 and "fixed at 3x8x8" in out.stderr and "dynamic axes" in out.stderr
    out = run("params", path, "--input", "1x3x8x8")
    assert out.exit_code == 2 and "4 dimensions" in out.stderr
    batch8 = save(model([helper.make_node("Relu", ["x"], ["y"])], shape=(8, 3, 8, 8)))
    out = run("params", batch8)
    assert out.exit_code == 2 and "fixed batch of 8" in out.stderr


def test_channels_last_input(save):
    """A TensorFlow export: NHWC input, transposed to NCHW first. cnnstat's input is 3 x H x W
    and the field is the image's."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "w"], ["y"], strides=[2, 2]),
    ]
    a = analyze(save(model(nodes, shape=(1, 16, 12, 3), inits=[init("w", 4, 3, 3, 3)])))
    assert a.graph.input == (3, 16, 12)
    assert only(a)[:2] == ("conv", [4, 7, 5]) and rf(a.layers[0]) == ((3, 3), (2, 2), (1.0, 1.0))


def test_unknown_shape_names_the_tensor(save):
    """NonZero's output size depends on the values: no shape at this input."""
    nodes = [helper.make_node("NonZero", ["x"], ["n"]), helper.make_node("Relu", ["n"], ["y"])]
    with pytest.raises(
        CnnstatError,
        match=r"the shape of tensor 'n' \(output of NonZero node .*cannot be inferred at input 3x8x8",
    ):
        analyze(save(model(nodes)))


# --- opsets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", sorted({11, 12, 13, 17, 18, NEWEST}))
def test_opsets(save, opset):
    """The same network at every opset: axes as attributes before 13 (Squeeze, Split) and 18
    (ReduceMean), as inputs after."""
    early = opset < 13
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node(
            "Split",
            ["c"] + ([] if early else ["parts"]),
            ["a", "b2"],
            axis=1,
            **({"split": [2, 2]} if early else {}),
        ),
        helper.make_node("Add", ["a", "b2"], ["s"]),
        helper.make_node(
            "ReduceMean",
            ["s"] + ([] if opset < 18 else ["axes"]),
            ["r"],
            **({"axes": [2, 3]} if opset < 18 else {}),
        ),
        helper.make_node(
            "Squeeze", ["r"] + ([] if early else ["sq"]), ["f"], **({"axes": [2, 3]} if early else {})
        ),
        helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1),
    ]
    inits = [
        init("w", 4, 3, 3, 3),
        init("b", 4),
        init("fw", 5, 2),
        ints("parts", [2, 2]),
        ints("axes", [2, 3]),
        ints("sq", [2, 3]),
    ]
    a = analyze(save(model(nodes, inits=inits, opset=opset)))
    assert [la.op for la in a.layers] == ["conv", "slice", "slice", "add", "gap", "flatten", "fc"]
    assert a.totals()["params"] == 108 + 4 + 10 and a.totals()["macs"] == 4 * 64 * 27 + 10
    assert a.complete and a.to_dict()["onnx"]["opset"] == opset


# --- files ----------------------------------------------------------------------------------------------


def test_external_data_is_never_read(tmp_path):
    """Weights in an external file: only their dims are read (the file may even be gone)."""
    m = model([helper.make_node("Conv", ["x", "w"], ["y"])], inits=[init("w", 64, 3, 3, 3)])
    path = tmp_path / "big.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, location="big.data", size_threshold=0)
    (tmp_path / "big.data").unlink()
    a = analyze(str(path))
    assert a.totals()["params"] == 64 * 27


def test_weights_are_never_read(tmp_path):
    """The values of a large initializer are seeked over, not read: the model cnnstat parses
    holds its dims alone (small ones, shapes and settings, keep their values)."""
    from cnnstat.onnx.read import read_model

    m = model(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Reshape", ["c", "s"], ["y"])],
        inits=[init("w", 512, 3, 25, 25), ints("s", [1, -1])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    assert path.stat().st_size > 3_000_000
    proto = read_model(str(path))
    assert proto.ByteSize() < 1000
    w, s = proto.graph.initializer
    assert list(w.dims) == [512, 3, 25, 25] and not w.raw_data and not w.float_data
    assert numpy_helper.to_array(s).tolist() == [1, -1]
    a = analyze(str(path))
    assert a.totals()["params"] == 512 * 3 * 625
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut inside the weights' bytes
    with pytest.raises(CnnstatError, match="not an ONNX model"):
        analyze(str(path))


def test_text_syntax(tmp_path):
    """An .onnx file in ONNX's text syntax (onnx.parser), as the docs' examples are written."""
    path = tmp_path / "tiny.onnx"
    path.write_text(
        textwrap.dedent(
            """\
            <ir_version: 8, opset_import: ["" : 17]>
            tiny (float[1, 1, 8, 8] image) => (float[1, 2, 4, 4] out)
            <float[2, 1, 2, 2] w = {1, 2, 3, 4, 5, 6, 7, 8}, float[2] b = {0.5, -0.5}>
            {
                conv = Conv <strides = [2, 2]> (image, w, b)
                out = Relu (conv)
            }
            """
        )
    )
    a = analyze(str(path))
    assert a.totals()["params"] == 8 + 2 and a.totals()["macs"] == 2 * 16 * 4


def bad_models():
    """(name, bytes or a model, the message's telling part)."""
    good = model([helper.make_node("Relu", ["x"], ["y"])])
    data = good.SerializeToString()
    no_opset = onnx.ModelProto()
    no_opset.CopyFrom(good)
    del no_opset.opset_import[:]
    cycle = model(
        [helper.make_node("Relu", ["z"], ["w"]), helper.make_node("Add", ["x", "w"], ["z"])], out="w"
    )
    dangling = model([helper.make_node("Add", ["x", "ghost"], ["y"])])
    twice = model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["y"])])
    two_inputs = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["x", "x2"], ["y"])],
            "g",
            [helper.make_tensor_value_info(n, F, [1, 3]) for n in ("x", "x2")],
            [helper.make_tensor_value_info("y", F, None)],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    return [
        ("garbage", b"\xff\xfe not a model at all \x00\x01", "not an ONNX model"),
        ("truncated", data[: len(data) // 2], "not an ONNX model"),
        ("empty", b"", "not an ONNX model (no graph)"),
        ("text", b"<ir_version: 8> this is no model", "ONNX text syntax error"),
        ("no_opset", no_opset, "imports no opset"),
        ("old_opset", model([helper.make_node("Relu", ["x"], ["y"])], opset=9), "opset 9 is not read"),
        (
            "future_opset",
            model([helper.make_node("Relu", ["x"], ["y"])], opset=NEWEST + 1),
            f"opset {NEWEST + 1} is not read",
        ),
        ("cycle", cycle, "cycle"),
        ("dangling", dangling, "reads 'ghost', which no node, input or initializer makes"),
        ("twice", twice, "tensor 'y' is made twice"),
        ("two_inputs", two_inputs, "takes 2 inputs"),
    ]


@pytest.mark.parametrize("name, content, message", bad_models(), ids=[b[0] for b in bad_models()])
def test_bad_files_exit_2_with_one_message(tmp_path, run, name, content, message):
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(content if isinstance(content, bytes) else content.SerializeToString())
    out = run("params", path)
    assert out.exit_code == 2, out.output
    assert message in out.stderr
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.output


def test_mutated_models_never_crash(tmp_path):
    """Models with random edits (inputs rewired, attributes, dims, operators, opsets, bytes
    flipped, truncated): each analyses, or is refused with one CnnstatError."""
    import random

    rng = random.Random(14)
    seeds = [model(UNKNOWN, inits=UNKNOWN_INITS), dynamic_conv()]
    path = str(tmp_path / "m.onnx")
    for _ in range(150):
        m = onnx.ModelProto()
        m.CopyFrom(rng.choice(seeds))
        g = m.graph
        n = rng.choice(g.node)
        r = rng.random()
        if r < 0.3 and n.input:
            names = [o for x in g.node for o in x.output] + [i.name for i in g.initializer] + ["", "ghost"]
            n.input[rng.randrange(len(n.input))] = rng.choice(names)
        elif r < 0.5:
            n.op_type = rng.choice(
                ["Conv", "Relu", "Reshape", "Transpose", "Gemm", "MatMul", "Resize", "Pad", "X"]
            )
        elif r < 0.7 and g.initializer:
            t = rng.choice(g.initializer)
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 5, 10**6])
        else:
            m.opset_import[0].version = rng.choice([11, 13, 18, NEWEST])
        data = bytearray(m.SerializeToString())
        if rng.random() < 0.3:
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
        with open(path, "wb") as f:
            f.write(bytes(data))
        try:
            analyze(path, input=rng.choice([None, (3, 8, 8), (3, 16, 12)]))
        except CnnstatError:
            pass


def test_not_a_regular_file(tmp_path, run):
    (tmp_path / "dir.onnx").mkdir()
    out = run("params", tmp_path / "dir.onnx")
    assert out.exit_code == 2 and "dir.onnx is a directory: only regular files are read" in out.stderr
    out = run("params", tmp_path / "missing.onnx")
    assert out.exit_code == 2 and "no such ONNX model" in out.stderr


def test_size_limit(tmp_path, monkeypatch):
    from cnnstat.onnx import read

    path = tmp_path / "m.onnx"
    onnx.save(model([helper.make_node("Relu", ["x"], ["y"])]), str(path))
    text = tmp_path / "t.onnx"
    text.write_text(onnx.printer.to_text(model([helper.make_node("Relu", ["x"], ["y"])])))
    monkeypatch.setattr(read, "MAX_BYTES", 10)
    with pytest.raises(CnnstatError, match="larger than the limit of 10 bytes"):  # cnnstat.files' bound
        read.read_model(str(text))
    with pytest.raises(
        CnnstatError, match="without its weights is larger than 10 bytes"
    ):  # skim.py bounds it
        read.read_model(str(path))


# --- the commands --------------------------------------------------------------------------------------


def test_every_command_takes_an_onnx_model(save, run):
    path = save(dynamic_conv(), "net.onnx")
    for args in (
        ("params", path, "--input", "3x32x32"),
        ("summary", path, "--input", "3x32x32"),
        ("rf", path, "--input", "3x32x32"),
        ("memory", path, "--input", "3x32x32"),
        ("flops", path, "--input", "3x32x32"),
        ("flops", path, "--mode", "frame", "--resolution", "64x48"),
    ):
        out = run(*args)
        assert out.exit_code == 0, (args, out.output)
    frame = json.loads(
        run("flops", path, "--mode", "frame", "--resolution", "64x48", "--format", "json").stdout
    )[0]
    assert frame["macs_per_frame"] == 8 * 64 * 48 * 27
    tile = json.loads(
        run("flops", path, "--input", "3x32x32", "--resolution", "64x64", "--format", "json").stdout
    )[0]
    assert tile["tiles"] == 4 and tile["macs_per_image"] == 8 * 32 * 32 * 27


def test_frame_mode_needs_dynamic_axes(save, run):
    path = save(model([helper.make_node("Relu", ["x"], ["y"])]))
    out = run("flops", path, "--mode", "frame")
    assert out.exit_code == 2 and "export it with dynamic height and width" in out.stderr


def test_budget_check(save, run, tmp_path):
    save(dynamic_conv(), "net.onnx")
    (tmp_path / "budget.toml").write_text(
        '[[budget]]\nmodel = "./net.onnx"\ninput = "3x32x32"\nmax_params = "1k"\nmax_macs = "1M"\n'
    )
    out = run("check", tmp_path / "budget.toml")
    assert out.exit_code == 0, out.output


def test_onnx_stays_off_the_spec_path():
    code = (
        "import sys; from cnnstat.cli import cli; from click.testing import CliRunner; "
        "r = CliRunner().invoke(cli, ['params', 'lenet5']); assert r.exit_code == 0; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'google')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- parity: specs and torchvision models through torch.onnx.export -------------------------------------


try:
    import torch
except ImportError:  # the onnx.helper tests above need no torch
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch (the torch extra)")

MIXED = """
cnnstat: 1
name: mixed
input: [3, 32, 32]
layers:
  - conv: {out: 8, k: 3, p: 1, name: stem}
  - bn
  - relu6
  - pad: {p: [1, 2], mode: reflect}
  - dwconv: {k: 3, s: 2}
  - conv_transpose: {out: 6, k: 4, s: 2, p: 1}
  - upsample: {scale: 2, mode: bilinear}
  - maxpool: {k: 2}
  - upsample: {scale: 2}
  - pixel_unshuffle: {factor: 2}
  - pixel_shuffle: {factor: 2}
  - add:
      a: [{conv: {out: 6, k: 1}}, hardswish]
      b: identity
  - concat:
      a: [avgpool: {k: 3, s: 1, p: 1}]
      b: [{conv: {out: 4, k: 3, p: 1, d: 1}}, sigmoid]
  - groupnorm: {groups: 2}
  - leaky_relu: {slope: 0.1}
  - conv: {out: 16, k: 3, s: 2}
  - gap
  - flatten
  - fc: {out: 10}
"""

VIT = """
cnnstat: 1
name: tiny_vit
input: [3, 32, 32]
layers:
  - conv: {name: patch, out: 32, k: 8, s: 8}
  - tokens
  - class_token
  - pos_embed
  - add:
      attn: [layernorm: {eps: 1.0e-6}, attention: {heads: 4}]
      skip: identity
  - add:
      mlp: [layernorm, linear: {out: 64}, gelu, linear: {out: 32}]
      skip: identity
  - layernorm
  - take: {index: 0}
  - linear: {out: 10}
"""


def export(module, shape, path, dynamic=None, opset=None):
    """torch.onnx.export (TorchScript-based: the dynamo exporter needs onnxscript) of a module
    whose every parameter and buffer is distinct (the exporter merges equal tensors into one
    initializer), batch-norms kept (no constant folding)."""
    module = module.eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    axes = {0: "batch", **({2: "height", 3: "width"} if dynamic else {})}
    torch.onnx.export(
        module,
        (torch.randn(1, *shape),),
        str(path),
        dynamo=False,
        do_constant_folding=False,
        input_names=["input"],
        dynamic_axes={"input": axes},
        **({"opset_version": opset} if opset else {}),
    )
    return str(path)


def rf_tuple(a):
    la = a.receptive_field()
    return None if la is None else (la.rf.size, la.rf.jump, la.rf.start)


def same_as_spec(spec, shape, path):
    """The ONNX export of a spec analyses as the spec: params, buffers, MACs, field."""
    from cnnstat.torch import build as torch_build

    want = Analysis(build(spec, shape))
    got = analyze(export(torch_build(spec, input=shape), shape, path))
    assert got.complete, got.incomplete_text()
    keys = ("params", "weights", "biases", "buffers", "macs")
    assert {k: got.totals()[k] for k in keys} == {k: want.totals()[k] for k in keys}
    assert rf_tuple(got) == rf_tuple(want)
    return got


@needs_torch
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "name, shape", [("lenet5", None), ("resnet18", (3, 64, 64)), ("mobilenet_v2", (3, 64, 64))]
)
def test_zoo_specs_through_onnx(tmp_path, name, shape):
    from cnnstat.zoo import get

    spec = get(name)
    same_as_spec(spec, shape or tuple(spec.input), tmp_path / f"{name}.onnx")


@needs_torch
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("text", [MIXED, VIT], ids=["mixed", "vit"])
def test_specs_through_onnx(tmp_path, text):
    spec = spec_from_text(text)
    same_as_spec(spec, tuple(spec.input), tmp_path / "m.onnx")
    assert analyze_text(text).totals()["macs"] > 0


@needs_torch
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "name, params, gmacs, rf_size",
    [
        ("resnet18", 11_689_512, 1.814, 435),
        ("mobilenet_v3_large", 5_483_032, 0.217, 595),
        ("efficientnet_b0", 5_288_548, 0.386, 851),
    ],
)
def test_torchvision_published_figures(tmp_path, name, params, gmacs, rf_size):
    """Exported at 64 x 64 with dynamic height and width, analysed at 224 x 224: torchvision's
    published num_params and _ops (GMACs), and the zoo spec's receptive field."""
    import torchvision

    path = export(torchvision.models.get_model(name), (3, 64, 64), tmp_path / f"{name}.onnx", dynamic=True)
    a = analyze(path, input=(3, 224, 224))
    assert a.complete
    assert a.totals()["params"] == params
    assert round(a.totals()["macs"] / 1e9, 3) == gmacs
    assert a.receptive_field().rf.size == (rf_size, rf_size)


def test_onnx_json_follows_the_schema_and_compare_reads_onnx(save, run, tmp_path):
    """An ONNX model's JSON validates against the shipped schema; compare and a budget read it."""
    from test_schema import validate

    w = init("w", 4, 3, 3, 3)
    path = save(model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], inits=[w]))
    doc = json.loads(run("params", path, "--format", "json").stdout)
    validate(doc, "analysis.schema.json")
    assert doc["totals"]["params"] == 4 * 3 * 9
    rows = json.loads(run("compare", path, "lenet5", "--format", "json").stdout)
    assert rows[0]["params"] == 108 and rows[0]["macs"] == 4 * 8 * 8 * 27
    (tmp_path / "cnnstat.toml").write_text('[[budget]]\nmodel = "m0.onnx"\nmax_params = 200\n')
    import os

    cwd = os.getcwd()
    os.chdir("/")
    try:
        res = run("check", str(tmp_path / "cnnstat.toml"))
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
