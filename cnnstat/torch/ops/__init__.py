"""The torch side of cnnstat's ops, one file per family mirroring :mod:`cnnstat.ops`
(``cnnstat/ops/conv.py`` <-> ``cnnstat/torch/ops/conv.py``): how each op is built as a torch
module and which torch modules and functions import as it. See :mod:`.base`."""

from cnnstat.torch.ops import (  # noqa: F401
    activation,
    attention,
    conv,
    linear,
    merge,
    norm,
    pad,
    pool,
    resample,
    reshape,
    roi,
    select,
    tokens,
    transformer_import,
)
from cnnstat.torch.ops.base import BUILDERS, FUNCTIONS, MODULES, builds

__all__ = ["BUILDERS", "FUNCTIONS", "MODULES", "builds"]
