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
    """1890336 -> '1.89M'; 805429232816 -> '805.43G'; below 1000 printed as is. Any number
    prints: a value that rounds up to the next prefix takes it (999999.999 -> '1.00M'); past
    999.99P in scientific notation, exact for integers past float's range ('1.00e+400'); NaN
    and infinities as 'nan', 'inf', '-inf'."""
    return _scaled(n, _SI_UNITS, digits, "", "", _plain)


def human_bytes(n, binary: bool = False) -> str:
    """Decimal MB (10^6) by default, MiB (2^20) with ``binary``; as ``si`` past the largest
    unit (PB, PiB)."""
    units = _BINARY_UNITS if binary else _DECIMAL_UNITS
    return _scaled(n, units, 2, " ", "B", lambda v, digits: f"{int(v)} B")


_SI_UNITS = ((10**3, "K"), (10**6, "M"), (10**9, "G"), (10**12, "T"), (10**15, "P"))
_DECIMAL_UNITS = ((10**3, "kB"), (10**6, "MB"), (10**9, "GB"), (10**12, "TB"), (10**15, "PB"))
_BINARY_UNITS = ((2**10, "KiB"), (2**20, "MiB"), (2**30, "GiB"), (2**40, "TiB"), (2**50, "PiB"))


def _plain(v, digits: int) -> str:
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _scaled(n, units: tuple, digits: int, sep: str, base: str, small) -> str:
    """``n`` in the largest of ``units`` ((factor, suffix), ascending) that it reaches once
    rounded to ``digits`` decimals; below the first, ``small(n, digits)``."""
    if isinstance(n, float) and not math.isfinite(n):
        return str(n)
    if not isinstance(n, int):
        try:
            n = float(n)  # Fraction, Decimal
        except OverflowError:
            n = int(n)  # past float's range: its integer part is all that shows
    mag = abs(n)
    if mag < units[0][0]:
        text = small(n, digits)
        if abs(float(text.split()[0])) < units[0][0]:
            return text
    for i, (factor, suffix) in enumerate(units):
        above = units[i + 1][0] if i + 1 < len(units) else 1000 * factor
        if mag >= above:
            continue
        text = f"{n / factor:.{digits}f}"
        if abs(float(text)) * factor < above:  # else it rounded up into the next unit
            return f"{text}{sep}{suffix}"
    from decimal import Decimal

    return f"{Decimal(n):.{digits}e}{sep}{base}"  # exact for an integer of any size


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
