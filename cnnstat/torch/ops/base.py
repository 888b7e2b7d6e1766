"""The torch side's registries, and what its op families share.

Every file in this folder mirrors the file of the same name in :mod:`cnnstat.ops`: for the ops
defined there, it says

- how each op is **built** as a torch module: ``@builds("conv")`` on ``fn(a, shapes) ->
  nn.Module``, where ``a`` are the layer's resolved arguments and ``shapes`` its input shapes
  (without batch) -- used by :func:`cnnstat.torch.build`;
- which torch **modules and functions import** as the op: ``MODULES[nn.Conv2d] = handler`` and
  ``FUNCTIONS["conv2d"] = handler`` (functions by their canonical name, see
  :func:`cnnstat.torch.mapping.canonical`). A handler ``(rec, call)`` reads the call and asks the
  recorder for a layer of a cnnstat op (``rec.emit``); the op's own handler in
  :mod:`cnnstat.ops` does the arithmetic. Anything without a handler is listed as unsupported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnstat.errors import CnnstatError
from cnnstat.ops.window import paddings

BUILDERS: dict = {}  # cnnstat op name -> fn(a, shapes) -> nn.Module
MODULES: dict = {}  # nn.Module subclass -> handler(rec, call)
FUNCTIONS: dict = {}  # canonical function name -> handler(rec, call)
# Third-party classes and functions by qualified name ('torchvision.models.swin_transformer.
# ShiftedWindowAttention'), so that mapping them imports nothing (torchvision costs seconds).
NAMED_MODULES: dict = {}  # 'module.Class' -> handler(rec, call)
NAMED_FUNCTIONS: dict = {}  # 'module.function' (the call's label) -> handler(rec, call)


def builds(*ops):
    """Decorator: ``fn(a, shapes)`` builds the torch module of cnnstat ops ``ops``."""

    def register(fn):
        for op in ops:
            if op in BUILDERS:
                raise RuntimeError(f"op {op!r} has two torch builders")
            BUILDERS[op] = fn
        return fn

    return register


# --- helpers for builders ---------------------------------------------------------------------


def nd(shape, *classes):
    """The class for ``shape``'s spatial rank: ``nd(shape, nn.Conv1d, nn.Conv2d, nn.Conv3d)``."""
    rank = len(shape) - 1
    if not 1 <= rank <= len(classes):
        raise CnnstatError(f"no torch module for a {rank}-D input {list(shape)}")
    return classes[rank - 1]


def axes(v, n) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def window(a, shape):
    """``(k, s, d, pads)`` of a sliding-window op's arguments over ``shape`` = (C, *spatial)."""
    n = len(shape) - 1
    k = axes(a["k"], n)
    s = axes(a["s"] if a.get("s") is not None else a["k"], n)
    d = axes(a.get("d", 1), n)
    return k, s, d, paddings(a.get("p", 0), shape[1:], k, s, d)


def pad_arg(pads) -> tuple:
    """((before, after) per axis, first axis first) -> F.pad's order (last axis first)."""
    return tuple(v for before, after in reversed(pads) for v in (before, after))


class SamePad:
    """Mixin for a torch layer: pad ``(before, after)`` per axis with ``F.pad`` first (padding
    that torch's own ``padding`` cannot express: TensorFlow's 'same' with the extra pixel
    after, or any asymmetric padding); ``cnnstat_padding`` keeps the spec's value for the
    importer."""

    pad_value = 0.0

    def _set_pads(self, pads, spec_padding):
        self.pads = pad_arg(pads)
        self.cnnstat_padding = spec_padding

    def forward(self, x):
        return super().forward(F.pad(x, self.pads, value=self.pad_value))


NEG_INF = -math.inf


# --- helpers for import handlers --------------------------------------------------------------


def t(v):
    """torch sizes and tuples -> tuples of ints; anything else unchanged."""
    if isinstance(v, (list, tuple, torch.Size)):
        return tuple(int(x) for x in v)
    return v


def elementwise(op):
    """Handler: a one-input op without arguments (relu, sigmoid, ...)."""

    def handle(rec, call):
        rec.emit(call, op, {}, [rec.ref(call.args[0] if call.args else call.kwargs["input"])])

    return handle


def is_tensor(v) -> bool:
    return isinstance(v, torch.Tensor)
