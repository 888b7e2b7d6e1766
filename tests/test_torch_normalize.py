"""normalize: Lp normalisation over the channels (F.normalize; SSD300's L2Norm), by hand, built
as a module (its values against x / ||x||), read back, and imported from F.normalize calls in
any layout."""

import pytest
import torch
import torch.nn.functional as F
from test_ops_pad_resample import error_of, last
from test_torch_build import assert_matches
from torch import nn

from cnnstat.analysis import Analysis
from cnnstat.spec.build import build as build_spec
from cnnstat.torch.analysis import analyze
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs
from cnnstat.torch.load import meta_copy
from helpers import spec_from_text

SPEC = """
input: [3, 12, 10]
layers:
  - conv: {out: 8, k: 3, s: 2}
  - normalize
  - scale
  - conv: {out: 4, k: 3}
  - gap
  - flatten
  - normalize: {p: 1}
"""


def test_by_hand():
    layer = last("normalize", "[5, 7, 6]")
    assert layer.output == (5, 7, 6) and (layer.weights, layer.biases, layer.macs) == (0, 0, 0)
    assert layer.rf.size == (1, 1) and layer.args == {"p": 2.0, "eps": 1e-12}
    assert last("l2norm: {p: 3}", "[4]").output == (4,)
    assert "'p' must be positive, got 0" in error_of("normalize: {p: 0}")


def test_built_module_computes_f_normalize_and_reads_back():
    graph = build_spec(spec_from_text(SPEC))
    # conv 3x3x3x8 + 8, scale 8 (weights), conv 3x3x8x4 + 4; MACs of the convolutions only:
    # 5 x 4 positions x 8 x 27, 3 x 2 positions x 4 x 72 (normalize and scale: 0)
    totals = Analysis(graph).totals()
    assert totals["params"] == 216 + 8 + 8 + 288 + 4
    assert totals["macs"] == 20 * 8 * 27 + 6 * 4 * 72
    assert_matches(graph, build_graph(graph, "meta"))
    module = build_graph(graph).double()
    x = torch.randn(2, 8, 5, 4, dtype=torch.float64)
    norm = module.get_submodule(graph.layers[1].name)
    torch.testing.assert_close(norm(x), x / x.pow(2).sum(1, keepdim=True).sqrt())


class L2Norm(nn.Module):
    """SSD300's: F.normalize over the channels, then a learned scale per channel."""

    def __init__(self, last=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.weight = nn.Parameter(torch.full((16,), 20.0))
        self.last = last

    def forward(self, x):
        y = self.conv(x)
        if self.last:  # channels last: normalise along dim -1, where the channels are
            return F.normalize(y.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)
        return self.weight.view(1, -1, 1, 1) * F.normalize(y)


@pytest.mark.parametrize("last", [False, True], ids=["channels-first", "channels-last"])
def test_import(last):
    m = L2Norm(last)
    a = analyze(m, input=(3, 9, 9))
    assert a.complete and not a.graph.unsupported
    ops = [(la.name, la.op) for la in a.layers]
    if last:  # the scale is not run: its weights are counted, at 0 MACs
        assert ops == [("weight", "unused"), ("conv", "conv"), ("normalize", "normalize")]
    else:
        assert ops == [("conv", "conv"), ("normalize", "normalize"), ("mul", "scale")]
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    assert a.totals()["macs"] == flop_counter_macs(meta_copy(m), (3, 9, 9)) == 81 * 16 * 27


class Spatial(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return F.normalize(self.conv(x), dim=2)


def test_along_a_spatial_axis_is_unsupported():
    a = analyze(Spatial(), input=(3, 8, 8))
    (u,) = a.graph.unsupported
    assert u["call"] == "F.normalize" and "along dim 2" in u["detail"] and not a.complete
