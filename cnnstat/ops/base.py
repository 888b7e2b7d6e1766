"""What every op provides, and the registry ops add themselves to.

An op is one small class: its arguments (with aliases and defaults), its output shape, its
cost (weights, biases, buffers, MACs) and its receptive-field step. Shapes exclude the batch:
``(C, H, W)`` for images, ``(C, L)`` for 1-D signals, ``(C, D, H, W)`` for volumes and video
clips (D frames), ``(D,)`` for flat vectors. The torch side of each op family (its module for
:func:`cnnstat.torch.build`, the torch calls that import as it) is the file of the same name
in :mod:`cnnstat.torch.ops`.
"""

from __future__ import annotations

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

    ``size``: pixels seen; ``jump``: input pixels between neighbouring units (effective
    stride); ``start``: centre of the first unit's field (pixel 0 is the first input pixel;
    negative when it reaches into padding); ``extent``: how many units lie along each axis
    (kept through ``flatten`` so a following fc knows what it covers); ``collapsed``: every
    unit already sees the whole input (after global pooling or an fc).
    """

    size: tuple
    jump: tuple
    start: tuple
    extent: tuple
    collapsed: bool = False

    @classmethod
    def input(cls, spatial: tuple) -> RF:
        n = len(spatial)
        return cls((1,) * n, (1,) * n, (0.0,) * n, tuple(spatial))

    def window(self, k, s, pads, d, out_extent) -> RF:
        """One sliding window of kernel ``k``, stride ``s``, padding before ``pads`` per axis."""
        size, jump, start = [], [], []
        for i in range(len(self.size)):
            span = d[i] * (k[i] - 1)
            size.append(self.size[i] + span * self.jump[i])
            start.append(self.start[i] + (span / 2 - pads[i]) * self.jump[i])
            jump.append(self.jump[i] * s[i])
        return RF(tuple(size), tuple(jump), tuple(start), tuple(out_extent), self.collapsed)

    def upsample(self, taps, factor, offset, out_extent) -> RF:
        """Upsampling (transposed convolution, interpolation): ``factor[i]`` output units per
        input unit along axis ``i`` (an int or a :class:`~fractions.Fraction`); each output
        unit reads at most ``taps[i]`` consecutive input units; the first output unit's field
        is centred ``offset[i]`` input units after the first input unit's centre.

        The jump becomes fractional (``jump / factor``, kept exact as a Fraction) and how many
        input units an output unit reads depends on its phase: ``size`` is that of the units
        with the most taps, the largest field any output unit has.
        """
        size, jump, start = [], [], []
        for i in range(len(self.size)):
            size.append(self.size[i] + (taps[i] - 1) * self.jump[i])
            start.append(self.start[i] + offset[i] * self.jump[i])
            jump.append(exact(Fraction(self.jump[i]) / factor[i]))
        return RF(tuple(size), tuple(jump), tuple(start), tuple(out_extent), self.collapsed)

    def collapse(self) -> RF:
        """Every output unit sees all ``extent`` units (global pooling, fc)."""
        e = self.extent
        size = tuple(sz + (n - 1) * j for sz, n, j in zip(self.size, e, self.jump))
        start = tuple(st + (n - 1) / 2 * j for st, n, j in zip(self.start, e, self.jump))
        jump = tuple(j * n for j, n in zip(self.jump, e))
        return RF(size, jump, start, (1,) * len(e), True)


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
    help: ClassVar[str] = ""

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
