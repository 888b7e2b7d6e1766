"""A parsed spec file: metadata, parameters, per-op defaults, blocks, layers, variants.

Only structure is checked here; layers are expanded (and their arguments checked) by
:mod:`cnnstat.spec.build`, which knows the shapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from cnnstat.errors import OpError, SpecError, brief, did_you_mean
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import REQUIRED
from cnnstat.spec.expr import evaluate
from cnnstat.spec.yamlload import LList, LMap, load_yaml

FORMAT_VERSION = 1
TOP_KEYS = (
    "cnnstat",
    "name",
    "description",
    "source",
    "input",
    "nominal",
    "params",
    "defaults",
    "blocks",
    "layers",
    "variants",
    "include",
)
LIBRARY_KEYS = ("cnnstat", "description", "source", "blocks", "include")
VARIANT_KEYS = ("description", "source", "params", "input", "nominal")
BLOCK_KEYS = ("params", "body", "description")
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "any": object}
# Other spellings of the type names: in `params:` these (and the type names in another case,
# `Int`) are errors rather than string defaults. Kept short, so that genuine string defaults
# (`mode: bilinear`, `act: relu`) stay what they are.
TYPE_ALIASES = {
    "string": "str",
    "integer": "int",
    "boolean": "bool",
    "bool_": "bool",
    "number": "float",
    "dict": "any",
    "tuple": "list",
}
MAX_FILE_BYTES = 4_000_000


@dataclass
class Block:
    name: str
    params: dict  # name -> (type name, default or REQUIRED)
    body: LList
    loc: object


@dataclass
class Spec:
    name: str
    file: str
    input: tuple
    layers: LList
    description: str = ""
    source: str = ""
    nominal: tuple | None = None
    params: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)  # op name -> LMap of arguments
    blocks: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)  # name -> LMap
    doc: LMap | None = None

    @property
    def models(self) -> list:
        """Every model name this file defines: its own and its variants'."""
        return [self.name, *self.variants]

    def input_at(self, input=None, resolution=None) -> tuple | None:
        """The shape to build at: ``input`` ("3x512x512" or a tuple), or ``resolution``
        ("WxH" or (W, H)) with the spec's channels; None for the spec's own input."""
        from cnnstat.errors import CnnstatError
        from cnnstat.units import parse_input, parse_resolution

        if input and resolution:
            raise CnnstatError("give --input or --resolution, not both")
        if input:
            shape = parse_input(input) if isinstance(input, str) else tuple(input)
        elif resolution:
            w, h = parse_resolution(resolution) if isinstance(resolution, str) else resolution
            if len(self.input) != 3:
                raise CnnstatError(
                    f"--resolution needs a [C, H, W] model; {self.name} has input "
                    f"{list(self.input)} (use --input)"
                )
            shape = (self.input[0], h, w)
        else:
            return None
        if len(shape) != len(self.input):
            raise CnnstatError(
                f"--input {'x'.join(map(str, shape))} has {len(shape)} dimensions; {self.name} takes "
                f"{len(self.input)} ({'x'.join(map(str, self.input))})"
            )
        return shape

    def variant(self, name: str) -> Spec:
        if name == self.name:
            return self
        v = self.variants[name]
        params = dict(self.params)
        overrides = v.get("params") or {}
        _check_map(overrides, "variant params", v.loc_of("params"))
        for key, value in overrides.items():
            if key not in params:
                raise SpecError(
                    f"variant '{name}' sets unknown parameter '{key}'" + did_you_mean(key, params),
                    overrides.key_locs[key],
                )
            params[key] = _typed(value, type(params[key]).__name__, key, overrides.locs[key])
        return replace(
            self,
            name=name,
            description=v.get("description", self.description),
            source=v.get("source", self.source),
            input=_shape(v["input"], v.locs["input"]) if "input" in v else self.input,
            nominal=_nominal(v["nominal"], v.locs["nominal"]) if "nominal" in v else self.nominal,
            params=params,
            variants={},
        )


def _check_map(value, what, loc):
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a mapping", loc)


def _check_keys(m: LMap, allowed, what):
    for key in m:
        if key not in allowed:
            raise SpecError(f"unknown key '{key}' in {what}" + did_you_mean(key, allowed), m.key_locs[key])


def _shape(value, loc) -> tuple:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise SpecError(
            f"input must be [C, H, W], [C, L], [C, D, H, W] or [D] (integers), got {brief(value)}", loc
        )
    if any(v < 1 for v in value):
        raise SpecError(f"input sizes must be positive, got {list(value)}", loc)
    return tuple(value)


def _nominal(value, loc) -> tuple:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise SpecError(f"nominal must be [H, W] (positive integers), got {brief(value)}", loc)
    return tuple(value)


def _typed(value, type_name, what, loc, notes=()):
    """Check a parameter value against its declared type name."""
    if type_name == "any":
        return value
    if type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = PARAM_TYPES.get(type_name, object)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise SpecError(f"parameter '{what}' must be {type_name}, got {brief(value)}", loc, notes)
    return value


def _near_type(value: str) -> str | None:
    """The type name ``value`` misspells (``string`` -> ``str``, ``Int`` -> ``int``), if any."""
    low = value.lower()
    return low if low in PARAM_TYPES else TYPE_ALIASES.get(low)


def parse_params(m, loc) -> dict:
    """``{name: type-or-default}`` -> ``{name: (type name, default or REQUIRED)}``."""
    if m is None:
        return {}
    _check_map(m, "params", loc)
    out = {}
    for key, value in m.items():
        if not key.isidentifier() or key == "in_channels":
            raise SpecError(
                f"'{key}' cannot name a parameter"
                + (" (in_channels is built in)" if key == "in_channels" else " (not an identifier)"),
                m.key_locs[key],
            )
        if isinstance(value, str) and value in PARAM_TYPES:
            out[key] = (value, REQUIRED)
        elif isinstance(value, str) and _near_type(value):
            raise SpecError(
                f"unknown parameter type '{value}' (did you mean '{_near_type(value)}'?)", m.locs[key]
            )
        elif isinstance(value, (bool, int, float, str)):
            out[key] = (type(value).__name__, value)
        else:
            out[key] = ("any", value)
    return out


def _parse_blocks(data: LMap) -> dict:
    blocks = {}
    raw_blocks = data.get("blocks") or {}
    _check_map(raw_blocks, "blocks", data.loc_of("blocks"))
    for bname, b in raw_blocks.items():
        loc = raw_blocks.key_locs[bname]
        if bname in REGISTRY:
            raise SpecError(f"block '{bname}' has the name of a built-in op", loc)
        _check_map(b, f"block '{bname}'", raw_blocks.locs[bname])
        _check_keys(b, BLOCK_KEYS, f"block '{bname}'")
        if not isinstance(b.get("body"), LList) or not b["body"]:
            raise SpecError(f"block '{bname}' needs a non-empty 'body' list", raw_blocks.locs[bname])
        blocks[bname] = Block(bname, parse_params(b.get("params"), b.loc_of("params")), b["body"], loc)
    return blocks


def _includes(data: LMap, filename: str, base_dir: str | None, seen: tuple):
    """Blocks of every file in ``include:`` (paths relative to the including file), each a
    library: a mapping with ``blocks`` (and optionally its own ``include``), no layers."""
    paths = data.get("include") or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise SpecError("'include' must be a file name or a list of file names", data.loc_of("include"))
    for i, rel in enumerate(paths):
        loc = data["include"].loc_of(i) if isinstance(data["include"], LList) else data.loc_of("include")
        path = os.path.normpath(os.path.join(base_dir or os.getcwd(), rel))
        shown = os.path.normpath(os.path.join(os.path.dirname(filename), rel))
        if shown in seen:
            raise SpecError(f"include cycle: {' -> '.join((*seen, shown))}", loc)
        try:
            lib = load_yaml(_read(path, shown), shown)
        except SpecError as exc:
            if exc.loc is None:
                exc.loc = loc
            raise
        if not isinstance(lib, LMap):
            raise SpecError("an included file must be a mapping with 'blocks'", loc)
        _check_keys(lib, LIBRARY_KEYS, f"included file {shown}")
        yield _parse_blocks(lib)
        yield from _includes(lib, shown, os.path.dirname(path), (*seen, shown))


def parse_spec(data, filename: str, base_dir: str | None = None) -> Spec:
    """A spec from parsed YAML; ``base_dir`` resolves ``include:`` (default: the cwd)."""
    if not isinstance(data, LMap):
        raise SpecError("a spec must be a mapping with 'input' and 'layers'", _top_loc(data, filename))
    _check_keys(data, TOP_KEYS, "the spec")
    version = data.get("cnnstat", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise SpecError(
            f"unsupported spec version {brief(version)} (this cnnstat reads {FORMAT_VERSION})",
            data.loc_of("cnnstat"),
        )
    for key in ("input", "layers"):
        if key not in data:
            raise SpecError(f"the spec has no '{key}'", data.loc)
    if not isinstance(data["layers"], LList) or not data["layers"]:
        raise SpecError("'layers' must be a non-empty list", data.loc_of("layers"))
    name = data.get("name", os.path.splitext(os.path.basename(filename))[0])
    for key in ("name", "description", "source"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"'{key}' must be a string", data.loc_of(key))

    params = {}
    for key, (_type, default) in parse_params(data.get("params"), data.loc_of("params")).items():
        if default is REQUIRED:
            raise SpecError(f"spec parameter '{key}' needs a default value", data["params"].locs[key])
        params[key] = default

    defaults = data.get("defaults") or {}
    _check_map(defaults, "defaults", data.loc_of("defaults"))
    for op_name, args in defaults.items():
        if op_name not in REGISTRY or REGISTRY[op_name].merge:
            raise SpecError(
                f"defaults: unknown op '{op_name}'" + did_you_mean(op_name, REGISTRY),
                defaults.key_locs[op_name],
            )
        _check_map(args, f"defaults for '{op_name}'", defaults.locs[op_name])

    blocks = _parse_blocks(data)
    for other in _includes(data, filename, base_dir, (filename,)):
        for bname, block in other.items():
            if bname in blocks:
                raise SpecError(f"block '{bname}' is defined here and at {block.loc}", blocks[bname].loc)
            blocks[bname] = block

    variants = data.get("variants") or {}
    _check_map(variants, "variants", data.loc_of("variants"))
    for vname, v in variants.items():
        _check_map(v, f"variant '{vname}'", variants.locs[vname])
        _check_keys(v, VARIANT_KEYS, f"variant '{vname}'")

    return Spec(
        name=name,
        file=filename,
        input=_shape(data["input"], data.loc_of("input")),
        nominal=_nominal(data["nominal"], data.loc_of("nominal")) if "nominal" in data else None,
        layers=data["layers"],
        description=data.get("description", ""),
        source=data.get("source", ""),
        params=params,
        defaults=defaults,
        blocks=blocks,
        variants=dict(variants),
        doc=data,
    )


def _top_loc(data, filename):
    from cnnstat.errors import Location

    return getattr(data, "loc", Location(filename, 1, 1))


def _read(path, shown: str) -> str:
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(f"spec file {shown} is {size} bytes; the limit is {MAX_FILE_BYTES}")
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise SpecError(f"no such spec file: {shown}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {shown}: {exc}") from None


def load_spec_file(path, display: str | None = None) -> Spec:
    shown = display or str(path)
    text = _read(path, shown)
    return parse_spec(load_yaml(text, shown), shown, os.path.dirname(os.path.abspath(path)))


def evaluate_at(value, scope: dict, loc, notes=()):
    """:func:`evaluate` with expression errors turned into located :class:`SpecError`."""
    try:
        return evaluate(value, scope)
    except OpError as exc:
        raise SpecError(str(exc), loc, notes) from None
