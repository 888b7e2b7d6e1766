"""The torch side of :mod:`cnnstat.ops.reshape`: flatten, slice, shuffle, and the layout calls
(view, reshape, transpose, ...) that import as one of them or as nothing."""

from __future__ import annotations

from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, is_tensor
from cnnstat.torch.recorder import Ref, rf_for, sample_shape


class ChannelSlice(nn.Module):
    """Channels [start, stop) (cnnstat ``slice``)."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start : self.stop]

    def extra_repr(self):
        return f"start={self.start}, stop={self.stop}"


builds("flatten")(lambda a, shapes: nn.Flatten(1))
builds("shuffle")(lambda a, shapes: nn.ChannelShuffle(a["groups"]))


@builds("slice")
def _build_slice(a, shapes):
    return ChannelSlice(a["start"], shapes[0][0] if a["stop"] is None else a["stop"])


# --- import -----------------------------------------------------------------------------------


def _m_shuffle(rec, call):
    rec.emit(call, "shuffle", {"groups": call.module.groups}, [rec.ref(call.args[0])])


def _m_slice(rec, call):
    m = call.module
    rec.emit(call, "slice", {"start": m.start, "stop": m.stop}, [rec.ref(call.args[0])])


def _f_shuffle(rec, call):
    rec.emit(call, "shuffle", {"groups": int(call.arg(1, "groups"))}, [rec.ref(call.arg(0, "input"))])


def _f_split(rec, call):
    """chunk / split / tensor_split along channels: one slice layer per part."""
    x = call.arg(0, "input")
    dim = call.arg(2, "dim", 0) if call.fname in ("chunk", "split", "tensor_split") else 0
    if dim % x.dim() != 1:
        return rec.unsupported_call(call, f"splits along dim {dim} (cnnstat: channels, dim 1)")
    ref, start = rec.ref(x), 0
    for part in call.out:
        stop = start + part.shape[1]
        rec.emit(call, "slice", {"start": start, "stop": stop}, [ref], out=part)
        start = stop


def _f_narrow(rec, call):
    x, dim, start, length = (
        call.arg(0, "input"),
        call.arg(1, "dim"),
        call.arg(2, "start"),
        call.arg(3, "length"),
    )
    if dim % x.dim() != 1:
        return rec.unsupported_call(call, f"narrows dim {dim} (cnnstat: channels, dim 1)")
    rec.emit(call, "slice", {"start": int(start), "stop": int(start + length)}, [rec.ref(x)])


def _f_getitem(rec, call):
    x, index = call.args[0], call.args[1]
    if not is_tensor(x):
        return  # an element of a tuple (chunk, split): already known
    index = index if isinstance(index, tuple) else (index,)
    rest = [i for i in index[2:] if i is not Ellipsis and i != slice(None)]
    ok = (
        len(index) >= 2
        and index[0] == slice(None)
        and isinstance(index[1], slice)
        and index[1].step in (None, 1)
        and not rest
    )
    if not ok:
        return rec.unsupported_call(call, "indexes other than a channel range x[:, a:b]")
    start, stop, _ = index[1].indices(x.shape[1])
    rec.emit(call, "slice", {"start": start, "stop": stop}, [rec.ref(x)])


def _shuffle_groups(base: Ref, steps) -> int | None:
    """view (g, C/g, ...) -> transpose(1, 2) -> view back: ShuffleNet's channel shuffle."""
    steps = [s for s in steps if s[0] != "contiguous"]
    if len(steps) != 3 or steps[1][0] not in ("transpose", "permute", "swapaxes"):
        return None
    c, spatial = base.shape[0], base.shape[1:]
    first, second = steps[0][1], steps[1][1]
    if len(first) < 2 or first[2:] != spatial or first[0] * first[1] != c:
        return None
    if second != (first[1], first[0], *spatial):
        return None
    return first[0]


def layout(rec, call, x):
    """A call that only rearranges values: nothing, a flatten, or a channel shuffle."""
    src = rec.ref(x)
    base = src.base or src
    actual = sample_shape(call.out)
    steps = (*src.steps, (call.fname, actual))
    if actual == base.shape:
        groups = _shuffle_groups(base, steps)
        if groups:
            return rec.emit(call, "shuffle", {"groups": groups}, [base])
        return rec.bind(call.out, base)
    if len(actual) == 1 and len(base.shape) > 1:
        return rec.emit(call, "flatten", {}, [base])
    rec.bind(call.out, Ref(base.name, actual, rf_for(base.rf, actual), base, steps))


def _m_flatten(rec, call):
    layout(rec, call, call.args[0])


def _f_layout(rec, call):
    layout(rec, call, call.args[0] if call.args else call.kwargs["input"])


def _f_same(rec, call):
    """Copies and casts (clone, detach, to, float): the same values."""
    rec.bind(call.out, rec.ref(call.args[0] if call.args else call.kwargs["input"]))


MODULES[nn.ChannelShuffle] = _m_shuffle
MODULES[nn.Flatten] = _m_flatten
MODULES[ChannelSlice] = _m_slice
FUNCTIONS["channel_shuffle"] = FUNCTIONS["native_channel_shuffle"] = _f_shuffle
for _name in ("chunk", "split", "tensor_split"):
    FUNCTIONS[_name] = _f_split
FUNCTIONS["narrow"] = _f_narrow
FUNCTIONS["getitem"] = _f_getitem
for _name in ("view", "reshape", "flatten", "unflatten", "permute", "transpose", "swapaxes", "contiguous"):
    FUNCTIONS[_name] = _f_layout
for _name in ("squeeze", "unsqueeze"):
    FUNCTIONS[_name] = _f_layout
for _name in ("clone", "detach", "to", "float", "type_as", "type"):
    FUNCTIONS[_name] = _f_same
