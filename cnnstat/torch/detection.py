"""torchvision's detection models: the network that runs once per image.

A detector's forward ends in post-processing whose sizes depend on tensor values (top-k,
non-maximum suppression): the meta device cannot run it, and it has no parameters and no
multiply-accumulates (box decoding, clipping, sorting). cnnstat analyses the per-image
network instead, the same modules under the same names:

- single-stage (RetinaNet, FCOS, SSD, SSDlite): transform -> backbone (with FPN) -> head.
  Every parameter is there and its MACs are complete: the anchors and the post-processing
  cost no MACs.
- two-stage (Faster, Mask, Keypoint R-CNN): transform -> backbone + FPN -> the RPN head. The
  RoI heads run per proposal, on boxes left by non-maximum suppression (up to 1000 proposals
  for the box head, up to 100 detections for the mask and keypoint heads): they are not
  analysed; their parameters are counted, their MACs unknown (a lower bound).

The transform (``GeneralizedRCNNTransform``: normalise, resize, pad to a multiple of 32) is
``upsample`` to the resized size and ``pad`` (the normalisation is arithmetic with
constants: no layer). Classes are recognised by qualified name: nothing is imported.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnstat.torch.ops.base import NAMED_MODULES
from cnnstat.torch.recorder import Call

DETECTION = "torchvision.models.detection"
KINDS = {
    "GeneralizedRCNN": "two-stage",
    "RetinaNet": "single-stage",
    "FCOS": "single-stage",
    "SSD": "single-stage",
}
ROI_HEADS = (
    "per-proposal heads (roi_heads) run after non-maximum suppression on a data-dependent number "
    "of boxes: not analysed"
)


def kind_of(module) -> str | None:
    """'single-stage' or 'two-stage' for torchvision's detection models, else None."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith(DETECTION) and cls.__name__ in KINDS:
            return KINDS[cls.__name__]
    return None


class PerImage(nn.Module):
    """The per-image network of a torchvision detector (see the module docstring): the
    detector's own submodules, under their own names."""

    def __init__(self, model, kind: str):
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        for name, p in model.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in model.named_buffers(recurse=False):
            self.register_buffer(name, b)
        self.kind = kind

    def forward(self, x):
        images, _ = self.transform(x)
        features = self.backbone(images.tensors)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        features = list(features.values())
        if self.kind == "two-stage":
            return self.rpn.head(features)
        subs = [getattr(self.head, n, None) for n in ("classification_head", "regression_head")]
        outputs = [_level_outputs(sub, features) for sub in subs]
        if any(o is None for o in outputs):
            return self.head(features)  # a head of its own: run whole
        return [t for o in outputs for t in o]


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
    """(the per-image network, why the rest is not analysed or None), or None for a module
    that is not a torchvision detector."""
    kind = kind_of(module)
    if kind is None:
        return None
    return PerImage(module, kind).eval(), ROI_HEADS if kind == "two-stage" else None


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
