"""Throughput needs: MACs per frame and per second when a frame is covered by tiles.

Tile mode (the lecture's "no overlap"): the network sees tile-sized crops; ``exact`` counts
frame area / tile area (fractional), ``whole`` rounds each axis up to whole tiles.
"""

from __future__ import annotations

from fractions import Fraction

from cnnstat.errors import CnnstatError


def tile_count(frame: tuple, tile: tuple, tiling: str = "exact"):
    """Tiles covering a (W, H) frame with (W, H) tiles: a Fraction for exact, int for whole."""
    if tiling == "exact":
        return Fraction(frame[0] * frame[1], tile[0] * tile[1])
    if tiling == "whole":
        return -(-frame[0] // tile[0]) * -(-frame[1] // tile[1])
    raise CnnstatError(f"unknown tiling '{tiling}' (exact or whole)")


def default_tile(graph, input_override: bool) -> tuple:
    """(W, H): the spec's nominal size, else its input (an --input override wins)."""
    if len(graph.input) != 3:
        raise CnnstatError(f"{graph.name}: tile mode needs a [C, H, W] input, got {list(graph.input)}")
    if graph.nominal and not input_override:
        h, w = graph.nominal if len(graph.nominal) == 2 else graph.nominal * 2
        return (w, h)
    return (graph.input[2], graph.input[1])


def number(x):
    """An int when whole, else a float (JSON-friendly)."""
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else float(x)
    return x


def flops_row(analysis, frame: tuple, fps, tile: tuple, tiling: str, flops_per_mac: int) -> dict:
    """The ``flops`` JSON object for one model."""
    macs = analysis.totals()["macs"] // analysis.batch
    tiles = tile_count(frame, tile, tiling)
    per_frame = macs * tiles
    per_second = per_frame * Fraction(str(fps))
    return {
        "model": analysis.name,
        "resolution": list(frame),
        "fps": number(Fraction(str(fps))),
        "mode": "tile",
        "tiling": tiling,
        "tile": list(tile),
        "tiles": number(tiles),
        "macs_per_image": macs,
        "macs_per_frame": number(per_frame),
        "macs_per_second": number(per_second),
        "flops_per_mac": flops_per_mac,
        "flops_per_second": number(per_second * flops_per_mac),
    }
