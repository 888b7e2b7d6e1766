"""cnnstat's PyTorch import against PyTorch's FlopCounterMode on the same, already-built
module, side by side in one process.

For each model (torchvision's, built once on the meta device with ``weights=None``):

  cnnstat       cnnstat.torch.analyze(module, input=shape): trace (torch.fx on meta tensors,
                or hooks), map every call to its op, the analysis and its totals
  FlopCounter   with FlopCounterMode(display=False): module(x) on a meta tensor, total FLOPs

Both run ``--runs`` times after ``--warmup`` rounds, interleaved (the one that starts
alternating) so machine noise hits them alike; the medians are compared. FlopCounterMode is
the cheapest peer (it gives FLOPs only: no parameters per layer, no shapes, no receptive
fields). Both MAC counts are printed and checked to agree (FLOPs / 2).

Usage::

    python benchmarks/torch_speed.py [--runs N] [--warmup N] [--only NAME ...] [--json] [--check]

``--check`` exits 1 when cnnstat takes more than ``--target`` (1.5) times FlopCounterMode's
median on any model.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings

MODELS = (
    "resnet50",
    "densenet201",
    "efficientnet_b7",
    "regnet_y_16gf",
    "convnext_base",
    "vit_b_16",
    "swin_t",
)


def build(name: str):
    """(module on meta, input shape) as cnnstat analyzes torchvision:NAME by default."""
    from cnnstat.torch.load import default_input, instantiate, meta_copy

    module = meta_copy(instantiate(f"torchvision:{name}", device="meta"))
    return module, default_input(f"torchvision:{name}", module)


def run_cnnstat(module, shape) -> int:
    from cnnstat.torch import analyze

    return analyze(module, input=shape).totals()["macs"]


def run_flop_counter(module, shape) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.empty(1, *shape, device="meta"))
    return counter.get_total_flops() // 2


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def measure(name: str, runs: int, warmup: int) -> dict:
    module, shape = build(name)
    tools = {"cnnstat": run_cnnstat, "flop_counter": run_flop_counter}
    times = {k: [] for k in tools}
    macs = {}
    order = list(tools)
    for i in range(warmup + runs):
        for key in order if i % 2 == 0 else reversed(order):
            seconds, macs[key] = timed(tools[key], module, shape)
            if i >= warmup:
                times[key].append(seconds)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "input": list(shape),
        "cnnstat_s": median["cnnstat"],
        "flop_counter_s": median["flop_counter"],
        "ratio": median["cnnstat"] / median["flop_counter"],
        "cnnstat_macs": macs["cnnstat"],
        "flop_counter_macs": macs["flop_counter"],
        "agree": macs["cnnstat"] == macs["flop_counter"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--target", type=float, default=1.5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")
    import torch
    import torchvision

    rows = [measure(name, args.runs, args.warmup) for name in (args.only or MODELS)]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(
            f"torch {torch.__version__}, torchvision {torchvision.__version__}, Python "
            f"{platform.python_version()}, {platform.machine()}; median of {args.runs} runs each\n"
        )
        print("| model | input | cnnstat s | FlopCounterMode s | ratio | MACs (both) |")
        print("|---|---|---:|---:|---:|---:|")
        for r in rows:
            agree = (
                f"{r['cnnstat_macs']:,}"
                if r["agree"]
                else f"{r['cnnstat_macs']:,} vs {r['flop_counter_macs']:,}"
            )
            print(
                f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['cnnstat_s']:.3f} "
                f"| {r['flop_counter_s']:.3f} | {r['ratio']:.2f}x | {agree} |"
            )
    bad = [r["model"] for r in rows if r["ratio"] > args.target or not r["agree"]]
    if args.check and bad:
        print(f"over {args.target}x FlopCounterMode or MACs differ: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
