"""Quantized ONNX models (cnnstat/onnx/quant.py): QLinearConv, ConvInteger, QLinearMatMul,
MatMulInteger and QuantizeLinear/DequantizeLinear pairs, written here with onnx.helper.

By hand: parameters are the quantized weights (and int32 biases), never the scales and zero
points; MACs those of the float operation (an int8 multiply-accumulate is one MAC); weight
bytes as the file stores them (int8: 1 byte, int32 bias: 4), whatever --dtype says."""

from __future__ import annotations

import json

import pytest

onnx = pytest.importorskip("onnx")

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnstat.onnx import analyze  # noqa: E402
from helpers import onnx_saver  # noqa: E402


def arr(name, values, dtype):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def qmodel(nodes, inits, shape=(1, 3, 8, 8), in_type=TensorProto.UINT8, opset=17):
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("x", in_type, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.fixture
def save(tmp_path):
    return onnx_saver(tmp_path, "q")


def settings():
    """Scales and zero points: one element each (per tensor), or per output channel."""
    return [
        arr("xs", 0.1, np.float32),
        arr("xz", 128, np.uint8),
        arr("ws", np.linspace(0.01, 0.04, 4), np.float32),  # per channel: 4 floats, still settings
        arr("wz", np.zeros(4), np.int8),
        arr("ys", 0.2, np.float32),
        arr("yz", 0, np.uint8),
    ]


W = np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3) % 100 - 50  # int8 weights


def test_qlinearconv_counts_int8_weights_at_one_byte(save, run):
    inits = [arr("w", W, np.int8), arr("b", np.arange(4), np.int32), *settings()]
    node = helper.make_node(
        "QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["q"], pads=[1, 1, 1, 1]
    )
    deq = helper.make_node("DequantizeLinear", ["q", "ys", "yz"], ["y"])
    path = save(qmodel([node, deq], inits))
    a = analyze(path)
    assert a.complete and [la.op for la in a.layers] == ["conv"]
    t = a.totals()
    assert (t["weights"], t["biases"]) == (108, 4)  # the scales and zero points are no parameters
    assert t["macs"] == 8 * 8 * 108  # as the float convolution: one int8 MAC is one MAC
    assert t["weight_bytes"] == 108 and t["param_bytes"] == 108 + 4 * 4  # int8, int32 bias
    assert a.by_kind()["conv"]["param_bytes"] == 124 and a.counts(a.layers[0])["param_bytes"] == 124
    assert analyze(path, dtype="fp16").totals()["param_bytes"] == 124  # as stored, whatever --dtype
    doc = json.loads(run("params", path, "--format", "json").stdout)
    assert doc["onnx"]["integer_weight_layers"] == 1 and doc["totals"]["param_bytes"] == 124


def test_qdq_model_is_the_float_model_with_int8_weights(save):
    """QuantizeLinear/DequantizeLinear on the activations, DequantizeLinear on the int8
    weight (per-channel scale) and the int32 bias: one conv, then a float Gemm layer."""
    inits = [
        arr("w", W, np.int8),
        arr("b", np.arange(4), np.int32),
        arr("bs", np.full(4, 0.001), np.float32),
        arr("fc", np.arange(40, dtype=np.float32).reshape(10, 4) + 1, np.float32),
        *settings(),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "bs"], ["bf"]),
        helper.make_node("Conv", ["xf", "wf", "bf"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["cf"]),
        helper.make_node("GlobalAveragePool", ["cf"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    a = analyze(save(qmodel(nodes, inits, opset=13)))
    assert a.complete and [la.op for la in a.layers] == ["conv", "gap", "flatten", "fc"]
    t = a.totals()
    assert t["params"] == 108 + 4 + 40
    assert t["macs"] == 64 * 108 + 40
    assert a.layers[0].biases == 4
    # the conv as stored (int8 weights, int32 bias), the float Gemm at the dtype asked for
    assert t["param_bytes"] == (108 + 16) + 40 * 4
    assert analyze(save(qmodel(nodes, inits, opset=13)), dtype="fp16").totals()["param_bytes"] == 124 + 80


def test_conv_integer_and_matmul_integer(save):
    inits = [
        arr("w", W, np.int8),
        arr("xz", 128, np.uint8),
        arr("m", np.arange(6 * 5).reshape(6, 5) % 7, np.int8),
    ]
    nodes = [
        helper.make_node("ConvInteger", ["x", "w", "xz"], ["c"]),  # int32 [1, 4, 6, 6]
        helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["cf"], ["t"], perm=[0, 2, 3, 1]),  # [1, 6, 6, 4]
        helper.make_node("Reshape", ["t", "shape"], ["r"]),  # [1, 24, 6]
        helper.make_node("Cast", ["r"], ["ri"], to=TensorProto.UINT8),
        helper.make_node("MatMulInteger", ["ri", "m"], ["y"]),
    ]
    inits.append(arr("shape", [1, 24, 6], np.int64))
    a = analyze(save(qmodel(nodes, inits)))
    assert a.complete, a.incomplete_text()
    assert a.totals()["params"] == 108 + 30
    assert a.totals()["macs"] == 36 * 108 + 24 * 6 * 5
    assert a.totals()["param_bytes"] == 138  # int8 weights, no bias


def test_qlinear_matmul(save):
    inits = [
        arr("as", 0.1, np.float32),
        arr("az", 0, np.uint8),
        arr("b", np.arange(8 * 3).reshape(8, 3) % 5, np.uint8),
        arr("bs", 0.1, np.float32),
        arr("bz", 0, np.uint8),
        arr("ys", 0.1, np.float32),
        arr("yz", 0, np.uint8),
    ]
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("QLinearMatMul", ["f", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"]),
    ]
    a = analyze(save(qmodel(nodes, inits, shape=(1, 8, 1, 1))))
    assert a.complete and [la.op for la in a.layers] == ["flatten", "fc"]
    assert a.totals()["params"] == 24 and a.totals()["macs"] == 24 and a.totals()["param_bytes"] == 24
