"""``cnnstat flops [MODEL...]``: MACs per image, per frame and per second (tile mode)."""

from __future__ import annotations

import click

from cnnstat.cli.common import format_option, input_option, input_shape, shape_text


@click.command("flops")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option(
    "--resolution", default="1920x1080", show_default=True, metavar="WxH", help="Frame size to cover."
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=30,
    show_default=True,
    help="Frames per second.",
)
@click.option("--tile", metavar="WxH", help="Tile size (default: the spec's nominal size, else its input).")
@click.option(
    "--tiles",
    "tiling",
    type=click.Choice(["exact", "whole"]),
    default="exact",
    show_default=True,
    help="exact: frame area / tile area (the lecture's 'no overlap'); whole: round up "
    "to whole tiles per axis.",
)
@click.option(
    "--flops-per-mac",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="FLOPs counted per MAC: 1 (the lecture's 'GFLOPS') or 2 (multiply + add).",
)
@click.option(
    "--mode",
    type=click.Choice(["tile"]),
    default="tile",
    show_default=True,
    help="How the network covers the frame.",
)
@input_option
@format_option
def command(models, resolution, fps, tile, tiling, flops_per_mac, mode, input_, fmt):
    """Compute needed to run MODELs over --resolution frames at --fps.

    With no MODEL, every zoo model, sorted by compute. The frame is covered by tiles the
    size of the network's input; MACs/frame = MACs/image x tiles.

    \b
    Example:
      cnnstat flops alexnet-grouped vgg16 --resolution 1920x1080 --fps 30
      cnnstat flops --tiles whole --format json
    """
    from cnnstat import zoo
    from cnnstat.analysis import Analysis
    from cnnstat.render import Column, Table, print_json, render
    from cnnstat.spec.build import build
    from cnnstat.throughput import default_tile, flops_row
    from cnnstat.units import parse_resolution, si

    frame = parse_resolution(resolution)
    fixed_tile = parse_resolution(tile, "tile") if tile else None
    specs = [zoo.load(m) for m in models] if models else zoo.models()
    rows = []
    for spec in specs:
        shape = input_shape(spec, input_, None)
        graph = build(spec, shape)
        if not models and len(graph.input) != 3:
            continue  # 1-D models have no frame to tile
        t = fixed_tile or default_tile(graph, shape is not None)
        rows.append(flops_row(Analysis(graph), frame, fps, t, tiling, flops_per_mac))
    if not models:
        rows.sort(key=lambda r: r["macs_per_second"], reverse=True)
    if fmt == "json":
        print_json(rows)
        return
    unit = "FLOP/s" if flops_per_mac > 1 else "FLOP/s (=MAC/s)"
    table = Table(
        title=f"{shape_text(frame)} at {fps:g} fps, tile mode ({tiling})",
        columns=[
            Column("model", "model", numeric=False),
            Column("tile", "tile", shape_text),
            Column("tiles", "tiles", lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)),
            Column("MACs/image", "macs_per_image", si),
            Column("MACs/frame", "macs_per_frame", si),
            Column("MAC/s", "macs_per_second", si),
            Column(unit, "flops_per_second", si),
        ],
        rows=rows,
    )
    table.notes.append(
        f"1 MAC = one multiply-accumulate (bias adds are not MACs); FLOP/s = MAC/s x "
        f"{flops_per_mac} (--flops-per-mac; the lecture's 'GFLOPS' use 1)."
    )
    table.notes.append(
        "tiles = frame area / tile area, no overlap (as in the lecture)"
        if tiling == "exact"
        else "tiles = ceil(W / tile W) x ceil(H / tile H), no overlap"
    )
    render(table, fmt)
