"""Tables for the terminal (rich), Markdown and CSV, and JSON output.

Analysis code never imports this; commands build a :class:`Table` of raw values and pick a
format. rich is imported only when a terminal table is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class Column:
    def __init__(self, header: str, key: str, fmt: Callable = str, numeric: bool = True, wrap: bool = False):
        self.header, self.key = header, key
        self.fmt = fmt  # raw value -> text for table/markdown; CSV keeps the raw value
        self.numeric = numeric
        self.wrap = wrap  # long text (descriptions) wraps; everything else stays on one line


class Bound:
    """A figure known only as a bound: ``Bound(v)`` is at least ``v`` (printed ``≥ v``, in CSV
    ``>=v``), ``Bound(v, upper=True)`` at most ``v`` (an fps limit when the MACs are a lower
    bound). Tables print the bound with the column's format."""

    __slots__ = ("value", "upper")

    def __init__(self, value, upper: bool = False):
        self.value, self.upper = value, upper

    def __repr__(self) -> str:
        return f"{'<=' if self.upper else '>='}{self.value!r}"


class _Unknown:
    """A figure nobody knows (an unsupported call's MACs): ``?`` in every format."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN = _Unknown()


def at_least(value, lower: bool):
    """``value``, or ``Bound(value)`` when ``lower`` (the figure is a lower bound)."""
    return Bound(value) if lower else value


MAX_ROWS = 300  # terminal and Markdown tables show the first and last rows beyond this


class Table:
    def __init__(self, title: str, columns: list, rows: list | None = None):
        self.title, self.columns = title, columns
        self.rows = rows if rows is not None else []  # dicts of raw values
        self.notes: list = []  # lines printed under the table
        self.total: dict | None = None  # an optional closing row
        self.show_all = False  # --all: every row even past MAX_ROWS

    def shown(self) -> list:
        """The rows a terminal or Markdown table prints: all, or the first 200 and last 50
        with a marker row between (CSV and JSON always carry every row)."""
        if self.show_all or len(self.rows) <= MAX_ROWS:
            return self.rows
        hidden = len(self.rows) - 250
        first = self.columns[0].key
        marker = {first: f"... {hidden:,} more rows (--all shows them)"}
        return self.rows[:200] + [marker] + self.rows[-50:]


def _cell(column: Column, value) -> str:
    if value is None:
        return ""
    if value is UNKNOWN:
        return "?"
    if isinstance(value, Bound):
        return f"{'≤' if value.upper else '≥'} {column.fmt(value.value)}"
    return column.fmt(value)


def _cells(table: Table, row: dict) -> list:
    return [_cell(c, row.get(c.key)) for c in table.columns]


def render(table: Table, fmt: str, out=None) -> None:
    out = out or sys.stdout
    if fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in table.columns])
        for row in table.rows + ([table.total] if table.total else []):
            writer.writerow([_csv(row.get(c.key)) for c in table.columns])
        return
    if fmt == "markdown":
        lines = [f"**{table.title}**", ""] if table.title else []
        lines.append("| " + " | ".join(c.header for c in table.columns) + " |")
        lines.append("|" + "|".join("---:" if c.numeric else "---" for c in table.columns) + "|")
        for row in table.shown():
            lines.append("| " + " | ".join(_cells(table, row)) + " |")
        if table.total:
            lines.append(
                "| " + " | ".join(f"**{v}**" if v else "" for v in _cells(table, table.total)) + " |"
            )
        lines += [""] + table.notes if table.notes else []
        out.write("\n".join(lines) + "\n")
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(
        file=out, width=None if out.isatty() else 160, highlight=False, emoji=False, markup=False
    )
    t = RichTable(title=table.title or None, title_justify="left", show_footer=False)
    for c in table.columns:
        t.add_column(c.header, justify="right" if c.numeric else "left", no_wrap=not c.wrap)
    for row in table.shown():
        t.add_row(*_cells(table, row))
    if table.total:
        t.add_section()
        t.add_row(*_cells(table, table.total), style="bold")
    console.print(t)
    for note in table.notes:
        console.print(note, markup=False)


def _csv(value):
    if value is UNKNOWN:
        return "?"
    if isinstance(value, Bound):
        return f"{'<=' if value.upper else '>='}{_csv(value.value)}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return "" if value is None else value


def print_json(obj, out=None) -> None:
    import json

    (out or sys.stdout).write(json.dumps(obj, indent=2) + "\n")
