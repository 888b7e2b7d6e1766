"""``cnnstat list [PATTERN]``: the zoo."""

from __future__ import annotations

import click

from cnnstat.cli.common import format_option, shape_text


@click.command("list", short_help="The zoo: models matching a pattern, with params and MACs.")
@click.argument("pattern", default="*")
@format_option
def command(pattern, fmt):
    """Zoo models matching PATTERN (shell-style, e.g. 'vgg*'), with params and MACs.

    \b
    Example:
      cnnstat list 'alex*'
    """
    from cnnstat.analysis import Analysis
    from cnnstat.errors import CnnstatError
    from cnnstat.render import Column, Table, print_json, render
    from cnnstat.spec.build import build
    from cnnstat.units import si
    from cnnstat.zoo import models

    specs = models(pattern)
    if not specs:
        raise CnnstatError(f"no zoo model matches '{pattern}'")
    rows = []
    for spec in specs:
        t = Analysis(build(spec)).totals()
        rows.append(
            {
                "name": spec.name,
                "input": list(spec.input),
                "params": t["params"],
                "macs": t["macs"],
                "description": spec.description,
                "source": spec.source,
            }
        )
    if fmt == "json":
        print_json(rows)
        return
    table = Table(
        title=f"cnnstat zoo: {len(rows)} model(s)",
        columns=[
            Column("model", "name", numeric=False),
            Column("input", "input", shape_text, optional=1),
            Column("params", "params", si),
            Column("MACs", "macs", si),
            Column("description", "description", numeric=False, wrap=True, optional=2),
        ],
        rows=rows,
    )
    render(table, fmt)
