"""The torch modules cnnstat's ops need beyond ``torch.nn``: merges, a channel slice, a
locally connected layer, TensorFlow-style 'same' padding, and the module that runs a graph.

Each is small and keeps its arithmetic in plain torch calls that fvcore and PyTorch's flop
counter see: the locally connected layer multiplies with ``torch.bmm``.
"""

from __future__ import annotations

import math
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn


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


class ChannelSlice(nn.Module):
    """Channels [start, stop) (cnnstat ``slice``)."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start : self.stop]

    def extra_repr(self):
        return f"start={self.start}, stop={self.stop}"


def _pad_arg(pads) -> tuple:
    """((before, after) per axis, first axis first) -> F.pad's order (last axis first)."""
    return tuple(v for before, after in reversed(pads) for v in (before, after))


class _SamePad:
    """Mixin: pad (before, after) per axis with ``F.pad`` before the layer (TensorFlow's 'same',
    the extra pixel after); ``cnnstat_padding`` keeps the spec's value for the importer."""

    pad_value = 0.0

    def _set_pads(self, pads, spec_padding):
        self.pads = _pad_arg(pads)
        self.cnnstat_padding = spec_padding

    def forward(self, x):
        return super().forward(F.pad(x, self.pads, value=self.pad_value))


class SamePadConv1d(_SamePad, nn.Conv1d):
    pass


class SamePadConv2d(_SamePad, nn.Conv2d):
    pass


class SamePadMaxPool1d(_SamePad, nn.MaxPool1d):
    pad_value = -math.inf


class SamePadMaxPool2d(_SamePad, nn.MaxPool2d):
    pad_value = -math.inf


class SamePadAvgPool1d(_SamePad, nn.AvgPool1d):
    pass


class SamePadAvgPool2d(_SamePad, nn.AvgPool2d):
    pass


SAME_PAD = (
    SamePadConv1d,
    SamePadConv2d,
    SamePadMaxPool1d,
    SamePadMaxPool2d,
    SamePadAvgPool1d,
    SamePadAvgPool2d,
)


class LocallyConnected(nn.Module):
    """A convolution whose filters are not shared across positions (cnnstat ``local``).

    Arguments as cnnstat's: ``in_size`` is the input's spatial size (the weights depend on it),
    ``kernel_size``, ``stride``, ``padding`` (int, per axis, ``'same'`` or ``'valid'``) and
    ``dilation`` an int or one per axis. ``weight`` is [positions, C_in*k_h*k_w, C_out] and
    ``bias`` [C_out, *out_size], so ``sum(p.numel())`` is cnnstat's count. The forward unfolds
    the input into columns and multiplies each position's column by its own filters in one
    ``torch.bmm``: fvcore and PyTorch's flop counter count positions x C_in*k_h*k_w x C_out
    multiply-accumulates, the MACs of the equivalent convolution. 1-D inputs [N, C, L] run as
    [N, C, 1, L].
    """

    def __init__(
        self, in_channels, out_channels, in_size, kernel_size, stride=1, padding=0, dilation=1, bias=True
    ):
        super().__init__()
        from cnnstat.ops.window import paddings

        n = len(in_size)
        axes = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * n  # noqa: E731
        self.in_channels, self.out_channels, self.in_size = in_channels, out_channels, tuple(in_size)
        self.kernel_size, self.stride, self.dilation = axes(kernel_size), axes(stride), axes(dilation)
        self.padding = padding
        pads = paddings(padding, self.in_size, self.kernel_size, self.stride, self.dilation)
        self.out_size = tuple(
            (size + p[0] + p[1] - d * (k - 1) - 1) // s + 1
            for size, p, k, s, d in zip(self.in_size, pads, self.kernel_size, self.stride, self.dilation)
        )
        lift = (lambda v: (1, *v)) if n == 1 else tuple  # noqa: E731
        self._k, self._s, self._d = lift(self.kernel_size), lift(self.stride), lift(self.dilation)
        self._pads = _pad_arg(([(0, 0)] if n == 1 else []) + list(pads))
        fan_in = in_channels * math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(math.prod(self.out_size), fan_in, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels, *self.out_size)) if bias else None
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        one_d = len(self.in_size) == 1
        if one_d:
            x = x.unsqueeze(2)
        if any(self._pads):
            x = F.pad(x, self._pads)
        cols = F.unfold(x, self._k, dilation=self._d, stride=self._s)  # [N, C_in*k_h*k_w, L]
        out = torch.bmm(cols.permute(2, 0, 1), self.weight)  # [L, N, C_out]
        out = out.permute(1, 2, 0).reshape(x.shape[0], self.out_channels, *self.out_size)
        return out if self.bias is None else out + self.bias

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"
        )


class SpecNet(nn.Module):
    """Runs a cnnstat graph: each layer's module (at the layer's dotted name) on the outputs
    of the layers it reads. Built by :func:`cnnstat.torch.build`.

    Returns the last layer's output; a graph with other sinks (layers nothing reads, such as
    an auxiliary classifier) returns them all, in order, as a tuple.
    """

    def __init__(self, plan: list):
        super().__init__()
        self._plan = plan  # [(name, input names)] in order
        read = {i for _, inputs in plan for i in inputs}
        sinks = [name for name, _ in plan if name not in read]
        last = plan[-1][0]
        self._outputs = [n for n in sinks if n != last] + [last]

    def forward(self, x):
        env = {"input": x}
        for name, inputs in self._plan:
            env[name] = self.get_submodule(name)(*[env[i] for i in inputs])
        if len(self._outputs) == 1:
            return env[self._outputs[0]]
        return tuple(env[n] for n in self._outputs)
