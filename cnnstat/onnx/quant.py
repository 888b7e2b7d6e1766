"""Quantized ONNX operators: read as the float operation they stand for.

``QLinearConv`` and ``ConvInteger`` are convolutions, ``QLinearMatMul`` and
``MatMulInteger`` matrix products; quantization scales and zero points are settings, not
parameters (as for ``QuantizeLinear``/``DequantizeLinear``, which are no layers). The
convention: an integer multiply-accumulate is one MAC, as a float one is. Weights keep the
type the file stores them in: a layer holding int8 weights (and an int32 bias) counts their
bytes at 1 (and 4) per value whatever ``--dtype`` says (see
:meth:`cnnstat.onnx.analysis.OnnxAnalysis.counts`).
"""

from __future__ import annotations

from cnnstat.onnx import ops as O
from cnnstat.onnx.convert import Const, Unfollowed
from cnnstat.onnx.ops import handles

# Where each operator's data, weight and bias are among its inputs.
SLOTS = {
    "QLinearConv": (0, 3, 8),
    "ConvInteger": (0, 1, None),
    "QLinearMatMul": (0, 3, None),
    "MatMulInteger": (0, 1, None),
}


def _proxy(b, node, op_type):
    """``node`` rewritten as the float operator (inputs: data, weight[, bias]), the weight
    and bias initializers parameters whatever their integer type."""
    import onnx

    data, weight, bias = SLOTS[node.op_type]
    names = [node.input[data], node.input[weight] if weight < len(node.input) else ""]
    if bias is not None and bias < len(node.input) and node.input[bias]:
        names.append(node.input[bias])
    for name in names[1:]:
        x = b.tensors.get(name)
        if isinstance(x, Const) and not (x.params or x.soft) and b.as_param(name):
            b.tensors[name] = Const(x.dims, x.value, (name,), x.soft)
    proxy = onnx.NodeProto()
    proxy.CopyFrom(node)
    proxy.op_type = op_type
    del proxy.input[:]
    proxy.input.extend(names)
    return proxy


@handles("QLinearConv", "ConvInteger")
def _qconv(b, node):
    O._conv(b, _proxy(b, node, "Conv"))


@handles("QLinearMatMul", "MatMulInteger")
def _qmatmul(b, node):
    proxy = _proxy(b, node, "MatMul")
    if not all(proxy.input):
        raise Unfollowed("an operand is absent")
    O._matmul(b, proxy)
