"""``cnnstat summary MODEL``: one row per layer."""

from __future__ import annotations

import click

from cnnstat.cli.common import conventions_note, load_analysis, model_options, shape_text


def rf_text(rf) -> str:
    if rf is None:
        return "?"
    if not rf.size:
        return ""
    if rf.collapsed:
        return "whole input"
    return f"{shape_text(rf.size)} /{shape_text(rf.jump)}"


@click.command("summary")
@model_options(analysis=True)
@click.option("--all", "show_all", is_flag=True, help="Every layer, even past 300 rows.")
def command(model, input_, resolution, batch, dtype, binary, fmt, show_all):
    """Per-layer table of MODEL: op, output shape, params, MACs, receptive field.

    \b
    Example:
      cnnstat summary alexnet
      cnnstat summary vgg16 --format csv > vgg16.csv
    """
    from cnnstat.cli.params import incomplete_note
    from cnnstat.render import UNKNOWN, Column, Table, at_least, print_json, render
    from cnnstat.units import human_bytes, si

    a = load_analysis(model, input_, resolution, dtype, batch)
    if fmt == "json":
        print_json(a.to_dict())
        return
    table = Table(
        title=f"{a.name}: input {shape_text(a.graph.input)}, batch {a.batch}",
        columns=[
            Column("layer", "name", numeric=False, wrap=True),
            Column("op", "op", numeric=False, wrap=True),
            Column("kind", "kind", numeric=False, optional=5),
            Column("output", "output", shape_text, optional=1),
            Column("params", "params", si),
            Column("MACs", "macs", si),
            Column("activations", "activations", si, optional=4),
            Column(f"act. {a.dtype}", "activation_bytes", lambda v: human_bytes(v, binary), optional=3),
            Column("RF size /jump", "rf", rf_text, optional=2),
        ],
    )
    for layer in a.layers:
        row = {"name": layer.name, "op": layer.op, "kind": layer.kind, "output": layer.output}
        row.update(a.counts(layer), rf=UNKNOWN if layer.rf is None else layer.rf)
        if layer.unknown:
            row["macs"] = UNKNOWN
        table.rows.append(row)
    totals, lower = a.totals(), not a.complete
    table.total = {"name": "total", **totals}
    for key in ("macs", "activations", "activation_bytes"):  # what happens inside is not seen
        table.total[key] = at_least(totals[key], lower)
    if fmt == "csv":
        for row in table.rows:
            row["rf"] = "?" if row["rf"] is UNKNOWN else "x".join(map(str, row["rf"].size))
    if lower:
        table.notes.append(incomplete_note(a) + " ?: unknown.")
    if any(layer.rf is None for layer in a.layers):
        table.notes.append(f"RF ?: unknown {a.rf_lost()} (cnnstat has no op for it).")
    table.notes.append(conventions_note(binary))
    table.show_all = show_all
    render(table, fmt)
