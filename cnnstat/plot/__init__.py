"""Charts of an analysis: model comparison (accuracy against MACs), per-layer costs, receptive
field by depth, roofline.

Each chart has a data function (plain numbers from an Analysis, no matplotlib: what
``cnnstat plot ... --format json`` prints) and a figure function drawing exactly those numbers
(a :class:`matplotlib.figure.Figure` on an Agg canvas). Importing this package does not import
matplotlib; the figure functions do, and raise :class:`~cnnstat.errors.CnnstatError` ("install
cnnstat[plot]") without it.

    from cnnstat.analysis import analyze
    from cnnstat import plot

    a = analyze("resnet50")
    plot.save(plot.layers_figure(a, metric="macs"), "layers.png")
    svg = plot.to_svg(plot.roofline_figure(a, "h100-sxm"))        # '<svg ...>...</svg>'
    entries = plot.compare_entries(["resnet50", "vgg16", "mobilenet_v2"])
    plot.save(plot.compare_figure(entries), "compare.svg")
"""

from __future__ import annotations

from cnnstat.plot.data import (
    accuracy_of,
    block_depth,
    compare_data,
    compare_entries,
    compare_entry,
    layers_data,
    rf_data,
    roofline_data,
    torchvision_accuracy,
)


def compare_figure(
    entries: list, dataset: str | None = None, width: float | None = None, height=None, highlight=()
):
    """Top-1 accuracy against GMACs (log), bubble area proportional to params, labelled; the
    entries of :func:`compare_entries`; those without a top-1 on ``dataset`` named as not drawn;
    ``highlight``: a model name (or names) drawn with a red edge and a bold label."""
    from cnnstat.plot.draw import compare_figure as draw

    return draw(entries, dataset, width, height, highlight)


def layers_figure(analysis, metric: str = "macs", log: bool = False, depth: int | None = None):
    """Bars per layer of ``metric`` (params, macs, activations), block boundaries marked."""
    from cnnstat.plot.draw import layers_figure as draw

    return draw(analysis, metric, log, depth)


def rf_figure(analysis):
    """Receptive-field size and jump per layer; unknown fields are gaps, said in the legend."""
    from cnnstat.plot.draw import rf_figure as draw

    return draw(analysis)


def roofline_figure(analysis, device, dtype: str | None = None):
    """``device``'s roofline (a name or Device) with every layer a point, the limiting bound marked."""
    from cnnstat.plot.draw import roofline_figure as draw

    return draw(analysis, device, dtype)


def to_svg(fig) -> str:
    """The figure as an inline-able ``<svg>`` string (no XML prolog; glyphs as paths)."""
    from cnnstat.plot.draw import to_svg as svg

    return svg(fig)


def save(fig, path) -> str:
    """Write the figure to ``path`` (.png, .svg or .pdf, by extension), atomically."""
    from cnnstat.plot.draw import save as write

    return write(fig, path)


__all__ = [
    "accuracy_of",
    "block_depth",
    "compare_data",
    "compare_entries",
    "compare_entry",
    "compare_figure",
    "layers_data",
    "layers_figure",
    "rf_data",
    "rf_figure",
    "roofline_data",
    "roofline_figure",
    "save",
    "to_svg",
    "torchvision_accuracy",
]
