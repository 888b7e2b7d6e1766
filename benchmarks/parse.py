"""Spec parsing cost: YAML text -> located data -> Spec, for specs written one item per layer.

    python benchmarks/parse.py [--sizes 10000,100000] [--repeat 5] [--json]

Each case is a chain (conv, bn, relu) written out one YAML list item per layer, the form whose
parsing dominates: nothing is shared by ``repeat:``. Times are the best of --repeat runs of
:func:`cnnstat.spec.yamlload.load_yaml` alone and of the whole parse (``load_spec_file``:
reading the file, YAML, and the spec's structure checks), with the garbage collector's
deferred work included (a full collection after each run counts towards it). The issue's
target: 100k layers under 2 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time

import yaml

from cnnstat.spec.model import load_spec_file
from cnnstat.spec.yamlload import load_yaml


def spec_text(layers: int) -> str:
    return "input: [16, 64, 64]\nlayers:\n" + "  - conv: {out: 16, k: 3, p: 1}\n  - bn\n  - relu\n" * (
        layers // 3
    )


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        del result
        gc.collect()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            text = spec_text(n)
            path = os.path.join(tmp, f"chain{n}.yaml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            rows.append(
                {
                    "layers": n,
                    "bytes": len(text),
                    "load_yaml_s": round(best(lambda t=text: load_yaml(t, "bench.yaml"), args.repeat), 3),
                    "parse_s": round(best(lambda p=path: load_spec_file(p), args.repeat), 3),
                }
            )
    info = {"libyaml": bool(getattr(yaml, "__with_libyaml__", False)), "rows": rows}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"PyYAML {yaml.__version__}, libyaml C parser: {'yes' if info['libyaml'] else 'no'}")
    print(f"{'layers':>8} {'bytes':>10} {'load_yaml':>10} {'parse':>8}")
    for r in rows:
        print(f"{r['layers']:>8,} {r['bytes']:>10,} {r['load_yaml_s']:>9.3f}s {r['parse_s']:>7.3f}s")


if __name__ == "__main__":
    main()
