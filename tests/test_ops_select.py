"""subsample: every s-th position of the spatial axes (strided slicing), by hand: output sizes
ceil((in - offset) / s), receptive fields (jump x s, start + offset x jump), errors, frame mode."""

import pytest

from cnnstat.analysis import Analysis
from cnnstat.errors import SpecError
from cnnstat.ops import REGISTRY
from helpers import error_of, graph_of, last


def test_subsample_shapes_and_fields():
    layer = last("subsample: {s: 2}", "[3, 9, 10]")
    # rows 0, 2, .., 8: 5; columns 0, 2, .., 8: 5
    assert layer.output == (3, 5, 5)
    assert (layer.rf.size, layer.rf.jump, layer.rf.start) == ((1, 1), (2, 2), (0, 0))
    layer = last("subsample: {s: [2, 3], offset: [1, 2]}", "[3, 9, 10]")
    # rows 1, 3, 5, 7: 4; columns 2, 5, 8: 3
    assert layer.output == (3, 4, 3) and layer.rf.start == (1, 2) and layer.rf.jump == (2, 3)
    # x[:, :, 1:6:2] of 9 rows: rows 1, 3, 5 (size 3)
    assert last("subsample: {s: 2, offset: 1, size: [3, 2]}", "[3, 9, 10]").output == (3, 3, 2)
    # after a stride-4 convolution (start 1.5, jump 4): offset 1 step 2 -> start 5.5, jump 8
    graph = graph_of("conv: {out: 2, k: 4, s: 4}\nsubsample: {s: 2, offset: 1}", "[1, 32]")
    rf = graph.layers[-1].rf
    assert graph.layers[-1].output == (2, 4)  # units 1, 3, 5, 7 of 8
    assert (rf.size, rf.jump, rf.start) == ((4,), (8,), (5.5,))
    assert last("subsample: {s: [1, 2, 2]}", "[2, 3, 5, 6]").output == (2, 3, 3, 3)
    totals = Analysis(graph_of("subsample: {s: 2}", "[3, 8, 8]")).totals()
    assert (totals["params"], totals["macs"]) == (0, 0)
    assert REGISTRY["subsample"].view and REGISTRY["strided_slice"] is REGISTRY["subsample"]


@pytest.mark.parametrize(
    "layer, message",
    [
        ("subsample: {offset: 1}", "subsample needs argument 's'"),
        ("subsample: {s: 0}", "'s' must be at least 1, got [0, 0]"),
        ("subsample: {s: 2, offset: [9, 0]}", "offset [9, 0] must lie within the input [9, 10]"),
        ("subsample: {s: 2, size: 6}", "size [6, 6] at offset [0, 0], step [2, 2]: the input [9, 10] holds"),
        ("subsample: {s: [1, 2, 3]}", "'s' must be an integer or a list of 2 integers"),
    ],
)
def test_subsample_errors(layer, message):
    assert message in error_of(layer, "[3, 9, 10]")


def test_subsample_in_frame_mode():
    # every other pixel follows a frame; a fixed size cannot
    graph = graph_of("conv: {out: 2, k: 3, p: 1}\nsubsample: {s: 2}", "[1, 8, 8]", frame_input=(1, 20, 30))
    assert graph.layers[-1].output == (2, 10, 15)
    with pytest.raises(SpecError, match="a subsample to a fixed 'size' cannot follow a whole frame"):
        graph_of("subsample: {s: 2, size: 2}", "[1, 8, 8]", frame_input=(1, 20, 30))
