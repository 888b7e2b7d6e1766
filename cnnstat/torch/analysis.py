"""Analysis of a PyTorch model: the same :class:`~cnnstat.analysis.Analysis` as for a spec,
plus what the import saw (unsupported calls, parameters the forward never used).

Totals are never silently wrong: parameters and buffers always equal the module's; a call
cnnstat has no op for is a layer with unknown MACs, so the analysis is not ``complete`` and
MAC totals are lower bounds (stderr says which calls; ``--strict`` makes it an error)."""

from __future__ import annotations

from cnnstat.analysis import Analysis, calls_text, unsupported_summary
from cnnstat.analysis import omissions as _omissions
from cnnstat.errors import CnnstatError

INSTALL = "pip install 'cnnstat[torch]'"


def require_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CnnstatError(f"PyTorch models need torch: {INSTALL}") from None


class TorchAnalysis(Analysis):
    """JSON: the spec contract plus a ``torch`` object (tracer, the module's own parameter and
    buffer counts, unsupported, not_executed)."""

    def to_dict(self) -> dict:
        d = super().to_dict()
        g = self.graph
        d["torch"] = {
            "tracer": g.tracer,
            "module_params": g.module_params,
            "module_buffers": g.module_buffers,
            "unsupported": unsupported_summary(g),
            "not_executed": dict(g.not_executed),
        }
        if getattr(g, "notes", None):
            d["torch"]["notes"] = list(g.notes)
        return d


def unsupported_text(graph) -> str:
    """'3 calls of torch.roll (at blocks.0.roll, ...); 1 call of nn.LSTM (at rnn; 263,168 parameters)'."""
    return calls_text(graph, "call")


def not_executed_text(graph) -> str:
    total = sum(graph.not_executed.values())
    listed = ", ".join(f"{k} ({v:,})" for k, v in list(graph.not_executed.items())[:5])
    more = ", ..." if len(graph.not_executed) > 5 else ""
    return f"{total:,} parameters of modules the forward does not run, counted at 0 MACs: {listed}{more}"


def input_for(model: str, module, input_=None, resolution=None) -> tuple:
    """--input, or --resolution with the model's channels, or the model's default input."""
    from cnnstat.torch.load import default_input
    from cnnstat.units import parse_input, parse_resolution

    if input_ and resolution:
        raise CnnstatError("give --input or --resolution, not both")
    if input_:
        return parse_input(input_) if isinstance(input_, str) else tuple(input_)
    if resolution:
        w, h = parse_resolution(resolution)
        default = default_input(model, module)
        if len(default) not in (3, 4):
            raise CnnstatError(
                f"--resolution needs a model with image or video input; '{model}' takes {list(default)}"
            )
        return (*default[:-2], h, w)  # a video keeps its clip length
    return default_input(model, module)


def import_graph(model, input=None, resolution=None, kwargs=None, tracer="auto", module=None):
    """(graph, module on meta) for a reference, or for ``module`` (an nn.Module) named ``model``."""
    require_torch()
    from torch import nn

    from cnnstat.torch.load import instantiate, meta_copy, offline
    from cnnstat.torch.trace import trace_module

    if isinstance(model, nn.Module):
        module, model = model, type(model).__name__
    if module is None:
        module = instantiate(model, kwargs, device="meta")
    module = meta_copy(module.eval())
    shape = input_for(model, module, input, resolution)
    with offline(model):
        return trace_module(module, shape, name=model, tracer=tracer), module


def analyze(
    model, input=None, dtype="fp32", batch=1, kwargs=None, tracer="auto", resolution=None, strict=False
):
    """Analyze a module reference or an ``nn.Module`` at ``input`` (C, H, W), traced on the
    meta device. ``strict``: unsupported calls are an error instead of a listed omission."""
    graph, _ = import_graph(model, input, resolution, kwargs, tracer)
    a = TorchAnalysis(graph, dtype=dtype, batch=batch)
    if strict and graph.unsupported:
        raise CnnstatError(f"unsupported (--strict): {unsupported_text(graph)}")
    if strict and not a.complete:
        raise CnnstatError(f"MACs unknown (--strict): {a.incomplete_text()}")
    return a


def load_for_cli(model, input_, resolution, dtype, batch, options: dict):
    """``load_analysis`` for a module reference (what it could not count: ``omissions``)."""
    from cnnstat.torch.load import parse_kwargs

    a = analyze(
        model,
        input=input_,
        resolution=resolution,
        dtype=dtype,
        batch=batch,
        kwargs=parse_kwargs(options.get("kwargs")),
        strict=bool(options.get("strict")),
    )
    return a


def omissions(a) -> list:
    """:func:`cnnstat.analysis.omissions` of a PyTorch model, and what its forward never ran."""
    return _omissions(a, "call", [not_executed_text(a.graph)] if a.graph.not_executed else [])
