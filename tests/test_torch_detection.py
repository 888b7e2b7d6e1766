"""torchvision's detection models: the per-image network (transform, backbone, FPN, heads)
imported, checked against the published figures (num_params, _ops) and PyTorch's
FlopCounterMode run on the same modules; the per-proposal heads of the R-CNNs counted in
parameters, their MACs unknown."""

import pytest

pytest.importorskip("torchvision")

import torch  # noqa: E402
import torchvision  # noqa: E402

from cnnstat.torch import analyze  # noqa: E402
from cnnstat.torch.check import flop_counter_macs  # noqa: E402
from cnnstat.torch.load import instantiate, meta_copy  # noqa: E402


def published(name):
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    return meta["num_params"], meta["_ops"]


@pytest.mark.parametrize("name", ["retinanet_resnet50_fpn", "ssdlite320_mobilenet_v3_large", "ssd300_vgg16"])
def test_single_stage_detectors_are_exact(name):
    a = analyze(f"torchvision:{name}")
    params, gmac = published(name)
    assert a.complete and not a.graph.unsupported and a.graph.stopped is None
    assert a.totals()["params"] == params
    assert round(a.totals()["macs"] / 1e9, 3) == gmac
    # the heads' per-level convolutions are the last layers: the flattening and concatenation
    # over the levels, anchors and box decoding follow (no MACs, no parameters)
    assert a.layers[-1].op == "conv"


def test_two_stage_detector_counts_what_runs_per_image():
    name = "fasterrcnn_resnet50_fpn"
    a = analyze(f"torchvision:{name}")
    params, _ = published(name)
    assert a.totals()["params"] == params  # frozen batch norm, as the published weights
    assert not a.complete and a.graph.stopped.startswith("per-proposal heads (roi_heads)")
    heads = [la for la in a.layers if la.op == "unattributed" and la.params]
    assert {la.name for la in heads} == {
        "roi_heads.box_head.fc6",
        "roi_heads.box_head.fc7",
        "roi_heads.box_predictor.cls_score",
        "roi_heads.box_predictor.bbox_pred",
    }
    assert all(la.unknown.startswith("not analysed: per-proposal heads") for la in heads)
    # backbone + FPN + RPN head, by PyTorch's counter on the same modules
    model = meta_copy(instantiate(f"torchvision:{name}"))
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        features = model.backbone(torch.empty(1, 3, 800, 800, device="meta"))
        model.rpn.head(list(features.values()))
    assert a.totals()["macs"] == counter.get_total_flops() // 2 == 120_020_169_216
    # torchvision's 134.38 adds the box head on 1000 proposals: 12544 x 1024 + 1024 x 1024
    # + 1024 x (91 + 364) multiply-adds per proposal
    box_head = 1000 * (12544 * 1024 + 1024 * 1024 + 1024 * 455)
    assert round((a.totals()["macs"] + box_head) / 1e9, 3) == 134.38


def test_the_transform_resizes_and_pads():
    # 600 x 900 -> 800 x 1200 (shorter side to 800), padded to 800 x 1216 (multiples of 32)
    a = analyze("torchvision:retinanet_resnet50_fpn", input=(3, 600, 900))
    first = a.layers[:2]
    assert [(la.name, la.op, la.output) for la in first] == [
        ("transform", "upsample", (3, 800, 1200)),
        ("transform_1", "pad", (3, 800, 1216)),
    ]
    assert a.complete
    model = meta_copy(instantiate("torchvision:retinanet_resnet50_fpn"))
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        features = list(model.backbone(torch.empty(1, 3, 800, 1216, device="meta")).values())
        model.head(features)
    assert a.totals()["macs"] == counter.get_total_flops() // 2


def test_a_plain_module_is_not_mistaken_for_a_detector():
    conv = torch.nn.Conv2d(3, 4, 3)
    a = analyze(conv, input=(3, 8, 8))
    assert a.graph.stopped is None and a.complete
    assert flop_counter_macs(meta_copy(conv), (3, 8, 8)) == a.totals()["macs"]


def test_ssd300_l2_normalisation():
    """SSD300's L2Norm: F.normalize over conv4_3's 512 channels, then a learned scale per
    channel (512 parameters, 0 MACs as FlopCounterMode counts them)."""
    a = analyze("torchvision:ssd300_vgg16")
    by = {la.name: la for la in a.layers}
    assert (by["backbone.normalize"].op, by["backbone.normalize"].output) == ("normalize", (512, 38, 38))
    assert (by["backbone.mul"].op, by["backbone.mul"].weights, by["backbone.mul"].macs) == ("scale", 512, 0)
    model = meta_copy(instantiate("torchvision:ssd300_vgg16"))
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        features = list(model.backbone(torch.empty(1, 3, 300, 300, device="meta")).values())
        for head in (model.head.classification_head, model.head.regression_head):
            for conv, f in zip(head.module_list, features):
                conv(f)
    assert a.totals()["macs"] == counter.get_total_flops() // 2
