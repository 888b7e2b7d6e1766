"""``cnnstat plot``: charts: model comparison, per-layer costs, receptive field, roofline.

Each subcommand draws one chart of :mod:`cnnstat.plot` to ``-o FILE`` (PNG, SVG or PDF by
extension; matplotlib, the ``plot`` extra) or prints its data with ``--format json`` (no
matplotlib needed).
"""

from __future__ import annotations

import click

from cnnstat.cli.common import dtype_option, input_option, torch_options


@click.group("plot", short_help="Charts: models compared, per-layer costs, field, roofline.")
def command():
    """Charts of models, to -o FILE (.png, .svg or .pdf) or, with --format json, their data.

    Drawing needs matplotlib: pip install 'cnnstat[plot]'.

    \b
    Example:
      cnnstat plot compare resnet50 vgg16 mobilenet_v2 -o compare.png
      cnnstat plot layers resnet50 --metric params -o layers.svg
      cnnstat plot rf vgg16 -o rf.png
      cnnstat plot roofline resnet50 --device h100-sxm -o roofline.pdf
    """


def output_options(f):
    """-o FILE and --format image|json, shared by every chart."""
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(["image", "json"]),
        default="image",
        show_default=True,
        help="image: draw to -o FILE; json: print the chart's data (to -o FILE if given).",
    )(f)
    return click.option(
        "-o",
        "--output",
        metavar="FILE",
        help="Where to draw: .png, .svg or .pdf (the extension chooses).",
    )(f)


def model_argument(f):
    f = torch_options(f)
    f = input_option(f)
    f = click.option(
        "--resolution", metavar="WxH", help="Override the input's width and height, e.g. 1920x1080."
    )(f)
    return click.argument("model")(f)


def emit(data: dict, fmt: str, output: str | None, draw):
    """Print or write ``data`` as JSON, or draw the figure ``draw()`` returns to ``output``."""
    if fmt == "json":
        if output:
            _write_json(data, output)
        else:
            from cnnstat.render import print_json

            print_json(data)
        return
    from cnnstat.plot.draw import save

    fig = draw()
    save(fig, output)
    click.echo(f"wrote {output}")


def _check_output(fmt: str, output: str | None):
    """Before any work: an image needs -o with a known extension, and matplotlib."""
    if fmt == "json":
        return
    from cnnstat.errors import CnnstatError

    if not output:
        raise CnnstatError("give -o FILE (.png, .svg or .pdf) to draw, or --format json for the data")
    from cnnstat.plot.draw import image_format, require_matplotlib

    image_format(output)
    require_matplotlib()


def _write_json(data: dict, path: str):
    """``--format json -o FILE``: the JSON print_json would print, written atomically."""
    import contextlib
    import io

    from cnnstat.files import write_atomic
    from cnnstat.render import print_json

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_json(data)
    write_atomic(path, buf.getvalue().encode("utf-8"), "JSON file")
    click.echo(f"wrote {path}")


@command.command("compare", short_help="Top-1 accuracy against GMACs, bubble area = params (Bianco et al.).")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option(
    "--dataset",
    help="Plot top-1 accuracy on this dataset (default: the one most of the models report).",
)
@output_options
def compare(models, dataset, output, fmt):
    """Top-1 accuracy against GMACs (log scale), bubble area proportional to parameters.

    Bianco et al.'s chart ("Benchmark Analysis of Representative Deep Neural Network
    Architectures", 2018). Each MODEL at its own input; accuracy from its spec's `accuracy:`
    (torchvision:NAME: its weights' metadata, read offline). With no MODEL, the whole zoo.
    Models without a top-1 accuracy on the dataset are named as not drawn.

    \b
    Example:
      cnnstat plot compare -o zoo.png
      cnnstat plot compare resnet50 vgg16 torchvision:regnet_y_400mf -o compare.svg
    """
    from cnnstat.plot.data import compare_data, compare_entries

    _check_output(fmt, output)
    entries = compare_entries(list(models))
    data = compare_data(entries, dataset)
    if fmt == "json":
        emit(data, fmt, output, None)
        return
    from cnnstat.cli.common import warn
    from cnnstat.plot.draw import compare_figure

    warn(*(f"note: {s['model']} not drawn: {s['reason']}" for s in data["skipped"]))
    if not data["points"]:
        from cnnstat.errors import CnnstatError

        raise CnnstatError(
            "no model to draw: none has a top-1 accuracy" + (f" on {dataset}" if dataset else "")
        )
    emit(data, fmt, output, lambda: compare_figure(entries, dataset))


@command.command("layers", short_help="Per-layer bars of MACs, params or activation memory.")
@model_argument
@click.option(
    "--metric",
    type=click.Choice(["macs", "params", "activations"]),
    default="macs",
    show_default=True,
    help="What each bar shows (activations: output bytes at --dtype).",
)
@click.option("--log", is_flag=True, help="Logarithmic y axis.")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    help="Blocks are layers sharing the first N parts of their dotted names (default: chosen).",
)
@dtype_option("Type of the activations (--metric activations).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size.")
@output_options
def layers(model, resolution, input_, metric, log, depth, dtype, batch, output, fmt):
    """One bar per layer: MACs, parameters or activation memory; block boundaries dashed.

    \b
    Example:
      cnnstat plot layers resnet50 -o layers.png
      cnnstat plot layers vgg16 --metric params --log -o params.svg
    """
    from cnnstat.cli.common import load_analysis
    from cnnstat.plot.data import layers_data

    _check_output(fmt, output)
    a = load_analysis(model, input_, resolution, dtype, batch)
    data = layers_data(a, metric, log, depth)

    def draw():
        from cnnstat.plot.draw import layers_figure

        return layers_figure(a, metric, log, depth)

    emit(data, fmt, output, draw)


@command.command("rf", short_help="Receptive-field size and jump by depth.")
@model_argument
@output_options
def rf(model, resolution, input_, output, fmt):
    """Receptive-field size and jump (effective stride) of every layer, in order.

    An unknown field (past a call cnnstat has no op for) is a gap, said in the legend.

    \b
    Example:
      cnnstat plot rf vgg16 -o rf.png
    """
    from cnnstat.cli.common import load_analysis
    from cnnstat.plot.data import rf_data

    _check_output(fmt, output)
    a = load_analysis(model, input_, resolution)

    def draw():
        from cnnstat.plot.draw import rf_figure

        return rf_figure(a)

    emit(rf_data(a), fmt, output, draw)


@command.command("roofline", short_help="A device's roofline with every layer a point.")
@model_argument
@click.option("--device", required=True, help="The device (cnnstat devices lists them).")
@dtype_option("Type of weights and activations (bytes moved, the device's peak rate).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size.")
@output_options
def roofline(model, resolution, input_, device, dtype, batch, output, fmt):
    """The device's roofline with every layer a point: arithmetic intensity (MAC/byte) and
    attainable rate (MAC/s); the bound that limits the whole network marked.

    \b
    Example:
      cnnstat plot roofline resnet50 --device h100-sxm -o roofline.png
      cnnstat plot roofline mobilenet_v2 --device jetson-orin-nano --dtype fp16 -o r.svg
    """
    from cnnstat.cli.common import load_analysis
    from cnnstat.hardware import get_device
    from cnnstat.plot.data import roofline_data

    _check_output(fmt, output)
    dev = get_device(device)
    dev.peak(dtype)  # a device without this dtype: say so before the analysis
    a = load_analysis(model, input_, resolution, dtype, batch)
    data = roofline_data(a, dev, dtype)

    def draw():
        from cnnstat.plot.draw import roofline_figure

        return roofline_figure(a, dev, dtype)

    emit(data, fmt, output, draw)
