"""Time analyzing the whole zoo in one process: load every spec, build, sum, render JSON.

    python benchmarks/zoo.py [--repeat N]

Prints the number of models and layers, and the best-of-N wall time for the whole zoo.
"""

from __future__ import annotations

import argparse
import json
import time


def run_once():
    from cnnstat.analysis import Analysis
    from cnnstat.spec.build import build
    from cnnstat.zoo import models

    n_layers = 0
    specs = models()
    for spec in specs:
        a = Analysis(build(spec))
        json.dumps(a.to_dict())
        n_layers += len(a.layers)
    return len(specs), n_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        n_models, n_layers = run_once()
        times.append(time.perf_counter() - t0)
    print(
        f"{n_models} models, {n_layers} layers: whole zoo in {min(times):.3f} s "
        f"(best of {args.repeat}; load + build + analyze + JSON)"
    )


if __name__ == "__main__":
    main()
