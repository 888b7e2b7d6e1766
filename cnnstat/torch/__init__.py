"""The PyTorch bridge: analyze an ``nn.Module`` and build a spec as one.

Importing this package does not import torch; its functions do, when called.

- :func:`analyze` -- a module reference (``torchvision:resnet50``, ``pkg.mod:Net``,
  ``path/file.py:Net``) or an ``nn.Module`` -> :class:`~cnnstat.analysis.Analysis`, traced on
  the meta device (no activations are allocated).
- :func:`build` -- a spec (zoo name, path or Spec) -> ``nn.Module`` whose module names are the
  spec's layer names.
- :func:`verify` -- cnnstat's params and MACs against ``sum(p.numel())``, fvcore and PyTorch's
  flop counter.
"""

from __future__ import annotations

import os


def is_reference(model) -> bool:
    """``module:attr`` (a PyTorch model) rather than a zoo name or a spec file."""
    return (
        isinstance(model, str)
        and ":" in model
        and not model.endswith((".yaml", ".yml"))
        and not os.path.exists(model)
    )


def analyze(model, input=None, dtype="fp32", batch=1, kwargs=None, tracer="auto"):
    """See :func:`cnnstat.torch.analysis.analyze`."""
    from cnnstat.torch.analysis import analyze as _analyze

    return _analyze(model, input=input, dtype=dtype, batch=batch, kwargs=kwargs, tracer=tracer)


def build(spec, input=None, device="cpu"):
    """See :func:`cnnstat.torch.builder.build`."""
    from cnnstat.torch.builder import build as _build

    return _build(spec, input=input, device=device)


def verify(model, input=None, kwargs=None, device="cpu"):
    """See :func:`cnnstat.torch.check.verify`."""
    from cnnstat.torch.check import verify as _verify

    return _verify(model, input=input, kwargs=kwargs, device=device)


__all__ = ["analyze", "build", "is_reference", "verify"]
