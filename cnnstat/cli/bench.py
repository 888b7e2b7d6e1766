"""``cnnstat bench MODEL``: the model measured on this machine beside cnnstat's analytical bound.

The measuring is :mod:`cnnstat.bench` (no click, no rich); this module reads the options,
loads the analysis as ``flops`` does (one :func:`cnnstat.throughput.frame_graph`), shows the
progress on stderr and renders the report."""

from __future__ import annotations

import click

from cnnstat.cli.common import fps_option, input_option, shape_text, torch_options, wide_option

LAYOUTS = {"auto": "auto", "contiguous": "contiguous", "channels-last": "channels_last"}


@click.command("bench", short_help="Measured latency, throughput and memory beside the bound.")
@click.argument("model", required=False)
@click.option(
    "--on",
    "on",
    default="cpu",
    show_default=True,
    metavar="cpu|cuda|cuda:N",
    help="Where to run: the CPU or a CUDA device.",
)
@click.option("--resolution", default="1920x1080", show_default=True, metavar="WxH", help="Frame size.")
@fps_option("Frames per second required (pass or fail).")
@input_option
@click.option(
    "--mode",
    type=click.Choice(["tile", "frame"]),
    default="tile",
    show_default=True,
    help="tile: the network's input tiled over the frame; frame: the network on the whole frame.",
)
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default="fp32",
    show_default=True,
    help="Weights and activations.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 65536),
    default=1,
    show_default=True,
    help="Images per call (latency per image = per call / batch).",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 100_000),
    help="Timed calls [default: at least 10 and 1 s, at most 20 s once 3 are done].",
)
@click.option(
    "--warmup", type=click.IntRange(0, 100_000), default=3, show_default=True, help="Untimed calls."
)
@click.option(
    "--layout",
    type=click.Choice(list(LAYOUTS)),
    default="auto",
    show_default=True,
    help="Memory format of 4-D/5-D inputs and weights; auto: the faster in a short probe.",
)
@click.option(
    "--threads", type=click.IntRange(1, 4096), help="CPU threads for torch [default: torch's, all cores]."
)
@click.option("--compile", "compile_", is_flag=True, help="Measure with torch.compile as well.")
@click.option(
    "--device",
    help="Bound on a device: a preset (cnnstat devices), a name in ./cnnstat.toml, or a FILE.toml.",
)
@click.option(
    "--calibrate", is_flag=True, help="Measure this machine (matmul, copy) into a device file (-o)."
)
@click.option("-o", "--output", metavar="FILE.toml", help="--calibrate: the device file to write.")
@click.option("--name", help="--calibrate: the device's name [default: the file's name without .toml].")
@torch_options
@wide_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output.",
)
def command(threads, **options):
    """Run MODEL on this machine and report what was measured beside cnnstat's figures.

    The model is a spec built with random weights, or a PyTorch model (torchvision:NAME,
    file.py:Class). After a warm-up, calls are timed: median and p90 latency per image and
    per frame, fps against --fps, MAC/s and bytes/s (against the --device bound), and peak
    memory against cnnstat's static estimate. Tile and frame mode are those of cnnstat flops.

    \b
    Example:
      cnnstat bench resnet50 --on cuda --dtype fp16 --device h100-sxm
      cnnstat bench mobilenet_v2 --mode frame --resolution 1280x720
      cnnstat bench --calibrate -o mydevice.toml
    """
    previous = None
    if threads:  # for this command only (tests run many in one process)
        from cnnstat.bench.measure import require_torch

        torch = require_torch()
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        _command(**options)
    finally:
        if previous:
            torch.set_num_threads(previous)


def _command(
    model,
    on,
    resolution,
    fps,
    input_,
    mode,
    dtype,
    batch,
    runs,
    warmup,
    layout,
    compile_,
    device,
    calibrate,
    output,
    name,
    fmt,
):
    from cnnstat.errors import CnnstatError

    if calibrate:
        if model:
            raise CnnstatError("--calibrate measures the machine, not a MODEL: give one or the other")
        _calibrate(on, output, name, fmt)
        return
    if output or name:
        raise CnnstatError("-o and --name apply to --calibrate")
    if not model:
        raise CnnstatError("give a MODEL to bench (or --calibrate -o FILE.toml)")
    doc = _bench(
        model, on, resolution, fps, input_, mode, dtype, batch, runs, warmup, layout, compile_, device, fmt
    )
    if fmt == "json":
        from cnnstat.render import print_json

        print_json(doc)
        return
    _render(doc)


def _bench(
    model, on, resolution, fps, input_, mode, dtype, batch, runs, warmup, layout, compile_, device, fmt
):
    """Measure; the JSON document."""
    from cnnstat.analysis import Analysis
    from cnnstat.bench import measure as m
    from cnnstat.bench.report import device_bound, static_memory, variant_result
    from cnnstat.cli.common import load_analysis
    from cnnstat.errors import CnnstatError
    from cnnstat.hardware import get_device
    from cnnstat.throughput import frame_graph, throughput_row
    from cnnstat.units import parse_resolution

    frame = parse_resolution(resolution)
    if mode == "frame" and input_:
        raise CnnstatError("--input sets the tile (--mode tile); frame mode runs at --resolution")
    if model.endswith(".onnx"):
        raise CnnstatError("bench runs PyTorch modules: an ONNX file is analyzed, not run (try onnxruntime)")
    dev = get_device(device) if device else None
    if dev is not None:
        dev.peak(dtype)  # a device without a figure for the dtype: said before measuring
    tdev = m.torch_device(on)
    m.check_dtype(tdev, dtype)

    trace = lambda mdl, i, r: load_analysis(mdl, i, r, dtype, batch)  # noqa: E731  (PyTorch models)
    graph, tile = frame_graph(model, mode, frame, input_, trace)
    analysis = Analysis(graph, dtype=dtype, batch=batch)
    if mode == "frame":
        row = throughput_row(analysis, frame, fps, 1, mode="frame")
    else:
        row = throughput_row(analysis, frame, fps, 1, tile=tile)
    bound = device_bound(analysis, row, dev, fps) if dev else None
    static = static_memory(analysis)
    needed = _needed_text(static, analysis)
    free = m.available_memory(tdev)
    if free is not None and static["total_bytes"] > free:
        from cnnstat.units import human_bytes

        raise m.OutOfMemory(
            f"{analysis.name} does not fit in memory on {tdev}: it needs {needed}; "
            f"{human_bytes(free)} is free"
        )

    progress, display = _progress(fmt)
    with display:
        try:
            module = m.build_module(model, graph, tdev, _kwargs())
        except CnnstatError:
            raise
        except Exception as exc:
            if m.is_oom(exc):
                m.release(tdev)
                raise m.OutOfMemory(
                    f"{analysis.name} does not fit in memory on {tdev}: it needs {needed}"
                ) from None
            raise
        timing = m.measure(
            module,
            tuple(graph.input),
            tdev,
            dtype,
            batch,
            name=analysis.name,
            needed=needed,
            warmup=warmup,
            runs=runs,
            layout=LAYOUTS[layout],
            compile=compile_,
            progress=progress,
        )
    results = []
    for v in timing["variants"]:
        results.append(v if "error" in v else {**variant_result(v, analysis, row, fps, bound), **_extra(v)})
    keep = (
        "resolution",
        "fps",
        "mode",
        "tiling",
        "tile",
        "tiles",
        "clip_frames",
        "passes_per_frame",
        "macs_per_frame",
    )
    return {
        "model": analysis.name,
        "on": m.describe(tdev),
        "input": list(graph.input),
        "batch": batch,
        "dtype": dtype,
        **{k: row[k] for k in keep if k in row},
        "macs_per_image": analysis.totals()["macs"] // batch,
        "bytes_moved_per_call": _moved(analysis),
        "complete": analysis.complete,
        "incomplete": analysis.incomplete(),
        "timer": "torch.cuda.Event" if tdev.type == "cuda" else "time.perf_counter",
        "layout": timing["layout"],
        "first_call_s": timing["first_call_s"],
        "static_memory": static,
        "bound": bound,
        "results": results,
    }


def _extra(v: dict) -> dict:
    return {"compile_s": v["compile_s"]} if "compile_s" in v else {}


def _moved(analysis) -> int:
    from cnnstat.bench.report import bytes_moved_per_call

    return bytes_moved_per_call(analysis)


def _needed_text(static: dict, analysis) -> str:
    from cnnstat.units import human_bytes

    weights = static["param_bytes"] + static["buffer_bytes"]
    return (
        f"{human_bytes(static['total_bytes'])} by cnnstat's static estimate (weights "
        f"{human_bytes(weights)} + peak activations {human_bytes(static['peak_activation_bytes'])} "
        f"at batch {analysis.batch}, {analysis.dtype})"
    )


def _kwargs() -> dict:
    from cnnstat.torch.load import parse_kwargs

    ctx = click.get_current_context(silent=True)
    return parse_kwargs(ctx.meta.get("cnnstat.kwargs")) if ctx else {}


def _progress(fmt: str):
    """(callback, context manager): a transient rich progress bar on stderr when it is a
    terminal and the output is a table; else nothing."""
    import contextlib
    import sys

    if fmt == "json" or not sys.stderr.isatty():
        return None, contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return update, bar


# --- the table ---------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _rows(doc: dict) -> list:
    """(what, {variant: text}, reference, note) for every line of the table."""
    from cnnstat.units import human_bytes, si

    results = [r for r in doc["results"] if "error" not in r]
    b, low = doc["bound"], not doc["complete"]
    ge = "≥ " if low else ""

    def each(f):
        return {r["variant"]: f(r) for r in results}

    passes, clip = doc["passes_per_frame"], doc.get("clip_frames")
    per_frame = f"x {passes:.2f} tiles" if doc["mode"] == "tile" else "frame mode: one pass"
    if clip:  # a video model: one clip per `clip` frames
        per_frame = f"x {passes:.4g} ({doc.get('tiles', 1):.2f} passes per clip of {clip} frames)"
    bref = (lambda key: _ms(b[key])) if b else (lambda key: "")
    rows = [
        (
            "latency / image, median",
            each(lambda r: _ms(r["per_image_s"]["median"])),
            bref("latency_per_image_s"),
            "",
        ),
        ("latency / image, p90", each(lambda r: _ms(r["per_image_s"]["p90"])), "", ""),
        (
            "latency / frame, median",
            each(lambda r: _ms(r["per_frame_s"]["median"])),
            bref("latency_s"),
            per_frame,
        ),
        ("latency / frame, p90", each(lambda r: _ms(r["per_frame_s"]["p90"])), "", ""),
        (
            "fps",
            each(lambda r: f"{r['fps']:.2f} {'pass' if r['meets_fps'] else 'fail'}"),
            f"{doc['fps']:g} asked",
            f"bound: at most {b['max_fps']:.1f}" if b else "",
        ),
        (
            "MAC/s",
            each(lambda r: ge + si(r["macs_per_second"])),
            si(b["peak_macs_per_second"]) if b else "",
            "",
        ),
        (
            "bytes/s (cnnstat's count)",
            each(lambda r: human_bytes(r["bytes_per_second"]) + "/s"),
            human_bytes(b["bandwidth"]) + "/s" if b else "",
            "",
        ),
    ]
    if b:
        rows += [
            ("MAC/s / peak", each(lambda r: ge + _pct(r["efficiency"]["compute"])), "", "compute efficiency"),
            ("bytes/s / bandwidth", each(lambda r: _pct(r["efficiency"]["bandwidth"])), "", ""),
            (
                "bound / measured latency",
                each(lambda r: _pct(r["efficiency"]["roofline"])),
                "",
                "how close to the roofline",
            ),
        ]
    static = doc["static_memory"]
    gpu = doc["on"]["on"].startswith("cuda")

    def mem(key):
        return each(lambda r: human_bytes(r["memory"][key]) if r["memory"].get(key) is not None else "-")

    rows.append(
        (
            "peak tensor memory",
            mem("tensor_peak_bytes"),
            ge + human_bytes(static["peak_activation_bytes"]),
            "live tensors in one call (input incl.) vs static peak activations",
        )
    )
    if gpu:
        rows.append(
            (
                "peak allocated",
                mem("peak_bytes"),
                human_bytes(static["total_bytes"]),
                "weights incl., vs static total",
            )
        )
    else:
        rows.append(
            ("peak RSS growth", mem("peak_bytes"), "", "the process: allocator, libraries, workspaces")
        )
    return rows


def _render(doc: dict) -> None:
    from cnnstat.render import Column, Table, render

    variants = [r["variant"] for r in doc["results"] if "error" not in r]
    on = doc["on"]
    threads = on.get("threads")
    where = f"{on['on']} ({on['name']}" + (f", {threads} thread{'s' * (threads > 1)})" if threads else ")")
    layout = doc["layout"]["used"].replace("_", "-")
    title = (
        f"{doc['model']} on {where}, {doc['dtype']}, batch {doc['batch']}, "
        f"input {shape_text(doc['input'])}, {layout}"
    )
    columns = [Column("", "what", numeric=False)]
    columns += [Column("measured" if v == "eager" and len(variants) == 1 else v, v) for v in variants]
    columns += [Column("bound / estimate", "ref"), Column("", "note", numeric=False, wrap=True)]
    table = Table(title=title, columns=columns)
    for what, values, ref, note in _rows(doc):
        table.rows.append({"what": what, **values, "ref": ref, "note": note})
    table.notes += _notes(doc)
    render(table, "table")


def _notes(doc: dict) -> list:
    from cnnstat.units import human_bytes, si

    results = doc["results"]
    eager = results[0]
    frame = shape_text(doc["resolution"])
    notes = [
        f"Timed: {eager['runs']} calls after {eager['warmup']} warm-up calls (and a first call and the "
        f"layout probe), each by {doc['timer']}, under torch.inference_mode; random weights.",
    ]
    lay = doc["layout"]
    if lay["probe_s"]:
        probe = ", ".join(f"{k.replace('_', '-')} {_ms(v)}" for k, v in lay["probe_s"].items())
        notes.append(
            f"Layout: {lay['used'].replace('_', '-')}, the faster in the probe (fastest call: {probe})."
        )
    else:
        notes.append(f"Layout: {lay['used'].replace('_', '-')} ({lay['why']}).")
    if doc["mode"] == "tile":
        notes.append(
            f"Tile mode: {frame} covered by {doc['tiles']:.2f} tiles of {shape_text(doc['tile'])} "
            "(frame area / tile area, as cnnstat flops); latency per frame = per image x tiles"
            + (
                f" / {doc['clip_frames']} (one clip per {doc['clip_frames']} frames)."
                if "clip_frames" in doc
                else "."
            )
        )
    else:
        notes.append(
            f"Frame mode: the network runs on the whole {frame} frame (input {shape_text(doc['input'])})."
        )
    notes.append(f"fps = 1 / median latency per frame; pass when at least {doc['fps']:g}.")
    notes.append(
        f"MAC/s = MACs per image (cnnstat: {si(doc['macs_per_image'])}) / median latency per image; "
        "1 MAC = one multiply-accumulate (bias adds are not MACs)."
    )
    notes.append(
        f"bytes/s = cnnstat's bytes moved per call ({human_bytes(doc['bytes_moved_per_call'])}: every "
        f"layer's inputs, output, weights at {doc['dtype']}, no cache reuse) / median latency per call; a "
        "count, not a measured traffic. MB = 10^6 bytes."
    )
    b = doc["bound"]
    if b:
        notes.append(
            f"Bound: roofline lower bound on {b['device']} ({b['description']}) at {doc['dtype']}, as "
            "cnnstat flops --device: per layer max(MACs / peak, bytes / bandwidth), summed."
        )
    else:
        notes.append(
            "No bound: --device NAME (a preset, ./cnnstat.toml, or a file of bench --calibrate) gives one."
        )
    mem, s = eager["memory"], doc["static_memory"]
    weights = human_bytes(s["param_bytes"] + s["buffer_bytes"])
    notes.append(
        "Peak tensor memory: live tensor bytes in one more call, each storage counted from the operator that "
        "makes it to the death of its last tensor (a TorchDispatchMode), beside cnnstat's static peak of "
        f"activations (at {s['peak_at']}); weights ({weights}) apart."
    )
    if doc["on"]["on"].startswith("cuda"):
        notes.append(
            "Peak allocated: torch.cuda.max_memory_allocated over the timed runs (weights, input, "
            f"activations, workspaces) beside cnnstat's static total: weights {weights} + peak activations."
        )
    elif mem["peak_bytes"] is None:
        notes.append(f"Peak RSS growth: not measured: {mem['reason']}.")
    else:
        notes.append(
            "Peak RSS growth: the process' peak resident set (VmHWM) from the first call to the end of the "
            "timed runs, over the resident set before it (weights and input resident): tensors, the "
            "allocator's retained memory, kernels' workspaces and reordered weights, libraries the first "
            "call loads."
        )
    for r in results:
        if "error" in r:
            notes.append(f"{r['variant']}: {r['error']}.")
        elif "compile_s" in r:
            notes.append(
                f"{r['variant']}: torch.compile (default mode); its first call took {r['compile_s']:.1f} s."
            )
    if not doc["complete"]:
        from cnnstat.analysis import incomplete_text

        notes.append(
            f"≥: MACs unknown (counted 0) for {incomplete_text(doc['incomplete'])}: MAC/s is a lower bound."
        )
    load = doc["on"].get("load_average")
    if load is not None:
        notes.append(f"Load average at the start: {load:.2f} (other processes share the CPU's cores).")
    return notes


# --- --calibrate -------------------------------------------------------------------------


def _calibrate(on, output, name, fmt):
    import datetime
    import os

    from cnnstat.bench import measure as m
    from cnnstat.bench.calibrate import calibrate, device_toml
    from cnnstat.errors import CnnstatError, brief
    from cnnstat.files import write_atomic
    from cnnstat.hardware import device_file

    if not output:
        raise CnnstatError("--calibrate needs -o FILE.toml, the device file to write")
    if not output.endswith(".toml"):
        raise CnnstatError(
            f"-o {brief(output)}: a device file's name ends with .toml (--device reads it by that)"
        )
    name = name or os.path.basename(output)[: -len(".toml")]
    if not name:
        raise CnnstatError("--name: the device needs a name")
    tdev = m.torch_device(on)
    progress, display = _progress(fmt)
    with display:
        result = calibrate(tdev, progress=progress)
    if not result["matmul"]:
        raise CnnstatError(f"no dtype could be measured on {tdev}: {result['skipped']}")
    when = datetime.date.today().isoformat()
    write_atomic(output, device_toml(name, result, when).encode(), "device file")
    dev = device_file(output)  # read back as flops --device reads it
    if fmt == "json":
        from cnnstat.render import print_json

        print_json({**result, "name": dev.name, "path": output})
        return
    _render_calibration(result, dev, output)


def _render_calibration(result, dev, output):
    from cnnstat.render import Column, Table, render
    from cnnstat.units import human_bytes, si

    on = result["device"]
    rows = [
        {
            "what": f"matmul {d}",
            "size": f"{r['n']}x{r['n']}",
            "time": _ms(r["seconds"]),
            "rate": si(dev.macs[d]) + " MAC/s",
        }
        for d, r in result["matmul"].items()
    ]
    c = result["copy"]
    rows.append(
        {
            "what": "copy",
            "size": human_bytes(c["bytes"]),
            "time": _ms(c["seconds"]),
            "rate": human_bytes(dev.bandwidth) + "/s",
        }
    )
    table = Table(
        title=f"{dev.name}: {on['on']} ({on['name']}), measured",
        columns=[
            Column("", "what", numeric=False),
            Column("size", "size"),
            Column("median time", "time"),
            Column("rate", "rate"),
        ],
        rows=rows,
    )
    table.notes.append(
        "matmul: n x n by n x n = n^3 MACs / median time; copy: 2 x size (read + write) / median time."
    )
    for d, why in result["skipped"].items():
        table.notes.append(f"{d}: not measured ({why}).")
    table.notes.append(f"Wrote {output}: cnnstat flops MODEL --device {output} bounds on it.")
    render(table, "table")
