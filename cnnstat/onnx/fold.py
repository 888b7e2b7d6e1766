"""Values of the small constants a graph computes: shape arithmetic (Shape -> Gather -> Concat
-> Reshape), axes, pads, sizes. Exporters leave such chains in a model with dynamic axes;
the operators' settings (where a Slice starts, what size a Resize makes) are read from them.

Only tensors of at most :data:`~cnnstat.onnx.read.SMALL` elements are computed, with numpy
for the common operators and onnx's reference implementation for the rest; anything that
fails is simply unknown (``None``), and an operator whose settings are unknown is not
followed (it becomes an opaque layer, or an error when its shape is needed).
"""

from __future__ import annotations

from cnnstat.onnx.read import SMALL


def attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def tensor_value(t):
    """A TensorProto's values (numpy), or None when it is external or too large."""
    import onnx
    from onnx import numpy_helper

    if t.data_location == onnx.TensorProto.EXTERNAL:
        return None
    n = 1
    for d in t.dims:
        n *= d
    if n > SMALL:
        return None
    try:
        return numpy_helper.to_array(t)
    except Exception:
        return None


def constant_value(node):
    """The value of a Constant node (any of its forms)."""
    import numpy as np
    import onnx

    a = attrs(node)
    if "value" in a:
        return tensor_value(a["value"]) if isinstance(a["value"], onnx.TensorProto) else None
    if "value_float" in a:
        return np.array(a["value_float"], dtype=np.float32)
    if "value_floats" in a:
        return np.array(a["value_floats"], dtype=np.float32)
    if "value_int" in a:
        return np.array(a["value_int"], dtype=np.int64)
    if "value_ints" in a:
        return np.array(a["value_ints"], dtype=np.int64)
    return None


def _axes(node, values, opset, since=13):
    """Axes given as an attribute (older opsets) or as the second input."""
    a = attrs(node)
    if "axes" in a:
        return [int(x) for x in a["axes"]]
    if len(values) > 1 and values[1] is not None:
        return [int(x) for x in values[1].reshape(-1)]
    return None


def _small(shape) -> bool:
    n = 1
    for d in shape:
        n *= int(d)
    return n <= SMALL


def fold(node, values: list, opset: int, out_dims=None):
    """The outputs of ``node`` on constant inputs ``values`` (numpy arrays, None for absent
    optional ones), or None when they cannot be computed here or would be larger than
    :data:`SMALL` elements (``out_dims``: the first output's dims, when known)."""
    import numpy as np

    if out_dims is not None and not _small(out_dims):
        return None
    op = node.op_type
    a = attrs(node)
    try:
        x = values[0] if values else None
        if op == "Constant":
            return [constant_value(node)]
        if any(v is None for v in values[:1]) and op not in ("ConstantOfShape",):
            return None
        if op in ("Identity", "Cast", "CastLike"):
            if op == "Cast":
                from onnx import helper

                return [x.astype(helper.tensor_dtype_to_np_dtype(a["to"]))]
            return [x if op == "Identity" else x.astype(values[1].dtype)]
        if op == "Gather":
            axis = a.get("axis", 0)
            if not _small(
                (
                    *x.shape[: axis % max(x.ndim, 1)],
                    *np.shape(values[1]),
                    *x.shape[axis % max(x.ndim, 1) + 1 :],
                )
            ):
                return None
            return [np.take(x, values[1], axis=axis)]
        if op == "Concat":
            return [np.concatenate([np.atleast_1d(v) for v in values], axis=a["axis"])]
        if op == "Unsqueeze":
            axes = sorted(v % (x.ndim + len(_axes(node, values, opset))) for v in _axes(node, values, opset))
            for ax in axes:
                x = np.expand_dims(x, ax)
            return [x]
        if op == "Squeeze":
            axes = _axes(node, values, opset)
            return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes))]
        if op == "Slice":
            starts, ends = values[1], values[2]
            axes = values[3] if len(values) > 3 and values[3] is not None else range(len(starts))
            steps = values[4] if len(values) > 4 and values[4] is not None else [1] * len(starts)
            index = [slice(None)] * x.ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                index[int(ax)] = slice(int(s), int(e), int(st))
            return [x[tuple(index)]]
        binary = {
            "Add": np.add,
            "Sub": np.subtract,
            "Mul": np.multiply,
            "Equal": np.equal,
            "Less": np.less,
            "Greater": np.greater,
            "Max": np.maximum,
            "Min": np.minimum,
            "And": np.logical_and,
            "Or": np.logical_or,
        }
        if op in {*binary, "Div", "Mod", "Where"} and not _small(
            np.broadcast_shapes(*(np.shape(v) for v in values))
        ):
            return None
        if op in binary and len(values) == 2:
            return [binary[op](x, values[1])]
        if op == "Div":
            y = values[1]
            if np.issubdtype(x.dtype, np.integer):
                return [np.trunc(x / y).astype(x.dtype)]
            return [x / y]
        if op == "Mod":
            return [np.fmod(x, values[1]) if a.get("fmod") else np.mod(x, values[1])]
        if op == "Where":
            return [np.where(x, values[1], values[2])]
        if op == "Not":
            return [np.logical_not(x)]
        if op == "Neg":
            return [-x]
        if op == "Abs":
            return [np.abs(x)]
        if op in ("Sqrt", "Floor", "Ceil"):
            return [{"Sqrt": np.sqrt, "Floor": np.floor, "Ceil": np.ceil}[op](x)]
        if op == "Reshape":
            shape = [int(v) for v in values[1]]
            shape = [x.shape[i] if v == 0 and not a.get("allowzero") else v for i, v in enumerate(shape)]
            return [x.reshape(shape)]
        if op == "Transpose":
            perm = a.get("perm")
            return [np.transpose(x, None if perm is None else [p % x.ndim for p in perm])]
        if op == "ConstantOfShape":
            from onnx import numpy_helper

            fill = numpy_helper.to_array(a["value"]).reshape(-1)[0] if "value" in a else np.float32(0)
            shape = [int(v) for v in values[0]]
            if np.prod(shape, dtype=np.int64) > SMALL:
                return None
            return [np.full(shape, fill, dtype=np.asarray(fill).dtype)]
        if op == "Expand":
            shape = np.broadcast_shapes(x.shape, tuple(int(v) for v in values[1]))
            if np.prod(shape, dtype=np.int64) > SMALL:
                return None
            return [np.broadcast_to(x, shape).copy()]
        if op == "Range":
            if values[2] == 0 or (values[1] - x) / values[2] > SMALL:
                return None
            return [np.arange(x, values[1], values[2])]
        if op in ("ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin"):
            fn = {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min}[op]
            axes = _axes(node, values, opset)
            keep = bool(a.get("keepdims", 1))
            return [fn(x, axis=None if not axes else tuple(axes), keepdims=keep)]
        if out_dims is None:  # the reference implementation only where the size is known
            return None
        return _reference(node, values, opset)
    except Exception:
        return None


def _reference(node, values, opset):
    """onnx's reference implementation of one node (any operator it knows)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if v is not None else "" for i, v in enumerate(values)]
    n = helper.make_node(
        node.op_type, names, [f"out{i}" for i in range(len(node.output))], domain=node.domain or ""
    )
    n.attribute.extend(node.attribute)
    feeds = {name: v for name, v in zip(names, values) if name}
    outs = ReferenceEvaluator(n, opsets={"": opset}).run(None, feeds)
    if any(getattr(o, "size", SMALL + 1) > SMALL for o in outs):
        return None
    return list(outs)
