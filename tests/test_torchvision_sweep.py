"""A representative subset of benchmarks/torchvision_sweep.py in CI: torchvision models
imported at their published inputs, against their weights' metadata (read offline):
parameters equal to ``num_params`` exactly, MACs complete and equal to ``_ops`` (GMACs) to
the printed digits. Detection: the two-stage models' RoI heads are counted for the most
RoIs the model keeps, and at the RoIs of torchvision's image give ``_ops``; see
tests/test_torch_detection.py."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from torchvision_sweep import accepted, sweep_one  # noqa: E402

EXACT = [
    "resnet50",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "regnet_y_400mf",
    "convnext_tiny",
    "vit_b_16",
    "swin_t",
    "swin_v2_t",  # continuous position bias (an MLP on the offsets table), cosine attention
    "maxvit_t",  # MBConv, block and grid attention
    "r3d_18",
    "fcn_resnet50",
    "ssd300_vgg16",  # detection: every parameter in the per-image network, L2 norm + scale
    "fasterrcnn_resnet50_fpn",  # the box head on its 1000 proposals: _ops's image had them all
]


@pytest.mark.parametrize("name", EXACT)
def test_published_figures(name):
    row = sweep_one(name)
    assert row["status"] != "error", row.get("error")
    assert row["params"] == row["published_params"]
    assert row["unsupported"] == [] and row["complete"]
    assert row["gmac"] == round(row["published_gmac"], 3)
    assert row["status"] == "exact"


def test_detection_parameters():
    row = sweep_one("fasterrcnn_mobilenet_v3_large_320_fpn")
    assert row["input"] == [3, 320, 320]
    assert row["params"] == row["published_params"] == 19_386_354
    # the per-image network (backbone, FPN, RPN head: 0.719, torchvision's _ops, whose image had
    # no proposal) + the box head on the model's 150 proposals (rpn_post_nms_top_n_test), 12544
    # x 1024 + 1024 x 1024 + 1024 x (91 + 364) multiply-adds each; see tests/test_torch_detection.py
    box_head = 150 * (12544 * 1024 + 1024 * 1024 + 1024 * 455)
    assert row["macs"] == 718_998_400 + box_head and row["gmac"] == 2.873
    assert row["complete"] and row["stopped"] is None
    assert row["status"] == "differs"  # from _ops, measured on an image with no proposal
    # stated as such (rpn_post_nms_top_n_test=0: the box head does not run), the model gives
    # _ops: the per-image network alone, the total less the box head above
    at = row["ops_rois"]
    assert at["kwargs"] == {"rpn_post_nms_top_n_test": 0} and at["complete"]
    assert at["macs"] == row["macs"] - box_head and at["gmac"] == round(row["published_gmac"], 3) == 0.719
    assert at["exact"] and accepted(row)


def test_check_accepts_only_exact_rows():
    """``--check``'s rule: exact, or (the detectors of OPS_ROIS) params exact and exact at the
    stated RoIs; complete but off, incomplete, or an error fails."""
    base = {"status": "differs", "params_exact": True, "ops_rois": {"exact": True}}
    assert accepted({"status": "exact"}) and accepted(base)
    assert not accepted({**base, "ops_rois": {"exact": False}})
    assert not accepted({**base, "params_exact": False})
    assert not accepted({"status": "differs", "params_exact": True})
    assert not accepted({"status": "incomplete", "params_exact": True, "ops_rois": {"exact": True}})
    assert not accepted({"status": "error"})
