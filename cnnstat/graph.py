"""The layer graph a spec (or, later, a PyTorch module) turns into."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnstat.errors import Location
from cnnstat.ops.base import RF, prod


@dataclass(slots=True)
class Layer:
    name: str
    op: str
    kind: str  # conv | fc | other
    args: dict
    inputs: tuple  # names of the tensors it reads ("input" is the network's input)
    output: tuple  # shape without batch
    weights: int
    biases: int
    buffers: int
    macs: int  # per image
    rf: RF
    loc: Location | None = None

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def activations(self) -> int:
        return prod(self.output)

    @property
    def spatial(self) -> bool:
        """Output units still cover part of the input (before flatten / global pooling)."""
        return len(self.output) > 1 and not self.rf.collapsed


@dataclass(slots=True)
class Graph:
    name: str
    input: tuple  # (C, H, W), (C, L) or (D,)
    layers: list = field(default_factory=list)
    description: str = ""
    source: str = ""
    nominal: tuple | None = None  # (H, W) the network is meant to see, used for tiling
    file: str = ""
