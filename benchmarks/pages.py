"""Whole-process cost of the page commands on 100k and 1M layers: ``explain`` (the sheet, -o,
JSON, one LAYER, ``--all``), ``report`` and ``check --report``, beside ``summary`` (the
analysis alone, the floor).

    python benchmarks/pages.py [--sizes 100000,1000000] [--json FILE]

Specs as benchmarks/scale.py writes them: ``relu`` is ``relu: {repeat: N}``, ``chain`` a block
of conv, bn and relu repeated. Each run is a fresh process, stdout to /dev/null; wall time and
peak RSS from ``os.wait4`` (the child's own rusage). The figures in docs/explain.md and
docs/report.md ("At scale") come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from scale import spec_text  # benchmarks/ is on sys.path when this script runs


def run(label: str, args: list, cwd: str) -> dict:
    """One ``cnnstat ARGS`` process: exit code, wall and CPU seconds, peak RSS in MB."""
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnstat", *args], stdout=null, stderr=subprocess.PIPE, cwd=cwd
        )
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read().decode()[-300:].strip()
        proc.stderr.close()
    return {
        "case": label,
        "rc": os.waitstatus_to_exitcode(status),
        "wall_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "rss_mb": round(usage.ru_maxrss / 1024),
        "err": err,
    }


def cases(name: str, spec: str, first_relu: str) -> list:
    return [
        (f"{name} summary (floor)", ["summary", spec]),
        (f"{name} explain", ["explain", spec]),
        (f"{name} explain -o", ["explain", spec, "-o", "e.md"]),
        (f"{name} explain --format json", ["explain", spec, "--format", "json"]),
        (f"{name} explain LAYER", ["explain", spec, first_relu]),
        (f"{name} report", ["report", spec, "-o", "r.html"]),
        (f"{name} check --report", ["check", "--report", "b.html"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--json", metavar="FILE", help="Also write the rows as JSON.")
    opts = parser.parse_args()
    folder = tempfile.mkdtemp()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}", flush=True)
    rows = []
    for size in map(int, opts.sizes.split(",")):
        tag = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}m"
        for kind, first in (("relu", "relu1"), ("chain", "unit1.relu1")):
            name = f"{kind}{tag}"
            with open(os.path.join(folder, name + ".yaml"), "w") as f:
                f.write(spec_text(kind, size))
            with open(os.path.join(folder, "cnnstat.toml"), "w") as f:
                f.write(f'[[budget]]\nmodel = "{name}.yaml"\nmax_params = "1G"\n')
            for label, args in cases(name, name + ".yaml", first):
                rows.append(run(label, args, folder))
                print(json.dumps(rows[-1]), flush=True)
    if os.path.exists(os.path.join(folder, "relu100k.yaml")):
        every = ["explain", "relu100k.yaml", "--all", "-o", "all.md"]
        rows.append(run("relu100k explain --all -o (every section)", every, folder))
        print(json.dumps(rows[-1]), flush=True)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
