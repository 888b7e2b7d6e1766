"""matplotlib figures of the data in :mod:`cnnstat.plot.data`, and writing them (PNG, SVG, PDF).

Imported only to draw (``cnnstat plot`` without ``--format json``, ``cnnstat report``): no
other command loads matplotlib. Figures are :class:`matplotlib.figure.Figure` objects on an
Agg canvas, made without pyplot (no global state, no GUI backend, nothing left open). Each
function draws exactly the points of its data function; the artists carry a ``gid``
(``compare-points``, ``layers-bar-0``, ``rf-size-H``, ``roofline-compute``, ...) by which the
tests read the drawn numbers back.
"""

from __future__ import annotations

import math
import os
import re
import textwrap

from cnnstat.errors import CnnstatError
from cnnstat.plot import data as D

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
KIND_COLORS = {"conv": "#4C72B0", "fc": "#DD8452", "other": "#8C8C8C"}
MAX_SEARCHED_LABELS = 150  # compare: more points are labelled to their right, unsearched
MAX_BARS = 2000  # layers drawn as bars; more as one line per layer (one artist per kind)
BOUND_COLORS = {"compute": "#4C72B0", "memory": "#DD8452"}
FONT = 8
# Same input, same bytes: no dates or version strings in the files, fixed SVG ids.
METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None}}
RC = {"svg.hashsalt": "cnnstat", "svg.fonttype": "path", "font.size": FONT, "axes.titlesize": FONT + 1}


def require_matplotlib():
    """matplotlib, or one message saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise CnnstatError(
            "drawing needs matplotlib: install cnnstat[plot] (pip install 'cnnstat[plot]'), "
            "or print the chart's data with --format json"
        ) from None
    return matplotlib


def new_figure(width: float, height: float):
    """An empty Figure (inches) on its own Agg canvas."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _rc():
        fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _rc():
    import matplotlib

    return matplotlib.rc_context(RC)


# --- compare -------------------------------------------------------------------------------------


def family(model: str) -> str:
    """resnet of resnet50-v1, se_resnext of se_resnext50_32x4d: the colour of a bubble."""
    name = model.rsplit(":", 1)[-1].rsplit("/", 1)[-1].lower()
    m = re.match(r"(se_)?[a-z]+", name)
    return m.group(0) if m else name


def compare_figure(
    entries: list, dataset: str | None = None, width: float | None = None, height=None, highlight=()
):
    """Bianco et al.'s chart: top-1 accuracy against GMACs (log), bubble area proportional to
    parameters, every point labelled; the models not drawn are named under the chart. Size in
    inches: by default 9 x 6, 13 x 8.5 for more than 30 models. ``highlight``: model names
    drawn with a red edge and a bold label (a report's own model among the zoo)."""
    highlight = {highlight} if isinstance(highlight, str) else set(highlight or ())
    data = D.compare_data(entries, dataset)
    big = len(data["points"]) > 30
    fig = new_figure(width or (13.0 if big else 9.0), height or (8.5 if big else 6.0))
    with _rc():
        ax = fig.add_subplot()
        points = data["points"]
        palette = _palette()
        families = list(dict.fromkeys(family(p["model"]) for p in points))
        colors = [palette[families.index(family(p["model"])) % len(palette)] for p in points]
        ax.scatter(
            [p["gmacs"] for p in points],
            [p["top1"] for p in points],
            s=[p["area"] for p in points],
            c=colors,
            alpha=0.55,
            edgecolors=["crimson" if p["model"] in highlight else "black" for p in points],
            linewidths=[2.0 if p["model"] in highlight else 0.5 for p in points],
            gid="compare-points",
            zorder=3,
        )
        ax.set_xscale("log")
        ax.set_xlabel(data["x"])
        ax.set_ylabel(data["y"])
        ax.grid(True, which="both", alpha=0.25)
        title = (
            f"Top-1 accuracy against compute: {len(points)} models, bubble area proportional to parameters"
        )
        ax.set_title(title)
        notes = [
            "1 MAC = one multiply-accumulate; each model at its own input; accuracy: the source in its spec"
        ]
        if any(p["macs_lower_bound"] for p in points):
            notes.append("≥: MACs of some layer unknown, the point's GMACs a lower bound")
        if data["skipped"]:
            notes.append(_skipped_text(data["skipped"]))
        fig.text(0.01, 0.0, "\n".join(notes), fontsize=FONT - 1, va="bottom", wrap=True, gid="compare-notes")
        fig.get_layout_engine().set(rect=(0, 0.03 * len(notes) + 0.02, 1, 1 - 0.03 * len(notes) - 0.02))
        if points:
            _limits(ax, points)
            _size_legend(ax, data)
            _labels(fig, ax, points, highlight)
    return fig


def _palette() -> list:
    import matplotlib

    return [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab20"].colors]


def _skipped_text(skipped: list) -> str:
    by_reason: dict = {}
    for s in skipped:
        by_reason.setdefault(s["reason"], []).append(s["model"])
    parts = [f"{', '.join(models)} ({reason})" for reason, models in by_reason.items()]
    return "Not drawn: " + "; ".join(parts)


def _limits(ax, points: list):
    xs, ys = [p["gmacs"] for p in points], [p["top1"] for p in points]
    ax.set_xlim(min(xs) / 2, max(xs) * 2)
    ax.set_ylim(min(ys) - 3, max(ys) + 3)


def _size_legend(ax, data: dict):
    """Three reference bubbles (1, 10, 100 M parameters or the powers of ten below the largest
    model), beside the axes where they hide no point, spaced by the largest one's diameter."""
    largest = max(p["params"] for p in data["points"])
    top = 10 ** math.floor(math.log10(largest))
    sizes = (top / 100, top / 10, top)
    handles = [
        ax.scatter([], [], s=n * data["area_per_param"], c="white", edgecolors="black", linewidths=0.5)
        for n in sizes
    ]
    diameter = 2 * math.sqrt(top * data["area_per_param"] / math.pi) / (FONT - 1)  # in font sizes
    ax.legend(
        handles,
        [f"{_si(n)} params" for n in sizes],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        labelspacing=max(1.0, diameter * 0.8),
        borderpad=max(1.0, diameter / 2),
        handletextpad=max(1.0, diameter / 2),
        fontsize=FONT - 1,
        title="bubble area",
        title_fontsize=FONT - 1,
    )


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:g}{unit}"
    return f"{n:g}"


def _labels(fig, ax, points: list, highlight: set = frozenset()):
    """Each point's name near it: of places around the bubble (12 directions, 4 distances),
    the one overlapping least the labels placed so far and the bubbles, nearer places
    preferred; a thin leader line when the label sits away from its bubble. Greedy, largest
    bubbles first; boxes are measured once per label, in display pixels."""
    renderer = fig.canvas.get_renderer()
    fig.get_layout_engine().execute(fig)
    to_px = ax.transData.transform
    px = fig.dpi / 72  # pixels per point
    centres = [to_px((p["gmacs"], p["top1"])) for p in points]
    radii = [math.sqrt(p["area"] / math.pi) * px for p in points]
    bubbles = [(cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centres, radii)]
    frame = ax.get_window_extent(renderer)
    placed = []
    crowded = len(points) > MAX_SEARCHED_LABELS  # the search is quadratic: then right of each
    distances, angles = ((2,), (0,)) if crowded else ((2, 8, 16, 28, 44), range(12))
    for i in sorted(range(len(points)), key=lambda i: -points[i]["area"]):
        p = points[i]
        label = p["model"] + (" (≥)" if p["macs_lower_bound"] else "")
        weight = "bold" if p["model"] in highlight else "normal"
        probe = ax.text(0, 0, label, fontsize=FONT - 1, fontweight=weight)
        bb = probe.get_window_extent(renderer)
        w, h = bb.width, bb.height
        probe.remove()
        best = None
        for step, extra in enumerate(distances):
            d = radii[i] + extra * px
            for k in angles:
                angle = math.radians(30 * k)
                box, ha, va = _label_box(centres[i], d, angle, w, h)
                cost = 20 * sum(_overlap(box, b) for b in placed)  # text over text: unreadable
                cost += sum(_overlap(box, b) for j, b in enumerate(bubbles) if j != i)
                outside = box[0] < frame.x0 or box[2] > frame.x1 or box[1] < frame.y0 or box[3] > frame.y1
                cost += 1e9 * outside + step * w * h * 0.05 + k * 1e-3
                if best is None or cost < best[0]:
                    best = (cost, box, ha, va, d, angle, step)
        _, box, ha, va, d, angle, step = best
        text = ax.annotate(
            label,
            (p["gmacs"], p["top1"]),
            xytext=(d / px * math.cos(angle), d / px * math.sin(angle)),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=FONT - 1,
            fontweight=weight,
            zorder=4,
            arrowprops={"arrowstyle": "-", "linewidth": 0.4, "color": "#666666"} if step > 1 else None,
        )
        text.set_gid(f"compare-label-{i}")
        placed.append(box)
    fig.set_layout_engine("none")  # the labels were placed at this layout: keep it


def _label_box(centre, d: float, angle: float, w: float, h: float) -> tuple:
    """The pixel box of a w x h label anchored at distance d from centre in direction angle,
    aligned away from the bubble; with its alignment."""
    x, y = centre[0] + d * math.cos(angle), centre[1] + d * math.sin(angle)
    c, s = math.cos(angle), math.sin(angle)
    ha = "left" if c > 0.3 else "right" if c < -0.3 else "center"
    va = "bottom" if s > 0.3 else "top" if s < -0.3 else "center"
    x0 = x if ha == "left" else x - w if ha == "right" else x - w / 2
    y0 = y if va == "bottom" else y - h if va == "top" else y - h / 2
    return (x0, y0, x0 + w, y0 + h), ha, va


def _overlap(a: tuple, b: tuple) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


# --- layers --------------------------------------------------------------------------------------


def layers_figure(analysis, metric: str = "macs", log: bool = False, depth: int | None = None):
    """One bar per layer (coloured by kind: conv, fc, other), block boundaries dashed and
    named; layers whose MACs are unknown marked with a red x at the axis."""
    data = D.layers_data(analysis, metric, log, depth)
    bars = data["bars"]
    n = len(bars)
    fig = new_figure(min(16.0, max(7.0, 4 + n * 0.06)), 4.5)
    with _rc():
        ax = fig.add_subplot()
        kinds = [la.kind for la in analysis.layers]
        values = [math.nan if b["value"] is None else b["value"] for b in bars]
        if log:
            ax.set_yscale("log", nonpositive="clip")
        if n <= MAX_BARS:
            drawn = ax.bar(range(n), values, width=0.8, color=[KIND_COLORS[k] for k in kinds])
            for i, bar in enumerate(drawn):  # one id each: an SVG's ids must not repeat
                bar.set_gid(f"layers-bar-{i}")
        else:  # one artist per kind: thousands of Rectangles would take minutes to draw
            for kind, color in KIND_COLORS.items():
                xs = [i for i in range(n) if kinds[i] == kind and not math.isnan(values[i])]
                if xs:
                    bottom = 0 if not log else min((v for v in values if v > 0), default=1) / 10
                    ax.vlines(xs, bottom, [values[i] for i in xs], color=color, gid=f"layers-lines-{kind}")
        ax.set_xlim(-1, n)
        ax.set_ylabel(data["y"])
        ax.set_title(
            f"{data['model']}: {metric} per layer"
            + (f" (batch {data['batch']})" if data["batch"] > 1 else "")
        )
        for b in data["blocks"]:
            for x in (b["first"] - 0.5, b["last"] + 0.5):
                ax.axvline(x, color="#555555", linestyle="--", linewidth=0.6, alpha=0.7)
        if data["blocks"]:  # block names on a top axis, at each block's middle
            names = ax.secondary_xaxis("top")
            names.set_xticks(
                [(b["first"] + b["last"]) / 2 for b in data["blocks"]],
                [b["name"] for b in data["blocks"]],
                fontsize=FONT - 2,
                rotation=90 if len(data["blocks"]) > 8 else 0,
            )
            names.tick_params(length=0)
        if n <= 60:
            ax.set_xticks(range(n), [b["name"] for b in bars], rotation=90, fontsize=FONT - 2)
        else:
            ax.set_xlabel("layer (in order)" + ("; dashed lines: block boundaries" if data["blocks"] else ""))
        _kind_legend(ax, kinds, data)
    return fig


def _kind_legend(ax, kinds: list, data: dict):
    from matplotlib.patches import Patch

    handles = [Patch(color=KIND_COLORS[k], label=k) for k in KIND_COLORS if k in kinds]
    unknown = [b["index"] for b in data["bars"] if b["value"] is None]
    if unknown:
        h = ax.plot(unknown, [0] * len(unknown), "x", color="red", transform=ax.get_xaxis_transform())[0]
        h.set_clip_on(False)
        h.set_gid("layers-unknown")
        h.set_label(f"MACs unknown ({len(unknown)} layers, not drawn)")
        handles.append(h)
    ax.legend(handles=handles, fontsize=FONT - 1, loc="upper right")


# --- receptive field -----------------------------------------------------------------------------


def rf_figure(analysis):
    """Receptive-field size (top) and jump (bottom, log 2) per layer; an unknown field is a
    gap, said in the legend; layers whose units see the whole input are shaded."""
    data = D.rf_data(analysis)
    points = data["points"]
    n = len(points)
    fig = new_figure(min(14.0, max(7.0, 4 + n * 0.04)), 5.5)
    with _rc():
        top, bottom = fig.subplots(2, 1, sharex=True)
        xs = list(range(n))
        axes = data["axes"]
        for group in _same_axes(points, axes):  # axes whose fields are equal share one line
            k, axis = group[0]
            name = f" ({' = '.join(a for _, a in group)})" if len(axes) > 1 else ""
            size = [math.nan if p["size"] is None else p["size"][k] for p in points]
            jump = [math.nan if p["jump"] is None else p["jump"][k] for p in points]
            top.plot(xs, size, ".-", markersize=3, linewidth=1, gid=f"rf-size-{axis}", label=f"size{name}")
            bottom.plot(xs, jump, ".-", markersize=3, linewidth=1, gid=f"rf-jump-{axis}", label=f"jump{name}")
        bottom.set_yscale("log", base=2)
        top.set_ylabel(data["size"], fontsize=FONT - 1)
        bottom.set_ylabel(data["jump"], fontsize=FONT - 1)
        bottom.set_xlabel(data["x"])
        top.set_title(f"{data['model']}: receptive field by depth" + _network_text(data))
        _rf_marks(top, bottom, points, data)
        for ax in (top, bottom):
            ax.grid(True, alpha=0.25)
            ax.legend(fontsize=FONT - 1, loc="upper left")
    return fig


def _same_axes(points: list, axes: list) -> list:
    """The axes grouped by equal fields at every layer: [[(0, "D")], [(1, "H"), (2, "W")]]."""
    groups: dict = {}
    for k, axis in enumerate(axes):
        key = tuple(None if p["size"] is None else (p["size"][k], p["jump"][k]) for p in points)
        groups.setdefault(key, []).append((k, axis))
    return list(groups.values())


def _network_text(data: dict) -> str:
    net = data["network"]
    if not net or net.get("size") is None:
        return ""
    size = "x".join(str(v) for v in net["size"])
    jump = "x".join(f"{v:g}" for v in net["jump"])
    return f" (network: {size} pixels, jump {jump}, at {net['layer']})"


def _rf_marks(top, bottom, points: list, data: dict):
    """Shade 'whole input' layers, and say in the legend why gaps are gaps."""
    whole = [p["index"] for p in points if p["state"] == "whole"]
    unknown = [p["index"] for p in points if p["state"] == "unknown"]
    for ax in (top, bottom):
        for i in whole:
            ax.axvspan(i - 0.5, i + 0.5, color="#DDDDDD", linewidth=0)
    if whole:
        top.fill_between([], [], color="#DDDDDD", label="whole input (global pooling, fc)")
    if unknown:
        why = data["unknown"] or "past a call cnnstat has no op for"
        top.plot([], [], " ", label=f"gap: unknown ({len(unknown)} layers), {why}")


# --- roofline ------------------------------------------------------------------------------------


def roofline_figure(analysis, device, dtype: str | None = None):
    """The device's roofline (rate = min(peak, intensity x bandwidth), log-log), every layer
    with MACs a point on it (coloured by the bound that limits it; larger markers take more
    time), the ridge dotted, the whole network a star at its own intensity and rate."""
    data = D.roofline_data(analysis, device, dtype)
    fig = new_figure(8.0, 5.5)
    with _rc():
        ax = fig.add_subplot()
        points, net = data["points"], data["network"]
        peak, bw, ridge = data["peak_macs_per_second"], data["bandwidth_bytes_per_second"], data["ridge"]
        xs = [p["intensity"] for p in points] + [ridge] + ([net["intensity"]] if net["intensity"] else [])
        lo, hi = min(xs) / 4, max(xs) * 4
        ax.plot([lo, ridge, hi], [lo * bw, peak, peak], color="black", linewidth=1.5, gid="roofline-roof")
        ax.axvline(ridge, color="black", linestyle=":", linewidth=0.8)
        ax.annotate(
            f"ridge {ridge:.1f} MAC/byte",
            (ridge, peak),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize=FONT - 1,
        )
        total = net["time_s"] or 1.0
        for bound in ("compute", "memory"):
            mine = [p for p in points if p["bound"] == bound]
            if not mine:
                continue
            share = sum(p["time_s"] for p in mine) / total
            ax.scatter(
                [p["intensity"] for p in mine],
                [p["attainable"] for p in mine],
                s=[12 + 400 * p["time_s"] / total for p in mine],
                color=BOUND_COLORS[bound],
                alpha=0.6,
                edgecolors="black",
                linewidths=0.3,
                gid=f"roofline-{bound}",
                label=f"{bound}-bound layers ({len(mine)}, {share:.0%} of the time)",
                zorder=3,
            )
        if net["intensity"]:
            what = "at least " if net["lower_bound"] else ""
            ax.scatter(
                [net["intensity"]],
                [net["rate"]],
                marker="*",
                s=220,
                color="crimson",
                edgecolors="black",
                linewidths=0.5,
                gid="roofline-network",
                label=f"whole network: {net['bound']}-bound ({what}{net['time_s'] * 1e3:.3g} ms per pass)",
                zorder=4,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(min(lo * bw, min((p["attainable"] for p in points), default=peak)) / 2, peak * 3)
        ax.set_xlabel(data["x"])
        ax.set_ylabel(data["y"])
        ax.set_title(
            f"{data['model']} on {data['device']} at {data['dtype']}: roofline (a bound, not a measurement)"
        )
        ax.grid(True, which="major", alpha=0.25)
        ax.legend(fontsize=FONT - 1, loc="lower right")
        fig.text(0.01, 0.0, _roofline_note(data), fontsize=FONT - 1, va="bottom", gid="roofline-notes")
        fig.get_layout_engine().set(rect=(0, 0.05, 1, 0.95))
    return fig


def _roofline_note(data: dict) -> str:
    from cnnstat.units import human_bytes, si

    n = data["no_macs"]
    text = (
        f"Peak {si(data['peak_macs_per_second'])} MAC/s, "
        f"bandwidth {human_bytes(data['bandwidth_bytes_per_second'])}/s "
        f"({data['description']}). Not drawn: {n['layers']} layers without MACs "
        f"(memory traffic only, {n['time_s'] * 1e3:.3g} ms)"
    )
    if data["unknown"]:
        text += f", {len(data['unknown'])} layers whose MACs are unknown"
    return textwrap.fill(text + ".", 150)


# --- writing -------------------------------------------------------------------------------------


def image_format(path: str) -> str:
    """png, svg or pdf from the file name's extension; anything else is an error."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        shown = f"'{ext}'" if ext else "none"
        raise CnnstatError(f"{path}: unknown image format (extension {shown}): use .png, .svg or .pdf")
    return FORMATS[ext]


def save(fig, path) -> str:
    """Write ``fig`` to ``path`` in the format its extension names (png, svg, pdf), whole or
    not at all: drawn in memory, then written to a temporary file in the same directory and
    renamed over ``path`` (the atomic write of ``cnnstat snapshot``: a directory, a device or a
    missing folder is one error; a new file gets the umask's mode, a replaced one keeps its)."""
    import io

    from cnnstat.files import write_atomic

    fmt = image_format(path)
    buf = io.BytesIO()
    with _rc():
        fig.savefig(buf, format=fmt, metadata=METADATA[fmt])
    write_atomic(os.fspath(path), buf.getvalue(), "image")
    return os.fspath(path)


def to_svg(fig) -> str:
    """``fig`` as an ``<svg>`` element to inline in HTML: no XML prolog or DOCTYPE, glyphs as
    paths (no font needed), ids fixed (the same figure gives the same text)."""
    import io

    buf = io.StringIO()
    with _rc():
        fig.savefig(buf, format="svg", metadata=METADATA["svg"])
    text = buf.getvalue()
    return text[text.index("<svg") :]
