"""``cnnstat rf MODEL``: receptive field of every layer."""

from __future__ import annotations

import click

from cnnstat.cli.common import load_analysis, model_options, shape_text


@click.command("rf", short_help="Receptive field per layer: size, jump (effective stride), start.")
@model_options(analysis=False)
@click.option("--all", "show_all", is_flag=True, help="Every layer, even past 300 rows.")
def command(model, input_, resolution, fmt, show_all):
    """Receptive field per layer: size, jump (effective stride) and start offset.

    The network's receptive field is that of the last layer whose units still cover part
    of the input (before flatten or global pooling).

    \b
    Example:
      cnnstat rf vgg16
    """
    from cnnstat.render import Column, Rows, Table, print_json, render

    a = load_analysis(model, input_, resolution)
    if fmt == "json":
        print_json(a.json_doc())
        return
    table = Table(
        title=f"{a.name}: receptive field per layer (input {shape_text(a.graph.input)})",
        columns=[
            Column("layer", "name", numeric=False, wrap=True),
            Column("op", "op", numeric=False, wrap=True),
            Column("output", "output", shape_text, optional=1),
            Column("size", "size", lambda v: v if isinstance(v, str) else shape_text(v)),
            Column("jump", "jump", shape_text),
            Column("start", "start", shape_text, optional=2),
        ],
    )
    table.rows = Rows(a.layers, _row)  # made as they are written
    last = a.receptive_field()
    if last is not None and last.rf is None:
        table.notes.append(
            f"Receptive field: unknown (at {last.name}): {last.rf_unknown}, which cnnstat has no "
            "op for, so it cannot say which input pixels a unit sees."
        )
    elif last is not None:
        table.notes.append(
            f"Receptive field: {shape_text(last.rf.size)} pixels, jump {shape_text(last.rf.jump)}, "
            f"start {shape_text(last.rf.start)} "
            f"(at {last.name}, the last layer before global pooling/flatten)."
        )
    if any(layer.rf is None for layer in a.layers):
        table.notes.append(f"?: unknown {a.rf_lost()}.")
    table.notes.append(
        "size: input pixels one unit sees (per axis H x W; after upsampling, the largest field "
        "any unit has); jump: effective stride; start: centre of the first unit's field "
        "(pixel 0 = first pixel)."
    )
    table.show_all = show_all
    render(table, fmt)


def _row(layer) -> dict:
    """One layer's row: name, op, output, and its field's size, jump and start (size ? when
    unknown)."""
    rf = layer.rf
    row = {"name": layer.name, "op": layer.op, "output": layer.output, "size": "?"}
    if rf is not None:
        row.update(size="whole input" if rf.collapsed else rf.size, jump=rf.jump, start=rf.start)
    return row
