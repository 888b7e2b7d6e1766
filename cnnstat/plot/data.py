"""The numbers each chart draws, as plain data (dicts, lists, floats), from an Analysis.

Pure Python, no matplotlib: ``cnnstat plot ... --format json`` prints these, the tests compare
them (and what :mod:`cnnstat.plot.draw` puts on a Figure) with the analysis, and the figures
draw nothing else. Conventions are the analysis's: 1 MAC = one multiply-accumulate (bias adds
are not MACs); arithmetic intensity in MAC per byte moved, as :func:`cnnstat.hardware.roofline`
computes it.
"""

from __future__ import annotations

from collections import Counter

from cnnstat.errors import CnnstatError

# --metric of `plot layers`: the Analysis.counts() key drawn, and the axis label.
METRICS = {
    "params": ("params", "parameters (weights + biases)"),
    "macs": ("macs", "MACs (1 MAC = one multiply-accumulate)"),
    "activations": ("activation_bytes", "output activation memory (bytes at {dtype})"),
}
AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}  # receptive-field axes by their number
MAX_BUBBLE = 1600.0  # points^2: the bubble of the largest model in the comparison chart
MAX_AUTO_DEPTH = 4  # `plot layers`: the deepest name prefix blocks are looked for at


# --- the comparison chart (Bianco et al.: top-1 against GMACs, bubble area = params) ----------


def torchvision_accuracy(name: str) -> tuple:
    """(accuracy, why none) of ``torchvision:NAME`` from its default weights' metadata, read
    offline (``get_model_weights(name).DEFAULT.meta["_metrics"]``, nothing downloaded)."""
    try:
        import torchvision.models
    except ImportError:
        return None, "torchvision is not installed (its weights' metadata holds the accuracy)"
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return None, f"torchvision has no weights for '{name}'"
    metrics = weights.meta.get("_metrics", {})
    for dataset, values in metrics.items():
        if "acc@1" in values:
            acc = {"top1": float(values["acc@1"])}
            if "acc@5" in values:
                acc["top5"] = float(values["acc@5"])
            acc["dataset"] = dataset
            acc["source"] = f"torchvision {type(weights).__name__}.{weights.name} (meta['_metrics'])"
            return acc, ""
    reported = ", ".join(sorted({k for v in metrics.values() for k in v})) or "nothing"
    return None, f"torchvision's weights report {reported}, no top-1 accuracy"


def accuracy_of(model: str, kwargs: dict | None = None) -> tuple:
    """(accuracy dict or None, why none) for a model as the user names it: a zoo name or spec
    file (its ``accuracy:``), ``torchvision:NAME`` (its weights' metadata, unless ``kwargs``
    change the network), anything else none."""
    from cnnstat.torch.load import is_reference

    if model.endswith(".onnx"):
        return None, "an ONNX file carries no accuracy"
    if is_reference(model):
        where, _, name = model.partition(":")
        if where != "torchvision":
            return None, "a PyTorch module carries no accuracy (only torchvision:NAME's weights do)"
        if kwargs:
            return None, "--kwargs change the network its weights' accuracy is for"
        return torchvision_accuracy(name)
    from cnnstat.zoo import load

    spec = load(model)
    if spec.accuracy is None:
        return None, "no accuracy in its spec"
    return dict(spec.accuracy), ""


def compare_entry(model: str, analysis=None, kwargs: dict | None = None, spec=None) -> dict:
    """One model of the comparison chart: ``{"model", "input", "macs", "params", "complete",
    "accuracy", "why"}`` (``why``: why ``accuracy`` is None). ``model`` is the name the user
    gave; ``analysis`` its Analysis at the input its accuracy is for (built here when None);
    ``spec``: its Spec, when the caller has it (its ``accuracy`` is then read from it)."""
    if analysis is None:
        analysis = analyze_model(model, kwargs=kwargs)
    if spec is not None:
        accuracy, why = spec.accuracy, "" if spec.accuracy else "no accuracy in its spec"
    else:
        accuracy, why = accuracy_of(model, kwargs)
    totals = analysis.totals()
    return {
        "model": model,
        "input": list(analysis.graph.input),
        "macs": totals["macs"] // analysis.batch,
        "params": totals["params"],
        "complete": analysis.complete,
        "accuracy": accuracy,
        "why": why,
    }


def analyze_model(model: str, kwargs: dict | None = None):
    """The Analysis of a zoo name, spec file, ONNX file or PyTorch reference at its own input."""
    from cnnstat.torch.load import is_reference

    if is_reference(model):
        from cnnstat.torch.analysis import analyze

        return analyze(model, kwargs=kwargs)
    if model.endswith(".onnx"):
        from cnnstat.onnx.analysis import analyze

        return analyze(model)
    from cnnstat.analysis import analyze

    return analyze(model)


def compare_entries(models=None) -> list:
    """:func:`compare_entry` of each model; no models: the whole zoo (``cnnstat list``)."""
    if models:
        return [compare_entry(m) for m in models]
    from cnnstat.analysis import analyze
    from cnnstat.zoo import models as zoo_models

    return [compare_entry(s.name, analyze(s), spec=s) for s in zoo_models()]  # each file read once


def compare_data(entries: list, dataset: str | None = None) -> dict:
    """The chart's points: each entry with a top-1 accuracy on ``dataset`` (default: the
    dataset most entries report) at ``(macs / 1e9, top1)``, its bubble's area (points^2)
    proportional to its parameters (``area = params * area_per_param``); every other entry
    in ``skipped`` with the reason, never drawn at zero."""
    rated = [e for e in entries if e.get("accuracy") and "top1" in e["accuracy"]]
    if dataset is None and rated:
        dataset = Counter(e["accuracy"]["dataset"] for e in rated).most_common(1)[0][0]
    points, skipped = [], []
    for e in entries:
        acc = e.get("accuracy")
        if not acc or "top1" not in acc:
            skipped.append({"model": e["model"], "reason": e.get("why") or "no top-1 accuracy"})
        elif acc["dataset"] != dataset:
            skipped.append({"model": e["model"], "reason": f"accuracy on {acc['dataset']}, not {dataset}"})
        elif e["macs"] <= 0:
            skipped.append({"model": e["model"], "reason": "no MACs known (a log axis has no 0)"})
        else:
            points.append(_point(e, acc))
    largest = max((p["params"] for p in points), default=0)
    per_param = MAX_BUBBLE / largest if largest else 0.0
    for p in points:
        p["area"] = p["params"] * per_param
    return {
        "chart": "compare",
        "dataset": dataset,
        "x": "GMACs per image (10^9 multiply-accumulates, log scale)",
        "y": f"top-1 accuracy on {dataset or 'its dataset'} (%)",
        "area_per_param": per_param,
        "points": points,
        "skipped": skipped,
    }


def _point(entry: dict, acc: dict) -> dict:
    point = {
        "model": entry["model"],
        "gmacs": entry["macs"] / 1e9,
        "macs": entry["macs"],
        "params": entry["params"],
        "top1": acc["top1"],
        "top5": acc.get("top5"),
        "dataset": acc["dataset"],
        "source": acc["source"],
        "input": entry["input"],
        "macs_lower_bound": not entry["complete"],  # MACs of some layer unknown: at least this
    }
    return point


# --- per-layer bars ------------------------------------------------------------------------------


def layers_data(analysis, metric: str = "macs", log: bool = False, depth: int | None = None) -> dict:
    """One bar per layer, in order: ``value`` = ``analysis.counts(layer)`` of the metric (MACs
    None where unknown: not drawn, marked); ``blocks``: runs of layers sharing a dotted name
    prefix (``layer2.`` of ``layer2.0.conv1``) at ``depth`` (default: see :func:`block_depth`)."""
    if metric not in METRICS:
        raise CnnstatError(f"unknown metric '{metric}' (one of {', '.join(METRICS)})")
    key, label = METRICS[metric]
    bars = []
    for i, layer in enumerate(analysis.layers):
        counts = analysis.counts(layer)
        unknown = metric == "macs" and bool(layer.unknown)
        bars.append(
            {
                "index": i,
                "name": layer.name,
                "op": layer.op,
                "value": None if unknown else counts[key],
            }
        )
    names = [layer.name for layer in analysis.layers]
    depth = block_depth(names) if depth is None else depth
    return {
        "chart": "layers",
        "model": analysis.name,
        "metric": metric,
        "key": key,
        "y": label.format(dtype=analysis.dtype) + (", log scale" if log else ""),
        "log": log,
        "batch": analysis.batch,
        "dtype": analysis.dtype,
        "depth": depth,
        "bars": bars,
        "blocks": blocks(names, depth),
        "unknown": [b["name"] for b in bars if b["value"] is None],
    }


def blocks(names: list, depth: int) -> list:
    """Runs of consecutive layers whose names share their first ``depth`` dotted parts and have
    more parts than that (a layer named ``fc`` is in no block): ``[{"name", "first", "last"}]``
    with layer indices, runs of one layer left out."""
    out = []
    for i, name in enumerate(names):
        parts = name.split(".")
        key = ".".join(parts[:depth]) if len(parts) > depth else None
        if key is not None and out and out[-1]["name"] == key and out[-1]["last"] == i - 1:
            out[-1]["last"] = i
        elif key is not None:
            out.append({"name": key, "first": i, "last": i})
    return [b for b in out if b["last"] > b["first"]]


def block_depth(names: list) -> int:
    """The shallowest name depth with at least 3 blocks (resnet50: 1, layer1 ... layer4;
    mobilenet_v2: 2, features.stage1 ...); else the depth with the most blocks (ties: the
    shallowest); 1 when no name has a dot."""
    counts = {d: len(blocks(names, d)) for d in range(1, MAX_AUTO_DEPTH + 1)}
    for d, n in counts.items():
        if n >= 3:
            return d
    best = max(counts.values())
    return next(d for d, n in counts.items() if n == best) if best else 1


# --- receptive field by depth --------------------------------------------------------------------


def rf_data(analysis) -> dict:
    """Per layer, in order: the receptive field's ``size`` and ``jump`` per axis (floats; None
    where unknown — a gap in the chart — or where every unit sees the whole input, after
    global pooling or an fc). ``state``: known, unknown, whole (the whole input) or none (no
    spatial axes, e.g. tokens)."""
    from cnnstat.analysis import rf_dict

    n_axes = max((len(la.rf.size) for la in analysis.layers if la.rf is not None), default=0)
    points = []
    for i, layer in enumerate(analysis.layers):
        rf = layer.rf
        point = {"index": i, "name": layer.name, "op": layer.op, "size": None, "jump": None}
        if rf is None:
            point["state"] = "unknown"
        elif rf.collapsed:
            point["state"] = "whole"
        elif not rf.size:
            point["state"] = "none"
        else:
            d = rf_dict(rf)
            point.update(state="known", size=d["size"], jump=d["jump"])
        points.append(point)
    last = analysis.receptive_field()
    return {
        "chart": "rf",
        "model": analysis.name,
        "axes": list(AXES.get(n_axes, tuple(f"axis{k}" for k in range(n_axes)))),
        "x": "layer (in order)",
        "size": "receptive field size (input pixels)",
        "jump": "jump (effective stride, input pixels)",
        "points": points,
        "unknown": analysis.rf_lost(),
        "network": None if last is None else {"layer": last.name, **(analysis.rf_summary() or {})},
    }


# --- roofline ------------------------------------------------------------------------------------


def roofline_data(analysis, device, dtype: str | None = None) -> dict:
    """The roofline of ``device`` (a name or :class:`~cnnstat.hardware.Device`) at ``dtype``
    (default: the analysis's) and every layer on it, from :func:`cnnstat.hardware.roofline`:
    at its arithmetic intensity (MACs / bytes moved) and attainable rate min(peak, intensity
    x bandwidth) = MACs / time bound. Layers without MACs (pooling, activations, norms) or
    with unknown MACs are not points (no intensity on a log axis): counted with their time.
    ``network``: the whole network's intensity and rate (total MACs / summed time) and the bound
    that limits it: the one whose layers take most of the time."""
    from cnnstat.hardware import Device, get_device, roofline

    dev = device if isinstance(device, Device) else get_device(device)
    dtype = dtype or analysis.dtype
    peak, bandwidth = dev.peak(dtype), dev.bandwidth
    rows = roofline(analysis.graph, dev, dtype, analysis.batch)
    unknown = {la.name for la in analysis.layers if la.unknown}
    points, no_macs = [], {"layers": 0, "time_s": 0.0}
    for i, r in enumerate(rows):
        if r["name"] in unknown:
            continue
        if not r["macs"] or not r["bytes"]:
            no_macs["layers"] += 1
            no_macs["time_s"] += r["time_s"]
            continue
        points.append(
            {
                "index": i,
                "name": r["name"],
                "op": r["op"],
                "macs": r["macs"],
                "bytes": r["bytes"],
                "intensity": r["intensity"],
                "attainable": r["macs"] / r["time_s"],
                "time_s": r["time_s"],
                "bound": r["bound"],
            }
        )
    total_time = sum(r["time_s"] for r in rows)
    by_bound = {b: sum(r["time_s"] for r in rows if r["bound"] == b) for b in ("compute", "memory")}
    macs, moved = sum(r["macs"] for r in rows), sum(r["bytes"] for r in rows)
    limit = "memory" if by_bound["memory"] > by_bound["compute"] else "compute"
    return {
        "chart": "roofline",
        "model": analysis.name,
        "device": dev.name,
        "description": dev.description,
        "dtype": dtype,
        "batch": analysis.batch,
        "peak_macs_per_second": peak,
        "bandwidth_bytes_per_second": bandwidth,
        "ridge": peak / bandwidth,
        "x": "arithmetic intensity (MAC/byte: MACs / bytes of weights and activations moved)",
        "y": "attainable rate (MAC/s; 1 MAC = one multiply-accumulate)",
        "points": points,
        "no_macs": no_macs,
        "unknown": sorted(unknown),
        "network": {
            "macs": macs,
            "bytes": moved,
            "intensity": macs / moved if moved else None,
            "time_s": total_time,
            "rate": macs / total_time if total_time else None,
            "compute_time_s": by_bound["compute"],
            "memory_time_s": by_bound["memory"],
            "bound": limit,
            "lower_bound": bool(unknown),  # unknown MACs: time and rate are bounds
        },
    }
