"""Whole-process cost against graph size: 10k, 100k and 1M layers, every output format.

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--cases relu,chain,dag,items]
                               [--formats json,csv,markdown,table] [--parse 100000] [--json]

Each case is a generated spec file: ``relu`` is ``relu: {repeat: N}``; ``chain`` a block of
conv, bn and relu repeated; ``dag`` residual blocks with a concatenating side branch (10
layers per repeat); ``items`` the conv/bn/relu chain written out one YAML item per layer (up to
100k layers: a spec file is at most 4 MB). Every run is a fresh process, as a user runs it:
``cnnstat params SPEC --format json`` (the whole analysis as JSON, every layer in it) or
``cnnstat summary SPEC --format csv|markdown|table`` (one row per layer), stdout to
/dev/null. Wall time and peak RSS come from ``os.wait4`` (the child's own rusage), so start-up,
YAML, building, analysis and writing the output all count. ``B/layer`` is the peak RSS above
that of the same command on a one-layer spec, per layer.

``--parse N``: also the time to parse the ``items`` spec of N layers in this process (YAML
to located data to Spec: :func:`cnnstat.spec.model.load_spec_file`), best of 3, wall and CPU.

On a machine shared with other work, wall time waits for a core; CPU time (user + system,
from the same rusage) is what the process itself spent.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

RELU = "input: [16, 64, 64]\nlayers:\n  - relu: {{repeat: {n}}}\n"
CHAIN = """input: [16, 64, 64]
blocks:
  unit: {{body: [conv: {{out: 16, k: 3, p: 1}}, bn, relu]}}
layers:
  - unit: {{repeat: {n}}}
"""
DAG = """input: [16, 64, 64]
blocks:
  unit:
    body:
      - add:
          main: [conv: {{out: 16, k: 3, p: 1}}, bn, relu, conv: {{out: 16, k: 3, p: 1}}, bn]
          skip: identity
      - concat:
          keep: [conv: {{out: 8, k: 1}}]
          side: [maxpool: {{k: 3, s: 1, p: 1}}, conv: {{out: 8, k: 1}}]
layers:
  - unit: {{repeat: {n}}}
"""
ITEM = "  - conv: {out: 16, k: 3, p: 1}\n  - bn\n  - relu\n"
# layers per repeat: relu 1, chain 3; DAG: 5 + add + 1 + 2 + concat = 10; items 3
CASES = {"relu": (RELU, 1), "chain": (CHAIN, 3), "dag": (DAG, 10), "items": (None, 3)}
MAX_ITEMS = 100_000  # one YAML item per layer: past this the file passes the 4 MB spec limit
COMMANDS = {
    "json": ["params", "--format", "json"],
    "csv": ["summary", "--format", "csv"],
    "markdown": ["summary", "--format", "markdown"],
    "table": ["summary", "--format", "table"],
}


def spec_text(case: str, layers: int) -> str:
    template, per = CASES[case]
    if template is None:
        return "input: [16, 64, 64]\nlayers:\n" + ITEM * (layers // per)
    return template.format(n=layers // per)


def run(spec: str, fmt: str) -> tuple:
    """(wall seconds, CPU seconds, peak RSS in bytes) of one whole ``cnnstat`` process."""
    command, *options = COMMANDS[fmt]
    argv = [sys.executable, "-m", "cnnstat", command, spec, *options]
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        proc = subprocess.Popen(argv, stdout=null, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        err = proc.stderr.read().decode()
        proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:])} failed ({proc.returncode}): {err.strip()[:300]}")
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss * 1024  # ru_maxrss: kilobytes on Linux


def layers_of(case: str, size: int) -> int:
    return size // CASES[case][1] * CASES[case][1]


def parse_seconds(path: str, repeat: int = 3) -> tuple:
    """Best wall and best CPU time to read and parse the spec file at ``path`` (the garbage
    collector's deferred work included: a full collection after each run counts)."""
    from cnnstat.spec.model import load_spec_file

    wall = cpu = float("inf")
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        spec = load_spec_file(path)
        del spec
        gc.collect()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


HEADER = f"{'case':6} {'layers':>9} {'format':9} {'wall s':>7} {'CPU s':>7} {'peak RSS':>12} {'B/layer':>7}"


def _line(r: dict) -> str:
    mib = f"{r['peak_rss'] / 2**20:.1f} MiB"
    cells = f"{r['seconds']:7.2f} {r['cpu_seconds']:7.2f} {mib:>12} {r['bytes_per_layer']:7.0f}"
    return f"{r['case']:6} {r['layers']:>9,} {r['format']:9} {cells}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--cases", default="relu,chain,items")
    parser.add_argument("--formats", default="json,csv,markdown,table")
    parser.add_argument("--parse", type=int, default=100_000, help="layers of the parse case (0: none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cases, formats = args.cases.split(","), args.formats.split(",")
    rows, parse = [], None
    with tempfile.TemporaryDirectory() as tmp:

        def write(name: str, text: str) -> str:
            path = os.path.join(tmp, name + ".yaml")
            with open(path, "w") as f:
                f.write(text)
            return path

        one = write("one", "input: [16, 64, 64]\nlayers: [relu]\n")
        floor = {fmt: run(one, fmt)[2] for fmt in formats}
        if not args.json:
            print(HEADER, flush=True)
        for case in cases:
            for size in sizes:
                if case == "items" and size > MAX_ITEMS:
                    continue
                path = write(f"{case}-{size}", spec_text(case, size))
                n = layers_of(case, size)
                for fmt in formats:
                    seconds, cpu, rss = run(path, fmt)
                    per_layer = (rss - floor[fmt]) / n
                    rows.append(
                        {"case": case, "layers": n, "format": fmt, "seconds": seconds, "cpu_seconds": cpu,
                         "peak_rss": rss,
                         "bytes_per_layer": per_layer}
                    )
                    if not args.json:
                        print(_line(rows[-1]), flush=True)
        if args.parse:
            parse = {"layers": layers_of("items", args.parse)}
            path = write("parse", spec_text("items", args.parse))
            parse["seconds"], parse["cpu_seconds"] = parse_seconds(path)
    if args.json:
        print(json.dumps({"floor_rss": floor, "runs": rows, "parse": parse}, indent=2))
        return
    if parse:
        times = f"{parse['seconds']:.2f} s wall, {parse['cpu_seconds']:.2f} s CPU"
        print(f"parse {parse['layers']:,} layers, one YAML item each: {times}")


if __name__ == "__main__":
    main()
