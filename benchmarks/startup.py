"""Start-up time of the cnnstat CLI against the import floor of the libraries it needs.

Measures whole-process wall time (fork + exec + interpreter start + imports + work + exit) of

  floor       python -c "import click, yaml, rich.console, rich.table"
  params      python -m cnnstat params vgg16          (stdout discarded)
  import_cli  python -c "import cnnstat.cli"

each ``--runs`` times after ``--warmup`` warm-up rounds (which also write the .pyc caches), the
commands interleaved round-robin (the starting command rotating each round) so machine noise
hits all of them alike. Children run with this interpreter (``sys.executable``), in the
repository root, with the repository root first on ``PYTHONPATH``, so the source tree's cnnstat
is measured even when the package is not installed.

Bytecode: an installed package has its ``.pyc`` files, but a source tree run with
``PYTHONDONTWRITEBYTECODE=1`` (common in CI and sandboxes) recompiles every cnnstat module on
every start, which is not what users see. So by default the children get a private, empty
``PYTHONPYCACHEPREFIX`` (a temporary directory, removed afterwards) with bytecode writing on:
the warm-up rounds fill it for every command alike and nothing is written into the tree.
``--inherit-bytecode-env`` passes the caller's bytecode settings through unchanged instead.

Usage::

    python benchmarks/startup.py [--runs N] [--warmup N] [--json] [--inherit-bytecode-env]
    python benchmarks/startup.py --check-no-torch [--json]

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOOR = "floor"
PARAMS = "params"
IMPORT_CLI = "import_cli"

COMMANDS = {
    FLOOR: ("-c", "import click, yaml, rich.console, rich.table"),
    PARAMS: ("-m", "cnnstat", "params", "vgg16"),
    IMPORT_CLI: ("-c", "import cnnstat.cli"),
}

LABELS = {
    FLOOR: 'python -c "import click, yaml, rich.console, rich.table"',
    PARAMS: "python -m cnnstat params vgg16",
    IMPORT_CLI: 'python -c "import cnnstat.cli"',
}

NO_TORCH_CODE = (
    "import sys, cnnstat.cli, cnnstat.analysis; from cnnstat.analysis import analyze; "
    "analyze('vgg16'); print('torch' in sys.modules)"
)

# Variables that would change what a child does or measures (import tracing, start-up hooks).
_DROP_ENV = (
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONSTARTUP",
    "PYTHONINSPECT",
    "PYTHONTRACEMALLOC",
    "PYTHONDEVMODE",
    "PYTHONWARNINGS",
)


def child_env(pycache_prefix: str | None = None) -> dict:
    """The caller's environment with the repository root first on PYTHONPATH; with
    ``pycache_prefix``, bytecode is written to and read from that directory."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + existing if existing else "")
    if pycache_prefix is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache_prefix
    return env


def argv(name: str) -> list:
    return [sys.executable, *COMMANDS[name]]


def run_checked(cmd: list, env: dict) -> subprocess.CompletedProcess:
    """Run once, capturing output; exit with the child's stderr if it fails."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(f"startup.py: command failed (exit {proc.returncode}): {' '.join(cmd)}\n")
        sys.stderr.write(proc.stderr)
        sys.exit(1)
    return proc


def time_once(cmd: list, env: dict) -> float:
    """Wall seconds of one child process, output discarded."""
    t0 = time.perf_counter()
    rc = subprocess.call(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - t0
    if rc != 0:
        run_checked(cmd, env)  # reproduce to show the error; exits
        sys.exit(f"startup.py: {' '.join(cmd)} exited {rc} during timing")
    return elapsed


def p90(values: list) -> float:
    """90th percentile, nearest-rank (an observed value; the maximum for fewer than 10 runs)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def summarize(times: list) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "p90_s": p90(times)}


def measure(runs: int, warmup: int, env: dict) -> dict:
    names = list(COMMANDS)
    for _ in range(warmup):
        for name in names:
            run_checked(argv(name), env)
    times = {name: [] for name in names}
    for i in range(runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(time_once(argv(name), env))
    return times


def report(times: dict, runs: int, warmup: int, bytecode: str) -> dict:
    stats = {name: summarize(t) for name, t in times.items()}
    floor = stats[FLOOR]
    for s in stats.values():
        s["median_ratio"] = s["median_s"] / floor["median_s"]
        s["min_ratio"] = s["min_s"] / floor["min_s"]
    return {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cwd": str(ROOT),
        "runs": runs,
        "warmup": warmup,
        "bytecode": bytecode,
        "commands": {
            name: {"command": LABELS[name], "argv": argv(name), **stats[name], "times_s": times[name]}
            for name in times
        },
        "ratio_median": stats[PARAMS]["median_ratio"],
        "ratio_min": stats[PARAMS]["min_ratio"],
    }


def print_table(result: dict) -> None:
    header = ("name", "command", "median s", "min s", "p90 s", "median/floor", "min/floor")
    rows = [header]
    for name, c in result["commands"].items():
        rows.append(
            (
                name,
                c["command"],
                f"{c['median_s']:.4f}",
                f"{c['min_s']:.4f}",
                f"{c['p90_s']:.4f}",
                f"{c['median_ratio']:.2f}x",
                f"{c['min_ratio']:.2f}x",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    left = {0, 1}  # text columns; the numbers are right-aligned

    def line(row):
        return "  ".join(
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    print(
        f"{result['runs']} runs each after {result['warmup']} warm-up, round-robin; "
        f"Python {result['python_version']} ({result['python']}); bytecode: {result['bytecode']}"
    )
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows[1:]:
        print(line(row))
    print()
    print(f"cnnstat params vgg16 / import floor = {result['ratio_median']:.2f}x (median)")


def check_no_torch(as_json: bool) -> int:
    proc = run_checked([sys.executable, "-c", NO_TORCH_CODE], child_env())
    answer = proc.stdout.strip()
    if answer not in ("True", "False"):
        sys.exit(f"startup.py: unexpected output from the torch check: {answer!r}")
    if as_json:
        print(json.dumps({"command": NO_TORCH_CODE, "torch_imported": answer == "True"}))
    else:
        print(answer)
    return 0 if answer == "False" else 1


def main(args=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds (default 2)")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    parser.add_argument(
        "--inherit-bytecode-env",
        action="store_true",
        help="keep the caller's PYTHONDONTWRITEBYTECODE / PYTHONPYCACHEPREFIX "
        "instead of a private bytecode cache",
    )
    parser.add_argument(
        "--check-no-torch",
        action="store_true",
        help="only check that analysing vgg16 does not import torch "
        "(prints False; exit 1 if torch was imported)",
    )
    opts = parser.parse_args(args)
    if opts.check_no_torch:
        return check_no_torch(opts.json)
    if opts.runs < 1:
        parser.error("--runs must be at least 1")
    if opts.warmup < 0:
        parser.error("--warmup must be non-negative")
    if opts.inherit_bytecode_env:
        bytecode = "inherited" + (
            " (PYTHONDONTWRITEBYTECODE set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
        )
        times = measure(opts.runs, opts.warmup, child_env())
    else:
        bytecode = "private cache (PYTHONPYCACHEPREFIX)"
        if opts.warmup < 1:
            parser.error("--warmup must be at least 1 to fill the private bytecode cache")
        with tempfile.TemporaryDirectory(prefix="cnnstat-startup-pyc-") as prefix:
            times = measure(opts.runs, opts.warmup, child_env(prefix))
    result = report(times, opts.runs, opts.warmup, bytecode)
    if opts.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
