"""Shape changes without arithmetic."""

from __future__ import annotations

from cnnstat.ops.base import Op, prod, register


@register
class Flatten(Op):
    """[C, H, W] -> [C*H*W]; each unit keeps its receptive field."""

    name = "flatten"

    def shape(self, a, shapes):
        return (prod(shapes[0]),)
