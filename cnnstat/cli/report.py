"""``cnnstat report``: one self-contained HTML report of a model. (being built)."""

from __future__ import annotations

import click


@click.command("report", short_help="One self-contained HTML report of a model.")
def command():
    """One self-contained HTML report of a model."""
    from cnnstat.cli.common import abort

    abort("`cnnstat report` is not available yet")
