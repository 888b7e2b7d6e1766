"""``cnnstat flops [MODEL...]``: MACs, activation traffic and device bounds per frame."""

from __future__ import annotations

import click

from cnnstat.cli.common import (
    cli_options,
    dtype_option,
    format_option,
    fps_option,
    input_option,
    load_analysis,
    shape_text,
    torch_options,
)


@click.command("flops", short_help="Compute to run models over video frames: MACs/frame, MAC/s, fps.")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option(
    "--resolution", default="1920x1080", show_default=True, metavar="WxH", help="Frame size to cover."
)
@fps_option("Frames per second.")
@click.option(
    "--mode",
    type=click.Choice(["tile", "frame"]),
    default="tile",
    show_default=True,
    help="tile: crops of the network's size; frame: the network fully convolutional on the frame.",
)
@click.option("--tile", metavar="WxH", help="Tile size (default: the spec's nominal size, else its input).")
@click.option(
    "--tiles",
    "tiling",
    type=click.Choice(["exact", "whole"]),
    default="exact",
    show_default=True,
    help="exact: frame area / tile area, fractional (tiles that do not overlap); whole: round up "
    "to whole tiles per axis.",
)
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="PX",
    help="Pixels shared by neighbouring tiles (crops advance by tile - overlap).",
)
@click.option(
    "--flops-per-mac",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="FLOPs counted per MAC: 1 (FLOPS as MAC/s, as many papers count) or 2 (multiply + add).",
)
@dtype_option("Activation and weight type (traffic, device rate).")
@click.option("--device", help="Bound latency and fps on a device (cnnstat devices lists them).")
@click.option("--per-layer", is_flag=True, help="With --device: the roofline of every layer.")
@input_option
@torch_options
@format_option
def command(
    models, resolution, fps, mode, tile, tiling, overlap, flops_per_mac, dtype, device, per_layer, input_, fmt
):
    """Compute needed to run MODELs over --resolution frames at --fps.

    With no MODEL, every zoo model, sorted by compute. In tile mode the frame is covered by
    crops of the network's input size (MACs/frame = MACs/image x tiles); in frame mode the
    network runs fully convolutionally on the whole frame.

    \b
    Example:
      cnnstat flops alexnet-grouped vgg16 --resolution 1920x1080 --fps 30
      cnnstat flops vgg16 --mode frame
      cnnstat flops mobilenet_v2 --device jetson-orin-nano --dtype fp16
    """
    from cnnstat import zoo
    from cnnstat.analysis import Analysis
    from cnnstat.errors import CnnstatError
    from cnnstat.hardware import bound, get_device, roofline
    from cnnstat.render import print_json
    from cnnstat.throughput import frame_graph, throughput_row
    from cnnstat.units import parse_resolution

    frame = parse_resolution(resolution)
    fixed_tile = parse_resolution(tile, "tile") if tile else None
    if per_layer and not device:
        raise CnnstatError("--per-layer needs --device")
    if mode == "frame" and (tile or overlap or tiling != "exact"):
        raise CnnstatError("--tile, --tiles and --overlap apply to --mode tile")
    dev = get_device(device) if device else None
    targets = list(models) or [spec for spec in zoo.models() if len(spec.input) in (3, 4)]
    rows = []
    for target in targets:
        trace = lambda m, i, r: load_analysis(m, i, r, dtype)  # noqa: E731  (PyTorch models)
        graph, default = frame_graph(target, mode, frame, input_, trace, cli_options())
        t = fixed_tile or default
        analysis = Analysis(graph, dtype=dtype)
        if mode == "frame":
            row = throughput_row(analysis, frame, fps, flops_per_mac, mode="frame")
        else:
            row = throughput_row(analysis, frame, fps, flops_per_mac, tile=t, tiling=tiling, overlap=overlap)
        row["complete"], row["incomplete"] = analysis.complete, analysis.incomplete()
        if dev:
            row["bound"] = bound(graph, dev, dtype, fps, row["passes_per_frame"])
            if not analysis.complete:  # the MACs are a lower bound: the fps only an upper one
                row["bound"]["verdict"] = _verdict_at_most(row["bound"]["max_fps"], fps)
            if per_layer:
                row["roofline"] = roofline(graph, dev, dtype)
        rows.append(row)
    if not models:
        rows.sort(key=lambda r: r["macs_per_second"], reverse=True)
    if fmt == "json":
        print_json(rows)
        return
    _render(rows, frame, fps, mode, tiling, overlap, flops_per_mac, dtype, dev, fmt)
    for row in rows if per_layer else ():
        _render_roofline(row, dev, dtype, fmt)


def _verdict_at_most(max_fps: float, fps) -> str:
    """The verdict when latency is only a lower bound: too slow, or not known to hold."""
    if max_fps < fps:
        return f"needs at least {fps / max_fps:.1f}x the device"
    return f"unknown: at most {max_fps:.1f} fps, MACs partly unknown"


def _render_roofline(row, dev, dtype, fmt):
    from cnnstat.render import UNKNOWN, Column, Rows, Table, render
    from cnnstat.units import human_bytes, si

    ms = lambda v: f"{v * 1e3:.4f}"  # noqa: E731
    table = Table(
        title=f"{row['model']}: roofline per layer on {dev.name}, {dtype} (one pass)",
        columns=[
            Column("layer", "name", numeric=False, wrap=True),
            Column("op", "op", numeric=False, optional=1),
            Column("MACs", "macs", si),
            Column("bytes moved", "bytes", human_bytes),
            Column("MAC/byte", "intensity", lambda v: f"{v:.1f}", optional=2),
            Column("compute ms", "compute_s", ms),
            Column("memory ms", "memory_s", ms),
            Column("bound", "bound", numeric=False),
        ],
    )
    unknown = {i["layer"] for i in row["incomplete"]}

    def shown(r: dict) -> dict:
        """A layer's row as shown (made when written: render.Rows); the JSON's rows keep
        their numbers."""
        r = dict(r)
        if r["name"] in unknown:
            r.update(macs=UNKNOWN, intensity=UNKNOWN, compute_s=UNKNOWN, bound="?")
        return r

    table.rows = Rows(row["roofline"], shown)
    if unknown:
        table.notes.append("?: MACs unknown (a call cnnstat has no op for): compute time unknown.")
    ridge = dev.peak(dtype) / dev.bandwidth
    table.notes.append(
        f"Layers below {ridge:.1f} MAC/byte (peak / bandwidth) are memory-bound on {dev.name}; "
        "time = max(compute, memory) per layer, a lower bound."
    )
    render(table, fmt)


def _render(rows, frame, fps, mode, tiling, overlap, flops_per_mac, dtype, dev, fmt):
    from cnnstat.analysis import incomplete_text
    from cnnstat.render import Bound, Column, Table, at_least, render
    from cnnstat.units import human_bytes, si

    unit = "FLOP/s" if flops_per_mac > 1 else "FLOP/s (=MAC/s)"
    how = (
        f"tile mode ({tiling}{f', overlap {overlap} px' if overlap else ''})"
        if mode == "tile"
        else "frame mode"
    )
    columns = [Column("model", "model", numeric=False)]
    if mode == "tile":
        columns += [
            Column("tile", "tile", shape_text, optional=2),
            Column("tiles", "tiles", lambda v: f"{v:.2f}" if isinstance(v, float) else str(v), optional=1),
            Column("MACs/image", "macs_per_image", si, optional=3),
        ]
    else:
        columns += [Column("output", "output", shape_text), Column("positions", "positions", str)]
    columns += [
        Column("MACs/frame", "macs_per_frame", si),
        Column("MAC/s", "macs_per_second", si),
        Column(unit, "flops_per_second", si, optional=5 if flops_per_mac == 1 else 0),
        Column(f"act. {dtype}/s", "activation_bytes_per_second", lambda v: human_bytes(v) + "/s", optional=4),
    ]
    rows = [dict(row) for row in rows]  # the JSON's rows keep their plain numbers
    for row in rows:
        low = not row["complete"]
        for key in (
            "macs_per_image",
            "macs_per_frame",
            "macs_per_second",
            "flops_per_second",
            "activation_bytes_per_second",
        ):
            if key in row:
                row[key] = at_least(row[key], low)
        if dev:
            b = row["bound"]
            row.update(latency=at_least(b["latency_s"], low), verdict=b["verdict"])
            row["max_fps"] = Bound(b["max_fps"], upper=True) if low else b["max_fps"]
    if dev:
        columns += [
            Column("bound ms/frame", "latency", lambda v: f"{v * 1e3:.2f}"),
            Column("max fps", "max_fps", lambda v: f"{v:.1f}"),
            Column("verdict", "verdict", numeric=False, wrap=True),
        ]
    table = Table(title=f"{shape_text(frame)} at {fps:g} fps, {how}", columns=columns, rows=rows)
    table.notes.append(
        f"1 MAC = one multiply-accumulate (bias adds are not MACs); FLOP/s = MAC/s x "
        f"{flops_per_mac} (--flops-per-mac: 1 counts a MAC as one FLOP, as many papers do; 2 as two)."
    )
    if mode == "tile":
        table.notes.append(
            "tiles = frame area / tile area (tiles that do not overlap, fractional)"
            if tiling == "exact" and not overlap
            else "tiles per axis = (frame - overlap) / (tile - overlap)"
            + (", rounded up" if tiling == "whole" else "")
        )
    else:
        table.notes.append(
            "frame mode: convolutions and pooling at the frame's size; an fc after spatial features "
            "is the convolution over its window, at every position (positions = output map size)."
        )
    table.notes.append(f"act./s: activation bytes read and written per second at {dtype} (no cache reuse).")
    clips = sorted({row["clip_frames"] for row in rows if "clip_frames" in row})
    if clips:
        table.notes.append(
            f"video models see clips of {'/'.join(map(str, clips))} frames: one clip per that many frames "
            "(non-overlapping clips), so MACs/frame = MACs per clip (and tile) / clip frames."
        )
    for row in rows:
        if not row["complete"]:
            table.notes.append(
                f"{row['model']}: ≥ / ≤: bounds; MACs unknown (counted 0) for "
                f"{incomplete_text(row['incomplete'])}."
            )
    if dev:
        table.notes.append(
            f"bound: roofline lower bound on {dev.name} ({dev.description}) at {dtype}: per layer "
            "max(MACs / peak, bytes moved / bandwidth), summed; a bound, not a measurement."
        )
    render(table, fmt)
