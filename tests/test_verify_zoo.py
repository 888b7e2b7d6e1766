"""`cnnstat verify` for the zoo's newer families: cnnstat's params and MACs equal sum(numel) of
the built module, fvcore's FlopCountAnalysis (a real forward on the CPU, independent of
PyTorch's flop counter) and PyTorch's FlopCounterMode.

One model per spec family added with the decoder, video and transformer vocabulary, at a small
input where the model takes one (MAC equality at any input checks the same formulas);
fixed-input models (ViT's position embedding) at their own. A sweep over the whole zoo
(`cnnstat verify` with no MODEL) found every model equal when this was written.
"""

import pytest

from cnnstat.analysis import Analysis
from cnnstat.spec.build import build as build_spec
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs, fvcore_macs
from cnnstat.zoo import load

MODELS = {
    "convnext_tiny": (3, 64, 64),
    "darknet53": (3, 64, 64),
    "deeplabv3_resnet50": (3, 64, 64),
    "efficientnet_v2_s": (3, 64, 64),
    "fcn8s": (3, 64, 64),
    "fcn32s": (3, 64, 64),
    "fcn_resnet50": (3, 64, 64),
    "lraspp_mobilenet_v3_large": (3, 64, 64),
    "r3d_18": (3, 8, 64, 64),
    "r2plus1d_18": (3, 8, 64, 64),
    "swin_t": (3, 64, 64),
    "unet": (1, 188, 188),  # 16n + 124: even sizes at every pooling step
    "vit_b_32": None,  # its own 224x224: the position embedding fixes the input
}


@pytest.mark.parametrize("name", MODELS)
def test_verify_equal(name):
    import torch

    torch.set_num_threads(1)
    graph = build_spec(load(name), MODELS[name])
    totals = Analysis(graph).totals()
    module = build_graph(graph)
    assert sum(p.numel() for p in module.parameters()) == totals["params"]
    assert fvcore_macs(module, graph.input)["macs"] == totals["macs"]
    assert flop_counter_macs(build_graph(graph, "meta"), graph.input) == totals["macs"]


def test_verify_command_on_a_new_family(run):
    res = run("verify", "darknet19", "--input", "3x64x64")
    assert res.exit_code == 0, res.output
    assert "equal" in res.stdout and "differ" not in res.stdout
