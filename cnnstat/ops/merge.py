"""Merges of named branches: element-wise sum, channel concatenation, broadcast product."""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import RF, Op, prod, register


def _merge_rf(rfs: list) -> RF:
    """The largest receptive field over the branches, per axis."""
    if any(r.phases for r in rfs):  # after upsampling: the exact union, unit by unit
        return RF.union(rfs)
    n = len(rfs[0].size)
    size, jump, start = [], [], []
    for i in range(n):
        best = max(rfs, key=lambda r: r.size[i])
        size.append(best.size[i])
        start.append(best.start[i])
        jump.append(max(r.jump[i] for r in rfs))
    extent = max((r.extent for r in rfs), key=lambda e: e)
    return RF(tuple(size), tuple(jump), tuple(start), extent, all(r.collapsed for r in rfs))


class _Merge(Op):
    merge = True

    def rf(self, a, rfs, shapes, out):
        # A globally pooled branch (a squeeze-excitation gate) gives each unit global context
        # but no window: the field is that of the spatial branches.
        spatial = [r for r in rfs if not r.collapsed] or rfs
        return _merge_rf(spatial)

    def explain(self, a, shapes, rfs, out, cost, rf):
        from cnnstat.ops import steps as S

        names = ", ".join(f"'{n}'" for n in a.get("branches", ()))
        steps = [S.note(f"merges {len(shapes)} branches ({names})")] + self.explain_shape(shapes, out)
        steps += S.no_weights("no weighted sum (cnnstat counts multiply-accumulates of weighted sums only)")
        spatial = [r for r in rfs if r is not None and not r.collapsed] or rfs
        if rf is None or rf.collapsed or any(r is None or r.phases for r in spatial) or rf.phases:
            return steps + S.rf_generic(rfs, rf)
        sizes, jumps, starts = [], [], []

        def largest(values):
            return f"max({', '.join(map(S.num, values))})" if len(values) > 1 else S.num(values[0])

        for i in range(len(rf.size)):
            sizes.append(("max(r_1, ..., r_n)", largest([r.size[i] for r in spatial]), rf.size[i]))
            jumps.append(("max(j_1, ..., j_n)", largest([r.jump[i] for r in spatial]), rf.jump[i]))
            starts.append(("the largest field's start", S.num(rf.start[i]), rf.start[i]))
        if len(spatial) < len(rfs):
            steps.append(S.note("a branch that sees the whole input (a gate) adds context, not a window"))
        steps += S.per_axis("rf_size", "r'", sizes) + S.per_axis("rf_jump", "j'", jumps)
        return steps + S.per_axis("rf_start", "start'", starts)

    def explain_shape(self, shapes, out) -> list:
        from cnnstat.ops.steps import shape_step

        return [shape_step(out, "C")]

    @staticmethod
    def _describe(names, shapes):
        return ", ".join(f"branch '{n}' is {list(s)}" for n, s in zip(names, shapes))


@register
class Add(_Merge):
    """Element-wise sum; every branch must have the same shape."""

    name = "add"
    inplace = True  # out += identity

    def shape(self, a, shapes):
        if any(s != shapes[0] for s in shapes):
            raise OpError(f"add: {self._describe(a['branches'], shapes)}")
        return shapes[0]


@register
class Mul(_Merge):
    """Element-wise product; a [C, 1, 1] branch broadcasts over [C, H, W] (squeeze-excitation)."""

    name = "mul"

    def shape(self, a, shapes):
        full = max(shapes, key=prod)
        for s in shapes:
            if s != full and not (len(s) == len(full) and s[0] == full[0] and all(v == 1 for v in s[1:])):
                raise OpError(f"mul: {self._describe(a['branches'], shapes)}; only [C, 1, 1] broadcasts")
        return full


@register
class Concat(_Merge):
    """Concatenation along channels; spatial sizes must match."""

    name = "concat"

    def shape(self, a, shapes):
        if any(len(s) != len(shapes[0]) or s[1:] != shapes[0][1:] for s in shapes):
            raise OpError(f"concat: spatial sizes differ: {self._describe(a['branches'], shapes)}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def explain_shape(self, shapes, out) -> list:
        from cnnstat.ops.steps import channels_step, shape_step

        parts = " + ".join(str(s[0]) for s in shapes)
        return [channels_step("C_1 + ... + C_n", parts, out[0]), shape_step(out, "C")]
