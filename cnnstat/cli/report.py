"""``cnnstat report MODEL -o report.html``: one self-contained HTML page of a model; also the
page ``cnnstat check --report`` writes (:func:`check_report`)."""

from __future__ import annotations

import click

from cnnstat.cli.common import (
    binary_option,
    dtype_option,
    fps_option,
    input_option,
    load_analysis,
    torch_options,
)


@click.command("report", short_help="One self-contained HTML report of a model (tables and plots).")
@click.argument("model")
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    metavar="FILE",
    help="Where to write the page ('-': standard output).",
)
@input_option
@click.option("--resolution", metavar="WxH", help="Override the input's width and height, e.g. 512x512.")
@click.option(
    "--batch", type=click.IntRange(1, 2**31), default=1, show_default=True, help="Batch size (at most 2^31)."
)
@dtype_option("Storage type of weights and activations; the devices' rate at this type.")
@binary_option
@click.option(
    "--frame", default="1920x1080", show_default=True, metavar="WxH", help="Frame the throughput covers."
)
@fps_option("Frames per second of the throughput section.")
@click.option(
    "--device",
    "device_names",
    multiple=True,
    metavar="NAME",
    help="Devices of the throughput table, each with a roofline plot (repeatable; default: every "
    "device of 'cnnstat devices', the roofline on the first).",
)
@click.option("--no-plots", is_flag=True, help="Tables only (no matplotlib).")
@torch_options
def command(model, output, input_, resolution, batch, dtype, binary, frame, fps, device_names, no_plots):
    """Write one self-contained HTML page of MODEL: totals by kind, memory, receptive field,
    throughput on the devices at 1920x1080 and 30 fps, plots and the per-layer table.

    The page fetches nothing (inline CSS and SVG, no script): open it anywhere, attach it to
    a pull request. Plots need the plot extra: pip install 'cnnstat[plot]'.

    \b
    Example:
      cnnstat report alexnet -o report.html
      cnnstat report resnet50 --dtype int8 --device jetson-orin-nano -o resnet50.html
    """
    from cnnstat.hardware import get_device
    from cnnstat.report import PLOT_MAX_LAYERS, Section, model_page
    from cnnstat.throughput import default_tile
    from cnnstat.units import parse_resolution

    frame_size = parse_resolution(frame, "frame")
    if output != "-":
        from cnnstat.files import check_writable

        check_writable(output, "report")
    devices = [get_device(name) for name in device_names] if device_names else None
    a = load_analysis(model, input_, resolution, dtype, batch)
    section = Section(
        a,
        binary=binary,
        frame=frame_size,
        fps=fps,
        tile=_tile(a.graph, default_tile, bool(input_ or resolution)),
        devices=devices,
        roofline_devices=devices,
        with_plots=not no_plots,
        model=model,
    )
    page = model_page(section)
    if output == "-":
        click.echo(page, nl=False)
        return
    write_report(output, page)
    plots = f"{section.plot_count} plots" if section.plot_count else "no plots"
    if not no_plots and not section.plot_count:
        plots = "plots missing"
    if not no_plots and len(a.layers) > PLOT_MAX_LAYERS:
        plots = f"no plots (more than {PLOT_MAX_LAYERS:,} layers)"
    from cnnstat.render import MAX_SHOWN, visible

    click.echo(
        f"wrote {visible(output, MAX_SHOWN)}: {visible(a.name, MAX_SHOWN)}, {len(a.layers)} layers, {plots}",
        err=True,
    )


def _tile(graph, default_tile, override: bool):
    """The tile of the throughput section (the ``flops`` default): the network's nominal size,
    else its input; None when the input is not an image (then there is nothing to tile)."""
    from cnnstat.errors import CnnstatError

    try:
        return default_tile(graph, override)
    except CnnstatError:
        return None


def write_report(path: str, page: str) -> None:
    """The page, written atomically: a temporary file in the same directory, then renamed over
    ``path`` (a reader never sees half a page)."""
    from cnnstat.files import write_atomic

    write_atomic(path, page.encode("utf-8"), "report")


def check_report(doc: dict, budgets: list) -> str:
    """The page of ``cnnstat check --report``: the checks, then every budget's model at its
    settings (analysed again here: ``budget.measure`` keeps only the figures)."""
    from cnnstat.cli.check import summary, table_rows
    from cnnstat.report import Section, check_page

    rows, _ = table_rows(doc)
    sections = []
    for i, (entry, b) in enumerate(zip(doc["budgets"], budgets)):
        a, tile, frame_graph = _budget_analysis(b)
        section = Section(
            a,
            prefix=f"b{i + 1}-",
            frame=b.resolution,
            fps=b.fps,
            tile=tile,
            frame_graph=frame_graph,
            plot_kinds=("macs", "roofline"),
            model=b.model,
        )
        sections.append((entry, section))
    return check_page(doc, summary(doc), rows, sections)


def _budget_analysis(b):
    """(Analysis, tile, frame graph or None) of a budget's model at its settings, the graphs
    ``cnnstat.budget.measure`` measures (:func:`cnnstat.budget.graphs`)."""
    from cnnstat.analysis import Analysis
    from cnnstat.budget import graphs

    graph, tile, per_frame = graphs(b)
    return Analysis(graph, dtype=b.dtype, batch=b.batch), tile, per_frame
