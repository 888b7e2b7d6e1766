"""Every torchvision model through cnnstat's PyTorch import, against torchvision's published
figures.

For each name in ``torchvision.models.list_models()`` (classification, segmentation, video,
detection; optical flow and quantized models are listed as excluded: cnnstat does not import
them), ``cnnstat.torch.analysis.analyze("torchvision:NAME")`` at the default input (the one
the figures are for), compared with the default weights' metadata, read offline:

- params: equal to ``meta["num_params"]``, exactly;
- GMAC: equal to ``meta["_ops"]`` (torchvision's GFLOPS count one multiply-add as one
  operation: they are GMACs) to the printed digits (3 decimals);
- complete: no MAC unknown (no unsupported call); otherwise the MACs are a lower bound and the
  unsupported calls are listed;
- time: seconds for the whole analysis (build on the meta device, trace, analyze).

Two-stage detectors (Faster, Mask, Keypoint R-CNN) run their RoI heads once per region; cnnstat
counts them for the most RoIs the model keeps (see docs/pytorch.md). torchvision measured
``_ops`` on one image, with the RoIs that image had: where that differs from the maxima, the
row also gives the constructor's kwargs stating those RoIs (:data:`OPS_ROIS`) and the GMAC at
them, which reproduce ``_ops``.

Usage::

    python benchmarks/torchvision_sweep.py [--family F ...] [--only NAME ...] [--json] [--check]

Prints a markdown table per model and a summary per family. ``--check`` exits 1 unless every
model is exact (params, GMAC and complete) or, for the detectors of :data:`OPS_ROIS`, has
params exact, MACs complete and GMAC equal to ``_ops`` at the kwargs stating ``_ops``'s RoIs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

FAMILIES = ("classification", "segmentation", "video", "detection")
EXCLUDED = ("optical_flow", "quantization")

# The RoIs of the image torchvision measured ``_ops`` on, stated as the constructor's own kwargs
# (0: the head does not run), for the two-stage detectors whose image had fewer than the model's
# maxima (rpn_post_nms_top_n_test proposals for the box head, box_detections_per_img detections
# for the mask and keypoint heads). Found by cnnstat: the per-image network alone (no proposal
# passed the RPN's score threshold) for the MobileNet Faster R-CNNs, no detection for Mask
# R-CNN, one for Keypoint R-CNN, each then equal to ``_ops`` to the printed digits.
OPS_ROIS = {
    "fasterrcnn_mobilenet_v3_large_fpn": {"rpn_post_nms_top_n_test": 0},
    "fasterrcnn_mobilenet_v3_large_320_fpn": {"rpn_post_nms_top_n_test": 0},
    "maskrcnn_resnet50_fpn": {"box_detections_per_img": 0},
    "keypointrcnn_resnet50_fpn": {"box_detections_per_img": 1},
}


def published(name: str) -> dict:
    import torchvision.models

    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    return {"params": meta["num_params"], "gmac": meta["_ops"]}


def sweep_one(name: str) -> dict:
    """One model's row: published and measured figures, status, unsupported calls, time; for
    the detectors of :data:`OPS_ROIS`, ``ops_rois``: the kwargs, GMAC and whether it is exact."""
    from cnnstat.errors import CnnstatError
    from cnnstat.torch.analysis import analyze, unsupported_summary
    from cnnstat.torch.load import torchvision_family

    row = {
        "model": name,
        "family": torchvision_family(name),
        **{f"published_{k}": v for k, v in published(name).items()},
    }
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = analyze(f"torchvision:{name}")
    except CnnstatError as exc:
        row.update(status="error", error=str(exc), seconds=time.perf_counter() - start)
        return row
    row["seconds"] = time.perf_counter() - start
    totals = a.totals()
    row.update(
        input=list(a.graph.input),
        params=totals["params"],
        macs=totals["macs"],
        gmac=round(totals["macs"] / 1e9, 3),
        complete=a.complete,
        unsupported=[f"{u['call']} x{u['calls']}" for u in unsupported_summary(a.graph)],
        incomplete=len(a.incomplete()),
        stopped=a.graph.stopped,
    )
    row["params_exact"] = row["params"] == row["published_params"]
    row["gmac_exact"] = row["gmac"] == round(row["published_gmac"], 3)
    if row["params_exact"] and row["gmac_exact"] and row["complete"]:
        row["status"] = "exact"
    elif not row["complete"]:
        row["status"] = "incomplete"  # MACs a lower bound
    else:
        row["status"] = "differs"  # complete, yet not the published figure
    if name in OPS_ROIS:
        row["ops_rois"] = at_ops_rois(name, row["published_gmac"])
    return row


def at_ops_rois(name: str, published_gmac: float) -> dict:
    """The analysis with :data:`OPS_ROIS`' kwargs: its GMAC, and exact when its params are the
    published, its MACs complete and its GMAC ``_ops`` to the printed digits."""
    from cnnstat.torch.analysis import analyze

    kwargs = OPS_ROIS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analyze(f"torchvision:{name}", kwargs=dict(kwargs))
    totals = a.totals()
    gmac = round(totals["macs"] / 1e9, 3)
    exact = totals["params"] == published(name)["params"] and a.complete and gmac == round(published_gmac, 3)
    return {"kwargs": kwargs, "macs": totals["macs"], "gmac": gmac, "complete": a.complete, "exact": exact}


def accepted(row) -> bool:
    """What ``--check`` requires: exact, or exact at the RoIs of torchvision's image."""
    return row["status"] == "exact" or bool(
        row["status"] == "differs" and row.get("ops_rois", {}).get("exact") and row["params_exact"]
    )


def names(families, only) -> tuple:
    import torchvision.models

    from cnnstat.torch.load import torchvision_family

    run, excluded = [], []
    for name in torchvision.models.list_models():
        if only and name not in only:
            continue
        family = torchvision_family(name)
        if family in EXCLUDED:
            excluded.append((name, family))
        elif family in families:
            run.append(name)
    return run, excluded


def cell_gmac(row) -> str:
    if row["status"] == "error":
        return "—"
    mark = "" if row["complete"] else "≥ "
    return f"{mark}{row['gmac']:.3f}"


def cell_ops_rois(row) -> str:
    """``box_detections_per_img=0``: 134.380 (✗ unless exact), or nothing."""
    at = row.get("ops_rois")
    if not at:
        return ""
    kwargs = ", ".join(f"`{k}={v}`" for k, v in at["kwargs"].items())
    return f"{kwargs}: {'' if at['complete'] else '≥ '}{at['gmac']:.3f}" + ("" if at["exact"] else " ✗")


def table(rows) -> str:
    lines = [
        "| model | family | input | params | published | GMAC | published | status | at _ops's RoIs "
        "| time s | unsupported |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for r in rows:
        if r["status"] == "error":
            lines.append(
                f"| {r['model']} | {r['family']} | | | {r['published_params']:,} | | {r['published_gmac']} "
                f"| error | | {r['seconds']:.2f} | {r['error'][:100]} |"
            )
            continue
        params = f"{r['params']:,}" + ("" if r["params_exact"] else " ✗")
        gmac = cell_gmac(r) + ("" if r["gmac_exact"] else " ✗")
        unsupported = ", ".join(r["unsupported"][:4]) + (", ..." if len(r["unsupported"]) > 4 else "")
        if r["stopped"]:
            unsupported = (unsupported + "; " if unsupported else "") + "stopped: " + r["stopped"][:60]
        lines.append(
            f"| {r['model']} | {r['family']} | {'x'.join(map(str, r['input']))} | {params} "
            f"| {r['published_params']:,} | {gmac} | {r['published_gmac']} | {r['status']} "
            f"| {cell_ops_rois(r)} | {r['seconds']:.2f} | {unsupported} |"
        )
    return "\n".join(lines)


def summary(rows, excluded) -> str:
    lines = [
        "| family | models | params exact | exact (params, GMAC, complete) | incomplete | differs "
        "| of which exact at _ops's RoIs | error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for family in FAMILIES:
        these = [r for r in rows if r["family"] == family]
        if not these:
            continue
        count = {s: sum(r["status"] == s for r in these) for s in ("exact", "incomplete", "differs", "error")}
        params = sum(bool(r.get("params_exact")) for r in these)
        at_rois = sum(r["status"] == "differs" and accepted(r) for r in these)
        lines.append(
            f"| {family} | {len(these)} | {params} | {count['exact']} | {count['incomplete']} "
            f"| {count['differs']} | {at_rois} | {count['error']} |"
        )
    if excluded:
        lines.append("")
        by = {}
        for name, family in excluded:
            by.setdefault(family, []).append(name)
        for family, ns in by.items():
            lines.append(f"Excluded ({family.replace('_', ' ')}): {', '.join(ns)}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--only", nargs="*", default=None, help="model names")
    parser.add_argument("--json", action="store_true", help="rows as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the coverage target holds")
    args = parser.parse_args(argv)

    import platform

    import torch
    import torchvision

    run, excluded = names(args.family, args.only)
    rows = []
    for name in run:
        rows.append(sweep_one(name))
        print(f"{name}: {rows[-1]['status']} ({rows[-1]['seconds']:.2f} s)", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(
            f"torch {torch.__version__}, torchvision {torchvision.__version__}, Python "
            f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}; "
            f"{sum(r['seconds'] for r in rows):.1f} s in all\n"
        )
        print(summary(rows, excluded))
        print()
        print(table(rows))
    if args.check:
        bad = [r["model"] for r in rows if not accepted(r)]
        if bad:
            print(f"not exact: {', '.join(bad)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
