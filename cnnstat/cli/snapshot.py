"""``cnnstat snapshot [PATH] -o FILE``: record today's figures as a baseline for check."""

from __future__ import annotations

import click

from cnnstat.files import write_atomic


@click.command("snapshot", short_help="Record the budget models' figures as a baseline for check.")
@click.argument("path", required=False)
@click.option(
    "-o",
    "--output",
    default="cnnstat-baseline.json",
    show_default=True,
    metavar="FILE",
    help="Where to write the baseline (JSON).",
)
def command(path, output):
    """Measure every model of the budget file and write the figures to FILE.

    \b
    Example:
      cnnstat snapshot -o cnnstat-baseline.json
      cnnstat check --baseline cnnstat-baseline.json --max-growth 1
    """
    import json

    from cnnstat import __version__
    from cnnstat import budget as B

    budgets = B.load(path)
    models = {}
    for b in budgets:
        models[b.name] = {**B.measure(b), "settings": b.settings()}
    doc = {"cnnstat_baseline": 1, "cnnstat_version": __version__, "models": models}
    from cnnstat.render import finite_json

    text = json.dumps(finite_json(doc), indent=2, allow_nan=False) + "\n"  # strict JSON
    write_atomic(output, text.encode("utf-8"), "baseline")
    from cnnstat.cli.common import warn

    warn(f"wrote {len(models)} model(s) to {output}")
