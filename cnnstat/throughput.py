"""Throughput needs: MACs and activation traffic per frame and per second.

Two ways to cover a frame:

- tile (the lecture's "no overlap"): the network sees tile-sized crops. ``exact`` counts
  frame area / tile area (fractional); ``whole`` rounds each axis up to whole tiles. With
  ``overlap`` pixels, crops advance by tile - overlap: (frame - overlap) / (tile - overlap)
  per axis, fractional or rounded up.
- frame: the network runs fully convolutionally on the whole frame (the VGG paper's dense
  evaluation, OverFeat): convolutions and pooling at the frame's size, an fc over spatial
  features as the convolution over its window at every position (see ``build(frame=True)``).

Video models (input [C, D, H, W]) see clips of D frames: tiles (or the frame) cover H and W,
and one clip is run per D frames of the stream (non-overlapping clips), so a frame costs the
clip's MACs / D.

Activation traffic: every layer reads its inputs and writes its output at ``dtype`` (views
move nothing), as in :func:`cnnstat.hardware.roofline`.
"""

from __future__ import annotations

from fractions import Fraction

from cnnstat.errors import CnnstatError
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import prod
from cnnstat.units import tensor_bytes


def tile_count(frame: tuple, tile: tuple, tiling: str = "exact", overlap: int = 0):
    """Tiles covering a (W, H) frame with (W, H) tiles: a Fraction for exact, int for whole."""
    if tiling not in ("exact", "whole"):
        raise CnnstatError(f"unknown tiling '{tiling}' (exact or whole)")
    if overlap < 0 or overlap >= min(tile):
        raise CnnstatError(f"overlap {overlap} must be at least 0 and less than the tile {list(tile)}")
    count = 1
    for f, t in zip(frame, tile):
        per_axis = Fraction(max(f - overlap, 1), t - overlap)
        count *= per_axis if tiling == "exact" else max(1, -(-per_axis.numerator // per_axis.denominator))
    return count


def default_tile(graph, input_override: bool) -> tuple:
    """(W, H): the spec's nominal size, else its input (an --input override wins)."""
    if len(graph.input) not in (3, 4):
        raise CnnstatError(
            f"{graph.name}: tile mode needs a [C, H, W] or [C, D, H, W] input, got {list(graph.input)}"
        )
    if graph.nominal and not input_override:
        h, w = graph.nominal if len(graph.nominal) == 2 else graph.nominal * 2
        return (w, h)
    return (graph.input[-1], graph.input[-2])


def clip_frames(graph) -> int:
    """Frames one pass sees: D for a video model [C, D, H, W], else 1."""
    return graph.input[1] if len(graph.input) == 4 else 1


def frame_graph(model, mode: str, frame: tuple, input=None, trace=None, options=None):
    """The graph one frame costs, and the tile (W, H) it covers (None in frame mode).

    ``model``: a zoo name, spec path, Spec, or PyTorch reference (``module:attr``), which
    ``trace(model, input, resolution)`` turns into an Analysis; in frame mode it is traced at
    the frame's size, as PyTorch would run it. ``input`` overrides the network's input.
    ``options``: the command line's ``kwargs`` and ``strict``, for an ONNX path.
    """
    from cnnstat.spec.build import build
    from cnnstat.spec.model import Spec
    from cnnstat.torch import is_reference
    from cnnstat.zoo import load

    if isinstance(model, str) and model.endswith(".onnx"):  # an ONNX model: see cnnstat.onnx
        from cnnstat.onnx.analysis import frame_graph as onnx_frame_graph

        return onnx_frame_graph(model, mode, frame, input, options)
    if is_reference(model):
        if mode == "frame":
            return trace(model, None, f"{frame[0]}x{frame[1]}").graph, None
        graph = trace(model, input, None).graph
        return graph, default_tile(graph, True)
    spec = model if isinstance(model, Spec) else load(model)
    if mode == "frame":
        if len(spec.input) not in (3, 4):
            raise CnnstatError(f"{spec.name}: frame mode needs a [C, H, W] or [C, D, H, W] input")
        return build(spec, (*spec.input[:-2], frame[1], frame[0]), frame=True), None
    shape = spec.input_at(input)
    graph = build(spec, shape)
    return graph, default_tile(graph, shape is not None)


def number(x):
    """An int when whole, else a float (JSON-friendly)."""
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else float(x)
    return x


def moved_elements(graph):
    """(layer, activation elements it reads and writes) for every layer; views move none."""
    sizes = {"input": prod(graph.input)}
    for layer in graph.layers:
        sizes[layer.name] = prod(layer.output)
        op = REGISTRY[layer.op]
        read = layer.inputs[: op.data_inputs]
        yield layer, 0 if op.view else sum(sizes[n] for n in read) + sizes[layer.name]


def activation_traffic(graph, dtype: str) -> int:
    """Bytes of activations read and written by one pass of ``graph`` (batch 1)."""
    return tensor_bytes(sum(n for _, n in moved_elements(graph)), dtype)


def throughput_row(
    analysis,
    frame: tuple,
    fps,
    flops_per_mac: int,
    *,
    mode: str = "tile",
    tile: tuple | None = None,
    tiling: str = "exact",
    overlap: int = 0,
) -> dict:
    """The ``flops`` JSON object for one model. In frame mode ``analysis`` is the graph built
    at the frame's size; in tile mode, at the tile's."""
    graph = analysis.graph
    macs = analysis.totals()["macs"] // analysis.batch
    traffic = activation_traffic(graph, analysis.dtype)
    fps_q = Fraction(str(fps))
    row = {"model": analysis.name, "resolution": list(frame), "fps": number(fps_q), "mode": mode}
    if mode == "tile":
        passes = tile_count(frame, tile, tiling, overlap)
        row.update(tiling=tiling, tile=list(tile), overlap=overlap, tiles=number(passes))
        row["macs_per_image"] = macs
    else:
        passes = 1
        last = graph.layers[-1].output
        row["positions"] = prod(last[1:])
        row["output"] = list(last)
    clip = clip_frames(graph)
    if clip > 1:
        row["clip_frames"] = clip  # one clip per `clip` frames
    per_frame = Fraction(macs * passes) / clip
    passes = Fraction(passes) / clip
    per_second = per_frame * fps_q
    row.update(
        macs_per_frame=number(per_frame),
        macs_per_second=number(per_second),
        flops_per_mac=flops_per_mac,
        flops_per_second=number(per_second * flops_per_mac),
        dtype=analysis.dtype,
        activation_bytes_per_frame=number(traffic * passes),
        passes_per_frame=number(passes),
        activation_bytes_per_second=number(traffic * passes * fps_q),
    )
    return row
