"""Number formatting and parsing: SI prefixes, bytes, dtypes, WxH / CxHxW options."""

from __future__ import annotations

import re

from cnnstat.errors import CnnstatError

# Bits per stored weight.
DTYPE_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "int4": 4}


_WHOLE_BYTES = {d: b // 8 for d, b in DTYPE_BITS.items() if b % 8 == 0}


def tensor_bytes(count: int, dtype: str) -> int:
    """Bytes to store ``count`` values; int4 packs two per byte, rounded up per tensor."""
    whole = _WHOLE_BYTES.get(dtype)
    return count * whole if whole else -(-count * DTYPE_BITS[dtype] // 8)


def si(n, digits: int = 2) -> str:
    """1890336 -> '1.89M'; 805429232816 -> '805.43G'; below 1000 printed as is."""
    n = float(n)
    for factor, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.{digits}f}{suffix}"
    return f"{n:.{digits}f}".rstrip("0").rstrip(".") if n != int(n) else str(int(n))


def human_bytes(n, binary: bool = False) -> str:
    """Decimal MB (10^6) by default, MiB (2^20) with ``binary``."""
    if binary:
        units = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))
    else:
        units = ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))
    for factor, suffix in units:
        if abs(n) >= factor:
            return f"{n / factor:.2f} {suffix}"
    return f"{int(n)} B"


def _ints(text: str, n: int, what: str, example: str) -> tuple:
    parts = re.split(r"[x×,*]", text.strip().lower())
    if len(parts) != n or not all(p.strip().isdigit() for p in parts):
        raise CnnstatError(f"malformed {what} '{text}': expected {example}")
    values = tuple(int(p) for p in parts)
    if any(v < 1 for v in values):
        raise CnnstatError(f"{what} '{text}' must be positive")
    return values


def parse_resolution(text: str, what: str = "resolution") -> tuple:
    """'1920x1080' -> (1920, 1080) as (W, H)."""
    return _ints(text, 2, what, "WIDTHxHEIGHT such as 1920x1080")


def parse_input(text: str) -> tuple:
    """'3x224x224' -> (3, 224, 224); '1x7' -> (1, 7) for 1-D models; '3x16x112x112' ->
    (3, 16, 112, 112) for video and volumes."""
    parts = re.split(r"[x×,*]", text.strip().lower())
    if not 1 <= len(parts) <= 4:
        raise CnnstatError(f"malformed input '{text}': expected CxHxW such as 3x224x224")
    return _ints(text, len(parts), "input", "CxHxW such as 3x224x224")


_SI = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_QUANTITY = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(Ki|Mi|Gi|Ti|Pi|[kKMGTP]?)\s*([A-Za-z/]*)\s*$"
)


def parse_quantity(value, units: tuple = ()) -> float:
    """``"25M"`` -> 25e6, ``"3.35 TB/s"`` -> 3.35e12, ``"30 MiB"`` -> 31457280; numbers pass.

    SI prefixes are decimal; Ki/Mi/Gi/Ti are binary. ``units`` lists the unit words allowed
    after the prefix (e.g. ``("B", "B/s")``); an empty unit is always allowed.
    """
    if isinstance(value, bool):
        raise CnnstatError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return value
    m = _QUANTITY.match(str(value))
    if not m or (m.group(3) and m.group(3) not in units):
        allowed = f" (units: {', '.join(units)})" if units else ""
        raise CnnstatError(f"cannot read '{value}' as a quantity such as 25M, 4.1G or 30 MiB{allowed}")
    number, prefix = m.group(1), m.group(2)
    factor = _BINARY[prefix] if prefix in _BINARY else _SI[prefix]
    result = float(number) * factor
    return int(result) if result.is_integer() else result
