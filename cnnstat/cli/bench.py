"""``cnnstat bench``: measure latency, throughput and memory beside the analytical bound. (being built)."""

from __future__ import annotations

import click


@click.command("bench", short_help="Measure latency, throughput and memory beside the analytical bound.")
def command():
    """Measure latency, throughput and memory beside the analytical bound."""
    from cnnstat.cli.common import abort

    abort("`cnnstat bench` is not available yet")
