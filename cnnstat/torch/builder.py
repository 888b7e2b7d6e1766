"""Spec -> ``nn.Module``: every layer of the cnnstat graph becomes a torch module at the
layer's dotted name, so ``dict(module.named_modules())[layer.name]`` is that layer."""

from __future__ import annotations

import torch
from torch import nn

from cnnstat.errors import CnnstatError
from cnnstat.torch.ops import BUILDERS


def make_module(layer, shapes: list) -> nn.Module:
    """The torch module for one cnnstat layer, given its input shapes (without batch); each op
    family's builder is in :mod:`cnnstat.torch.ops`."""
    builder = BUILDERS.get(layer.op)
    if builder is None:
        raise CnnstatError(f"layer '{layer.name}': op '{layer.op}' has no torch module yet")
    try:
        return builder(layer.args, shapes)
    except CnnstatError as exc:
        raise CnnstatError(f"layer '{layer.name}': {exc}") from None


class SpecNet(nn.Module):
    """Runs a cnnstat graph: each layer's module (at the layer's dotted name) on the outputs
    of the layers it reads. Built by :func:`cnnstat.torch.build`.

    Returns the last layer's output; a graph with other sinks (layers nothing reads, such as
    an auxiliary classifier) returns them all, in order, as a tuple.
    """

    def __init__(self, plan: list):
        super().__init__()
        self._plan = plan  # [(name, input names)] in order
        read = {i for _, inputs in plan for i in inputs}
        sinks = [name for name, _ in plan if name not in read]
        last = plan[-1][0]
        self._outputs = [n for n in sinks if n != last] + [last]
        # after each step, the outputs no later step reads are dropped: memory as the network's
        last_read = {i: k for k, (_, inputs) in enumerate(plan) for i in inputs}
        self._drop = [sorted({i for i in inputs if last_read[i] == k}) for k, (_, inputs) in enumerate(plan)]

    def forward(self, x):
        env = {"input": x}
        for (name, inputs), drop in zip(self._plan, self._drop):
            env[name] = self.get_submodule(name)(*[env[i] for i in inputs])
            for i in drop:
                del env[i]
        if len(self._outputs) == 1:
            return env[self._outputs[0]]
        return tuple(env[n] for n in self._outputs)


def build_graph(graph, device="cpu") -> nn.Module:
    """An ``nn.Module`` (in eval mode) running ``graph``, a :class:`cnnstat.graph.Graph`."""
    shapes = {"input": graph.input}
    made = {}
    with torch.device(device):
        for layer in graph.layers:
            made[layer.name] = make_module(layer, [shapes[i] for i in layer.inputs])
            shapes[layer.name] = layer.output
    root = SpecNet([(la.name, la.inputs) for la in graph.layers])
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
