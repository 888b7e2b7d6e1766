"""``cnnstat plot``: charts: model comparison, per-layer costs, receptive field, roofline. (being built)."""

from __future__ import annotations

import click


@click.command("plot", short_help="Charts: model comparison, per-layer costs, receptive field, roofline.")
def command():
    """Charts: model comparison, per-layer costs, receptive field, roofline."""
    from cnnstat.cli.common import abort

    abort("`cnnstat plot` is not available yet")
