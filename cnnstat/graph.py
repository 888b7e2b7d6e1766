"""The layer graph a spec (or, later, a PyTorch module) turns into."""

from __future__ import annotations

from cnnstat.errors import Location
from cnnstat.ops.base import RF, prod

_MASK = (1 << 24) - 1  # a line or column packed in 24 bits (a spec file is at most 4 MB)
_files: list = []  # the files layers were defined in; a packed location holds its number here
_file_numbers: dict = {}
_recent: dict = {}  # Location -> its int, the last few packed: repeated layers share one int


def _pack(loc: Location | None):
    """``loc`` as ``(file number << 48) + (line << 24) + column``, one int object (the same
    one for the layers of a repeated item or block body); None stays None."""
    if loc is None:
        return None
    packed = _recent.get(loc)
    if packed is not None:
        return packed
    if loc.line > _MASK or loc.col > _MASK:
        return loc
    number = _file_numbers.get(loc.file)
    if number is None:
        number = _file_numbers[loc.file] = len(_files)
        _files.append(loc.file)
    packed = (number << 48) + (loc.line << 24) + loc.col
    if len(_recent) >= 256:
        _recent.clear()
    _recent[loc] = packed
    return packed


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
        self.loc = loc  # kept as one packed int (see loc)
        # Why this layer's MACs are unknown (a PyTorch call cnnstat has no op for); None when
        # its cost is known. Its ``macs`` (0) are then the known part: totals are lower bounds.
        self.unknown = unknown
        self.rf_unknown = rf_unknown

    @property
    def loc(self) -> Location | None:
        """Where the spec defines it (None: not from a spec). Kept as one int, the file's
        number in :data:`_files` and the line and column packed (see :func:`_pack`): a graph
        of a million layers holds no Location each."""
        at = self._at
        if type(at) is not int:
            return at  # None, or a Location too far down a file to pack
        return Location(_files[at >> 48], (at >> 24) & _MASK, at & _MASK)

    @loc.setter
    def loc(self, loc: Location | None) -> None:
        self._at = _pack(loc)

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
