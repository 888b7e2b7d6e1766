"""cnnstat's figures against independent code: ``sum(p.numel())`` of the torch module,
fvcore's FlopCountAnalysis (a real forward, traced with torch.jit) and PyTorch's own
FlopCounterMode (on the meta device).

MACs compared are those of conv, linear and matrix-multiply ops (fvcore's ``conv``,
``linear``, ``addmm``, ``mm``, ``matmul``, ``bmm``, ``einsum``): fvcore also counts batch norm,
adaptive average pooling and upsampling, which cnnstat's convention counts as 0.
"""

from __future__ import annotations

import warnings

from cnnstat.errors import CnnstatError

MAC_OPS = ("conv", "linear", "addmm", "mm", "matmul", "bmm", "einsum")


def require_fvcore():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore's import warns about torch.jit.script
            import fvcore.nn  # noqa: F401
    except ImportError:
        raise CnnstatError("verify needs fvcore: pip install 'cnnstat[torch]'") from None


def fvcore_macs(module, input_shape, device="cpu") -> dict:
    """fvcore's MACs of ``module`` at ``input_shape`` (batch 1, real tensors on ``device``):
    ``{"macs": total, "by_operator": {...}, "own": {module path: MACs of its own ops}}``."""
    import torch

    require_fvcore()
    from fvcore.nn import FlopCountAnalysis

    x = torch.zeros(1, *input_shape, device=device)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(module, x)
        fca.unsupported_ops_warnings(False)
        fca.uncalled_modules_warnings(False)
        fca.tracer_warnings("none")
        by_op = dict(fca.by_operator())
        by_module = {m: sum(c.get(k, 0) for k in MAC_OPS) for m, c in fca.by_module_and_operator().items()}
    return {"macs": sum(by_op.get(k, 0) for k in MAC_OPS), "by_operator": by_op, "own": _own(by_module)}


def _own(totals: dict) -> dict:
    """Per module path: its total minus its direct children's totals."""
    own = dict(totals)
    for path, total in totals.items():
        if path:
            parent = path.rpartition(".")[0]
            if parent in own:
                own[parent] -= total
    return {k: v for k, v in own.items() if v}


def flop_counter_macs(meta_module, input_shape) -> int:
    """PyTorch's FlopCounterMode on the meta device: FLOPs of conv/mm/bmm ops / 2."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        with FlopCounterMode(display=False) as counter:
            meta_module(torch.empty(1, *input_shape, device="meta"))
    return counter.get_total_flops() // 2


def verify(model, input=None, resolution=None, kwargs=None, device="cpu") -> dict:
    """Compare cnnstat with torch and fvcore for a zoo name, a spec path or a module reference.
    Returns the ``verify --format json`` object for the model."""
    require_fvcore()

    from cnnstat.analysis import Analysis
    from cnnstat.torch import is_reference

    if is_reference(model):
        from cnnstat.torch.analysis import import_graph
        from cnnstat.torch.load import instantiate

        real = instantiate(model, kwargs, device=device)
        graph, meta = import_graph(model, input, resolution, tracer="auto", module=real)
        not_executed = sum(graph.not_executed.values())
        owners = graph.owners
    else:
        from cnnstat.spec.build import build
        from cnnstat.torch.builder import build_graph
        from cnnstat.zoo import load

        if kwargs:
            raise CnnstatError("--kwargs applies to PyTorch models (MODEL as module:attr)")
        spec = load(model)
        graph = build(spec, spec.input_at(input, resolution))
        real, meta = build_graph(graph, device), build_graph(graph, "meta")
        not_executed = 0
        owners = {la.name: la.name for la in graph.layers}
    a = Analysis(graph)
    totals = a.totals()
    torch_params = sum(p.numel() for p in real.parameters())
    fv = fvcore_macs(real, graph.input, device)
    counter = flop_counter_macs(meta, graph.input)
    result = {
        "model": model,
        "input": list(graph.input),
        "device": device,
        "params": {"cnnstat": totals["params"], "torch": torch_params, "not_executed": not_executed},
        "macs": {"cnnstat": totals["macs"], "fvcore": fv["macs"], "flop_counter": counter},
        "fvcore_by_operator": fv["by_operator"],
        "unsupported": list(getattr(graph, "unsupported", [])),
        "complete": a.complete,  # False: some MACs unknown (cnnstat's figure is a lower bound)
    }
    # An imported graph counts every parameter, those of modules the forward does not run too.
    result["equal"] = totals["params"] == torch_params and totals["macs"] == fv["macs"] == counter
    result["differences"] = [] if result["equal"] else _differences(a, owners, real, fv["own"])
    return result


def _differences(a, owners, module, fvcore_own) -> list:
    """Module by module, where cnnstat's MACs or parameters differ from fvcore's and torch's."""
    ours_macs, ours_params = {}, {}
    for layer in a.layers:
        owner = owners.get(layer.name, layer.name)
        ours_macs[owner] = ours_macs.get(owner, 0) + layer.macs
        ours_params[owner] = ours_params.get(owner, 0) + layer.params
    theirs_params = {}
    for path, m in module.named_modules():
        n = sum(p.numel() for p in m.parameters(recurse=False))
        if n:
            theirs_params[path] = n
    rows = []
    for path in sorted(set(ours_macs) | set(fvcore_own) | set(theirs_params)):
        row = {
            "module": path or "(root)",
            "cnnstat_macs": ours_macs.get(path, 0),
            "fvcore_macs": fvcore_own.get(path, 0),
            "cnnstat_params": ours_params.get(path, 0),
            "torch_params": theirs_params.get(path, 0),
        }
        if row["cnnstat_macs"] != row["fvcore_macs"] or row["cnnstat_params"] != row["torch_params"]:
            rows.append(row)
    return rows
