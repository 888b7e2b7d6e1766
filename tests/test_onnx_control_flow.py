"""Control flow in ONNX models (If, Loop, Scan): never a dropped parameter, never a silent
cost. Each is an opaque layer holding every parameter its subgraphs hold or read (both of an
If's branches, nested subgraphs too), its MACs unknown (the totals a lower bound, the message
naming the node), the receptive field unknown past it. Models written with onnx.helper."""

from __future__ import annotations

import json

import pytest

onnx = pytest.importorskip("onnx")

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnstat.onnx import analyze  # noqa: E402

F = TensorProto.FLOAT


def w(name, *dims, start=1.0):
    return numpy_helper.from_array(
        np.arange(start, start + np.prod(dims), dtype=np.float32).reshape(dims), name
    )


def branch(name, weight, out):
    """A subgraph: a 1x1 conv of the outer 'c' by its own initializer ``weight``."""
    return helper.make_graph(
        [helper.make_node("Conv", ["c", weight.name], [out])],
        name,
        [],
        [helper.make_tensor_value_info(out, F, [1, 2, 6, 6])],
        initializer=[weight],
    )


def if_model():
    """conv (4x3x3x3 = 108 weights) -> If(cond) {then: conv 2x4 (8), else: conv 2x4 (8) and a
    Constant node holding a 2x2 float tensor} -> conv 1x2 (2) outside."""
    other = branch("else", w("we", 2, 4, 1, 1, start=100.0), "eo")
    other.node.append(
        helper.make_node(
            "Constant", [], ["k"], value=numpy_helper.from_array(np.ones((2, 2), np.float32) * 3)
        )
    )
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c"]),
        helper.make_node(
            "If",
            ["cond"],
            ["i"],
            name="gate",
            then_branch=branch("then", w("wt", 2, 4, 1, 1, start=50.0), "to"),
            else_branch=other,
        ),
        helper.make_node("Conv", ["i", "w1"], ["y"]),
    ]
    inits = [
        w("w0", 4, 3, 3, 3),
        w("w1", 1, 2, 1, 1, start=500.0),
        numpy_helper.from_array(np.array(True), "cond"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", F, None)],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_if_counts_both_branches_and_says_so(tmp_path, run):
    path = str(tmp_path / "if.onnx")
    onnx.save(if_model(), path)
    a = analyze(path)
    assert [la.op for la in a.layers] == ["conv", "opaque", "conv"]
    gate = a.layers[1]
    assert gate.name == "gate" and gate.weights == 8 + 8 + 4  # both branches, the Constant's 2x2 too
    assert a.totals()["params"] == 108 + 20 + 2
    assert not a.complete and a.totals()["macs"] == 36 * 108 + 36 * 2  # the known part: a lower bound
    assert "control flow" in gate.unknown and "both branches" in gate.unknown
    assert a.layers[0].rf is not None and a.layers[2].rf is None  # unknown past the If
    out = run("params", path)
    assert out.exit_code == 0 and "≥" in out.stdout and "gate" in out.stderr and "If" in out.stderr
    doc = json.loads(run("params", path, "--format", "json").stdout)
    assert doc["onnx"]["unsupported"][0]["call"] == "If" and doc["complete"] is False
    assert run("params", path, "--strict").exit_code == 2


def test_loop_and_scan_count_their_bodies_once(tmp_path):
    """A Loop whose body multiplies by an outer weight (read from the enclosing scope) and
    adds its own bias; a Scan whose body holds a weight of its own."""
    d = 4
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["h", "wl"], ["m"]),
            helper.make_node("Add", ["m", "bias"], ["h_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("iter", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h", F, [1, d]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_out", F, [1, d]),
        ],
        initializer=[w("bias", 1, d, start=7.0)],
    )
    scan_body = helper.make_graph(
        [helper.make_node("Add", ["s", "row"], ["s2"]), helper.make_node("Mul", ["s2", "ws"], ["s_out"])],
        "scan",
        [helper.make_tensor_value_info("s", F, [d]), helper.make_tensor_value_info("row", F, [d])],
        [helper.make_tensor_value_info("s_out", F, [d])],
        initializer=[w("ws", d, start=30.0)],
    )
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Loop", ["trips", "", "f"], ["h_final"], name="loop", body=body),
        helper.make_node("Scan", ["zero", "h_final"], ["y"], name="scan", body=scan_body, num_scan_inputs=1),
    ]
    inits = [
        w("wl", d, d, start=11.0),
        numpy_helper.from_array(np.array(3, np.int64), "trips"),
        numpy_helper.from_array(np.zeros(d, np.float32), "zero"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, [1, d, 1, 1])],
        [helper.make_tensor_value_info("y", F, None)],
        initializer=inits,
    )
    path = str(tmp_path / "loop.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    a = analyze(path)
    assert [la.op for la in a.layers] == ["flatten", "opaque", "opaque"]
    # the outer weight read in the body, the body's bias, ws, and the scan's initial state (an
    # initializer of floats read as data: a parameter, as everywhere)
    assert a.totals()["params"] == d * d + d + d + d
    loop, scan = a.layers[1], a.layers[2]
    assert (loop.weights, loop.biases) == (d * d, d) and scan.weights == d + d
    assert loop.output == (d,) and scan.output == (d,)  # the carried states keep their dims
    assert "loop body" in loop.unknown and "scan body" in scan.unknown
    assert not a.complete and a.totals()["macs"] == 0


def test_an_if_on_a_constant_runs_its_branch(tmp_path):
    """torch's LocalResponseNorm export squeezes a 5-D tensor in an If on its shape (a
    condition known at export): the branch taken runs in place, the other holds nothing."""
    torch = pytest.importorskip("torch")
    import warnings

    from cnnstat.torch import analyze as torch_analyze

    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.LocalResponseNorm(5), torch.nn.Conv2d(8, 4, 1))
    path = str(tmp_path / "lrn.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.rand(1, 3, 12, 12),), path, dynamo=False, do_constant_folding=False)
    a = analyze(path)
    assert a.complete and not a.graph.unsupported and "opaque" not in [la.op for la in a.layers]
    want = torch_analyze(m, input=(3, 12, 12))
    assert a.totals()["params"] == want.totals()["params"] == sum(p.numel() for p in m.parameters())
    assert a.totals()["macs"] == want.totals()["macs"] == 8 * 100 * 27 + 4 * 100 * 8  # by hand
    assert a.receptive_field().rf.size == want.receptive_field().rf.size == (3, 3)
