"""Activation memory: the peak of live tensors during inference, and a training estimate.

Inference: walk the layers in order (the graph's order is topological), allocate each
output, free a tensor after its last reader. ``inplace`` ops write over their input when they
are its last reader; ``view`` ops never allocate. Weights are not activations and are reported
apart. Training: weights + gradients + optimizer state + every activation stored during the
forward pass (nothing is freed before backward; in-place outputs share their input's storage).
Everything is at ``dtype`` and scales with ``batch``.
"""

from __future__ import annotations

from cnnstat.errors import CnnstatError
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import prod
from cnnstat.units import tensor_bytes

INPUT = "input"
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  # state tensors per parameter


class _Storage:
    __slots__ = ("bytes", "tensors")

    def __init__(self, nbytes):
        self.bytes, self.tensors = nbytes, 0


def activation_memory(graph, dtype: str = "fp32", batch: int = 1) -> dict:
    """Peak live activation bytes during inference, where it happens, and totals."""
    readers = {INPUT: 1}  # the caller holds the input throughout
    for layer in graph.layers:
        readers[layer.name] = 0
        for name in layer.inputs:
            readers[name] += 1
    if graph.layers:
        readers[graph.layers[-1].name] += 1  # the network's output outlives the walk

    def nbytes(shape):
        return tensor_bytes(batch * prod(shape), dtype)

    storage_of = {INPUT: _Storage(nbytes(graph.input))}
    storage_of[INPUT].tensors = 1
    live = storage_of[INPUT].bytes
    allocated = live  # every storage ever allocated: what training keeps for backward
    peak, peak_at = live, INPUT

    for layer in graph.layers:
        op = REGISTRY[layer.op]
        first = layer.inputs[0]
        if op.view or (op.inplace and readers[first] == 1 and storage_of[first].tensors == 1):
            storage = storage_of[first]
        else:
            storage = _Storage(nbytes(layer.output))
            live += storage.bytes
            allocated += storage.bytes
        storage.tensors += 1
        storage_of[layer.name] = storage
        if live > peak:
            peak, peak_at = live, layer.name
        for name in layer.inputs:
            readers[name] -= 1
            if readers[name] == 0:
                s = storage_of.pop(name)
                s.tensors -= 1
                if s.tensors == 0:
                    live -= s.bytes

    return {
        "peak_activation_bytes": peak,
        "peak_at": peak_at,
        "activation_bytes_sum": nbytes(graph.input) + sum(nbytes(la.output) for la in graph.layers),
        "stored_activation_bytes": allocated,
    }


def training_memory(params: int, stored_activation_bytes: int, dtype: str, optimizer: str) -> dict:
    """Weights + gradients + optimizer state + activations stored for backward, in bytes."""
    if optimizer not in OPTIMIZER_STATES:
        raise CnnstatError(f"unknown optimizer '{optimizer}' (one of {', '.join(OPTIMIZER_STATES)})")
    weights = tensor_bytes(params, dtype)
    terms = {
        "weights": weights,
        "gradients": weights,
        "optimizer_state": OPTIMIZER_STATES[optimizer] * weights,
        "activations": stored_activation_bytes,
    }
    return {"optimizer": optimizer, **terms, "total": sum(terms.values())}
