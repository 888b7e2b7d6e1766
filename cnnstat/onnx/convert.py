"""ONNX nodes -> cnnstat layers.

Every activation tensor of the graph is the values of a cnnstat tensor (:class:`Act`: the
layer that made it, its channels-first shape, its receptive field) under some arrangement of
its axes (:mod:`cnnstat.onnx.views`); every tensor computed from initializers and constants
alone is a :class:`Const` (its dims, its value when small, the initializers it is made of).
A node on activations becomes a layer of a cnnstat op, whose own handler in
:mod:`cnnstat.ops` computes shape, cost and receptive field; the shape is checked against
onnx's shape inference and the parameter count against the initializers the node reads, as
the PyTorch importer (:meth:`cnnstat.torch.recorder.Recorder.emit`) checks them against torch.

Never a silently wrong total (the PyTorch importer's rules):

- A node cnnstat has no op for, or whose op cannot take it, is an ``opaque`` layer
  (:mod:`cnnstat.ops.opaque`) with onnx's output shape, the initializers it reads and MACs
  unknown (``Layer.unknown``): totals that include it are lower bounds.
- Past it the receptive field is unknown (``rf`` None), unless every input already saw the
  whole input. So it is past a layout cnnstat cannot follow and past sampling it does not
  model (a Resize in a coordinate mode torch does not use).
- Initializers read as data that no layer holds at the end (a weight computed from other
  weights by a node on constants alone, a matrix product of constants) are an
  ``unattributed`` layer, so the parameters always equal the initializers the graph reads.
"""

from __future__ import annotations

from cnnstat.analysis import lost_text
from cnnstat.errors import CnnstatError, OpError
from cnnstat.graph import Layer
from cnnstat.onnx import views as V
from cnnstat.onnx.fold import attrs, constant_value, fold, tensor_value
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import REQUIRED, RF, prod


class Act:
    """An activation tensor: the values of cnnstat tensor ``name`` (a layer, or "input") of
    ``shape`` (channels first, no batch) laid out by ``view``. ``rf`` None: unknown, past
    ``lost`` ((label, layer) pairs)."""

    __slots__ = ("name", "shape", "rf", "view", "lost")

    def __init__(self, name, shape, rf, view, lost=()):
        self.name, self.shape, self.rf, self.view, self.lost = name, tuple(shape), rf, view, tuple(lost)

    @property
    def dims(self) -> tuple:
        return V.dims(self.view)


class Const:
    """A tensor of initializers and constants alone: ``dims`` (None: unknown), ``value``
    (numpy, None when large or unknown), ``params``, the initializers it is made of, and
    ``soft``, the Constant nodes' tensors it is made of (parameters only where they are a
    convolution's or a matrix product's weights: see :func:`cnnstat.onnx.ops.weights_of`).
    ``index``: integer initializers that looked values up in a learned table (Swin's relative
    position index): buffers, as the module's are, where a layer holds the result."""

    __slots__ = ("dims", "value", "params", "soft", "index")

    def __init__(self, dims, value=None, params=(), soft=(), index=()):
        self.dims, self.value = (None if dims is None else tuple(dims)), value
        self.params, self.soft, self.index = tuple(params), tuple(soft), tuple(index)

    @property
    def numel(self):
        return None if self.dims is None else prod(self.dims)


class Unfollowed(Exception):
    """A node cnnstat's ops cannot express: it becomes an opaque layer (the message says why)."""


# Data types whose initializers are parameters: floats and the integers quantized weights are
# stored as. 32- and 64-bit integers are shapes, axes and indices.
FLOAT_TYPES = {1, 10, 11, 16, 17, 18, 19, 20, 23}  # float, float16, double, bfloat16, float8*, float4
QUANT_TYPES = {2, 3, 4, 5, 21, 22, 25, 26}  # uint8, int8, uint16, int16, uint4, int4, uint2, int2
# Bits per element of ONNX's data types (a layer holding integer weights is counted at these).
BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 10: 16, 11: 64, 12: 32, 13: 64, 16: 16}
BITS.update({17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 25: 2, 26: 2})
INT_PARAMS = QUANT_TYPES | {6}  # int32: a quantized convolution's or product's bias
# Operators whose output has the broadcast shape of their inputs.
ELEMENTWISE = set(
    "Add Sub Mul Div Pow Max Min Mean Sum Mod Where Equal Less Greater LessOrEqual GreaterOrEqual And Or "
    "Xor Not Neg Abs Exp Log Sqrt Reciprocal Erf Sin Cos Tan Floor Ceil Round Sign IsNaN IsInf BitShift "
    "Relu Sigmoid Tanh Softsign ThresholdedRelu Shrink HardSigmoid HardSwish".split()
)
MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "ConvInteger", "MatMulInteger"}
UNKNOWN_OP = "cnnstat has no op for it"
UNATTRIBUTED = "initializers read by nodes on constants alone"


def is_bias(name: str) -> bool:
    own = name.replace("/", ".").rpartition(".")[2]
    return own.endswith("bias") or own.startswith("bias_") or own in ("B", "b")


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


def rf_for(rf: RF | None, shape: tuple) -> RF | None:
    """The field of a tensor of ``shape`` made from one with field ``rf`` by a layout cnnstat
    cannot follow: a collapsed field (every unit sees the whole input) stays what it is,
    whatever the layout; any other becomes unknown (None)."""
    if rf is None or not rf.collapsed:
        return None
    return rf


def module_path(name: str) -> str:
    """The module path of a node torch's exporter named ``/scope/.../Op``: each scope is a
    module's attribute name, or its parent's path and an index (``layer1.0`` in ``layer1``):
    ``/features/features.1/features.1.1/attn/MatMul`` -> ``features.1.1.attn``."""
    path = []
    for part in name.strip("/").split("/")[:-1]:
        for k in range(len(path) + 1):  # the longest end of the path the part starts with
            if k < len(path) and part.startswith(".".join(path[k:]) + "."):
                path = path[:k] + part.split(".")
                break
        else:
            path.append(part)
    return ".".join(path)


def _placeholder(shape) -> RF:
    return RF.input(tuple(shape[1:]) if len(shape) > 1 else ())


class Builder:
    def __init__(self, model, shape: tuple):
        import onnx

        self.model, self.opset, self.path = model, model.opset, model.path
        self.onnx = onnx
        self.shapes = model.shapes
        self.tensors: dict = {}
        self.layers: list = []
        self.taken = {"input"}
        self._scopes = None
        self.counted: set = set()  # initializers some layer holds
        self.used: set = set()  # initializers read as data
        self.unsupported: list = []
        self.constant_work: list = []
        self.fresh: dict = {}  # ONNX tensor -> the layer that made it (for a bias add to fold into)
        self.readers: dict = {}
        self.producer: dict = {}  # ONNX tensor -> the node that makes it
        self.consumers: dict = {}  # ONNX tensor -> the nodes that read it
        self.skip: set = set()  # ids of nodes a pattern already took (GELU's Add and Muls)
        for node in model.nodes:
            for name in node.input:
                self.readers[name] = self.readers.get(name, 0) + 1
                self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producer[name] = node
        for out in model.graph.output:
            self.readers[out.name] = self.readers.get(out.name, 0) + 1
        self.sizes = {}  # parameter -> elements
        self.param_dims = {}
        self.dtypes = {}  # initializer -> ONNX data type
        self.stored = {}  # layer -> (weight bytes, bias bytes) as the file stores integer weights
        for name, t in model.init.items():
            if isinstance(t, onnx.SparseTensorProto):
                dims, dtype, value = tuple(t.dims), t.values.data_type, None
            else:
                dims, dtype = tuple(t.dims), t.data_type
                value = tensor_value(t) if dtype not in FLOAT_TYPES or prod(dims) <= 4096 else None
            self.dtypes[name] = dtype
            param = dtype in FLOAT_TYPES | QUANT_TYPES
            if param:
                self.sizes[name] = prod(dims)
                self.param_dims[name] = dims
            self.tensors[name] = Const(dims, value, (name,) if param else ())
        self.input_shape = shape
        view = V.canonical(shape)
        if model.nhwc:
            view = (view[0], *view[2:], view[1])
        self.tensors[model.input.name] = Act(
            "input", shape, RF.input(shape[1:] if len(shape) > 1 else ()), view
        )

    # --- reading nodes ------------------------------------------------------------------------

    def get(self, node, i):
        """Input ``i`` of ``node``: an Act, a Const, or None when absent (optional)."""
        if i >= len(node.input) or not node.input[i]:
            return None
        return self.tensors[node.input[i]]

    def value(self, x, what: str):
        """The value of a constant setting (numpy); Unfollowed when it is computed at run time."""
        if x is None:
            return None
        if not isinstance(x, Const) or x.value is None:
            raise Unfollowed(f"its {what} is computed at run time")
        return x.value

    def onnx_dims(self, name):
        return self.shapes.get(name)

    def label(self, node) -> str:
        return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"

    def base(self, node, i) -> str:
        """A layer's name: the module path of a node torch's exporter named by its scope
        (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``, as the PyTorch import names
        it), else the node's name, else its first output's (the text syntax names no node),
        else operator and position."""
        if node.name.startswith("/"):
            path = module_path(node.name)
            if not path:
                return node.op_type.lower()
            if path not in self.scopes["parents"]:
                return path
            return f"{path}.{node.op_type.lower()}"  # a call in a module with submodules: layer1.0.add
        out = node.output[0] if len(node.output) else ""
        return node.name.strip("/") or out.strip("/") or f"{node.op_type}_{i}"

    @property
    def scopes(self) -> dict:
        """{"parents": module paths that hold other modules' nodes} of torch-named nodes."""
        if self._scopes is None:
            parents = set()
            for node in self.model.nodes:
                if node.name.startswith("/"):
                    parts = module_path(node.name).split(".")
                    parents.update(".".join(parts[:k]) for k in range(1, len(parts)))
            self._scopes = {"parents": parents}
        return self._scopes

    def unique(self, base: str) -> str:
        name, n = base, 0
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    # --- the walk -----------------------------------------------------------------------------

    def run(self):
        from cnnstat.onnx import quant  # noqa: F401  (registers the quantized operators)
        from cnnstat.onnx.ops import HANDLERS
        from cnnstat.onnx.patterns import PATTERN_INPUTS

        self.handlers, self.pattern_inputs = HANDLERS, PATTERN_INPUTS
        for i, node in enumerate(self.model.nodes):
            if id(node) not in self.skip:
                self.step(node, i)

    def holds_params(self, node) -> bool:
        """A control-flow node's subgraphs hold parameters, or read initializers that are."""
        from cnnstat.onnx.read import subgraph_names

        outer = [self.tensors.get(n) for n in subgraph_names(node)]
        return bool(self._subgraph_initializers(node)) or any(
            isinstance(x, Const) and (x.params or x.soft) for x in outer
        )

    def step(self, node, i):
        """One node: a constant, shape arithmetic, a node on constants alone, or a layer (its
        handler's, else opaque)."""
        HANDLERS, PATTERN_INPUTS = self.handlers, self.pattern_inputs
        self.node_base = self.base(node, i)
        ins = [self.get(node, k) for k in range(len(node.input))]
        acts = [x for x in ins if isinstance(x, Act)]
        if any(a.type in (5, 10) for a in node.attribute):  # GRAPH(S): what its subgraphs read too
            from cnnstat.onnx.read import subgraph_names

            names = sorted(subgraph_names(node))
            acts += [self.tensors[n] for n in names if isinstance(self.tensors.get(n), Act)]
            if not acts and self.holds_params(node):  # on constants, but parameters: a layer
                acts = [self.tensors[self.model.input.name]]
        if any(getattr(x, "pending", None) for x in acts) and node.op_type not in PATTERN_INPUTS:
            self.opaque(node, "reads a strided slice cnnstat follows only into a patch merge")
            return
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            self._constant(node)
            return
        if node.op_type in ("Shape", "Size") and ins and ins[0] is not None and ins[0].dims is not None:
            self._shape_of(node, ins[0])  # an activation's or a constant's: its dims
            return
        if not acts:
            self._on_constants(node, ins)
            return
        default = node.domain in ("", "ai.onnx")
        handler = HANDLERS.get(node.op_type if default else f"{node.domain}.{node.op_type}")
        try:
            if handler is None:
                raise Unfollowed("")
            handler(self, node)
        except Unfollowed as exc:
            self.opaque(node, str(exc))
        except OpError as exc:
            self.opaque(node, f"cnnstat cannot take it: {exc}")
        except CnnstatError:
            raise
        except Exception as exc:  # an untrusted file's odd attributes: never a traceback
            self.opaque(node, f"cnnstat cannot read it ({type(exc).__name__}: {str(exc)[:80]})")

    def _constant(self, node):
        """A Constant node: a setting, or (a tensor of more than one float or quantized
        element) a soft parameter, counted where it is a weight."""
        value, dims, soft = constant_value(node), self._out_dims(node, 0), ()
        a = {x.name: x for x in node.attribute}
        t = a["value"].t if "value" in a and a["value"].HasField("t") else None
        if t is not None:
            dims = tuple(t.dims)
            if t.data_type in FLOAT_TYPES | QUANT_TYPES and prod(t.dims) > 1:
                soft = (node.output[0],)
                self.sizes[node.output[0]] = prod(t.dims)
                self.param_dims[node.output[0]] = dims
        elif value is not None:
            dims = tuple(value.shape)
        self.tensors[node.output[0]] = Const(dims, value, (), soft)

    def _out_dims(self, node, k):
        d = self.onnx_dims(node.output[k])
        return d if d is not None and None not in d else None

    def _shape_of(self, node, x):
        import numpy as np

        dims = x.dims
        if node.op_type == "Size":
            value = np.array(prod(dims), dtype=np.int64)
        else:
            a = attrs(node)
            start, end = a.get("start", 0), a.get("end", len(dims))
            value = np.array(dims[slice(start, end)], dtype=np.int64)
        self.tensors[node.output[0]] = Const(value.shape, value)

    def as_param(self, name: str) -> tuple:
        """Initializer ``name`` as a parameter whatever its type (a quantized layer's int32
        bias); () when it is no initializer."""
        t = self.model.init.get(name)
        if t is None or not hasattr(t, "data_type"):
            return ()
        self.sizes[name] = prod(t.dims)
        self.param_dims[name] = tuple(t.dims)
        return (name,)

    def _on_constants(self, node, ins):
        """A node on constants alone: its outputs are constants, made of the initializers its
        data inputs are made of; a product of constants costs MACs no layer holds.
        (De)quantizing a constant: the quantized tensor, its scales and zero points settings
        (an int32 bias too is a parameter there)."""
        params = _unique(p for x in ins if isinstance(x, Const) for p in x.params)
        soft = _unique(p for x in ins if isinstance(x, Const) for p in x.soft)
        if node.op_type in ("Shape", "Size"):
            params = soft = ()  # they read the dims, not the values
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.domain in ("", "ai.onnx"):
            first = ins[0] if ins and isinstance(ins[0], Const) else None
            params = (first.params or self.as_param(node.input[0])) if first is not None else ()
            soft = first.soft if first is not None else ()
        outs_dims = [self._out_dims(node, k) for k in range(len(node.output))]
        if any(d is None for d, o in zip(outs_dims, node.output) if o):  # unknown upstream of here
            inferred = self._infer_dims(node, ins)
            outs_dims = [d if d is not None else inferred.get(o) for d, o in zip(outs_dims, node.output)]
        values = [x.value if isinstance(x, Const) else None for x in ins]
        outs = None
        if node.domain in ("", "ai.onnx") and all(
            x is None or (isinstance(x, Const) and x.value is not None) for x in ins
        ):
            outs = fold(node, values, self.opset, outs_dims[0] if outs_dims else None)
        if node.op_type in MAC_OPS and params:
            self.used.update(params)
            self.constant_work.append((self.node_base, self.label(node)))
        index = _unique(p for x in ins[:1] if isinstance(x, Const) for p in x.index)
        if node.op_type == "Gather" and len(ins) > 1 and params and self._int_table(node.input[1]):
            index = (*index, node.input[1])  # a learned table looked up by a stored index
        for k, out in enumerate(node.output):
            if not out:
                continue
            value = outs[k] if outs is not None and k < len(outs) else None
            dims = outs_dims[k]
            if dims is None and value is not None:
                dims = tuple(value.shape)
            self.tensors[out] = Const(dims, value, params, soft, index)

    def _int_table(self, name) -> bool:
        """An initializer of 32- or 64-bit integers of more than one element (registered as a
        possible buffer)."""
        t = self.model.init.get(name)
        if t is None or not hasattr(t, "data_type") or t.data_type not in (6, 7) or prod(t.dims) <= 1:
            return False
        self.sizes[name] = prod(t.dims)
        return True

    # --- layers --------------------------------------------------------------------------------

    def emit(
        self,
        node,
        op_name,
        args,
        inputs,
        *,
        params=(),
        buffers=(),
        out=None,
        view=None,
        shapes=None,
        rfs=None,
        lost=(),
        base=None,
        extra=(),
        extra_buffers=(),
    ) -> Act:
        """A layer of ``op_name`` reading ``inputs`` (Acts), holding the initializers
        ``params`` (weights and biases) and ``buffers``. Its output is ONNX tensor ``out``
        (default: the node's first output), laid out as ``view(shape)`` (default: channels
        first). ``shapes``/``rfs``: what the op sees when not the inputs' own (an input
        taken under another layout). ``lost``: (label, at) why its field is unknown here.
        ``extra``: initializers the layer holds beyond its op's own parameters (a learned
        table looked up and added: Swin's relative position bias), weights or biases by
        name, 0 MACs; ``extra_buffers``: the stored index it was looked up by."""
        op = REGISTRY[op_name]
        out = node.output[0] if out is None else out
        a = {arg.name: arg.default for arg in op.args if arg.default is not REQUIRED}
        a.update(args)
        if op.merge:
            a["branches"] = [x.name for x in inputs]
        shapes = [x.shape for x in inputs] if shapes is None else shapes
        rfs = [x.rf for x in inputs] if rfs is None else rfs
        lost = _unique((*lost, *self._lost(inputs)))
        if any(r is None for r in rfs) and not lost:
            lost = (("a layout cnnstat cannot follow", base or self.node_base),)
        placeholders = [r if r is not None else _placeholder(s) for r, s in zip(rfs, shapes)]
        shape, cost, rf = op.infer(a, shapes, placeholders)
        out_view = V.canonical(shape) if view is None else view(shape)
        expected = self.onnx_dims(out)
        if expected is not None and len(expected) == len(out_view):
            got = V.dims(out_view)
            if any(e is not None and e != g for e, g in zip(expected, got)):
                raise Unfollowed(
                    f"cnnstat's {op_name} gives {list(got)}, onnx's shape inference {list(expected)}"
                )
        elif expected is not None:
            raise Unfollowed(f"cnnstat's {op_name} gives rank {len(out_view)}, onnx's {len(expected)}")
        weights, biases = cost.weights, cost.biases
        params, buffers = _unique(params), _unique(buffers)
        have = sum(self.sizes.get(p, 0) for p in params)
        have_buffers = sum(self.sizes.get(b, 0) for b in buffers)
        if have != weights + biases:
            raise Unfollowed(
                f"cnnstat's {op_name} has {weights + biases} parameters, the initializers {have}"
            )
        if have_buffers != cost.buffers:
            raise Unfollowed(
                f"cnnstat's {op_name} has {cost.buffers} buffers, the initializers {have_buffers}"
            )
        already = [p for p in params if p in self.counted]
        if already:  # shared with an earlier layer: counted once
            total = weights + biases - sum(self.sizes[p] for p in already)
            biases = max(0, min(biases - sum(self.sizes[p] for p in already if is_bias(p)), total))
            weights = total - biases
        extra = [p for p in _unique(extra) if p not in params and p in self.sizes]
        for p in extra:
            if p not in self.counted:
                biases += self.sizes[p] if is_bias(p) else 0
                weights += 0 if is_bias(p) else self.sizes[p]
        params = (*params, *extra)
        buffers = (*buffers, *(b for b in _unique(extra_buffers) if b not in buffers and b in self.sizes))
        new_buffers = [b for b in buffers if b not in self.counted]
        name = self.unique(base or self.node_base)
        self._store(name, [p for p in params if p not in self.counted])
        self.counted.update(params)
        self.counted.update(buffers)
        self.used.update(params)
        self.used.update(buffers)
        if lost:
            rf = None
        layer = Layer(
            name=name,
            op=op_name,
            kind=op.kind,
            args=a,
            inputs=tuple(x.name for x in inputs),
            output=shape,
            weights=weights,
            biases=biases,
            buffers=sum(self.sizes.get(b, 0) for b in new_buffers),
            macs=cost.macs,
            rf=rf,
            rf_unknown=lost_text(lost) if lost else None,
        )
        self.layers.append(layer)
        act = Act(name, shape, rf, out_view, lost)
        if out:
            self.tensors[out] = act
            self.fresh[out] = (layer, node, inputs, shapes, rfs, params)
        return act

    @staticmethod
    def _lost(inputs) -> tuple:
        """(label, layer) pairs past which the field of any of ``inputs`` is unknown."""
        return _unique(o for x in inputs if x.rf is None for o in x.lost)

    def bind(self, out, act):
        if out:
            self.tensors[out] = act
        return act

    def opaque(self, node, detail: str = ""):
        """An ``opaque`` layer for ``node``: onnx's output shape, the initializers it reads (as
        data: floats and quantized integers of more than one element) that no layer holds
        yet, MACs unknown; its outputs' fields unknown unless every input sees the whole
        input. Listed in ``unsupported``."""
        from cnnstat.onnx.read import subgraph_names

        ins = [self.get(node, k) for k in range(len(node.input))]
        ins += [self.tensors[n] for n in sorted(subgraph_names(node)) if n in self.tensors]
        acts = list({x.name: x for x in ins if isinstance(x, Act)}.values())
        params = [
            p
            for x in ins
            if isinstance(x, Const) and (x.numel is None or x.numel > 1)
            for p in (*x.params, *x.soft)
        ]
        params += self._subgraph_initializers(node)
        params = list(_unique(params))
        self.used.update(params)
        new = [p for p in params if p not in self.counted]
        self.counted.update(params)
        name = self.unique(self.node_base)
        self._store(name, new)
        label = self.label(node)
        self.unsupported.append(
            {"call": label, "at": name, "detail": detail, "params": sum(self.sizes.get(p, 0) for p in new)}
        )
        outs = []
        for k, out in enumerate(node.output):
            if not out:
                continue
            d = self.onnx_dims(out)
            if d is None or None in d:
                d = (
                    self._infer_dims(node, ins).get(out)
                    or (self._broadcast_dims(node, ins) if k == 0 else None)
                    or self._carried_dims(node, k)
                    or d
                )
            if d is None or None in d:
                if self.readers.get(out, 0) == 0:
                    continue
                shown = "x".join(map(str, self.input_shape))
                raise CnnstatError(
                    f"{self.path}: the shape of tensor '{out}' (output of {label} node '{name}') "
                    f"cannot be inferred at input {shown}"
                    + (f" (onnx gives {['?' if v is None else v for v in d]})" if d is not None else "")
                )
            outs.append((out, tuple(d)))
        shape = V.raw(outs[0][1])[0] if outs else (0,)
        rf, lost = None, self._lost(acts)
        if acts and all(x.rf is not None and x.rf.collapsed for x in acts):
            rf = rf_for(acts[0].rf, shape)
        elif any(x.rf is not None for x in acts) or not lost:
            lost = _unique((*lost, (label, name)))
        weights = sum(self.sizes[p] for p in new if not is_bias(p))
        biases = sum(self.sizes[p] for p in new if is_bias(p))
        self.layers.append(
            Layer(
                name=name,
                op="opaque",
                kind=self._kind(new),
                args={"call": label, "detail": detail},
                inputs=tuple(x.name for x in acts) or ("input",),
                output=shape,
                weights=weights,
                biases=biases,
                buffers=0,
                macs=0,
                rf=rf,
                unknown=detail or UNKNOWN_OP,
                rf_unknown=lost_text(lost) if rf is None else None,
            )
        )
        for out, d in outs:
            s, view = V.raw(d)
            self.tensors[out] = Act(name, s, rf_for(rf, s) if rf is not None else None, view, lost)

    def _store(self, layer: str, params):
        """A layer holding integer weights (a quantized model's int8, int4, int32 biases):
        its weight and bias bytes as the file stores them, whatever ``--dtype`` says."""
        types = [self.dtypes.get(p) for p in params]
        if not any(t in INT_PARAMS for t in types):
            return
        size = {True: 0, False: 0}
        for p, t in zip(params, types):
            size[is_bias(p)] += -(-self.sizes[p] * BITS.get(t, 32) // 8)
        self.stored[layer] = (size[False], size[True])

    def _infer_dims(self, node, ins) -> dict:
        """onnx's inference of this one node from the dims cnnstat knows of its inputs (where
        the whole graph's inference lost them: a dim computed at run time upstream)."""
        onnx = self.onnx
        if node.domain not in ("", "ai.onnx") or len(node.input) != len(ins):
            return {}
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset)
            types, data = {}, {}
            for name, x in zip(node.input, ins):
                if not name or x is None or x.dims is None:
                    continue
                elem = self.model.types.get(name, onnx.TensorProto.FLOAT)
                if isinstance(x, Const) and x.value is not None:
                    data[name] = onnx.numpy_helper.from_array(x.value, name)
                    elem = data[name].data_type
                elif name in self.model.init and hasattr(self.model.init[name], "data_type"):
                    elem = self.model.init[name].data_type
                types[name] = onnx.helper.make_tensor_type_proto(elem, list(x.dims))
            got = onnx.shape_inference.infer_node_outputs(
                schema, node, types, data, opset_imports=[onnx.helper.make_opsetid("", self.opset)]
            )
        except Exception:
            return {}
        from cnnstat.onnx.read import dims_of

        out = {}
        for name, t in got.items():
            d = dims_of(t)
            if t.HasField("tensor_type") and t.tensor_type.elem_type:
                self.model.types.setdefault(name, t.tensor_type.elem_type)
            if d is not None and all(isinstance(v, int) for v in d):
                out[name] = d
        return out

    def _carried_dims(self, node, k):
        """Output ``k`` of a Loop or Scan that is a state carried through its body (onnx's
        inference leaves them unknown): the state's initial dims, when the body declares it
        keeps them. None otherwise."""
        from cnnstat.onnx.read import dims_of

        if node.op_type not in ("Loop", "Scan") or node.domain not in ("", "ai.onnx"):
            return None
        body = next((a.g for a in node.attribute if a.name == "body"), None)
        first = 2 if node.op_type == "Loop" else 0  # Loop: trip count and condition first
        skip = 1 if node.op_type == "Loop" else 0  # its body's first output is the condition
        if node.op_type == "Scan":
            states = len(node.input) - next((a.i for a in node.attribute if a.name == "num_scan_inputs"), 0)
        else:
            states = len(node.input) - 2
        if body is None or k >= states or first + k >= len(node.input) or skip + k >= len(body.output):
            return None
        x = self.tensors.get(node.input[first + k])
        declared = dims_of(body.output[skip + k].type)
        if x is None or x.dims is None or declared is None or tuple(declared) != tuple(x.dims):
            return None
        return tuple(x.dims)

    def _broadcast_dims(self, node, ins):
        """The output dims of an element-wise node (numpy broadcasting of its inputs), where
        onnx's inference left them unknown; None for other nodes."""
        if node.domain not in ("", "ai.onnx") or node.op_type not in ELEMENTWISE | {"Concat"}:
            return None
        if node.op_type == "Concat":
            dims = [x.dims if x is not None else None for x in ins]
            if any(d is None or len(d) != len(dims[0]) for d in dims):
                return None
            k = attrs(node).get("axis", 0) % len(dims[0])
            return tuple(sum(d[k] for d in dims) if i == k else dims[0][i] for i in range(len(dims[0])))
        shapes = []
        for x in ins:
            d = x.dims if x is not None else None
            if d is None:
                return None
            shapes.append(d)
        rank = max(len(d) for d in shapes)
        out = []
        for i in range(rank):
            sizes = {d[i - rank + len(d)] for d in shapes if i - rank + len(d) >= 0} - {1}
            if len(sizes) > 1:
                return None
            out.append(sizes.pop() if sizes else 1)
        return tuple(out)

    def _subgraph_initializers(self, node, prefix=None) -> list:
        """The parameters a control-flow node's subgraphs hold (If's branches, a Loop's or
        Scan's body, nested ones too): their initializers, and their Constant nodes' tensors,
        of floats or quantized integers of more than one element. Keyed ``node/name``: a
        subgraph's names are its own."""
        prefix = prefix or self.node_base
        names = []

        def add(name, t):
            if t.data_type in FLOAT_TYPES | QUANT_TYPES and prod(t.dims) > 1:
                key = f"{prefix}/{name}"
                self.sizes[key] = prod(t.dims)
                self.param_dims[key] = tuple(t.dims)
                self.dtypes[key] = t.data_type
                names.append(key)

        for attr in node.attribute:
            graphs = [attr.g] if attr.type == self.onnx.AttributeProto.GRAPH else list(attr.graphs)
            for g in graphs:
                for t in g.initializer:
                    add(t.name, t)
                for n in g.node:
                    if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                        value = {a.name: a for a in n.attribute}.get("value")
                        if value is not None and value.HasField("t"):
                            add(n.output[0], value.t)
                    names += self._subgraph_initializers(n, f"{prefix}/{n.name or n.op_type}")
        return names

    def _kind(self, names) -> str:
        kinds = set()
        for name in names:
            if is_bias(name):
                continue
            axes = len([d for d in self.param_dims.get(name, ()) if d != 1])
            kinds.add("conv" if axes > 2 else "fc" if axes == 2 else "other")
        return next((k for k in ("conv", "fc") if k in kinds), "other")

    # --- the end ------------------------------------------------------------------------------

    def finish(self):
        """Layers, put first, for initializers no layer holds: read by nodes on constants
        alone (``unattributed``, MACs unknown), and products of constants whose MACs are in
        no layer."""
        front = []

        def layer(base, params, unknown, args):
            name = self.unique(base)
            self.counted.update(params)
            front.append(
                Layer(
                    name=name,
                    op="unattributed",
                    kind=self._kind(params),
                    args=args,
                    inputs=("input",),
                    output=(0,),
                    weights=sum(self.sizes[p] for p in params if not is_bias(p)),
                    biases=sum(self.sizes[p] for p in params if is_bias(p)),
                    buffers=0,
                    macs=0,
                    rf=RF.input(()),
                    unknown=unknown,
                )
            )

        for base, label in self.constant_work:
            reason = "a product of constants alone: its MACs are in no layer"
            layer(base, [], reason, {"module": "", "call": label})
        left = [p for p in self.used if p not in self.counted and p in self.sizes]
        if left:
            left.sort(key=list(self.sizes).index)
            layer(
                "(initializers)", left, UNATTRIBUTED, {"module": "", "call": "(initializers no layer holds)"}
            )
        self.layers[:0] = front
