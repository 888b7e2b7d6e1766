"""The torch side of :mod:`cnnstat.ops.select`: subsample (strided slicing of the spatial
axes), and the spatial windows that slicing imports as (``crop`` for step 1, ``subsample``
otherwise) -- used by the indexing, ``narrow`` and ``split`` handlers of
:mod:`cnnstat.torch.ops.reshape`."""

from __future__ import annotations

import torch
from torch import nn

from cnnstat.torch.ops.base import MODULES, axes, builds


class Subsample(nn.Module):
    """Every ``step``-th position of the spatial axes from ``offset`` (cnnstat ``subsample``),
    by slicing: a view. ``size``: positions kept per axis (None: all that fit)."""

    def __init__(self, step, offset=0, size=None):
        super().__init__()
        self.step, self.offset, self.size = step, offset, size

    def forward(self, x):
        n = x.dim() - 2
        step, offset = axes(self.step, n), axes(self.offset, n)
        size = (None,) * n if self.size is None else axes(self.size, n)
        index = [
            slice(o, None if t is None else o + (t - 1) * s + 1, s) for o, s, t in zip(offset, step, size)
        ]
        return x[(slice(None), slice(None), *index)]

    def extra_repr(self):
        return f"step={self.step}, offset={self.offset}, size={self.size}"


@builds("subsample")
def _build_subsample(a, shapes):
    return Subsample(a["s"], a["offset"], a["size"])


def _m_subsample(rec, call):
    m = call.module
    rec.emit(call, "subsample", {"s": m.step, "offset": m.offset, "size": m.size}, [rec.ref(call.args[0])])


MODULES[Subsample] = _m_subsample


# --- spatial windows of a channels-first layer --------------------------------------------------


def window(rec, call, base, ranges: dict, out=None):
    """Emit the layer that keeps ``ranges`` of ``base``'s spatial axes: ``{axis: (start, stop,
    step)}`` with axis 2 the first spatial axis of the channels-first tensor [B, C, *spatial]
    (Python's ``slice.indices``: 0 <= start < stop <= size, step >= 1); other axes whole.
    Step 1 everywhere: ``crop`` (size, offset); else ``subsample`` (s, offset, and size unless
    it keeps every position that fits). Returns the meta tensor the layer's output is bound to
    (channels first), or None when no layer could be made (an opaque one holds ``out``)."""
    spatial = base.shape[1:]
    offset, size, step = [], [], []
    for i, n in enumerate(spatial):
        start, stop, s = ranges.get(i + 2, (0, n, 1))
        offset.append(start)
        step.append(s)
        size.append(len(range(start, stop, s)))
    first = torch.empty((rec.batch, base.shape[0], *size), device="meta") if out is None else out
    if all(s == 1 for s in step):
        rec.emit(call, "crop", {"size": tuple(size), "offset": tuple(offset)}, [base], out=first)
    else:
        fits = all(-(-(n - o) // s) == t for n, o, s, t in zip(spatial, offset, step, size))
        a = {"s": tuple(step), "offset": tuple(offset), "size": None if fits else tuple(size)}
        rec.emit(call, "subsample", a, [base], out=first)
    return first if rec.ref(first) is not None else None
