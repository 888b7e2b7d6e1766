"""Calls observed on meta tensors -> cnnstat layers.

Both tracers (torch.fx, and module hooks with a torch-function mode) report each module call
and each function call with its actual arguments and result (meta tensors: shapes, no data).
The recorder keeps, for every tensor, what cnnstat knows of it (:class:`Ref`: the layer that
made it, its shape without batch, its receptive field), asks :mod:`cnnstat.torch.mapping` for
the cnnstat op, and runs that op's registered handler for shape, cost and receptive field.

Never a silently wrong total:

- A call without a mapping (or whose op cannot take it) becomes an ``opaque`` layer
  (:mod:`cnnstat.ops.opaque`) with torch's output shape, the parameters and buffers it reads,
  and MACs unknown (``Layer.unknown``): totals that include it are lower bounds.
- Past such a call the receptive field is unknown (``Ref.rf`` and ``Layer.rf`` None), unless
  every input already saw the whole input; layers computed from an unknown field keep it
  unknown (their shape and cost use a placeholder field). Layout calls keep the field.
- Parameters and buffers no layer holds at the end (modules the forward never ran, reads
  no handler claimed) become ``unused`` / ``unattributed`` layers at the front (:meth:`finish`),
  so that the graph's parameters always equal ``sum(p.numel())`` of the module, and its
  buffers those of the module less BatchNorm's ``num_batches_tracked``.
"""

from __future__ import annotations

import torch

from cnnstat.analysis import lost_text
from cnnstat.errors import OpError
from cnnstat.graph import Layer
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import REQUIRED, RF


class Ref:
    """A tensor as cnnstat sees it. ``base``/``steps``: a pending chain of layout calls (view,
    transpose, ...) applied to ``base``; it becomes a layer (flatten, shuffle) or nothing.
    ``rf`` None: the receptive field is unknown (past a call cnnstat cannot follow).

    ``perm`` (with ``base``): where the torch tensor's axes come from when the steps only
    rearrange ``base``'s axes -- for each torch axis (batch included) the axis of the
    channels-first base (0 the batch, 1 the channels, 2... the positions) it is, or None for an
    inserted size-1 axis; base axes of size 1 may be missing. ``x.permute(0, 2, 3, 1)`` of a
    [B, C, H, W] layer: (0, 2, 3, 1), channels last. None: some other rearrangement (a reshape
    that mixes axes). Calls that act per position then run on the base, channels first
    (:meth:`Recorder.emit_laid`), and their torch result is that layer's output laid out
    alike."""

    __slots__ = ("name", "shape", "rf", "base", "steps", "perm", "make")

    def __init__(self, name, shape, rf, base=None, steps=(), perm=None, make=None):
        self.name, self.shape, self.rf, self.base, self.steps = name, shape, rf, base, steps
        self.perm = perm
        # a layer that makes the layout a rearrangement (``tokens``), made when a call needs
        # the layout: () -> (base, perm) or None
        self.make = make

    def layout(self, ndim: int) -> tuple:
        """(channels-first Ref, perm of the torch tensor's ``ndim`` axes; None: not a
        rearrangement of axes)."""
        if self.base is None:
            return self, tuple(range(ndim))
        if self.make is not None:
            made, self.make = self.make(), None
            if made is not None:
                self.base, self.perm = made
                self.name = self.base.name
        return self.base, self.perm


def channels_first(tensor, perm, rank: int):
    """A meta tensor shaped as the channels-first tensor (``rank`` axes, batch included) of
    which ``tensor`` is the rearrangement ``perm`` (see :class:`Ref`); None if it is not one."""
    if perm is None or len(perm) != tensor.dim():
        return None
    shape = [1] * rank
    for size, axis in zip(tensor.shape, perm):
        if axis is None:
            if size != 1:
                return None
        elif axis >= rank:
            return None
        else:
            shape[axis] = int(size)
    return torch.empty(shape, device="meta")


# Ops that act on each element alone: on a rearranged tensor they run on its base, whatever
# the rearrangement (softmax, along an axis, and prelu, per channel, are not among them).
ELEMENTWISE = frozenset(
    (
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "celu",
        "gelu",
        "mish",
        "softplus",
        "hardtanh",
        "logsigmoid",
        "sigmoid",
        "tanh",
        "silu",
        "hardswish",
        "hardsigmoid",
        "dropout",
        "identity",
    )
)
# Ops that act per position over the channels (and merges of equal layouts): on tensors
# rearranged alike (the same perm) they run on the bases.
PER_POSITION = ELEMENTWISE | {"add", "mul"}


class Call:
    """One call: ``base`` is the layer name it gets (module path, or scope + function name)."""

    __slots__ = ("base", "label", "fname", "module", "args", "kwargs", "out", "owner", "buffers")

    def __init__(self, base, label, fname, module, args, kwargs, out, owner, buffers=()):
        self.base, self.label, self.fname, self.module = base, label, fname, module
        self.args, self.kwargs, self.out, self.owner = args, kwargs, out, owner
        self.buffers = buffers  # names of the buffers it reads (the module's own, or its inputs)

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


def rf_for(rf: RF | None, shape: tuple) -> RF | None:
    """``rf`` for a tensor of ``shape`` (without batch) made from one with field ``rf`` by a
    layout change (or by any call, when ``rf`` is collapsed); None (unknown) stays None.
    Spatial axes of one unit that the layout dropped (``squeeze(2)`` of [C, 1, W], ``x[:, :, i]``
    after a crop to one row) leave the field of the axes that remain."""
    if rf is None:
        return None
    n = len(shape) - 1
    if n == len(rf.size):
        return rf._replace(extent=tuple(shape[1:]))
    if len(shape) <= 1 or not rf.size:
        return rf
    dropped = _dropped_axes(rf, tuple(shape[1:]))
    if dropped is not None:
        return _without(rf, dropped)
    whole = rf.collapse()
    return RF((max(whole.size),) * n, (max(whole.jump),) * n, (0.0,) * n, tuple(shape[1:]), True)


def _dropped_axes(rf: RF, spatial: tuple):
    """The axes of one unit whose removal leaves ``spatial``, when that is unambiguous (those
    are all the axes of one unit); else None."""
    if rf.collapsed or len(spatial) >= len(rf.size):
        return None
    ones = [i for i, e in enumerate(rf.extent) if e == 1]
    if len(ones) != len(rf.size) - len(spatial):
        return None
    rest = tuple(e for i, e in enumerate(rf.extent) if i not in ones)
    return ones if rest == spatial else None


def _without(rf: RF, axes: list) -> RF:
    keep = [i for i in range(len(rf.size)) if i not in axes]

    def pick(values):
        return tuple(values[i] for i in keep)

    phases = None
    if rf.phases is not None and any(rf.phases[i] is not None for i in keep):
        phases = pick(rf.phases)
    return RF(pick(rf.size), pick(rf.jump), pick(rf.start), pick(rf.extent), rf.collapsed, phases)


# Functions that multiply-accumulate: on parameters and constants alone (a weight computed in
# the forward), their MACs are not in any layer, so the model's cost is flagged unknown.
MAC_FUNCTIONS = frozenset(
    ("linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "conv1d", "conv2d", "conv3d", "tensordot")
)
UNKNOWN_OP = "cnnstat has no op for it"
UNATTRIBUTED = "parameters read by calls that no layer holds them for"


def is_bias(name: str) -> bool:
    """A bias by its own name: ``bias``, ``in_proj_bias``, nn.LSTM's ``bias_ih_l0``."""
    own = name.rpartition(".")[2]
    return own.endswith("bias") or own.startswith("bias_")


def is_counted_buffer(name: str) -> bool:
    """Buffers cnnstat counts: all but BatchNorm's step counter (see the bn op)."""
    return name.rpartition(".")[2] != "num_batches_tracked"


def _placeholder(ref: Ref) -> RF:
    """A field for computing shape and cost from an input whose field is unknown."""
    return RF.input(tuple(ref.shape[1:]) if len(ref.shape) > 1 else ())


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


class Recorder:
    def __init__(self, module):
        named = list(module.named_parameters())
        self.root = module
        self.params = {id(p): name for name, p in named}  # id(parameter) -> name
        self._param_sizes = {name: p.numel() for name, p in named}
        self._param_shapes = {name: tuple(p.shape) for name, p in named}
        counted = [(n, b) for n, b in module.named_buffers() if is_counted_buffer(n)]
        self.buffers = {id(b): name for name, b in counted}  # id(buffer) -> name
        self._buffer_sizes = {name: b.numel() for name, b in counted}
        self.layers: list = []
        self.refs: dict = {}  # id(tensor) -> Ref
        self.pinned: list = []  # keeps every seen tensor alive, so ids are never reused
        self.used: set = set()  # parameter names the forward touched
        self.used_buffers: set = set()
        self.counted: set = set()  # parameter names already in some layer's count
        self.counted_buffers: set = set()
        self.derived: dict = {}  # id(tensor computed from parameters only) -> parameter names
        self.derived_buffers: dict = {}  # the same for buffers
        self.unsupported: list = []
        self.constant_work: list = []  # calls on parameters/constants alone whose MACs are lost
        self.lost: dict = {}  # layer name -> ((call, layer), ...) past which its field is unknown
        self.owners: dict = {}  # layer name -> module path that owns it ('' = the root)
        self.taken: set = {"input"}
        self.stopped: str | None = None  # why the analysis ends before the forward does
        self.unreached: str | None = None  # then: why modules it did not reach have MACs unknown

    # --- tensors ----------------------------------------------------------------------------

    def input(self, tensor):
        self.batch = int(tensor.shape[0])
        shape = sample_shape(tensor)
        self.bind(tensor, Ref("input", shape, RF.input(shape[1:] if len(shape) > 1 else ())))

    def bind(self, tensor, ref: Ref):
        self.pinned.append(tensor)
        self.refs[id(tensor)] = ref

    def ref(self, tensor) -> Ref | None:
        return self.refs.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def param_names(self, tensors) -> list:
        return self._names(tensors, self.params, self.derived)

    def buffer_names(self, tensors) -> list:
        return self._names(tensors, self.buffers, self.derived_buffers)

    @staticmethod
    def _names(tensors, own, derived) -> list:
        """Names of the parameters (or buffers) ``tensors`` are, are views of (torch.fx turns
        ``self.index.view(-1)`` into a constant: a view of the buffer) or were computed from."""
        names = []
        for t in tensors:
            base = getattr(t, "_base", None)
            for v in (t,) if base is None else (t, base):
                if id(v) in own:
                    names.append(own[id(v)])
                names.extend(derived.get(id(v), ()))
        return list(_unique(names))

    def unique(self, base: str) -> str:
        name, n = base, 0
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def _derive(self, out, params, buffers):
        """Outputs computed from parameters, buffers and constants alone: they count where a
        call that cnnstat follows reads them."""
        if params or buffers:
            for t in tensors_in(out):
                self.pinned.append(t)
                if params:
                    self.derived[id(t)] = _unique((*self.derived.get(id(t), ()), *params))
                if buffers:
                    self.derived_buffers[id(t)] = _unique((*self.derived_buffers.get(id(t), ()), *buffers))

    # --- events from the tracers ------------------------------------------------------------

    def module_call(self, path, module, args, kwargs, out):
        from cnnstat.torch.mapping import module_handler, module_label

        inputs = tensors_in((args, kwargs))
        names = [self.params[id(p)] for p in module.parameters() if id(p) in self.params]
        buffers = [self.buffers[id(b)] for b in module.buffers() if id(b) in self.buffers]
        buffers = list(_unique((*buffers, *self.buffer_names(inputs))))
        read = self.param_names(inputs)  # parameters passed in (a table it runs on)
        self.used.update(names + read)
        self.used_buffers.update(buffers)
        label = module_label(module)
        if not any(id(t) in self.refs for t in inputs):
            # A module run on parameters or constants alone (an MLP over a constant table):
            # its result counts where it is read, its own MACs are not in any layer.
            self._derive(out, names + read, buffers)
            if names:  # its own weights at work (a parameter-free one, dropout, costs nothing)
                self.constant_work.append((path or type(module).__name__.lower(), label, path))
            return
        call = Call(
            path or type(module).__name__.lower(), label, "", module, args, kwargs, out, path, buffers
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
        buffers = self.buffer_names(inputs)
        self.used.update(params)
        self.used_buffers.update(buffers)
        name = canonical(fname)
        if not any(id(t) in self.refs for t in inputs):
            # Constants, and tensors computed from parameters alone (weight.t(), w * scale):
            # the parameters count where a mapped call uses the result. A matrix product or
            # convolution among them costs MACs that no layer holds: flagged at the end.
            self._derive(out, params, buffers)
            if name in MAC_FUNCTIONS and params:
                self.constant_work.append((f"{scope}.{name}" if scope else name, label, scope))
            return
        call = Call(
            f"{scope}.{name}" if scope else name, label, name, None, args, kwargs, out, scope, buffers
        )
        handler = function_handler(name, label)
        if handler is None:
            self.unsupported_call(call, params=params)
        else:
            handler(self, call)

    # --- what handlers do -------------------------------------------------------------------

    def emit(self, call: Call, op_name: str, args: dict, inputs: list, params=None, out=None):
        """A layer of ``op_name`` reading ``inputs`` (Refs); ``params``: the parameter names it
        stands for (default: the module's own). Its output is ``out`` (default: the call's).
        Its buffers are those torch's call reads (the module's own, or buffer inputs), each
        counted once in the graph."""
        out = call.out if out is None else out
        if op_name in PER_POSITION and any(r is not None and r.base is not None for r in inputs):
            return self.emit_laid(call, op_name, args, inputs, params, out)
        return self._emit(call, op_name, args, inputs, params, out)

    def _emit(self, call, op_name, args, inputs, params, out):
        op = REGISTRY[op_name]
        if params is None:
            params = [self.params[id(p)] for p in call.module.parameters()] if call.module is not None else []
        if any(r is None for r in inputs):
            return self.unsupported_call(call, "reads a tensor cnnstat does not follow", params)
        a = {arg.name: arg.default for arg in op.args if arg.default is not REQUIRED}
        a.update(args)
        if op.merge:
            a["branches"] = [r.name for r in inputs]
        shapes = [r.shape for r in inputs]
        lost = self._lost(inputs)
        rfs = [r.rf if r.rf is not None else _placeholder(r) for r in inputs]
        try:
            shape, cost, rf = op.infer(a, shapes, rfs)
        except (OpError, IndexError, TypeError, ValueError) as exc:
            return self.unsupported_call(call, f"cnnstat's {op_name} cannot take it: {exc}", params)
        actual = sample_shape(out)
        if squeezed(shape) != squeezed(actual):
            return self.unsupported_call(
                call, f"cnnstat's {op_name} gives {list(shape)}, torch gives {list(actual)}", params
            )
        weights, biases = cost.weights, cost.biases
        if params and all(p in self.counted for p in params):
            weights = biases = 0  # a module called again: its weights are counted once
        elif params or weights or biases:
            have = sum(self._numel(p) for p in params)
            if have != weights + biases:
                return self.unsupported_call(
                    call, f"cnnstat's {op_name} has {weights + biases} parameters, torch's {have}", params
                )
            already = [p for p in params if p in self.counted]  # held by an earlier layer
            if already:
                total = weights + biases - sum(self._numel(p) for p in already)
                biases = max(0, min(biases - self._split(already)[1], total))
                weights = total - biases
        self.counted.update(params)
        name = self.unique(call.base)
        if lost:
            rf = None
            self.lost[name] = lost
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
                buffers=self._claim_buffers(call),
                macs=cost.macs,
                rf=rf,
                rf_unknown=lost_text(lost) if lost else None,
            )
        )
        self.owners[name] = call.owner
        self.bind(out, Ref(name, actual, rf))

    def emit_laid(self, call: Call, op_name: str, args: dict, inputs: list, params=None, out=None):
        """:meth:`emit` for an op that acts per position over the channels, on tensors whose
        axes are a rearrangement of a channels-first base (channels last, tokens [B, N, D]):
        the layer runs on the bases, channels first, and torch's output (``out``) is its
        output rearranged alike. Inputs must be rearranged alike (one ``perm``); an
        element-wise op takes any rearrangement. Otherwise a plain :meth:`emit`."""
        out = call.out if out is None else out
        if any(r is None for r in inputs):
            return self._emit(call, op_name, args, inputs, params, out)
        layouts = [r.layout(out.dim()) for r in inputs]
        bases = [b for b, _ in layouts]
        perms = {p for _, p in layouts}
        perm = next(iter(perms)) if len(perms) == 1 else None
        first = channels_first(out, perm, len(bases[0].shape) + 1)
        if first is None and op_name in ELEMENTWISE and len(inputs) == 1:
            perm = None  # any rearrangement: the op on the base, its output rearranged the same
            first = torch.empty((self.batch, *bases[0].shape), device="meta")
        if first is None:
            return self._emit(call, op_name, args, inputs, params, out)
        self._emit(call, op_name, args, bases, params, first)
        self.relay(first, out, inputs[0].steps, perm)

    def relay(self, first, out, steps, perm):
        """Bind torch's ``out`` to the layer that made the channels-first ``first``, laid out as
        ``perm`` (no layer was made, an opaque one holds ``out``: nothing to do)."""
        made = self.ref(first)
        if made is None:
            return
        actual = sample_shape(out)
        if perm == tuple(range(len(made.shape) + 1)):
            return self.bind(out, made)
        self.bind(out, Ref(made.name, actual, rf_for(made.rf, actual), made, steps, perm))

    def _numel(self, name):
        return self._param_sizes[name]

    def _claim_buffers(self, call) -> int:
        """Elements of the buffers ``call`` reads that no layer counts yet (now counted)."""
        new = [b for b in _unique(call.buffers) if b not in self.counted_buffers]
        self.counted_buffers.update(new)
        return sum(self._buffer_sizes[b] for b in new)

    def _lost(self, refs) -> tuple:
        """(call, layer) pairs past which the field of any of ``refs`` is unknown."""
        return _unique(
            o for r in refs if r.rf is None for o in self.lost.get(r.name, (("an unsupported call", r.name),))
        )

    def _kind(self, names) -> str:
        """conv | fc | other by where the weights live (see cnnstat.ops.opaque)."""
        from torch import nn

        kinds = set()
        for name in names:
            if is_bias(name):
                continue
            owner = self.root.get_submodule(name.rpartition(".")[0])
            if isinstance(owner, nn.modules.conv._ConvNd):
                kinds.add("conv")
            elif isinstance(owner, (nn.Linear, nn.Bilinear, nn.RNNBase, nn.MultiheadAttention)):
                kinds.add("fc")
            else:
                axes = len(squeezed(self._param_shapes[name]))  # a scale [C, 1, 1] is [C]
                kinds.add("conv" if axes > 2 else "fc" if axes == 2 else "other")
        return next((k for k in ("conv", "fc") if k in kinds), "other")

    def _split(self, names) -> tuple:
        """(weights, biases) of parameter names."""
        biases = sum(self._numel(n) for n in names if is_bias(n))
        return sum(self._numel(n) for n in names) - biases, biases

    def unsupported_call(self, call: Call, detail: str = "", params=None):
        """An ``opaque`` layer for ``call``: torch's output shape, the parameters and buffers
        it reads (those no layer counts yet), MACs unknown; its outputs' fields unknown unless
        every input already sees the whole input. Listed in ``unsupported``."""
        read = tensors_in((call.args, call.kwargs))
        if params is None and call.module is not None:  # a module's call: its own parameters
            params = [self.params[id(p)] for p in call.module.parameters() if id(p) in self.params]
        params = list(_unique((*(params or ()), *self.param_names(read))))
        self.used.update(params)
        refs = list({r.name: r for r in (self.ref(t) for t in read) if r is not None}.values())
        if not refs:  # nothing cnnstat follows goes in: a computation on constants
            self._derive(call.out, params, call.buffers)
            self.constant_work.append((call.base, call.label, call.owner))
            return
        new = [p for p in params if p not in self.counted]
        self.counted.update(params)
        name = self.unique(call.base)
        self.unsupported.append(
            {
                "call": call.label,
                "at": name,
                "detail": detail,
                "params": sum(self._numel(p) for p in new),
            }
        )
        outs = tensors_in(call.out)
        shape = sample_shape(outs[0]) if outs else (0,)
        rf, lost = None, self._lost(refs)
        if all(r.rf is not None and r.rf.collapsed for r in refs):
            rf = rf_for((refs[0].base or refs[0]).rf, shape)  # every unit already sees it all
        elif any(r.rf is not None for r in refs):
            lost = _unique((*lost, (call.label, name)))
        if lost:
            self.lost[name] = lost
        weights, biases = self._split(new)
        self.layers.append(
            Layer(
                name=name,
                op="opaque",
                kind=self._kind(new),
                args={"call": call.label, "detail": detail},
                inputs=tuple(r.name for r in refs),
                output=shape,
                weights=weights,
                biases=biases,
                buffers=self._claim_buffers(call),
                macs=0,
                rf=rf,
                unknown=detail or UNKNOWN_OP,
                rf_unknown=lost_text(lost) if rf is None else None,
            )
        )
        self.owners[name] = call.owner
        for t in outs:
            actual = sample_shape(t)
            self.bind(t, Ref(name, actual, rf_for(rf, actual)))

    # --- the end ------------------------------------------------------------------------------

    def finish(self):
        """Layers, put first, for what no layer holds: calls on parameters and constants alone
        whose MACs are lost (``unattributed``, MACs unknown; their parameters count where the
        result is read), then per module the parameters and buffers left: never read
        (``unused``: the module did not run, 0 MACs; when the analysis ``stopped`` early,
        ``unattributed`` with MACs unknown: ``unreached`` says why) or read by calls that did not claim
        them (``unattributed``; MACs unknown when parameters are among them)."""
        front = []

        def layer(name, op, owner, params, buffers, unknown, args):
            self.counted.update(params)
            self.counted_buffers.update(buffers)
            weights, biases = self._split(params)
            name = self.unique(name or "(root)")
            self.owners[name] = owner
            front.append(
                Layer(
                    name=name,
                    op=op,
                    kind=self._kind(params),
                    args=args,
                    inputs=("input",),
                    output=(0,),
                    weights=weights,
                    biases=biases,
                    buffers=sum(self._buffer_sizes[b] for b in buffers),
                    macs=0,
                    rf=RF.input(()),
                    unknown=unknown,
                )
            )

        for base, label, owner in self.constant_work:  # their parameters count where read
            reason = "runs on parameters and constants alone: its MACs are in no layer"
            layer(base, "unattributed", owner, [], [], reason, {"module": owner, "call": label})
        groups: dict = {}
        for name in self._param_sizes:
            if name not in self.counted:
                key = (name.rpartition(".")[0], name in self.used)
                groups.setdefault(key, ([], []))[0].append(name)
        for name in self._buffer_sizes:
            if name not in self.counted_buffers:
                key = (name.rpartition(".")[0], name in self.used_buffers)
                groups.setdefault(key, ([], []))[1].append(name)
        for (owner, read), (params, buffers) in groups.items():
            # named by their module; at the root, by the tensor when it is one
            name = owner if owner else (params + buffers)[0] if len(params + buffers) == 1 else "(root)"
            if read:
                unknown = UNATTRIBUTED if params else None
                args = {"module": owner, "call": "(parameters no layer holds)"}
                layer(name, "unattributed", owner, params, buffers, unknown, args)
            elif self.unreached:  # past the stop: may well run, at a cost not known
                unknown = self.unreached
                args = {"module": owner, "call": "(not reached)"}
                layer(name, "unattributed", owner, params, buffers, unknown, args)
            else:
                layer(name, "unused", owner, params, buffers, None, {"module": owner})
        self.layers[:0] = front
