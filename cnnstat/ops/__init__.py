"""Op registry. Each module registers its ops on import; :data:`REGISTRY` maps name -> op."""

from cnnstat.ops import (  # noqa: F401
    activation,
    attention,
    conv,
    linear,
    merge,
    norm,
    opaque,
    pad,
    pool,
    resample,
    reshape,
    roi,
    select,
    tokens,
)
from cnnstat.ops.base import REGISTRY, RF, Arg, Cost, Op, register

__all__ = ["REGISTRY", "RF", "Arg", "Cost", "Op", "register"]
