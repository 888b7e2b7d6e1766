"""Regions of interest (two-stage detectors): RoI Align over a stated number of RoIs, and one
vector per RoI for the fully connected layers that follow.

A two-stage detector's heads run once per region its first stage proposes (after
non-maximum suppression: a data-dependent number, at most what the model keeps). cnnstat
counts them for a stated number of RoIs R, the RoIs stacked along the first spatial axis:
``roi_align`` gives [C, R*h, w] (RoI i in rows i*h .. (i+1)*h - 1), so the convolutions of an
R-CNN head (stride 1, padded to keep the size) and transposed convolutions cost R times
their per-RoI MACs and hold R times the activations, and ``roi_flatten`` makes one vector
per RoI, [C*h*w, R], for ``linear`` layers (the same matrix for every RoI).
"""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Op, per_axis, register, spatial_rank


@register
class RoIAlign(Op):
    """RoI Align (Mask R-CNN; torchvision's ``roi_align`` / ``MultiScaleRoIAlign``): a
    ``size`` grid of bilinear samples from each of ``rois`` regions of the input map, the
    RoIs stacked along the first spatial axis: [C, H, W] -> [C, rois*h, w]. More inputs (an
    FPN's levels, from which MultiScaleRoIAlign picks one per box by its size) must have the
    input's channels.

    0 MACs (bilinear sampling is resampling, as ``upsample``; PyTorch's FlopCounterMode counts
    none), no parameters. Receptive field: where a RoI lies is data (its box), so a unit may
    read any part of the image: cnnstat reports every unit as seeing the whole input
    (collapsed), and a network's receptive field stays that of its per-image layers.
    """

    name = "roi_align"
    aliases = ("roialign",)
    args = (
        Arg("rois", "int", aliases=("boxes", "proposals"), min=1, help="regions pooled (per image)"),
        Arg("size", "axes", 7, aliases=("output_size",), help="samples per RoI per axis (h, w)"),
    )

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        n = spatial_rank(shape, self.name)
        if any(len(s) != len(shape) or s[0] != shape[0] for s in shapes[1:]):
            raise OpError(
                f"every level must be a map with {shape[0]} channels, got {[list(s) for s in shapes]}"
            )
        size = per_axis(a["size"], n, "size")
        if any(v < 1 for v in size):
            raise OpError(f"size must be at least 1, got {list(size)}")
        out = (shape[0], a["rois"] * size[0], *size[1:])
        return out, self.cost(a, shapes, out), rfs[0].collapse()._replace(extent=out[1:])


@register
class RoIFlatten(Op):
    """One vector per RoI: [C, rois*h, w] (``roi_align``'s stacked RoIs) -> [C*h*w, rois],
    each RoI's values in torch's ``flatten(start_dim=1)`` order, for the fully connected
    layers of a box head (``linear``: the same matrix for every RoI). No arithmetic."""

    name = "roi_flatten"
    view = False  # the stacked RoIs are regrouped: a copy in torch (permute + reshape)
    args = (Arg("rois", "int", aliases=("boxes", "proposals"), min=1, help="RoIs stacked along the rows"),)

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        spatial_rank(shape, self.name)
        rois = a["rois"]
        if shape[1] % rois:
            raise OpError(f"{shape[1]} rows do not split into {rois} RoIs")
        per = shape[0] * shape[1] // rois
        for v in shape[2:]:
            per *= v
        out = (per, rois)
        return out, self.cost(a, shapes, out), rfs[0]
