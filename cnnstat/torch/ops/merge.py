"""The torch side of :mod:`cnnstat.ops.merge`: add, mul, concat; arithmetic with constants
and learned scalars."""

from __future__ import annotations

from functools import reduce

import torch
from torch import nn

from cnnstat.torch.ops.base import FUNCTIONS, MODULES, builds, is_tensor


class Add(nn.Module):
    """Element-wise sum of its inputs (cnnstat ``add``)."""

    def forward(self, *inputs):
        return reduce(torch.add, inputs)


class Mul(nn.Module):
    """Element-wise product of its inputs, broadcasting [N, C, 1, 1] (cnnstat ``mul``)."""

    def forward(self, *inputs):
        return reduce(torch.mul, inputs)


class Concat(nn.Module):
    """Concatenation along channels (cnnstat ``concat``)."""

    def forward(self, *inputs):
        return torch.cat(inputs, 1)


builds("add")(lambda a, shapes: Add())
builds("mul")(lambda a, shapes: Mul())
builds("concat")(lambda a, shapes: Concat())


def _m_merge(op):
    def handle(rec, call):
        rec.emit(call, op, {}, [rec.ref(t) for t in call.args])

    return handle


def _operands(rec, call):
    """(tracked Refs, untracked tensor operands) of an element-wise binary call."""
    values = [call.arg(0, "input"), call.arg(1, "other")]
    refs = [rec.ref(v) for v in values if is_tensor(v) and rec.ref(v) is not None]
    others = [v for v in values if is_tensor(v) and rec.ref(v) is None]
    return refs, others


def _tracked(rec, call):
    values = [call.arg(0, "input"), call.arg(1, "other")]
    return next(v for v in values if is_tensor(v) and rec.ref(v) is not None)


def _learned(rec, call, op, ref, x, w, names):
    """x (op) w, w a learned tensor (a parameter, or computed from parameters alone):
    ``pos_embed`` when w has x's shape (batch apart), ``scale`` when it holds one value per
    channel of x (however x's axes are laid out), ``scale`` (``shift``) ``shared`` when it is
    one value multiplying (added to) all of x. False when it is none of these."""
    base, perm = ref.layout(x.dim())
    if perm is None or w.dim() > x.dim() or sum(rec._numel(n) for n in names) != w.numel():
        return False  # not one learned tensor as it is (computed from others: not these ops)
    shape = (1,) * (x.dim() - w.dim()) + tuple(w.shape)  # broadcast: aligned right
    if tuple(call.out.shape) != tuple(x.shape):
        return False
    if op == "add" and shape[1:] == tuple(x.shape[1:]) and shape[0] == 1:
        rec.emit_laid(call, "pos_embed", {}, [ref], params=names)
        return True
    kept = [i for i, v in enumerate(shape) if v != 1]
    if not kept:  # one learned value for every one of x's (a skip-init gain, a learned bias)
        rec.emit_laid(call, "scale" if op == "mul" else "shift", {"shared": True}, [ref], params=names)
        return True
    if op == "mul" and len(kept) == 1 and perm[kept[0]] == 1 and shape[kept[0]] == base.shape[0]:
        rec.emit_laid(call, "scale", {}, [ref], params=names)
        return True
    return False


def _positions_broadcast(rec, call, refs) -> bool:
    """a + b where one operand repeats over the other's positions (a global-context gate
    [B, C, 1, 1] added to a map [B, C, H, W], GCNet's): that operand nearest-upsampled to the
    map (each value repeated, 0 MACs, as ``expand``), then ``add`` of equal shapes. False
    when the shapes are not so (equal, or broadcast otherwise): not handled here."""
    tensors = [call.arg(0, "input"), call.arg(1, "other")]
    a, b = (tuple(int(v) for v in t.shape) for t in tensors)
    if a == b or len(a) != len(b) or len(a) < 3 or a[:2] != b[:2]:
        return False
    small = next(
        (i for i, (x, y) in enumerate(((a, b), (b, a))) if all(u in (1, v) for u, v in zip(x, y))), None
    )
    if small is None:
        return False
    big = tensors[1 - small]
    mid = torch.empty(big.shape, device=big.device, dtype=big.dtype)
    rec.emit(call, "upsample", {"size": tuple(int(v) for v in big.shape[2:])}, [refs[small]], out=mid)
    if rec.ref(mid) is None:
        return False
    inputs = [refs[0], rec.ref(mid)] if small == 1 else [rec.ref(mid), refs[1]]
    rec.emit(call, "add", {}, inputs)
    return True


def _f_binary(op, merge=None):
    """add / mul of two tracked tensors: a merge (sub and div of two tracked tensors: the
    ``merge`` of the same shapes and cost, ``add`` and ``mul``, 0 MACs, as the ONNX import
    reads Sub and Div; an added operand repeated over the other's positions is upsampled to
    them first, :func:`_positions_broadcast`); with a constant: free (no layer). A learned
    operand of add / mul: ``pos_embed`` (added, the tensor's shape), ``scale`` (multiplied,
    one value per channel) or a shared ``scale`` / ``shift`` (one value); any other (a bias
    per position, any learned operand of sub or div) is not a cnnstat op: unsupported."""
    merge = merge or op

    def handle(rec, call):
        refs, others = _operands(rec, call)
        names = rec.param_names(others)
        if names:
            one = len(refs) == 1 and len(others) == 1 and op in ("add", "mul")
            if one and _learned(rec, call, op, refs[0], _tracked(rec, call), others[0], names):
                return
            return rec.unsupported_call(call, "an operand is a parameter", names)
        if len(refs) == 2 and merge == "add" and _positions_broadcast(rec, call, refs):
            return
        if len(refs) == 2 and merge is not None:
            return rec.emit(call, merge, {}, refs)
        if len(refs) == 2:
            return rec.unsupported_call(call, "between two tensors")
        rec.bind(call.out, refs[0])

    return handle


def _f_cat(rec, call):
    """torch.cat along the channels (of tensors laid out alike: concat), or learned tokens
    prepended along the token axis of [D, N] tokens (ViT's class token: class_token)."""
    tensors = call.arg(0, "tensors")
    dim = call.arg(1, "dim", 0) % tensors[0].dim()
    refs = [rec.ref(t) for t in tensors]
    tracked = [r for r in refs if r is not None]
    if len(tracked) == 1 and refs[-1] is not None:
        learned = [t for t in tensors[:-1]]
        names = rec.param_names(learned)
        base, perm = refs[-1].layout(tensors[-1].dim())
        if names and perm is not None and perm[dim] == 2 and len(base.shape) == 2:
            n = sum(int(t.shape[dim]) for t in learned)
            return rec.emit_laid(call, "class_token", {"n": n}, [refs[-1]], params=names)
    if any(r is None for r in refs):
        return rec.unsupported_call(call, "concatenates a constant")
    layouts = [r.layout(tensors[0].dim()) for r in refs]
    perms = {p for _, p in layouts}
    perm = next(iter(perms)) if len(perms) == 1 else None
    if perm is None or perm[dim] != 1:
        return rec.unsupported_call(call, f"concatenates along dim {dim} (cnnstat: channels, dim 1)")
    rec.emit_laid(call, "concat", {}, refs)


def _f_power(rec, call):
    """x ** p, x.square(): arithmetic with a constant (a number ``p``), free like ``x * 2`` (no
    layer, 0 MACs). A tensor exponent, or x not a tensor cnnstat follows: unsupported."""
    x = call.arg(0, "input")
    p = 2 if call.fname == "square" else call.arg(1, "exponent")
    if is_tensor(p) or not isinstance(p, (int, float)) or rec.ref(x) is None:
        return rec.unsupported_call(call, "a power other than a followed tensor to a constant number")
    rec.bind(call.out, rec.ref(x))


MODULES[Add] = _m_merge("add")
MODULES[Mul] = _m_merge("mul")
MODULES[Concat] = _m_merge("concat")
FUNCTIONS["add"] = _f_binary("add")
FUNCTIONS["mul"] = _f_binary("mul")
FUNCTIONS["sub"] = _f_binary(None, "add")
FUNCTIONS["div"] = _f_binary(None, "mul")
FUNCTIONS["pow"] = FUNCTIONS["square"] = _f_power
for _name in ("cat", "concat", "concatenate"):
    FUNCTIONS[_name] = _f_cat
