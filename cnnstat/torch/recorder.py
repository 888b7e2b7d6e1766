"""Calls observed on meta tensors -> cnnstat layers.

Both tracers (torch.fx, and module hooks with a torch-function mode) report each module call
and each function call with its actual arguments and result (meta tensors: shapes, no data).
The recorder keeps, for every tensor, what cnnstat knows of it (:class:`Ref`: the layer that
made it, its shape without batch, its receptive field), asks :mod:`cnnstat.torch.mapping` for
the cnnstat op, and runs that op's registered handler for shape, cost and receptive field.
Whatever has no mapping is listed as unsupported, never counted as zero in silence.
"""

from __future__ import annotations

import torch

from cnnstat.errors import OpError
from cnnstat.graph import Layer
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import REQUIRED, RF


class Ref:
    """A tensor as cnnstat sees it. ``base``/``steps``: a pending chain of layout calls (view,
    transpose, ...) applied to ``base``; it becomes a layer (flatten, shuffle) or nothing."""

    __slots__ = ("name", "shape", "rf", "base", "steps")

    def __init__(self, name, shape, rf, base=None, steps=()):
        self.name, self.shape, self.rf, self.base, self.steps = name, shape, rf, base, steps


class Call:
    """One call: ``base`` is the layer name it gets (module path, or scope + function name)."""

    __slots__ = ("base", "label", "fname", "module", "args", "kwargs", "out", "owner")

    def __init__(self, base, label, fname, module, args, kwargs, out, owner):
        self.base, self.label, self.fname, self.module = base, label, fname, module
        self.args, self.kwargs, self.out, self.owner = args, kwargs, out, owner

    def arg(self, i, name, default=None):
        if len(self.args) > i:
            return self.args[i]
        return self.kwargs.get(name, default)


def tensors_in(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    return []


def sample_shape(t) -> tuple:
    return tuple(int(v) for v in t.shape[1:])


def squeezed(shape) -> tuple:
    return tuple(v for v in shape if v != 1)


def rf_for(rf: RF, shape: tuple) -> RF:
    """``rf`` for a tensor of ``shape`` (without batch) made from one with field ``rf`` by a
    layout change or an unsupported call."""
    n = len(shape) - 1
    if n == len(rf.size):
        return rf._replace(extent=tuple(shape[1:]))
    if len(shape) <= 1 or not rf.size:
        return rf
    whole = rf.collapse()
    return RF((max(whole.size),) * n, (max(whole.jump),) * n, (0.0,) * n, tuple(shape[1:]), True)


class Recorder:
    def __init__(self, module):
        named = list(module.named_parameters())
        self.params = {id(p): name for name, p in named}  # id(parameter) -> name
        self._param_sizes = {name: p.numel() for name, p in named}
        self.layers: list = []
        self.refs: dict = {}  # id(tensor) -> Ref
        self.pinned: list = []  # keeps every seen tensor alive, so ids are never reused
        self.used: set = set()  # parameter names the forward touched
        self.counted: set = set()  # parameter names already in some layer's count
        self.derived: dict = {}  # id(tensor computed from parameters only) -> parameter names
        self.unsupported: list = []
        self.owners: dict = {}  # layer name -> module path that owns it ('' = the root)
        self.taken: set = {"input"}

    # --- tensors ----------------------------------------------------------------------------

    def input(self, tensor):
        shape = sample_shape(tensor)
        self.bind(tensor, Ref("input", shape, RF.input(shape[1:] if len(shape) > 1 else ())))

    def bind(self, tensor, ref: Ref):
        self.pinned.append(tensor)
        self.refs[id(tensor)] = ref

    def ref(self, tensor) -> Ref | None:
        return self.refs.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def param_names(self, tensors) -> list:
        names = []
        for t in tensors:
            if id(t) in self.params:
                names.append(self.params[id(t)])
            names.extend(self.derived.get(id(t), ()))
        return names

    def unique(self, base: str) -> str:
        name, n = base, 0
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    # --- events from the tracers ------------------------------------------------------------

    def module_call(self, path, module, args, kwargs, out):
        from cnnstat.torch.mapping import module_handler, module_label

        names = [self.params[id(p)] for p in module.parameters() if id(p) in self.params]
        self.used.update(names)
        call = Call(
            path or type(module).__name__.lower(), module_label(module), "", module, args, kwargs, out, path
        )
        handler = module_handler(module)
        if handler is None:
            self.unsupported_call(call, params=names)
        else:
            handler(self, call)

    def function_call(self, scope, fname, label, args, kwargs, out):
        from cnnstat.torch.mapping import canonical, function_handler

        outs = tensors_in(out)
        if not outs:
            return  # size(), dim(), shape: bookkeeping
        inputs = tensors_in((args, kwargs))
        params = self.param_names(inputs)
        self.used.update(params)
        if not any(id(t) in self.refs for t in inputs):
            # Constants, and tensors computed from parameters alone (weight.t(), w * scale):
            # the parameters count where a mapped call uses the result.
            if params:
                for t in outs:
                    self.pinned.append(t)
                    self.derived[id(t)] = params
            return
        name = canonical(fname)
        call = Call(f"{scope}.{name}" if scope else name, label, name, None, args, kwargs, out, scope)
        handler = function_handler(name)
        if handler is None:
            self.unsupported_call(call, params=params)
        else:
            handler(self, call)

    # --- what handlers do -------------------------------------------------------------------

    def emit(self, call: Call, op_name: str, args: dict, inputs: list, params=None, out=None):
        """A layer of ``op_name`` reading ``inputs`` (Refs); ``params``: the parameter names it
        stands for (default: the module's own). Its output is ``out`` (default: the call's)."""
        out = call.out if out is None else out
        op = REGISTRY[op_name]
        a = {arg.name: arg.default for arg in op.args if arg.default is not REQUIRED}
        a.update(args)
        if op.merge:
            a["branches"] = [r.name for r in inputs]
        shapes = [r.shape for r in inputs]
        if params is None:
            params = [self.params[id(p)] for p in call.module.parameters()] if call.module is not None else []
        try:
            shape, cost, rf = op.infer(a, shapes, [r.rf for r in inputs])
        except (OpError, IndexError, TypeError, ValueError) as exc:
            return self.unsupported_call(call, f"cnnstat's {op_name} cannot take it: {exc}", params)
        actual = sample_shape(out)
        if squeezed(shape) != squeezed(actual):
            return self.unsupported_call(
                call, f"cnnstat's {op_name} gives {list(shape)}, torch gives {list(actual)}", params
            )
        weights, biases, buffers = cost.weights, cost.biases, cost.buffers
        if params and all(p in self.counted for p in params):
            weights = biases = buffers = 0  # a module called again: its weights are counted once
        elif params or weights or biases:
            have = sum(self._numel(p) for p in params)
            if have != weights + biases:
                return self.unsupported_call(
                    call, f"cnnstat's {op_name} has {weights + biases} parameters, torch's {have}", params
                )
        self.counted.update(params)
        name = self.unique(call.base)
        self.layers.append(
            Layer(
                name=name,
                op=op_name,
                kind=op.kind,
                args=a,
                inputs=tuple(r.name for r in inputs),
                output=shape,
                weights=weights,
                biases=biases,
                buffers=buffers,
                macs=cost.macs,
                rf=rf,
            )
        )
        self.owners[name] = call.owner
        self.bind(out, Ref(name, actual, rf))

    def _numel(self, name):
        return self._param_sizes[name]

    def unsupported_call(self, call: Call, detail: str = "", params=None):
        params = list(params or [])
        self.used.update(params)
        self.unsupported.append(
            {
                "call": call.label,
                "at": self.unique(call.base),
                "detail": detail,
                "params": sum(self._numel(p) for p in params if p not in self.counted),
            }
        )
        self.counted.update(params)
        refs = [r for r in (self.ref(t) for t in tensors_in((call.args, call.kwargs))) if r is not None]
        src = refs[0] if refs else None
        for t in tensors_in(call.out):
            if src is None:
                continue
            shape = sample_shape(t)
            base = src.base or src
            self.bind(t, Ref(base.name, shape, rf_for(base.rf, shape)))
