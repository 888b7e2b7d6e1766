"""``cnnstat params MODEL``: parameters by kind (conv / fc / other) and in total."""

from __future__ import annotations

import click

from cnnstat.cli.common import conventions_note, load_analysis, model_options, shape_text

KIND_LABELS = {"conv": "Convolution", "fc": "Fully connected", "other": "Other"}


def incomplete_note(a) -> str:
    """The note under a table whose MAC figures are lower bounds."""
    return (
        f"≥: a lower bound. MACs unknown (counted 0) for {a.incomplete_text()}; parameters are all counted."
    )


def exact_totals(a) -> list:
    """The totals to the last digit, under a table (as torchinfo prints them)."""
    batch = f" (batch {a.batch})" if a.batch > 1 else ""
    t = a.totals()
    return [
        f"Total params: {t['params']:,}",
        f"Total MACs: {'' if a.complete else '≥ '}{t['macs']:,}{batch}",
    ]


def params_table(a, binary: bool):
    from cnnstat.render import Column, Table, at_least
    from cnnstat.units import human_bytes, si

    b = lambda n: human_bytes(n, binary)  # noqa: E731
    table = Table(
        title=f"{a.name}: input {shape_text(a.graph.input)}, {a.dtype}, batch {a.batch}",
        columns=[
            Column("kind", "kind", numeric=False),
            Column("weights", "weights", si),
            Column("biases", "biases", si),
            Column("params", "params", si),
            Column("buffers", "buffers", si),
            Column(f"weights {a.dtype}", "weight_bytes", b),
            Column(f"params {a.dtype}", "param_bytes", b),
            Column("MACs", "macs", si),
        ],
    )
    by_kind = a.by_kind()
    lower = {la.kind for la in a.layers if la.unknown}  # kinds whose MACs are lower bounds
    for kind, counts in by_kind.items():
        table.rows.append({"kind": kind, **counts, "macs": at_least(counts["macs"], kind in lower)})
    totals = a.totals()
    table.total = {"kind": "total", **totals, "macs": at_least(totals["macs"], bool(lower))}
    for kind in ("conv", "fc"):
        c = by_kind[kind]
        if c["params"] or c["macs"]:
            table.notes.append(
                f"{KIND_LABELS[kind]}: {si(c['weights'])} weights = {b(c['weight_bytes'])} "
                f"(+{si(c['biases'])} biases); {'≥ ' if kind in lower else ''}{si(c['macs'])} MACs"
            )
    table.notes += exact_totals(a)
    if lower:
        table.notes.append(incomplete_note(a))
    table.notes.append(conventions_note(binary))
    return table


@click.command("params", short_help="Parameters by kind (conv, fc, other), their bytes, and MACs.")
@model_options(analysis=True)
def command(model, input_, resolution, batch, dtype, binary, fmt):
    """Parameters of MODEL by kind: weights, biases, bytes at --dtype, and MACs.

    \b
    Example:
      cnnstat params vgg16
      cnnstat params alexnet-grouped --dtype fp16 --format json
    """
    from cnnstat.render import print_json, render

    a = load_analysis(model, input_, resolution, dtype, batch)
    if fmt == "json":
        print_json(a.json_doc())
    else:
        render(params_table(a, binary), fmt)
