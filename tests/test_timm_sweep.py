"""A cheap subset of benchmarks/timm_sweep.py in CI: timm models (built with
``pretrained=False``, nothing downloaded) imported at timm's default input for each, against
independent figures of the same module: parameters and buffers equal to torch's
``sum(numel())`` (less BatchNorm's ``num_batches_tracked``), MACs complete and equal to
PyTorch's FlopCounterMode."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from timm_sweep import MODELS, sweep_one  # noqa: E402

EXACT = [
    "resnet50",
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "regnety_002",
    "convnext_atto",
    "convnextv2_atto",  # GRN: grn
    "ghostnet_100",  # ghost modules: a cheap depthwise conv's channels concatenated, sliced
    "cs3darknet_s",
    "res2net50_26w_4s",  # split, hierarchical residual convs, concat
    "repvgg_a0",
    "hrnet_w18_small",  # parallel branches, upsampling fuses
    "ecaresnet26t",  # ECA gates expanded to their maps
    "nf_resnet26",  # ScaledStdConv2d: a weight computed from the weight and a gain
    "dm_nfnet_f0",  # the Same variant (TensorFlow padding), skip-init gains: scale, shared
    "poolformer_s12",  # pool(x) - x
    "hgnetv2_b0",  # learnable affine blocks: x * a + b, scalars: scale and shift, shared
    "vit_tiny_patch16_224",  # timm's Attention: cnnstat's attention; class token, position embedding
    "swin_tiny_patch4_window7_224",  # timm's Swin blocks and patch merging, the NHWC head
    "pvt_v2_b0",  # PVT v2's Attention (inline q, kv, unbind): attention with sr on the map
    "twins_svt_small",  # Twins' locally grouped (window) and global sub-sampled (sr) attention
]


@pytest.fixture(scope="module")
def rows():
    return {name: sweep_one(name) for name in EXACT}


@pytest.mark.parametrize("name", EXACT)
def test_exact(rows, name):
    row = rows[name]
    assert row["status"] != "error", row.get("error")
    assert row["params"] == row["torch_params"] and row["buffers"] == row["torch_buffers"]
    assert row["unsupported"] == [] and row["complete"] and row["stopped"] is None
    assert row["macs"] == row["flop_counter_macs"]
    assert row["status"] == "exact"


def test_resnet50_is_torchvisions(rows):
    """timm's resnet50 is torchvision's architecture: 25,557,032 parameters and 4.089 GMAC,
    torchvision's published ``num_params`` and ``_ops`` for ResNet50_Weights."""
    row = rows["resnet50"]
    assert row["input"] == [3, 224, 224]
    assert row["params"] == 25_557_032 and round(row["macs"] / 1e9, 3) == 4.089


def test_models_listed_by_timm():
    import timm

    known = set(timm.list_models())
    assert [n for names in MODELS.values() for n in names if n not in known] == []


@pytest.mark.parametrize("name", ["mixer_s16_224", "resnest14d"])
def test_never_more_than_flop_counter(name):
    """Models with calls cnnstat has no op for (a Linear over the tokens axis, ResNeSt's sum
    over its radix splits): every parameter and buffer still counted, the unsupported calls
    named, and the MACs a lower bound of FlopCounterMode's (an unsupported sum costs no MAC:
    resnest's known MACs are all of them, yet not known to be)."""
    row = sweep_one(name)
    assert row["params"] == row["torch_params"] and row["buffers"] == row["torch_buffers"]
    assert row["complete"] == (row["unsupported"] == [])
    assert not row["complete"] and row["macs"] <= row["flop_counter_macs"]
