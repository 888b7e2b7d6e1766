"""The model zoo: spec files shipped inside the package, addressed by name.

A file defines one model (``name``) and optionally its ``variants`` (``vgg.yaml`` defines
vgg11 ... vgg19_bn). Names are matched with shell patterns like timm's ``list_models('res*')``;
an unknown name is answered with the closest matches.
"""

from __future__ import annotations

import fnmatch
import os

from cnnstat.errors import CnnstatError
from cnnstat.spec.model import Spec, _read, load_spec_file

_PKG = os.path.dirname(os.path.abspath(__file__))


def zoo_dir() -> str:
    """``cnnstat/specs`` in an installed package, ``specs/`` beside it in a source tree."""
    packaged = os.path.join(_PKG, "specs")
    return packaged if os.path.isdir(packaged) else os.path.join(os.path.dirname(_PKG), "specs")


def _stems() -> list:
    return sorted(f[:-5] for f in os.listdir(zoo_dir()) if f.endswith(".yaml"))


def load_file(stem: str, text: str | None = None) -> Spec:
    """A zoo file's spec; its includes stay in the zoo's directory tree."""
    path = os.path.join(zoo_dir(), stem + ".yaml")
    return load_spec_file(path, display=f"zoo:{stem}.yaml", root=zoo_dir(), text=text)


def index() -> dict:
    """Every zoo model name -> the spec that defines it (a variant resolved lazily)."""
    out = {}
    for stem in _stems():
        spec = load_file(stem)
        for name in spec.models:
            if name in out:
                raise CnnstatError(f"zoo model '{name}' is defined twice ({stem}.yaml)")
            out[name] = spec
    return out


def models(pattern: str = "*") -> list:
    """Specs of the zoo models whose names match a shell pattern (case-insensitive), sorted."""
    known = index()
    pattern = pattern.lower()
    names = sorted(known, key=natural_key)
    return [known[n].variant(n) for n in names if fnmatch.fnmatch(n.lower(), pattern)]


def natural_key(name: str) -> tuple:
    """Sort key putting numbers in numeric order: resnet18 < resnet34 < resnet101."""
    import re

    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name.lower()))


def _match(name: str, names) -> str | None:
    """``name`` in ``names``, else the name that equals it but for case (VGG16 -> vgg16)."""
    if name in names:
        return name
    folded = [n for n in names if n.lower() == name.lower()]
    return folded[0] if folded else None


def list_models(pattern: str = "*") -> list:
    """Sorted zoo names matching a shell pattern, e.g. ``'vgg*'``."""
    return [spec.name for spec in models(pattern)]


def get(name: str) -> Spec:
    """A zoo model by name (case-insensitive: VGG16 finds vgg16; an exact match first);
    unknown names raise with the closest matches."""
    # Fast path: parse only files whose text mentions the name, those named after it (or
    # after a prefix of it: vgg16 -> vgg.yaml) first. The full index is for unknown names.
    key = name.lower()
    stems = sorted(_stems(), key=lambda s: (not key.startswith(s.lower()), -len(s)))
    for stem in stems:
        text = _read(os.path.join(zoo_dir(), stem + ".yaml"), f"zoo:{stem}.yaml")
        if key not in text.lower():
            continue
        spec = load_file(stem, text)
        found = _match(name, spec.models)
        if found:
            return spec.variant(found)
    known = index()
    found = _match(name, known)
    if found:  # spelled differently in the file (YAML escapes): still found
        return known[found].variant(found)
    import difflib

    lower = {n.lower(): n for n in known}
    close = [lower[c] for c in difflib.get_close_matches(key, list(lower), n=3, cutoff=0.5)]
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise CnnstatError(
        f"unknown model '{name}'{hint}; 'cnnstat list' shows the zoo, or give a path to a spec file"
    )


def is_path(model: str) -> bool:
    if model.endswith((".yaml", ".yml", ".onnx")):
        return True
    return "/" in model or "\\" in model or os.path.isfile(model)


def load(model: str) -> Spec:
    """A zoo name or a path to a spec file."""
    if is_path(model):
        return load_spec_file(model)
    return get(model)
