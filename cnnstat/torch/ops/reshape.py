"""The torch side of :mod:`cnnstat.ops.reshape`: flatten, slice, shuffle, and the layout calls
(view, reshape, transpose, ...) that import as one of them or as nothing."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, is_tensor
from cnnstat.torch.ops.select import window as spatial_window
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


builds("flatten")(lambda a, shapes: nn.Identity() if a.get("_frame") else nn.Flatten(1))  # frame: kept
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
    """chunk / split / tensor_split along the channels (one slice layer per part) or along a
    spatial axis of a channels-first map (one crop per part)."""
    x = call.arg(0, "input")
    dim = call.arg(2, "dim", 0) if call.fname in ("chunk", "split", "tensor_split") else 0
    dim = dim % x.dim()
    ref, start = rec.ref(x), 0
    if dim != 1 and not _spatial(ref, dim):
        return rec.unsupported_call(call, f"splits along dim {dim} (cnnstat: the channels or a spatial axis)")
    for part in call.out:
        stop = start + part.shape[dim]
        if dim == 1:
            rec.emit(call, "slice", {"start": start, "stop": stop}, [ref], out=part)
        else:
            spatial_window(rec, call, ref, {dim: (start, stop, 1)}, out=part)
        start = stop


def _spatial(ref, dim: int) -> bool:
    """``dim`` is a spatial axis of ``ref``, a channels-first map (not tokens)."""
    return (
        ref is not None
        and ref.base is None
        and 2 <= dim <= len(ref.shape)
        and (len(ref.shape) > 2 or _signal(ref))
    )


def _f_narrow(rec, call):
    x, dim, start, length = (
        call.arg(0, "input"),
        call.arg(1, "dim"),
        call.arg(2, "start"),
        call.arg(3, "length"),
    )
    dim, ref = dim % x.dim(), rec.ref(x)
    start = int(start) % int(x.shape[dim])  # a negative start counts from the end
    if dim == 1:
        return rec.emit(call, "slice", {"start": start, "stop": start + int(length)}, [ref])
    if _spatial(ref, dim):
        return spatial_window(rec, call, ref, {dim: (start, start + int(length), 1)}, out=call.out)
    rec.unsupported_call(call, f"narrows dim {dim} (cnnstat: the channels or a spatial axis)")


def _index(index, n: int) -> list | None:
    """``x[index]`` of an ``n``-axis tensor as one entry per axis (slice or int); None for
    anything else (None/newaxis, tensors, lists)."""
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) > 1:
        return None
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = (*index[:at], *(slice(None),) * (n - len(index) + 1), *index[at + 1 :])
    index = (*index, *(slice(None),) * (n - len(index)))
    if len(index) != n or not all(isinstance(i, (slice, int)) and not isinstance(i, bool) for i in index):
        return None
    return list(index)


def _f_getitem(rec, call):
    """Indexing a tracked tensor, however its axes are laid out (see :class:`Ref`): ranges
    (step 1) or single positions of the channels (``slice``; ``x[:, i]`` drops the axis) and
    of the spatial axes (``crop``; with a step, ``subsample``), both at once as a slice then
    a window; or the tokens of [D, N] tokens (``take``: ``x[:, 0]`` the class token as ViT's
    head reads it, ``x[:, 1:]`` the rest). A [C, L] whose L positions are its receptive
    field's units (a 1-D signal, or tokens that are exactly a 1-D map's positions) is
    sliced as a map."""
    x, index = call.args[0], call.args[1]
    if not is_tensor(x):
        return  # an element of a tuple (chunk, split): already known
    src = rec.ref(x)
    if src is None:  # a constant indexed by a tensor cnnstat follows
        return rec.unsupported_call(call, "indexes a tensor cnnstat does not follow")
    base, perm = src.layout(x.dim())
    entries = _index(index, x.dim())
    if entries is None or perm is None:
        return rec.unsupported_call(call, "indexes otherwise than by ranges and positions of the axes")
    ranges, dropped = {}, set()
    for k, entry in enumerate(entries):
        size = int(x.shape[k])
        if isinstance(entry, slice):
            start, stop, step = entry.indices(size)
            if (start, stop, step) == (0, size, 1):
                continue
            if stop <= start:
                return rec.unsupported_call(call, f"an empty range of axis {k}")
        else:
            if not -size <= entry < size:
                return rec.unsupported_call(call, f"index {entry} is outside axis {k}")
            start, stop, step = entry % size, entry % size + 1, 1
            dropped.add(k)
        if perm[k] is None or perm[k] == 0:
            return rec.unsupported_call(call, "indexes the batch or an inserted axis")
        ranges[perm[k]] = (start, stop, step)
    if not ranges:
        return rec.bind(call.out, src)
    keep = tuple(p for j, p in enumerate(perm) if j not in dropped)
    if len(base.shape) == 2 and 2 in ranges and not _signal(base):
        return _take(rec, call, base, src, ranges, keep, bool(dropped))
    cur = base
    if 1 in ranges:
        start, stop, step = ranges.pop(1)
        if step != 1:
            return rec.unsupported_call(call, "indexes the channels with a step (cnnstat: slice, step 1)")
        first = channels_first_like(rec, cur, out_channels=stop - start)
        rec.emit(call, "slice", {"start": start, "stop": stop}, [cur], out=first)
        cur = rec.ref(first)
        if cur is None:
            return
    if ranges:
        first = spatial_window(rec, call, cur, ranges)
        if first is None:
            return
    if not _laid_out(call.out, first, keep):
        why = f"cnnstat's window gives {list(first.shape[1:])}, laid out otherwise"
        return rec.unsupported_call(call, why)
    rec.relay(first, call.out, src.steps, keep)


def _signal(base) -> bool:
    """A [C, L] layer whose L positions are the units of its 1-D receptive field (a signal,
    or tokens made from a 1-D map without extra tokens): sliced as a map, not as tokens."""
    rf = base.rf
    return rf is not None and not rf.collapsed and len(rf.size) == 1 and tuple(rf.extent) == base.shape[1:]


def _laid_out(out, first, keep) -> bool:
    """torch's ``out`` is the channels-first ``first`` laid out as ``keep`` (size-1 axes of
    ``first`` may be missing)."""
    if len(keep) != out.dim():
        return False
    if any(p is not None and int(out.shape[j]) != int(first.shape[p]) for j, p in enumerate(keep)):
        return False
    kept = {p for p in keep if p is not None}
    return all(int(first.shape[a]) == 1 for a in range(first.dim()) if a not in kept)


def _take(rec, call, base, src, ranges, keep, single):
    """x[:, 0], x[:, 1:] of tokens [D, N]: ``take``."""
    if len(ranges) != 1:
        return rec.unsupported_call(call, "indexes tokens [D, N] along more than the token axis")
    start, stop, step = ranges[2]
    if step != 1:
        return rec.unsupported_call(call, "indexes tokens with a step")
    if not single:  # a range: the axis stays
        first = torch.empty((rec.batch, base.shape[0], stop - start), device="meta")
        rec.emit(call, "take", {"index": start, "stop": stop}, [base], out=first)
        return rec.relay(first, call.out, src.steps, keep)
    first = torch.empty((rec.batch, base.shape[0]), device="meta")
    rec.emit(call, "take", {"index": start}, [base], out=first)
    return rec.relay(first, call.out, src.steps, tuple(p if p is None or p < 2 else p - 1 for p in keep))


def channels_first_like(rec, base, out_channels: int):
    return torch.empty((rec.batch, out_channels, *base.shape[1:]), device="meta")


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


def _dims(call, n: int, first: int, name: str):
    """The dims a permute-like call names: varargs from ``first`` on, or one list."""
    rest = call.args[first:]
    if not rest:
        rest = call.kwargs.get(name, ())
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = rest[0]
    return [int(d) % n for d in rest] if isinstance(rest, (list, tuple)) else [int(rest) % n]


def _moved(call, n: int) -> list | None:
    """Source axis of every output axis of ``movedim(x, source, destination)``."""
    src, dst = call.arg(1, "source"), call.arg(2, "destination")
    src = [src] if isinstance(src, int) else list(src)
    dst = [dst] if isinstance(dst, int) else list(dst)
    src, dst = [s % n for s in src], [d % n for d in dst]
    order = [None] * n
    for a, b in zip(src, dst):
        order[b] = a
    rest = iter(i for i in range(n) if i not in src)
    return [next(rest) if v is None else v for v in order]


def _groups(before, after) -> list | None:
    """How a reshape from ``before`` to ``after`` (full shapes) regroups axes: a list of
    (input axes, output axes) pairs in order, each 1-to-1, a merge (several -> one), a split
    (one -> several), an inserted (() -> size-1 axis) or a dropped size-1 axis (-> ());
    None where axes are mixed otherwise."""
    i = j = 0
    out = []
    while i < len(before) or j < len(after):
        if i < len(before) and j < len(after) and before[i] == after[j]:
            out.append(((i,), (j,)))
            i, j = i + 1, j + 1
        elif i < len(before) and before[i] == 1:
            out.append(((i,), ()))
            i += 1
        elif j < len(after) and after[j] == 1:
            out.append(((), (j,)))
            j += 1
        elif i < len(before) and j < len(after):
            a, b = [i], [j]
            pa, pb = before[i], after[j]
            while pa != pb:
                if pa < pb and a[-1] + 1 < len(before):
                    a.append(a[-1] + 1)
                    pa *= before[a[-1]]
                elif pb < pa and b[-1] + 1 < len(after):
                    b.append(b[-1] + 1)
                    pb *= after[b[-1]]
                else:
                    return None
            if len(a) > 1 and len(b) > 1:
                return None
            out.append((tuple(a), tuple(b)))
            i, j = a[-1] + 1, b[-1] + 1
        else:
            return None
    return out


def _reshaped(rec, call, base: Ref, perm, before, after):
    """(base, perm) of a reshape of a tensor laid out as ``perm`` over ``base``: axes only
    rearranged; or the base's positions merged into one axis (``tokens``: a layer) or a token
    axis split into a map (``to_map``: a layer); (base, None) for anything else; None when
    the layer could not be made (an opaque layer holds the output)."""
    groups = _groups(before, after)
    if groups is None:
        return base, None
    new = [None] * len(after)
    merged = split = None
    for a, b in groups:
        if len(a) == 1 and len(b) == 1:
            new[b[0]] = perm[a[0]]
        elif not b:  # a dropped size-1 axis
            if perm[a[0]] == 0:
                return base, None  # the batch
        elif not a:
            new[b[0]] = None
        elif len(b) == 1:
            if merged is not None:
                return base, None
            merged = ([perm[k] for k in a], b[0])
        else:
            if split is not None or merged is not None:
                return base, None
            split = (perm[a[0]], b)
    if merged is not None:
        axes, at = merged
        spatial = tuple(range(2, len(base.shape) + 1))
        if split is not None or tuple(axes) != spatial or len(spatial) < 2:
            return base, None
        new[at] = 2
        return base, None, _tokens_maker(rec, call, base, tuple(new))
    if merged is None and split is None and new.count(None) == 1:
        # an inserted size-1 axis is the base's missing one (x[:, i] then unsqueeze(1))
        missing = [
            k for k in range(len(base.shape) + 1) if k not in new and (k == 0 or base.shape[k - 1] == 1)
        ]
        if len(missing) == 1 and missing[0] != 0:
            new[new.index(None)] = missing[0]
    if split is not None:
        axis, at = split
        if axis != 2 or len(base.shape) != 2:
            return base, None
        size = tuple(int(after[k]) for k in at)
        first = torch.empty((rec.batch, base.shape[0], *size), device="meta")
        rec.emit(call, "to_map", {"size": size}, [base], out=first)
        base = rec.ref(first)
        if base is None:
            return None
        for n, k in enumerate(at):
            new[k] = 2 + n
        return base, tuple(new)
    return base, tuple(new)


def _tokens_maker(rec, call, base, perm):
    """The ``tokens`` layer of ``base`` (its positions merged into one axis), made when a
    call needs the tokens' layout (ViT's transpose to [B, N, D]); until then the merge is a
    pending reshape (``x.view(B, C, -1).mean(-1)`` is global pooling, no tokens layer)."""

    def make():
        first = torch.empty((rec.batch, base.shape[0], math.prod(base.shape[1:])), device="meta")
        rec.emit(call, "tokens", {}, [base], out=first)
        made = rec.ref(first)
        return None if made is None else (made, perm)

    return make


def _rearranged(rec, call, x, base, perm):
    """(base, perm) of the call's output (see :class:`Ref`), or (base, None); None: an
    opaque layer holds it."""
    n, fname = x.dim(), call.fname
    out = call.out
    if perm is None:
        return base, None
    if fname == "permute":
        dims = _dims(call, n, 1, "dims")
        return base, tuple(perm[d] for d in dims) if len(dims) == n else None
    if fname in ("transpose", "swapaxes", "swapdims"):
        d0 = int(call.arg(1, "dim0", call.kwargs.get("axis0", 0))) % n
        d1 = int(call.arg(2, "dim1", call.kwargs.get("axis1", 0))) % n
        new = list(perm)
        new[d0], new[d1] = new[d1], new[d0]
        return base, tuple(new)
    if fname in ("movedim", "moveaxis"):
        return base, tuple(perm[i] for i in _moved(call, n))
    if fname == "contiguous" or tuple(out.shape) == tuple(x.shape):
        return base, perm
    return _reshaped(rec, call, base, perm, tuple(x.shape), tuple(out.shape))


def layout(rec, call, x):
    """A call that only rearranges values: nothing, a flatten, a channel shuffle, tokens (the
    positions of a map merged into one axis) or to_map (the reverse), or a pending layout
    (:class:`Ref` ``perm``) that calls acting per position follow."""
    src = rec.ref(x)
    base, perm = src.layout(x.dim())
    actual = sample_shape(call.out)
    steps = (*src.steps, (call.fname, actual))
    if len(actual) == 1 and len(base.shape) > 1:
        return rec.emit(call, "flatten", {}, [base])
    make = None
    if perm is not None:
        found = _rearranged(rec, call, x, base, perm)
        if found is None:
            return  # a layer meant to make it could not: an opaque one holds the output
        base, perm, *make = found
        make = make[0] if make else None
    if make is not None:  # tokens, made when a call needs them
        return rec.bind(call.out, Ref(base.name, actual, rf_for(base.rf, actual), base, steps, None, make))
    if perm == tuple(range(len(base.shape) + 1)):
        return rec.bind(call.out, base)
    if actual == base.shape and perm is None:
        groups = _shuffle_groups(base, steps)
        if groups:
            return rec.emit(call, "shuffle", {"groups": groups}, [base])
        return rec.bind(call.out, base)
    rec.bind(call.out, Ref(base.name, actual, rf_for(base.rf, actual), base, steps, perm))


def _m_flatten(rec, call):
    layout(rec, call, call.args[0])


def _f_layout(rec, call):
    layout(rec, call, call.args[0] if call.args else call.kwargs["input"])


MVIT = "torchvision.models.video.mvit"


def _f_squeeze(rec, call):
    """squeeze / unsqueeze, and torchvision MViT's ``_unsqueeze(x, target_dim, expand_dim)``
    (``torch.fx.wrap``-ed, so torch.fx records it as one call whose name canonicalises to
    ``unsqueeze``): it returns a tuple, x unsqueezed at ``expand_dim`` when it has
    ``target_dim - 1`` axes (else x), and x's former number of axes (an int, for
    ``_squeeze``, which returns a tensor and needs nothing else). Its tensor is the layout's
    output; the ``[0]`` that follows reads that tensor back. Another function of that name
    returning something other than a tensor is not understood: reported, not guessed."""
    if not is_tensor(call.out):
        out = call.out
        if call.label != f"{MVIT}._unsqueeze" or not (
            isinstance(out, tuple) and len(out) == 2 and is_tensor(out[0]) and isinstance(out[1], int)
        ):
            return rec.unsupported_call(call, "returns something other than a tensor")
        call = copy.copy(call)
        call.out = out[0]
    _f_layout(rec, call)


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
for _name in ("swapdims", "movedim", "moveaxis", "view_as", "reshape_as"):
    FUNCTIONS[_name] = _f_layout
for _name in ("squeeze", "unsqueeze"):
    FUNCTIONS[_name] = _f_squeeze
for _name in ("clone", "detach", "to", "float", "type_as", "type"):
    FUNCTIONS[_name] = _f_same
