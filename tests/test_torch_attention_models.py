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

MODELS = [
    "swin_v2_t",
    "swin_v2_s",
    "swin_v2_b",
    "maxvit_t",
    "swin3d_t",
    "swin3d_s",
    "swin3d_b",
    "mvit_v1_b",
    "mvit_v2_s",
]


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


def test_receptive_field(model):
    """Windows, shifted windows and grids keep the field known (tracked per unit): after the
    last stage's attention a unit's field covers the whole input along every axis (along H
    and W reaching into the padding of the windows; a video's 16 frames are one window of 8
    after the 2-frame patches).

    MViT's attention is global: every unit sees the whole input after it, which (as for a
    ViT, see docs/spec-language.md) does not widen the reported field; the field is that of
    the patch convolution (3 x 7 x 7, stride 2 x 4 x 4) and the pooled skip connections
    (max pools of kernel 1 x 3 x 3, stride 1 x 2 x 2, three times): 3 x 63 x 63, jump
    2 x 32 x 32, by hand: 7 + 2 x 4 + 2 x 8 + 2 x 16 = 63."""
    a = model["analysis"]
    layer = a.receptive_field()
    assert layer.rf is not None and not layer.rf_unknown
    if model["name"].startswith("mvit"):
        assert layer.rf.size == (3, 63, 63) and layer.rf.jump == (2, 32, 32)
        assert next(la for la in a.graph.layers if la.op == "attention").rf.collapsed
    else:
        assert all(size >= side for size, side in zip(layer.rf.size, a.graph.input[1:]))
