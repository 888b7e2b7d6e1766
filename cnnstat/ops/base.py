"""What every op provides, and the registry ops add themselves to.

An op is one small class: its arguments (with aliases and defaults), its output shape, its
cost (weights, biases, buffers, MACs) and its receptive-field step. Shapes exclude the batch:
``(C, H, W)`` for images, ``(C, L)`` for 1-D signals, ``(C, D, H, W)`` for volumes and video
clips (D frames), ``(D,)`` for flat vectors. The torch side of each op family (its module for
:func:`cnnstat.torch.build`, the torch calls that import as it) is the file of the same name
in :mod:`cnnstat.torch.ops`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import ClassVar, NamedTuple

from cnnstat.errors import OpError, brief

REQUIRED = object()

Shape = tuple  # tuple[int, ...]


class Arg(NamedTuple):
    name: str
    type: str  # int | float | bool | str | axes (int per spatial axis) | padding | any
    default: object = REQUIRED
    aliases: tuple = ()
    min: int | None = None
    choices: tuple = ()
    help: str = ""


class Cost(NamedTuple):
    weights: int = 0
    biases: int = 0
    buffers: int = 0
    macs: int = 0


ZERO = Cost()


class RF(NamedTuple):
    """Receptive field of one output unit, per spatial axis, in input pixels.

    ``size``: pixels seen (the largest field any unit has, from its first to its last input
    pixel); ``jump``: input pixels between neighbouring units (effective stride; an int, or a
    :class:`~fractions.Fraction` after upsampling); ``start``: centre of the first unit's field
    (pixel 0 is the first input pixel; negative when it reaches into padding); ``extent``: how
    many units lie along each axis (kept through ``flatten`` so a following fc knows what it
    covers); ``collapsed``: every unit already sees the whole input (after global pooling or an
    fc).

    ``phases``: ``None`` while every unit's field is ``start + u * jump -+ (size - 1) / 2``
    (sliding windows only). After upsampling, how many input pixels a unit sees depends on its
    phase, so the fields are tracked exactly: ``phases[i]`` is ``None`` for an axis that is
    still uniform, else the fields of units ``0 .. P-1`` as ``(first, last)`` input pixels
    (``None`` for a unit that reads no input pixel, e.g. a transposed convolution with a kernel
    smaller than its stride), and unit ``u + P`` sees unit ``u``'s field shifted by the whole
    number ``P * jump``. ``size`` is then the largest of these fields (the largest field any
    unit has) and ``start`` the mean over the period of ``centre(u) - u * jump``: unit ``u``'s
    field is centred ``start + u * jump`` plus a phase-dependent offset that averages to 0.
    Tracking costs O(P x kernel) per layer; upsampling by s multiplies P by s, striding by s
    divides it by gcd(P, s) (at most :data:`MAX_PERIOD`).
    """

    size: tuple
    jump: tuple
    start: tuple
    extent: tuple
    collapsed: bool = False
    phases: tuple | None = None

    @classmethod
    def input(cls, spatial: tuple) -> RF:
        n = len(spatial)
        return cls((1,) * n, (1,) * n, (0.0,) * n, tuple(spatial))

    def _phased(self, i: int) -> bool:
        return self.phases is not None and self.phases[i] is not None and not self.collapsed

    def table(self, i: int) -> tuple | None:
        """Axis ``i``'s exact fields ``((first, last) or None, ...)`` over one period (a uniform
        axis has period 1); ``None`` where the uniform field is not whole pixels (a collapsed
        field made up by an importer)."""
        if self._phased(i):
            return self.phases[i]
        first = Fraction(self.start[i]) - Fraction(self.size[i] - 1, 2)
        if first.denominator != 1 or Fraction(self.jump[i]).denominator != 1:
            return None
        return ((int(first), int(first) + self.size[i] - 1),)

    def window(self, k, s, pads, d, out_extent) -> RF:
        """One sliding window of kernel ``k``, stride ``s``, padding before ``pads`` per axis."""
        size, jump, start, phases = [], [], [], []
        for i in range(len(self.size)):
            span = d[i] * (k[i] - 1)
            size.append(self.size[i] + span * self.jump[i])
            start.append(_moved(self.start[i], Fraction(span, 2) - pads[i], self.jump[i]))
            jump.append(exact(self.jump[i] * s[i]))
            table = None
            if self._phased(i):  # unit u reads units u*s - p + j*d, j < k
                reads = (range(-pads[i], -pads[i] + span + 1, d[i]),)
                table = _compose(self.phases[i], self.jump[i], reads, s[i], jump[i])
            phases.append(table)
        return self._with(size, jump, start, out_extent, phases)

    def upsample(self, taps, factor, offset, out_extent, reads=None) -> RF:
        """Upsampling (transposed convolution, interpolation): ``factor[i]`` output units per
        input unit along axis ``i`` (an int or a :class:`~fractions.Fraction`); each output
        unit reads at most ``taps[i]`` consecutive input units; output unit ``o`` samples the
        input at ``c = offset[i] + o / factor[i]`` input units from the first input unit.

        Which input units each output unit reads: without ``reads``, the ``taps`` consecutive
        units from ``floor(c) - (taps - 1) // 2`` (torch's sampling: nearest reads
        ``floor(c)``, linear ``floor(c)`` and the next, cubic ``floor(c) - 1 .. floor(c) + 2``).
        ``reads[i]``, for ops that read otherwise (transposed convolution): a ``range`` (of
        positive step) of input units for each output unit ``r`` of one period (the
        ``factor``'s numerator, or a multiple of it), unit ``r + n * len(reads[i])`` reading
        ``reads[i][r]`` shifted by ``n * len(reads[i]) / factor`` units (an empty range: the
        unit reads nothing).

        The jump becomes fractional (``jump / factor``, kept exact as a Fraction) and how many
        input pixels an output unit sees depends on its phase: the fields are tracked per
        phase (``phases``), ``size`` is the largest field any output unit has and ``start``
        is fitted to the fields (see the class docstring).
        """
        size, jump, start, phases = [], [], [], []
        for i in range(len(self.size)):
            f = Fraction(factor[i])
            jump.append(exact(Fraction(self.jump[i]) / f))
            start.append(exact(Fraction(self.start[i]) + Fraction(offset[i]) * self.jump[i]))
            size.append(self.size[i] + (taps[i] - 1) * self.jump[i])  # uniform axes (collapsed)
            table = self.table(i) if not self.collapsed else None
            if table is not None:
                if reads is not None:
                    rd = tuple(reads[i])
                else:
                    at = Fraction(offset[i])
                    rd = tuple(_around(at + Fraction(r) / f, taps[i]) for r in range(f.numerator))
                shift = Fraction(len(rd)) / f
                if shift.denominator != 1:
                    raise ValueError(f"reads: {len(rd)} output units are no whole number of input units")
                table = _compose(table, self.jump[i], rd, int(shift), jump[i])
            phases.append(table)
        return self._with(size, jump, start, out_extent, phases)

    def collapse(self) -> RF:
        """Every output unit sees all ``extent`` units (global pooling, fc)."""
        e = self.extent
        size = [sz + (n - 1) * j for sz, n, j in zip(self.size, e, self.jump)]
        start = [_moved(st, Fraction(n - 1, 2), j) for st, n, j in zip(self.start, e, self.jump)]
        jump = tuple(exact(j * n) for j, n in zip(self.jump, e))
        for i, n in enumerate(e):
            if self._phased(i):
                whole = _all_units(self.phases[i], self.jump[i], n)
                size[i] = _largest((whole,))
                if whole is not None:
                    start[i] = exact(Fraction(whole[0] + whole[1], 2))
        return RF(tuple(size), jump, tuple(start), (1,) * len(e), True)

    @staticmethod
    def union(rfs: list) -> RF:
        """The field of a unit that reads the same unit of every branch (a merge): per axis
        with phases, the exact union of the branches' fields of each unit (branches of equal
        jump); otherwise, as for uniform fields, the largest branch's (and the largest jump)."""
        n = len(rfs[0].size)
        size, jump, start, phases = [], [], [], []
        for i in range(n):
            best = max(rfs, key=lambda r: r.size[i])
            size.append(best.size[i])
            start.append(best.start[i])
            jump.append(max(r.jump[i] for r in rfs))
            table = None
            if any(r._phased(i) for r in rfs):
                tables = [r.table(i) for r in rfs]
                if len({r.jump[i] for r in rfs}) == 1 and None not in tables:
                    table = _merged(tables, jump[i])
                else:  # branches of different jumps: the largest one's field, as uniform ones
                    table, jump[i] = best.table(i), best.jump[i]
            phases.append(table)
        extent = max((r.extent for r in rfs), key=lambda e: e)
        return rfs[0]._with(size, jump, start, extent, phases, all(r.collapsed for r in rfs))

    def _with(self, size, jump, start, extent, phases, collapsed=None) -> RF:
        """An RF whose phased axes take their size and start from their fields; an axis whose
        fields became uniform again (period 1) drops its table."""
        size, start = list(size), list(start)
        for i, table in enumerate(phases):
            if table is None:
                continue
            size[i] = _largest(table)
            centre = _centre(table, jump[i])
            if centre is not None:
                start[i] = centre
                if len(table) == 1:
                    phases[i] = None
        collapsed = self.collapsed if collapsed is None else collapsed
        phases = tuple(phases) if any(t is not None for t in phases) else None
        return RF(tuple(size), tuple(jump), tuple(start), tuple(extent), collapsed, phases)


# --- exact fields per phase (after upsampling) ---------------------------------------------

MAX_PERIOD = 1 << 14  # units per period of the phase pattern a receptive field may track


def _moved(start, steps, jump):
    """``start + steps * jump``: exact (int or Fraction) once a Fraction is involved, else a
    float as before (the half-pixel starts of sliding windows are exact in binary)."""
    if isinstance(start, Fraction) or isinstance(jump, Fraction):
        return exact(Fraction(start) + steps * jump)
    return start + float(steps) * jump


def _around(at, taps) -> range:
    first = math.floor(at) - (taps - 1) // 2
    return range(first, first + taps)


def _whole(value) -> int:
    value = Fraction(value)
    if value.denominator != 1:
        raise ValueError(f"{value} pixels is not whole")
    return value.numerator


def _compose(table, jump, reads, shift, out_jump) -> tuple:
    """The fields of units reading input units: output unit ``r + n * len(reads)`` reads the
    input units ``reads[r]`` shifted by ``n * shift``; the input units' fields are ``table``
    (period P, jump ``jump``). The result has period ``len(reads) * P / gcd(P, shift)``.

    The hull of unit ``t``'s field over a tap progression ``t = a + m * step``: the taps'
    residues modulo P repeat every ``P / gcd(P, step)`` taps, each repeat shifting the fields
    right, so the first field can only come from the first repeat and the last from the last."""
    p = len(table)
    block = _whole(p * jump)  # pixels between unit u and unit u + P
    period = len(reads) * (p // math.gcd(p, shift))
    if period > MAX_PERIOD or period * min(p, max(map(_count, reads))) > MAX_PERIOD * 64:
        raise OpError(
            f"the receptive field's phase pattern repeats every {period} units, "
            f"more than the {MAX_PERIOD} cnnstat tracks"
        )

    def field(t):
        q, r = divmod(t, p)
        f = table[r]
        return None if f is None else (f[0] + q * block, f[1] + q * block)

    out = []
    for unit in range(period):
        n, r = divmod(unit, len(reads))
        taps = reads[r]
        if not taps:
            out.append(None)
            continue
        cycle = min(_count(taps), p // math.gcd(p, taps.step))
        base = n * shift
        firsts = [f for f in map(field, (base + t for t in taps[:cycle])) if f is not None]
        lasts = [f for f in map(field, (base + t for t in taps[-cycle:])) if f is not None]
        out.append((min(f[0] for f in firsts), max(f[1] for f in lasts)) if firsts else None)
    return _reduced(tuple(out), out_jump)


def _count(taps: range) -> int:
    """``len(taps)`` (a range of positive step), also past what ``len`` can return."""
    return max(0, -(-(taps.stop - taps.start) // taps.step))


def _reduced(table, jump) -> tuple:
    """``table`` over its shortest period."""
    p = len(table)
    for q in range(1, p):
        if p % q or Fraction(q * jump).denominator != 1:
            continue
        b = int(q * jump)
        if all(_shifted(table[r], b) == table[r + q] for r in range(p - q)):
            return table[:q]
    return table


def _shifted(f, by):
    return None if f is None else (f[0] + by, f[1] + by)


def _merged(tables, jump) -> tuple:
    """The union, unit by unit, of fields of equal jump."""
    period = math.lcm(*(len(t) for t in tables))
    if period > MAX_PERIOD:
        raise OpError(f"the receptive field's phase pattern repeats every {period} units, too many")
    out = []
    for u in range(period):
        fields = []
        for t in tables:
            q, r = divmod(u, len(t))
            f = _shifted(t[r], _whole(q * len(t) * jump))
            if f is not None:
                fields.append(f)
        out.append((min(f[0] for f in fields), max(f[1] for f in fields)) if fields else None)
    return _reduced(tuple(out), jump)


def _all_units(table, jump, n):
    """The union of the fields of units ``0 .. n-1`` (fields move right from one period to
    the next: the first pixel is among the first period's, the last among the last's)."""
    p = len(table)
    block = _whole(p * jump)
    firsts, lasts = [], []
    for r in range(min(p, n)):
        if table[r] is not None:
            firsts.append(table[r][0])
            lasts.append(table[r][1] + (n - 1 - r) // p * block)
    return (min(firsts), max(lasts)) if firsts else None


def _centre(table, jump):
    """The start that fits the fields best: the mean over one period of unit ``r``'s field
    centre less ``r * jump`` (units that read nothing left out); exact."""
    offsets = [Fraction(f[0] + f[1], 2) - r * jump for r, f in enumerate(table) if f is not None]
    return exact(sum(offsets) / len(offsets)) if offsets else None


def _largest(table) -> int:
    """The largest field (first to last pixel) in ``table``; 0 when no unit reads a pixel."""
    return max((f[1] - f[0] + 1 for f in table if f is not None), default=0)


class Op:
    """Base class; subclasses set ``name``, ``args`` and override what differs."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple] = ()  # other names a spec may use (deconv for conv_transpose)
    kind: ClassVar[str] = "other"  # conv | fc | other
    args: ClassVar[tuple] = ()
    merge: ClassVar[bool] = False  # takes named branches instead of arguments
    # Weights sized by the input's shape (fc, locally connected): at an input other than the
    # spec's own, the builder checks the op still sees the shape the spec was written for.
    fixed_input: ClassVar[bool] = False
    # Memory: ``inplace`` ops may write their output over their (first) input when they are
    # its last reader (PyTorch's ReLU(inplace=True), ``out += identity``); ``view`` ops never
    # allocate (flatten, channel slice): their output aliases the input's storage.
    inplace: ClassVar[bool] = False
    view: ClassVar[bool] = False
    # Inputs whose values the op reads (None: all); later inputs give only their shape (the
    # layer named by crop/upsample `like:`), so activation traffic does not count them.
    data_inputs: ClassVar[int | None] = None
    help: ClassVar[str] = ""
    # Made only by the PyTorch importer (cnnstat.ops.opaque): a spec cannot use it.
    internal: ClassVar[bool] = False

    def infer(self, a: dict, shapes: list, rfs: list) -> tuple:
        """(output shape, Cost, RF) for inputs of ``shapes`` with receptive fields ``rfs``.

        Simple ops define ``shape``/``cost``/``rf``; ops whose three answers share work (a
        sliding window) override ``infer`` itself.
        """
        out = self.shape(a, shapes)
        return out, self.cost(a, shapes, out), self.rf(a, rfs, shapes, out)

    def shape(self, a: dict, shapes: list) -> Shape:
        return shapes[0]

    def cost(self, a: dict, shapes: list, out: Shape) -> Cost:
        return ZERO

    def rf(self, a: dict, rfs: list, shapes: list, out: Shape) -> RF:
        return rfs[0]

    def explain(self, a: dict, shapes: list, rfs: list, out: Shape, cost: Cost, rf: RF | None) -> list:
        """The arithmetic of this op, step by step (``cnnstat explain``): a list of
        :class:`cnnstat.ops.steps.Step`, each a formula, the layer's numbers substituted into
        it, and the value. ``out``, ``cost`` and ``rf`` are what :meth:`infer` returned for
        ``a``, ``shapes`` and ``rfs``: the values shown are the handler's, never recomputed, so
        an explanation cannot diverge from the analysis. The default states what every op
        computes (output shape, parameters, MACs, the field's size and jump) with their
        values; ops with a formula to show override it (conv, pooling, fc, ...)."""
        from cnnstat.ops.steps import generic

        return generic(self, a, shapes, rfs, out, cost, rf)

    def frame_args(self, a: dict, native: list | None) -> dict:
        """Arguments when the network runs fully convolutionally over a whole frame.

        ``native``: for fixed-input ops, ``[(shape, rf extent)]`` of each input at the spec's
        own input. Most ops run unchanged.
        """
        return a


REGISTRY: dict[str, Op] = {}


def register(cls):
    """Class decorator: instantiate the op and add it to :data:`REGISTRY` by name."""
    op = cls()
    op.arg_index = {}
    for arg in cls.args:
        for key in (arg.name, *arg.aliases):
            op.arg_index[key] = arg
    for name in (cls.name, *cls.aliases):
        if name in REGISTRY:
            raise RuntimeError(f"op {name!r} registered twice")
        REGISTRY[name] = op
    return cls


# --- helpers shared by op handlers -------------------------------------------------------


def spatial_rank(shape: Shape, op: str) -> int:
    if len(shape) not in (2, 3, 4):
        raise OpError(
            f"{op} needs a [C, H, W], [C, L] or [C, D, H, W] input, got {list(shape)}"
            + (" (flat: use fc)" if len(shape) == 1 else "")
        )
    return len(shape) - 1


def per_axis(value, n: int, name: str) -> tuple:
    """An int for every spatial axis from an int or a list of ``n`` ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if (
        isinstance(value, (list, tuple))
        and len(value) == n
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    raise OpError(f"'{name}' must be an integer or a list of {n} integers, got {brief(value)}")


def exact(value):
    """A Fraction that is a whole number as an int; other values unchanged."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    return value


def prod(values) -> int:
    n = 1
    for v in values:
        n *= v
    return n
