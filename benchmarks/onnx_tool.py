"""cnnstat against onnx-tool on the same ONNX files: time, memory, parameters, MACs, and why
the counts differ.

    python benchmarks/onnx_tool.py --onnx-tool-python /tmp/ot/bin/python [--models resnet50,...]
                                   [--onnx file.onnx ...] [--json]

onnx-tool (https://github.com/ThanatosShinji/onnx-tool) is the one other analyzer that counts
parameters and MACs of ONNX files. It is not a dependency of cnnstat and this script installs
nothing: give it a Python that has onnx-tool, e.g.

    python -m venv /tmp/ot && /tmp/ot/bin/pip install onnx-tool

The files: torchvision models exported here with torch.onnx.export at their published input
(TorchScript exporter, batch norms kept: no constant folding; every parameter distinct, so the
exporter merges no tensors), and any --onnx paths. Each tool runs in its own process on each
file: the time is its own analysis of the file (reading, shapes, counts; not the interpreter's
start), the memory the process's peak resident set (interpreter and libraries included).

Where the counts differ, the script says by how much and where: onnx-tool's MACs by operator
(it counts element-wise operators, normalisation, pooling and resizing; cnnstat's convention
counts multiply-accumulates of weighted sums only), and its parameters (every initializer a
node reads, batch-norm running statistics and integer shape tensors included; cnnstat counts
those as buffers and settings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

# the process's peak resident set (VmHWM: ru_maxrss would carry the parent's over exec)
PEAK = r"""
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CNNSTAT = (
    PEAK
    + r"""
import json, sys, time
path, shape = sys.argv[1], json.loads(sys.argv[2])
from cnnstat.onnx.analysis import import_graph, OnnxAnalysis
import cnnstat.onnx.ops, onnx.shape_inference  # imported before the clock starts, as onnx-tool
start = time.perf_counter()
a = OnnxAnalysis(import_graph(path, tuple(shape) if shape else None))
t = a.totals()
seconds = time.perf_counter() - start
by_op = {}
for layer in a.layers:
    by_op[layer.op] = by_op.get(layer.op, 0) + layer.macs
print(json.dumps({
    "seconds": seconds, "params": t["params"], "buffers": t["buffers"], "macs": t["macs"],
    "complete": a.complete, "macs_by_op": by_op,
    "rss_mb": peak_mb(),
}))
"""
)

ONNX_TOOL = (
    PEAK
    + r"""
import io, json, sys, time, contextlib
path, shape = sys.argv[1], json.loads(sys.argv[2])
import numpy, onnx, onnx_tool
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    model = onnx_tool.Model(path, {"verbose": False})
    g = model.graph
    g.graph_reorder_nodes()
    inputs = {g.input[0]: onnx_tool.create_ndarray_f32([1, *shape])} if shape else None
    g.shape_infer(inputs)
    g.profile()
seconds = time.perf_counter() - start
macs_by_op, params_by_op = {}, {}
for node in g.nodemap.values():
    macs_by_op[node.op_type] = macs_by_op.get(node.op_type, 0) + int(round(node.macs[0]))
    params_by_op[node.op_type] = params_by_op.get(node.op_type, 0) + int(node.params)
print(json.dumps({
    "seconds": seconds, "params": int(g.params), "macs": int(round(g.macs[0])),
    "macs_by_op": macs_by_op, "params_by_op": params_by_op,
    "rss_mb": peak_mb(),
}))
"""
)

# torchvision models: (name, input C x H x W): their published crops
MODELS = {
    "resnet50": (3, 224, 224),
    "mobilenet_v3_large": (3, 224, 224),
    "efficientnet_b0": (3, 224, 224),
    "convnext_tiny": (3, 224, 224),
    "vit_b_16": (3, 224, 224),
    "deeplabv3_resnet50": (3, 520, 520),
}
# cnnstat's convention: these are the operators whose multiply-accumulates it counts
WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"}


def export(name: str, shape, folder: str) -> str:
    import torch
    import torchvision

    kwargs = {"aux_loss": True, "weights_backbone": None} if name.startswith("deeplab") else {}
    module = torchvision.models.get_model(name, **kwargs).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    path = os.path.join(folder, f"{name}.onnx")
    torch.onnx.export(
        module,
        (torch.randn(1, *shape),),
        path,
        dynamo=False,
        do_constant_folding=False,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
    )
    return path


def run(python: str, code: str, path: str, shape) -> dict:
    out = subprocess.run(
        [python, "-c", code, path, json.dumps(list(shape) if shape else None)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def why(c: dict, t: dict) -> list:
    """Where onnx-tool's counts differ from cnnstat's."""
    notes = []
    others = {op: m for op, m in t["macs_by_op"].items() if op not in WEIGHTED and m}
    weighted = sum(m for op, m in t["macs_by_op"].items() if op in WEIGHTED)
    if weighted != c["macs"]:
        notes.append(
            f"convolutions and matrix products: onnx-tool {weighted:,}, cnnstat {c['macs']:,} "
            f"({weighted - c['macs']:+,}: onnx-tool counts a bias add as a MAC)"
        )
    if others:
        top = sorted(others.items(), key=lambda kv: -kv[1])[:4]
        notes.append(
            f"{sum(others.values()):,} MACs of operators cnnstat counts 0 ("
            + ", ".join(f"{op} {m:,}" for op, m in top)
            + (", ..." if len(others) > 4 else "")
            + ")"
        )
    extra = t["params"] - c["params"]
    if extra:
        bn = t["params_by_op"].get("BatchNormalization", 0)
        parts = [f"{extra:,} more parameters"]
        if c["buffers"]:
            parts.append(f"{c['buffers']:,} of them batch-norm running statistics (cnnstat: buffers)")
        rest = extra - c["buffers"]
        if rest:
            parts.append(
                f"{rest:,} in other initializers (integer shape tensors, scalars: cnnstat's settings)"
            )
        if bn and not c["buffers"]:
            parts.append(f"BatchNormalization {bn:,}")
        notes.append("; ".join(parts))
    return notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx-tool-python", help="a Python with onnx-tool installed (see above)")
    ap.add_argument("--models", default=",".join(MODELS), help="torchvision models to export and compare")
    ap.add_argument("--onnx", nargs="*", default=[], help="more ONNX files (at their own input)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    python = args.onnx_tool_python or sys.executable
    probe = subprocess.run([python, "-c", "import onnx_tool"], capture_output=True)
    if probe.returncode != 0:
        sys.exit(
            f"onnx-tool is not importable by {python}. Install it apart from cnnstat:\n"
            "  python -m venv /tmp/ot && /tmp/ot/bin/pip install onnx-tool\n"
            "and run: python benchmarks/onnx_tool.py --onnx-tool-python /tmp/ot/bin/python"
        )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        files = [(p, os.path.basename(p), None) for p in args.onnx]
        for name in [m for m in args.models.split(",") if m]:
            shape = MODELS.get(name, (3, 224, 224))
            files.append((export(name, shape, folder), name, shape))
        for path, name, shape in files:
            c = run(sys.executable, CNNSTAT, path, shape)
            t = run(python, ONNX_TOOL, path, shape)
            row = {"model": name, "size_mb": os.path.getsize(path) / 1e6, "cnnstat": c, "onnx_tool": t}
            if "error" not in c and "error" not in t:
                row["why"] = why(c, t)
            rows.append(row)
            if not args.json:
                print(f"{name}: done", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        "| model | file | cnnstat time | onnx-tool time | cnnstat RSS | onnx-tool RSS "
        "| cnnstat params | onnx-tool params | cnnstat GMAC | onnx-tool GMAC |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, t = r["cnnstat"], r["onnx_tool"]

        def cell(d, key, fmt):
            return "error" if "error" in d else fmt(d[key])

        print(
            f"| {r['model']} | {r['size_mb']:.0f} MB | {cell(c, 'seconds', lambda v: f'{v:.2f} s')} "
            f"| {cell(t, 'seconds', lambda v: f'{v:.2f} s')} | {cell(c, 'rss_mb', lambda v: f'{v:.0f} MB')} "
            f"| {cell(t, 'rss_mb', lambda v: f'{v:.0f} MB')} | {cell(c, 'params', lambda v: f'{v:,}')} "
            f"| {cell(t, 'params', lambda v: f'{v:,}')} | {cell(c, 'macs', lambda v: f'{v / 1e9:.3f}')} "
            f"| {cell(t, 'macs', lambda v: f'{v / 1e9:.3f}')} |"
        )
    print()
    for r in rows:
        for side in ("cnnstat", "onnx_tool"):
            if "error" in r[side]:
                print(f"- {r['model']}: {side} failed: {r[side]['error']}")
        for note in r.get("why", []):
            print(f"- {r['model']}: {note}")


if __name__ == "__main__":
    main()
