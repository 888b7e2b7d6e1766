"""An ONNX file without its weights: the protobuf's bytes with the data of large tensors left
out, read without reading that data.

A ModelProto is a sequence of fields (a tag, then a varint, 8 or 4 bytes, or a length and
that many bytes). The graph is field 7; its initializers are its field 5, each a TensorProto
whose values are its fields 4, 5, 6, 7, 9, 10 and 11 (``float_data`` ... ``raw_data``). This
module copies every field of the file except those values, for tensors too large for
cnnstat ever to read them (their dims, type, name and external-data location are kept), and
seeks over the values instead of reading them. The result parses as the same model with the
large initializers' data absent: a 350 MB ViT becomes a few hundred kB, read in
milliseconds, and the peak memory is the skeleton's, not twice the file's.

The bytes are untrusted: a truncated field, a length past its message's end, a varint of
more than 10 bytes or a wire type protobuf does not use (3, 4, 6, 7) is not an ONNX model;
what is kept is at most :data:`~cnnstat.onnx.read.MAX_BYTES`.
"""

from __future__ import annotations

import io

from cnnstat.errors import CnnstatError

GRAPH, INITIALIZER = 7, 5  # ModelProto.graph, GraphProto.initializer
DATA_FIELDS = {4, 5, 6, 7, 9, 10, 11}  # TensorProto: float, int32, string, int64, raw, double, uint64
KEEP = 600_000  # bytes: a tensor this small keeps its data (cnnstat reads up to 65,536 elements)


class Bad(Exception):
    """Not a protobuf message (the caller says which file)."""


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Stream:
    def __init__(self, f, size: int):
        self.f, self.pos, self.size = f, 0, size

    def byte(self) -> int:
        b = self.f.read(1)
        if not b:
            raise Bad("truncated")
        self.pos += 1
        return b[0]

    def varint(self) -> tuple:
        """(value, its bytes)."""
        raw, shift, value = bytearray(), 0, 0
        while True:
            b = self.byte()
            raw.append(b)
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value, bytes(raw)
            shift += 7
            if shift >= 70:
                raise Bad("varint too long")

    def read(self, n: int) -> bytes:
        if n > self.size - self.pos:
            raise Bad("truncated")
        data = self.f.read(n)
        if len(data) != n:
            raise Bad("truncated")
        self.pos += n
        return data

    def skip(self, n: int):
        if n > self.size - self.pos:
            raise Bad("truncated")
        self.f.seek(n, io.SEEK_CUR)
        self.pos += n


def _field(s: _Stream, end: int):
    """(field number, wire type, tag bytes, payload length for wire type 2, its bytes)."""
    tag, tag_raw = s.varint()
    field, wire = tag >> 3, tag & 7
    if field == 0 or wire in (3, 4, 6, 7):
        raise Bad("bad tag")
    if wire == 2:
        n, n_raw = s.varint()
        if s.pos + n > end:
            raise Bad("length past the end")
        return field, wire, tag_raw, n, n_raw
    return field, wire, tag_raw, None, b""


def _copy_scalar(s: _Stream, wire: int) -> bytes:
    if wire == 0:
        return s.varint()[1]
    return s.read(8 if wire == 1 else 4)


def _message(s: _Stream, end: int, on_field, out: bytearray, limit: int):
    """Copy the fields up to ``end`` into ``out``; ``on_field(field, wire, n)`` may return
    a function that handles a length-delimited field itself (returns its kept bytes)."""
    while s.pos < end:
        field, wire, tag_raw, n, n_raw = _field(s, end)
        handler = on_field(field, wire, n)
        if handler is not None:
            kept = handler(s, s.pos + n)
            if kept is not None:
                out += tag_raw + varint(len(kept)) + kept
        elif wire == 2:
            out += tag_raw + n_raw + s.read(n)
        else:
            out += tag_raw + _copy_scalar(s, wire)
        if len(out) > limit:
            raise CnnstatError(f"the model without its weights is larger than {limit:,} bytes")
    if s.pos != end:
        raise Bad("field past the end")


def skim(f, size: int, limit: int) -> bytes:
    """The ModelProto in the binary file ``f`` (``size`` bytes) without the values of its
    large initializers."""
    out = bytearray()

    def tensor(s, end):
        if end - s.pos <= KEEP:
            return s.read(end - s.pos)
        kept = bytearray()
        while s.pos < end:
            field, wire, tag_raw, n, n_raw = _field(s, end)
            if field in DATA_FIELDS:
                if wire == 2:
                    s.skip(n)
                else:
                    _copy_scalar(s, wire)
            elif wire == 2:
                kept += tag_raw + n_raw + s.read(n)
            else:
                kept += tag_raw + _copy_scalar(s, wire)
        if s.pos != end:
            raise Bad("field past the end")
        return bytes(kept)

    def graph(s, end):
        kept = bytearray()
        _message(
            s, end, lambda field, wire, n: tensor if field == INITIALIZER and wire == 2 else None, kept, limit
        )
        return bytes(kept)

    s = _Stream(f, size)
    _message(s, size, lambda field, wire, n: graph if field == GRAPH and wire == 2 else None, out, limit)
    return bytes(out)
