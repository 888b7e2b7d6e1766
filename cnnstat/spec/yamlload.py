"""YAML -> plain dicts/lists that remember where each item came from.

PyYAML's ``safe_load`` keeps the last of duplicate keys silently and forgets positions, so
mappings and sequences are built here, straight from the parser's events (libyaml's C parser
where PyYAML was built with it): duplicate keys are errors, and every key and item carries its
``file:line:col``. Only plain data is accepted: strings, numbers, booleans, null, timestamps,
mappings and sequences; any other tag (``!!python/object`` and friends) is an error, and so is
a scalar its tag cannot read (``!!int abc``, ``!!bool maybe``, ``2001-13-45``).

Specs may come from untrusted pull requests, so a small file cannot make a large or slow
result:

- aliases share the object they name (nothing is copied), and a merge key (``<<: *base``)
  copies only the pairs it adds. Both count towards an expansion limit of
  :data:`EXPANSION_ALLOWANCE` nodes plus one per byte of the file: an alias counts the nodes
  it would add if it were a copy of what it names, a merge the pairs it copies and the nodes
  below them. Whoever walks the result (the graph builder, expressions over lists) therefore
  walks at most that much more than the file holds;
- nesting is at most :data:`MAX_DEPTH` levels (the result is built with an explicit stack,
  not recursion);
- integers have at most :data:`~cnnstat.spec.expr.MAX_INT_BITS` bits (Python refuses to read
  decimal integers of more than 4,300 digits; hexadecimal ones it reads at any length).
"""

from __future__ import annotations

from array import array

import yaml
from yaml.events import (
    AliasEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from cnnstat._gc import paused_gc
from cnnstat.errors import Location, SpecError, brief
from cnnstat.spec.expr import MAX_INT_BITS

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 128  # mappings and sequences nested in one file
EXPANSION_ALLOWANCE = 100_000  # nodes aliases and merge keys may add, plus one per byte of the file
_MAX_INT_DIGITS = MAX_INT_BITS * 3 // 10 + 2  # more digits than any integer of MAX_INT_BITS bits


_ONE = (1 << 32) + 1  # line 1, column 1: a parser mark (0-based) packed as (line << 32) + column


def _pack(loc: Location | None) -> int:
    return 0 if loc is None else (loc.line << 32) + loc.col


class _Located:
    """Where a mapping or sequence and its items came from, kept small: the file name (shared
    by every container of a document) and one 8-byte ``(line << 32) + column`` per position in
    an ``array``, no object per position. :class:`~cnnstat.errors.Location` objects are made
    only when asked for (messages, ``explain``), so a large spec costs bytes, not objects, per
    item. ``_pos[0]`` is the container's own position (0: none)."""

    __slots__ = ()

    def _at(self, i: int) -> Location | None:
        packed = self._pos[i]
        return Location(self._file, packed >> 32, packed & 0xFFFFFFFF) if packed else None

    @property
    def loc(self) -> Location | None:
        return self._at(0)


class _Locs:
    """``m.locs`` / ``m.key_locs`` of an :class:`LMap`: ``[key]``, ``.get(key, default)`` and
    ``in``, each position made into a Location when read."""

    __slots__ = ("m", "step")

    def __init__(self, m, step):
        self.m, self.step = m, step  # step 1: the key's position, 2: the value's

    def _index(self, key) -> int:
        m = self.m
        for i, k in enumerate(m):
            if k == key:
                j = 2 * i + self.step
                return j if j < len(m._pos) else -1
        return -1

    def __getitem__(self, key) -> Location:
        j = self._index(key)
        if j < 0:
            raise KeyError(key)
        return self.m._at(j)

    def get(self, key, default=None):
        j = self._index(key)
        return default if j < 0 else self.m._at(j)

    def __contains__(self, key) -> bool:
        return self._index(key) >= 0


class LMap(_Located, dict):
    """A mapping with ``loc`` (its own position), ``locs[key]`` (each value's position) and
    ``key_locs[key]`` (each key's). Positions are kept in the order of the keys: build one
    with :meth:`located`, not by adding keys."""

    __slots__ = ("_file", "_pos")

    @property
    def locs(self) -> _Locs:
        return _Locs(self, 2)

    @property
    def key_locs(self) -> _Locs:
        return _Locs(self, 1)

    def loc_of(self, key) -> Location:
        return _Locs(self, 2).get(key, self.loc)

    @classmethod
    def located(cls, loc: Location | None, pairs=()) -> LMap:
        """A mapping at ``loc`` of ``(key, value, key's Location, value's Location)``, all in
        ``loc``'s file."""
        m = cls()
        m._file = loc.file if loc is not None else None
        m._pos = pos = array("Q", (_pack(loc),))
        for key, value, key_loc, value_loc in pairs:
            m[key] = value
            pos.append(_pack(key_loc))
            pos.append(_pack(value_loc))
        return m

    def pairs(self):
        """``(key, value, key's Location, value's Location)`` in order (see :meth:`located`)."""
        return [(k, v, self._at(2 * i + 1), self._at(2 * i + 2)) for i, (k, v) in enumerate(self.items())]


class LList(_Located, list):
    """A sequence with ``loc`` and ``loc_of(i)`` (each item's position)."""

    __slots__ = ("_file", "_pos")

    def loc_of(self, i: int) -> Location:
        return self._at(i + 1) if 0 <= i < len(self._pos) - 1 else self.loc


class _Loader(_Base):
    pass


_TAG = "tag:yaml.org,2002:"
_STR, _INT, _MAP, _SEQ, _MERGE = (_TAG + t for t in ("str", "int", "map", "seq", "merge"))
_SCALARS = {_TAG + t for t in ("int", "float", "bool", "null", "timestamp")}
_NO_KEY = object()  # a mapping frame waiting for its next key
_MERGE_KEY = object()  # the key '<<' (YAML's merge key), and a frame waiting for its value


def _tag_name(tag: str) -> str:
    return "'" + brief(tag.replace(_TAG, "!!"))[1:-1] + "'"


class _Frame:
    """A mapping or sequence being read: its object, expanded size so far and pending key."""

    __slots__ = ("obj", "is_map", "mark", "anchor", "size", "key", "key_mark", "merges")

    def __init__(self, obj, is_map, mark, anchor):
        self.obj, self.is_map, self.mark, self.anchor = obj, is_map, mark, anchor
        self.size, self.key, self.key_mark, self.merges = 1, _NO_KEY, None, None


class _Reader:
    """Parser events -> LMap / LList / scalars, without PyYAML's composer and constructor
    (nodes, then objects: twice the work)."""

    def __init__(self, loader, filename: str, limit: int):
        self.loader, self.filename, self.limit = loader, filename, limit
        self.anchors: dict = {}  # name -> [object, expanded size (None while being read), mark]
        self.sizes: dict = {}  # id(mapping or sequence) -> its size with every alias expanded
        self.expanded = 0  # nodes added by aliases and merge keys
        self.tags: dict = {}  # plain scalar -> its resolved tag (values repeat in a spec)
        self.plain: dict = {}  # plain untagged scalar -> (its resolved tag, one shared str of it)
        self.keep: list = []

    def loc(self, mark) -> Location:
        return Location(self.filename, mark.line + 1, mark.column + 1)

    def spend(self, n: int, mark):
        self.expanded += n
        if self.expanded > self.limit:
            raise SpecError(
                f"YAML aliases and merge keys expand this file by more than {self.limit:,} nodes "
                f"(the limit: {EXPANSION_ALLOWANCE:,} plus one per byte of the file)",
                self.loc(mark),
            )

    def document(self):
        get = self.loader.get_event
        get()  # StreamStartEvent
        if type(get()) is StreamEndEvent:  # else DocumentStartEvent
            return None
        value = self.node()
        get()  # DocumentEndEvent
        event = get()
        if type(event) is not StreamEndEvent:
            raise SpecError(
                "YAML: expected a single document in the stream, but found another document",
                self.loc(event.start_mark),
            )
        return value

    def node(self):
        """One node (the document's root), read with an explicit stack. The hot path (plain
        scalars, appends and pairs) is written out: this loop is most of a spec's load time."""
        get = self.loader.get_event
        plain, resolve = self.plain, self.loader.resolve
        stack: list = []
        top = None
        while True:
            event = get()
            kind = type(event)
            here = 0  # the value's packed position when it has one already (a mapping's or list's own)
            if kind is ScalarEvent:
                mark = event.start_mark
                size = 1
                value = event.value
                if event.tag is None and event.implicit[0] and event.anchor is None:
                    known = plain.get(value)
                    if known is None:  # one str object per distinct text: values repeat in a spec
                        known = plain[value] = (resolve(yaml.ScalarNode, value, (True, False)), value)
                    tag, value = known
                    if tag != _STR:
                        value = self.scalar(event)
                else:
                    value = self.scalar(event)
                    if event.anchor is not None:
                        self.define(event.anchor, value, 1, mark)
            elif kind is AliasEvent:
                value, size, mark = self.alias(event)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if top is not None and top.is_map and top.key is _NO_KEY:
                    raise SpecError("keys must be names, not lists or mappings", self.loc(event.start_mark))
                if len(stack) >= MAX_DEPTH:
                    raise SpecError(
                        f"YAML nested more than {MAX_DEPTH} levels deep", self.loc(event.start_mark)
                    )
                top = self.start(event, kind is MappingStartEvent)
                stack.append(top)
                continue
            else:  # MappingEndEvent or SequenceEndEvent
                frame = stack.pop()
                value, size, mark = self.end(frame), frame.size, frame.mark
                top = stack[-1] if stack else None
                here = value._pos[0]
            if top is None:
                if value is _MERGE_KEY:
                    raise self.bare_merge(mark)
                return value
            obj = top.obj
            if not top.is_map:
                if value is _MERGE_KEY:
                    raise self.bare_merge(mark)
                obj.append(value)
                obj._pos.append(here or (mark.line << 32) + mark.column + _ONE)
                top.size += size
            elif top.key is _NO_KEY:  # a key
                if value is not _MERGE_KEY:
                    if type(value) is not str:
                        raise SpecError(f"keys must be names, not {brief(value)}", self.loc(mark))
                    if value in obj:
                        raise SpecError(
                            f"duplicate key {brief(value)} (first given at line {obj.key_locs[value].line})",
                            self.loc(mark),
                        )
                top.key, top.key_mark = value, mark
                top.size += 1
            else:  # a value
                key = top.key
                top.key = _NO_KEY
                if value is _MERGE_KEY:
                    raise self.bare_merge(mark)
                if key is _MERGE_KEY:
                    if top.merges is None:
                        top.merges = []
                    top.merges.append((value, mark))
                    top.size -= 1  # the '<<' key is not in the result
                    if kind is AliasEvent:  # '<<: *base': the merge counts what it copies
                        self.expanded -= size
                    continue
                obj[key] = value
                kmark = top.key_mark
                pos = obj._pos
                pos.append((kmark.line << 32) + kmark.column + _ONE)
                pos.append(here or (mark.line << 32) + mark.column + _ONE)
                top.size += size

    def bare_merge(self, mark):
        return SpecError("'<<' is YAML's merge key; quote it to mean the text '<<'", self.loc(mark))

    def define(self, anchor: str, value, size, mark):
        if anchor in self.anchors:
            first = self.anchors[anchor][2]
            raise SpecError(
                f"YAML: found duplicate anchor {brief(anchor)} (first at line {first.line + 1})",
                self.loc(mark),
            )
        self.anchors[anchor] = [value, size, mark]

    def alias(self, event):
        entry = self.anchors.get(event.anchor)
        if entry is None:
            raise SpecError(f"YAML: found undefined alias {brief(event.anchor)}", self.loc(event.start_mark))
        value, size, _ = entry
        if size is None:
            raise SpecError(
                f"YAML: alias {brief(event.anchor)} is used inside the node it names (a structure "
                "that contains itself)",
                self.loc(event.start_mark),
            )
        self.spend(size, event.start_mark)
        return value, size, event.start_mark

    def start(self, event, is_map: bool) -> _Frame:
        tag = event.tag
        if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
            raise SpecError(
                f"YAML tag {_tag_name(tag)} is not allowed: a spec is data, nothing in it is built",
                self.loc(event.start_mark),
            )
        obj = LMap() if is_map else LList()
        obj._file = self.filename
        mark = event.start_mark
        obj._pos = array("Q", ((mark.line << 32) + mark.column + _ONE,))
        if event.anchor is not None:
            self.define(event.anchor, obj, None, event.start_mark)
        return _Frame(obj, is_map, event.start_mark, event.anchor)

    def end(self, frame: _Frame):
        obj = frame.obj
        if frame.merges:
            self.merge(frame)
        self.sizes[id(obj)] = frame.size
        if frame.anchor is not None:
            self.anchors[frame.anchor][1] = frame.size
        return obj

    def merge(self, frame: _Frame):
        """Apply ``<<`` as YAML's merge key is defined: the mapping's own keys win, then the
        first source listed (``<<: [*a, *b]``: *a's over *b's). Keys come in the order of the
        sources, then the mapping's own."""
        m = frame.obj
        sources = []
        for value, mark in frame.merges:
            if isinstance(value, LMap):
                sources.append((value, mark))
            elif isinstance(value, LList) and all(isinstance(v, LMap) for v in value):
                sources.extend((v, mark) for v in value)
            else:
                raise SpecError(
                    f"'<<' (YAML's merge key) takes a mapping or a list of mappings, got {brief(value)}",
                    self.loc(mark),
                )
        self.keep.append(frame.merges)  # self.sizes is keyed by id(): keep them alive
        own = {k: (v, m._pos[2 * i + 1], m._pos[2 * i + 2]) for i, (k, v) in enumerate(m.items())}
        pos = m._pos
        del pos[1:]
        m.clear()
        for src, mark in sources:
            self.spend(len(src), mark)  # the pairs looked at
            for i, (key, value) in enumerate(src.items()):
                if key not in m:
                    m[key] = value
                    pos.append(src._pos[2 * i + 1])
                    pos.append(src._pos[2 * i + 2])
        below = 0  # the nodes under the pairs merged in: shared, walked as if copied
        sizes = self.sizes
        merged = 0
        for key, value in m.items():
            if key not in own:
                merged += 1
                below += sizes.get(id(value), 1)
        self.spend(below, frame.mark)
        added = merged + below
        for i, key in enumerate(m):  # the mapping's own keys win, in the place of the first source's
            if key in own:
                m[key], pos[2 * i + 1], pos[2 * i + 2] = own.pop(key)
        for key, (value, key_pos, value_pos) in own.items():
            m[key] = value
            pos.append(key_pos)
            pos.append(value_pos)
        frame.size += added

    def scalar(self, event):
        value = event.value
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:  # quoted, or the non-specific '!': a string
                return value
            tag = self.tags.get(value)
            if tag is None:
                tag = self.tags[value] = self.loader.resolve(yaml.ScalarNode, value, (True, False))
        if tag == _STR:
            return value
        if tag == _INT and value.isascii() and value.isdigit() and (value[0] != "0" or value == "0"):
            # plain decimal; YAML 1.1's octal, hex, 1_000 and 1:30 go below
            if len(value) > _MAX_INT_DIGITS:
                raise self.too_large(event)
            number = int(value)
            if number.bit_length() > MAX_INT_BITS:
                raise self.too_large(event)
            return number
        if tag in _SCALARS:
            if tag == _INT and len(value) > 4 * _MAX_INT_DIGITS:
                raise self.too_large(event)
            node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark)
            try:
                result = self.loader.yaml_constructors[tag](self.loader, node)
            except Exception:  # noqa: BLE001 - any failure of PyYAML's scalar readers is the input's
                raise SpecError(
                    f"{_tag_name(tag)} cannot read {brief(value)}"
                    + (" (a date is YYYY-MM-DD)" if tag == _TAG + "timestamp" else ""),
                    self.loc(event.start_mark),
                ) from None
            if type(result) is int and result.bit_length() > MAX_INT_BITS:
                raise self.too_large(event)
            return result
        if tag == _MERGE:
            return _MERGE_KEY
        raise SpecError(
            f"YAML tag {_tag_name(tag)} is not allowed: a spec is data, nothing in it is built",
            self.loc(event.start_mark),
        )

    def too_large(self, event):
        return SpecError(f"integer too large (more than {MAX_INT_BITS} bits)", self.loc(event.start_mark))


def load_yaml(text: str, filename: str):
    """Parse one YAML document; YAML errors become :class:`SpecError` with a location."""
    return load_yaml_counted(text, filename)[0]


def load_yaml_counted(text: str, filename: str) -> tuple:
    """:func:`load_yaml`, and how many nodes its aliases and merge keys added (work that
    counts towards a run's work limit)."""
    try:
        loader = _Loader(text)  # PyYAML's pure reader checks the characters here (libyaml's later)
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML: {str(exc)[:200]}", Location(filename, 1, 1)) from None
    reader = _Reader(loader, filename, EXPANSION_ALLOWANCE + len(text))
    try:
        with paused_gc():
            return reader.document(), reader.expanded
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
        raise SpecError(f"YAML: {str(exc)[:200]}", Location(filename, 1, 1)) from None
    finally:
        loader.dispose()
