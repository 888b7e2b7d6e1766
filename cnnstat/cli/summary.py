"""``cnnstat summary MODEL``: one row per layer (or per block, ``--depth``)."""

from __future__ import annotations

import click

from cnnstat.cli.common import conventions_note, load_analysis, model_options, shape_text

SORT_KEYS = ("params", "macs", "activations")
SUMMED = ("params", "weights", "biases", "buffers", "macs", "activations", "weight_bytes", "param_bytes")
SUMMED += ("activation_bytes",)


def rf_text(rf) -> str:
    if rf is None:
        return "?"
    if not rf.size:
        return ""
    if rf.collapsed:
        return "whole input"
    return f"{shape_text(rf.size)} /{shape_text(rf.jump)}"


def layer_row(a, layer) -> dict:
    """One layer's row: name, op, kind, output, counts, rf, unknown (MACs unknown), layers."""
    row = {"name": layer.name, "op": layer.op, "kind": layer.kind, "output": layer.output}
    row.update(a.counts(layer), rf=layer.rf, unknown=bool(layer.unknown), layers=1)
    return row


def fold(rows: list, depth: int) -> list:
    """Rows folded by the first ``depth`` parts of their dotted names (``layer2.0.conv1`` at
    depth 2: ``layer2.0``), in the order each group first appears: counts summed, the output
    and receptive field of the group's last layer, the op when the group is one layer."""
    groups: dict = {}
    for row in rows:
        key = ".".join(row["name"].split(".")[:depth])
        group = groups.get(key)
        if group is None:
            groups[key] = {**row, "name": key}
            continue
        for k in SUMMED:
            group[k] += row[k]
        group.update(output=row["output"], rf=row["rf"], layers=group["layers"] + 1)
        group["unknown"] = group["unknown"] or row["unknown"]
        group["op"] = f"{group['layers']} layers"
        if group["kind"] != row["kind"]:
            group["kind"] = "mixed"
    return list(groups.values())


def _percent(v) -> str:
    return f"{v:.1f}%"


@click.command("summary", short_help="One row per layer (or block): params, MACs, output, RF.")
@model_options(analysis=True)
@click.option("--all", "show_all", is_flag=True, help="Every row, even past 300.")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    metavar="N",
    help="Fold layers by the first N parts of their dotted names, figures summed (depth 2: "
    "layer2.0.conv1 counts in layer2.0).",
)
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(SORT_KEYS),
    help="Rows by this figure, largest first (where does the compute go: --sort macs).",
)
@click.option("--top", type=click.IntRange(min=1), metavar="N", help="Only the first N rows (after --sort).")
def command(model, input_, resolution, batch, dtype, binary, fmt, show_all, depth, sort_by, top):
    """Per-layer table of MODEL: op, output shape, params, MACs, activations, receptive field,
    and each layer's share of the params and MACs.

    --depth, --sort and --top shape the table (and CSV, Markdown); --format json always
    carries every layer.

    \b
    Example:
      cnnstat summary alexnet
      cnnstat summary resnet50 --depth 2
      cnnstat summary densenet201 --sort macs --top 10
      cnnstat summary vgg16 --format csv > vgg16.csv
    """
    from cnnstat.cli.params import exact_totals, incomplete_note
    from cnnstat.render import UNKNOWN, Bound, Column, Rows, Table, at_least, print_json, render
    from cnnstat.units import human_bytes, si

    a = load_analysis(model, input_, resolution, dtype, batch)
    if fmt == "json":
        print_json(a.json_doc())
        return
    totals, lower = a.totals(), not a.complete

    def finish(row: dict) -> dict:
        """A row as shown: shares of the totals, unknown figures as ?."""
        row["params_pct"] = 100 * row["params"] / totals["params"] if totals["params"] else None
        row["macs_pct"] = 100 * row["macs"] / totals["macs"] if totals["macs"] else None
        if row["macs_pct"] is not None and lower:  # a share of a lower bound: at most that
            row["macs_pct"] = Bound(row["macs_pct"], upper=True)
        if row.pop("unknown"):
            row["macs"] = row["macs_pct"] = UNKNOWN
        if fmt == "csv":
            row["rf"] = "?" if row["rf"] is None else "x".join(map(str, row["rf"].size))
        else:
            row["rf"] = UNKNOWN if row["rf"] is None else row["rf"]
        return row

    # Rows are made as they are written (render.Rows): a million layers are never a million dicts.
    if depth:
        items = fold(map(lambda la: layer_row(a, la), a.layers), depth)
        rows = Rows(items, lambda row: finish(dict(row)))
    else:
        items = a.layers
        rows = Rows(items, lambda la: finish(layer_row(a, la)))
    count, unit = len(items), "blocks" if depth else "layers"
    if sort_by:  # rows whose MACs are unknown last; the order is sorted, not the rows
        if depth:
            keys = [(not (sort_by == "macs" and r["unknown"]), r[sort_by]) for r in items]
        else:
            keys = [(not (sort_by == "macs" and la.unknown), layer_row(a, la)[sort_by]) for la in items]
        order = sorted(range(count), key=keys.__getitem__, reverse=True)[:top]
        rows = Rows([items[i] for i in order], rows.make)
    elif top:
        rows = Rows(items[:top], rows.make)
    table = Table(
        title=f"{a.name}: input {shape_text(a.graph.input)}, batch {a.batch}"
        + (f", folded at depth {depth}" if depth else ""),
        columns=[
            Column("layer" if not depth else "block", "name", numeric=False, wrap=True),
            Column("op", "op", numeric=False, wrap=True),
            Column("kind", "kind", numeric=False, optional=7),
            Column("output", "output", shape_text, optional=1),
            Column("params", "params", si),
            Column("MACs", "macs", si),
            Column("activations", "activations", si, optional=6),
            Column(f"act. {a.dtype}", "activation_bytes", lambda v: human_bytes(v, binary), optional=5),
            Column("RF size /jump", "rf", rf_text, optional=3),
            # shares: not in CSV (they follow from its columns)
            Column("% params", "params_pct", _percent, optional=4, csv=False),
            Column("% MACs", "macs_pct", _percent, optional=2, csv=False),
        ],
        rows=rows,
    )
    table.total = {"name": "total", **totals}
    for key in ("macs", "activations", "activation_bytes"):  # what happens inside is not seen
        table.total[key] = at_least(totals[key], lower)
    table.notes += exact_totals(a)
    if top and count > len(rows):
        shown = {k: sum(r[k] for r in rows if r[k] is not UNKNOWN) for k in ("params", "macs")}
        share = ", ".join(
            f"{100 * shown[k] / totals[k]:.1f}% of the {label}"
            for k, label in (("params", "params"), ("macs", "MACs"))
            if totals[k]
        )
        order = f" by {sort_by}" if sort_by else ""
        table.notes.append(f"The first {len(rows)} of {count} {unit}{order} (--top): {share}.")
    if lower:
        table.notes.append(incomplete_note(a) + " ?: unknown.")
    if any(layer.rf is None for layer in a.layers):
        table.notes.append(f"RF ?: unknown {a.rf_lost()} (cnnstat has no op for it).")
    table.notes.append(conventions_note(binary))
    table.show_all = show_all
    render(table, fmt)
