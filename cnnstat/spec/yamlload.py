"""YAML -> plain dicts/lists that remember where each item came from.

PyYAML's ``safe_load`` keeps the last of duplicate keys silently and forgets positions, so
mappings and sequences are built here from composed nodes: duplicate keys are errors, and
every key and item carries its ``file:line:col``. Only YAML's standard tags are accepted
(``!!python/object`` and friends are rejected by the safe constructor).
"""

from __future__ import annotations

import yaml

from cnnstat._gc import paused_gc
from cnnstat.errors import Location, SpecError, brief

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LMap(dict):
    """A mapping with ``loc`` (its own position) and ``locs[key]`` (each value's position)."""

    __slots__ = ("loc", "locs", "key_locs")

    def loc_of(self, key) -> Location:
        return self.locs.get(key, self.loc)


class LList(list):
    """A sequence with ``loc`` and ``locs[i]`` (each item's position)."""

    __slots__ = ("loc", "locs")

    def loc_of(self, i: int) -> Location:
        return self.locs[i] if i < len(self.locs) else self.loc


class _Loader(_Base):
    filename = "<spec>"

    def _loc(self, mark) -> Location:
        return Location(self.filename, mark.line + 1, mark.column + 1)


def _construct_map(loader: _Loader, node):
    seen = {}
    for knode, _ in node.value:
        if knode.tag == "tag:yaml.org,2002:merge":
            continue
        if not isinstance(knode, yaml.ScalarNode):
            raise SpecError("keys must be names, not lists or mappings", loader._loc(knode.start_mark))
        key = knode.value
        if key in seen:
            first = seen[key]
            raise SpecError(
                f"duplicate key '{key}' (first given at line {first.line + 1})",
                loader._loc(knode.start_mark),
            )
        seen[key] = knode.start_mark
    loader.flatten_mapping(node)
    m = LMap()
    m.loc = loader._loc(node.start_mark)
    m.locs = {}
    m.key_locs = {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        if not isinstance(key, str):
            raise SpecError(f"keys must be names, not {brief(key)}", loader._loc(knode.start_mark))
        m[key] = loader.construct_object(vnode, deep=True)
        m.locs[key] = loader._loc(vnode.start_mark)
        m.key_locs[key] = loader._loc(knode.start_mark)
    return m


def _construct_seq(loader: _Loader, node):
    seq = LList(loader.construct_object(child, deep=True) for child in node.value)
    seq.loc = loader._loc(node.start_mark)
    seq.locs = [loader._loc(child.start_mark) for child in node.value]
    return seq


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(text: str, filename: str):
    """Parse one YAML document; YAML errors become :class:`SpecError` with a location."""
    loader = _Loader(text)
    loader.filename = filename
    try:
        with paused_gc():
            return loader.get_single_data()
    except SpecError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(filename, mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{exc.context}: {exc.problem}"
        raise SpecError(f"YAML: {problem}", loc) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML: {exc}", Location(filename, 1, 1)) from None
    finally:
        loader.dispose()
