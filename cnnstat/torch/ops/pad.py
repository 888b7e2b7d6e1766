"""The torch side of :mod:`cnnstat.ops.pad`: pad (torch's padding modules) and crop (slicing)."""

from __future__ import annotations

from torch import nn

from cnnstat.ops.window import sides
from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, nd, pad_arg

_CLASSES = {
    "constant": (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d),
    "reflect": (nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d),
    "replicate": (nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d),
    "circular": (nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d),
}


class Crop(nn.Module):
    """A window of the spatial axes (cnnstat ``crop``), by slicing: a view.

    ``size``: the window's size (int or per axis), or None to crop to the spatial size of the
    second argument of ``forward``; ``offset``: its start per axis (int, per axis, or None:
    centred, ``(input - size) // 2``).
    """

    def __init__(self, size=None, offset=None):
        super().__init__()
        self.size, self.offset = size, offset

    def window(self, shape, like=None):
        """((start, stop) per spatial axis) for an input of ``shape`` (with batch)."""
        spatial = tuple(shape[2:])
        n = len(spatial)
        size = tuple(like[2:]) if like is not None else _axes(self.size, n)
        offset = (
            tuple((v - s) // 2 for v, s in zip(spatial, size))
            if self.offset is None
            else _axes(self.offset, n)
        )
        return [(o, o + s) for o, s in zip(offset, size)]

    def forward(self, x, like=None):
        index = tuple(slice(a, b) for a, b in self.window(x.shape, None if like is None else like.shape))
        return x[(slice(None), slice(None), *index)]

    def extra_repr(self):
        return f"size={self.size}, offset={self.offset}"


def _axes(v, n) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


# --- build ------------------------------------------------------------------------------------


@builds("pad")
def _build_pad(a, shapes):
    shape = shapes[0]
    pads = pad_arg(sides(a["p"], len(shape) - 1))
    cls = nd(shape, *_CLASSES[a["mode"]])
    return cls(pads, a["value"]) if a["mode"] == "constant" else cls(pads)


@builds("crop")
def _build_crop(a, shapes):
    return Crop(a["size"], a["offset"])


# --- import -----------------------------------------------------------------------------------


def _pairs(pad, rank):
    """F.pad's flat amounts (last axis first) -> (before, after) per spatial axis, first axis
    first; None where they pad the channel or batch axis."""
    pad = [int(v) for v in pad]
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)][::-1]
    extra = len(pairs) - rank
    if extra > 0:
        if any(v for pair in pairs[:extra] for v in pair):
            return None
        pairs = pairs[extra:]
    return [(0, 0)] * (rank - len(pairs)) + pairs


def padded(rec, call, x, pad, mode, value):
    """A pad layer (F.pad, the padding modules); all amounts negative or zero: a crop."""
    ref = rec.ref(x)
    rank = len(ref.shape) - 1
    if rank < 1:
        return rec.unsupported_call(call, "pads a flat tensor")
    pairs = _pairs(pad, rank)
    if pairs is None:
        return rec.unsupported_call(call, "pads the channel or batch axis (cnnstat pads spatial axes)")
    flat = [v for pair in pairs for v in pair]
    if all(v <= 0 for v in flat) and any(flat):
        size = [s + b + e for s, (b, e) in zip(ref.shape[1:], pairs)]
        return rec.emit(call, "crop", {"size": tuple(size), "offset": tuple(-b for b, _ in pairs)}, [ref])
    if any(v < 0 for v in flat):
        return rec.unsupported_call(call, "pads some sides and crops others")
    a = {"p": tuple(pairs), "mode": mode}
    if mode == "constant":
        a["value"] = float(value or 0.0)
    rec.emit(call, "pad", a, [ref])


def _m_pad(mode):
    def handle(rec, call):
        m = call.module
        padded(rec, call, call.args[0], m.padding, mode, getattr(m, "value", 0.0))

    return handle


def _f_pad(rec, call):
    mode = call.arg(2, "mode", "constant")
    if mode not in _CLASSES:
        return rec.unsupported_call(call, f"mode '{mode}'")
    padded(rec, call, call.arg(0, "input"), call.arg(1, "pad"), mode, call.arg(3, "value", None))


def _m_crop(rec, call):
    m, x = call.module, call.args[0]
    like = call.args[1] if len(call.args) > 1 else call.kwargs.get("like")
    if like is not None:
        if rec.ref(like) is None:
            return rec.unsupported_call(call, "crops to the size of an untracked tensor")
        return rec.emit(call, "crop", {"offset": m.offset}, [rec.ref(x), rec.ref(like)])
    rec.emit(call, "crop", {"size": m.size, "offset": m.offset}, [rec.ref(x)])


for _mode, _classes in _CLASSES.items():
    for _cls in _classes:
        MODULES[_cls] = _m_pad(_mode)
for _cls in (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d):
    MODULES[_cls] = _m_pad("constant")
MODULES[Crop] = _m_crop
FUNCTIONS["pad"] = _f_pad
