"""A layer's arithmetic step by step, and the network as a teaching sheet (``cnnstat explain``).

The steps come from the ops themselves (:meth:`cnnstat.ops.base.Op.explain`): each layer's op
runs its own handler again on the layer's inputs, checks that it gives the analysis' figures,
and shows its formula with those numbers substituted. Nothing here computes a figure of its
own but the sums that reconcile the totals and the activation memory (elements x bytes, as
:mod:`cnnstat.analysis` counts it). Where a spec comments a layer, its input or a parameter
the layer uses, the comment is quoted; where another model of the same spec file has the same
layers (the lecture's AlexNet beside the paper's), the layers that differ are shown beside.

Pure: no rich, no click. :func:`layer_text` and :func:`sheet` return text.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

from cnnstat.errors import CnnstatError
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import RF, Cost, Op
from cnnstat.ops.steps import Step, dot, generic, note, num
from cnnstat.units import DTYPE_BITS, human_bytes

SECTIONS = {
    "input": "Shape",
    "out_size": "Shape",
    "channels": "Shape",
    "output": "Shape",
    "weights": "Parameters",
    "biases": "Parameters",
    "buffers": "Parameters",
    "params": "Parameters",
    "weight_bytes": "Parameters",
    "macs": "MACs",
    "rf_size": "Receptive field",
    "rf_jump": "Receptive field",
    "rf_start": "Receptive field",
    "activations": "Memory",
    "activation_bytes": "Memory",
}
ORDER = ("Shape", "Parameters", "MACs", "Receptive field", "Memory")
RF_NOTE = (
    "receptive field per axis in input pixels: r = pixels one unit sees, j = jump (input pixels "
    "between neighbouring units), start = centre of the first unit's field (pixel 0 = first pixel)"
)


class Explained(NamedTuple):
    """One layer explained: its steps (see :class:`~cnnstat.ops.steps.Step`), the spec's own
    comments on it, and the models of the same spec where it differs."""

    layer: object  # cnnstat.graph.Layer
    inputs: list  # [(name, shape)]
    steps: list
    comments: list  # [(where, text)]
    beside: list  # [{"model", "description", "differs": {figure: (here, there)}}]


# --- finding a layer ---------------------------------------------------------------------


def find_layer(analysis, name: str):
    """The layer named ``name`` (as ``cnnstat summary`` shows it; case-insensitive when that
    is unambiguous); an unknown name raises with the closest names (a few, cut short)."""
    layers = {la.name: la for la in analysis.layers}
    if name in layers:
        return layers[name]
    folded = [la for la in analysis.layers if la.name.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    hint = _suggest(name, list(layers)) or _prefix_hint(name, layers)
    model = _quoted(analysis.name)
    raise CnnstatError(
        f"no layer '{_quoted(name)}' in {model}{hint}; 'cnnstat summary {model}' lists the layers"
    )


def _quoted(text: str) -> str:
    """A name in a one-line message: cut to 60 characters, control characters as escapes."""
    from cnnstat.render import visible

    return visible(cut(text, 60))


SUGGEST_WINDOW = 2_000  # past this many layers, only the names nearest in sorted order are compared


def _suggest(name: str, names: list) -> str:
    """`` (did you mean 'x' or 'y'?)`` from the names closest to ``name`` (difflib), each cut
    short; '' when none is close. Bounded work whatever the network and the name: a name over
    :data:`~cnnstat.render.MAX_SHOWN` characters is compared with nothing, and a network of
    many layers only by the names that sort next to it (names alike share their start:
    ``relu_99999`` sits beside ``relu99999``)."""
    import bisect
    import difflib

    from cnnstat.render import MAX_SHOWN

    if len(name) > MAX_SHOWN:
        return ""
    if len(names) > SUGGEST_WINDOW:
        names = sorted(names)
        at = bisect.bisect_left(names, name)
        names = names[max(0, at - SUGGEST_WINDOW // 2) : at + SUGGEST_WINDOW // 2]
    close = difflib.get_close_matches(name, sorted(set(names)), n=3, cutoff=0.6)
    return " (did you mean " + " or ".join(f"'{_quoted(c)}'" for c in close) + "?)" if close else ""


def _prefix_hint(name: str, names) -> str:
    """Layers whose names start with ``name`` (a block: ``layer1`` -> ``layer1.0.conv1``)."""
    under = []
    for n in names:
        if n.startswith(name):
            under.append(n)
            if len(under) > 3:
                break
    if not under:
        return ""
    shown = ", ".join(f"'{_quoted(n)}'" for n in under[:3]) + (", ..." if len(under) > 3 else "")
    return f" (layers under it: {shown})"


def cut(text, limit: int | None = None) -> str:
    """A user string (a layer's or a model's name, a comment) at most ``limit`` characters
    (:data:`~cnnstat.render.MAX_SHOWN` by default), an ellipsis where it was cut. Control
    characters stay: each form escapes them for where it goes (Markdown, a terminal)."""
    from cnnstat.render import MAX_SHOWN

    text, limit = str(text), limit or MAX_SHOWN
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- the steps of one layer ----------------------------------------------------------------


def tensors(analysis) -> dict:
    """Every tensor's (shape, receptive field) by name: the input and each layer's output."""
    graph = analysis.graph
    shape = tuple(graph.input)
    out = {"input": (shape, RF.input(shape[1:] if len(shape) > 1 else ()))}
    for la in analysis.layers:
        out[la.name] = (tuple(la.output), la.rf)
    return out


def op_steps(layer, inputs: list) -> list:
    """The op's own steps for ``layer``. Its handler runs again on the layer's inputs; the
    steps use the handler's figures when they equal the layer's (always, for a spec), else the
    layer's figures with the generic explanation (an imported layer)."""
    shapes = [s for s, _ in inputs]
    rfs = [r for _, r in inputs]
    op = REGISTRY.get(layer.op)
    figures = _rerun(op, layer, shapes, rfs)
    if figures is not None:
        return op.explain(layer.args, shapes, rfs, *figures)
    cost = Cost(layer.weights, layer.biases, layer.buffers, layer.macs)
    steps = generic(op if op is not None else Op(), layer.args, shapes, rfs, layer.output, cost, layer.rf)
    if layer.unknown:
        steps = [st._replace(formula="unknown", value=0) if st.what == "macs" else st for st in steps]
        steps.append(note(f"MACs unknown: {layer.unknown} (0 in the totals, which are lower bounds)"))
    return [note("figures as the importer recorded them")] + steps


def _rerun(op, layer, shapes, rfs):
    """``(out, cost, rf)`` from the op's handler, or None when it cannot run or disagrees."""
    if op is None or op.internal or layer.unknown or any(r is None for r in rfs):
        return None
    try:
        out, cost, rf = op.infer(layer.args, shapes, rfs)
    except Exception:  # noqa: BLE001 - an importer's arguments the spec path never makes
        return None
    same_cost = tuple(cost) == (layer.weights, layer.biases, layer.buffers, layer.macs)
    if tuple(out) != tuple(layer.output) or not same_cost or rf != layer.rf:
        return None
    return out, cost, rf


def layer_steps(analysis, layer, inputs: list) -> list:
    """All the steps of ``layer``: its input, the op's steps with ``params = weights + biases``
    after the parameters, and the memory its output takes at the analysis' dtype."""
    steps = [Step("input", "input", "", "", tuple(s)) for s, _ in inputs[:1]]
    for (s, _), name in list(zip(inputs, layer.inputs))[1:]:
        steps.append(note(f"also reads '{cut(name)}': {'x'.join(map(str, s))}"))
    body = op_steps(layer, inputs)
    last = max((i for i, st in enumerate(body) if st.what in ("weights", "biases")), default=len(body) - 1)
    extra = []
    if layer.weights and layer.biases:
        sums = f"{layer.weights} + {layer.biases}"
        extra.append(Step("params", "params", "weights + biases", sums, layer.params))
    if layer.weights:
        formula, subst = _bytes_formula("weights", layer.weights, analysis.dtype)
        label = f"weight bytes ({analysis.dtype})"
        extra.append(Step("weight_bytes", label, formula, subst, analysis.counts(layer)["weight_bytes"]))
    body[last + 1 : last + 1] = extra
    return steps + body + memory_steps(analysis, layer)


def _bytes_formula(what: str, n: int, dtype: str) -> tuple:
    """``("weights·4", "34848·4")``; int4: ``⌈weights·4/8⌉`` (two values a byte, rounded up)."""
    bits = DTYPE_BITS[dtype]
    if bits % 8 == 0:
        return f"{what}·{bits // 8}", f"{n}·{bits // 8}"
    return f"⌈{what}·{bits}/8⌉", f"⌈{n}·{bits}/8⌉"


def memory_steps(analysis, layer) -> list:
    """The output's elements and bytes at the dtype (MB = 10^6 bytes), as the analysis counts
    them (``activations``, ``activation_bytes``)."""
    counts = analysis.counts(layer)
    out, batch, dtype = tuple(layer.output), analysis.batch, analysis.dtype
    dims = "·".join(_dims(len(out)))
    if batch > 1:
        dims, subst = f"N·{dims}", dot((batch, *out))
    else:
        subst = dot(out)
    n = counts["activations"]
    per = _bytes_formula("elements", n, dtype)
    steps = [
        Step("activations", "elements", dims, subst, n),
        Step("activation_bytes", f"bytes ({dtype})", *per, counts["activation_bytes"]),
    ]
    op = REGISTRY.get(layer.op)
    if op is not None and op.view:
        steps.append(note("a view: in inference it shares its input's storage (the peak counts it once)"))
    elif op is not None and op.inplace:
        steps.append(
            note("may write over its input in inference (in place) when it is the input's last reader")
        )
    return steps


def _dims(rank: int) -> tuple:
    return {1: ("D",), 2: ("C", "L"), 3: ("C", "H", "W"), 4: ("C", "D", "H", "W")}.get(
        rank, tuple(f"d{i}" for i in range(rank))
    )


# --- what the spec says: comments and sibling models ------------------------------------------


class Context:
    """What a spec file adds to the arithmetic: its comments (on a layer's line, above it, on
    the parameters a layer uses, on ``input:``) and its other models with the same layers."""

    def __init__(self, spec=None, siblings=()):
        self.spec = spec
        self.siblings = list(siblings)  # [(name, description, Analysis)]
        self._files = {}

    def comments(self, layer) -> list:
        """``[(where, text)]`` for ``layer`` (``where``: ``zoo:alexnet.yaml, input:``): its own
        line's comments, those of the parameters its line uses (``$conv3_groups``), and the
        input's when it reads the input."""
        out = []
        if layer.loc is not None:
            lines = self._lines(layer.loc.file)
            out += self._at(layer.loc.file, lines, layer.loc.line, "the layer")
            if self.spec is not None and self.spec.doc is not None and 0 < layer.loc.line <= len(lines):
                params = self.spec.doc.get("params")
                for name in re.findall(r"\$\{?([A-Za-z_]\w*)", lines[layer.loc.line - 1]):
                    loc = getattr(params, "key_locs", {}).get(name) if isinstance(params, dict) else None
                    if loc is not None:
                        out += self._at(loc.file, self._lines(loc.file), loc.line, f"params: {name}", False)
        if "input" in layer.inputs:
            out += self.input_comments()
        seen, unique = set(), []
        for item in out:
            if item[1] not in seen:
                seen.add(item[1])
                unique.append(item)
        return unique

    def input_comments(self) -> list:
        doc = self.spec.doc if self.spec is not None else None
        loc = doc.key_locs.get("input") if doc is not None else None
        return self._at(loc.file, self._lines(loc.file), loc.line, "input:") if loc is not None else []

    def head_comments(self) -> list:
        """The comment lines that open the spec file (what it is)."""
        if self.spec is None:
            return []
        lines, texts = self._lines(self.spec.file), []
        for line in lines:
            if not line.startswith("#"):
                break
            texts.append(line.lstrip("#").strip())
        text = " ".join(t for t in texts if t)
        return [(f"{self.spec.file}, header", text)] if text else []

    def _lines(self, file: str) -> list:
        if file not in self._files:
            self._files[file] = _read_lines(file)
        return self._files[file]

    @staticmethod
    def _at(file, lines, line, on, above=True) -> list:
        """The comment on line ``line`` (1-based) and the comment lines just above it, as
        ``(where, text)``: where names the file and what the line is (``input:``), not its
        number, which moves when the file is edited."""
        if not 0 < line <= len(lines):
            return []
        texts, i = [], line - 2
        while above and i >= 0 and lines[i].lstrip().startswith("#"):
            texts.insert(0, lines[i].strip().lstrip("#").strip())
            i -= 1
        trailing = _trailing_comment(lines[line - 1])
        if trailing:
            texts.append(trailing)
        text = " ".join(t for t in texts if t)
        return [(f"{file}, {on}", text)] if text else []

    def beside(self, layer) -> list:
        """The sibling models' figures for the layer of the same name where they differ:
        ``[{"model", "description", "differs": {figure: (here, there)}}]``."""
        out = []
        if not hasattr(self, "_twins"):
            self._twins = [{la.name: la for la in other.layers} for _, _, other in self.siblings]
        for (name, description, _), twins in zip(self.siblings, self._twins):
            twin = twins.get(layer.name)
            if twin is None:
                continue
            differs = {
                key: (layer.args.get(key), twin.args.get(key))
                for key in sorted(set(layer.args) | set(twin.args))
                if key != "branches" and layer.args.get(key) != twin.args.get(key)
            }
            for key, here, there in (
                ("output", list(layer.output), list(twin.output)),
                ("weights", layer.weights, twin.weights),
                ("biases", layer.biases, twin.biases),
                ("MACs", layer.macs, twin.macs),
            ):
                if here != there:
                    differs[key] = (here, there)
            if differs:
                out.append({"model": name, "description": description, "differs": differs})
        return out


def _trailing_comment(line: str) -> str:
    """The comment after a value on a YAML line (``# ...`` after a space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and i > 0 and line[i - 1] in " \t" and line[:i].strip():
            return line[i + 1 :].strip()
    return ""


def _read_lines(file: str) -> list:
    """The lines of the spec file a location names (``zoo:alexnet.yaml`` in the zoo); [] when
    it cannot be read (the comments are a courtesy, never an error)."""
    import os

    from cnnstat.files import read_text
    from cnnstat.zoo import zoo_dir

    path = os.path.join(zoo_dir(), file[4:]) if file.startswith("zoo:") else file
    try:
        return read_text(path, "spec").splitlines()
    except CnnstatError:
        return []


SIBLING_MAX_LAYERS = 2_000  # a network larger than this is not compared with its spec's other models


def context(spec, input_shape=None, dtype: str = "fp32", batch: int = 1, size: int = 0) -> Context:
    """The context of a spec model: its comments, and the other models of its file whose
    layers have the same names in the same order (a variant that changes parameters, not the
    architecture), analysed at the same input (``input_shape``, else each its own). A network
    of ``size`` layers past :data:`SIBLING_MAX_LAYERS` gets its comments only: comparing it
    would build and analyse every other model of the file as large."""
    if spec is None:
        return Context()
    if size > SIBLING_MAX_LAYERS:
        return Context(spec)
    return Context(spec, _siblings(spec, input_shape, dtype, batch))


SIBLINGS_TRIED = 32  # the other models of a spec file compared, at most


def _siblings(spec, input_shape, dtype, batch) -> list:
    """The spec file's other models with the same layer names (see :func:`context`). Bounded
    work: at most :data:`SIBLINGS_TRIED` of them, each built only as far as this model's
    number of layers (a variant that repeats a block a million times stops there: it cannot
    have the same layers)."""
    from cnnstat.analysis import Analysis
    from cnnstat.spec import build as builder

    root = _root(spec)
    if root is None or len(root.models) < 2:
        return []
    mine = [la.name for la in builder.build(spec, input_shape).layers]
    out, limit = [], builder.MAX_LAYERS
    builder.MAX_LAYERS = min(limit, len(mine) + 1)
    try:
        for name in [m for m in root.models if m != spec.name][:SIBLINGS_TRIED]:
            try:
                other = root.variant(name)
                graph = builder.build(other, input_shape)
            except CnnstatError:
                continue
            if [la.name for la in graph.layers] == mine:
                out.append((name, other.description, Analysis(graph, dtype, batch)))
    finally:
        builder.MAX_LAYERS = limit
    return out


def _root(spec):
    """The spec file's own model with its variants (a zoo variant comes without them)."""
    from cnnstat.spec.model import load_spec_file
    from cnnstat.zoo import load_file

    try:
        if spec.file.startswith("zoo:"):
            return load_file(spec.file[4:-5])
        return load_spec_file(spec.file)
    except (CnnstatError, OSError):
        return None


# --- explaining ----------------------------------------------------------------------------


def explain_layer(analysis, layer, ctx: Context | None = None, known: dict | None = None) -> Explained:
    """``layer`` (a Layer or its name) explained step by step (``known``: :func:`tensors`, else
    only the tensors the layer reads are looked up)."""
    if isinstance(layer, str):
        layer = find_layer(analysis, layer)
    known = known if known is not None else _read_by(analysis, layer)
    inputs = [known[name] for name in layer.inputs]
    ctx = ctx or Context()
    steps = layer_steps(analysis, layer, inputs)
    shapes = [(name, s) for name, (s, _) in zip(layer.inputs, inputs)]
    return Explained(layer, shapes, steps, ctx.comments(layer), ctx.beside(layer))


def _read_by(analysis, *layers) -> dict:
    """The (shape, receptive field) of the tensors ``layers`` read, by name."""
    wanted = {name for layer in layers for name in layer.inputs}
    graph = analysis.graph
    shape = tuple(graph.input)
    out = {"input": (shape, RF.input(shape[1:] if len(shape) > 1 else ()))} if "input" in wanted else {}
    for la in analysis.layers:
        if la.name in wanted:
            out[la.name] = (tuple(la.output), la.rf)
    return out


def explain_all(analysis, ctx: Context | None = None) -> list:
    known = tensors(analysis)
    return [explain_layer(analysis, la, ctx, known) for la in analysis.layers]


HEAD_LAYERS, TAIL_LAYERS = 200, 50  # a network past MAX_ROWS layers: these first and last sections


class Hidden(NamedTuple):
    """The layers an abridged sheet leaves out: ``count`` of them, rows ``first`` to ``last``
    (1-based, as ``cnnstat summary`` numbers them)."""

    count: int
    first: int
    last: int


def explain_shown(analysis, ctx: Context | None = None, show_all: bool = False):
    """The sections of the whole network, one at a time: every layer explained up to
    :data:`~cnnstat.render.MAX_ROWS` layers (or with ``show_all``), past it the first
    :data:`HEAD_LAYERS` and the last :data:`TAIL_LAYERS` with a :class:`Hidden` between, as
    the terminal tables abridge their rows. One at a time, so that ``--all`` over a million
    layers keeps one layer's steps in memory, not a million."""
    from cnnstat.render import MAX_ROWS

    layers = analysis.layers
    n = len(layers)
    if show_all or n <= MAX_ROWS:
        known = tensors(analysis)
        for la in layers:
            yield explain_layer(analysis, la, ctx, known)
        return
    known = _read_by(analysis, *layers[:HEAD_LAYERS], *layers[n - TAIL_LAYERS :])  # not a million tensors
    for la in layers[:HEAD_LAYERS]:
        yield explain_layer(analysis, la, ctx, known)
    yield Hidden(n - HEAD_LAYERS - TAIL_LAYERS, HEAD_LAYERS + 1, n - TAIL_LAYERS)
    for la in layers[n - TAIL_LAYERS :]:
        yield explain_layer(analysis, la, ctx, known)


RECONCILED = ("weights", "biases", "weight_bytes", "macs", "activations", "activation_bytes")


class Sums:
    """The sums :func:`reconcile` sets against the analysis, added one section at a time: by
    kind, the steps' values (what the sections show) and the analysis' own figures for the
    same layers."""

    def __init__(self):
        self.rows = {k: dict.fromkeys(RECONCILED, 0) for k in ("conv", "fc", "other")}
        self.mine = dict.fromkeys(RECONCILED, 0)  # cnnstat's figures for the layers added
        self.layers = 0

    def add(self, analysis, ex: Explained) -> None:
        values = {st.what: st.value for st in ex.steps if st.what in RECONCILED}
        row = self.rows[ex.layer.kind]
        for key in RECONCILED:
            row[key] += values.get(key, 0) or 0
        counts = analysis.counts(ex.layer)
        for key in RECONCILED:
            self.mine[key] += counts[key]
        self.layers += 1

    def result(self, analysis) -> dict:
        """``{"rows", "total", "analysis", "agree", "network", "layers"}``: ``analysis`` is
        cnnstat's figures for the layers summed (its totals when every layer was), ``network``
        its totals for the whole network."""
        rows = self.rows
        total = {k: sum(r[k] for r in rows.values()) for k in RECONCILED}
        network = analysis.totals()
        whole = self.layers == len(analysis.layers)
        want = {k: network[k] for k in RECONCILED} if whole else dict(self.mine)
        # the steps count MACs per image; the analysis for the whole batch
        agree = all(total[k] * (analysis.batch if k == "macs" else 1) == want[k] for k in RECONCILED)
        if whole:
            by_kind = analysis.by_kind()
            agree = agree and all(rows[kind]["weights"] == by_kind[kind]["weights"] for kind in rows)
        return {
            "rows": rows,
            "total": total,
            "analysis": want,
            "agree": agree,
            "network": {k: network[k] for k in RECONCILED},
            "layers": self.layers,
        }


def reconcile(analysis, explained) -> dict:
    """Per kind (conv/fc/other), the sums of the weights, biases, MACs and activations the
    sections show, beside the analysis' own totals: ``{"rows": {...}, "agree": bool}`` (see
    :meth:`Sums.result`; ``explained`` may leave layers out: then the analysis' figures are
    for the same layers)."""
    sums = Sums()
    for ex in explained:
        if isinstance(ex, Explained):
            sums.add(analysis, ex)
    return sums.result(analysis)


# --- text ----------------------------------------------------------------------------------


def value_text(step: Step, binary: bool = False) -> str:
    v = step.value
    if step.what in ("output", "input"):
        return "x".join(map(str, v))
    if step.what in ("activation_bytes", "weight_bytes"):
        return f"{v:,} B = {human_bytes(v, binary)}"
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, Fraction):
        return str(v)
    if isinstance(v, float):
        return num(v).strip("()")
    return str(v)


def step_line(step: Step, binary: bool = False) -> str:
    """``H_out = W_out = ⌊(W - K + 2P) / S⌋ + 1 = (227 - 11 + 0) / 4 + 1 = 55``: the label,
    the formula, the numbers and the value, each once."""
    if step.what == "note":
        return step.label
    parts = [step.label]
    value = value_text(step, binary)
    for part in (step.formula, step.substituted, value):
        if part and part != parts[-1] and part.replace(",", "") != parts[-1]:
            parts.append(part)
    return " = ".join(parts)


def sections(steps: list) -> list:
    """``[(section, [steps])]`` in :data:`ORDER`; a note goes with the step before it."""
    grouped = {name: [] for name in ORDER}
    current = "Shape"
    for st in steps:
        current = SECTIONS.get(st.what, current)
        grouped[current].append(st)
    return [(name, grouped[name]) for name in ORDER if grouped[name]]


def _differs_text(differs: dict) -> str:
    """``groups 2 (here 1); weights 442,368 (here 884,736)``: the other model's value first."""

    def show(v):
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    return "; ".join(f"{key} {show(there)} (here {show(here)})" for key, (here, there) in differs.items())


def layer_text(analysis, ex: Explained, binary: bool = False) -> str:
    """One layer's arithmetic as plain text lines (the terminal's form)."""
    la = ex.layer
    kind = "" if la.kind == la.op else f", kind {la.kind}"  # the kind its parameters count as
    lines = [f"{cut(analysis.name)}: {cut(la.name)} ({la.op}{kind})"]
    for where, text in ex.comments:
        lines.append(f"  spec ({cut(where)}): {cut(text, 2000)}")
    for name, section in sections(ex.steps):
        lines.append(name)
        for st in section:
            prefix = "    note: " if st.what == "note" else "  "
            lines.append(prefix + step_line(st, binary))
        if name == "Receptive field":
            lines.append("    note: " + RF_NOTE)
    for b in ex.beside:
        lines.append(f"Beside: {cut(b['model'])} ({cut(b['description'])}): {_differs_text(b['differs'])}")
    lines.append(_conventions(binary))
    return "\n".join(lines)


def _conventions(binary: bool) -> str:
    mb = "MiB = 2^20 bytes" if binary else "MB = 10^6 bytes"
    return f"1 MAC = one multiply-accumulate (bias adds are not MACs); {mb}."


# --- Markdown ------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def md(text: str) -> str:
    """Plain text safe in Markdown prose (no emphasis, links or HTML from a name)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def code(text: str) -> str:
    """Text as a Markdown code span (a backtick inside widens the fence)."""
    text = " ".join(str(text).split())
    fence = "``" if "`" in text else "`"
    return f"{fence}{' ' if fence == '``' else ''}{text}{' ' if fence == '``' else ''}{fence}"


def layer_markdown(analysis, ex: Explained, binary: bool = False, level: int = 2, skip=()) -> str:
    """One layer as a Markdown section: a heading, what it reads, the spec's comments (but
    those in ``skip``, said already), its steps as code spans (grouped under bold section
    names when the layer has parameters or MACs; a plain list for the rest), and the sibling
    models beside."""
    la = ex.layer
    out = [f"{'#' * level} {md(cut(la.name))} ({md(la.op)})", ""]
    sources = ", ".join(f"{code(cut(n))} {'x'.join(map(str, s))}" for n, s in ex.inputs)
    out += [f"Reads {sources}." if sources else "Reads nothing.", ""]
    for where, text in ex.comments:
        if text not in skip:
            out += [f"> Spec ({md(cut(where))}): {md(cut(text, 2000))}", ""]
    steps = [st for st in ex.steps if st.what != "input"]
    grouped = la.params or la.macs or la.unknown
    for name, section in sections(steps) if grouped else [(None, steps)]:
        items = [
            f"- *{md(st.label)}*" if st.what == "note" else f"- {code(step_line(st, binary))}"
            for st in section
        ]
        out += ([f"**{name}**", ""] if name else []) + items + [""]
    for b in ex.beside:
        out += [
            f"Beside, in {code(cut(b['model']))} ({md(cut(b['description']))}): "
            f"{md(_differs_text(b['differs']))}.",
            "",
        ]
    return "\n".join(out)


def sheet(analysis, explained, ctx: Context | None = None, binary: bool = False, model: str = "") -> str:
    """The whole network as a Markdown teaching sheet (:func:`sheet_chunks`, joined)."""
    return "".join(sheet_chunks(analysis, explained, ctx, binary, model))


def sheet_chunks(analysis, explained, ctx: Context | None = None, binary: bool = False, model: str = ""):
    """The whole network as a Markdown teaching sheet, a piece at a time: what the model is,
    each layer's short derivation (one ``##`` section per layer; a :class:`Hidden` among
    ``explained`` says how many are left out and how to see them), then the totals reconciled
    with the analysis' and, beside them, those of the spec's sibling models. ``explained`` is
    read once (:func:`explain_shown` makes it as it goes); ``model`` is the model as the
    command line named it (the hints quote it)."""
    ctx = ctx or Context()
    g = analysis.graph
    out = [f"# {md(cut(analysis.name))}: the arithmetic, layer by layer", ""]
    if g.description:
        out += [md(cut(g.description, 2000)), ""]
    if g.source:
        out += [f"Source: {md(cut(g.source, 2000))}", ""]
    shape = "x".join(map(str, g.input))
    out += [
        f"Input {shape}, {analysis.dtype}, batch {analysis.batch}; {len(analysis.layers):,} layers. "
        + md(_conventions(binary))
        + " "
        + md(RF_NOTE[0].upper() + RF_NOTE[1:])
        + ".",
        "",
    ]
    said = ctx.head_comments() + ctx.input_comments()
    for where, text in said:
        out += [f"> Spec ({md(cut(where))}): {md(cut(text, 2000))}", ""]
    yield "\n".join(out) + "\n"
    sums, skip = Sums(), {text for _, text in said}
    for ex in explained:
        if isinstance(ex, Hidden):
            yield hidden_markdown(analysis, ex, model) + "\n"
            continue
        sums.add(analysis, ex)
        yield layer_markdown(analysis, ex, binary, skip=skip) + "\n"
    yield totals_markdown(analysis, sums.result(analysis), ctx, binary).rstrip("\n") + "\n"


def hidden_markdown(analysis, hidden: Hidden, model: str = "") -> str:
    """What an abridged sheet says where it leaves layers out: how many, and the commands that
    show them."""
    from cnnstat.render import MAX_ROWS

    ref = cut(model or analysis.name, 100)
    return (
        f"## ... {hidden.count:,} more layers\n\nLayers {hidden.first:,} to {hidden.last:,} of "
        f"{len(analysis.layers):,} are not derived here (a sheet shows the first {HEAD_LAYERS} and the "
        f"last {TAIL_LAYERS} past {MAX_ROWS} layers). {code(f'cnnstat explain {ref} LAYER')} derives "
        f"any one of them, `--all` every one; {code(f'cnnstat summary {ref} --format csv')} lists all "
        "their figures.\n"
    )


def _cell_code(text: str) -> str:
    """A code span inside a Markdown table cell: ``|`` escaped (GitHub's tables split on it
    even inside code)."""
    return code(text).replace("|", "\\|")


def totals_markdown(analysis, rec: dict, ctx: Context, binary: bool) -> str:
    """The totals table: by kind, the sums of the sections, cnnstat's figures for the same
    layers, and (when the sheet left layers out) cnnstat's totals for the whole network.
    ``rec`` is :func:`reconcile`'s (or :meth:`Sums.result`'s) dict."""
    dtype = analysis.dtype
    head = f"| | weights | biases | params | weights {dtype} | MACs | activations | act. {dtype} |"
    lines = ["## Totals", "", head, "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def row(label, r):
        params = r["weights"] + r["biases"]
        return (
            f"| {label} | {r['weights']:,} | {r['biases']:,} | {params:,} | "
            f"{human_bytes(r['weight_bytes'], binary)} | {r['macs']:,} | "
            f"{r['activations']:,} | {human_bytes(r['activation_bytes'], binary)} |"
        )

    n = len(analysis.layers)
    whole = rec["layers"] == n
    for kind, r in rec["rows"].items():
        lines.append(row(kind, r))
    summary = _cell_code("cnnstat summary " + cut(analysis.name, 100))
    if whole:
        lines.append(row("sum of the sections", rec["total"]))
        lines.append(row(summary, rec["analysis"]))
    else:
        lines.append(row(f"sum of the {rec['layers']:,} sections", rec["total"]))
        lines.append(row(f"{summary}, the same {rec['layers']:,} layers", rec["analysis"]))
        lines.append(row(f"{summary}, all {n:,} layers", rec["network"]))
    lines.append("")
    verdict = "equal" if rec["agree"] else "NOT equal (a bug: please report it)"
    if whole:
        lines += [f"The sums of the sections and cnnstat's totals are {verdict}.", ""]
    else:
        lines += [
            f"The sums of the {rec['layers']:,} sections and cnnstat's figures for the same layers are "
            f"{verdict}; the {n - rec['layers']:,} layers not shown count in cnnstat's totals (the last "
            "row) and are not derived here.",
            "",
        ]
    for name, description, other in ctx.siblings:
        t, k = other.totals(), other.by_kind()
        lines.append(
            f"- Beside: {code(cut(name))} ({md(cut(description))}): conv weights {k['conv']['weights']:,}, "
            f"fc weights {k['fc']['weights']:,}, params {t['params']:,}; conv MACs {k['conv']['macs']:,}, "
            f"fc MACs {k['fc']['macs']:,}, MACs {t['macs']:,}."
        )
    if ctx.siblings:
        lines.append("")
    return "\n".join(lines)


# --- JSON ----------------------------------------------------------------------------------


def _json_value(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, Fraction):
        return int(v) if v.denominator == 1 else float(v)
    if isinstance(v, float) and v == int(v):
        return int(v)
    return v


def step_dict(step: Step) -> dict:
    d = {"what": step.what, "label": step.label}
    if step.what != "note":
        d.update(formula=step.formula, substituted=step.substituted, value=_json_value(step.value))
        if isinstance(step.value, Fraction) and step.value.denominator != 1:
            d["value_exact"] = str(step.value)
        if step.axes:
            d["axes"] = list(step.axes)
    return d


def explained_dict(ex: Explained) -> dict:
    la = ex.layer
    return {
        "name": la.name,
        "op": la.op,
        "kind": la.kind,
        "inputs": [{"name": n, "shape": list(s)} for n, s in ex.inputs],
        "output": list(la.output),
        "comments": [{"at": where, "text": text} for where, text in ex.comments],
        "steps": [step_dict(st) for st in ex.steps],
        "beside": [
            {"model": b["model"], "description": b["description"], "differs": _differs_json(b["differs"])}
            for b in ex.beside
        ],
    }


def _differs_json(differs: dict) -> dict:
    return {k: {"here": _json_value(a), "there": _json_value(b)} for k, (a, b) in differs.items()}


def to_dict(analysis, explained, ctx: Context | None = None, whole: bool = True, model: str = "") -> dict:
    """The JSON of ``cnnstat explain`` as one dict (:func:`json_chunks` parsed)."""
    import json

    return json.loads("".join(json_chunks(analysis, explained, ctx, whole, model)))


def json_chunks(analysis, explained, ctx: Context | None = None, whole: bool = True, model: str = ""):
    """The JSON of ``cnnstat explain``, a piece at a time (strict RFC 8259, indented as
    ``json.dumps(indent=2)``): the model, its layers' steps (made one at a time), for the whole
    network the totals reconciled, and the conventions. An abridged network (a :class:`Hidden`
    among ``explained``) says so in ``not_shown`` (how many, which rows, how to get them), its
    totals reconciled over the layers shown (``analysis``: cnnstat's figures for those layers;
    ``network``: its totals)."""
    import json

    from cnnstat.analysis import CONVENTIONS
    from cnnstat.render import finite_json

    def dumps(value, indent: str) -> str:
        text = json.dumps(finite_json(value), indent=2, allow_nan=False)
        return text.replace("\n", "\n" + indent)

    head = {
        "model": analysis.name,
        "input": list(analysis.graph.input),
        "dtype": analysis.dtype,
        "batch": analysis.batch,
    }
    yield "{\n" + "".join(f"  {json.dumps(k)}: {dumps(v, '  ')},\n" for k, v in head.items())
    sep, sums, hidden = '  "layers": [\n    ', Sums(), None
    for ex in explained:
        if isinstance(ex, Hidden):
            hidden = ex
            continue
        sums.add(analysis, ex)
        yield sep + dumps(explained_dict(ex), "    ")
        sep = ",\n    "
    yield '  "layers": []' if sep.startswith("  ") else "\n  ]"
    tail = {}
    if hidden is not None:
        ref = model or analysis.name
        tail["not_shown"] = {
            "layers": hidden.count,
            "first": hidden.first,
            "last": hidden.last,
            "of": len(analysis.layers),
            "how": f"cnnstat explain {ref} --all --format json; cnnstat explain {ref} LAYER",
        }
    if whole:
        rec = sums.result(analysis)
        tail["totals"] = {
            "by_kind": rec["rows"],
            "sum": rec["total"],
            "analysis": rec["analysis"],
            "agree": rec["agree"],
            "layers": rec["layers"],
            "network": rec["network"],
        }
    steps = "each step: formula, the layer's numbers substituted, value"
    tail["conventions"] = {**CONVENTIONS, "steps": steps}
    yield "".join(f",\n  {json.dumps(k)}: {dumps(v, '  ')}" for k, v in tail.items()) + "\n}\n"
