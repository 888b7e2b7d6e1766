"""Microbenchmarks that stand in for a datasheet: matmul MAC/s per dtype and copy bandwidth,
written as a user device file (``[devices.NAME]``, the format ``flops --device`` reads).

- Compute: an n x n by n x n matrix product is n^3 multiply-accumulates. n doubles from 256
  until one product takes at least 20 ms (the fastest of 3) (or n reaches the device's cap: 4096 on the CPU,
  16384 on a GPU); then products are timed (at least 5, at least 0.5 s) and the rate is n^3 /
  the median time. A dtype the device has no matmul kernel for is left out of the file.
- Bandwidth: ``dst.copy_(src)`` of a 256 MB (CPU) or 1 GB (GPU) buffer moves twice its size
  (read + write); the median of at least 5 copies (at least 0.5 s).

The figures are what this torch reaches on this machine, not the hardware's peak: a bound
computed from them is a "what this software stack could reach" bound.
"""

from __future__ import annotations

import functools
import json
import re
import statistics

from cnnstat.bench.measure import TORCH_DTYPES, describe, require_torch, time_call

MIN_MATMUL_S = 0.02
MAX_N = {"cpu": 4096, "cuda": 16384}
COPY_BYTES = {"cpu": 256 * 10**6, "cuda": 10**9}
MIN_REPEATS, MIN_SECONDS = 5, 0.5


def _timer(device):
    """``timed(fn)``: seconds one call of ``fn`` takes on ``device`` (:func:`time_call`)."""
    torch = require_torch()
    if device.type == "cuda":
        torch.cuda.set_device(device)  # events record on the current device's stream
    return functools.partial(time_call, device)


def _repeat(timed, fn, progress, stage) -> float:
    """The median of at least MIN_REPEATS timed calls lasting MIN_SECONDS together."""
    times = []
    while len(times) < MIN_REPEATS or sum(times) < MIN_SECONDS:
        times.append(timed(fn))
        progress(stage, len(times), max(MIN_REPEATS, len(times)))
    return statistics.median(times)


def matmul_rate(device, dtype: str, progress=None) -> dict:
    """MAC/s of a square matmul at ``dtype`` on ``device``: {"n", "seconds", "macs_per_second"}."""
    torch = require_torch()
    progress = progress or (lambda stage, done, total: None)
    timed = _timer(device)
    tdtype = getattr(torch, TORCH_DTYPES[dtype])
    n, cap = 256, MAX_N[device.type]
    with torch.inference_mode():
        while True:
            a = torch.randn(n, n, device=device).to(tdtype)
            b = torch.randn(n, n, device=device).to(tdtype)
            product = lambda a=a, b=b: a @ b  # noqa: E731
            timed(product)  # the first product sets its kernel up
            fastest = min(timed(product) for _ in range(3))  # a busy machine's hiccups aside
            if fastest >= MIN_MATMUL_S or n >= cap:
                break
            n *= 2
        seconds = _repeat(timed, product, progress, f"matmul {dtype} {n}x{n}")
    return {"n": n, "seconds": seconds, "macs_per_second": n**3 / seconds}


def copy_bandwidth(device, progress=None) -> dict:
    """Bytes/s of a large device-to-device copy (read + write): {"bytes", "seconds", "bandwidth"}."""
    torch = require_torch()
    progress = progress or (lambda stage, done, total: None)
    size = COPY_BYTES[device.type]
    src = torch.ones(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    timed = _timer(device)
    timed(lambda: dst.copy_(src))
    seconds = _repeat(timed, lambda: dst.copy_(src), progress, f"copy {size // 10**6} MB")
    return {"bytes": size, "seconds": seconds, "bandwidth": 2 * size / seconds}


def calibrate(device, dtypes=("fp32", "fp16", "bf16"), progress=None) -> dict:
    """Every microbenchmark: {"device": describe(), "matmul": {dtype: ...}, "skipped": {dtype:
    why}, "copy": ...}."""
    matmul, skipped = {}, {}
    for dtype in dtypes:
        try:
            matmul[dtype] = matmul_rate(device, dtype, progress)
        except (RuntimeError, TypeError) as exc:  # no kernel for the dtype on this device
            first = (str(exc).strip().splitlines() or [""])[0]
            skipped[dtype] = first[:200]
    return {
        "device": describe(device),
        "matmul": matmul,
        "skipped": skipped,
        "copy": copy_bandwidth(device, progress),
    }


def rate_text(value: float, unit: str = "") -> str:
    """4 significant digits with an SI prefix, as device files write rates: '61.23G', '12.5 GB/s'."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.4g}{' ' if unit else ''}{prefix}{unit}"
    return f"{value:.4g}{' ' + unit if unit else ''}"


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def device_toml(name: str, result: dict, when: str) -> str:
    """The device file: one ``[devices.NAME]`` table with the measured rates."""
    dev = result["device"]
    key = name if _BARE.fullmatch(name) else json.dumps(name)
    threads = dev.get("threads")
    where = dev["on"] + (f", {threads} thread{'s' * (threads > 1)}" if threads else "")
    sizes = ", ".join(f"{d} n={m['n']}" for d, m in result["matmul"].items())
    copy = result["copy"]
    source = (
        f"cnnstat bench --calibrate, {when}, torch {dev['torch']}: median n^3/time of square matmuls "
        f"({sizes}); bandwidth 2 x {copy['bytes'] // 10**6} MB / median copy time. Measured, not a datasheet"
    )
    rates = ", ".join(f'{d} = "{rate_text(m["macs_per_second"])}"' for d, m in result["matmul"].items())
    lines = [
        "# A device measured by `cnnstat bench --calibrate`; use it with --device FILE.toml,",
        "# or copy the table into ./cnnstat.toml and use --device NAME.",
    ]
    lines += [f"# {d}: not measured: {why}" for d, why in result["skipped"].items()]
    lines += [
        f"[devices.{key}]",
        f"description = {json.dumps(dev['name'] + ' (' + where + ', calibrated)')}",
        f"source = {json.dumps(source)}",
        f'bandwidth = "{rate_text(copy["bandwidth"], "B/s")}"',
        f"macs_per_second = {{{rates}}}",
    ]
    return "\n".join(lines) + "\n"
