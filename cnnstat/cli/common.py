"""Options shared by commands, model loading, and the single ``abort()`` exit path."""

from __future__ import annotations

import re
import sys
from fractions import Fraction

import click

from cnnstat.errors import CnnstatError
from cnnstat.units import DTYPE_BITS

FORMATS = ("table", "json", "csv", "markdown")
MAX_FPS = 1_000_000  # frames per second an option or a budget may give


class FiniteFloat(click.ParamType):
    """A finite number in [low, high] (``low`` excluded when ``open_low``): NaN, infinities
    and 1e308 are refused (click's FloatRange lets NaN through)."""

    name = "number"

    def __init__(self, low: float, high: float, open_low: bool = False):
        self.low, self.high, self.open_low = low, high, open_low

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{_quoted(value)} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{_quoted(value)} is not a finite number", param, ctx)
        below = number <= self.low if self.open_low else number < self.low
        if below or number > self.high:
            side = ">" if self.open_low else ">="
            bounds = f"it must be {side} {self.low:g} and <= {self.high:g}"
            self.fail(f"{_quoted(value)} is out of range: {bounds}", param, ctx)
        return number


def _quoted(value) -> str:
    from cnnstat.errors import brief

    return brief(str(value))


def abort(error, code: int = 2):
    """Print one error message on stderr and exit (2: usage/spec error)."""
    text = str(error) + batch_hint(str(error))
    if not text.startswith("error:") and ": error: " not in text.split("\n", 1)[0]:
        text = f"error: {text}"
    from cnnstat.render import visible

    click.echo(visible(text, newlines=True), err=True)  # a terminal shows, never obeys, a name
    sys.exit(getattr(error, "exit_code", code))


def warn(*lines: str) -> None:
    """Warnings and notes on stderr, each line shown, never obeyed, by the terminal: names in
    them come from models and files (control characters escaped, cut at 2,000 characters)."""
    from cnnstat.render import visible

    for line in lines:
        click.echo(visible(line, limit=2000), err=True)


def batch_hint(message: str) -> str:
    """For an --input with one dimension too many (1x3x224x224: a batch in front), where the
    batch goes; '' otherwise."""
    ctx = click.get_current_context(silent=True)
    given = ctx.meta.get("cnnstat.input") if ctx else None
    if not given:
        return ""
    dims = given.lower().split("x")
    m = re.search(r"has (\d+) dimensions; .* takes (\d+) ", message)
    one_too_many = m and int(m.group(1)) == int(m.group(2)) + 1
    torch_batch = f"fails at input {given}" in message and len(dims) >= 4  # a PyTorch forward
    too_long = f"malformed input '{given}'" in message and len(dims) == 5  # a video clip's batch
    if not (one_too_many or torch_batch or too_long):
        return ""
    sample = "x".join(dims[1:])
    if ctx.meta.get("cnnstat.has_batch"):
        return f". --input is one sample; the batch is --batch: --input {sample} --batch {dims[0]}"
    return f". --input is one sample, without the batch: --input {sample}"


def _keep_input(ctx, param, value):
    """--input also waits in ctx.meta (shared with the group's context), for batch_hint."""
    ctx.meta["cnnstat.input"] = value
    ctx.meta["cnnstat.has_batch"] = any(p.name == "batch" for p in ctx.command.params)
    return value


def dtype_option(help_text: str):
    """``--dtype`` among every type cnnstat knows (fp32 by default), ``help_text`` saying what
    it sets in this command."""
    return click.option(
        "--dtype",
        type=click.Choice(list(DTYPE_BITS)),
        default="fp32",
        show_default=True,
        help=help_text,
    )


def fps_option(help_text: str):
    """``--fps``: a finite rate above 0 and at most MAX_FPS, 30 by default."""
    return click.option(
        "--fps",
        type=FiniteFloat(0, MAX_FPS, open_low=True),
        default=30,
        show_default=True,
        help=help_text,
    )


def binary_option(f):
    return click.option("--binary", is_flag=True, help="Bytes in MiB (2^20) instead of MB (10^6).")(f)


def format_option(f):
    f = wide_option(f)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )(f)


def wide_option(f):
    """``--wide``: every column, however narrow the terminal (read by cnnstat.render)."""
    return click.option(
        "--wide",
        is_flag=True,
        expose_value=False,
        callback=_keep,
        help="Tables: every column, however wide (on a narrow terminal optional columns give way, "
        "then the table turns vertical).",
    )(f)


def input_option(f):
    return click.option(
        "--input",
        "input_",
        metavar="CxHxW",
        callback=_keep_input,
        help="Override the input shape of one sample, without the batch, e.g. 3x512x512 (1-D: CxL; "
        "video: CxDxHxW).",
    )(f)


def _keep(ctx, param, value):
    """Options for PyTorch models (--kwargs, --strict) wait in ctx.meta for load_analysis."""
    ctx.meta[f"cnnstat.{param.name}"] = value


def torch_options(f):
    f = click.option(
        "--strict",
        is_flag=True,
        expose_value=False,
        callback=_keep,
        help="PyTorch models: unsupported calls are an error.",
    )(f)
    return click.option(
        "--kwargs",
        metavar="K=V,...",
        expose_value=False,
        callback=_keep,
        help="PyTorch models: arguments for the class or factory, e.g. 'num_classes=10'.",
    )(f)


def model_options(analysis: bool = True):
    """MODEL, --input/--resolution, (--batch/--dtype/--binary,) --format: the options of every
    command that analyzes one model."""

    def decorate(f):
        f = torch_options(f)
        f = format_option(f)
        if analysis:
            f = binary_option(f)
            f = dtype_option("Storage type of the weights.")(f)
            f = click.option(
                "--batch",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Batch size (scales MACs and activations).",
            )(f)
        f = click.option(
            "--resolution", metavar="WxH", help="Override the input's width and height, e.g. 1920x1080."
        )(f)
        f = input_option(f)
        return click.argument("model")(f)

    return decorate


def cli_options() -> dict:
    """The options waiting in ctx.meta (``kwargs``, ``strict``, ``input``: see :func:`_keep`),
    for the loaders, which take them as a dict (no click below the CLI)."""
    ctx = click.get_current_context(silent=True)
    return {k[8:]: v for k, v in ctx.meta.items() if k.startswith("cnnstat.")} if ctx else {}


def load_analysis(model, input_=None, resolution=None, dtype="fp32", batch=1):
    from cnnstat.torch import is_reference

    options = cli_options()
    if is_reference(model):  # module:attr, a PyTorch model (torch is imported from here on)
        from cnnstat.torch.analysis import load_for_cli, omissions

        a = load_for_cli(model, input_, resolution, dtype, batch, options)
        warn(*omissions(a))
        return a
    if model.endswith(".onnx"):  # an ONNX model (onnx is imported from here on)
        from cnnstat.onnx.analysis import load_for_cli as load_onnx
        from cnnstat.onnx.analysis import omissions

        a = load_onnx(model, input_, resolution, dtype, batch, options)
        warn(*omissions(a))
        return a
    if options.get("kwargs"):
        raise CnnstatError("--kwargs applies to PyTorch models (MODEL as module:attr)")
    from cnnstat.analysis import Analysis
    from cnnstat.spec.build import build
    from cnnstat.zoo import load

    spec = load(model)
    return Analysis(build(spec, spec.input_at(input_, resolution)), dtype=dtype, batch=batch)


def shape_text(shape) -> str:
    """``3x224x224``; also receptive-field numbers: floats as ``%g`` (15.5), fractions (jumps
    after upsampling) as decimals when they end within 4 digits (1/2 -> 0.5), else in
    parentheses: ``(2/3)x(2/3)``."""

    def number(v) -> str:
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, Fraction) and v.denominator != 1:
            d, digits = v.denominator, 0
            while d % 10 == 0 or d % 5 == 0 or d % 2 == 0:
                d //= 10 if d % 10 == 0 else 5 if d % 5 == 0 else 2
                digits += 1
            return repr(float(v)) if d == 1 and digits <= 4 else f"({v})"
        return str(int(v)) if isinstance(v, Fraction) else str(v)

    return "x".join(number(v) for v in shape)


def conventions_note(binary: bool) -> str:
    mb = "MiB = 2^20 bytes" if binary else "MB = 10^6 bytes"
    return f"1 MAC = one multiply-accumulate (bias adds are not MACs); {mb}."
