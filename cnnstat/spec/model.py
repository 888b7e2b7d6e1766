"""A parsed spec file: metadata, parameters, per-op defaults, blocks, layers, variants.

Only structure is checked here; layers are expanded (and their arguments checked) by
:mod:`cnnstat.spec.build`, which knows the shapes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

from cnnstat.errors import CnnstatError, OpError, SpecError, brief, did_you_mean
from cnnstat.files import MAX_TEXT_BYTES, read_text
from cnnstat.ops import REGISTRY
from cnnstat.ops.base import REQUIRED
from cnnstat.spec.expr import evaluate
from cnnstat.spec.yamlload import LList, LMap, load_yaml_counted
from cnnstat.units import MAX_SIZE

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
    "accuracy",
)
LIBRARY_KEYS = ("cnnstat", "description", "source", "blocks", "include")
VARIANT_KEYS = ("description", "source", "params", "input", "nominal", "accuracy")
# `accuracy:` (the trained network's published accuracy, for `cnnstat plot compare`): top1 and
# dataset and source required, top5 optional; percentages in [0, 100].
ACCURACY_KEYS = ("top1", "top5", "dataset", "source")
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
MAX_FILE_BYTES = MAX_TEXT_BYTES
# `include:` reads files in the directory tree of the spec analysed (of the zoo, for a zoo
# model) unless this environment variable is 1: a spec from a pull request must not read, and
# quote in its errors, files elsewhere on the machine (CI secrets, ~/.ssh).
INCLUDE_ANYWHERE = "CNNSTAT_INCLUDE_ANYWHERE"


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
    accuracy: dict | None = None  # {"top1", "top5"?, "dataset", "source"}: see parse_accuracy
    work: int = 0  # steps spent loading (includes, YAML alias and merge-key expansion)

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
            # never inherited: a variant is another network, with an accuracy of its own or none
            accuracy=parse_accuracy(v["accuracy"], v.locs["accuracy"]) if "accuracy" in v else None,
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
        raise SpecError(f"input sizes must be positive, got {brief(list(value))}", loc)
    if any(v > MAX_SIZE for v in value):
        raise SpecError(f"input sizes must be at most {MAX_SIZE:,}, got {brief(list(value))}", loc)
    return tuple(value)


def _nominal(value, loc) -> tuple:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIZE for v in value)
    ):
        raise SpecError(f"nominal must be [H, W] (positive integers), got {brief(value)}", loc)
    return tuple(value)


def parse_accuracy(value, loc) -> dict:
    """``accuracy: {top1: 76.1, top5: 92.9, dataset: ImageNet-1K, source: ...}`` checked: a
    mapping of these keys, top1 (and top5, if given) a percentage in [0, 100], top5 at least
    top1, dataset and source non-empty strings. Errors point at the key or value at fault."""
    import math

    _check_map(value, "accuracy", loc)
    _check_keys(value, ACCURACY_KEYS, "accuracy")
    out = {}
    for key in ("top1", "top5", "dataset", "source"):
        if key not in value:
            if key != "top5":
                raise SpecError(f"accuracy needs '{key}'", loc)
            continue
        v, at = value[key], value.locs[key]
        if key in ("top1", "top5"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SpecError(f"accuracy {key} must be a number (a percentage), got {brief(v)}", at)
            if not 0 <= v <= 100:
                raise SpecError(f"accuracy {key} must be a percentage in [0, 100], got {brief(v)}", at)
            out[key] = float(v)
        else:
            if not isinstance(v, str) or not v.strip():
                raise SpecError(f"accuracy {key} must be a non-empty string, got {brief(v)}", at)
            out[key] = v
    if out.get("top5", 100.0) < out["top1"]:
        below = f"accuracy top5 ({value['top5']}) is below top1 ({value['top1']})"
        raise SpecError(below, value.locs["top5"])
    return out


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


class _Includes:
    """The state of one spec's ``include:`` walk: the tree includes stay in, the files read
    (each is read and parsed once, however many files include it) and the work spent."""

    def __init__(self, root: str | None):
        self.anywhere = os.environ.get(INCLUDE_ANYWHERE) == "1"
        self.root = os.path.realpath(root or os.getcwd())
        self.done: set = set()
        self.work = 0


def _includes(data: LMap, filename: str, base_dir: str | None, state: _Includes, chain: tuple):
    """Blocks of every file in ``include:`` (paths relative to the including file), each a
    library: a mapping with ``blocks`` (and optionally its own ``include``), no layers.

    ``chain`` holds ``(shown name, real path)`` of the files being included, outermost first
    (for cycles). A file already included elsewhere (a diamond) is skipped: its blocks are in.
    """
    paths = data.get("include") or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise SpecError("'include' must be a file name or a list of file names", data.loc_of("include"))
    for i, rel in enumerate(paths):
        loc = data["include"].loc_of(i) if isinstance(data["include"], LList) else data.loc_of("include")
        path = _include_path(rel, base_dir, state, loc)
        real = os.path.realpath(path)
        shown = os.path.normpath(os.path.join(os.path.dirname(filename), rel))
        if shown in (c[0] for c in chain) or real in (c[1] for c in chain):
            raise SpecError(f"include cycle: {' -> '.join((*(c[0] for c in chain), shown))}", loc)
        if real in state.done:
            continue
        state.done.add(real)
        state.work += 1
        try:
            text = read_text(path, "spec file", shown)
        except CnnstatError as exc:
            raise SpecError(str(exc), loc) from None
        try:
            lib, expanded = load_yaml_counted(text, shown)
            state.work += expanded
            if not isinstance(lib, LMap):
                raise SpecError("an included file must be a mapping with 'blocks'", loc)
            for key in lib:
                if key not in LIBRARY_KEYS:
                    raise SpecError(
                        f"an included file holds {', '.join(LIBRARY_KEYS)}; this key is none of "
                        "them (it is not quoted: an included file's content never is)",
                        lib.key_locs[key],
                    )
            blocks = _parse_blocks(lib)
        except SpecError as exc:
            if exc.loc is not None and exc.loc.file == shown:
                exc.message = _redact(exc.message)
                exc.args = (exc.message,)
            exc.loc = exc.loc or loc
            raise
        yield blocks
        yield from _includes(lib, shown, os.path.dirname(path), state, (*chain, (shown, real)))


def _include_path(rel: str, base_dir: str | None, state: _Includes, loc) -> str:
    """The path ``include: rel`` names, refused when it leaves the spec's directory tree."""
    hint = f"includes stay in the spec's directory ({INCLUDE_ANYWHERE}=1 allows any path)"
    if not rel or "\x00" in rel:
        raise SpecError(f"include {brief(rel)} is not a file name", loc)
    if not state.anywhere and os.path.isabs(rel):
        raise SpecError(f"include {brief(rel)} is an absolute path: {hint}", loc)
    path = os.path.normpath(os.path.join(base_dir or os.getcwd(), rel))
    if not state.anywhere:
        real = os.path.realpath(path)
        if os.path.commonpath([real, state.root]) != state.root:
            raise SpecError(f"include {brief(rel)} leads out of the spec's directory: {hint}", loc)
    return path


_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_SHOWN_VALUE = re.compile(r"\b(got|names, not|constructing) .*?(?=$| \(|;)")


def _redact(message: str) -> str:
    """An error message about an included file without the file's content: quoted names
    and shown values are left out (the location says where)."""
    return _SHOWN_VALUE.sub(r"\1 ...", _QUOTED.sub("'...'", message))


def parse_spec(
    data, filename: str, base_dir: str | None = None, root: str | None = None, path: str | None = None
) -> Spec:
    """A spec from parsed YAML; ``base_dir`` resolves ``include:`` (default: the cwd), whose
    files must lie in the directory tree ``root`` (default: ``base_dir``); ``path`` is the
    spec's own file, if any (an include of it is a cycle)."""
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
    state = _Includes(root or base_dir)
    me = os.path.realpath(path) if path is not None else None
    for other in _includes(data, filename, base_dir, state, ((filename, me),)):
        for bname, block in other.items():
            if bname in blocks:
                raise SpecError(f"block '{bname}' is defined here and at {block.loc}", blocks[bname].loc)
            blocks[bname] = block

    variants = data.get("variants") or {}
    _check_map(variants, "variants", data.loc_of("variants"))
    for vname, v in variants.items():
        _check_map(v, f"variant '{vname}'", variants.locs[vname])
        _check_keys(v, VARIANT_KEYS, f"variant '{vname}'")
        if "accuracy" in v:
            parse_accuracy(v["accuracy"], v.locs["accuracy"])

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
        accuracy=parse_accuracy(data["accuracy"], data.loc_of("accuracy")) if "accuracy" in data else None,
        work=state.work,
    )


def _top_loc(data, filename):
    from cnnstat.errors import Location

    return getattr(data, "loc", Location(filename, 1, 1))


def _read(path, shown: str) -> str:
    """A spec file's text: a regular file of at most :data:`MAX_FILE_BYTES` bytes."""
    try:
        return read_text(path, "spec file", shown, MAX_FILE_BYTES)
    except CnnstatError as exc:
        raise SpecError(str(exc)) from None


def load_spec_file(
    path, display: str | None = None, root: str | None = None, text: str | None = None
) -> Spec:
    """The spec in the file ``path`` (shown as ``display`` in messages); its includes stay in
    the directory tree ``root`` (default: the file's directory). ``text``: the file's content,
    when the caller has read it already."""
    shown = display or str(path)
    if text is None:
        text = _read(path, shown)
    data, expanded = load_yaml_counted(text, shown)
    base = os.path.dirname(os.path.abspath(path))
    spec = parse_spec(data, shown, base, root=root or base, path=str(path))
    spec.work += expanded
    return spec


def evaluate_at(value, scope: dict, loc, notes=()):
    """:func:`evaluate` with expression errors turned into located :class:`SpecError`."""
    try:
        return evaluate(value, scope)
    except OpError as exc:
        raise SpecError(str(exc), loc, notes) from None
