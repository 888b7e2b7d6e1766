"""How an ONNX tensor's axes lie over the cnnstat tensor it holds the values of.

cnnstat's tensors are channels first without the batch: ``(C, H, W)``, tokens ``(D, N)``. An
ONNX tensor is the same values under any arrangement the exporter chose: ``[1, C, H, W]``,
``[1, N, D]`` after a transpose, ``[1, heads, N, d]`` after a reshape that splits the
channels into heads. A :data:`View` says which part of the cnnstat tensor each ONNX axis
walks: per ONNX axis (batch included), a tuple of *pieces* ``(axis, stride, size)``, major
first. A piece is ``size`` steps of ``stride`` along the cnnstat ``axis``: the channels of a
``(96, N)`` tensor split into ``(3, heads 4, d 8)`` are the pieces ``(0, 32, 3)``,
``(0, 8, 4)``, ``(0, 1, 8)``. Pieces of size 1 are left out, so an axis of size 1 (the batch
of one image, a pooled map's ``1 x 1``) is the empty tuple.

Transposes permute the ONNX axes; reshapes regroup the pieces in order (splitting a piece
where a new axis ends inside it). Nothing is copied: a layout change is no layer, unless it
makes what cnnstat writes as one (``flatten``, ``tokens``, ``to_map``: see
:mod:`cnnstat.onnx.convert`).
"""

from __future__ import annotations

from cnnstat.ops.base import prod

Piece = tuple  # (cnnstat axis, stride, size)
View = tuple  # per ONNX axis: a tuple of pieces


def canonical(shape: tuple) -> View:
    """``[1, *shape]``: the batch, then each cnnstat axis in order (channels first)."""
    return ((),) + tuple(((j, 1, n),) if n > 1 else () for j, n in enumerate(shape))


def raw(dims: tuple) -> tuple:
    """(cnnstat shape, view) of a new tensor laid out as ONNX ``dims``: the batch axis
    dropped when it is 1, else kept as the first axis (a tensor that folded something into
    the batch, or has no batch)."""
    if dims and dims[0] == 1:
        shape = tuple(dims[1:])
        return shape, canonical(shape)
    shape = tuple(dims)
    return shape, tuple(((j, 1, n),) if n > 1 else () for j, n in enumerate(shape))


def dims(view: View) -> tuple:
    """The ONNX dims the view has."""
    return tuple(prod(p[2] for p in axis) for axis in view)


def whole(shape: tuple, j: int) -> tuple:
    """The pieces of all of cnnstat axis ``j``."""
    return ((j, 1, shape[j]),) if shape[j] > 1 else ()


def axis_of(view: View, k: int, shape: tuple):
    """The cnnstat axis ONNX axis ``k`` is, all of it and alone (None when it is not, or
    when it is of size 1)."""
    pieces = view[k]
    if len(pieces) == 1:
        j, stride, size = pieces[0]
        if stride == 1 and size == shape[j]:
            return j
    return None


def is_canonical(view: View, shape: tuple) -> bool:
    return view == canonical(shape)


def channels_first(view: View, shape: tuple) -> bool:
    """The ONNX tensor is ``[1, C, *spatial]`` of this cnnstat tensor, up to axes of size 1:
    the batch empty, and the non-empty axes the cnnstat axes whole, in order, the channels
    (when more than one) right after the batch."""
    if not view or view[0]:
        return False
    order = []
    for k, pieces in enumerate(view[1:], start=1):
        if not pieces:
            continue
        j = axis_of(view, k, shape)
        if j is None:
            return False
        if j == 0 and k != 1:
            return False
        order.append(j)
    return order == sorted(order)


def normalize(view: View) -> View:
    """Adjacent pieces of one axis that continue each other merged into one."""
    out = []
    for pieces in view:
        merged = []
        for p in pieces:
            if merged and merged[-1][0] == p[0] and merged[-1][1] == p[1] * p[2]:
                j, _, size = merged[-1]
                merged[-1] = (j, p[1], size * p[2])
            else:
                merged.append(p)
        out.append(tuple(merged))
    return tuple(out)


def transpose(view: View, perm) -> View:
    return tuple(view[p] for p in perm)


def reshape(view: View, new_dims) -> View | None:
    """The view after a reshape to ``new_dims`` (row-major, as ONNX's Reshape), or None when
    a new axis would end inside a piece it cannot split evenly."""
    if any(size < 1 for size in new_dims):
        return None
    seq = [p for axis in view for p in axis]
    out = []
    for size in new_dims:
        group, need = [], size
        while need > 1:
            if not seq:
                return None
            j, stride, n = seq.pop(0)
            if need % n == 0:
                group.append((j, stride, n))
                need //= n
            elif n % need == 0:  # the axis ends inside the piece: split it, major part here
                group.append((j, stride * (n // need), need))
                seq.insert(0, (j, stride, n // need))
                need = 1
            else:
                return None
        out.append(tuple(group))
    if seq:
        return None
    return normalize(tuple(out))


def with_axis(view: View, j: int, size: int) -> View:
    """The view of a tensor whose cnnstat axis ``j`` became ``size`` long (a linear layer's
    output channels); axis ``j`` must lie whole in one ONNX axis, or be of size 1 there."""
    out = []
    for pieces in view:
        if any(p[0] == j for p in pieces):
            out.append(((j, 1, size),) if size > 1 else ())
        else:
            out.append(pieces)
    return tuple(out)


def holds_whole(view: View, shape: tuple, j: int):
    """The ONNX axis holding all of cnnstat axis ``j``, alone; None when no axis does."""
    for k in range(len(view)):
        if axis_of(view, k, shape) == j:
            return k
    return None


def covers_all(pieces, shape: tuple, axes) -> bool:
    """``pieces`` are all of the cnnstat ``axes`` (each whole, row-major: earlier axes major)."""
    expected = tuple((j, 1, shape[j]) for j in axes if shape[j] > 1)
    return tuple(pieces) == expected


def channels_shuffled(view: View, shape: tuple) -> bool:
    """``[1, C, *spatial]`` of this tensor with its channels in another order (a channel
    shuffle written as reshape, transpose, reshape): ONNX axis 1 holds pieces of the
    channels alone, all of them; every other axis is a whole spatial axis, in order. Counts
    and fields do not depend on the channels' order."""
    if len(view) != len(shape) + 1 or view[0] or not view[1]:
        return False
    if any(p[0] != 0 for p in view[1]) or prod(p[2] for p in view[1]) != shape[0]:
        return False
    return all(view[k] == whole(shape, k - 1) for k in range(2, len(view)))
