"""``cnnstat compare MODEL MODEL...``: models side by side."""

from __future__ import annotations

import click

from cnnstat.cli.common import format_option, input_option, shape_text, torch_options
from cnnstat.units import DTYPE_BITS


@click.command("compare")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option(
    "--resolution",
    default="1920x1080",
    show_default=True,
    metavar="WxH",
    help="Frame for the throughput need (tile mode).",
)
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=30, show_default=True)
@click.option("--dtype", type=click.Choice(list(DTYPE_BITS)), default="fp32", show_default=True)
@click.option("--device", help="Also bound the fps on this device (cnnstat devices).")
@click.option("--binary", is_flag=True, help="Bytes in MiB instead of MB.")
@input_option
@torch_options
@format_option
def command(models, resolution, fps, dtype, device, binary, input_, fmt):
    """Compare MODELs: params, weights, MACs, peak memory, receptive field, frame need.

    \b
    Example:
      cnnstat compare resnet50 mobilenet_v2 efficientnet_b0 --device jetson-orin-nano --dtype fp16
    """
    from cnnstat.analysis import Analysis, rf_dict
    from cnnstat.cli.common import load_analysis
    from cnnstat.hardware import bound, get_device
    from cnnstat.render import Bound, Column, Table, at_least, print_json, render
    from cnnstat.throughput import frame_graph, throughput_row
    from cnnstat.units import human_bytes, parse_resolution, si

    frame = parse_resolution(resolution)
    dev = get_device(device) if device else None
    rows, texts = [], []
    for model in models:
        trace = lambda m, i, r: load_analysis(m, i, r, dtype)  # noqa: E731  (PyTorch models)
        graph, tile = frame_graph(model, "tile", frame, input_, trace)
        a = Analysis(graph, dtype=dtype)
        t, mem, rf = a.totals(), a.memory(), a.receptive_field()
        need = throughput_row(a, frame, fps, 1, tile=tile)
        known_rf = rf is not None and rf.rf is not None
        row = {
            "model": a.name,
            "input": list(a.graph.input),
            "complete": a.complete,
            "incomplete": a.incomplete(),
            "params": t["params"],
            "weight_bytes": t["param_bytes"],
            "macs": t["macs"],
            "peak_activation_bytes": mem["peak_activation_bytes"],
            "rf_size": rf_dict(rf.rf)["size"] if known_rf else None,
            "rf_jump": rf_dict(rf.rf)["jump"] if known_rf else None,
            "macs_per_second": need["macs_per_second"],
        }
        if rf is not None and not known_rf:
            row["rf_unknown"] = rf.rf_unknown
        if dev:
            row["bound"] = bound(a.graph, dev, dtype, fps, need["passes_per_frame"])
            row["max_fps"] = row["bound"]["max_fps"]
        rows.append(row)
        texts.append((a.name, a.incomplete_text()))
    if fmt == "json":
        print_json(rows)
        return
    b = lambda v: human_bytes(v, binary)  # noqa: E731
    columns = [
        Column("model", "model", numeric=False),
        Column("input", "input", shape_text),
        Column("params", "params", si),
        Column(f"weights {dtype}", "weight_bytes", b),
        Column("MACs", "macs", si),
        Column(f"peak act. {dtype}", "peak_activation_bytes", b),
        Column("RF /jump", "rf_size", shape_text),
        Column(f"{shape_text(frame)}@{fps:g} MAC/s", "macs_per_second", si),
    ]
    for row in rows:
        if "rf_unknown" in row:
            row["rf_size"] = "unknown"
        else:
            row["rf_size"] = f"{shape_text(row['rf_size'])} /{row['rf_jump'][0]}" if row["rf_size"] else ""
        low = not row["complete"]  # MACs, activations: lower bounds; so fps: an upper bound
        for key in ("macs", "peak_activation_bytes", "macs_per_second"):
            row[key] = at_least(row[key], low)
        if dev and low:
            row["max_fps"] = Bound(row["max_fps"], upper=True)
    columns[6] = Column("RF /jump", "rf_size", str)
    if dev:
        columns.append(Column(f"max fps on {dev.name}", "max_fps", lambda v: f"{v:.1f}"))
    table = Table(title=f"{len(rows)} models, {dtype}", columns=columns, rows=rows)
    table.notes.append(
        "MACs per image at the model's input; MAC/s to cover the frame with tiles (no overlap)."
    )
    if dev:
        table.notes.append(f"max fps: roofline bound on {dev.name} (a bound, not a measurement).")
    for name, text in texts:
        if text:
            table.notes.append(f"{name}: ≥ / ≤: bounds; MACs unknown (counted 0) for {text}.")
    render(table, fmt)
