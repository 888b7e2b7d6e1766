"""ONNX models: ``cnnstat params model.onnx``.

Importing this package does not import onnx; its functions do, when called (the ``onnx``
extra: ``pip install 'cnnstat[onnx]'``).

- :func:`analyze` -- an ``.onnx`` path -> :class:`~cnnstat.analysis.Analysis` (an
  :class:`~cnnstat.onnx.analysis.OnnxAnalysis`), the file's nodes mapped onto cnnstat's ops
  (:mod:`cnnstat.onnx.ops`), its shapes from onnx's shape inference, its parameters from the
  initializers' dims (no weight is loaded).
"""

from __future__ import annotations


def is_onnx(model) -> bool:
    """An ONNX file path (``.onnx``) rather than a zoo name, spec or module reference."""
    return isinstance(model, str) and model.lower().endswith(".onnx")


def analyze(path, input=None, dtype="fp32", batch=1, resolution=None, strict=False):
    """See :func:`cnnstat.onnx.analysis.analyze`."""
    from cnnstat.onnx.analysis import analyze as _analyze

    return _analyze(path, input=input, dtype=dtype, batch=batch, resolution=resolution, strict=strict)


__all__ = ["analyze", "is_onnx"]
