"""The torch side of :mod:`cnnstat.ops.merge`: add, mul, concat."""

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


def _f_binary(op):
    """add / mul of two tracked tensors: a merge; with a constant: free (no layer). A
    parameter operand (a learned scale or offset) is not a cnnstat op: unsupported."""

    def handle(rec, call):
        refs, others = _operands(rec, call)
        if rec.param_names(others):
            return rec.unsupported_call(call, "an operand is a parameter", rec.param_names(others))
        if len(refs) == 2 and op is not None:
            return rec.emit(call, op, {}, refs)
        if len(refs) == 2:
            return rec.unsupported_call(call, "between two tensors")
        rec.bind(call.out, refs[0])

    return handle


def _f_cat(rec, call):
    tensors = call.arg(0, "tensors")
    dim = call.arg(1, "dim", 0)
    refs = [rec.ref(t) for t in tensors]
    if any(r is None for r in refs):
        return rec.unsupported_call(call, "concatenates a constant")
    if dim % tensors[0].dim() != 1:
        return rec.unsupported_call(call, f"concatenates along dim {dim} (cnnstat: channels, dim 1)")
    rec.emit(call, "concat", {}, refs)


MODULES[Add] = _m_merge("add")
MODULES[Mul] = _m_merge("mul")
MODULES[Concat] = _m_merge("concat")
FUNCTIONS["add"] = _f_binary("add")
FUNCTIONS["mul"] = _f_binary("mul")
FUNCTIONS["sub"] = _f_binary(None)
FUNCTIONS["div"] = _f_binary(None)
for _name in ("cat", "concat", "concatenate"):
    FUNCTIONS[_name] = _f_cat
