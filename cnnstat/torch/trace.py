"""nn.Module -> cnnstat Graph, on the meta device (shapes only, no activations).

First torch.fx: symbolic tracing (leaves: mapped modules and torch.nn's own), then an fx
Interpreter runs the graph on meta tensors and reports every node to the recorder. A forward
that fx cannot trace (Python control flow on tensor shapes, ...) runs instead under module hooks
and a torch-function mode, which report the same calls as they happen.
"""

from __future__ import annotations

import warnings

import torch
import torch.fx as fx
from torch.overrides import TorchFunctionMode

from cnnstat.errors import CnnstatError
from cnnstat.graph import Graph
from cnnstat.torch.detection import per_image
from cnnstat.torch.mapping import function_label, is_leaf
from cnnstat.torch.recorder import Recorder

TRACE_BATCH = 2  # not 1: squeeze() must not drop the batch axis


class TorchGraph(Graph):
    """A :class:`~cnnstat.graph.Graph` imported from a module, with what the import saw:
    ``unsupported`` calls (each an ``opaque`` layer: parameters counted, MACs unknown),
    parameters the forward never used (``not_executed``: module path -> count; counted, in
    ``unused`` layers, at 0 MACs), the ``tracer`` used and, when fx failed, why.
    ``module_params`` / ``module_buffers``: the module's own counts (buffers less BatchNorm's
    ``num_batches_tracked``), which the graph's totals equal. ``notes``: what the totals are
    for, where that is a convention (a two-stage detector's heads per stated RoIs)."""

    __slots__ = (
        "unsupported",
        "not_executed",
        "tracer",
        "fx_error",
        "owners",
        "module_params",
        "module_buffers",
        "stopped",
        "notes",
    )


class _Tracer(fx.Tracer):
    """Leaves: mapped modules and torch.nn's own. Buffers are traced as attributes
    (``get_attr``) as parameters are: by default fx runs arithmetic on buffers alone while it
    traces and stores the result as an anonymous constant (``_tensor_constant0``), so the
    buffers it was computed from looked unread (``unused``, their module "not run")."""

    proxy_buffer_attributes = True

    def is_leaf_module(self, m, qualname):
        return is_leaf(m)


def _same_shape_modules() -> frozenset:
    """torch.nn modules whose output is a tensor shaped as their one input: on the meta device
    running them only computes that shape (batch norm's decomposition costs a millisecond)."""
    from torch import nn

    return frozenset(
        (
            nn.BatchNorm1d,
            nn.BatchNorm2d,
            nn.BatchNorm3d,
            nn.LayerNorm,
            nn.GroupNorm,
            nn.ReLU,
            nn.ReLU6,
            nn.LeakyReLU,
            nn.SiLU,
            nn.GELU,
            nn.Hardswish,
            nn.Hardsigmoid,
            nn.Sigmoid,
            nn.Tanh,
            nn.Mish,
            nn.ELU,
            nn.Dropout,
            nn.Dropout1d,
            nn.Dropout2d,
            nn.Dropout3d,
            nn.Identity,
        )
    )


class _Interpreter(fx.Interpreter):
    def __init__(self, gm, rec):
        super().__init__(gm, garbage_collect_values=False)
        self.rec = rec
        self.seen_input = False
        self.same_shape = _same_shape_modules()

    def call_module(self, target, args, kwargs):
        module = self.fetch_attr(target)
        if type(module) in self.same_shape and len(args) == 1 and not kwargs:
            x = args[0]
            if isinstance(x, torch.Tensor) and x.device.type == "meta":
                # the shape is all a meta run gives: skip the forward (in place, or nn.Identity:
                # the input itself, as torch returns it)
                same = getattr(module, "inplace", False) or type(module) is torch.nn.Identity
                return x if same else torch.empty_like(x)
        return super().call_module(target, args, kwargs)

    def run_node(self, n):
        out = super().run_node(n)
        rec = self.rec
        if n.op == "placeholder":
            if not self.seen_input:
                rec.input(out)
                self.seen_input = True
        elif n.op == "call_module":
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            rec.module_call(n.target, self.fetch_attr(n.target), args, kwargs, out)
        elif n.op in ("call_function", "call_method"):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            stack = n.meta.get("nn_module_stack") or {}
            scope = _qualname(list(stack.values())[-1]) if stack else ""
            name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
            rec.function_call(scope, name, function_label(n.target), args, kwargs, out)
        return out


def _qualname(entry) -> str:
    return entry[0] if isinstance(entry, tuple) else str(entry)


def run_fx(module, x, rec):
    tracer = _Tracer()
    graph = tracer.trace(module)
    gm = fx.GraphModule(tracer.root, graph)
    _Interpreter(gm, rec).run(x)


class _State:
    def __init__(self):
        self.stack = []
        self.leaf_depth = 0
        self.recording = False  # the recorder at work: its own tensor calls are not the model's


class _Mode(TorchFunctionMode):
    def __init__(self, rec, state):
        super().__init__()
        self.rec, self.state = rec, state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.state.leaf_depth == 0 and not self.state.recording:
            name = getattr(func, "__name__", str(func))
            scope = self.state.stack[-1] if self.state.stack else ""
            self.state.recording = True
            try:
                self.rec.function_call(scope, name, function_label(func), args, kwargs, out)
            finally:
                self.state.recording = False
        return out


def run_hooks(module, x, rec):
    state = _State()
    handles = []

    def pre(path, leaf):
        def hook(m, args, kwargs):
            state.stack.append(path)
            if leaf:
                state.leaf_depth += 1

        return hook

    def post(path, leaf):
        def hook(m, args, kwargs, out):
            state.stack.pop()
            if leaf:
                state.leaf_depth -= 1
                if state.leaf_depth == 0:
                    state.recording = True
                    try:
                        rec.module_call(path, m, args, kwargs, out)
                    finally:
                        state.recording = False

        return hook

    try:
        for path, m in module.named_modules():
            leaf = is_leaf(m)
            handles.append(m.register_forward_pre_hook(pre(path, leaf), with_kwargs=True))
            handles.append(m.register_forward_hook(post(path, leaf), with_kwargs=True))
        rec.input(x)
        with _Mode(rec, state):
            module(x)
    finally:
        for h in handles:
            h.remove()


def trace_module(module, input_shape, name="model", tracer="auto") -> TorchGraph:
    """The cnnstat graph of ``module`` (which must be on the meta device) at ``input_shape``
    (without batch). ``tracer``: 'auto' (fx, else hooks), 'fx' or 'hooks'."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_shape):
        raise CnnstatError(f"'{name}': the input must be positive sizes, got {list(input_shape)}")
    x = torch.empty(TRACE_BATCH, *input_shape, device="meta")
    fx_error = None
    rec = None
    whole, partial, notes = module, None, ()
    found = per_image(module)  # a torchvision detector: the network that runs per image
    if found is not None:
        module, partial, notes = found
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if tracer in ("auto", "fx"):
            rec = Recorder(module)
            try:
                run_fx(module, x, rec)
                used = "fx"
            except Exception as exc:  # fx cannot trace it, or the forward fails: try hooks
                fx_error = (
                    f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                )
                if tracer == "fx":
                    raise CnnstatError(f"torch.fx cannot trace '{name}': {fx_error}") from None
                rec = None
        if rec is None:
            rec = Recorder(module)
            try:
                run_hooks(module, x, rec)
            except Exception as exc:
                text = str(exc).strip().splitlines()
                first = text[0] if text else ""
                if not (rec.layers and _data_dependent(exc)):
                    raise CnnstatError(
                        f"the forward of '{name}' fails at input {'x'.join(map(str, input_shape))} "
                        f"(on the meta device): {type(exc).__name__}: {first}"
                    ) from None
                # An op whose output shape depends on values (nms, nonzero, unique): the meta
                # device cannot run it. What ran before it is counted; the rest is unknown.
                rec.stopped = f"{type(exc).__name__}: {first[:160]}"
                rec.unreached = f"not reached: the forward stopped at an op meta cannot run ({rec.stopped})"
            used = "hooks"
    if partial and rec.stopped is None:
        rec.stopped, rec.unreached = partial, f"not analysed: {partial}"
    if not rec.layers:
        raise CnnstatError(f"'{name}': the forward at this input made no layer cnnstat knows")
    rec.finish()  # what no layer holds: the graph's parameters are the module's, all of them
    module = whole
    graph = TorchGraph(
        name=name, input=tuple(input_shape), layers=rec.layers, description=type(module).__name__
    )
    graph.unsupported = rec.unsupported
    graph.notes = list(notes)
    graph.stopped = rec.stopped
    # modules past the stop were not reached (MACs unknown), not skipped by the forward
    graph.not_executed = {} if rec.stopped else _not_executed(module, rec.used)
    graph.tracer = used
    graph.fx_error = fx_error
    graph.owners = rec.owners
    graph.module_params = sum(p.numel() for p in module.parameters())
    graph.module_buffers = sum(rec._buffer_sizes.values())
    return graph


def _data_dependent(exc: Exception) -> bool:
    """A meta-device limitation (an op whose output shape depends on tensor values: nms,
    nonzero, unique), not an error of the model or of its input."""
    text = str(exc).lower()
    return isinstance(exc, NotImplementedError) or "meta" in text or "data-dependent" in text


def _not_executed(module, used: set) -> dict:
    """Parameters the forward never touched, by the outermost module holding only such."""
    unused = {n: p.numel() for n, p in module.named_parameters() if n not in used}
    if not unused:
        return {}
    out = {}
    for name, count in unused.items():
        parts = name.split(".")[:-1]
        owner = ""
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            sub = module.get_submodule(prefix)
            if all(f"{prefix}.{n}" in unused for n, _ in sub.named_parameters()):
                owner = prefix
                break
        owner = owner or name
        out[owner] = out.get(owner, 0) + count
    return out
