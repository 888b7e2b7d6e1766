"""The torch side of :mod:`cnnstat.ops.roi`: roi_align and roi_flatten, in cnnstat's layout (the
RoIs stacked along the first spatial axis). These modules are also the stand-ins through which
:mod:`cnnstat.torch.detection` runs torchvision's R-CNN heads for a stated number of RoIs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.torch.ops.base import MODULES, axes, builds, is_tensor


class RoIAlign(nn.Module):
    """cnnstat ``roi_align``: ``rois`` regions, each sampled on a ``size`` grid, stacked along
    the first spatial axis: [B, C, H, W] -> [B, C, rois*h, w].

    ``forward`` takes a map, or a mapping of maps (an FPN's levels, as torchvision's
    ``MultiScaleRoIAlign``; ``featmap_names`` picks the levels it reads). On the meta device it
    gives the shape only. Elsewhere every RoI is the whole first map, each bin its average (a
    stand-in for boxes that are data, in plain torch: fvcore's traced forward runs it), so
    that the module runs and its values are finite."""

    def __init__(self, rois: int, size=7, featmap_names=None, sampling_ratio: int = 2):
        super().__init__()
        self.rois, self.size = rois, size
        self.featmap_names, self.sampling_ratio = featmap_names, sampling_ratio

    def levels(self, x) -> list:
        if is_tensor(x):
            return [x]
        if isinstance(x, dict):  # the levels named, in the mapping's order (as torchvision)
            return [v for k, v in x.items() if self.featmap_names is None or k in self.featmap_names]
        return list(x)

    def forward(self, x):
        first = self.levels(x)[0]
        n = first.dim() - 2
        size = axes(self.size, n)
        if first.is_meta:
            return torch.empty(
                (first.shape[0], first.shape[1], self.rois * size[0], *size[1:]), device="meta"
            )
        pooled = F.adaptive_avg_pool2d(first, tuple(size))  # one RoI: the whole map, per bin
        return pooled.repeat(1, 1, self.rois, 1)

    def extra_repr(self):
        return f"rois={self.rois}, size={self.size}, featmap_names={self.featmap_names}"


class RoIFlatten(nn.Module):
    """cnnstat ``roi_flatten``: [B, C, rois*h, w] -> one vector per RoI, [B, C*h*w, rois]
    (channels first, as cnnstat's layers), or with ``last`` [B, rois, C*h*w] (for torch's
    nn.Linear, which works on the last axis). Each vector is the RoI's [C, h, w] flattened."""

    def __init__(self, rois: int, last: bool = False):
        super().__init__()
        self.rois, self.last = rois, last

    def forward(self, x):
        b, c, rows = x.shape[:3]
        per = x.view(b, c, self.rois, rows // self.rois, *x.shape[3:]).movedim(2, 1).reshape(b, self.rois, -1)
        return per if self.last else per.transpose(1, 2)

    def extra_repr(self):
        return f"rois={self.rois}, last={self.last}"


builds("roi_align")(lambda a, shapes: RoIAlign(a["rois"], a["size"]))
builds("roi_flatten")(lambda a, shapes: RoIFlatten(a["rois"]))


def _m_roi_align(rec, call):
    m = call.module
    x = call.args[0] if call.args else next(iter(call.kwargs.values()))
    refs = [rec.ref(t) for t in m.levels(x)]
    rec.emit(call, "roi_align", {"rois": m.rois, "size": m.size}, refs)


def _m_roi_flatten(rec, call):
    m = call.module
    ref = rec.ref(call.args[0])
    if not m.last:
        return rec.emit(call, "roi_flatten", {"rois": m.rois}, [ref])
    out = call.out
    first = torch.empty((rec.batch, int(out.shape[2]), int(out.shape[1])), device="meta")
    rec.emit(call, "roi_flatten", {"rois": m.rois}, [ref], out=first)
    rec.relay(first, out, (), (0, 2, 1))


MODULES[RoIAlign] = _m_roi_align
MODULES[RoIFlatten] = _m_roi_flatten
