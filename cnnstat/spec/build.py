"""Expand a spec into a :class:`~cnnstat.graph.Graph`, inferring shapes as it goes.

One pass over the layer list: blocks are instantiated, ``repeat`` unrolled, merges build their
branches from the current tensor, and every op's handler gives the output shape, cost and
receptive field. Cost is linear in the number of expanded layers.
"""

from __future__ import annotations

import ast
import os

from cnnstat._gc import paused_gc
from cnnstat.errors import OpError, SpecError, brief, did_you_mean
from cnnstat.graph import Graph, Layer
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import REQUIRED, RF
from cnnstat.spec.expr import FUNCTIONS, is_expr
from cnnstat.spec.expr import _parse as parse_expr
from cnnstat.spec.model import Spec, _typed, evaluate_at
from cnnstat.spec.yamlload import LList, LMap
from cnnstat.units import MAX_SIZE

RESERVED = ("name", "repeat", "first", "from", "if")
INPUT = "input"
IN_CHANNELS = "in_channels"  # inside a block: the channels of the block's input
# Expanded layers per graph: a guard against specs that would hang (huge repeats, YAML
# aliases nested to expand exponentially). Raise it with CNNSTAT_MAX_LAYERS.
MAX_LAYERS = int(os.environ.get("CNNSTAT_MAX_LAYERS", "1000000"))
LIMIT_HINT = "set CNNSTAT_MAX_LAYERS to allow more"
# Steps per run, whether or not they emit layers: every repeat iteration (a layer built or a
# block instantiated), every layer entry skipped (`if: false`, `repeat: 0`, and the entries
# of a skipped merge's branches), every include and every node YAML aliases and merge keys add
# (Spec.work). Blocks that emit nothing cannot run for ever. The zoo takes 1 to 3.5 steps per
# layer (MobileNet v2: 3.4, its optional layers skipped); a step that emits nothing costs about
# a third of a layer's build and analysis, so a spec that exhausts the default takes about as
# long as one of MAX_LAYERS layers.
MAX_WORK = int(os.environ.get("CNNSTAT_MAX_WORK", str(5 * MAX_LAYERS)))
WORK_HINT = "set CNNSTAT_MAX_WORK to allow more"
MAX_NESTING = 100  # blocks instantiated inside one another (the builder recurses per level)
# Every number in an op's arguments: integers up to 2^53 are exact as floats, and no product
# of a few of them overflows the receptive field's float maths (10^200 did). Shapes are
# bounded tighter (MAX_SIZE, 2^31: the spec's input and every layer's output).
MAX_ARG = 2**53


class _Tensor:
    __slots__ = ("name", "shape", "rf", "loc")

    def __init__(self, name, shape, rf, loc=None):
        self.name, self.shape, self.rf, self.loc = name, shape, rf, loc


class _Scope:
    __slots__ = ("prefix", "vars", "counters", "notes", "blocks")

    def __init__(self, prefix, vars, notes, blocks=()):
        self.prefix, self.vars, self.counters, self.notes = prefix, vars, {}, notes
        self.blocks = blocks  # the chain of blocks being instantiated, outermost first

    def auto_name(self, base: str) -> str:
        n = self.counters.get(base, 0) + 1
        self.counters[base] = n
        return f"{base}{n}"


def build(spec: Spec, input_shape: tuple | None = None, frame: bool = False) -> Graph:
    """The spec's layer graph at ``input_shape`` (default: the spec's own input).

    At another input, layers whose weights are sized by their input (fc, locally connected)
    must see the same input shape as at the spec's own input; otherwise the weights would
    silently change and the result would describe a different network. With ``frame``, the
    network runs fully convolutionally instead (the VGG paper's dense evaluation): each op's
    ``frame_args`` says how, e.g. an fc over spatial features becomes the convolution over the
    window it saw at the spec's input.
    """
    shape = tuple(input_shape) if input_shape else spec.input
    with paused_gc():
        if shape == spec.input and not frame:
            return _Builder(spec).run(shape)
        native = _Builder(spec)
        native.run(spec.input)
        return _Builder(spec, native.fixed, frame).run(shape)


class _Builder:
    def __init__(self, spec: Spec, expected: dict | None = None, frame: bool = False):
        self.spec = spec
        self.layers: list = []
        self.tensors: dict = {}
        self.fixed: dict = {}  # name -> [(shape, rf extent)] of each input, fixed-input layers
        self.expected = expected  # the same at the spec's own input, when building at another
        self.frame = frame
        self.resolved: dict = {}  # id(argument mapping) -> (mapping, resolved arguments)
        self.checked: dict = {}  # (id(argument mapping), block) -> mapping, for skipped layers
        self.same: dict = {}  # (op name, resolved arguments as pairs) -> the one dict of them
        self.work = spec.work  # steps so far: the spec's loading, then this build's

    def run(self, shape: tuple) -> Graph:
        self.input = shape
        rf = RF.input(shape[1:] if len(shape) > 1 else ())
        start = _Tensor(INPUT, shape, rf)
        self.tensors[INPUT] = start
        self.seq(self.spec.layers, start, _Scope("", {**self.spec.params, IN_CHANNELS: shape[0]}, []))
        return Graph(
            name=self.spec.name,
            input=shape,
            layers=self.layers,
            description=self.spec.description,
            source=self.spec.source,
            nominal=self.spec.nominal,
            file=self.spec.file,
        )

    # --- the layer list -------------------------------------------------------------------

    def seq(self, items, cur, scope):
        if not isinstance(items, LList):
            raise SpecError("expected a list of layers", getattr(items, "loc", None), scope.notes)
        for i, item in enumerate(items):
            cur = self.item(item, items.loc_of(i), cur, scope)
        return cur

    def parse_item(self, item, loc, scope):
        """``(op name, argument mapping, op or None, block or None)`` of one layer entry."""
        if isinstance(item, str):
            op_name, args = item, LMap.located(loc)
        elif isinstance(item, LMap) and len(item) == 1:
            op_name = next(iter(item))
            args, args_loc = item[op_name], item.locs[op_name]
            if args is None:
                args = LMap.located(args_loc)
            elif not isinstance(args, LMap):
                raise SpecError(
                    f"the arguments of '{op_name}' must be a mapping, got {brief(args)}",
                    args_loc,
                    scope.notes,
                )
        elif isinstance(item, LMap):
            raise SpecError(
                f"a layer is one op or block with its arguments; found keys {', '.join(item)}"
                " (put name/repeat/from inside the arguments)",
                loc,
                scope.notes,
            )
        else:
            raise SpecError(f"a layer must be an op name or a mapping, got {brief(item)}", loc, scope.notes)

        op = REGISTRY.get(op_name)
        op = None if op is not None and op.internal else op  # the PyTorch importer's own
        block = self.spec.blocks.get(op_name)
        if op is None and block is None:
            known = [n for n, o in REGISTRY.items() if not o.internal] + list(self.spec.blocks)
            raise SpecError(
                f"unknown op or block '{op_name}'" + did_you_mean(op_name, known), loc, scope.notes
            )
        return op_name, args, op, block

    def spend(self, n, loc, scope):
        """Count ``n`` steps towards :data:`MAX_WORK`."""
        self.work += n
        if self.work > MAX_WORK:
            raise SpecError(
                f"the spec takes more than {MAX_WORK:,} steps to expand (layers, block instances, "
                f"skipped layers, includes, YAML aliases; {WORK_HINT})",
                loc,
                scope.notes,
            )

    def item(self, item, loc, cur, scope):
        op_name, args, op, block = self.parse_item(item, loc, scope)

        def arg(key, default=None):
            if key not in args:
                return default
            return evaluate_at(args[key], scope.vars, args.locs[key], scope.notes)

        if "if" in args:
            cond = arg("if")
            if not isinstance(cond, bool):
                raise SpecError(
                    f"'if' must be true or false, got {brief(cond)}", args.locs["if"], scope.notes
                )
            if not cond:
                self.spend(1, loc, scope)
                self.skipped(op, block, args, scope)
                return cur
        repeat = arg("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
            raise SpecError(
                f"'repeat' must be a non-negative integer, got {brief(repeat)}",
                args.locs.get("repeat", loc),
                scope.notes,
            )
        if repeat > MAX_LAYERS:
            raise SpecError(
                f"repeat {repeat:,} exceeds the {MAX_LAYERS:,}-layer limit ({LIMIT_HINT})",
                args.locs["repeat"],
                scope.notes,
            )
        first = args.get("first")
        if first is not None and not isinstance(first, LMap):
            raise SpecError("'first' must be a mapping of arguments", args.locs["first"], scope.notes)
        name = arg("name")
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise SpecError(
                f"'name' must be a non-empty name without dots, got {brief(name)}",
                args.locs["name"],
                scope.notes,
            )
        if "from" in args:
            cur = self.lookup(arg("from"), args.locs["from"], scope)
        if repeat == 0:
            self.spend(1, loc, scope)
            self.skipped(op, block, args, scope)
        numbered = name is not None and "repeat" in args

        for i in range(repeat):
            self.work += 1  # self.spend(1, ...), written out: once per layer
            if self.work > MAX_WORK:
                self.spend(0, loc, scope)
            local = f"{name}.{i}" if numbered else name
            these = _with_first(args, first) if i == 0 and first else args
            if block is not None:
                local = local or scope.auto_name(op_name)
                note = f"in block '{op_name}' instantiated at {loc} ({local}"
                note += f", repeat {i + 1} of {repeat})" if repeat > 1 else ")"
                self.unique(scope.prefix + local, loc, scope)
                cur = self.instantiate(block, these, cur, scope, local, note)
                # The instance's name reads the block's output (`from: enc1`, U-Net skips):
                # its last tensor, under the instance's location for duplicate-name errors.
                self.tensors[scope.prefix + local] = _Tensor(cur.name, cur.shape, cur.rf, loc)
            elif op.merge:
                cur = self.merge(op, these, cur, scope, local or scope.auto_name(op_name), loc)
            else:
                local = local or scope.auto_name(op_name)
                a = self.resolve(op, these, scope)
                # Arguments naming an earlier layer (crop/upsample `like:`) read its output too.
                refs = [
                    self.lookup(a[g], these.locs.get(g, loc), scope)
                    for g in _layer_args(op)
                    if a[g] is not None
                ]
                cur = self.emit(op, a, scope.prefix + local, [cur, *refs] if refs else [cur], loc, scope)
        return cur

    # --- blocks, merges, plain ops --------------------------------------------------------

    def instantiate(self, block, args, cur, scope, local, note):
        values = {}
        for key, value in args.items():
            if key in RESERVED:
                continue
            if key not in block.params:
                raise _no_parameter(block, key, args, scope)
            vloc = args.locs.get(key, args.loc)
            v = evaluate_at(value, scope.vars, vloc, scope.notes)
            values[key] = _typed(v, block.params[key][0], key, vloc, scope.notes)
        inner = dict(self.spec.params)
        inner[IN_CHANNELS] = cur.shape[0]
        inner.update(values)
        for key, (_type, default) in block.params.items():
            if key in values:
                continue
            if default is REQUIRED:
                raise _needs_parameter(block, key, args, scope)
            inner[key] = evaluate_at(default, inner, block.loc, scope.notes) if is_expr(default) else default
        if block.name in scope.blocks:
            chain = " -> ".join((*scope.blocks, block.name))
            raise SpecError(f"block '{block.name}' instantiates itself ({chain})", args.loc, scope.notes)
        if len(scope.blocks) >= MAX_NESTING:
            raise SpecError(
                f"blocks nested more than {MAX_NESTING} deep (block '{block.name}')",
                args.loc,
                scope.notes[-3:],
            )
        child = _Scope(scope.prefix + local + ".", inner, scope.notes + [note], (*scope.blocks, block.name))
        return self.seq(block.body, cur, child)

    def merge(self, op, args, cur, scope, local, loc):
        branches = _branches(op, args, scope)
        prefix = scope.prefix + local
        outs = []
        for b in branches:
            body, bloc = args[b], args.locs[b]
            if body == "identity" or body is None or body == []:
                outs.append(cur)
            elif isinstance(body, LMap) and list(body) == ["from"]:
                ref = evaluate_at(body["from"], scope.vars, body.locs["from"], scope.notes)
                outs.append(self.lookup(ref, body.locs["from"], scope))
            elif isinstance(body, LList):
                outs.append(
                    self.seq(body, cur, _Scope(f"{prefix}.{b}.", scope.vars, scope.notes, scope.blocks))
                )
            else:
                raise _bad_branch(b, bloc, scope)
        return self.emit(op, {"branches": branches}, prefix, outs, loc, scope)

    # --- layers that are not built ---------------------------------------------------------

    def skipped(self, op, block, args, scope):
        """Check a layer that is not built (``if: false``, ``repeat: 0``), without shapes.

        Its argument (or block parameter) names are checked and the required ones must be
        given, as for a built layer; literal values are type-checked. Expressions are checked
        for syntax and parameter names only: their values may be valid only where the layer
        is built (``out: $head_fc`` under ``if: $(head_fc > 0)``). A skipped merge's branches
        are checked the same way, layer by layer (not the bodies of blocks they name).
        """
        key = (id(args), scope.blocks[-1] if scope.blocks else None)  # the names in scope
        done = self.checked.get(key)
        if done is not None and done is args:
            return
        first = args.get("first")
        if first is not None and not isinstance(first, LMap):
            raise SpecError("'first' must be a mapping of arguments", args.locs["first"], scope.notes)
        these = _with_first(args, first) if first else args
        for k in RESERVED:
            if k in args and k != "first":
                self.literal(args[k], args.locs[k], scope)
        if block is not None:
            for k, value in these.items():
                if k in RESERVED:
                    continue
                if k not in block.params:
                    raise _no_parameter(block, k, these, scope)
                vloc = these.locs.get(k, these.loc)
                if self.literal(value, vloc, scope):
                    _typed(value, block.params[k][0], k, vloc, scope.notes)
            for k, (_type, default) in block.params.items():
                if default is REQUIRED and k not in these:
                    raise _needs_parameter(block, k, these, scope)
        elif op.merge:
            for b in _branches(op, these, scope):
                body, bloc = these[b], these.locs[b]
                if body == "identity" or body is None or body == []:
                    continue
                if isinstance(body, LMap) and list(body) == ["from"]:
                    self.literal(body["from"], body.locs["from"], scope)
                elif isinstance(body, LList):
                    for i, item in enumerate(body):
                        self.spend(1, body.loc_of(i), scope)
                        _, item_args, item_op, item_block = self.parse_item(item, body.loc_of(i), scope)
                        self.skipped(item_op, item_block, item_args, scope)
                else:
                    raise _bad_branch(b, bloc, scope)
        else:
            named = set()
            for source in (self.spec.defaults.get(op.name), these):
                given = {}
                for k, value in (source or {}).items():
                    if k in RESERVED and source is these:
                        continue
                    spec_arg = _argument(op, k, given, source, scope)
                    vloc = source.locs.get(k, source.loc)
                    if self.literal(value, vloc, scope):
                        _coerce(spec_arg, value, op.name, vloc, scope.notes)
                named.update(given)
            for spec_arg in op.args:
                if spec_arg.default is REQUIRED and spec_arg.name not in named:
                    raise _needs_argument(op, spec_arg, these, scope)
        if args:  # not the fresh, empty mapping of a bare op name
            self.checked[key] = args

    def literal(self, value, loc, scope) -> bool:
        """Whether ``value`` holds no expression; the expressions it holds are checked for
        syntax and for names that are neither parameters nor functions."""
        if is_expr(value):
            try:
                tree = parse_expr(value)
            except OpError as exc:
                raise SpecError(str(exc), loc, scope.notes) from None
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and node.id not in scope.vars and node.id not in FUNCTIONS:
                    raise SpecError(
                        f"in '{value}': unknown parameter '{node.id}'" + did_you_mean(node.id, scope.vars),
                        loc,
                        scope.notes,
                    )
            return False
        if isinstance(value, list):
            checked = [self.literal(v, loc, scope) for v in value]  # every item, not up to one
            return all(checked)
        return True

    # --- arguments ----------------------------------------------------------------------

    def resolve(self, op, args, scope) -> dict:
        """Arguments after per-op defaults, aliases, expressions and type checks.

        Arguments without expressions resolve the same every time: they are resolved once
        per argument mapping (a block repeated 10,000 times reuses its layers' mappings), and
        once per op where a layer gives none (``- relu``): a spec written one item per layer
        keeps no mapping per such layer.
        """
        key = id(args) if args else op.name
        cached = self.resolved.get(key)
        if cached is not None and (cached[0] is args or not args):
            return cached[1]
        a, constant = self._resolve(op, args, scope)
        if constant:
            a = self.shared(op, a)
            self.resolved[key] = (args if args else None, a)
        return a

    def shared(self, op, a: dict) -> dict:
        """One dict for every layer of an op whose arguments resolve to the same values (a
        spec written one item per layer repeats ``conv: {out: 16, k: 3, p: 1}``): layers share
        their arguments already when a block repeats, and nothing changes them."""
        values = tuple([_exact(v) for v in a.values()])
        return a if None in values else self.same.setdefault((op.name, *a, values), a)

    def _resolve(self, op, args, scope):
        a, constant = {}, True
        for source in (self.spec.defaults.get(op.name), args):
            if not source:
                continue
            given = {}
            for key, value in source.items():
                if key in RESERVED and source is args:
                    continue
                spec_arg = _argument(op, key, given, source, scope)
                vloc = source.locs.get(key, source.loc)
                if is_expr(value) or isinstance(value, list):
                    constant = False
                    value = evaluate_at(value, scope.vars, vloc, scope.notes)
                a[spec_arg.name] = _coerce(spec_arg, value, op.name, vloc, scope.notes)
        for spec_arg in op.args:
            if spec_arg.name not in a:
                if spec_arg.default is REQUIRED:
                    raise _needs_argument(op, spec_arg, args, scope)
                a[spec_arg.name] = spec_arg.default
        return a, constant

    def emit(self, op, a, name, inputs, loc, scope):
        if len(self.layers) >= MAX_LAYERS:
            raise SpecError(
                f"the spec expands to more than {MAX_LAYERS:,} layers ({LIMIT_HINT})", loc, scope.notes
            )
        if name in self.tensors:
            self.unique(name, loc, scope)
        shapes = [t.shape for t in inputs]
        native = self.expected.get(name) if self.expected else None
        if op.fixed_input:
            self.fixed[name] = [(t.shape, t.rf.extent) for t in inputs]
            if native is not None and not self.frame and [n[0] for n in native] != shapes:
                raise SpecError(
                    f"{op.name} '{name}' gets input {list(shapes[0])} at input {_dims(self.input)}, "
                    f"but {list(native[0][0])} at the spec's input {_dims(self.spec.input)}: its "
                    "weights are sized for the spec's input (pool adaptively before it to accept "
                    "any size, or run it over the whole input with 'flops --mode frame')",
                    loc,
                    scope.notes,
                )
        if self.frame:
            try:
                a = op.frame_args(a, native)
            except OpError as exc:
                raise SpecError(f"{op.name} in frame mode: {exc}", loc, scope.notes) from None
        try:
            out, cost, rf = op.infer(a, shapes, [t.rf for t in inputs])
        except OpError as exc:
            raise SpecError(
                f"{op.name}: {exc}" if not str(exc).startswith(op.name) else str(exc), loc, scope.notes
            ) from None
        except OverflowError:  # strides multiplied layer after layer past a float's range
            raise SpecError(
                f"{op.name}: the receptive field grows past what cnnstat computes (a float overflowed: "
                "strides or dilations multiplied over many layers)",
                loc,
                scope.notes,
            ) from None
        if min(out) < 1:
            raise SpecError(f"{op.name}: output size {list(out)} is empty", loc, scope.notes)
        if max(out) > MAX_SIZE:  # sizes bounded as arguments are: float RF maths stays finite
            raise SpecError(
                f"{op.name}: output size {brief(list(out))} is too large (each size at most {MAX_SIZE:,})",
                loc,
                scope.notes,
            )
        names = tuple([t.name for t in inputs])
        w, b = cost.weights, cost.biases
        layer = Layer(name, op.name, op.kind, a, names, out, w, b, cost.buffers, cost.macs, rf, loc)
        self.layers.append(layer)
        self.tensors[name] = layer  # a layer is its output tensor too (name, shape, rf, loc)
        return layer

    def unique(self, name, loc, scope):
        if name in self.tensors:
            first = self.tensors[name]
            where = f" (first at {first.loc})" if first.loc else ""
            raise SpecError(f"duplicate layer name '{name}'{where}", loc, scope.notes)

    def lookup(self, ref, loc, scope):
        if not isinstance(ref, str):
            raise SpecError(f"'from' must name a layer, got {brief(ref)}", loc, scope.notes)
        # Innermost scope first, then each enclosing one: a layer inside a merge branch can
        # name a layer of its block ('up1.concat1.skip.' -> 'up1.concat1.', 'up1.', '').
        prefix = scope.prefix
        while True:
            if prefix + ref in self.tensors:
                return self.tensors[prefix + ref]
            if not prefix:
                break
            prefix = prefix[: prefix.rstrip(".").rfind(".") + 1]
        raise SpecError(
            f"'from': no earlier layer named '{ref}'" + did_you_mean(ref, self.tensors), loc, scope.notes
        )


_LAYER_ARGS: dict = {}  # op name -> names of its arguments that name a layer (crop/upsample `like:`)


def _layer_args(op) -> tuple:
    names = _LAYER_ARGS.get(op.name)
    if names is None:
        names = _LAYER_ARGS[op.name] = tuple(g.name for g in op.args if g.type == "layer")
    return names


def _branches(op, args, scope) -> list:
    branches = [k for k in args if k not in RESERVED]
    if len(branches) < 2:
        raise SpecError(
            f"{op.name} needs at least two named branches, got {len(branches)}", args.loc, scope.notes
        )
    return branches


def _bad_branch(b, bloc, scope):
    return SpecError(
        f"branch '{b}' must be a list of layers, 'identity' or {{from: NAME}}", bloc, scope.notes
    )


def _argument(op, key, given, source, scope):
    """The op argument ``key`` names (an alias or its own name), recorded in ``given``."""
    spec_arg = op.arg_index.get(key)
    kloc = source.key_locs.get(key, source.loc)
    if spec_arg is None:
        raise SpecError(
            f"{op.name} has no argument '{key}'" + did_you_mean(key, list(op.arg_index) + list(RESERVED)),
            kloc,
            scope.notes,
        )
    if spec_arg.name in given:
        raise SpecError(
            f"{op.name}: '{key}' and '{given[spec_arg.name]}' are the same argument", kloc, scope.notes
        )
    given[spec_arg.name] = key
    return spec_arg


def _needs_argument(op, spec_arg, args, scope):
    return SpecError(f"{op.name} needs argument '{spec_arg.name}' ({spec_arg.help})", args.loc, scope.notes)


def _no_parameter(block, key, args, scope):
    return SpecError(
        f"block '{block.name}' has no parameter '{key}'"
        + did_you_mean(key, list(block.params) + list(RESERVED)),
        args.key_locs.get(key, args.loc),
        scope.notes,
    )


def _needs_parameter(block, key, args, scope):
    type_name = block.params[key][0]
    return SpecError(f"block '{block.name}' needs parameter '{key}' ({type_name})", args.loc, scope.notes)


def _exact(v):
    """A key equal only for values of the same types and the same value (``1``, ``1.0``,
    ``True`` and ``Fraction(1)`` are equal in Python, ``0.0`` and ``-0.0`` too); None for a
    value of another kind (it is not shared)."""
    t = type(v)
    if t is float:
        return t, v.hex()
    if t is int or t is str or t is bool or v is None:
        return t, v
    if t is tuple:
        items = tuple(_exact(x) for x in v)
        return None if None in items else (t, items)
    return None


def _dims(shape) -> str:
    return "x".join(str(v) for v in shape)


def _with_first(args: LMap, first: LMap) -> LMap:
    pairs = {p[0]: p for p in args.pairs()}
    pairs.update((p[0], p) for p in first.pairs())  # first's value and positions, in args' order
    return LMap.located(args.loc, pairs.values())


def _coerce(arg, value, op, loc, notes):
    """Check one argument value against its declared type.

    Every number an argument holds is finite and at most :data:`MAX_ARG` either way: sizes,
    kernels, strides, paddings and dilations of 10^200 would overflow the receptive field's
    float maths, and NaN or infinity would reach the JSON output.
    """
    bad = _unbounded(value)
    if bad is not None:
        raise SpecError(
            f"{op}: '{arg.name}': every number must be finite and at most 2^53 either way, got {brief(bad)}",
            loc,
            notes,
        )
    t = arg.type
    ok = True
    if t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and arg.min is not None and value < arg.min:
            raise SpecError(f"{op}: '{arg.name}' must be at least {arg.min}, got {value}", loc, notes)
    elif t == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t == "bool":
        ok = isinstance(value, bool)
    elif t == "layer":
        ok = value is None or isinstance(value, str)
    elif t == "axes":
        ok = value is None or _ints(value)
    elif t == "padding":  # the forms cnnstat.ops.window.paddings reads; it checks them by rank
        ok = value in ("same", "valid", "causal") or isinstance(value, dict) or _ints(value)
        ok = ok or isinstance(value, (list, tuple)) and 0 < len(value) <= 6 and all(_ints(v) for v in value)
    elif t == "str":
        ok = isinstance(value, str) and (not arg.choices or value in arg.choices)
    if not ok:
        want = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "axes": "an integer or a list of integers",
            "padding": "an integer, a list, a mapping of sides, 'same', 'valid' or 'causal'",
            "str": "one of " + ", ".join(arg.choices) if arg.choices else "a string",
            "layer": "the name of an earlier layer",
        }[t]
        raise SpecError(f"{op}: '{arg.name}' must be {want}, got {brief(value)}", loc, notes)
    if isinstance(value, list):
        return tuple(value)
    return value


def _unbounded(value, depth=0):
    """The first number in ``value`` (lists and mappings included, a few levels) that is out
    of bounds, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if not abs(value) <= MAX_ARG else None  # NaN compares false
    if depth < 4 and isinstance(value, (list, tuple, dict)):
        for v in value.values() if isinstance(value, dict) else value:
            bad = _unbounded(v, depth + 1)
            if bad is not None:
                return bad
    return None


def _ints(value) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return (
        isinstance(value, (list, tuple))
        and 0 < len(value) <= 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
