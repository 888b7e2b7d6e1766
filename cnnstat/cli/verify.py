"""``cnnstat verify [MODEL...]``: cnnstat's params and MACs against torch and fvcore."""

from __future__ import annotations

import click

from cnnstat.cli.common import format_option, input_option, shape_text, torch_options


def _n(v) -> str:
    return f"{v:,}"


@click.command("verify", short_help="Check params and MACs against torch, fvcore and FlopCounterMode.")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option("--resolution", metavar="WxH", help="Input width and height, e.g. 1920x1080.")
@click.option(
    "--torch-device",
    default="cpu",
    show_default=True,
    metavar="DEVICE",
    help="The torch device fvcore's forward runs on (cpu, cuda, cuda:1, ...).",
)
@click.option(
    "--device",
    "old_device",
    hidden=True,
    help="Deprecated: --torch-device (flops and compare name hardware presets --device).",
)
@input_option
@torch_options
@format_option
def command(models, resolution, torch_device, old_device, input_, fmt):
    """Check MODELs' params and MACs with independent code: sum(p.numel()) of the torch module,
    fvcore's FlopCountAnalysis and PyTorch's FlopCounterMode.

    A spec is built as an nn.Module (cnnstat.torch.build); a PyTorch model (module:attr) is
    imported. With no MODEL, every zoo model that takes the input. Exit 1 on a mismatch.

    \b
    Example:
      cnnstat verify resnet50 --resolution 1920x1080
      cnnstat verify torchvision:googlenet
    """
    from cnnstat.errors import CnnstatError
    from cnnstat.render import Column, Table, print_json, render
    from cnnstat.torch.analysis import require_torch
    from cnnstat.torch.check import require_fvcore, verify
    from cnnstat.torch.load import parse_kwargs

    if old_device:
        click.echo(
            "warning: verify --device is now --torch-device (in flops and compare, --device names "
            "a hardware preset)",
            err=True,
        )
        torch_device = old_device
    device = torch_device
    require_torch()
    require_fvcore()
    ctx = click.get_current_context()
    kwargs = parse_kwargs(ctx.meta.get("cnnstat.kwargs"))
    if models:
        names, skipped = list(models), []
    else:
        from cnnstat.zoo import list_models

        names, skipped = list_models(), []
    results = []
    for name in names:
        try:
            results.append(verify(name, input=input_, resolution=resolution, kwargs=kwargs, device=device))
        except CnnstatError as exc:
            if models:
                raise
            skipped.append((name, str(exc).split("\n")[0]))  # the zoo: models fixed to their own input
    if fmt == "json":
        print_json(results)
    else:
        _render(results, skipped, fmt, device, Column, Table, render)
    if not all(r["equal"] for r in results):
        ctx.exit(1)


def _render(results, skipped, fmt, device, Column, Table, render):
    from importlib.metadata import PackageNotFoundError, version

    def _version(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return "?"

    rows = []
    for r in results:
        p, m = r["params"], r["macs"]
        torch_params = _n(p["torch"]) + (f" ({_n(p['not_executed'])} not run)" if p["not_executed"] else "")
        macs = m["cnnstat"] if r.get("complete", True) else f"≥ {_n(m['cnnstat'])}"
        rows.append(
            {
                "model": r["model"],
                "input": r["input"],
                "params": p["cnnstat"],
                "torch_params": torch_params,
                "macs": macs,
                "fvcore": m["fvcore"],
                "counter": m["flop_counter"],
                "result": "equal" if r["equal"] else "DIFFERENT",
            }
        )
    table = Table(
        title="cnnstat against torch and fvcore",
        columns=[
            Column("model", "model", numeric=False),
            Column("input", "input", shape_text),
            Column("params", "params", _n),
            Column("sum(p.numel())", "torch_params"),
            Column("MACs", "macs", lambda v: v if isinstance(v, str) else _n(v)),
            Column("fvcore", "fvcore", _n),
            Column("FlopCounterMode", "counter", _n),
            Column("result", "result", numeric=False),
        ],
        rows=rows,
    )
    table.notes.append(
        f"params: cnnstat vs sum(p.numel()) of the torch module (torch {_version('torch')}), parameters "
        "of modules the forward does not run included; MACs: cnnstat vs fvcore "
        f"{_version('fvcore')} FlopCountAnalysis (conv + linear + matmul ops, a real forward on {device}) "
        "and PyTorch's FlopCounterMode / 2 (meta device)."
    )
    if skipped:
        table.notes.append(
            f"not at this input ({len(skipped)}): " + "; ".join(f"{n}: {e}" for n, e in skipped)
        )
    for r in results:
        if r["unsupported"]:
            calls = ", ".join(dict.fromkeys(u["call"] for u in r["unsupported"]))
            table.notes.append(f"{r['model']}: unsupported (parameters counted, MACs unknown): {calls}")
    render(table, fmt)
    for r in results:
        if r["differences"]:
            _render_differences(r, fmt, Column, Table, render)


def _render_differences(r, fmt, Column, Table, render):
    rows = r["differences"]
    table = Table(
        title=f"{r['model']}: modules where the figures differ",
        columns=[
            Column("module", "module", numeric=False, wrap=True),
            Column("cnnstat MACs", "cnnstat_macs", _n),
            Column("fvcore MACs", "fvcore_macs", _n),
            Column("cnnstat params", "cnnstat_params", _n),
            Column("torch params", "torch_params", _n),
        ],
        rows=rows[:30],
    )
    if len(rows) > 30:
        table.notes.append(f"... and {len(rows) - 30} more (--format json lists all)")
    render(table, fmt)
