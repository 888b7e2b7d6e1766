"""``cnnstat explain``: a layer's arithmetic step by step (being built)."""

from __future__ import annotations

import click


@click.command("explain", short_help="A layer's arithmetic step by step, or the network as a teaching sheet.")
def command():
    """A layer's arithmetic step by step, or the network as a teaching sheet."""
    from cnnstat.cli.common import abort

    abort("`cnnstat explain` is not available yet")
