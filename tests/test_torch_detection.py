"""torchvision's detection models: the per-image network (transform, backbone, FPN, heads) and
the R-CNNs' RoI heads per stated number of RoIs, checked against the published figures
(num_params, _ops) and PyTorch's FlopCounterMode run on the same modules (the RoI heads on a
batch of that many pooled RoIs); a head cnnstat does not know keeps its parameters, its MACs
unknown."""

import functools

import pytest

pytest.importorskip("torchvision")

import torch  # noqa: E402
import torchvision  # noqa: E402

from cnnstat.torch import analyze  # noqa: E402
from cnnstat.torch.check import flop_counter_macs  # noqa: E402
from cnnstat.torch.load import instantiate, meta_copy  # noqa: E402


@functools.cache
def analysed(name):
    """Each model imported once per test module (detection models take seconds)."""
    return analyze(f"torchvision:{name}")


def published(name):
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    return meta["num_params"], meta["_ops"]


@pytest.mark.parametrize("name", ["retinanet_resnet50_fpn", "ssdlite320_mobilenet_v3_large", "ssd300_vgg16"])
def test_single_stage_detectors_are_exact(name):
    a = analysed(name)
    params, gmac = published(name)
    assert a.complete and not a.graph.unsupported and a.graph.stopped is None
    assert a.totals()["params"] == params
    assert round(a.totals()["macs"] / 1e9, 3) == gmac
    # the heads' per-level convolutions are the last layers: the flattening and concatenation
    # over the levels, anchors and box decoding follow (no MACs, no parameters)
    assert a.layers[-1].op == "conv"


def counted(model, image, box_rois, detections=0):
    """MACs by PyTorch's FlopCounterMode of torchvision's own modules on the meta device: the
    backbone and FPN, the RPN head, then the RoI heads run on a batch of ``box_rois`` pooled
    RoIs (box head and predictor) and of ``detections`` (mask or keypoint head and predictor)
    -- what a real forward runs for that many RoIs, less RoI Align and the post-processing,
    which FlopCounterMode counts nothing for."""
    from torch.utils.flop_counter import FlopCounterMode

    h = model.roi_heads
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        features = model.backbone(torch.empty(1, 3, *image, device="meta"))
        model.rpn.head(list(features.values()))
        if box_rois:
            size = h.box_roi_pool.output_size
            h.box_predictor(h.box_head(torch.empty(box_rois, 256, *size, device="meta")))
        for pool, head, predictor in (
            ("mask_roi_pool", "mask_head", "mask_predictor"),
            ("keypoint_roi_pool", "keypoint_head", "keypoint_predictor"),
        ):
            if detections and getattr(h, pool, None) is not None:
                size = getattr(h, pool).output_size
                getattr(h, predictor)(getattr(h, head)(torch.empty(detections, 256, *size, device="meta")))
    return counter.get_total_flops() // 2


def test_two_stage_detector_per_stated_proposals():
    name = "fasterrcnn_resnet50_fpn"
    a = analyze(f"torchvision:{name}")
    params, gmac = published(name)
    assert a.totals()["params"] == params  # frozen batch norm, as the published weights
    assert a.complete and a.graph.stopped is None and not a.graph.unsupported
    assert a.graph.notes[0].startswith("RoI heads counted for 1,000 proposals (the box head")
    by = {la.name: la for la in a.layers}
    # 1000 RoIs of 256 x 7 x 7 stacked along the rows, one 12,544-vector per RoI for fc6
    assert by["roi_heads.box_roi_pool"].output == (256, 7000, 7)
    assert by["roi_heads.box_head.flatten"].output == (12544, 1000)
    assert by["roi_heads.box_head.fc6"].macs == 1000 * 12544 * 1024
    assert by["roi_heads.box_predictor.bbox_pred"].output == (364, 1000)
    model = meta_copy(instantiate(f"torchvision:{name}"))
    assert a.totals()["macs"] == counted(model, (800, 800), 1000) == 134_379_721_216
    # the per-image network (120.020 G) + the box head on 1000 proposals: 12544 x 1024 + 1024
    # x 1024 + 1024 x (91 + 364) multiply-adds each; torchvision's 134.38
    assert a.totals()["macs"] == 120_020_169_216 + 1000 * (12544 * 1024 + 1024 * 1024 + 1024 * 455)
    assert round(a.totals()["macs"] / 1e9, 3) == gmac


def test_mask_rcnn_v2_heads_on_proposals_and_detections():
    """The v2 box head (4 convolutions with batch norm, then fc) on 1000 proposals, the mask
    head on 100 detections: torchvision's 333.577 (its run had that many)."""
    name = "maskrcnn_resnet50_fpn_v2"
    a = analyze(f"torchvision:{name}")
    params, gmac = published(name)
    assert a.complete and a.totals()["params"] == params
    by = {la.name: la for la in a.layers}
    assert by["roi_heads.box_head.0.0"].output == (256, 7000, 7)  # a 3 x 3 conv per RoI
    assert by["roi_heads.mask_roi_pool"].output == (256, 1400, 14)
    assert by["roi_heads.mask_predictor.conv5_mask"].op == "conv_transpose"
    assert by["roi_heads.mask_predictor.mask_fcn_logits"].output == (91, 2800, 28)
    model = meta_copy(instantiate(f"torchvision:{name}"))
    assert a.totals()["macs"] == counted(model, (800, 800), 1000, 100)
    assert round(a.totals()["macs"] / 1e9, 3) == gmac


@pytest.mark.parametrize(
    "name, kwargs",
    [
        # torchvision's figures were measured on one image: no proposal passed the RPN's score
        # threshold of the MobileNet models, no detection reached Mask R-CNN's mask head, one
        # Keypoint R-CNN's keypoint head. With those counts stated cnnstat gives them exactly.
        ("fasterrcnn_mobilenet_v3_large_320_fpn", {"rpn_post_nms_top_n_test": 0}),
        ("keypointrcnn_resnet50_fpn", {"box_detections_per_img": 1}),
    ],
)
def test_published_figures_are_for_the_rois_their_image_had(name, kwargs):
    a = analyze(f"torchvision:{name}", kwargs=kwargs)
    params, gmac = published(name)
    assert a.complete and a.totals()["params"] == params
    assert round(a.totals()["macs"] / 1e9, 3) == gmac
    model = meta_copy(instantiate(f"torchvision:{name}", kwargs))
    image = a.graph.input[1:]
    rois = kwargs.get("rpn_post_nms_top_n_test", model.rpn._post_nms_top_n["testing"])
    assert a.totals()["macs"] == counted(model, image, rois, kwargs.get("box_detections_per_img", 0))
    if not rois:  # the heads do not run: their parameters at 0 MACs
        assert {la.op for la in a.layers if la.name.startswith("roi_heads.")} == {"unused"}


def test_a_head_of_its_own_is_not_analysed():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(256 * 7 * 7, 1024)

        def forward(self, x):
            return self.fc(x.flatten(1))

    model = instantiate("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn")
    model.roi_heads.box_head = Head()
    a = analyze(meta_copy(model), input=(3, 320, 320))
    assert not a.complete and a.graph.stopped.startswith("per-proposal heads (roi_heads)")
    assert a.totals()["params"] == sum(p.numel() for p in model.parameters())
    assert round(a.totals()["macs"] / 1e9, 3) == published("fasterrcnn_mobilenet_v3_large_320_fpn")[1]


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
    a = analysed("ssd300_vgg16")
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


def test_a_negative_number_of_rois_is_an_error(run):
    result = run(
        "params",
        "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
        "--kwargs",
        "rpn_post_nms_top_n_test=-3",
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: rpn_post_nms_top_n_test must be 0 or more RoIs, got -3"
    ]
