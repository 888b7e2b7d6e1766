"""YAML -> plain dicts/lists that remember where each item came from.

PyYAML's ``safe_load`` keeps the last of duplicate keys silently and forgets positions, so
mappings and sequences are built here from composed nodes: duplicate keys are errors, and
every key and item carries its ``file:line:col``. Only plain data is accepted: strings,
numbers, booleans, null, timestamps, mappings and sequences; any other tag
(``!!python/object`` and friends) is an error.
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
    pass


_TAG = "tag:yaml.org,2002:"
_STR, _INT, _MAP, _SEQ, _MERGE = (_TAG + t for t in ("str", "int", "map", "seq", "merge"))
_SCALARS = {_TAG + t for t in ("int", "float", "bool", "null", "timestamp")}


class _Converter:
    """Composed YAML nodes -> LMap / LList / scalars, without PyYAML's constructor machinery
    (half the load time of a large spec). Aliases share one converted object, as in YAML."""

    def __init__(self, loader, filename: str):
        self.loader, self.filename, self.memo = loader, filename, {}

    def loc(self, mark) -> Location:
        return Location(self.filename, mark.line + 1, mark.column + 1)

    def convert(self, node):
        done = self.memo.get(id(node))
        if done is not None:
            return done
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _INT and node.value.isdigit() and (node.value[0] != "0" or node.value == "0"):
            return int(node.value)  # plain decimal; YAML 1.1's octal, hex, 1_000 and 1:30 go below
        if tag in _SCALARS and isinstance(node, yaml.ScalarNode):
            return self.loader.construct_object(node)
        if tag == _MAP and isinstance(node, yaml.MappingNode):
            return self.mapping(node)
        if tag == _SEQ and isinstance(node, yaml.SequenceNode):
            seq = self.memo[id(node)] = LList()
            seq.loc = self.loc(node.start_mark)
            seq.locs = [self.loc(child.start_mark) for child in node.value]
            seq.extend(self.convert(child) for child in node.value)
            return seq
        raise SpecError(
            f"YAML tag '{tag.replace(_TAG, '!!')}' is not allowed: a spec is data, nothing in it is built",
            self.loc(node.start_mark),
        )

    def mapping(self, node):
        seen = {}
        merges = False
        for knode, _ in node.value:
            if knode.tag == _MERGE:
                merges = True
                continue
            if not isinstance(knode, yaml.ScalarNode):
                raise SpecError("keys must be names, not lists or mappings", self.loc(knode.start_mark))
            if knode.value in seen:
                raise SpecError(
                    f"duplicate key '{knode.value}' (first given at line {seen[knode.value].line + 1})",
                    self.loc(knode.start_mark),
                )
            seen[knode.value] = knode.start_mark
        if merges:
            self.loader.flatten_mapping(node)  # '<<: *defaults' (YAML merge keys)
        m = self.memo[id(node)] = LMap()
        m.loc = self.loc(node.start_mark)
        m.locs, m.key_locs = {}, {}
        for knode, vnode in node.value:
            key = self.convert(knode)
            if not isinstance(key, str):
                raise SpecError(f"keys must be names, not {brief(key)}", self.loc(knode.start_mark))
            m[key] = self.convert(vnode)
            m.locs[key] = self.loc(vnode.start_mark)
            m.key_locs[key] = self.loc(knode.start_mark)
        return m


def load_yaml(text: str, filename: str):
    """Parse one YAML document; YAML errors become :class:`SpecError` with a location."""
    loader = _Loader(text)
    try:
        with paused_gc():
            node = loader.get_single_node()
            return None if node is None else _Converter(loader, filename).convert(node)
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
