"""Number formatting and parsing: SI prefixes, bytes, dtypes, WxH / CxHxW options."""

from __future__ import annotations

import math
import re
from fractions import Fraction

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


MAX_SIZE = 2**31  # the largest size, kernel, stride or count a spec or an option may give

_DIGITS = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() accepts '²' and '１'


def _shown(text) -> str:
    text = str(text)
    return text if len(text) <= 60 else text[:57] + "..."


def _ints(text: str, n: int, what: str, example: str) -> tuple:
    parts = re.split(r"[x×,*]", text.strip().lower())
    if len(parts) != n or not all(_DIGITS.fullmatch(p.strip()) for p in parts):
        raise CnnstatError(f"malformed {what} '{_shown(text)}': expected {example}")
    # int() of thousands of digits is an error (and slow): 11 digits are past MAX_SIZE already
    digits = [p.strip().lstrip("0") or "0" for p in parts]
    values = tuple(int(d) if len(d) <= 11 else MAX_SIZE + 1 for d in digits)
    if any(v < 1 for v in values):
        raise CnnstatError(f"{what} '{_shown(text)}' must be positive")
    if any(v > MAX_SIZE for v in values):
        raise CnnstatError(f"{what} '{_shown(text)}': each size must be at most {MAX_SIZE:,}")
    return values


def parse_resolution(text: str, what: str = "resolution") -> tuple:
    """'1920x1080' -> (1920, 1080) as (W, H)."""
    return _ints(text, 2, what, "WIDTHxHEIGHT such as 1920x1080")


def parse_input(text: str) -> tuple:
    """'3x224x224' -> (3, 224, 224); '1x7' -> (1, 7) for 1-D models; '3x16x112x112' ->
    (3, 16, 112, 112) for video and volumes."""
    parts = re.split(r"[x×,*]", text.strip().lower())
    if not 1 <= len(parts) <= 4:
        raise CnnstatError(f"malformed input '{_shown(text)}': expected CxHxW such as 3x224x224")
    return _ints(text, len(parts), "input", "CxHxW such as 3x224x224")


_SI = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_QUANTITY = re.compile(
    r"\s*([0-9]{0,400}\.?[0-9]{1,400})(?:[eE]([-+]?[0-9]{1,6}))?\s*(Ki|Mi|Gi|Ti|Pi|[kKMGTP]?)\s*([A-Za-z/]{0,20})\s*",
    re.ASCII,
)
_MAX_EXPONENT = 400  # 1e400 is past any float; 1e-400 below any


def parse_quantity(value, units: tuple = ()) -> int | float:
    """``"25M"`` -> 25000000, ``"3.35 TB/s"`` -> 3350000000000, ``"30 MiB"`` -> 31457280.

    The text is read exactly (decimal digits times the prefix, as a fraction, never through a
    float): ``"132.854144M"`` is the integer 132854144. The result is an ``int`` when the value
    is whole, else the float nearest to it. Numbers pass through; NaN and infinities are
    refused, as are booleans. SI prefixes are decimal; Ki/Mi/Gi/Ti are binary. ``units`` lists
    the unit words allowed after the prefix (e.g. ``("B", "B/s")``); an empty unit is always
    allowed. Ranges (positive, at most ...) are the caller's to check.
    """
    if isinstance(value, bool):
        raise CnnstatError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CnnstatError(f"expected a finite number, got {value!r}")
        return value
    text = str(value)
    m = _QUANTITY.fullmatch(text)
    if not m or (m.group(4) and m.group(4) not in units):
        allowed = f" (units: {', '.join(units)})" if units else ""
        raise CnnstatError(f"cannot read '{_shown(text)}' as a quantity such as 25M, 4.1G or 30 MiB{allowed}")
    number, exponent, prefix = m.group(1), int(m.group(2) or 0), m.group(3)
    if abs(exponent) > _MAX_EXPONENT:
        raise CnnstatError(f"'{_shown(text)}': the exponent must be at most {_MAX_EXPONENT} either way")
    factor = _BINARY[prefix] if prefix in _BINARY else _SI[prefix]
    result = Fraction(number) * factor * Fraction(10) ** exponent
    if result.denominator == 1:
        return int(result)
    as_float = float(result)  # bounded by the exponent: finite, or 0.0 for a tiny value
    if not math.isfinite(as_float):
        raise CnnstatError(f"'{_shown(text)}' is too large")
    return as_float
