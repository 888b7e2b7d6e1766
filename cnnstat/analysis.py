"""The analysis of one graph: totals, by kind, by layer, receptive field, as one object.

Pure Python over the layer list (no tensors, no torch): linear in the number of layers and
independent of resolution. Conventions: 1 MAC = one multiply-accumulate; bias additions,
activations, pooling and normalisation are not MACs; weight bytes are at ``dtype``.
"""

from __future__ import annotations

from cnnstat._gc import paused_gc
from cnnstat.errors import CnnstatError
from cnnstat.graph import Graph, Layer
from cnnstat.units import DTYPE_BITS, tensor_bytes

KINDS = ("conv", "fc", "other")
COUNT_KEYS = (
    "params",
    "weights",
    "biases",
    "buffers",
    "macs",
    "activations",
    "weight_bytes",
    "param_bytes",
    "activation_bytes",
)


class Analysis:
    def __init__(self, graph: Graph, dtype: str = "fp32", batch: int = 1):
        self.graph, self.dtype, self.batch = graph, dtype, batch
        if self.dtype not in DTYPE_BITS:
            raise CnnstatError(f"unknown dtype '{self.dtype}' (one of {', '.join(DTYPE_BITS)})")
        if self.batch < 1:
            raise CnnstatError(f"batch must be at least 1, got {self.batch}")
        self._totals = None
        self._by_kind = None
        self._stream = False  # to_dict's "layers": made one at a time (see json_doc)

    # --- queries --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def layers(self) -> list:
        return self.graph.layers

    def stored_bytes(self) -> dict:
        """Hook for importers whose parameters keep the size the file stores them at, whatever
        ``dtype`` (a quantized ONNX model's integer weights): {layer name: (weight bytes, bias
        bytes)}, which replace that layer's bytes at ``dtype`` in :meth:`counts` and in the
        totals. None for a spec."""
        return {}

    def counts(self, layer: Layer) -> dict:
        """One layer's figures; MACs and activations are for the whole batch."""
        dtype, batch = self.dtype, self.batch
        weight_bytes = tensor_bytes(layer.weights, dtype)
        param_bytes = weight_bytes + tensor_bytes(layer.biases, dtype)
        stored = self.stored_bytes()
        if stored and layer.name in stored:
            w, bias = stored[layer.name]
            weight_bytes, param_bytes = w, w + bias
        activations = layer.activations * batch
        return {
            "params": layer.weights + layer.biases,
            "weights": layer.weights,
            "biases": layer.biases,
            "buffers": layer.buffers,
            "macs": layer.macs * batch,
            "activations": activations,
            "weight_bytes": weight_bytes,
            "param_bytes": param_bytes,
            "activation_bytes": tensor_bytes(activations, dtype),
        }

    def _sum(self):
        """Totals and by-kind sums in one pass over the layers, each layer's figures computed
        as :meth:`counts` computes them (bytes rounded per tensor) and added at once: nothing
        per layer is kept, so a million layers cost no more memory than their graph."""
        dtype, batch = self.dtype, self.batch
        sums = {k: [0] * len(COUNT_KEYS) for k in KINDS}
        with paused_gc():
            for layer in self.graph.layers:
                s = sums[layer.kind]
                w, b = layer.weights, layer.biases
                act = layer.activations * batch
                wb = tensor_bytes(w, dtype)
                s[0] += w + b
                s[1] += w
                s[2] += b
                s[3] += layer.buffers
                s[4] += layer.macs * batch
                s[5] += act
                s[6] += wb
                s[7] += wb + tensor_bytes(b, dtype)
                s[8] += tensor_bytes(act, dtype)
            stored = self.stored_bytes()
            for layer in self.graph.layers if stored else ():  # bytes as stored, not at dtype
                if layer.name in stored:
                    w, bias = stored[layer.name]
                    s = sums[layer.kind]
                    as_dtype = tensor_bytes(layer.weights, dtype)
                    s[6] += w - as_dtype
                    s[7] += w + bias - as_dtype - tensor_bytes(layer.biases, dtype)
        by_kind = {kind: dict(zip(COUNT_KEYS, bucket)) for kind, bucket in sums.items()}
        totals = {key: sum(by_kind[kind][key] for kind in KINDS) for key in COUNT_KEYS}
        self._totals, self._by_kind = totals, by_kind

    def totals(self) -> dict:
        if self._totals is None:
            self._sum()
        return dict(self._totals)

    def by_kind(self) -> dict:
        if self._by_kind is None:
            self._sum()
        return {k: dict(v) for k, v in self._by_kind.items()}

    def receptive_field(self) -> Layer | None:
        """The last layer whose units still cover part of the input (before flatten/global
        pooling); its ``rf`` is the network's receptive field (None: unknown, the layer's
        ``rf_unknown`` says past which calls)."""
        for layer in reversed(self.graph.layers):
            if layer.spatial:
                return layer
        return None

    # --- what is not known (PyTorch calls cnnstat has no op for) ---------------------------

    def incomplete(self) -> list:
        """The layers whose MACs are unknown, with why: ``[{"layer", "call", "reason"}]``. Their
        MACs count 0, so MACs (and activation figures, which miss what happens inside them)
        are lower bounds while this list is not empty. Parameters are always complete."""
        return [
            {"layer": la.name, "call": la.args.get("call") or la.op, "reason": la.unknown}
            for la in self.graph.layers
            if la.unknown
        ]

    @property
    def complete(self) -> bool:
        """Every layer's cost is known (always, for a spec)."""
        return not any(la.unknown for la in self.graph.layers)

    def rf_lost(self) -> str:
        """Where fields became unknown: 'past torch.roll (at roll, roll_1)' over the layers of
        unknown cost whose field is unknown though one of their inputs' is known; '' when
        every field is known."""
        known = {"input"} | {la.name for la in self.graph.layers if la.rf is not None}
        at = {}
        for la in self.graph.layers:
            if la.unknown and la.rf is None and any(i in known for i in la.inputs):
                at.setdefault(la.args.get("call") or la.op, []).append(la.name)
        if not at:
            return ""
        parts = [f"{call} (at {', '.join(n[:3])}{', ...' if len(n) > 3 else ''})" for call, n in at.items()]
        return "past " + "; ".join(parts)

    def incomplete_text(self) -> str:
        """The unknown layers grouped by what was called, as one line."""
        return incomplete_text(self.incomplete())

    def memory(self, optimizer: str = "adam") -> dict:
        """Weights, peak activation memory in inference (and where), and a training estimate."""
        from cnnstat.memory import activation_memory, training_memory

        with paused_gc():
            act = activation_memory(self.graph, self.dtype, self.batch)
        t = self.totals()
        return {
            "weight_bytes": t["weight_bytes"],
            "param_bytes": t["param_bytes"],
            **act,
            "training": training_memory(t["params"], act["stored_activation_bytes"], self.dtype, optimizer),
        }

    # --- the JSON contract ------------------------------------------------------------------

    def to_dict(self) -> dict:
        with paused_gc():
            return self._to_dict()

    def json_doc(self) -> dict:
        """:meth:`to_dict` with ``"layers"`` an iterable that makes each layer's object as it
        is read, for :func:`cnnstat.render.print_json` to write item by item (a subclass's
        additions to :meth:`to_dict` included). The text is the same; the memory is that of one
        layer's object, not of a million."""
        self._stream = True
        try:
            return self.to_dict()
        finally:
            self._stream = False

    def _to_dict(self) -> dict:
        if self._stream:
            layers = _LayerDicts(self)
        else:
            layers = [self._layer_dict(la, self.counts(la)) for la in self.graph.layers]
        return {
            "model": self.graph.name,
            "input": list(self.graph.input),
            "batch": self.batch,
            "dtype": self.dtype,
            "complete": self.complete,
            "incomplete": self.incomplete(),
            "totals": self.totals(),
            "by_kind": self.by_kind(),
            "layers": layers,
            "receptive_field": self.rf_summary(),
            "memory": self.memory(),
            "conventions": CONVENTIONS,
        }

    def rf_summary(self) -> dict | None:
        """The network's field as JSON: ``rf_dict`` and its ``layer``; size, jump and start
        ``null`` with ``unknown`` (why) when it is unknown; None when no layer is spatial."""
        layer = self.receptive_field()
        if layer is None:
            return None
        if layer.rf is None:
            return {
                "size": None,
                "jump": None,
                "start": None,
                "layer": layer.name,
                "unknown": layer.rf_unknown,
            }
        return {**rf_dict(layer.rf), "layer": layer.name}

    @staticmethod
    def _layer_dict(layer: Layer, c: dict, rf: dict | None = None) -> dict:
        """One layer's JSON object from its :meth:`counts` ``c``; ``rf``: its ``rf_dict``
        when the caller has it already."""
        d = {
            "name": layer.name,
            "op": layer.op,
            "kind": layer.kind,
            "inputs": list(layer.inputs),
            "output": list(layer.output),
            **c,
            "rf": rf if rf is not None else rf_dict(layer.rf),
        }
        if layer.rf is None:
            d["rf_unknown"] = layer.rf_unknown
        if layer.unknown:
            d["unknown"] = layer.unknown
        return d


class _LayerDicts:
    """Every layer's JSON object (``Analysis._layer_dict``), made one at a time as it is read."""

    __slots__ = ("analysis",)

    def __init__(self, analysis: Analysis):
        self.analysis = analysis

    def __len__(self) -> int:
        return len(self.analysis.graph.layers)

    def __iter__(self):
        """The objects, one at a time. A layer whose field is its input's (activations,
        normalisation: the same RF object) shares the previous object's ``rf``: each object
        is written before the next is made (:meth:`Analysis.to_dict` makes its own)."""
        a = self.analysis
        make, counts = a._layer_dict, a.counts
        last, last_dict = None, None
        for layer in a.graph.layers:
            rf = layer.rf
            if rf is not last or rf is None:
                last, last_dict = rf, rf_dict(rf)
            yield make(layer, counts(layer), last_dict)


CONVENTIONS = {
    "macs": "multiply-accumulates of conv and fc layers; bias adds, activations, pooling, "
    "normalisation and merges count 0",
    "params": "learnable weights + biases; buffers (batch-norm running statistics) are separate",
    "weight_bytes": "weights (biases excluded) at dtype; param_bytes includes biases",
    "activations": "sum of every layer's output elements, times batch; activation_bytes at dtype",
    "memory": "peak_activation_bytes: most activation bytes alive at once in inference (each "
    "tensor freed after its last reader, in-place ops and views share storage); training: "
    "weights + gradients + optimizer state + every activation stored in the forward pass",
    "rf": "per spatial axis: size and jump (effective stride) in input pixels; start = centre "
    "of the first unit's field, pixel 0 being the first input pixel",
    "complete": "false when some layer's MACs are unknown (a PyTorch call cnnstat has no op for, "
    "listed in incomplete): its MACs count 0, so macs and activation figures are lower bounds; "
    "parameters and buffers are always complete",
}


def incomplete_text(items: list) -> str:
    """'2 calls of torch.roll (at roll, roll_1); 1 call of nn.LSTM (at rnn)' from
    ``Analysis.incomplete()``."""
    groups = {}
    for item in items:
        groups.setdefault(item["call"], []).append(item["layer"])
    parts = []
    for call, at in groups.items():
        where = ", ".join(at[:3]) + (", ..." if len(at) > 3 else "")
        parts.append(f"{len(at)} call{'s' if len(at) > 1 else ''} of {call} (at {where})")
    return "; ".join(parts)


def rf_dict(rf) -> dict | None:
    """JSON numbers: whole values as ints (3.0 -> 3), others as floats (15.5; a Fraction after
    upsampling: 1/4 -> 0.25); a fractional jump also exactly, as ``jump_exact`` ("2/3").
    None for an unknown field."""
    if rf is None:
        return None
    jump, start = rf.jump, rf.start
    out = {"size": list(rf.size), "jump": [_plain(j) for j in jump], "start": [_plain(s) for s in start]}
    if any(type(j) is not int and j != int(j) for j in jump):
        out["jump_exact"] = [str(j) for j in jump]
    return out


def _plain(v):
    """An int as is, a whole float or Fraction as an int, others as a float."""
    if type(v) is int:
        return v
    return int(v) if v == int(v) else float(v)


def analyze(model, input=None, dtype: str = "fp32", batch: int = 1) -> Analysis:
    """Analyze a zoo name, a spec path or a :class:`~cnnstat.spec.model.Spec`."""
    from cnnstat.spec.build import build
    from cnnstat.spec.model import Spec
    from cnnstat.zoo import load

    spec = model if isinstance(model, Spec) else load(model)
    return Analysis(build(spec, input), dtype=dtype, batch=batch)


# --- what an importer (PyTorch, ONNX) could not map ---------------------------------------------


def unsupported_summary(graph) -> list:
    """An imported graph's unsupported calls (or nodes) grouped by what was called, in order of
    first appearance: ``[{"call", "calls", "at": [...], "params", "detail"}]``."""
    groups = {}
    for u in graph.unsupported:
        g = groups.setdefault(
            u["call"], {"call": u["call"], "calls": 0, "at": [], "params": 0, "detail": u["detail"]}
        )
        g["calls"] += 1
        g["at"].append(u["at"])
        g["params"] += u["params"]
    return list(groups.values())


def calls_text(graph, noun: str) -> str:
    """'3 calls of torch.roll (at blocks.0.roll, ...); 1 call of nn.LSTM (at rnn; 263,168
    parameters)', with ``noun`` 'call' or 'node'."""
    parts = []
    for g in unsupported_summary(graph):
        at = ", ".join(g["at"][:3]) + (", ..." if len(g["at"]) > 3 else "")
        extra = f"; {g['params']:,} parameters" if g["params"] else ""
        detail = f": {g['detail']}" if g["detail"] else ""
        parts.append(
            f"{g['calls']} {noun}{'s' if g['calls'] > 1 else ''} of {g['call']} (at {at}{extra}){detail}"
        )
    return "; ".join(parts)


def lost_text(origins) -> str:
    """'past torch.roll (at roll, roll_1); nn.LSTM (at rnn)' from (call, layer) pairs: why a
    receptive field is unknown (``Layer.rf_unknown``), for the PyTorch and ONNX importers."""
    groups = {}
    for label, at in origins:
        groups.setdefault(label, []).append(at)
    parts = [
        f"{label} (at {', '.join(ats[:3])}{', ...' if len(ats) > 3 else ''})"
        for label, ats in list(groups.items())[:3]
    ]
    more = f"; and {len(groups) - 3} more" if len(groups) > 3 else ""
    return "past " + "; ".join(parts) + more


def omissions(a, noun: str, notes=()) -> list:
    """What an imported model's analysis could not count, one warning line each, then the
    importer's ``notes`` (cnnstat.cli prints them on stderr, escaped for the terminal: names
    come from the model); ``noun`` 'call' (PyTorch) or 'node' (ONNX)."""
    lines = []
    if a.graph.unsupported:
        lines.append(
            "warning: unsupported (parameters counted, MACs unknown: totals are lower bounds): "
            + calls_text(a.graph, noun)
        )
    unsupported_at = {u["at"] for u in a.graph.unsupported}
    other = [i for i in a.incomplete() if i["layer"] not in unsupported_at]
    if other:
        lines.append(f"warning: MACs unknown: {incomplete_text(other)}")
    return lines + [f"note: {n}" for n in notes]
