"""What the PyTorch importer records where no cnnstat op says what happens.

These ops are internal (``internal = True``): only :mod:`cnnstat.torch.recorder` makes them,
and a spec that names one gets "unknown op". They keep an imported graph's parameter count
whole (it always equals ``sum(p.numel())`` of the module) without inventing a cost: a layer
whose MACs cnnstat cannot know carries the reason (``Layer.unknown``), counts 0 in the known
part, and every total that includes it is reported as a lower bound.

Parameters of these layers are split by name: a parameter whose own name ends in ``bias`` or
starts with ``bias_`` (nn.LSTM's ``bias_ih_l0``) is a bias, every other one a weight. The
layer's kind (conv | fc | other) follows its weights: those of a torch convolution module are
conv, of ``nn.Linear``, ``nn.Bilinear``, the recurrent modules and ``nn.MultiheadAttention``
fc; any other weight by its shape with size-1 axes dropped (a learned token ``[1, 1, D]`` and
a scale ``[C, 1, 1]`` are vectors): more than 2 axes conv, 2 fc (a positional table
``[1, N, D]`` too), fewer other. A layer with weights of several kinds takes the first of
conv, fc, other.
"""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Op, register


class _Internal(Op):
    internal = True

    def infer(self, a, shapes, rfs):
        raise OpError(f"{self.name} is made by the PyTorch importer only")


@register
class Opaque(_Internal):
    """A torch call cnnstat has no op for, or whose op cannot take it (``call``: what was
    called, ``detail``: why). Output: torch's shape. Parameters and buffers: those the call
    reads, each counted once in the graph. MACs: unknown (``Layer.unknown`` says why; 0 in
    the known part, totals are lower bounds). Receptive field: unknown past it, unless every
    input already sees the whole input (then so does its output)."""

    name = "opaque"
    args = (Arg("call", "str", ""), Arg("detail", "str", ""))


@register
class Unused(_Internal):
    """Parameters and buffers the forward never reads: modules it does not run (Inception
    v3's auxiliary head in eval mode, the branch a data-dependent ``if`` did not take). One
    layer per module holding them (``module``); 0 MACs, known: they do not run. No output
    (shape ``[0]``); it is listed as reading the input, as a view, so that it takes no memory
    and moves no bytes."""

    name = "unused"
    view = True
    args = (Arg("module", "str", ""),)


@register
class Unattributed(_Internal):
    """Parameters and buffers the forward reads but that no layer holds: read by calls whose
    handler did not claim them (a buffer added as a constant). One layer per module holding
    them. Buffers alone cost nothing; parameters make its MACs unknown (``Layer.unknown``).
    No output, as :class:`Unused`."""

    name = "unattributed"
    view = True
    args = (Arg("module", "str", ""),)
