"""torch modules and functions -> cnnstat ops: the lookup.

The handlers live with their op family in :mod:`cnnstat.torch.ops` (``cnnstat/torch/ops/conv.py``
maps ``nn.Conv2d`` and ``F.conv2d`` to cnnstat's ``conv``). A handler asks the recorder for a
layer of an existing cnnstat op (``rec.emit``), whose own handler in :mod:`cnnstat.ops` does the
arithmetic. Layout calls (view, flatten, transpose, ...) become ``flatten`` or ``shuffle`` layers
or nothing; arithmetic with a constant is free (no layer). Anything else is unsupported (listed,
not counted).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.torch.ops import FUNCTIONS, MODULES
from cnnstat.torch.ops.base import NAMED_FUNCTIONS, NAMED_MODULES


def module_handler(module):
    """The handler for a module's class (by class, or by qualified name for third-party
    classes: :data:`NAMED_MODULES`); a subclass inherits it unless it changes ``forward``."""
    for cls in type(module).__mro__:
        handler = MODULES.get(cls)
        if handler is None and NAMED_MODULES:
            handler = NAMED_MODULES.get(f"{cls.__module__}.{cls.__qualname__}")
        if handler is not None:
            return handler if type(module).forward is cls.forward else None
    return None


def is_leaf(module) -> bool:
    """Modules the tracers do not look inside: mapped ones, and torch.nn's own (as torch.fx)."""
    if module_handler(module) is not None:
        return True
    where = type(module).__module__
    return (where.startswith("torch.nn") or where.startswith("torch.ao.nn")) and not isinstance(
        module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    )


def module_label(module) -> str:
    cls = type(module)
    if cls.__module__.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


_ALIASES = {
    "iadd": "add",
    "radd": "add",
    "isub": "sub",
    "rsub": "sub",
    "imul": "mul",
    "rmul": "mul",
    "truediv": "div",
    "itruediv": "div",
    "rtruediv": "div",
    "true_divide": "div",
    "divide": "div",
    "multiply": "mul",
    "subtract": "sub",
    "max_pool2d_with_indices": "max_pool2d",
    "max_pool1d_with_indices": "max_pool1d",
    "max_pool3d_with_indices": "max_pool3d",
}


def canonical(name: str) -> str:
    """One name for torch.add, Tensor.add_, Tensor.__iadd__, operator.iadd: 'add'."""
    name = name.strip("_")
    return _ALIASES.get(name, name)


def function_handler(name: str, label: str = ""):
    """The handler for a function by its canonical name, or a third-party function by its
    qualified name (``label``, :data:`NAMED_FUNCTIONS`)."""
    return FUNCTIONS.get(name) or NAMED_FUNCTIONS.get(label)


def function_label(func) -> str:
    """'torch.roll', 'F.relu', 'Tensor.view', 'operator.add' for messages."""
    if isinstance(func, str):
        return f"Tensor.{func}"
    name = getattr(func, "__name__", repr(func))
    qual = getattr(func, "__qualname__", name) or name
    if qual.startswith(("TensorBase.", "Tensor.")) or getattr(torch.Tensor, name, None) is func:
        return f"Tensor.{name}"
    if getattr(torch, name, None) is func:
        return f"torch.{name}"
    if getattr(F, name, None) is func:
        return f"F.{name}"
    if getattr(operator, name, None) is func:
        return f"operator.{name}"
    return f"{getattr(func, '__module__', None) or '?'}.{qual}"


__all__ = [
    "FUNCTIONS",
    "MODULES",
    "canonical",
    "function_handler",
    "function_label",
    "is_leaf",
    "module_handler",
]
