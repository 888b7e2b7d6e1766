"""``cnnstat compare MODEL MODEL...``: models side by side."""

from __future__ import annotations

import click

from cnnstat.cli.common import (
    dtype_option,
    format_option,
    fps_option,
    input_option,
    shape_text,
    torch_options,
)


@click.command("compare", short_help="Models side by side: params, MACs, memory, receptive field, MAC/s.")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option(
    "--resolution",
    default="1920x1080",
    show_default=True,
    metavar="WxH",
    help="Frame for the throughput need (tile mode).",
)
@fps_option("Frames per second for the throughput need.")
@dtype_option("Storage type of weights and activations (bytes, device rate).")
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
    from cnnstat.errors import CnnstatError
    from cnnstat.hardware import bound, get_device
    from cnnstat.render import Bound, Column, Table, at_least, print_json, render
    from cnnstat.throughput import default_tile, throughput_row
    from cnnstat.units import human_bytes, parse_resolution, si

    frame = parse_resolution(resolution)
    dev = get_device(device) if device else None
    rows, texts = [], []
    for model in models:
        graph, overridden = _graph(model, input_, dtype, load_analysis)
        a = Analysis(graph, dtype=dtype)
        t, mem, rf = a.totals(), a.memory(), a.receptive_field()
        try:  # a model without a [C, H, W] or [C, D, H, W] input does not tile a frame
            tile, no_throughput = default_tile(graph, overridden), None
        except CnnstatError as exc:
            tile, no_throughput = None, str(exc)
        need = throughput_row(a, frame, fps, 1, tile=tile) if tile else None
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
            "macs_per_second": need["macs_per_second"] if need else None,
        }
        if rf is not None and not known_rf:
            row["rf_unknown"] = rf.rf_unknown
        if no_throughput:
            row["no_throughput"] = no_throughput
        if dev and need:
            row["bound"] = bound(a.graph, dev, dtype, fps, need["passes_per_frame"])
            row["max_fps"] = row["bound"]["max_fps"]
        elif dev:
            row["bound"] = row["max_fps"] = None
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
        Column("RF /jump", "rf_size", str),
        Column("MAC/s", "macs_per_second", si),
    ]
    for row in rows:
        if "rf_unknown" in row:
            row["rf_size"] = "unknown"
        else:
            row["rf_size"] = f"{shape_text(row['rf_size'])} /{row['rf_jump'][0]}" if row["rf_size"] else ""
        low = not row["complete"]  # MACs, activations: lower bounds; so fps: an upper bound
        for key in ("macs", "peak_activation_bytes", "macs_per_second"):
            row[key] = at_least(row[key], low)
        if dev and low and row["max_fps"] is not None:
            row["max_fps"] = Bound(row["max_fps"], upper=True)
    if dev:
        columns.append(Column("max fps", "max_fps", lambda v: f"{v:.1f}"))
    table = Table(title=f"{len(rows)} models, {dtype}", columns=columns, rows=rows)
    table.notes.append(
        f"MACs per image at the model's input; MAC/s to cover {shape_text(frame)} frames at {fps:g} fps "
        "with tiles (no overlap)."
    )
    if dev:
        table.notes.append(f"max fps: roofline bound on {dev.name} (a bound, not a measurement).")
    for row in rows:
        if row.get("no_throughput"):
            reason = row["no_throughput"].removeprefix(f"{row['model']}: ")
            table.notes.append(f"{row['model']}: no MAC/s{' or max fps' if dev else ''}: {reason}.")
    for name, text in texts:
        if text:
            table.notes.append(f"{name}: ≥ / ≤: bounds; MACs unknown (counted 0) for {text}.")
    render(table, fmt)


def _graph(model, input_, dtype, load_analysis) -> tuple:
    """(graph at the model's input, whether --input overrides the spec's) for a zoo name,
    a spec path or a PyTorch model."""
    from cnnstat.spec.build import build
    from cnnstat.torch import is_reference
    from cnnstat.zoo import load

    if is_reference(model) or model.endswith(".onnx"):  # a PyTorch or ONNX model
        return load_analysis(model, input_, None, dtype).graph, True
    spec = load(model)
    shape = spec.input_at(input_)
    return build(spec, shape), shape is not None
