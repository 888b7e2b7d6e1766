"""cnnstat against fvcore on torchvision's ResNet-50 at 1920x1080, side by side in one run.

Three commands, each a fresh process, run ``--runs`` times after ``--warmup`` rounds, interleaved
round-robin (the starting command rotating) so machine noise hits them alike:

  floor    python -c "import torch, torchvision"             (what both pay)
  cnnstat  python -m cnnstat params torchvision:resnet50 --resolution 1920x1080 --format json
  fvcore   python -c "<build resnet50; FlopCountAnalysis at 1x3x1080x1920; .by_operator()>"

For each: wall time of the whole process and its peak resident memory (``ru_maxrss`` from
``os.wait4``). Reported: medians, and time and memory *above the floor*; cnnstat's share of
fvcore's is the figure the README quotes (target: at most 1/5). Both processes print their MAC
counts, and the script checks they agree (conv + linear: cnnstat's convention).

Usage::

    python benchmarks/torch_import.py [--runs N] [--warmup N] [--json] [--check]

``--check`` exits 1 when cnnstat's time or memory above the floor exceeds 1/5 of fvcore's.
Standard library only (the children need torch, torchvision, fvcore and cnnstat).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FVCORE = """
import warnings; warnings.simplefilter("ignore")
import torch, torchvision
from fvcore.nn import FlopCountAnalysis
model = torchvision.models.resnet50().eval()
with torch.no_grad():
    f = FlopCountAnalysis(model, torch.zeros(1, 3, 1080, 1920))
    f.unsupported_ops_warnings(False); f.uncalled_modules_warnings(False); f.tracer_warnings("none")
    ops = f.by_operator()
print(ops["conv"] + ops["linear"])
"""

COMMANDS = {
    "floor": [sys.executable, "-c", "import torch, torchvision"],
    "cnnstat": [
        sys.executable,
        "-m",
        "cnnstat",
        "params",
        "torchvision:resnet50",
        "--resolution",
        "1920x1080",
        "--format",
        "json",
    ],
    "fvcore": [sys.executable, "-c", FVCORE],
}


def run_once(argv) -> tuple:
    """(wall seconds, peak RSS in bytes, stdout) of one child process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv[:4]} failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss * 1024, out.decode()


def macs_of(name, stdout):
    if name == "cnnstat":
        return json.loads(stdout)["totals"]["macs"]
    if name == "fvcore":
        return int(float(stdout.strip().splitlines()[-1]))
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 above 1/5 of fvcore's cost")
    args = parser.parse_args(argv)

    names = list(COMMANDS)
    samples = {n: [] for n in names}
    macs = {}
    for round_ in range(args.warmup + args.runs):
        order = names[round_ % 3 :] + names[: round_ % 3]
        for name in order:
            wall, rss, out = run_once(COMMANDS[name])
            macs[name] = macs_of(name, out)
            if round_ >= args.warmup:
                samples[name].append((wall, rss))

    med = {
        n: (statistics.median(w for w, _ in s), statistics.median(r for _, r in s))
        for n, s in samples.items()
    }
    floor_t, floor_m = med["floor"]
    above = {n: (med[n][0] - floor_t, med[n][1] - floor_m) for n in ("cnnstat", "fvcore")}
    share = (above["cnnstat"][0] / above["fvcore"][0], above["cnnstat"][1] / above["fvcore"][1])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "runs": args.runs,
        "median": {n: {"seconds": t, "peak_rss_mb": m / 1e6} for n, (t, m) in med.items()},
        "above_floor": {n: {"seconds": t, "peak_rss_mb": m / 1e6} for n, (t, m) in above.items()},
        "cnnstat_share_of_fvcore": {"time": share[0], "memory": share[1]},
        "macs": {"cnnstat": macs["cnnstat"], "fvcore": macs["fvcore"]},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"torchvision resnet50 at 1920x1080; {result['machine']}; median of {args.runs} runs each")
        print(f"{'':9} {'time s':>8} {'peak RSS MB':>12} {'time above floor':>17} {'RSS above floor':>16}")
        for n in names:
            t, m = med[n]
            extra = f"{above[n][0]:>16.2f}s {above[n][1] / 1e6:>13.0f} MB" if n in above else ""
            print(f"{n:9} {t:>8.2f} {m / 1e6:>12.0f} {extra}")
        print(
            f"cnnstat / fvcore above the floor: time {share[0]:.3f} (1/{1 / share[0]:.0f}), "
            f"memory {share[1]:.3f} (1/{1 / share[1]:.0f})"
        )
        print(f"MACs: cnnstat {macs['cnnstat']:,}, fvcore conv + linear {macs['fvcore']:,}")
    if macs["cnnstat"] != macs["fvcore"]:
        print("error: the MAC counts differ", file=sys.stderr)
        return 1
    if args.check and max(share) > 0.2:
        print("error: cnnstat costs more than 1/5 of fvcore above the floor", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
