"""Normalisation: batch norm (learnable scale/shift, running statistics), LRN, layer norm
(over channels, or over all axes), group norm, instance norm, global response norm
(ConvNeXt V2's GRN), Lp normalisation (F.normalize)."""

from __future__ import annotations

from cnnstat.errors import OpError
from cnnstat.ops.base import Arg, Cost, Op, prod, register


@register
class BatchNorm(Op):
    """Per channel: weight (gamma) and bias (beta) when ``affine``; running mean and
    variance are buffers, not parameters (PyTorch's num_batches_tracked is not counted)."""

    name = "bn"
    args = (Arg("affine", "bool", True), Arg("eps", "float", 1e-5), Arg("momentum", "float", 0.1))

    def cost(self, a, shapes, out):
        c = shapes[0][0]
        return Cost(weights=c if a["affine"] else 0, biases=c if a["affine"] else 0, buffers=2 * c)


@register
class LocalResponseNorm(Op):
    """Local response normalisation across channels (AlexNet); no parameters."""

    name = "lrn"
    args = (
        Arg("size", "int", 5, aliases=("local_size", "n"), min=1),
        Arg("alpha", "float", 1e-4),
        Arg("beta", "float", 0.75),
        Arg("k", "float", 1.0),
    )


# --- layer, group and instance norm -------------------------------------------------------------
#
# Conventions shared by the ops below: 0 MACs (normalisation is not counted, like bn); the
# optional learnable scale counts as weights and the shift as biases, one per normalised
# element as PyTorch allocates them; running statistics are buffers. Group, instance and
# all-axes layer norm take their statistics over the spatial axes: that gives every unit
# global context, but, as for a squeeze-excitation gate, no window, so the receptive field is
# the input's (cnnstat's convention: a field is the window of the per-position path).

_LN_ARGS = (
    Arg("eps", "float", 1e-5, help="added to the variance"),
    Arg("affine", "bool", True, aliases=("elementwise_affine",), help="learnable scale (and shift)"),
    Arg("bias", "bool", True, help="learnable shift, with affine (PyTorch >= 2.1: bias=False)"),
)


def _ln_cost(a, n: int) -> Cost:
    return Cost(weights=n if a["affine"] else 0, biases=n if a["affine"] and a["bias"] else 0)


@register
class LayerNorm(Op):
    """Layer norm over the channels at every position: [C, H, W], [C, L], [C, D, H, W] or a
    flat [C] (an MLP; tokens as [D, N] are features first). ConvNeXt's LayerNorm2d, and a
    transformer's LayerNorm over features. Weight C and bias C with ``affine`` (no bias with
    ``bias: false``); 0 MACs; receptive field unchanged (per position)."""

    name = "layernorm"
    aliases = ("ln", "layer_norm")
    args = _LN_ARGS

    def cost(self, a, shapes, out):
        return _ln_cost(a, shapes[0][0])


@register
class LayerNormAll(Op):
    """Layer norm over every axis of the input (``nn.LayerNorm(input.shape[1:])``): weight
    and bias the input's shape, C x H x W each with ``affine``, so the weights are sized by
    the input (like fc). 0 MACs; the statistics span the whole input, the receptive field is
    unchanged (see the norms' convention)."""

    name = "layernorm_all"
    fixed_input = True
    args = _LN_ARGS

    def cost(self, a, shapes, out):
        return _ln_cost(a, prod(shapes[0]))

    def frame_args(self, a, native):
        (_shape, extent), *_ = native
        if extent:
            raise OpError("its weights are sized by the whole input, so it cannot slide over a frame")
        return a  # a flat network (an MLP): nothing to slide


@register
class GroupNorm(Op):
    """Group norm (Wu & He 2018): the channels in ``groups`` groups, each normalised over its
    channels and all positions. Weight C and bias C with ``affine``; no buffers; 0 MACs;
    receptive field unchanged (see the norms' convention)."""

    name = "groupnorm"
    aliases = ("gn", "group_norm")
    args = (
        Arg("groups", "int", aliases=("num_groups",), min=1, help="groups; must divide the channels"),
        Arg("eps", "float", 1e-5),
        Arg("affine", "bool", True, help="learnable scale and shift per channel"),
    )

    def cost(self, a, shapes, out):
        c = shapes[0][0]
        if c % a["groups"]:
            raise OpError(f"groups {a['groups']} must divide the {c} input channels")
        return Cost(weights=c if a["affine"] else 0, biases=c if a["affine"] else 0)


@register
class GlobalResponseNorm(Op):
    """Global response normalisation (ConvNeXt V2, Woo et al. 2023): per channel the L2 norm
    of its values over all positions, g_c; n_c = g_c / (mean over channels of g + eps);
    out = x + gamma_c (x n_c) + beta_c. Weight (gamma) C and bias (beta) C; no buffers; 0 MACs
    (element-wise products and reductions, as the other norms); receptive field unchanged
    (see the norms' convention)."""

    name = "grn"
    aliases = ("global_response_norm",)
    args = (Arg("eps", "float", 1e-6),)

    def cost(self, a, shapes, out):
        shape = shapes[0]
        if len(shape) < 2:
            raise OpError(
                f"grn needs positions to take norms over ([C, L], [C, H, W], ...), got {list(shape)}"
            )
        return Cost(weights=shape[0], biases=shape[0])


@register
class InstanceNorm(Op):
    """Instance norm: every channel normalised over its positions ([C, L], [C, H, W] or
    [C, D, H, W]). PyTorch's defaults: no ``affine`` (weight C and bias C when on), no
    running statistics (``track_running_stats``: running mean and variance, 2C buffers;
    num_batches_tracked is not counted, as for bn). 0 MACs; receptive field unchanged (see
    the norms' convention)."""

    name = "instancenorm"
    aliases = ("instance_norm",)
    args = (
        Arg("affine", "bool", False, help="learnable scale and shift per channel"),
        Arg("track_running_stats", "bool", False, aliases=("track",), help="running mean/variance"),
        Arg("eps", "float", 1e-5),
        Arg("momentum", "float", 0.1),
    )

    def cost(self, a, shapes, out):
        shape = shapes[0]
        if len(shape) < 2:
            raise OpError(
                f"instancenorm needs positions to normalise over ([C, L], [C, H, W] or [C, D, H, W]), "
                f"got {list(shape)}"
            )
        c = shape[0]
        w = c if a["affine"] else 0
        return Cost(weights=w, biases=w, buffers=2 * c if a["track_running_stats"] else 0)


@register
class Normalize(Op):
    """Lp normalisation over the channels at every position: ``x / max(||x||_p, eps)``,
    PyTorch's ``F.normalize(x, p, dim=1)`` (SSD300's L2Norm, followed by its learned scale
    per channel: a ``scale`` layer); [C, *spatial] or a flat [C]. No parameters; 0 MACs,
    as every normalisation here (the C powers and the sum per position that the norm takes
    are not counted, as layer norm's statistics are not; PyTorch's FlopCounterMode counts
    none either); receptive field unchanged (per position)."""

    name = "normalize"
    aliases = ("l2norm", "lp_normalize")
    args = (
        Arg("p", "float", 2.0, help="the norm's exponent (2: Euclidean)"),
        Arg("eps", "float", 1e-12, help="smallest divisor"),
    )

    def shape(self, a, shapes):
        if not a["p"] > 0:
            raise OpError(f"'p' must be positive, got {a['p']}")
        return shapes[0]
