"""HTML reports: one self-contained page per model (``cnnstat report``) and one page for all
budgets (``cnnstat check --report``).

Pure: an :class:`~cnnstat.analysis.Analysis` (and a check's results) in, a string of HTML out;
no rich, no click; matplotlib only inside :func:`plots`, through ``cnnstat.plot``. The page
needs no network: CSS inline, plots as inline SVG, no script, no font or image fetched. Every
string that comes from a spec, a PyTorch module, an ONNX file or a budget file (model, layer
and device names, descriptions) is shown as text: control and bidi characters as escapes
(``cnnstat.render.visible``), then HTML-escaped, so that a layer named ``<script>`` is text.

Numbers are the analysis's own: each figure cell carries the exact value in ``data-v`` (what
the tests read back) and shows it rounded (SI prefixes, MB = 10^6 bytes unless binary).
"""

from __future__ import annotations

import html
import re
from fractions import Fraction

from cnnstat.units import DTYPE_BITS, human_bytes, si

FRAME = (1920, 1080)  # the frame the throughput section covers (W, H) unless told otherwise
FPS = 30
PLOT_KINDS = ("macs", "params", "rf", "roofline")  # the plots of a model's page, in order
PLOTS_MISSING = "Plots need matplotlib: pip install 'cnnstat[plot]'."
PLOT_MAX_LAYERS = 2_000  # past this many layers the page draws no plots (says so, and how to)
HEAD_ROWS, TAIL_ROWS = 200, 50  # the layer table past MAX_ROWS: these first and last rows

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--alt:#f6f8fa;--accent:#0969da;--ok:#1a7f37;
--bad:#cf222e;--warnbg:#fff8c5;--warnline:#d4a72c}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:28px 32px 56px}
header{border-bottom:1px solid var(--line);padding-bottom:14px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:36px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:22px 0 8px}
p{margin:6px 0}
.sub,.note{color:var(--muted)}
.note{font-size:13px;margin:6px 0}
nav{margin-top:10px;font-size:13px}
nav a{margin-right:14px}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px;margin:16px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:var(--alt)}
.card .label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .exact{font-size:12px;color:var(--muted);font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0 6px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--alt);font-weight:600;white-space:nowrap}
td.n,th.n{text-align:right;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
tr.total td{font-weight:600;border-top:2px solid var(--fg)}
table.layers{font-size:12.5px}
table.layers thead th{position:sticky;top:0;z-index:1}
td.name{overflow-wrap:anywhere;max-width:340px}
td.unknown,span.unknown{color:var(--bad);font-weight:600}
.warn{background:var(--warnbg);border:1px solid var(--warnline);border-radius:8px;padding:10px 14px;
margin:16px 0}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;
white-space:nowrap}
.pass{background:var(--ok)}.fail{background:var(--bad)}.new{background:#8250df}.shrank{background:#59636e}
h1 .badge{font-size:15px;vertical-align:middle}
figure{margin:16px 0;border:1px solid var(--line);border-radius:8px;padding:10px;background:#fff}
figure svg{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{color:var(--muted);font-size:13px;padding:6px 4px 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;background:var(--alt);
padding:1px 4px;border-radius:4px}
details{margin:10px 0}
summary{cursor:pointer;color:var(--accent)}
section.model{border-top:3px solid var(--line);margin-top:40px}
footer{margin-top:40px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:10px}
"""


# --- text ----------------------------------------------------------------------------------------


def esc(text) -> str:
    """A user string as HTML text (or an attribute value): control and bidi characters as
    escapes, at most 200 characters, ``<>&"'`` escaped."""
    from cnnstat.render import MAX_SHOWN, visible

    return html.escape(visible(str(text), MAX_SHOWN), quote=True)


def dims(shape) -> str:
    """``3x224x224``; receptive-field numbers as ``%g`` (a fraction after upsampling as its
    decimal, 1/3 as 0.333333)."""

    def one(v) -> str:
        if isinstance(v, Fraction):
            return str(v.numerator) if v.denominator == 1 else f"{float(v):g}"
        return f"{v:g}" if isinstance(v, float) else str(v)

    return "x".join(one(v) for v in shape)


def _plain(v):
    """A number for ``data-v``: ints as ints, fractions and floats as %r floats."""
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else float(v)
    return v


def num(value, shown: str, lower: bool = False, key: str = "") -> str:
    """A figure's table cell: the exact value in ``data-v`` (and as a tooltip), ``shown`` as
    the text, ``≥`` in front of a lower bound (``data-bound="lower"``)."""
    v = _plain(value)
    exact = f"{v:,}" if isinstance(v, int) else f"{v:g}"
    attrs = f' data-v="{v!r}"' + (f' data-k="{key}"' if key else "")
    attrs += ' data-bound="lower"' if lower else ""
    return f'<td class="n"{attrs} title="{exact}">{"≥ " if lower else ""}{shown}</td>'


def cell(text, cls: str = "") -> str:
    """A text cell: ``text`` escaped."""
    return f'<td class="{cls}">{esc(text)}</td>' if cls else f"<td>{esc(text)}</td>"


def head(*names) -> str:
    """A table's header row; a name starting with '#' is a number column (right-aligned)."""
    ths = "".join(f'<th class="n">{n[1:]}</th>' if n.startswith("#") else f"<th>{n}</th>" for n in names)
    return f"<thead><tr>{ths}</tr></thead>"


def table(header: str, rows: list, cls: str = "", total: str = "") -> str:
    """A table in a horizontally scrolling box: ``rows`` are ``<tr>`` strings."""
    klass = f' class="{cls}"' if cls else ""
    foot = f"<tfoot>{total}</tfoot>" if total else ""
    return f'<div class="scroll"><table{klass}>{header}<tbody>{"".join(rows)}</tbody>{foot}</table></div>'


def page(title: str, body: str) -> str:
    """The whole document: inline CSS, no script, nothing fetched."""
    from cnnstat import __version__

    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="cnnstat {__version__}">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
        f"<footer>Written by cnnstat {__version__}. Every figure is computed from the architecture "
        "(nothing was run); hover a number for its exact value.</footer>\n</main>\n</body>\n</html>\n"
    )


def conventions(binary: bool) -> str:
    mb = "MiB = 2<sup>20</sup> bytes" if binary else "MB = 10<sup>6</sup> bytes"
    return (
        '<p class="note conventions">Conventions: 1 MAC = one multiply-accumulate; bias adds, '
        f"activations, pooling and normalisation are not MACs; {mb}; params = weights + biases "
        "(buffers such as batch-norm running statistics apart).</p>"
    )


# --- the model's sections -------------------------------------------------------------------------


class Section:
    """What one model's part of a page shows: the analysis and the settings its throughput and
    plots use. ``prefix`` keeps ids unique when a page holds several models."""

    def __init__(
        self,
        a,
        *,
        prefix: str = "",
        binary: bool = False,
        frame: tuple = FRAME,
        fps=FPS,
        tile=None,
        frame_graph=None,
        devices=None,
        roofline_devices=None,
        with_plots: bool = True,
        plot_kinds: tuple = PLOT_KINDS,
        model: str = "",
    ):
        self.a, self.prefix, self.binary = a, prefix, binary
        self.model = model  # the model as the command line named it (the page's hints quote it)
        self.frame, self.fps = frame, fps
        self.tile = tile  # (W, H) tiles (tile mode); None with frame_graph (frame mode)
        self.frame_graph = frame_graph  # the graph run once over the whole frame (frame mode)
        self.devices = devices  # [Device] of the throughput table; None: every known device
        self.roofline_devices = roofline_devices  # [Device]; None: the first that has the dtype
        self.with_plots, self.plot_kinds = with_plots, plot_kinds
        self.plot_count = 0
        self.sub = "h3"  # the headings inside a part (h4 when the parts are h3)

    def id(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def bytes(self, n) -> str:
        return human_bytes(n, self.binary)

    # each part returns HTML

    def warning(self) -> str:
        """The incomplete analysis, said before any figure (as the tables' notes say it)."""
        a = self.a
        if a.complete:
            return ""
        return (
            '<div class="warn incomplete"><strong>Incomplete analysis.</strong> MACs unknown (counted 0) '
            f"for {esc(a.incomplete_text())}. MAC, activation, memory and throughput figures are lower "
            "bounds (marked ≥; fps an upper bound, marked ≤); parameters are all counted.</div>"
        )

    def cards(self) -> str:
        a, t = self.a, self.a.totals()
        low = not a.complete
        m = self.memory
        rf = a.receptive_field()
        if rf is None:
            rf_text, rf_exact = "none", "no spatial layer"
        elif rf.rf is None:
            rf_text, rf_exact = "unknown", f"at {rf.name}"
        elif rf.rf.collapsed:
            rf_text, rf_exact = "whole input", f"at {rf.name}"
        else:
            rf_text, rf_exact = dims(rf.rf.size), f"jump {dims(rf.rf.jump)}, at {rf.name}"
        ge = "≥ " if low else ""
        items = [
            ("params", "params", si(t["params"]), f"{t['params']:,}", ""),
            ("MACs", "macs", ge + si(t["macs"]), f"{ge}{t['macs']:,}", ""),
            (
                f"weights {a.dtype}",
                "weight_bytes",
                self.bytes(t["weight_bytes"]),
                f"{t['weight_bytes']:,} B",
                "",
            ),
            (
                "peak activations",
                "peak_activation_bytes",
                ge + self.bytes(m["peak_activation_bytes"]),
                f"{ge}{m['peak_activation_bytes']:,} B",
                "",
            ),
            ("receptive field", "receptive_field", rf_text, rf_exact, ""),
        ]
        out = []
        for label, key, shown, exact, _ in items:
            out.append(
                f'<div class="card" data-k="{key}"><div class="label">{esc(label)}</div>'
                f'<div class="value">{shown}</div><div class="exact">{esc(exact)}</div></div>'
            )
        return f'<div class="cards">{"".join(out)}</div>'

    @property
    def memory(self) -> dict:
        if not hasattr(self, "_memory"):
            self._memory = self.a.memory()
        return self._memory

    def totals(self) -> str:
        """Parameters and MACs by kind (conv / fc / other) and in total, as ``cnnstat params``."""
        a = self.a
        lower = {la.kind for la in a.layers if la.unknown}
        header = head(
            "kind",
            "#weights",
            "#biases",
            "#params",
            "#buffers",
            f"#weights {a.dtype}",
            f"#params {a.dtype}",
            "#MACs",
            "#activations",
        )

        def row(kind, c, low, cls=""):
            klass = f' class="{cls}"' if cls else ""
            return (
                f'<tr{klass} data-kind="{kind}"><td>{kind}</td>'
                + num(c["weights"], si(c["weights"]), key="weights")
                + num(c["biases"], si(c["biases"]), key="biases")
                + num(c["params"], si(c["params"]), key="params")
                + num(c["buffers"], si(c["buffers"]), key="buffers")
                + num(c["weight_bytes"], self.bytes(c["weight_bytes"]), key="weight_bytes")
                + num(c["param_bytes"], self.bytes(c["param_bytes"]), key="param_bytes")
                + num(c["macs"], si(c["macs"]), low, key="macs")
                + num(c["activations"], si(c["activations"]), bool(a.incomplete()), key="activations")
                + "</tr>"
            )

        rows = [row(kind, c, kind in lower) for kind, c in a.by_kind().items()]
        t = a.totals()
        total = row("total", t, bool(lower), "total")
        batch = f" for a batch of {a.batch}" if a.batch > 1 else ""
        exact = (
            f'<p class="note">Total params: {t["params"]:,}; total MACs: {"≥ " if lower else ""}'
            f"{t['macs']:,}{batch}.</p>"
        )
        return table(header, rows, "totals", total) + exact

    def memory_part(self) -> str:
        """Weights at every dtype, activations (peak and where, sum) and a training estimate
        (Adam), as ``cnnstat memory``."""
        from cnnstat.analysis import Analysis
        from cnnstat.graph import Graph

        a, m = self.a, self.memory
        low = not a.complete
        rows = []
        weighted = Graph(a.name, a.graph.input, [la for la in a.layers if la.weights or la.biases])
        for dtype in DTYPE_BITS:  # the layers without weights add no bytes: summed once, not 7 times
            t = Analysis(weighted, dtype=dtype, batch=a.batch).totals()
            mark = " (this report)" if dtype == a.dtype else ""
            rows.append(
                f'<tr data-dtype="{dtype}"><td>{dtype}{mark}</td>'
                + num(t["weight_bytes"], self.bytes(t["weight_bytes"]), key="weight_bytes")
                + num(t["param_bytes"], self.bytes(t["param_bytes"]), key="param_bytes")
                + "</tr>"
            )
        weights = table(head("dtype", "#weights", "#weights + biases"), rows, "dtypes")
        t = m["training"]
        items = [
            (
                "peak activations (inference)",
                "peak_activation_bytes",
                m["peak_activation_bytes"],
                low,
                f"at {m['peak_at']}",
            ),
            (
                "sum of all activations",
                "activation_bytes_sum",
                m["activation_bytes_sum"],
                low,
                "for comparison: nothing freed, nothing in place",
            ),
            ("training: weights", "weights", t["weights"], False, ""),
            ("training: gradients", "gradients", t["gradients"], False, ""),
            (f"training: {t['optimizer']} state", "optimizer_state", t["optimizer_state"], False, ""),
            ("training: stored activations", "activations", t["activations"], low, "kept for backward"),
            ("training: total", "total", t["total"], low, ""),
        ]
        rows = [
            f"<tr><td>{esc(what)}</td>{num(v, self.bytes(v), lo, key=key)}{cell(note, 'name')}</tr>"
            for what, key, v, lo, note in items
        ]
        acts = table(head("", f"#bytes ({a.dtype}, batch {a.batch})", ""), rows, "memory")
        return (
            f"<{self.sub}>Weights by dtype</{self.sub}>"
            + weights
            + f"<{self.sub}>Activations and training</{self.sub}>"
            + acts
            + '<p class="note">Inference: tensors freed after their last reader; in-place ops (ReLU after '
            "conv, out += identity) and views (flatten) share storage. Training: weights + gradients + "
            f"Adam's two moments + every activation stored in the forward pass, all at {a.dtype}.</p>"
        )

    def rf_part(self) -> str:
        a = self.a
        last = a.receptive_field()
        if last is None:
            return "<p>No layer covers part of the input: no spatial receptive field.</p>"
        if last.rf is None:
            return (
                f'<p class="unknown-rf"><span class="unknown">Unknown</span> (at {esc(last.name)}): '
                f"{esc(last.rf_unknown or '')}, which cnnstat has no op for, so it cannot say which input "
                "pixels a unit sees.</p>"
            )
        rf = last.rf
        size = "the whole input" if rf.collapsed else f"{dims(rf.size)} pixels"
        return (
            f'<p class="rf" data-size="{esc(dims(rf.size))}" data-jump="{esc(dims(rf.jump))}">'
            f"<strong>{size}</strong>, jump (effective stride) {dims(rf.jump)}, start "
            f"{dims(rf.start)}, at <code>{esc(last.name)}</code>, the last layer before global "
            "pooling or flatten.</p>"
            '<p class="note">size: input pixels one unit sees (per axis, H x W); jump: input pixels '
            "between neighbouring units; start: centre of the first unit's field (pixel 0 = the first "
            "pixel). Each layer's field is in the per-layer table.</p>"
        )

    def throughput(self) -> str:
        """MACs to cover the frame at ``fps`` (tile mode: crops of the network's input size) and
        the roofline bound on each device, as ``cnnstat flops --device``."""
        from cnnstat.analysis import Analysis
        from cnnstat.hardware import bounds
        from cnnstat.throughput import throughput_row

        a, frame, fps = self.a, self.frame, self.fps
        if self.frame_graph is not None:
            graph = self.frame_graph
            need = throughput_row(Analysis(graph, dtype=a.dtype), frame, fps, 1, mode="frame")
            how = f"the network run once over the whole {dims(frame)} frame (frame mode)"
        elif self.tile is not None:
            graph = a.graph
            need = throughput_row(Analysis(graph, dtype=a.dtype), frame, fps, 1, tile=self.tile)
            tiles = f"{float(need['tiles']):.2f}"
            how = (
                f"{dims(frame)} frames covered by {tiles} tiles of {dims(self.tile)} "
                "(frame area / tile area, tiles that do not overlap)"
            )
        else:
            return '<p class="note">Throughput: the model has no [C, H, W] input to tile a frame with.</p>'
        low = not a.complete
        clip = need.get("clip_frames")
        if clip:
            how += f"; one clip of {clip} frames per {clip} frames"
        intro = (
            f"<p>{how}, {fps:g} frames a second, at {a.dtype}: "
            f"<strong>{'≥ ' if low else ''}{si(need['macs_per_second'])} MAC/s</strong> "
            f"({'≥ ' if low else ''}{si(need['macs_per_frame'])} MACs a frame), "
            f"{'≥ ' if low else ''}{self.bytes(need['activation_bytes_per_second'])}/s of activations "
            "read and written.</p>"
        )
        need_row = (
            "<tr>"
            + num(need["macs_per_frame"], si(need["macs_per_frame"]), low, key="macs_per_frame")
            + num(need["macs_per_second"], si(need["macs_per_second"]), low, key="macs_per_second")
            + num(
                need["activation_bytes_per_second"],
                self.bytes(need["activation_bytes_per_second"]) + "/s",
                low,
                key="activation_bytes_per_second",
            )
            + "</tr>"
        )
        needs = table(head("#MACs/frame", "#MAC/s", f"#act. {a.dtype}/s"), [need_row], "need")
        rows = []
        rated = [dev for dev in self.device_list() if a.dtype in dev.macs]
        found = dict(zip(map(id, rated), bounds(graph, rated, a.dtype, fps, need["passes_per_frame"])))
        for dev in self.device_list():
            prefix = f'<tr data-device="{esc(dev.name)}"><td>{esc(dev.name)}</td>'
            if a.dtype not in dev.macs:
                rows.append(
                    prefix + f'<td class="n">no {a.dtype} figure</td><td class="n">'
                    f"{human_bytes(dev.bandwidth)}/s</td><td></td><td></td>"
                    f"<td>{esc(dev.description)}</td></tr>"
                )
                continue
            b = found[id(dev)]
            verdict = b["verdict"]
            if low:  # the MACs are a lower bound: the fps only an upper one
                verdict = (
                    f"needs at least {fps / b['max_fps']:.1f}x the device"
                    if b["max_fps"] < fps
                    else f"unknown: at most {b['max_fps']:.1f} fps, MACs partly unknown"
                )
            ok = b["max_fps"] >= fps and not low
            badge = f'<span class="badge {"pass" if ok else "fail"}">{esc(verdict)}</span>'
            max_fps = f"{'≤ ' if low else ''}{b['max_fps']:.1f}"
            rows.append(
                prefix
                + f'<td class="n">{si(dev.peak(a.dtype))}</td>'
                + f'<td class="n">{human_bytes(dev.bandwidth)}/s</td>'
                + num(b["latency_s"] * 1e3, f"{b['latency_s'] * 1e3:.2f}", low, key="latency_ms")
                + f'<td class="n" data-k="max_fps" data-v="{b["max_fps"]!r}">{max_fps}</td>'
                + f"<td>{badge}</td></tr>"
            )
        devs = table(
            head("device", f"#peak MAC/s {a.dtype}", "#bandwidth", "#bound ms/frame", "#max fps", "verdict"),
            rows,
            "devices",
        )
        return (
            intro
            + needs
            + devs
            + '<p class="note">bound: roofline lower bound per frame, per layer max(MACs / peak, '
            "bytes moved / "
            "bandwidth), summed (no cache reuse between layers); a bound, not a measurement. Peak rates are "
            "dense, from datasheets (<code>cnnstat devices</code> gives the sources); 1 MAC = 2 datasheet "
            "ops.</p>"
        )

    def layers(self) -> str:
        """One row per layer, as ``cnnstat summary``: each cell the analysis's own figure."""
        a = self.a
        t = a.totals()
        header = head(
            "#",
            "layer",
            "op",
            "kind",
            "output",
            "#params",
            "#weights",
            "#biases",
            "#MACs",
            "#% MACs",
            "#activations",
            f"#act. {a.dtype}",
            "RF size",
            "RF jump",
        )
        rows = []
        low = not a.complete
        for i, layer in self.shown_layers(rows):
            c = a.counts(layer)
            if layer.unknown:
                macs = f'<td class="n unknown" data-k="macs" title="{esc(layer.unknown)}">?</td>'
                share = '<td class="n unknown">?</td>'
            else:
                macs = num(c["macs"], si(c["macs"]), key="macs")
                pct = f"{100 * c['macs'] / t['macs']:.1f}%" if t["macs"] else ""
                share = f'<td class="n">{"≤ " if low and pct else ""}{pct}</td>'
            rf = layer.rf
            if rf is None:
                size, jump = '<td class="unknown">?</td>', '<td class="unknown">?</td>'
            elif not rf.size:
                size = jump = "<td></td>"
            else:
                size = cell("whole input" if rf.collapsed else dims(rf.size))
                jump = cell(dims(rf.jump))
            rows.append(
                f'<tr class="layer"><td class="n">{i}</td>{cell(layer.name, "name")}{cell(layer.op)}'
                f"{cell(layer.kind)}{cell(dims(layer.output))}"
                + num(c["params"], si(c["params"]), key="params")
                + num(c["weights"], si(c["weights"]), key="weights")
                + num(c["biases"], si(c["biases"]), key="biases")
                + macs
                + share
                + num(c["activations"], si(c["activations"]), key="activations")
                + num(c["activation_bytes"], self.bytes(c["activation_bytes"]), key="activation_bytes")
                + size
                + jump
                + "</tr>"
            )
        notes = []
        if low:
            notes.append(f"?: MACs unknown (counted 0 in the totals) for {esc(a.incomplete_text())}.")
        if any(layer.rf is None for layer in a.layers):
            notes.append(f"RF ?: unknown {esc(a.rf_lost())} (cnnstat has no op for it).")
        notes.append(
            f"MACs and activations for a batch of {a.batch}; output shapes per sample (C x H x W). "
            "RF: input pixels one unit sees, and the jump between neighbouring units."
        )
        return table(header, rows, "layers") + "".join(f'<p class="note">{n}</p>' for n in notes)

    def shown_layers(self, rows: list):
        """``(number, layer)`` of the rows the layer table shows: every layer up to
        :data:`~cnnstat.render.MAX_ROWS`, past it the first :data:`HEAD_ROWS` and the last
        :data:`TAIL_ROWS`, with a row between (appended to ``rows`` when reached) saying how
        many are not shown and which commands list them all. A page of a million layers stays
        a page (and is written in seconds)."""
        from cnnstat.render import MAX_ROWS

        layers = self.a.layers
        n = len(layers)
        if n <= MAX_ROWS:
            yield from enumerate(layers, 1)
            return
        yield from enumerate(layers[:HEAD_ROWS], 1)
        hidden = n - HEAD_ROWS - TAIL_ROWS
        ref = esc(self.model_ref)
        rows.append(
            f'<tr class="more" data-hidden="{hidden}"><td colspan="14">... {hidden:,} more layers (rows '
            f"{HEAD_ROWS + 1:,} to {n - TAIL_ROWS:,}) not shown: <code>cnnstat summary {ref} --all</code> "
            f"lists every layer, <code>--format csv</code> or <code>--format json</code> as data.</td></tr>"
        )
        yield from enumerate(layers[n - TAIL_ROWS :], n - TAIL_ROWS + 1)

    @property
    def model_ref(self) -> str:
        """The model as a command names it (the CLI's argument; else the analysis' name)."""
        return self.model if self.model else self.a.name

    def plots(self) -> str:
        """The plots as inline SVG (``cnnstat.plot``), or a note when matplotlib is missing."""
        n = len(self.a.layers)
        if n > PLOT_MAX_LAYERS:
            ref = esc(self.model_ref)
            return (
                f'<p class="note plots-skipped">No plots: {n:,} layers, more than the {PLOT_MAX_LAYERS:,} '
                f"a page draws (a chart of so many would take minutes and megabytes). "
                f"<code>cnnstat plot layers {ref} -o layers.svg</code> draws one on its own.</p>"
            )
        figures = plots(plot_safe(self.a), self.roofline_device_objects(), self.prefix, self.plot_kinds)
        if isinstance(figures, str):
            return f'<p class="warn plots-missing">{esc(figures)}</p>'
        self.plot_count = len(figures)
        return "".join(
            f'<figure id="{self.id(key)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'
            for key, caption, svg in figures
        )

    def device_list(self) -> list:
        from cnnstat.hardware import devices

        return self.devices if self.devices is not None else list(devices().values())

    def roofline_device_objects(self) -> list:
        if self.roofline_devices is not None:
            return [dev for dev in self.roofline_devices if self.a.dtype in dev.macs]
        return [dev for dev in self.device_list() if self.a.dtype in dev.macs][:1]

    # the whole

    def parts(self) -> list:
        """(id, title, HTML) of each part, in page order."""
        out = [
            ("totals", "Totals", self.cards() + self.totals()),
            ("memory", "Memory", self.memory_part()),
            ("rf", "Receptive field", self.rf_part()),
            ("throughput", f"Throughput at {dims(self.frame)}, {self.fps:g} fps", self.throughput()),
        ]
        if self.with_plots:
            out.append(("plots", "Plots", self.plots()))
        out.append(("layers", f"Layers ({len(self.a.layers)})", self.layers()))
        return out

    def html(self, level: int = 2, fold_layers: bool = False) -> str:
        """The model's parts under ``<h{level}>`` headings (the layer table inside a
        ``<details>`` when ``fold_layers``)."""
        self.sub = f"h{level + 1}"
        out = [self.warning()]
        for key, title, body in self.parts():
            if key == "layers" and fold_layers:
                body = f"<details><summary>{title}</summary>{body}</details>"
                out.append(f'<div id="{self.id(key)}" class="part">{body}</div>')
                continue
            out.append(
                f'<section id="{self.id(key)}" class="part"><h{level}>{title}</h{level}>{body}</section>'
            )
        out.append(conventions(self.binary))
        return "".join(out)

    def subtitle(self) -> str:
        a = self.a
        return f"input {dims(a.graph.input)}, batch {a.batch}, {a.dtype}"


def model_page(section: Section) -> str:
    """``cnnstat report``: the page of one model."""
    a = section.a
    body = section.html()
    nav = "".join(
        f'<a href="#{section.id(k)}">{t}</a>'
        for k, t in (
            ("totals", "Totals"),
            ("memory", "Memory"),
            ("rf", "Receptive field"),
            ("throughput", "Throughput"),
            ("plots", "Plots"),
            ("layers", "Layers"),
        )
        if k != "plots" or section.with_plots
    )
    described = f'<p class="description">{esc(a.graph.description)}</p>' if a.graph.description else ""
    source = f'<p class="note">Source: {esc(a.graph.source)}</p>' if a.graph.source else ""
    top = (
        f'<header><h1 class="model">{esc(a.name)}</h1><p class="sub">cnnstat report: '
        f"{esc(section.subtitle())}</p>{described}{source}<nav>{nav}</nav></header>"
    )
    return page(f"cnnstat report: {esc(a.name)}", top + body)


# --- the plots -----------------------------------------------------------------------------------


def plots(a, roofline_devices: list, prefix: str = "", kinds: tuple = PLOT_KINDS) -> list | str:
    """[(key, caption, inline svg)] of the model's plots (``kinds`` of :data:`PLOT_KINDS`), or
    the reason there are none (the ``cnnstat[plot]`` extra, matplotlib, is not installed)."""
    try:
        import matplotlib  # noqa: F401

        from cnnstat import plot
    except ImportError:
        return PLOTS_MISSING
    draw = {
        "macs": lambda: [
            (
                "plot-macs",
                "MACs per layer, by kind (cnnstat plot layers --metric macs).",
                plot.layers_figure(a),
            )
        ],
        "params": lambda: [
            (
                "plot-params",
                "Parameters (weights + biases) per layer, by kind (cnnstat plot layers --metric params).",
                plot.layers_figure(a, metric="params"),
            )
        ],
        "rf": lambda: [
            ("plot-rf", "Receptive-field size and jump by depth (cnnstat plot rf).", plot.rf_figure(a))
        ],
        "roofline": lambda: [
            (
                f"plot-roofline-{i + 1}",
                f"Every layer on the roofline of {dev.name} at {a.dtype}: arithmetic intensity (MACs per "
                "byte moved) against the attainable rate (cnnstat plot roofline).",
                plot.roofline_figure(a, dev),
            )
            for i, dev in enumerate(roofline_devices)
        ],
    }
    if a.receptive_field() is None:  # no layer covers part of the input: no field to draw
        kinds = tuple(k for k in kinds if k != "rf")
    figures = [figure for kind in kinds for figure in draw[kind]()]
    out = []
    for i, (key, caption, fig) in enumerate(figures):
        out.append((key, caption, inline_svg(plot.to_svg(fig), f"{prefix}s{i}-")))
    return out


PLOT_NAME = 60  # characters of a name a plot labels


def plot_safe(a):
    """``a``, or a copy whose model and layer names are fit for a plot's labels: control and
    bidi characters as escapes, cut to :data:`PLOT_NAME` characters (and numbered apart when
    cutting makes two alike). matplotlib would otherwise draw a name of a megabyte whole (a
    page of hundreds of megabytes) and warn on stderr of glyphs its font lacks."""
    from cnnstat.analysis import Analysis
    from cnnstat.graph import Graph, Layer
    from cnnstat.render import visible

    def fit(name: str) -> str:
        return visible(name, PLOT_NAME)

    if all(fit(la.name) == la.name for la in a.layers) and fit(a.name) == a.name:
        return a
    names, used = {"input": "input"}, set()
    for la in a.layers:
        short = fit(la.name)
        new, i = short, 1
        while new in used or new == "input":
            i += 1
            new = f"{short}~{i}"
        used.add(new)
        names[la.name] = new
    slots = [s for s in Layer.__slots__ if s not in ("name", "inputs")]
    layers = []
    for la in a.layers:
        copy = Layer.__new__(Layer)
        for slot in slots:
            setattr(copy, slot, getattr(la, slot))
        copy.name, copy.inputs = names[la.name], tuple(names.get(i, fit(i)) for i in la.inputs)
        layers.append(copy)
    g = a.graph
    graph = Graph(fit(g.name), g.input, layers, fit(g.description), fit(g.source), g.nominal, g.file)
    return Analysis(graph, dtype=a.dtype, batch=a.batch)


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^")]+)')


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG document as an element inside HTML: the XML declaration, DOCTYPE and metadata
    dropped, and the namespace declarations (their URLs would be the page's only addresses;
    HTML puts ``<svg>`` in the SVG namespace itself); every id prefixed so that two plots' ids
    (``figure_1``, clip paths) never clash in one page, and an id repeated inside one SVG (a
    ``gid`` on every bar) numbered apart (references keep to the first, as browsers resolve
    them)."""
    svg = re.sub(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    seen = {}

    def rename(m):
        old = m.group(1)
        seen[old] = seen.get(old, 0) + 1
        return f'id="{prefix}{old}"' if seen[old] == 1 else f'id="{prefix}{old}-{seen[old]}"'

    svg = _ID.sub(rename, svg)
    svg = _REF.sub(lambda m: m.group(1) + (prefix if m.group(2) in seen else "") + m.group(2), svg)
    return svg.strip()


# --- the budgets' page ---------------------------------------------------------------------------


def check_page(doc: dict, summary: str, rows: list, sections: list) -> str:
    """``cnnstat check --report``: every budget's checks, then each model's section.

    ``rows``: the check table's rows (``cnnstat.cli.check.table_rows``: texts ``model``,
    ``metric``, ``limit``, ``value``, ``margin``, ``status``, ``message``, and the budget's
    ``name``); ``sections``: ``(budget entry, Section)`` in the budget file's order."""
    passed = doc["passed"]
    verdict = f'<span class="badge {"pass" if passed else "fail"}">{"PASS" if passed else "FAIL"}</span>'
    anchors = {id(e): f"b{i + 1}" for i, (e, _) in enumerate(sections)}
    by_name = {e["name"]: anchors[id(e)] for e, _ in sections}
    overview = []
    for e, _ in sections:
        checks = e["checks"] + e.get("baseline", [])
        failed = sum(not c["ok"] for c in checks)
        status = "fail" if failed else "pass"
        overview.append(
            f'<tr class="budget" data-status="{status}">'
            f'<td><a href="#{anchors[id(e)]}">{esc(e["name"])}</a></td>'
            f"{cell(e['model'], 'name')}{cell(_settings_text(e['settings']))}"
            f'<td class="n">{len(checks) - failed}</td><td class="n">{failed}</td>'
            f'<td><span class="badge {status}">{status.upper()}</span></td></tr>'
        )
    budgets = table(head("budget", "model", "settings", "#passed", "#failed", ""), overview, "budgets")
    check_rows = []
    for r in rows:
        link = by_name.get(r["name"])
        name = f'<a href="#{link}">{esc(r["model"])}</a>' if link else esc(r["model"])
        check_rows.append(
            f'<tr class="check" data-status="{r["status"].lower()}"><td class="name">{name}</td>'
            f'{cell(r["metric"])}<td class="n">{esc(r["limit"])}</td><td class="n">{esc(r["value"])}</td>'
            f'<td class="n">{esc(r["margin"])}</td>'
            f'<td><span class="badge {_badge(r["status"])}">{esc(r["status"])}</span></td>'
            f"{cell(r['message'], 'name')}</tr>"
        )
    checks = table(
        head("budget", "limit", "#limit value", "#value", "#margin", "", "what"), check_rows, "checks"
    )
    models = []
    for e, section in sections:
        a = section.a
        models.append(
            f'<section class="model" id="{anchors[id(e)]}"><h2>{esc(e["name"])}</h2>'
            f'<p class="sub">model {esc(e["model"])}, input {dims(a.graph.input)}; '
            f"{esc(_settings_text(e['settings']))}</p>"
            + (f'<p class="description">{esc(a.graph.description)}</p>' if a.graph.description else "")
            + section.html(level=3, fold_layers=True)
            + "</section>"
        )
    top = (
        f'<header><h1>Model budgets {verdict}</h1><p class="sub">cnnstat check: {esc(doc["file"])}</p>'
        f'<p class="summary">{esc(summary)}</p></header>'
    )
    return page(
        f"cnnstat check: {'pass' if passed else 'FAIL'} ({esc(doc['file'])})",
        top + "<h2>Budgets</h2>" + budgets + "<h2>Checks</h2>" + checks + "".join(models),
    )


def _badge(status: str) -> str:
    return {"pass": "pass", "FAIL": "fail", "new": "new", "shrank": "shrank"}.get(status, "fail")


def _settings_text(s: dict) -> str:
    """'1920x1080 at 30 fps, int8, batch 1, tile mode' (and the input when set)."""
    parts = []
    if s.get("input"):
        parts.append("input " + dims(s["input"]))
    parts.append(f"{dims(s['resolution'])} at {s['fps']:g} fps")
    parts.append(f"{s['dtype']}, batch {s['batch']}, {s['mode']} mode")
    return ", ".join(parts)
