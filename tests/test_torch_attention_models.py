"""torchvision's attention models imported whole, each once (a module-scoped fixture: they
take a second or two each on the meta device): parameters equal to ``sum(p.numel())`` and to
the weights' published ``num_params``, MACs complete and equal to PyTorch's FlopCounterMode
on the same module and to the published ``_ops`` (GMACs: torchvision's figures are
FlopCounterMode's, one multiply-add one operation), read offline from the weights' metadata.
Their building blocks are checked by hand in tests/test_ops_attention.py and
tests/test_torch_tokens.py."""

import pytest

pytest.importorskip("torch")
tv = pytest.importorskip("torchvision")

from cnnstat.torch.analysis import TorchAnalysis, import_graph  # noqa: E402
from cnnstat.torch.check import flop_counter_macs  # noqa: E402

MODELS = ["swin_v2_t", "swin_v2_s", "swin_v2_b", "maxvit_t", "swin3d_t", "swin3d_s", "swin3d_b"]


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    name = request.param
    graph, meta = import_graph(f"torchvision:{name}")
    meta_info = tv.models.get_model_weights(name).DEFAULT.meta
    return {
        "name": name,
        "analysis": TorchAnalysis(graph),
        "module": meta,
        "flop_counter": flop_counter_macs(meta, graph.input),
        "params": meta_info["num_params"],
        "gmac": meta_info["_ops"],
    }


def test_parameters_are_the_modules_and_the_published(model):
    totals = model["analysis"].totals()
    assert totals["params"] == sum(p.numel() for p in model["module"].parameters()) == model["params"]


def test_macs_complete_and_equal_to_flop_counter_and_published(model):
    a = model["analysis"]
    assert a.complete and not a.graph.unsupported, a.incomplete()
    macs = a.totals()["macs"]
    assert macs == model["flop_counter"]
    assert round(macs / 1e9, 3) == round(model["gmac"], 3)


def test_receptive_field_known_where_windows_and_grids_bound_it(model):
    """Windows, shifted windows and grids keep the field known (tracked per unit): the
    network's field is reported, not unknown; after the last stage's attention a unit's
    field covers the whole input along every axis (along H and W reaching into the padding
    of the windows; a video's 16 frames are one window of 8 after the 2-frame patches)."""
    layer = model["analysis"].receptive_field()
    assert layer.rf is not None and not layer.rf_unknown
    assert all(size >= side for size, side in zip(layer.rf.size, model["analysis"].graph.input[1:]))
