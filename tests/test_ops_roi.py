"""roi_align and roi_flatten (two-stage detectors' heads per stated RoIs), by hand: shapes with
the RoIs stacked along the rows, per-RoI MACs of the layers after them, the torch modules
(values of the flattening, torchvision's roi_align) and the build -> import round trip."""

import pytest
import torch
from test_torch_build import assert_matches
from torch import nn

from cnnstat.analysis import Analysis
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import fvcore_macs
from cnnstat.torch.ops.roi import RoIAlign, RoIFlatten
from helpers import error_of, graph_of

HEAD = """
roi_align: {rois: 10, size: 7}
conv: {out: 8, k: 3, p: 1}
relu
roi_flatten: {rois: 10}
linear: {out: 32}
linear: {out: 5}
"""


def test_a_box_head_for_ten_rois():
    graph = graph_of(HEAD, "[16, 50, 60]")
    assert [la.output for la in graph.layers] == [
        (16, 70, 7),  # 10 RoIs of 7 x 7, stacked along the rows
        (8, 70, 7),
        (8, 70, 7),
        (392, 10),  # one 8 x 7 x 7 vector per RoI
        (32, 10),
        (5, 10),
    ]
    macs = [la.macs for la in graph.layers]
    # per RoI: 49 positions x 8 x 16 x 9; 392 x 32; 32 x 5 -- ten times
    assert macs == [0, 10 * 49 * 8 * 16 * 9, 0, 0, 10 * 392 * 32, 10 * 32 * 5]
    t = Analysis(graph).totals()
    assert t["params"] == 8 * 16 * 9 + 8 + 392 * 32 + 32 + 32 * 5 + 5
    # where a RoI lies is data: its units count as seeing the whole input
    assert graph.layers[0].rf.collapsed and graph.layers[0].rf.size == (50, 60)
    assert Analysis(graph).receptive_field() is None  # no unit covers a window of the input


def test_round_trip_through_torch():
    graph = graph_of(HEAD, "[16, 50, 60]")
    assert_matches(graph, build_graph(graph, "meta"))
    out = build_graph(graph)(torch.rand(2, 16, 50, 60))
    assert out.shape == (2, 5, 10) and torch.isfinite(out).all()


def test_roi_flatten_is_each_rois_own_flattening():
    x = torch.arange(2 * 3 * 4 * 2 * 5, dtype=torch.float32).view(2, 3, 4 * 2, 5)  # 4 RoIs of 2 x 5
    per_roi = x.view(2, 3, 4, 2, 5).permute(0, 2, 1, 3, 4)  # [B, R, C, h, w]
    expected = per_roi.reshape(2, 4, 30)
    assert torch.equal(RoIFlatten(4, last=True)(x), expected)
    assert torch.equal(RoIFlatten(4)(x), expected.transpose(1, 2))
    # the stand-in: every RoI the whole first level, each bin its average
    levels = {"0": torch.rand(1, 3, 8, 8), "1": torch.rand(1, 3, 4, 4), "pool": torch.rand(1, 3, 2, 2)}
    pool = RoIAlign(3, (2, 2), ["0", "1"])
    assert pool.levels(levels) == [levels["0"], levels["1"]]
    y = pool(levels)
    assert y.shape == (1, 3, 6, 2) and torch.equal(y[:, :, :2], y[:, :, 2:4])
    torch.testing.assert_close(y[:, :, :2], nn.functional.adaptive_avg_pool2d(levels["0"], 2))


@pytest.mark.parametrize(
    "layers, message",
    [
        ("roi_align: {size: 7}", "roi_align needs argument 'rois'"),
        ("roi_align: {rois: 0}", "'rois' must be at least 1, got 0"),
        ("roi_flatten: {rois: 3}", "16 rows do not split into 3 RoIs"),
        ("roi_align: {rois: 2, size: 0}", "size must be at least 1, got [0, 0]"),
    ],
)
def test_errors(layers, message):
    assert message in error_of(layers, "[4, 16, 16]")


MIXED = """
conv: {out: 8, k: 3, p: 1}
subsample: {s: 2, offset: 1}
normalize
scale
crop: {size: 16}
roi_align: {rois: 5, size: 4}
conv: {out: 8, k: 3, p: 1}
roi_flatten: {rois: 5}
linear: {out: 10}
"""


def test_new_ops_against_fvcore():
    """subsample, normalize, crop, roi_align and roi_flatten built as modules: fvcore's real
    forward and FlopCounterMode count what cnnstat does (the convolutions and the linear
    layer: 40 x 40 x 8 x 27 + 5 RoIs x 16 positions x 8 x 72 + 5 x 128 x 10)."""
    graph = graph_of(MIXED, "[3, 40, 40]")
    macs = 1600 * 8 * 27 + 5 * 16 * 8 * 72 + 5 * 128 * 10
    assert Analysis(graph).totals()["macs"] == macs
    assert fvcore_macs(build_graph(graph), graph.input)["macs"] == macs
    assert_matches(graph, build_graph(graph, "meta"))
