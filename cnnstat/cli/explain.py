"""``cnnstat explain MODEL [LAYER]``: a layer's arithmetic step by step, or the whole network as
a Markdown teaching sheet."""

from __future__ import annotations

import click

from cnnstat.cli.common import input_option, torch_options
from cnnstat.units import DTYPE_BITS

FORMATS = ("text", "markdown", "json")


@click.command("explain", short_help="A layer's arithmetic step by step, or the network as a sheet.")
@click.argument("model")
@click.argument("layer", required=False)
@input_option
@click.option("--resolution", metavar="WxH", help="Override the input's width and height, e.g. 1920x1080.")
@click.option(
    "--dtype",
    type=click.Choice(list(DTYPE_BITS)),
    default="fp32",
    show_default=True,
    help="Storage type of the activations (their bytes).",
)
@click.option("--binary", is_flag=True, help="Bytes in MiB (2^20) instead of MB (10^6).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="text (a LAYER's default), markdown (the whole network's default) or json (the steps as data).",
)
@click.option("-o", "--output", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
@torch_options
def command(model, layer, input_, resolution, dtype, binary, fmt, output):
    """The arithmetic of LAYER step by step, as a teacher writes it on the board, with the
    model's own numbers: input shape, output size per axis, weights, biases, MACs, the
    receptive field's step and the output's memory. Every value is the analysis' own (each op
    explains its formula with the figures its handler computed).

    Without LAYER, the whole network as a Markdown teaching sheet: a short derivation per
    layer, then the totals reconciled with cnnstat's. LAYER is a name as 'cnnstat summary
    MODEL' shows it.

    \b
    Example:
      cnnstat explain alexnet conv1
      cnnstat explain vgg16 -o vgg16.md
    """
    from cnnstat import explain as E
    from cnnstat.cli.common import load_analysis

    a = load_analysis(model, input_, resolution, dtype)
    ctx = E.context(_spec(model), a.graph.input if (input_ or resolution) else None, dtype)
    if layer is not None:
        explained = [E.explain_layer(a, E.find_layer(a, layer), ctx)]
    else:
        explained = E.explain_all(a, ctx)
    fmt = fmt or ("text" if layer is not None else "markdown")
    if fmt == "json":
        _json(E.to_dict(a, explained, ctx, whole=layer is None), output)
        return
    if fmt == "markdown":
        text = (
            E.sheet(a, explained, ctx, binary)
            if layer is None
            else E.layer_markdown(a, explained[0], binary, 1)
        )
    else:
        text = "\n\n".join(E.layer_text(a, ex, binary) for ex in explained)
    _write(text.rstrip("\n") + "\n", output)


def _spec(model: str):
    """The spec of a zoo name or spec file (for its comments and sibling models); None for a
    PyTorch or ONNX model."""
    from cnnstat.torch import is_reference

    if is_reference(model) or model.endswith(".onnx"):
        return None
    from cnnstat.zoo import load

    return load(model)


def _json(doc: dict, output: str | None) -> None:
    from cnnstat.render import print_json

    if output is None:
        print_json(doc)
        return
    import json

    from cnnstat.render import finite_json

    _write(json.dumps(finite_json(doc), indent=2, allow_nan=False) + "\n", output)


def _write(text: str, output: str | None) -> None:
    """To stdout, or atomically to ``output``; control characters from names and comments
    shown as escapes either way (a file is read in a terminal too)."""
    from cnnstat.render import visible

    text = visible(text, newlines=True)
    if output is None:
        click.echo(text, nl=False)
        return
    from cnnstat.cli.common import warn
    from cnnstat.cli.snapshot import write_atomic

    write_atomic(output, text.encode("utf-8"), "file")
    warn(f"wrote {output}")
