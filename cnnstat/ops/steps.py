"""The steps of a layer's arithmetic, as a teacher writes them on the board (``cnnstat explain``).

Each op explains itself (:meth:`cnnstat.ops.base.Op.explain`) with the numbers its own handler
computed: ``infer`` (or ``shape``/``cost``/``rf``) gives the values, and a :class:`Step` only
shows the formula and the same numbers substituted into it, so an explanation can never say
something the analysis does not. The helpers here build the steps every op shares: the
generic default (what every op computes: output shape, parameters, MACs, receptive field), the
sliding window (conv, pooling) and the collapse of the field onto the whole input (global
pooling, fc).

A step's ``substituted`` text is arithmetic on plain numbers that evaluates to its ``value``:
``·`` multiplies, ``/`` divides exactly, ``⌊x⌋`` and ``⌈x⌉`` round down and up, ``max(a, b)``;
negative numbers and fractions are in parentheses. tests/test_explain.py evaluates every one.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


class Step(NamedTuple):
    """One line: ``label: formula = substituted = value``.

    ``what`` names the figure the line derives, so that tests compare it with the analysis:
    ``output`` (the output shape), ``out_size`` (one spatial size, on ``axes``), ``channels``,
    ``weights``, ``biases``, ``buffers``, ``macs``, ``rf_size``, ``rf_jump``, ``rf_start`` (on
    ``axes``, indices of spatial axes), or ``note`` (text only)."""

    what: str
    label: str
    formula: str = ""
    substituted: str = ""
    value: object = None
    axes: tuple = ()


def note(text: str) -> Step:
    return Step("note", text)


def num(v) -> str:
    """A number as the substituted text writes it: ``11``, ``15.5``, ``(-0.5)``, ``(1/3)``."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, float):
        f = Fraction(v)
        text = str(f.numerator) if f.denominator == 1 else repr(v)
    elif isinstance(v, Fraction):
        text = str(v.numerator) if v.denominator == 1 else f"({v})"
        return text if v >= 0 or text.startswith("(") else f"({text})"
    else:
        text = str(v)
    return f"({text})" if text.startswith("-") else text


def dot(values) -> str:
    """``11·11·3``."""
    return "·".join(num(v) for v in values)


def axis_names(rank: int) -> tuple:
    return AXES.get(rank, tuple(f"X{i}" for i in range(rank)))


def kernel_symbol(k) -> str:
    """``K·K`` for a square kernel, ``K_h·K_w`` otherwise (``K`` in 1-D)."""
    if len(set(k)) == 1:
        return "·".join("K" for _ in k)
    return "·".join(f"K_{a.lower()}" for a in axis_names(len(k)))


def out_symbol(rank: int) -> str:
    """``H_out·W_out``."""
    return "·".join(f"{a}_out" for a in axis_names(rank))


def per_axis(what, label, rows) -> list:
    """Steps for one figure on each spatial axis; ``rows[i] = (formula(symbol), substituted,
    value)``. Axes whose arithmetic is the same share one step (``H_out = W_out``)."""
    names = axis_names(len(rows))
    groups = {}
    for i, (formula, subst, value) in enumerate(rows):
        text = formula(names[-1]) if callable(formula) else formula
        groups.setdefault((text, subst, _key(value)), []).append(i)
    steps = []
    for axes in groups.values():
        formula, subst, value = rows[axes[-1]]
        text = formula(names[axes[-1]]) if callable(formula) else formula
        shown = _label(label, [names[i] for i in axes], len(rows))
        steps.append(Step(what, shown, text, subst, value, tuple(axes)))
    return steps


def _label(label: str, axes: list, rank: int) -> str:
    """``H_out = W_out`` for the pattern ``{x}_out``; ``r' (H)`` for ``r'`` on some axes of
    several (``r'`` alone when the step holds for every axis)."""
    if "{x}" in label:
        return " = ".join(label.format(x=x) for x in axes)
    return label if len(axes) == rank else f"{label} ({', '.join(axes)})"


def _key(value):
    return Fraction(value) if isinstance(value, (int, float, Fraction)) else value


# --- the generic default: every op ---------------------------------------------------------


def generic(op, a, shapes, rfs, out, cost, rf) -> list:
    """What every op computes, stated with its values (no formula of its own): the output
    shape, weights, biases, buffers, MACs, and the receptive field's step (unchanged, or the
    new size and jump)."""
    steps = output_steps(shapes, out)
    doc = (type(op).__doc__ or op.help or "").strip().split("\n\n")[0]
    if doc:  # the op's docstring, its reStructuredText quotes dropped
        steps.append(note(" ".join(doc.replace("``", "").split())))
    steps += cost_values(cost)
    steps += rf_generic(rfs, rf)
    return steps


def output_steps(shapes, out) -> list:
    """The output shape, and which input it keeps when it keeps one."""
    same = shapes and tuple(shapes[0]) == tuple(out)
    text = "the input's shape" if same else ""
    return [Step("output", "output shape", text, "", tuple(out))]


def cost_values(cost) -> list:
    """Weights, biases and buffers where the op has them, and its MACs (0: the op computes no
    weighted sum; cnnstat counts multiply-accumulates of weighted sums only)."""
    steps = []
    for what, value in (("weights", cost.weights), ("biases", cost.biases), ("buffers", cost.buffers)):
        if value:
            steps.append(Step(what, what, "", "", value))
    if not (cost.weights or cost.biases):
        steps.append(Step("weights", "weights", "", "", 0))
    steps.append(Step("macs", "MACs", "", "", cost.macs))
    if not cost.macs:
        steps.append(note("no weighted sum (cnnstat counts the multiply-accumulates of weighted sums only)"))
    return steps


def rf_generic(rfs, rf) -> list:
    """The field's size, jump and start per axis: ``= the input's`` when the op keeps it,
    else the handler's values."""
    if rf is None:
        return [note("receptive field: unknown past this layer")]
    if not rf.size:
        return []
    before = rfs[0] if rfs and rfs[0] is not None and len(rfs[0].size) == len(rf.size) else None
    steps = []
    for what, label, field in (("rf_size", "r'", 0), ("rf_jump", "j'", 1), ("rf_start", "start'", 2)):
        rows = []
        for i in range(len(rf.size)):
            value = rf[field][i]
            kept = before is not None and _key(before[field][i]) == _key(value)
            rows.append((label[:-1] if kept else "", "", value))
        steps += per_axis(what, label, rows)
    if rf.collapsed and not (before is not None and before.collapsed):
        steps.append(note("every unit now sees the whole input"))
    elif rf.phases is not None:
        steps.append(
            note("after upsampling a unit's field depends on its phase: tracked exactly, largest shown")
        )
    return steps


# --- sliding windows: conv, pooling --------------------------------------------------------


def window_size_steps(size, k, s, d, pads, out, ceil=False) -> list:
    """``⌊(W - K + 2P) / S⌋ + 1`` per axis (``⌈ ⌉`` in ceil mode, with PyTorch's rule that the
    last window starts inside the input or its left padding), with dilation and uneven padding
    written out where they occur."""
    rows = [_window_size(size[i], k[i], s[i], d[i], pads[i], out[i], ceil) for i in range(len(size))]
    steps = per_axis("out_size", "{x}_out", [row[:3] for row in rows])
    if any(row[3] for row in rows):
        steps.append(
            note("ceil mode: a last window that would start past the input is dropped (- 1, PyTorch's rule)")
        )
    if any(before != after for before, after in pads):
        sides = ", ".join(f"{a}: {b} before, {e} after" for a, (b, e) in zip(axis_names(len(pads)), pads))
        steps.append(note(f"padding per side: {sides}"))
    return steps


def _window_size(n, k, s, d, pad, out, ceil):
    before, after = pad
    even = before == after
    p_sym = "2P" if even else "P_before + P_after"
    if even:
        p_num = "0" if before == 0 else f"2·{num(before)}"
    else:
        p_num = f"{num(before)} + {num(after)}"
    k_sym, k_num = ("K", num(k)) if d == 1 else ("d·(K - 1) - 1", f"{num(d)}·({num(k)} - 1) - 1")
    inner = f"{num(n)} - {k_num} + {p_num}"
    total = n + before + after - d * (k - 1) - 1
    lo, hi = ("⌈", "⌉") if ceil else ("⌊", "⌋")

    def formula(x):
        return f"{lo}({x} - {k_sym} + {p_sym}) / S{hi} + 1"

    if s == 1:
        subst = f"{inner} + 1"
    elif total % s == 0:
        subst = f"({inner}) / {num(s)} + 1"
    else:
        subst = f"{lo}({inner}) / {num(s)}{hi} + 1"
    dropped = ceil and -(-total // s) + 1 != out  # the last window would start past the input
    if dropped:
        subst += " - 1"
    return formula, subst, out, dropped


def window_rf_steps(rf_in, rf_out, k, s, d, before) -> list:
    """The receptive field through one window: ``r' = r + (K - 1)·j``, ``j' = j·S``,
    ``start' = start + ((K - 1)/2 - P)·j`` per axis (with dilation ``d·(K - 1)``); for a field
    that depends on the unit's phase (after upsampling), the generic statement."""
    if rf_out is None or not _uniform(rf_in, rf_out):
        return rf_generic([rf_in], rf_out)
    dk = "(K - 1)" if all(v == 1 for v in d) else "d·(K - 1)"
    sizes, jumps, starts = [], [], []
    for i in range(len(k)):
        span = f"({num(k[i])} - 1)" if d[i] == 1 else f"{num(d[i])}·({num(k[i])} - 1)"
        r, j, st = rf_in.size[i], rf_in.jump[i], rf_in.start[i]
        sizes.append((lambda x: f"r + {dk}·j", f"{num(r)} + {span}·{num(j)}", rf_out.size[i]))
        jumps.append((lambda x: "j·S", f"{num(j)}·{num(s[i])}", rf_out.jump[i]))
        starts.append(
            (
                lambda x: f"start + ({dk}/2 - P)·j",
                f"{num(st)} + ({span}/2 - {num(before[i])})·{num(j)}",
                rf_out.start[i],
            )
        )
    return (
        per_axis("rf_size", "r'", sizes)
        + per_axis("rf_jump", "j'", jumps)
        + per_axis("rf_start", "start'", starts)
    )


def collapse_rf_steps(rf_in, rf_out) -> list:
    """Every unit sees all ``n`` units of its input (global pooling, fc): ``r' = r + (n - 1)·j``,
    ``j' = j·n``, ``start' = start + (n - 1)/2·j``."""
    if rf_out is None or not _uniform(rf_in, rf_out) or rf_in.collapsed:
        return rf_generic([rf_in], rf_out)
    sizes, jumps, starts = [], [], []
    for i, n in enumerate(rf_in.extent):
        r, j, st = rf_in.size[i], rf_in.jump[i], rf_in.start[i]
        sizes.append((lambda x: "r + (n - 1)·j", f"{num(r)} + ({num(n)} - 1)·{num(j)}", rf_out.size[i]))
        jumps.append((lambda x: "j·n", f"{num(j)}·{num(n)}", rf_out.jump[i]))
        starts.append(
            (lambda x: "start + (n - 1)/2·j", f"{num(st)} + ({num(n)} - 1)/2·{num(j)}", rf_out.start[i])
        )
    steps = per_axis("rf_size", "r'", sizes)
    steps.append(note(f"n = units along each axis of the input: {'x'.join(map(str, rf_in.extent))}"))
    steps += per_axis("rf_jump", "j'", jumps) + per_axis("rf_start", "start'", starts)
    steps.append(note("every unit now sees the whole input"))
    return steps


def _uniform(rf_in, rf_out) -> bool:
    """Both fields are ``start + u·jump ± (size - 1)/2`` (no phases after upsampling)."""
    return rf_in is not None and rf_in.phases is None and rf_out.phases is None


def channels_step(formula, subst, value, label="output channels") -> Step:
    return Step("channels", label, formula, subst, value)


def shape_step(out, channels="C_out") -> Step:
    """``output shape: C_out × H_out × W_out = 96x55x55``."""
    axes = " × ".join(f"{a}_out" for a in axis_names(len(out) - 1)) if len(out) > 1 else ""
    return Step("output", "output shape", f"{channels} × {axes}" if axes else channels, "", tuple(out))


def pad_note(a, pads) -> list:
    """Where padding was given by name ('same', 'causal'), the amounts it stands for."""
    p = a.get("p")
    if not isinstance(p, str) or p == "valid":
        return []
    sides = ", ".join(f"{x}: {b} + {e}" for x, (b, e) in zip(axis_names(len(pads)), pads))
    return [note(f"padding '{p}' = {sides} (before + after)")]


def bias_step(value, symbol, subst) -> Step:
    """``biases: C_out = 96`` (the handler's ``value``), or none (``bias: false``)."""
    if not value:
        return Step("biases", "biases (bias: false)", "", "", 0)
    return Step("biases", "biases", symbol, subst, value)


def no_weights(why: str) -> list:
    """The steps of an op without weights: 0 weights, 0 MACs and why."""
    return [Step("weights", "weights", "", "", 0), Step("macs", "MACs", "", "", 0), note(why)]
