"""``cnnstat devices``: the device presets and user-defined devices."""

from __future__ import annotations

import click

from cnnstat.cli.common import format_option


@click.command("devices", short_help="Hardware for --device: peak MAC/s by dtype, memory bandwidth.")
@format_option
def command(fmt):
    """Devices for --device: peak dense MAC/s by dtype and memory bandwidth, with sources.

    Add your own in ./cnnstat.toml ([devices.NAME]) or ./pyproject.toml
    ([tool.cnnstat.devices.NAME]) with `bandwidth = "68 GB/s"` and
    `ops_per_second = {int8 = "20T"}` (datasheet TOPS, 2 per MAC) or `macs_per_second`.
    """
    from cnnstat.hardware import devices
    from cnnstat.render import Column, Table, print_json, render
    from cnnstat.units import si

    known = devices()
    rows = [
        {
            "name": d.name,
            "description": d.description,
            "bandwidth": d.bandwidth,
            "macs_per_second": d.macs,
            "source": d.source,
        }
        for d in known.values()
    ]
    if fmt == "json":
        print_json(rows)
        return
    rates = lambda macs: ", ".join(f"{k} {si(v)}" for k, v in macs.items())  # noqa: E731
    table = Table(
        title="Devices (peak dense MAC/s from datasheets; 1 MAC = 2 datasheet ops)",
        columns=[
            Column("device", "name", numeric=False),
            Column("MAC/s by dtype", "macs_per_second", rates, numeric=False, wrap=", "),
            Column("bandwidth", "bandwidth", lambda v: si(v) + "B/s"),
            Column("description / source", "description", numeric=False, wrap=True),
        ],
        rows=rows,
    )
    render(table, fmt)
