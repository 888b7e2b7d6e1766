"""``cnnstat explain MODEL [LAYER]``: a layer's arithmetic step by step, or the whole network as
a Markdown teaching sheet."""

from __future__ import annotations

import click

from cnnstat.cli.common import binary_option, dtype_option, input_option, torch_options

FORMATS = ("text", "markdown", "json")


@click.command("explain", short_help="A layer's arithmetic step by step, or the network as a sheet.")
@click.argument("model")
@click.argument("layer", required=False)
@input_option
@click.option("--resolution", metavar="WxH", help="Override the input's width and height, e.g. 1920x1080.")
@dtype_option("Storage type of the activations (their bytes).")
@binary_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="text (a LAYER's default), markdown (the whole network's default) or json (the steps as data).",
)
@click.option(
    "-o", "--output", metavar="FILE", help="Write to FILE (atomically) instead of stdout ('-': stdout)."
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Every layer's section (past 300 layers the sheet shows the first 200 and the last 50).",
)
@torch_options
def command(model, layer, input_, resolution, dtype, binary, fmt, output, show_all):
    """The arithmetic of LAYER step by step, as a teacher writes it on the board, with the
    model's own numbers: input shape, output size per axis, weights, biases, MACs, the
    receptive field's step and the output's memory. Every value is the analysis' own (each op
    explains its formula with the figures its handler computed).

    Without LAYER, the whole network as a Markdown teaching sheet: a short derivation per
    layer, then the totals reconciled with cnnstat's; past 300 layers the first 200 sections
    and the last 50 (--all: every one). LAYER is a name as 'cnnstat summary MODEL' shows it.

    \b
    Example:
      cnnstat explain alexnet conv1
      cnnstat explain vgg16 -o vgg16.md
    """
    from cnnstat import explain as E
    from cnnstat.cli.common import load_analysis

    output = None if output == "-" else output
    if output is not None:
        from cnnstat.files import check_writable

        check_writable(output)  # a file that cannot be written: exit 2 before any work
    a = load_analysis(model, input_, resolution, dtype)
    shape = a.graph.input if (input_ or resolution) else None
    ctx = E.context(_spec(model), shape, dtype, size=len(a.layers))
    if layer is not None:
        explained = [E.explain_layer(a, E.find_layer(a, layer), ctx)]
    else:
        explained = E.explain_shown(a, ctx, show_all)
    fmt = fmt or ("text" if layer is not None else "markdown")
    if fmt == "json":
        chunks = E.json_chunks(a, explained, ctx, whole=layer is None, model=model)
    elif fmt == "markdown" and layer is None:
        chunks = E.sheet_chunks(a, explained, ctx, binary, model)
    elif fmt == "markdown":
        chunks = [E.layer_markdown(a, explained[0], binary, 1).rstrip("\n") + "\n"]
    else:
        chunks = _text_chunks(a, explained, binary, model)
    _write(chunks, output)


def _text_chunks(a, explained, binary: bool, model: str):
    """The text form: each layer's lines, a blank line between; a line where layers are left
    out."""
    from cnnstat import explain as E

    sep = ""
    for ex in explained:
        if isinstance(ex, E.Hidden):
            text = (
                f"... {ex.count:,} more layers ({ex.first:,} to {ex.last:,} of {len(a.layers):,}) not shown: "
                f"'cnnstat explain {E.cut(model, 100)} LAYER' explains one, --all every one."
            )
        else:
            text = E.layer_text(a, ex, binary)
        yield sep + text
        sep = "\n\n"
    yield "\n"


def _spec(model: str):
    """The spec of a zoo name or spec file (for its comments and sibling models); None for a
    PyTorch or ONNX model."""
    from cnnstat.torch import is_reference

    if is_reference(model) or model.endswith(".onnx"):
        return None
    from cnnstat.zoo import load

    return load(model)


def _write(chunks, output: str | None) -> None:
    """To stdout as the chunks are made, or atomically to ``output`` (the old file or the new
    one, whole; nothing left when an error stops it); control characters from names and
    comments shown as escapes either way (a file is read in a terminal too)."""
    from cnnstat.render import visible

    shown = (visible(chunk, newlines=True) for chunk in chunks)
    if output is None:
        for text in shown:
            click.echo(text, nl=False)
        return
    from cnnstat.cli.common import warn
    from cnnstat.files import write_atomic

    write_atomic(output, (text.encode("utf-8") for text in shown), "file")
    warn(f"wrote {output}")
