"""``cnnstat memory MODEL``: weights, peak activation memory, and a training estimate."""

from __future__ import annotations

import click

from cnnstat.cli.common import load_analysis, model_options, shape_text


@click.command("memory", short_help="Weights, peak activation memory and a training estimate.")
@model_options(analysis=True)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "momentum", "adam"]),
    default="adam",
    show_default=True,
    help="Optimizer state per parameter: none, 1 (momentum) or 2 (Adam's moments).",
)
def command(model, input_, resolution, batch, dtype, binary, fmt, optimizer):
    """Memory of MODEL: weights, peak activations in inference and where, training estimate.

    \b
    Example:
      cnnstat memory resnet50 --batch 32 --dtype fp16
    """
    from cnnstat.render import Column, Table, at_least, print_json, render
    from cnnstat.units import human_bytes

    a = load_analysis(model, input_, resolution, dtype, batch)
    m = a.memory(optimizer)
    if fmt == "json":
        doc = {"model": a.name, "input": list(a.graph.input), "batch": a.batch, "dtype": a.dtype}
        print_json({**doc, "complete": a.complete, "incomplete": a.incomplete(), "memory": m})
        return
    t = m["training"]
    low = not a.complete  # activations inside calls cnnstat has no op for are not seen
    rows = [
        {"what": "weights + biases", "bytes": m["param_bytes"], "note": ""},
        {
            "what": "peak activations (inference)",
            "bytes": at_least(m["peak_activation_bytes"], low),
            "note": f"at {m['peak_at']}",
        },
        {
            "what": "sum of all activations",
            "bytes": at_least(m["activation_bytes_sum"], low),
            "note": "for comparison: nothing freed, nothing in place",
        },
        {"what": "training: weights", "bytes": t["weights"], "note": ""},
        {"what": "training: gradients", "bytes": t["gradients"], "note": ""},
        {"what": f"training: {optimizer} state", "bytes": t["optimizer_state"], "note": ""},
        {
            "what": "training: stored activations",
            "bytes": at_least(t["activations"], low),
            "note": "kept for backward",
        },
        {"what": "training: total", "bytes": at_least(t["total"], low), "note": ""},
    ]
    table = Table(
        title=f"{a.name}: memory at input {shape_text(a.graph.input)}, batch {a.batch}, {a.dtype}",
        columns=[
            Column("", "what", numeric=False),
            Column("bytes", "bytes", lambda v: human_bytes(v, binary)),
            Column("", "note", numeric=False, wrap=True),
        ],
        rows=rows,
    )
    table.notes.append(
        "Inference: tensors freed after their last reader; in-place ops (ReLU after conv, "
        "out += identity) and views (flatten) share storage. Training: every activation stored "
        f"in the forward pass; all at {a.dtype}."
    )
    if low:
        table.notes.append(
            f"≥: a lower bound. What happens inside {a.incomplete_text()} is unknown to cnnstat: "
            "their outputs are counted, their intermediate tensors are not."
        )
    render(table, fmt)
