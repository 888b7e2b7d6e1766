"""Spec -> ``nn.Module``: every layer of the cnnstat graph becomes a torch module at the
layer's dotted name, so ``dict(module.named_modules())[layer.name]`` is that layer."""

from __future__ import annotations

import torch
from torch import nn

from cnnstat.errors import CnnstatError
from cnnstat.ops.window import paddings
from cnnstat.torch import modules as M

_ELEMENTWISE = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def _nd(shape, one_d, two_d):
    return one_d if len(shape) == 2 else two_d


def _window(a, shape):
    n = len(shape) - 1
    k = _axes(a["k"], n)
    s = _axes(a["s"] if a.get("s") is not None else a["k"], n)
    d = _axes(a.get("d", 1), n)
    return k, s, d, paddings(a.get("p", 0), shape[1:], k, s, d)


def _axes(v, n):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def _conv(a, shape, out, groups):
    k, s, d, pads = _window(a, shape)
    kw = dict(kernel_size=k, stride=s, dilation=d, groups=groups, bias=a["bias"])
    if all(b == e for b, e in pads):
        return _nd(shape, nn.Conv1d, nn.Conv2d)(shape[0], out, padding=tuple(b for b, _ in pads), **kw)
    conv = _nd(shape, M.SamePadConv1d, M.SamePadConv2d)(shape[0], out, padding=0, **kw)
    conv._set_pads(pads, a["p"])
    return conv


def _pool(kind, a, shape):
    k, s, d, pads = _window(a, shape)
    kw = dict(kernel_size=k, stride=s, ceil_mode=a["ceil"])
    if kind == "max":
        kw["dilation"] = d
    symmetric = all(b == e for b, e in pads)
    if kind == "max":
        cls = (
            _nd(shape, nn.MaxPool1d, nn.MaxPool2d)
            if symmetric
            else _nd(shape, M.SamePadMaxPool1d, M.SamePadMaxPool2d)
        )
    else:
        cls = (
            _nd(shape, nn.AvgPool1d, nn.AvgPool2d)
            if symmetric
            else _nd(shape, M.SamePadAvgPool1d, M.SamePadAvgPool2d)
        )
    if symmetric:
        return cls(padding=tuple(b for b, _ in pads), **kw)
    pool = cls(padding=0, **kw)
    pool._set_pads(pads, a["p"])
    return pool


def make_module(layer, shapes: list) -> nn.Module:
    """The torch module for one cnnstat layer, given its input shapes (without batch)."""
    op, a, shape = layer.op, layer.args, shapes[0]
    if op == "conv":
        return _conv(a, shape, a["out"], a["groups"])
    if op == "dwconv":
        return _conv(a, shape, shape[0] * a["mult"], shape[0])
    if op == "local":
        return M.LocallyConnected(shape[0], a["out"], shape[1:], a["k"], a["s"], a["p"], a["d"], a["bias"])
    if op == "fc":
        return nn.Linear(shape[0], a["out"], bias=a["bias"])
    if op in ("maxpool", "avgpool"):
        return _pool(op[:3], a, shape)
    if op in ("gap", "gmp", "adaptive_avgpool", "adaptive_maxpool"):
        size = 1 if op in ("gap", "gmp") else a["size"]
        avg = op in ("gap", "adaptive_avgpool")
        cls = (
            _nd(shape, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
            if avg
            else _nd(shape, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
        )
        pool = cls(size if isinstance(size, int) else tuple(size))
        if op in ("gap", "gmp"):
            pool.cnnstat_op = op  # the importer maps it back to gap/gmp, not adaptive pooling to 1
        return pool
    if op == "bn":
        cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        return cls(shape[0], eps=a["eps"], momentum=a["momentum"], affine=a["affine"])
    if op == "lrn":
        return nn.LocalResponseNorm(a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])
    if op == "prelu":
        return nn.PReLU(1 if a["shared"] else shape[0])
    if op in _ELEMENTWISE:
        return _ELEMENTWISE[op]()
    if op == "softmax":
        return nn.Softmax(dim=a["dim"] + 1 if a["dim"] >= 0 else a["dim"])
    if op == "dropout":
        return nn.Dropout(a["p"])
    if op == "flatten":
        return nn.Flatten(1)
    if op == "slice":
        return M.ChannelSlice(a["start"], shape[0] if a["stop"] is None else a["stop"])
    if op == "shuffle":
        return nn.ChannelShuffle(a["groups"])
    if op == "add":
        return M.Add()
    if op == "mul":
        return M.Mul()
    if op == "concat":
        return M.Concat()
    raise CnnstatError(f"layer '{layer.name}': op '{op}' has no torch module yet")


def build_graph(graph, device="cpu") -> nn.Module:
    """An ``nn.Module`` (in eval mode) running ``graph``, a :class:`cnnstat.graph.Graph`."""
    shapes = {"input": graph.input}
    made = {}
    with torch.device(device):
        for layer in graph.layers:
            made[layer.name] = make_module(layer, [shapes[i] for i in layer.inputs])
            shapes[layer.name] = layer.output
    root = M.SpecNet([(la.name, la.inputs) for la in graph.layers])
    # Parents before children: a merge ('layer1.0.add1') holds its branches ('...add1.main.conv1').
    for name in sorted(made, key=lambda n: n.count(".")):
        parent = root
        *path, last = name.split(".")
        for part in path:
            child = parent._modules.get(part)
            if child is None:
                child = nn.Module()
                parent.add_module(part, child)
            parent = child
        if last in parent._modules:
            raise CnnstatError(f"layer name '{name}' is used twice in the module tree")
        try:
            parent.add_module(last, made[name])
        except KeyError as exc:
            raise CnnstatError(f"layer '{name}' cannot be a torch module name: {exc.args[0]}") from None
    return root.eval()


def build(spec, input=None, device="cpu") -> nn.Module:
    """A spec (a :class:`~cnnstat.spec.model.Spec`, a zoo name or a spec path) as an
    ``nn.Module`` whose module names are the spec's layer names, at ``input`` (default: the
    spec's own). ``device='meta'`` builds it without allocating the weights."""
    from cnnstat.spec.build import build as build_spec
    from cnnstat.spec.model import Spec
    from cnnstat.zoo import load

    spec = spec if isinstance(spec, Spec) else load(spec)
    return build_graph(build_spec(spec, tuple(input) if input else None), device)
