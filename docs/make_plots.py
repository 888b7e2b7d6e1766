"""Draw the charts docs/plots.md shows, into docs/img/ (or another folder).

    python docs/make_plots.py [OUT_DIR]

Every image on the page comes from here, so that none is drawn by hand or left stale:
tests/test_plot.py runs :func:`make` into a temporary folder and checks the points drawn
against the analysis. Rerun it after a change to the zoo, the accuracy metadata or the
charts, and commit the images.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DPI = 100

JETSON = {"device": "jetson-orin-nano", "dtype": "fp16"}
# (file, chart, model(s), options): what docs/plots.md links, in its order.
FIGURES = [
    ("compare-zoo.png", "compare", None, {}),
    ("layers-resnet50.png", "layers", "resnet50", {"metric": "macs"}),
    ("rf-resnet50.png", "rf", "resnet50", {}),
    ("roofline-mobilenet_v2.png", "roofline", "mobilenet_v2", JETSON),
]


def draw(chart: str, model, options: dict) -> tuple:
    """(data, Figure) of one chart, as ``cnnstat plot`` draws it."""
    from cnnstat import plot
    from cnnstat.analysis import analyze

    if chart == "compare":
        entries = plot.compare_entries(model)
        return plot.compare_data(entries), plot.compare_figure(entries)
    dtype = options.get("dtype", "fp32")
    a = analyze(model, dtype=dtype)
    if chart == "layers":
        return plot.layers_data(a, options["metric"]), plot.layers_figure(a, options["metric"])
    if chart == "rf":
        return plot.rf_data(a), plot.rf_figure(a)
    return plot.roofline_data(a, options["device"], dtype), plot.roofline_figure(a, options["device"], dtype)


def make(out_dir: str) -> dict:
    """Draw every figure into ``out_dir``: {file name: (data, Figure)}."""
    from cnnstat.plot.draw import save

    os.makedirs(out_dir, exist_ok=True)
    out = {}
    for name, chart, model, options in FIGURES:
        data, fig = draw(chart, model, options)
        fig.set_dpi(DPI)
        save(fig, os.path.join(out_dir, name))
        out[name] = (data, fig)
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "img")
    for name in make(target):
        print(os.path.join(target, name))
