"""Analysis of an ONNX model: the same :class:`~cnnstat.analysis.Analysis` as for a spec,
plus what the import saw (nodes cnnstat has no op for, the file's opset and producer).

Totals are never silently wrong: parameters are the initializers the graph reads as data,
each counted once; a node cnnstat has no op for is a layer with unknown MACs, so the analysis
is not ``complete`` and MAC totals are lower bounds (stderr says which nodes; ``--strict``
makes it an error)."""

from __future__ import annotations

from cnnstat.analysis import Analysis, calls_text, unsupported_summary
from cnnstat.analysis import omissions as _omissions
from cnnstat.errors import CnnstatError
from cnnstat.graph import Graph


class OnnxGraph(Graph):
    """A graph read from an ONNX file: ``unsupported`` nodes ({call, at, detail, params}),
    and the file's ``opset``, ``producer``, ``ir_version`` and initializer counts."""

    __slots__ = (
        "unsupported",
        "opset",
        "producer",
        "ir_version",
        "initializers",
        "unused_initializers",
        "stored",
    )


class OnnxAnalysis(Analysis):
    """JSON: the spec contract plus an ``onnx`` object (opset, producer, unsupported nodes,
    initializers read and not read)."""

    def stored_bytes(self) -> dict:
        """A layer whose weights the file stores as integers (a quantized model: int8, uint8,
        int4, an int32 bias) has their bytes as stored, whatever the dtype asked for; float
        weights are at the dtype asked for."""
        return getattr(self.graph, "stored", None) or {}

    def to_dict(self) -> dict:
        d = super().to_dict()
        g = self.graph
        d["onnx"] = {
            "opset": g.opset,
            "producer": g.producer,
            "ir_version": g.ir_version,
            "initializers": g.initializers,
            "unused_initializers": g.unused_initializers,
            "unsupported": unsupported_summary(g),
        }
        if g.stored:
            d["onnx"]["integer_weight_layers"] = len(g.stored)
        return d


def unsupported_text(graph) -> str:
    """'3 nodes of Erf (at Erf_1, ...); 1 node of Einsum (at attn/Einsum; 4,096 parameters): ...'."""
    return calls_text(graph, "node")


def import_graph(path: str, input=None, resolution=None, name: str | None = None) -> OnnxGraph:
    """The graph of the ONNX model at ``path``, its input bound to ``input`` (C, H, W) or to
    ``resolution`` (W, H) or to the model's own sizes; the batch to one image."""
    from cnnstat.onnx.convert import Builder
    from cnnstat.onnx.read import load
    from cnnstat.units import parse_input, parse_resolution

    if input is not None and resolution is not None:
        raise CnnstatError("give --input or --resolution, not both")
    if isinstance(input, str):
        input = parse_input(input)
    if isinstance(resolution, str):
        resolution = parse_resolution(resolution)
    model = load(path)
    shape = model.bind(input, resolution)
    model.infer(shape)
    b = Builder(model, shape)
    b.run()
    b.finish()
    graph = OnnxGraph(
        name or path,
        tuple(shape),
        b.layers,
        source=f"ONNX ({model.proto.producer_name or 'unknown producer'})",
    )
    graph.file = path
    graph.unsupported = b.unsupported
    graph.stored = b.stored
    graph.opset = model.opset
    graph.producer = " ".join(v for v in (model.proto.producer_name, model.proto.producer_version) if v)
    graph.ir_version = model.proto.ir_version
    read = [n for n in b.used if n in b.sizes]
    graph.initializers = {"count": len(model.init), "params": len(read)}
    graph.unused_initializers = len(model.init) - len(set(b.used) & set(model.init))
    return graph


def analyze(path, input=None, dtype="fp32", batch=1, resolution=None, strict=False) -> OnnxAnalysis:
    """Analyze the ONNX model at ``path``. ``strict``: nodes cnnstat has no op for are an
    error instead of a listed omission."""
    graph = import_graph(path, input, resolution)
    a = OnnxAnalysis(graph, dtype=dtype, batch=batch)
    if strict and graph.unsupported:
        raise CnnstatError(f"unsupported (--strict): {unsupported_text(graph)}")
    if strict and not a.complete:
        raise CnnstatError(f"MACs unknown (--strict): {a.incomplete_text()}")
    return a


def load_for_cli(model, input_=None, resolution=None, dtype="fp32", batch=1, options=None):
    """``load_analysis`` for an ONNX path (what it could not count: ``omissions``); ``options``
    the command line's ``kwargs`` and ``strict`` (:func:`cnnstat.cli.common.cli_options`)."""
    options = options or {}
    if options.get("kwargs"):
        raise CnnstatError("--kwargs applies to PyTorch models (MODEL as module:attr)")
    a = analyze(model, input_, dtype, batch, resolution, strict=bool(options.get("strict")))
    return a


def omissions(a) -> list:
    """:func:`cnnstat.analysis.omissions` of an ONNX model, and its integer weights' bytes."""
    notes = []
    if a.graph.stored:
        n = len(a.graph.stored)
        notes.append(
            f"{n} layer{'s' if n > 1 else ''} hold{'' if n > 1 else 's'} integer weights (a quantized "
            "model): their bytes as the file stores them (int8: 1 byte, an int32 bias: 4), whatever "
            "the dtype"
        )
    return _omissions(a, "node", notes)


def frame_graph(model, mode: str, frame: tuple, input=None, options=None):
    """:func:`cnnstat.throughput.frame_graph` for an ONNX path: in frame mode the model at the
    frame's size (its H and W must be dynamic), else at its input (or ``input``) with tiles
    of that size."""
    from cnnstat.onnx.read import load
    from cnnstat.throughput import default_tile

    if mode == "frame":
        own = load(model).model_input()
        if len(own) not in (3, 4):
            raise CnnstatError(f"{model}: frame mode needs a [C, H, W] or [C, D, H, W] input")
        if all(v is not None for v in own[-2:]) and tuple(own[-2:]) != (frame[1], frame[0]):
            raise CnnstatError(
                f"{model}: frame mode runs the network over the whole {frame[0]}x{frame[1]} frame, but the "
                f"model's input is fixed at {own[-1]}x{own[-2]}: export it with dynamic height and width"
            )
        return load_for_cli(model, None, f"{frame[0]}x{frame[1]}", options=options).graph, None
    graph = load_for_cli(model, input, options=options).graph
    return graph, default_tile(graph, True)
