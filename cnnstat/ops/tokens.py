"""Token sequences and learned tensors (ViT, DeiT, CaiT, ConvNeXt's layer scale).

Shapes are channels first: a sequence of N tokens of D features is [D, N], like a 1-D signal
[C, L]. ``tokens`` turns a map [C, H, W] into [C, H*W] and keeps the map's receptive field
(one entry per axis of the map, ``extent`` the map's size), so ``to_map`` can restore it and
the receptive field still reads in input pixels.
"""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import RF, ZERO, Arg, Cost, Op, per_axis, prod, register
from cnnstat.ops.window import window


def _dims(values) -> str:
    return "x".join(str(v) for v in values)


def _sequence(shape, op: str) -> None:
    if len(shape) != 2:
        raise OpError(
            f"{op} needs tokens [D, N], got {list(shape)}"
            + (": use 'tokens' first" if len(shape) > 2 else "")
        )


@register
class Tokens(Op):
    """[C, H, W] (or any map [C, *spatial]) -> [C, H*W] tokens, row-major (PyTorch's
    ``x.flatten(2)``); no arithmetic. The receptive field is the map's: one entry per axis of
    the map, its ``extent`` the map's size."""

    name = "tokens"
    view = True

    def shape(self, a, shapes):
        if len(shapes[0]) < 2:
            raise OpError(f"tokens needs a map [C, H, W], got {list(shapes[0])}")
        return (shapes[0][0], prod(shapes[0][1:]))


@register
class ToMap(Op):
    """[C, N] tokens -> the [C, H, W] map (``size``: [H, W], or any number of axes), the
    inverse of ``tokens``; by default the map the tokens came from (the receptive field's
    extent). N must equal the map's positions: drop class tokens first (``take`` a range)."""

    name = "to_map"
    aliases = ("untokens",)
    view = True
    args = (Arg("size", "axes", None, help="the map's spatial size (default: the tokens' own map)"),)

    def infer(self, a, shapes, rfs):
        shape, rf = shapes[0], rfs[0]
        _sequence(shape, self.name)
        if a["size"] is None:
            size = tuple(rf.extent)
            if not size or rf.collapsed:
                why = "attention mixed them" if size else "they come from no map"
                raise OpError(f"the tokens' map is not known ({why}): give 'size'")
        else:
            v = a["size"]  # an int is a square (cube) map of the field's rank
            size = tuple(v) if isinstance(v, tuple) else per_axis(v, len(rf.size) or 2, "size")
            if any(v < 1 for v in size):
                raise OpError(f"'size' must be positive, got {list(size)}")
        n = shape[1]
        if n != prod(size):
            extra = n - prod(size)
            take = f"take: {{index: {extra}, stop: {n}}}"
            hint = f": if the first {extra} are class tokens, drop them first ({take})"
            raise OpError(
                f"{n} tokens do not make a {_dims(size)} map ({prod(size)} positions)"
                + (hint if extra > 0 else "")
            )
        k = len(size)
        if k == len(rf.size):
            out_rf = rf if rf.collapsed else rf._replace(extent=size)
        else:  # a layout the field does not describe: every unit may see the whole input
            whole = rf if rf.collapsed or not rf.size else rf.collapse()
            out_rf = RF(
                (max(whole.size, default=1),) * k,
                (max(whole.jump, default=1),) * k,
                (max(whole.start, default=0.0),) * k,
                (1,) * k,
                True,
            )
        return (shape[0], *size), Cost(), out_rf


@register
class ClassToken(Op):
    """Prepends ``n`` learned tokens (ViT's class token; DeiT's class and distillation
    tokens, n = 2): [D, N] -> [D, N + n]; weights n x D. The receptive field is that of the
    sequence (the learned tokens see nothing until attention mixes them in)."""

    name = "class_token"
    aliases = ("cls_token",)
    args = (Arg("n", "int", 1, aliases=("count",), min=1, help="learned tokens to prepend"),)

    def shape(self, a, shapes):
        _sequence(shapes[0], self.name)
        return (shapes[0][0], shapes[0][1] + a["n"])

    def cost(self, a, shapes, out):
        return Cost(weights=a["n"] * shapes[0][0])


@register
class PosEmbed(Op):
    """Adds a learned tensor of the input's shape (ViT's position embedding): weights D x N
    on [D, N] tokens, C x H x W on a map; the addition is not a MAC. The weights are sized by
    the input, so at another input size it is refused (as fc), and it has no frame mode.

    ``split: k`` (MViT v1's separable embedding): on tokens [D, n + N] whose last N are a
    map's positions (``size``, by default the tokens' own map), the sum of a table over the
    map's first k axes and one over the others, plus a row per class token: weights
    D x (n + prod(size[:k]) + prod(size[k:])) (MViT v1: split 1, a row per frame and one per
    spatial position)."""

    name = "pos_embed"
    fixed_input = True
    args = (
        Arg("split", "int", None, min=1, help="MViT v1: two tables, the map's first k axes and the rest"),
        Arg("size", "axes", None, help="with split: the tokens' map (default: their own)"),
    )

    def infer(self, a, shapes, rfs):
        shape = shapes[0]
        if a["split"] is None:
            return shape, Cost(weights=prod(shape)), rfs[0]
        _sequence(shape, self.name)
        size, cls = token_map(a, shape, rfs[0])
        if not a["split"] < len(size):
            raise OpError(f"'split' {a['split']} must be less than the map's {len(size)} axes")
        k = a["split"]
        return shape, Cost(weights=shape[0] * (cls + prod(size[:k]) + prod(size[k:]))), rfs[0]

    def frame_args(self, a, native):
        raise OpError("its weights are sized for the spec's input, so it cannot run over a frame")


@register
class Scale(Op):
    """A learned multiplier per channel (ConvNeXt's and CaiT's layer scale): weights C;
    ``shared``: one learned multiplier for every value (NF-Net's skip-init gain, a learnable
    scalar): weights 1. 0 MACs (an element-wise product, as batch norm's affine)."""

    name = "scale"
    aliases = ("layer_scale",)
    args = (Arg("shared", "bool", False, help="one learned value for all channels (weights 1)"),)

    def cost(self, a, shapes, out):
        return Cost(weights=1 if a["shared"] else shapes[0][0])


@register
class Shift(Op):
    """A learned addend per channel (a bias added on its own, after a layer without one);
    ``shared``: one learned addend for every value (HGNetV2's learnable affine, StarReLU's
    bias): biases C, or 1. 0 MACs (additions, as a layer's bias)."""

    name = "shift"
    args = (Arg("shared", "bool", False, help="one learned value for all channels (biases 1)"),)

    def cost(self, a, shapes, out):
        return Cost(biases=1 if a["shared"] else shapes[0][0])


@register
class Take(Op):
    """Token ``index`` of [D, N] -> [D] flat (ViT's head reads the class token, index 0), or
    with ``stop`` the tokens [index, stop) -> [D, stop - index] (drop DeiT's two class tokens:
    index 2, stop N). Negative values count from the end, as Python's. No arithmetic.

    Receptive field: unchanged when the sequence's is collapsed (after global attention) and
    for a range; one token's when the tokens are exactly the map's positions (row-major),
    else the first token's.
    """

    name = "take"
    aliases = ("select",)
    view = True
    args = (
        Arg("index", "int", 0, aliases=("start",), help="the (first) token to keep"),
        Arg("stop", "int", None, aliases=("end",), help="keep tokens [index, stop) as a sequence"),
    )

    def infer(self, a, shapes, rfs):
        shape, rf = shapes[0], rfs[0]
        _sequence(shape, self.name)
        n, i = shape[1], a["index"]
        if not -n <= i < n:
            raise OpError(f"index {i} is outside the {n} tokens")
        if a["stop"] is not None:
            start, stop, _ = slice(i, a["stop"]).indices(n)
            if stop <= start:
                raise OpError(f"tokens [{i}, {a['stop']}) of {n} are none")
            return (shape[0], stop - start), Cost(), rf
        if rf.collapsed or not rf.size:
            return (shape[0],), Cost(), rf
        start = rf.start
        if n == prod(rf.extent):
            pos, at = i % n, []
            for e in reversed(rf.extent):
                at.append(pos % e)
                pos //= e
            start = tuple(s + p * j for s, p, j in zip(rf.start, reversed(at), rf.jump))
        return (shape[0],), Cost(), rf._replace(start=start, extent=(1,) * len(rf.size))


def token_map(a: dict, shape, rf: RF) -> tuple:
    """(map size, class tokens) of tokens [D, n + N] whose last N are a map's positions:
    ``a["size"]``, or by default the tokens' own map (the receptive field's extent, unless
    attention collapsed it to one unit)."""
    if a.get("size") is not None:
        v = a["size"]
        size = tuple(v) if isinstance(v, tuple) else per_axis(v, max(len(rf.extent), 1), "size")
    elif rf.extent and len(rf.extent) == len(rf.size) and not (rf.collapsed and set(rf.extent) == {1}):
        size = tuple(rf.extent)
    else:
        raise OpError("the tokens' map is not known: give 'size'")
    if any(v < 1 for v in size):
        raise OpError(f"'size' must be positive, got {list(size)}")
    cls = shape[1] - prod(size)
    if cls < 0:
        raise OpError(f"{shape[1]} tokens are fewer than the {_dims(size)} map's {prod(size)} positions")
    return size, cls


def with_extent(rf: RF, extent: tuple) -> RF:
    """A field whose units see the whole input (collapsed) over a map of ``extent``."""
    if len(rf.size) == len(extent):
        return rf._replace(extent=tuple(extent))
    big = (max(rf.size, default=1), max(rf.jump, default=1), max(rf.start, default=0.0))
    return RF(*((v,) * len(extent) for v in big), tuple(extent), True)


@register
class TokenPool(Op):
    """Max or average pooling over the map of tokens [D, n + N] whose last N are the map's
    positions (``size``, by default the tokens' own map), the first n (class tokens) kept:
    [D, n + N] -> [D, n + N'] (MViT's pooled skip connection: MaxPool3d, kernel s + 1,
    stride s, padding k // 2). 0 MACs, no parameters, as ``maxpool``/``avgpool``.

    Receptive field: the pooling window's over the map (``maxpool``'s); tokens whose units
    already see the whole input keep it, over the pooled map."""

    name = "token_pool"
    args = (
        Arg("mode", "str", "max", choices=("max", "avg"), help="max or avg"),
        Arg("k", "axes", aliases=("kernel", "kernel_size"), help="window size"),
        Arg("s", "axes", None, aliases=("stride",), help="stride (default: the window size)"),
        Arg("p", "axes", 0, aliases=("padding", "pad"), help="padding per axis"),
        Arg("size", "axes", None, help="the tokens' map (default: their own)"),
    )

    def infer(self, a, shapes, rfs):
        shape, rf = shapes[0], rfs[0]
        _sequence(shape, self.name)
        size, cls = token_map(a, shape, rf)
        k, s, d, pads, out = window({"k": a["k"], "s": a["s"], "p": a["p"]}, (shape[0], *size), self.name)
        if any(2 * b > kk for (b, _), kk in zip(pads, k)):
            raise OpError(f"padding {list(p for p, _ in pads)} must be at most half the window {list(k)}")
        if rf.collapsed or len(rf.size) != len(size):
            out_rf = with_extent(rf.collapse() if rf.size and not rf.collapsed else rf, out)
        else:
            out_rf = rf.window(k, s, [p[0] for p in pads], d, out)
        return (shape[0], cls + prod(out)), ZERO, out_rf
