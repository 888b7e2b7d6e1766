"""Everything ``cnnstat bench`` needs a GPU for, in one run (issue 16).

    python benchmarks/gpu_bench.py [--out DIR] [--device h100-sxm] [--compile] [--skip-tests]

1. The issue's figures: resnet50 and mobilenet_v2 at 1920x1080, tile and frame mode, fp16,
   beside the ``--device`` preset's bound (default: h100-sxm when the card is an H100, else
   none), with the measured peak memory beside the static estimate. ``--compile`` adds
   torch.compile (about a minute per model and mode).
2. ``cnnstat bench --calibrate`` on the GPU: its matmul and copy rates as a device file, and
   the same benches bounded by it.
3. The tests: ``pytest tests/test_bench.py`` (its CUDA tests skip without a GPU; here they run),
   last, each test's name written to DIR/test_bench.log as it runs.

Every command's JSON lands in DIR (default: $OUT, else benchmarks/out), and a Markdown table
of the figures, with the card's name, is printed and written to DIR/gpu_bench.md for the docs.
Exit status: 1 when a test or a bench failed, 2 without CUDA."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = ("resnet50", "mobilenet_v2")
MODES = ("tile", "frame")
TESTS = "tests/test_bench.py"


def cnnstat(*args, timeout=600) -> tuple:
    """(exit status, stdout, stderr) of ``python -m cnnstat ARGS``."""
    t0 = time.time()
    try:
        res = subprocess.run(
            [sys.executable, "-m", "cnnstat", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s"
    print(f"  cnnstat {' '.join(args)}: exit {res.returncode} in {time.time() - t0:.0f} s", flush=True)
    return res.returncode, res.stdout, res.stderr


def default_device() -> str | None:
    import torch

    name = torch.cuda.get_device_name()
    return "h100-sxm" if "H100" in name else None


def bench(model, mode, device, compile_, out: Path, tag: str) -> dict | None:
    args = ["bench", model, "--on", "cuda", "--dtype", "fp16", "--mode", mode, "--resolution", "1920x1080"]
    args += ["--device", device] if device else []
    args += ["--compile"] if compile_ else []
    code, stdout, stderr = cnnstat(*args, "--format", "json", timeout=900 if compile_ else 300)
    name = f"{model}-{mode}-fp16{tag}"
    (out / f"{name}.json").write_text(stdout)
    if code != 0:
        (out / f"{name}.err").write_text(stderr)
        print(f"  FAILED: {stderr.strip()[:500]}")
        return None
    return json.loads(stdout)


def row(doc: dict, result: dict) -> str:
    ms = lambda s: f"{s * 1e3:.3f}"  # noqa: E731
    mb = lambda b: "-" if b is None else f"{b / 1e6:.2f}"  # noqa: E731
    eff = result.get("efficiency") or {}
    pct = lambda k: f"{eff[k] * 100:.1f}%" if k in eff else "-"  # noqa: E731
    s, mem = doc["static_memory"], result["memory"]
    bound = doc["bound"]
    return (
        f"| {doc['model']} | {doc['mode']} | {result['variant']} | {doc['layout']['used']} "
        f"| {ms(result['per_image_s']['median'])} | {ms(result['per_frame_s']['median'])} "
        f"| {ms(bound['latency_s']) if bound else '-'} | {result['fps']:.1f} "
        f"| {result['macs_per_second'] / 1e12:.2f} | {pct('compute')} | {pct('bandwidth')} "
        f"| {pct('roofline')} "
        f"| {mb(mem.get('peak_bytes'))} / {mb(s['total_bytes'])} "
        f"| {mb(mem.get('tensor_peak_bytes'))} / {mb(s['peak_activation_bytes'])} |"
    )


HEADER = (
    "| model | mode | variant | layout | ms/image | ms/frame | bound ms/frame | fps | TMAC/s "
    "| MAC/s / peak | bytes/s / bandwidth | bound / measured | peak allocated / static total MB "
    "| tensor peak / static activations MB |\n" + "|---" * 14 + "|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "benchmarks" / "out"))
    parser.add_argument("--device", help="the bound's device (default: h100-sxm on an H100)")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    card = torch.cuda.get_device_name()
    print(f"{card}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    failed = 0
    device = args.device or default_device()
    lines = [f"Measured on {card} (torch {torch.__version__}, CUDA {torch.version.cuda}), fp16, batch 1.", ""]
    lines += [HEADER]
    for model in MODELS:
        for mode in MODES:
            doc = bench(model, mode, device, args.compile, out, "")
            if doc is None:
                failed = 1
                continue
            lines += [row(doc, r) for r in doc["results"] if "error" not in r]
    print("calibration:", flush=True)
    calibrated = out / "gpu.toml"
    code, stdout, stderr = cnnstat(
        "bench", "--calibrate", "-o", str(calibrated), "--on", "cuda", "--format", "json"
    )
    (out / "calibrate.json").write_text(stdout)
    if code != 0:
        print(f"  FAILED: {stderr.strip()[:500]}")
        failed = 1
    else:
        cal = json.loads(stdout)
        rates = ", ".join(
            f"{d} {m['macs_per_second'] / 1e12:.1f} TMAC/s (n={m['n']})" for d, m in cal["matmul"].items()
        )
        lines += ["", f"Calibrated: {rates}; copy {cal['copy']['bandwidth'] / 1e12:.2f} TB/s.", "", HEADER]
        for model in MODELS:
            for mode in MODES:
                doc = bench(model, mode, str(calibrated), False, out, "-calibrated")
                if doc is None:
                    failed = 1
                    continue
                lines += [row(doc, r) for r in doc["results"] if "error" not in r]
    text = "\n".join(lines) + "\n"
    (out / "gpu_bench.md").write_text(text)
    print(text, flush=True)
    if not args.skip_tests:  # last: the figures above come back even if the tests run long
        print("tests/test_bench.py:", flush=True)
        with open(out / "test_bench.log", "w") as log:
            res = subprocess.run(
                [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", TESTS],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        print((out / "test_bench.log").read_text()[-3000:], flush=True)
        failed |= res.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
