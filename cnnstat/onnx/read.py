"""Reading an ONNX file: the bytes (bounded, regular files only), the protobuf (or ONNX's text
syntax), the checks, the input bound to one image, and onnx's shape inference.

Weights are never loaded: initializers are known by their dims and data type. Tensors stored
in external data files are not opened (the ``.onnx`` of a model over 2 GB holds only their
names); only small integer tensors held in the file itself are read (shapes, axes, pads,
scales: what the operators' settings need). Every problem is a :class:`CnnstatError` with one
message: the file is untrusted input.
"""

from __future__ import annotations

import os

from cnnstat.errors import CnnstatError
from cnnstat.files import open_regular, read_bytes
from cnnstat.ops.base import prod

MAX_BYTES = 2**31 - 1  # protobuf's limit: larger models keep their weights in external data
MIN_OPSET = 11
SMALL = 1 << 16  # elements: a constant read (shapes, axes, pads) or folded is at most this big
INSTALL = "pip install 'cnnstat[onnx]'"
WHAT = "ONNX model"  # in messages: "no such ONNX model: m.onnx", as cnnstat.files words them
FORMS = {1: "D", 2: "CxL", 3: "CxHxW", 4: "CxDxHxW"}  # --input for an input of this rank


def require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CnnstatError(f"ONNX models need the onnx package: {INSTALL}") from None


def parse(data: bytes, path: str):
    """A ModelProto from the binary protobuf, or from ONNX's text syntax (``<ir_version: 8,
    opset_import: ["" : 17]> graph (...) {...}``, as ``onnx.printer`` writes it): a binary
    model never starts with ``<`` (it would be field 7, the graph, with an invalid wire type)."""
    import onnx

    if data.lstrip()[:1] == b"<":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CnnstatError(f"{path}: not an ONNX model (neither protobuf nor ONNX text)") from None
        try:
            return onnx.parser.parse_model(text)
        except Exception as exc:  # onnx.parser.ParseError and the C++ parser's own
            first = str(exc).strip().splitlines()
            raise CnnstatError(f"{path}: ONNX text syntax error: {first[0] if first else exc}") from None
    return _from_protobuf(data, path)


def _not_protobuf(path: str) -> str:
    return f"{path}: not an ONNX model (the protobuf does not parse: truncated or another format)"


def _from_protobuf(data: bytes, path: str):
    """The ModelProto in ``data``, or one message saying the bytes are not one."""
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        raise CnnstatError(_not_protobuf(path)) from None
    return model


def opset_of(model, path: str) -> int:
    """The version of the default operator set; the model must import one we read."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not model.HasField("graph") or not (len(model.graph.node) or len(model.graph.output)):
        raise CnnstatError(f"{path}: not an ONNX model (no graph)")
    if not versions:
        raise CnnstatError(f"{path}: the model imports no opset of the default ONNX domain (opset_import)")
    version = versions[0]
    if not MIN_OPSET <= version <= newest:
        raise CnnstatError(
            f"{path}: opset {version} is not read (opsets {MIN_OPSET} to {newest}); convert it with "
            f"onnx.version_converter.convert_version(model, {min(max(version, MIN_OPSET), newest)})"
        )
    return version


def dims_of(type_proto) -> tuple | None:
    """A tensor type's dims: ints, a ``str`` for a symbolic dim, None for an unknown one;
    None when the rank is unknown (or it is no tensor)."""
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    out = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return tuple(out)


def subgraph_names(node) -> set:
    """Names a node's subgraphs (If, Loop, Scan) read from the enclosing scopes."""
    import onnx

    names = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            inner = {i.name for i in g.initializer} | {i.name for i in g.input}
            for n in g.node:
                inner |= set(n.output)
            for n in g.node:
                names |= {i for i in n.input if i and i not in inner}
                names |= {i for i in subgraph_names(n) if i not in inner}
            names |= {o.name for o in g.output if o.name not in inner}
    return names


def sort_nodes(graph, known: set, path: str) -> list:
    """The nodes in an order where each runs after what it reads: the file's order where it
    allows (Kahn's algorithm, the earliest ready node first), the order the exporter ran the
    forward in. A cycle, a tensor made twice or a read of nothing is an error."""
    import heapq

    producer = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in known:
                raise CnnstatError(f"{path}: tensor '{out}' is made twice (node {_label(node, i)})")
            producer[out] = i
    waits, readers = [], {}
    for i, node in enumerate(graph.node):
        needs = set()
        for name in (*node.input, *subgraph_names(node)):
            if not name or name in known:
                continue
            if name not in producer:
                raise CnnstatError(
                    f"{path}: node {_label(node, i)} reads '{name}', "
                    "which no node, input or initializer makes"
                )
            needs.add(producer[name])
        if i in needs:
            raise CnnstatError(f"{path}: the graph has a cycle (node {_label(node, i)} reads its own output)")
        waits.append(len(needs))
        for p in needs:
            readers.setdefault(p, []).append(i)
    ready = [i for i, n in enumerate(waits) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(graph.node[i])
        for r in readers.get(i, ()):
            waits[r] -= 1
            if waits[r] == 0:
                heapq.heappush(ready, r)
    if len(order) != len(graph.node):
        stuck = next(i for i, n in enumerate(waits) if n)
        raise CnnstatError(f"{path}: the graph has a cycle (through node {_label(graph.node[stuck], stuck)})")
    made = set(known) | set(producer)
    for out in graph.output:
        if out.name not in made:
            raise CnnstatError(f"{path}: graph output '{out.name}' is made by no node")
    return order


def _check_names(graph, path: str):
    """Every name is text: protobuf hands over a string that is not UTF-8 as bytes."""
    names = [graph.name]
    for vi in (*graph.input, *graph.output, *graph.value_info):
        names.append(vi.name)
    names += [t.name for t in graph.initializer]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        names += [a.name for a in node.attribute]
    if any(not isinstance(n, str) for n in names):
        raise CnnstatError(f"{path}: not an ONNX model (a name is not UTF-8 text)")


def _label(node, i) -> str:
    return f"'{node.name}' ({node.op_type})" if node.name else f"#{i} ({node.op_type})"


class Model:
    """A checked ONNX model, its input bound to one image of ``shape``, and the shapes onnx's
    inference gives every tensor (``shapes``: name -> dims, None for unknown ones)."""

    def __init__(self, proto, path: str):
        self.proto, self.path = proto, path
        self.graph = proto.graph
        self.opset = opset_of(proto, path)
        _check_names(self.graph, path)
        self.init = {t.name: t for t in self.graph.initializer}
        for s in self.graph.sparse_initializer:
            self.init[s.values.name or s.indices.name] = s
        inputs = [i for i in self.graph.input if i.name not in self.init]
        if not inputs:
            raise CnnstatError(f"{path}: the model has no input (every tensor is a constant)")
        if len(inputs) > 1:
            names = ", ".join(f"'{i.name}'" for i in inputs[:4])
            raise CnnstatError(
                f"{path}: the model takes {len(inputs)} inputs ({names}); "
                "cnnstat analyzes networks of one input"
            )
        self.input = inputs[0]
        declared = dims_of(self.input.type)
        if declared is None or not declared:
            raise CnnstatError(
                f"{path}: input '{self.input.name}' has no known rank (a tensor [N, C, H, W] is expected)"
            )
        self.declared = declared
        known = set(self.init) | {i.name for i in self.graph.input}
        self.nodes = sort_nodes(self.graph, known, path)
        self.nhwc = self._channels_last()
        self.shapes: dict = {}
        self.types: dict = {}

    def _channels_last(self) -> bool:
        """Every reader of a 4-D or 5-D input moves its last axis to axis 1: the input is
        channels last (TensorFlow's NHWC), the first node makes it NCHW."""
        rank = len(self.declared)
        if rank not in (4, 5):
            return False
        perm = [0, rank - 1, *range(1, rank - 1)]
        readers = [n for n in self.nodes if self.input.name in n.input]
        if not readers:
            return False
        for n in readers:
            attr = {a.name: a for a in n.attribute}
            if n.op_type != "Transpose" or "perm" not in attr:
                return False
            if [p % rank for p in attr["perm"].ints] != perm:
                return False
        return True

    # --- the input ---------------------------------------------------------------------

    def model_input(self) -> tuple:
        """The input cnnstat sees at the model's own sizes (channels first, no batch), with
        ``None`` where a dim is symbolic."""
        dims = [d if isinstance(d, int) else None for d in self.declared[1:]]
        if self.nhwc:
            dims = [dims[-1], *dims[:-1]]
        return tuple(dims)

    def bind(self, shape: tuple | None, resolution: tuple | None = None) -> tuple:
        """The input (channels first, no batch) for ``shape`` (``--input``) or ``resolution``
        ((W, H): ``--resolution``), else the model's own; the batch is bound to 1."""
        name, path = self.input.name, self.path
        shown = "x".join("?" if d is None else str(d) for d in self.declared)
        batch = self.declared[0]
        if isinstance(batch, int) and batch != 1:
            raise CnnstatError(
                f"{path}: input '{name}' ({shown}) has a fixed batch of {batch}: cnnstat counts one image "
                "and scales by --batch; export the model with batch 1 or a dynamic batch axis"
            )
        own = self.model_input()
        if resolution is not None:
            if len(own) < 3:
                raise CnnstatError(f"--resolution needs a model with image input; '{path}' takes {shown}")
            if own[0] is None:
                raise CnnstatError(f"{path}: the input's channels are symbolic: give --input CxHxW")
            shape = (own[0], *own[1:-2], resolution[1], resolution[0])
        if shape is None:
            symbolic = [str(d) for d in self.declared[1:] if not isinstance(d, int)]
            if symbolic:
                what = ", ".join(f"'{d}'" if d != "None" else "?" for d in symbolic)
                raise CnnstatError(
                    f"{path}: input '{name}' ({shown}) has symbolic dimensions ({what}): "
                    f"give --input {FORMS.get(len(own), 'CxHxW')}"
                )
            return tuple(own)
        shape = tuple(shape)
        if len(shape) != len(own):
            raise CnnstatError(
                f"--input {'x'.join(map(str, shape))} has {len(shape)} dimensions; {path} takes "
                f"{len(own)} (its input '{name}' is {shown}, the batch first)"
            )
        fixed = [(i, a, b) for i, (a, b) in enumerate(zip(own, shape)) if a is not None and a != b]
        if fixed:
            own_text = "x".join("?" if d is None else str(d) for d in own)
            raise CnnstatError(
                f"{path}: input '{name}' is fixed at {own_text}, not {'x'.join(map(str, shape))}: "
                "analysing it "
                "at another size needs a model exported with dynamic axes"
            )
        return shape

    def infer(self, shape: tuple):
        """Run onnx's shape inference with the input bound to ``[1, *shape]`` (channels last
        again for an NHWC model). Large initializers become inputs of known shape in a
        skeleton model, so no weight is copied or read."""
        import onnx

        onnx_dims = (1, *shape[1:], shape[0]) if self.nhwc else (1, *shape)
        skel = onnx.ModelProto()
        skel.ir_version = max(self.proto.ir_version, 4)
        skel.opset_import.extend(self.proto.opset_import)
        skel.functions.extend(self.proto.functions)
        g = skel.graph
        g.name = self.graph.name
        g.node.extend(self.nodes)
        inp = g.input.add()
        inp.name = self.input.name
        inp.type.tensor_type.elem_type = self.input.type.tensor_type.elem_type or onnx.TensorProto.FLOAT
        for d in onnx_dims:
            inp.type.tensor_type.shape.dim.add().dim_value = d
        for t in self.init.values():
            if isinstance(t, onnx.SparseTensorProto):
                vi = g.input.add()
                vi.name = t.values.name
                vi.type.tensor_type.elem_type = t.values.data_type
                for d in t.dims:
                    vi.type.tensor_type.shape.dim.add().dim_value = d
            elif is_small(t):
                g.initializer.append(t)
            else:
                vi = g.input.add()
                vi.name = t.name
                vi.type.tensor_type.elem_type = t.data_type
                for d in t.dims:
                    vi.type.tensor_type.shape.dim.add().dim_value = d
        for out in self.graph.output:
            o = g.output.add()
            o.name = out.name
        try:
            inferred = onnx.shape_inference.infer_shapes(skel, strict_mode=False, data_prop=True)
        except Exception:  # a model inference rejects: the converter says which tensor is unknown
            inferred = skel
        shapes, types = {}, {}
        for vi in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
            d = dims_of(vi.type)
            if d is not None:
                shapes[vi.name] = tuple(x if isinstance(x, int) else None for x in d)
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                types[vi.name] = vi.type.tensor_type.elem_type
        self.shapes, self.types = shapes, types
        return onnx_dims


def is_small(t) -> bool:
    """An initializer held in the file (not external), of at most :data:`SMALL` elements."""
    import onnx

    external = t.data_location == onnx.TensorProto.EXTERNAL
    return not external and prod(t.dims) <= SMALL


def read_model(path: str):
    """The ModelProto at ``path`` without the values of its large initializers (never read:
    :mod:`cnnstat.onnx.skim`); a file in ONNX's text syntax is read whole."""

    from cnnstat.onnx.skim import Bad, skim

    with open_regular(path, WHAT, buffering=1 << 16) as f:
        try:
            if f.read(4096).lstrip()[:1] == b"<":  # ONNX's text syntax: read whole, bounded
                return parse(read_bytes(path, WHAT, limit=MAX_BYTES), path)
            f.seek(0)
            data = skim(f, os.fstat(f.fileno()).st_size, MAX_BYTES)
        except Bad:
            raise CnnstatError(_not_protobuf(path)) from None
        except OSError as exc:
            raise CnnstatError(f"cannot read {WHAT} {path}: {exc.strerror or exc}") from None
    return _from_protobuf(data, path)


def load(path: str) -> Model:
    require_onnx()
    import onnx

    proto = read_model(path)
    if len(proto.functions):
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception:
            pass  # calls of local functions stay opaque
    return Model(proto, path)
