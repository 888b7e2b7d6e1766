"""Sliding-window arithmetic shared by convolution, locally connected layers and pooling."""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import per_axis


def paddings(p, sizes, k, s, d) -> list:
    """``(before, after)`` per axis for an int, a per-axis list, ``same`` or ``valid``.

    ``same`` follows TensorFlow/PyTorch: output = ceil(input / stride); the total padding
    ``max((out - 1) * s + d * (k - 1) + 1 - input, 0)`` is split with the extra pixel after.
    """
    n = len(sizes)
    if p == "valid":
        return [(0, 0)] * n
    if p == "same":
        pads = []
        for i in range(n):
            out = -(-sizes[i] // s[i])
            total = max((out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - sizes[i], 0)
            pads.append((total // 2, total - total // 2))
        return pads
    if isinstance(p, str):
        raise OpError(f"padding must be an integer, a list, 'same' or 'valid', got '{p}'")
    per = per_axis(p, n, "padding")
    if any(v < 0 for v in per):
        raise OpError(f"padding must not be negative, got {list(per)}")
    return [(v, v) for v in per]


def out_size(size, k, s, pad, d, ceil=False) -> int:
    """Output length along one axis (PyTorch's formula, with its ceil-mode rule)."""
    span = d * (k - 1) + 1
    padded = size + pad[0] + pad[1]
    if span > padded:
        raise OpError(f"kernel {k} (spans {span}) is larger than its padded input {padded}")
    if not ceil:
        return (padded - span) // s + 1
    out = -(-(padded - span) // s) + 1
    if (out - 1) * s >= size + pad[0]:  # the last window must start inside input or left pad
        out -= 1
    return out


def window(a: dict, shape, op: str, ceil=False):
    """Resolve ``k``, ``s``, ``d`` and padding for ``shape`` = (C, *spatial).

    Returns ``(k, s, d, pads, out_spatial)``.
    """
    spatial = shape[1:]
    n = len(spatial)
    k = per_axis(a["k"], n, "kernel")
    s = per_axis(a["s"] if a.get("s") is not None else a["k"], n, "stride")
    d = per_axis(a.get("d", 1), n, "dilation")
    for name, vals in (("kernel", k), ("stride", s), ("dilation", d)):
        if any(v < 1 for v in vals):
            raise OpError(f"{name} must be at least 1, got {list(vals)}")
    pads = paddings(a.get("p", 0), spatial, k, s, d)
    out = tuple(out_size(spatial[i], k[i], s[i], pads[i], d[i], ceil) for i in range(n))
    return k, s, d, pads, out
