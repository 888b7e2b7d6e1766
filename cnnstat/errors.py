"""User-facing errors. Each one is printed as a single message; the CLI exits with 2."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Location(NamedTuple):
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class CnnstatError(Exception):
    """An error caused by the user's input (spec, model name, option). Exit code 2."""

    exit_code = 2


class SpecError(CnnstatError):
    """An error located in a spec file: ``file:line:col: error: message`` plus notes."""

    def __init__(self, message: str, loc: Location | None = None, notes: Iterable[str] = ()):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.notes = list(notes)

    def __str__(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        return "\n".join([head] + [f"  note: {n}" for n in self.notes])


class OpError(Exception):
    """Raised by an op's handler (bad shape, bad argument); the builder adds the location."""


def brief(value, depth: int = 2) -> str:
    """A short repr for messages: user input can be huge (YAML aliases expand)."""
    text = _brief(value, depth)
    return text if len(text) <= 120 else text[:117] + "..."


def _brief(value, depth: int) -> str:
    if isinstance(value, (list, tuple)):
        if depth == 0:
            return "[...]"
        items = [_brief(v, depth - 1) for v in value[:6]]
        return "[" + ", ".join(items + (["..."] if len(value) > 6 else [])) + "]"
    if isinstance(value, dict):
        if depth == 0:
            return "{...}"
        items = [f"{_brief(k, 0)}: {_brief(v, depth - 1)}" for k, v in list(value.items())[:6]]
        return "{" + ", ".join(items + (["..."] if len(value) > 6 else [])) + "}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: str, candidates: Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'x'?)`` or ``''`` when nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(word), sorted(set(candidates)), n=n, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"
