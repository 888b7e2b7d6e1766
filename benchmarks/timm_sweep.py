"""timm (PyTorch Image Models) through cnnstat's PyTorch import: a representative model or two
per architecture family, against independent figures of the same module.

Each model of :data:`MODELS` is built by ``timm.create_model(NAME, pretrained=False)`` (no
weights; nothing is downloaded: cnnstat blocks the network while it builds and traces) and
analyzed by ``cnnstat.torch.analysis.analyze`` at timm's default input for it
(``pretrained_cfg["input_size"]``), then compared with:

- params: ``sum(p.numel() for p in module.parameters())``, exactly; buffers likewise (less
  BatchNorm's ``num_batches_tracked`` counters, which cnnstat does not count);
- MACs: PyTorch's FlopCounterMode on the same module at the same input (its conv, matmul and
  attention FLOPs / 2, :func:`cnnstat.torch.check.flop_counter_macs`), exactly;
- complete: no MAC unknown (no unsupported call); otherwise cnnstat's MACs are a lower bound
  and the unsupported calls are listed;
- time: seconds for cnnstat's analysis (build on the meta device, trace, analyze).

Usage::

    python benchmarks/timm_sweep.py [--family F ...] [--only NAME ...] [--json] [--check]

Prints a summary per family and a markdown table per model. ``--check`` exits 1 unless every
model run is exact (params, buffers, MACs equal and complete).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

# family (timm's module name, or the architecture) -> models, the smaller variants
MODELS = {
    "resnet": ["resnet50", "seresnext26d_32x4d", "ecaresnet26t"],
    "resnetv2": ["resnetv2_50", "resnetv2_50x1_bit"],
    "regnet": ["regnety_002", "regnetz_b16"],
    "efficientnet": ["efficientnet_b0", "tf_efficientnetv2_b0", "mixnet_s"],
    "mobilenetv3": ["mobilenetv3_small_100", "lcnet_050"],
    "mobilenetv4": ["mobilenetv4_conv_small", "mobilenetv4_hybrid_medium"],
    "ghostnet": ["ghostnet_100", "ghostnetv2_100"],
    "rexnet": ["rexnet_100"],
    "dla": ["dla34"],
    "dpn": ["dpn68"],
    "hrnet": ["hrnet_w18_small"],
    "cspnet": ["cspresnet50", "cs3darknet_s"],
    "darknet": ["darknet53"],
    "vovnet": ["ese_vovnet19b_dw"],
    "res2net": ["res2net50_26w_4s"],
    "resnest": ["resnest14d"],
    "nfnet": ["dm_nfnet_f0", "nf_resnet26"],
    "repvgg": ["repvgg_a0"],
    "byobnet": ["gcresnet33ts"],
    "densenet": ["densenet121"],
    "inception": ["inception_v3"],
    "xception": ["xception41"],
    "vgg": ["vgg11"],
    "convnext": ["convnext_atto"],
    "convnextv2": ["convnextv2_atto"],
    "efficientformer": ["efficientformer_l1", "efficientformerv2_s0"],
    "levit": ["levit_128s"],
    "metaformer": ["poolformer_s12", "convformer_s18"],
    "maxxvit": ["coatnet_nano_rw_224", "maxvit_nano_rw_256"],
    "vit": ["vit_tiny_patch16_224", "vit_small_patch16_224"],
    "deit": ["deit_tiny_patch16_224", "deit3_small_patch16_224"],
    "beit": ["beit_base_patch16_224"],
    "eva": ["eva02_tiny_patch14_224"],
    "swin": ["swin_tiny_patch4_window7_224", "swinv2_tiny_window8_256"],
    "twins": ["twins_pcpvt_small", "twins_svt_small"],
    "pvt_v2": ["pvt_v2_b0"],
    "xcit": ["xcit_nano_12_p16_224"],
    "mixer": ["mixer_s16_224", "gmlp_s16_224"],
    "resmlp": ["resmlp_12_224"],
    "cait": ["cait_xxs24_224"],
    "crossvit": ["crossvit_tiny_240"],
    "edgenext": ["edgenext_xx_small"],
    "fastvit": ["fastvit_t8"],
    "inception_next": ["inception_next_atto"],
    "tiny_vit": ["tiny_vit_5m_224"],
    "hgnet": ["hgnet_tiny", "hgnetv2_b0"],
    "mobilevit": ["mobilevit_xxs", "mobilevitv2_050"],
    "efficientvit": ["efficientvit_b0", "efficientvit_m0"],
    "repvit": ["repvit_m1"],
    "convmixer": ["convmixer_768_32"],
    "pit": ["pit_ti_224"],
    "coat": ["coat_lite_tiny"],
    "focalnet": ["focalnet_tiny_srf"],
    "davit": ["davit_tiny"],
    "gcvit": ["gcvit_xxtiny"],
    "nest": ["nest_tiny"],
    "sequencer": ["sequencer2d_s"],
    "mambaout": ["mambaout_femto"],
    "starnet": ["starnet_s1"],
    "hiera": ["hiera_tiny_224"],
    "volo": ["volo_d1_224"],
}
FAMILIES = tuple(MODELS)


def flop_counter(meta, input_shape) -> int:
    """FlopCounterMode's MACs (:func:`cnnstat.torch.check.flop_counter_macs`, under no_grad);
    for the few modules whose forward trips FlopCounterMode's module tracker under no_grad
    (timm's CaiT and PiT: "Expected gradient function to be set"), the same count with
    autograd on."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnstat.torch.check import flop_counter_macs

    try:
        return flop_counter_macs(meta, input_shape)
    except AssertionError:
        with warnings.catch_warnings(), FlopCounterMode(display=False) as counter:
            warnings.simplefilter("ignore")
            meta(torch.empty(1, *input_shape, device="meta"))
        return counter.get_total_flops() // 2


def reference_figures(module, input_shape) -> dict:
    """The independent figures: torch's own parameter and buffer counts, FlopCounterMode's MACs."""
    from cnnstat.torch.load import meta_copy

    meta = meta_copy(module)
    return {
        "torch_params": sum(p.numel() for p in module.parameters()),
        # cnnstat's convention: BatchNorm's num_batches_tracked (a training step counter) is
        # not a buffer of the analysis (see cnnstat/ops/norm.py)
        "torch_buffers": sum(
            b.numel() for n, b in module.named_buffers() if n.rpartition(".")[2] != "num_batches_tracked"
        ),
        "flop_counter_macs": flop_counter(meta, input_shape),
    }


def sweep_one(name: str, family: str = "") -> dict:
    """One model's row: cnnstat's and the independent figures, status, unsupported calls, time."""
    from cnnstat.errors import CnnstatError
    from cnnstat.torch.analysis import analyze, unsupported_summary
    from cnnstat.torch.load import instantiate

    row = {"model": name, "family": family}
    start = time.perf_counter()
    try:
        module = instantiate("timm:create_model", {"model_name": name, "pretrained": False})
        shape = tuple(module.pretrained_cfg["input_size"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = analyze(module, input=shape)
    except CnnstatError as exc:
        row.update(status="error", error=str(exc), seconds=time.perf_counter() - start)
        return row
    row["seconds"] = time.perf_counter() - start
    totals = a.totals()
    row.update(
        input=list(shape),
        params=totals["params"],
        buffers=totals["buffers"],
        macs=totals["macs"],
        complete=a.complete,
        unsupported=[f"{u['call']} x{u['calls']}" for u in unsupported_summary(a.graph)],
        stopped=a.graph.stopped,
    )
    try:
        row.update(reference_figures(module, shape))
    except Exception as exc:  # the reference itself failed: no verdict on the MACs
        row.update(status="error", error=f"FlopCounterMode: {type(exc).__name__}: {exc}"[:200])
        return row
    row["params_exact"] = row["params"] == row["torch_params"] and row["buffers"] == row["torch_buffers"]
    row["macs_exact"] = row["macs"] == row["flop_counter_macs"]
    if row["params_exact"] and row["macs_exact"] and row["complete"]:
        row["status"] = "exact"
    elif not row["complete"]:
        row["status"] = "incomplete"  # MACs a lower bound
    else:
        row["status"] = "differs"  # complete, yet not FlopCounterMode's
    return row


def table(rows) -> str:
    lines = [
        "| model | family | input | params | torch | MACs | FlopCounterMode | status | time s "
        "| unsupported |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        if r["status"] == "error" and "params" not in r:
            lines.append(
                f"| {r['model']} | {r['family']} | | | | | | error | {r['seconds']:.2f} "
                f"| {r['error'][:100]} |"
            )
            continue
        params = f"{r['params']:,}" + ("" if r.get("params_exact", True) else " ✗")
        mark = "" if r["complete"] else "≥ "
        macs = f"{mark}{r['macs']:,}" + ("" if r.get("macs_exact", True) else " ✗")
        unsupported = ", ".join(r["unsupported"][:4]) + (", ..." if len(r["unsupported"]) > 4 else "")
        if r["stopped"]:
            unsupported = (unsupported + "; " if unsupported else "") + "stopped: " + r["stopped"][:60]
        if r["status"] == "error":
            unsupported = r["error"][:100]
        lines.append(
            f"| {r['model']} | {r['family']} | {'x'.join(map(str, r['input']))} | {params} "
            f"| {r.get('torch_params', 0):,} | {macs} | {r.get('flop_counter_macs', 0):,} | {r['status']} "
            f"| {r['seconds']:.2f} | {unsupported} |"
        )
    return "\n".join(lines)


def summary(rows) -> str:
    lines = [
        "| family | models | params exact | exact (params, MACs, complete) | incomplete | differs | error |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = [0] * 6
    for family in FAMILIES:
        these = [r for r in rows if r["family"] == family]
        if not these:
            continue
        count = [sum(r["status"] == s for r in these) for s in ("exact", "incomplete", "differs", "error")]
        params = sum(bool(r.get("params_exact")) for r in these)
        cells = [len(these), params, *count]
        totals = [t + c for t, c in zip(totals, cells)]
        lines.append(f"| {family} | " + " | ".join(map(str, cells)) + " |")
    lines.append("| **all** | " + " | ".join(f"**{t}**" for t in totals) + " |")
    return "\n".join(lines)


def selected(families, only) -> list:
    return [(n, f) for f in families for n in MODELS[f] if not only or n in only]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--only", nargs="*", default=None, help="model names")
    parser.add_argument("--json", action="store_true", help="rows as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every model is exact")
    args = parser.parse_args(argv)

    import platform

    import timm
    import torch

    rows = []
    for name, family in selected(args.family, args.only):
        rows.append(sweep_one(name, family))
        print(f"{name}: {rows[-1]['status']} ({rows[-1]['seconds']:.2f} s)", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(
            f"timm {timm.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}; {sum(r['seconds'] for r in rows):.1f} s in all\n"
        )
        print(summary(rows))
        print()
        print(table(rows))
    if args.check:
        bad = [r["model"] for r in rows if r["status"] != "exact"]
        if bad:
            print(f"not exact: {', '.join(bad)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
