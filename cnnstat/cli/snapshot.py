"""``cnnstat snapshot [PATH] -o FILE``: record today's figures as a baseline for check."""

from __future__ import annotations

import click


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
    with open(output, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    click.echo(f"wrote {len(models)} model(s) to {output}", err=True)
