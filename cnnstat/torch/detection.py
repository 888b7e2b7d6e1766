"""torchvision's detection models: the network that runs once per image, and the R-CNN heads per
stated number of RoIs.

A detector's forward ends in post-processing whose sizes depend on tensor values (top-k,
non-maximum suppression): the meta device cannot run it, and it has no parameters and no
multiply-accumulates (box decoding, clipping, sorting). cnnstat analyses the per-image
network instead, the same modules under the same names:

- single-stage (RetinaNet, FCOS, SSD, SSDlite): transform -> backbone (with FPN) -> head.
  Every parameter is there and its MACs are complete: the anchors and the post-processing
  cost no MACs.
- two-stage (Faster, Mask, Keypoint R-CNN): transform -> backbone + FPN -> the RPN head,
  then the RoI heads, which run once per region: on the proposals non-maximum suppression
  leaves (the box head: at most the model's ``rpn_post_nms_top_n_test``, 1000), and on the
  detections (the mask and keypoint heads: at most ``box_detections_per_img``, 100). How many
  is data; cnnstat counts the heads for those maxima, the RoIs stacked along the rows
  (:mod:`cnnstat.ops.roi`: ``roi_align`` then the heads' own layers; ``roi_flatten`` before
  the fully connected ones). ``--kwargs rpn_post_nms_top_n_test=N,box_detections_per_img=M``
  states other numbers (0: the head does not run; its parameters are counted at 0 MACs). A
  head cnnstat does not know (not torchvision's own classes) is not analysed: its parameters
  are counted, its MACs unknown (a lower bound).

The transform (``GeneralizedRCNNTransform``: normalise, resize, pad to a multiple of 32) is
``upsample`` to the resized size and ``pad`` (the normalisation is arithmetic with
constants: no layer). Classes are recognised by qualified name: nothing is imported.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from cnnstat.errors import CnnstatError
from cnnstat.torch.ops.base import NAMED_MODULES
from cnnstat.torch.ops.roi import RoIAlign, RoIFlatten
from cnnstat.torch.recorder import Call

DETECTION = "torchvision.models.detection"
KINDS = {
    "GeneralizedRCNN": "two-stage",
    "RetinaNet": "single-stage",
    "FCOS": "single-stage",
    "SSD": "single-stage",
}
ROI_HEADS = (
    "per-proposal heads (roi_heads) that are not torchvision's own classes, run on a data-dependent "
    "number of boxes: not analysed"
)


def kind_of(module) -> str | None:
    """'single-stage' or 'two-stage' for torchvision's detection models, else None."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith(DETECTION) and cls.__name__ in KINDS:
            return KINDS[cls.__name__]
    return None


class PerImage(nn.Module):
    """The per-image network of a torchvision detector (see the module docstring): the
    detector's own submodules, under their own names; for a two-stage one whose RoI heads
    are torchvision's, those heads too (``roi_heads``: a copy whose RoI poolers and
    flattening are cnnstat's stand-ins, :func:`roi_stand_ins`), for ``rois``."""

    def __init__(self, model, kind: str):
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        for name, p in model.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in model.named_buffers(recurse=False):
            self.register_buffer(name, b)
        self.kind = kind
        self.rois = None
        if kind == "two-stage":
            found = roi_stand_ins(model)
            if found is not None:
                self.roi_heads, self.rois = found

    def forward(self, x):
        images, _ = self.transform(x)
        features = self.backbone(images.tensors)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        levels = list(features.values())
        if self.kind == "two-stage":
            rpn = self.rpn.head(levels)
            return rpn if self.rois is None else (rpn, self._roi_heads(features))
        subs = [getattr(self.head, n, None) for n in ("classification_head", "regression_head")]
        outputs = [_level_outputs(sub, levels) for sub in subs]
        if any(o is None for o in outputs):
            return self.head(levels)  # a head of its own: run whole
        return [t for o in outputs for t in o]

    def _roi_heads(self, features):
        """torchvision's RoIHeads for the stated RoIs: box head and predictor on the proposals,
        mask and keypoint heads on the detections (the post-processing between them, box
        decoding and non-maximum suppression, has no MACs)."""
        h, outs = self.roi_heads, []
        if self.rois["box"]:
            x = h.box_roi_pool(features)
            head = h.box_head
            if _named(head, "faster_rcnn.TwoMLPHead"):  # its forward flattens [R, ...] whole
                x = head.flatten(x)
                x = head.relu6(head.fc6(x))
                x = head.relu7(head.fc7(x))
            else:
                x = head(x)
            outs += [h.box_predictor.cls_score(x), h.box_predictor.bbox_pred(x)]
        if self.rois.get("detections"):
            for pool, head, predictor in _BRANCHES:
                if getattr(h, pool, None) is not None:
                    y = getattr(h, pool)(features)
                    outs.append(getattr(h, predictor)(getattr(h, head)(y)))
        return outs


# The second stage's branches: (pooler, head, predictor) attributes of torchvision's RoIHeads;
# the heads and predictors are Sequentials of convolutions (torchvision's Conv2dNormActivation)
# and a predictor of a transposed convolution (then bilinear upsampling, keypoints).
_BRANCHES = (
    ("mask_roi_pool", "mask_head", "mask_predictor"),
    ("keypoint_roi_pool", "keypoint_head", "keypoint_predictor"),
)
_HEADS = {
    "box_head": ("faster_rcnn.TwoMLPHead", "faster_rcnn.FastRCNNConvFCHead"),
    "box_predictor": ("faster_rcnn.FastRCNNPredictor",),
    "mask_head": ("mask_rcnn.MaskRCNNHeads",),
    "mask_predictor": ("mask_rcnn.MaskRCNNPredictor",),
    "keypoint_head": ("keypoint_rcnn.KeypointRCNNHeads",),
    "keypoint_predictor": ("keypoint_rcnn.KeypointRCNNPredictor",),
}
_POOLER = "torchvision.ops.poolers.MultiScaleRoIAlign"


def _named(module, *names) -> bool:
    """``module`` is exactly one of torchvision's detection classes ``names`` ('file.Class')."""
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}" in {f"{DETECTION}.{n}" for n in names}


def _copy(module):
    """A shallow copy whose children can be replaced without touching ``module``."""
    new = copy.copy(module)
    new._modules = dict(module._modules)
    return new


def roi_stand_ins(model):
    """(a copy of ``model.roi_heads`` that cnnstat can run on the meta device, {"box": R,
    "detections": D}) for torchvision's own RoIHeads, or None for heads it does not know.

    R: the proposals the box head runs on, the model's ``rpn_post_nms_top_n_test``; D: the
    detections the mask and keypoint heads run on, its ``box_detections_per_img``. In the copy
    each MultiScaleRoIAlign is cnnstat's :class:`RoIAlign` for R or D RoIs (same output size,
    same levels) and the box head's flattening :class:`RoIFlatten`; the layers with weights
    are the model's own modules."""
    heads = getattr(model, "roi_heads", None)
    rpn = getattr(model, "rpn", None)
    if not _named(heads, "roi_heads.RoIHeads") or rpn is None:
        return None
    counts = {"box": int(rpn._post_nms_top_n["testing"])}
    if any(getattr(heads, pool, None) is not None for pool, _, _ in _BRANCHES):
        counts["detections"] = int(heads.detections_per_img)
    for key, value in zip(("rpn_post_nms_top_n_test", "box_detections_per_img"), counts.values()):
        if value < 0:
            raise CnnstatError(f"{key} must be 0 or more RoIs, got {value}")
    new = _copy(heads)
    for attr, names in _HEADS.items():
        sub = getattr(heads, attr, None)
        if sub is not None and not _named(sub, *names):
            return None
    for attr, rois in (
        ("box_roi_pool", "box"),
        ("mask_roi_pool", "detections"),
        ("keypoint_roi_pool", "detections"),
    ):
        pool = getattr(heads, attr, None)
        if pool is None:
            continue
        cls = type(pool)
        if f"{cls.__module__}.{cls.__qualname__}" != _POOLER:
            return None
        new._modules[attr] = RoIAlign(
            counts[rois], tuple(pool.output_size), list(pool.featmap_names), pool.sampling_ratio
        )
    box = _copy(heads.box_head)
    if _named(box, "faster_rcnn.TwoMLPHead"):
        box._modules["flatten"] = RoIFlatten(counts["box"], last=True)
        box._modules["relu6"], box._modules["relu7"] = nn.ReLU(), nn.ReLU()  # its F.relu, named
    else:
        for name, child in box._modules.items():
            if isinstance(child, nn.Flatten):
                box._modules[name] = RoIFlatten(counts["box"], last=True)
    new._modules["box_head"] = box
    return new, counts


# The sub-heads of torchvision's single-stage detectors: their convolutions per level, whose
# outputs they then flatten to (N, HWA, K) and concatenate over the levels (a layout for the
# post-processing: no MACs, no cnnstat op) -- that last step is left out.
_SUBHEADS = {
    "retinanet.RetinaNetClassificationHead": ("conv", ("cls_logits",)),
    "retinanet.RetinaNetRegressionHead": ("conv", ("bbox_reg",)),
    "fcos.FCOSClassificationHead": ("conv", ("cls_logits",)),
    "fcos.FCOSRegressionHead": ("conv", ("bbox_reg", "bbox_ctrness")),
}


def _level_outputs(sub, features) -> list | None:
    """The per-level outputs of a torchvision detection sub-head ``sub`` before its
    flattening and concatenation; None for a head cnnstat does not know."""
    cls = type(sub)
    for base in cls.__mro__:
        key = f"{base.__module__.rpartition('.')[2]}.{base.__qualname__}"
        if not base.__module__.startswith(DETECTION):
            continue
        if key in _SUBHEADS and cls.forward is base.forward:
            trunk, outs = _SUBHEADS[key]
            result = []
            for f in features:
                y = getattr(sub, trunk)(f)
                for name in outs:
                    z = getattr(sub, name)(y)
                    result.append(
                        torch.relu(z) if key == "fcos.FCOSRegressionHead" and name == "bbox_reg" else z
                    )
            return result
        if key == "ssd.SSDScoringHead" and cls.forward is base.forward:
            return [sub.module_list[i](f) for i, f in enumerate(features)]
    return None


def per_image(module):
    """(the per-image network, why the rest is not analysed or None, notes on what it counts),
    or None for a module that is not a torchvision detector."""
    kind = kind_of(module)
    if kind is None:
        return None
    net = PerImage(module, kind).eval()
    if kind == "two-stage" and net.rois is None:
        return net, ROI_HEADS, ()
    return net, None, (rois_note(net.rois),) if net.rois else ()


def rois_note(rois: dict) -> str:
    """What the two-stage totals are for."""
    text = f"RoI heads counted for {rois['box']:,} proposals (the box head; rpn_post_nms_top_n_test)"
    if "detections" in rois:
        n = rois["detections"]
        text += f" and {n:,} detection{'' if n == 1 else 's'} (mask/keypoint heads; box_detections_per_img)"
    return text + ", the most the model keeps per image: an image may have fewer (set them with --kwargs)"


def _m_transform(rec, call):
    """GeneralizedRCNNTransform on a batch [B, 3, H, W]: ``upsample`` (bilinear) to the size it
    resizes to, then ``pad`` to its batch size (a multiple of 32); nothing where neither
    changes the size."""
    x = call.args[0] if call.args else call.kwargs.get("images")
    images = call.out[0] if isinstance(call.out, tuple) else call.out
    out = getattr(images, "tensors", None)
    ref = rec.ref(x)
    if not isinstance(x, torch.Tensor) or ref is None or out is None:
        return rec.unsupported_call(call, "on a list of images (cnnstat: one batch tensor)")
    alt = Call(
        call.base, call.label, call.fname, call.module, call.args, call.kwargs, out, call.owner, call.buffers
    )
    h, w = (int(v) for v in images.image_sizes[0])
    cur = ref
    if (h, w) != tuple(x.shape[-2:]):
        resized = torch.empty((rec.batch, *ref.shape[:-2], h, w), device="meta")
        rec.emit(alt, "upsample", {"size": (h, w), "mode": "bilinear"}, [ref], out=resized)
        cur = rec.ref(resized)
        if cur is None:
            return
    ph, pw = int(out.shape[-2]) - h, int(out.shape[-1]) - w
    if ph or pw:
        return rec.emit(alt, "pad", {"p": (0, ph, 0, pw)}, [cur], out=out)
    rec.bind(out, cur)


NAMED_MODULES[f"{DETECTION}.transform.GeneralizedRCNNTransform"] = _m_transform
