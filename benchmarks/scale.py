"""Analysis cost against graph size: chains and DAGs of 1k, 10k and 100k layers.

    python benchmarks/scale.py [--sizes 1000,10000,100000] [--repeat 3] [--json]

Each case is a generated spec: a chain (conv, bn, relu repeated), a DAG (residual blocks
with a concatenating side branch), both written with ``repeat:``, and the chain written out
one YAML item per layer. Time is the best of --repeat runs of: parse the spec, build the
graph, compute totals, the by-kind breakdown, peak memory and the receptive field. Peak MB
is traced Python memory in a separate run (tracemalloc slows the code it measures).
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

from cnnstat.analysis import Analysis
from cnnstat.spec.build import build
from cnnstat.spec.model import parse_spec
from cnnstat.spec.yamlload import load_yaml

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
# layers per repeat: chain 3; DAG: 5 + add + 1 + 2 + concat = 10
CASES = {"chain": (CHAIN, 3), "dag": (DAG, 10), "chain, one YAML item per layer": (None, 3)}


def spec_text(case: str, layers: int) -> str:
    template, per = CASES[case]
    if template is None:
        return "input: [16, 64, 64]\nlayers:\n" + "  - conv: {out: 16, k: 3, p: 1}\n  - bn\n  - relu\n" * (
            layers // per
        )
    return template.format(n=layers // per)


def analyze(text: str) -> int:
    a = Analysis(build(parse_spec(load_yaml(text, "bench.yaml"), "bench.yaml")))
    a.totals()
    a.by_kind()
    a.memory()
    a.receptive_field()
    return len(a.layers)


def measure(case: str, size: int, repeat: int) -> dict:
    text = spec_text(case, size)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = analyze(text)
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    analyze(text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"case": case, "layers": n, "seconds": best, "us_per_layer": best / n * 1e6, "peak_mb": peak / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [measure(case, size, args.repeat) for case in CASES for size in sizes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'case':32} {'layers':>8} {'seconds':>8} {'us/layer':>9} {'peak MB':>8}")
    for r in rows:
        cells = f"{r['layers']:>8,} {r['seconds']:>8.3f} {r['us_per_layer']:>9.1f} {r['peak_mb']:>8.1f}"
        print(f"{r['case']:32} {cells}")
    for case in CASES:
        mine = [r for r in rows if r["case"] == case]
        for a, b in zip(mine, mine[1:]):
            ratio = b["seconds"] / a["seconds"]
            print(f"{case}: {b['layers'] / a['layers']:.0f}x the layers cost {ratio:.1f}x the time")


if __name__ == "__main__":
    main()
