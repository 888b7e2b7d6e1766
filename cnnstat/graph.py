"""The layer graph a spec (or, later, a PyTorch module) turns into."""

from __future__ import annotations

from cnnstat.errors import Location
from cnnstat.ops.base import RF, prod

_last: tuple = (None, None, 0)  # the last Location a layer was given, its file and packed form


class Layer:
    """One layer: what it reads, its output shape, its cost and its receptive field.

    ``unknown``: why its MACs are unknown (None: known); ``rf`` None: its receptive field is
    unknown, ``rf_unknown`` says past which calls.

    (A plain class with slots rather than a dataclass: defining dataclasses costs start-up.)
    """

    __slots__ = (
        "name",
        "op",
        "kind",
        "args",
        "inputs",
        "output",
        "weights",
        "biases",
        "buffers",
        "macs",
        "rf",
        "_file",
        "_at",
        "unknown",
        "rf_unknown",
    )

    def __init__(
        self,
        name: str,
        op: str,
        kind: str,
        args: dict,
        inputs: tuple,
        output: tuple,
        weights: int,
        biases: int,
        buffers: int,
        macs: int,
        rf: RF | None,
        loc: Location | None = None,
        unknown: str | None = None,
        rf_unknown: str | None = None,
    ):
        self.name = name
        self.op = op
        self.kind = kind  # conv | fc | other
        self.args = args
        self.inputs = inputs  # names of the tensors it reads ("input" is the network's input)
        self.output = output  # shape without batch
        self.weights = weights
        self.biases = biases
        self.buffers = buffers
        self.macs = macs  # per image
        self.rf = rf  # None: unknown (past a call cnnstat cannot follow; rf_unknown says which)
        self.loc = loc  # kept as its file and one packed int (see loc)
        # Why this layer's MACs are unknown (a PyTorch call cnnstat has no op for); None when
        # its cost is known. Its ``macs`` (0) are then the known part: totals are lower bounds.
        self.unknown = unknown
        self.rf_unknown = rf_unknown

    @property
    def loc(self) -> Location | None:
        """Where the spec defines it (None: not from a spec). Kept as the file name (shared)
        and ``(line << 32) + column``: a graph of a million layers holds no Location each."""
        at = self._at
        return Location(self._file, at >> 32, at & 0xFFFFFFFF) if at else None

    @loc.setter
    def loc(self, loc: Location | None) -> None:
        global _last
        if loc is None:
            self._file, self._at = None, 0
        elif loc is _last[0]:  # the layers of one `repeat:` item share their int, as they shared loc
            self._file, self._at = _last[1], _last[2]
        else:
            self._file, self._at = loc.file, (loc.line << 32) + loc.col
            _last = (loc, self._file, self._at)

    def __repr__(self) -> str:
        return f"Layer({self.name!r}, {self.op}, output={list(self.output)})"

    @property
    def shape(self) -> tuple:
        """The output shape: a layer is also the tensor it makes (the spec builder's view)."""
        return self.output

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def activations(self) -> int:
        return prod(self.output)

    @property
    def spatial(self) -> bool:
        """Output units still cover part of the input (before flatten / global pooling); a
        spatial-shaped output whose field is unknown counts as spatial (it may well be)."""
        return len(self.output) > 1 and (self.rf is None or not self.rf.collapsed)


class Graph:
    __slots__ = ("name", "input", "layers", "description", "source", "nominal", "file")

    def __init__(
        self,
        name: str,
        input: tuple,
        layers: list | None = None,
        description: str = "",
        source: str = "",
        nominal: tuple | None = None,
        file: str = "",
    ):
        self.name = name
        self.input = input  # (C, H, W), (C, L) or (D,)
        self.layers = layers if layers is not None else []
        self.description = description
        self.source = source
        self.nominal = nominal  # (H, W) the network is meant to see, used for tiling
        self.file = file
