"""Tables for the terminal (rich), Markdown and CSV, and JSON output.

Analysis code never imports this; commands build a :class:`Table` of raw values and pick a
format. rich is imported only when a terminal table is printed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable


class Column:
    """One column: ``fmt`` turns a raw value into text (CSV keeps the raw value).

    In a terminal a column is never narrower than its widest cell, so no number is ever cut:
    only ``wrap`` columns (layer names, descriptions) are narrowed, their text wrapped. When the
    table is still too wide, ``optional`` columns leave it (the highest rank first, with a note
    naming them; ``--wide`` keeps every column), and then the table turns vertical."""

    def __init__(
        self,
        header: str,
        key: str,
        fmt: Callable = str,
        numeric: bool = True,
        wrap: bool = False,
        optional: int = 0,
        csv: bool = True,
    ):
        self.header, self.key = header, key
        self.fmt = fmt  # raw value -> text for table/markdown; CSV keeps the raw value
        self.numeric = numeric
        self.wrap = wrap  # long text (names, descriptions) wraps; everything else stays on one line
        self.optional = optional  # 0: always shown; else dropped first (highest) on a narrow terminal
        self.csv = csv  # False: tables and Markdown only (a share that CSV's columns give)


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


class Rows:
    """Table rows made when they are read: ``make(item)`` for each of ``items`` (a list).

    A table of a million layers then keeps its layers, not a million dicts of cells: CSV and
    Markdown write each row as it is made, and a terminal or Markdown table past
    :data:`MAX_ROWS` makes only the rows it shows. A sequence: ``len``, iteration, an index
    or a slice (a list of made rows)."""

    __slots__ = ("items", "make")

    def __init__(self, items: list, make: Callable):
        self.items, self.make = items, make

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return map(self.make, self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.make(item) for item in self.items[index]]
        return self.make(self.items[index])

    def __add__(self, other) -> list:
        return list(self) + list(other)


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


_CONTROL = None
MAX_SHOWN = 200  # characters of one user string shown in a cell, a note or a message


def visible(text: str, limit: int | None = None, newlines: bool = False) -> str:
    """``text`` safe for a terminal: control characters (C0 but tab, DEL, C1) and the
    bidirectional overrides shown as escapes (``\\x1b``, ``\\n``, ``\\u202e``), not
    interpreted (``newlines``: line feeds kept); cut to ``limit`` characters with an ellipsis
    when longer."""
    import re

    global _CONTROL
    if _CONTROL is None:
        _CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return _CONTROL.sub(
        lambda m: m.group() if newlines and m.group() == "\n" else repr(m.group())[1:-1], text
    )


def markdown_cell(text: str) -> str:
    """A Markdown table cell: visible on one line, with ``|`` escaped (it would end the cell)."""
    return visible(text).replace("|", "\\|")


def github_data(text: str) -> str:
    """The message of a GitHub workflow command (``::error ...::MESSAGE``): %, CR and LF
    escaped as GitHub's toolkit does, so that a name cannot end the command and forge another."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """A property value of a workflow command (``file=``, ``title=``): also ``:`` and ``,``."""
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


def xml_text(text: str) -> str:
    """Text that XML 1.0 can hold: characters it forbids (control characters but tab, LF,
    CR; surrogates; U+FFFE/U+FFFF) shown as escapes; ElementTree escapes ``<&>"`` itself."""
    import re

    return re.sub(
        "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]",
        lambda m: repr(m.group())[1:-1],
        str(text),
    )


def _cell(column: Column, value) -> str:
    if value is None:
        return ""
    if value is UNKNOWN:
        return "?"
    if isinstance(value, Bound):
        return f"{'≤' if value.upper else '≥'} {column.fmt(value.value)}"
    text = column.fmt(value)
    return text if column.numeric or text.isprintable() else visible(text, newlines=True)


def _cells(table: Table, row: dict) -> list:
    return [_cell(c, row.get(c.key)) for c in table.columns]


def render(table: Table, fmt: str, out=None) -> None:
    out = out or sys.stdout
    if fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        columns = [c for c in table.columns if c.csv]
        writer.writerow([c.key for c in columns])
        for row in table.rows:
            writer.writerow([_csv(row.get(c.key)) for c in columns])
        if table.total:
            writer.writerow([_csv(table.total.get(c.key)) for c in columns])
        return
    if fmt == "markdown":
        _markdown(table, out)
        return
    _terminal(table, out)


def _markdown(table: Table, out) -> None:
    """A Markdown table, written a batch of rows at a time."""
    lines = [f"**{visible(table.title)}**", ""] if table.title else []
    lines.append("| " + " | ".join(markdown_cell(c.header) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in table.columns) + "|")
    for row in table.shown():
        lines.append("| " + " | ".join(map(markdown_cell, _cells(table, row))) + " |")
        if len(lines) >= 4096:
            out.write("\n".join(lines) + "\n")
            lines = []
    if table.total:
        cells = map(markdown_cell, _cells(table, table.total))
        lines.append("| " + " | ".join(f"**{v}**" if v else "" for v in cells) + " |")
    lines += [""] + [visible(n, newlines=True) for n in table.notes] if table.notes else []
    if lines:
        out.write("\n".join(lines) + "\n")


def _wide() -> bool:
    """``--wide`` on the command line (kept in click's context by the format option)."""
    click = sys.modules.get("click")
    ctx = click.get_current_context(silent=True) if click else None
    return bool(ctx and ctx.meta.get("cnnstat.wide"))


PIPED_WIDTH = 160  # notes wrap here when stdout is not a terminal


def _console_class():
    """rich's Console, except that a broken pipe is raised (rich would exit with 1, which
    means "budget exceeded"; the CLI ends quietly with 0)."""
    from rich.console import Console

    class QuietConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return QuietConsole


def _terminal(table: Table, out) -> None:
    """A rich table that fits the terminal without cutting a cell: see :func:`layout`."""
    Console = _console_class()  # noqa: N806

    tty = out.isatty()
    probe = Console(file=out, width=None if tty else PIPED_WIDTH)
    width = probe.width
    rows = table.shown()
    big = len(rows) > CHUNK_ROWS
    plan = layout(_sample(table, rows) if big else table, width, wide=_wide(), piped=not tty)
    console = Console(
        file=out, width=max(width, plan.width), highlight=False, emoji=False, markup=False, soft_wrap=False
    )
    if big and plan.columns is not None:
        _chunked(table, rows, plan, console)
    else:
        if big:  # vertical: the records of every row (rare: --all on a narrow terminal)
            plan = layout(table, width, wide=_wide(), piped=not tty)
        for item in plan.tables:
            console.print(item)
    for note in plan.notes + table.notes:
        console.print(visible(note, newlines=True), markup=False, width=width)


CHUNK_ROWS = 1000  # a terminal table of more rows (--all) is drawn this many rows at a time


def _sample(table: Table, rows) -> Table:
    """A table whose few rows make the same layout as ``rows`` would: for each column, the
    row holding its widest cell and the one holding its widest piece (word or list item), with
    that column's value alone. Found in one pass, keeping none of the cells."""
    widest: dict = {}  # column key -> (width, raw value), for the cell and for its widest piece
    pieces: dict = {}
    columns = table.columns
    for row in rows:
        for c in columns:
            value = row.get(c.key)
            text = _cell(c, value)
            n = _len(text)
            if n > widest.get(c.key, (-1,))[0]:
                widest[c.key] = (n, value)
            if c.wrap:
                n = max((_len(p) for p in _pieces(text, c.wrap)), default=0)
                if n > pieces.get(c.key, (-1,))[0]:
                    pieces[c.key] = (n, value)
    sample = Table(table.title, columns)
    sample.rows = [{key: v} for found in (widest, pieces) for key, (_, v) in found.items()]
    sample.total, sample.show_all = table.total, True
    return sample


def _chunked(table: Table, rows, plan: _Plan, console) -> None:
    """A horizontal table of many rows drawn :data:`CHUNK_ROWS` at a time at ``plan``'s
    column widths, the borders between pieces left out: the same text as one rich table, in
    the memory of one piece."""
    cols = plan.columns
    headers = [c.header for c in cols]
    wrap = [c.wrap for c in cols]
    justify = ["right" if c.numeric else "left" for c in cols]
    widths = [col.width for col in plan.tables[0].columns]
    n = len(rows)
    for start in range(0, n, CHUNK_ROWS):
        first, last = start == 0, start + CHUNK_ROWS >= n
        chunk = rows[start : start + CHUNK_ROWS]
        total = last and bool(table.total)
        cells = [[_cell(c, row.get(c.key)) for c in cols] for row in chunk + ([table.total] if total else [])]
        title = table.title if first else None
        piece = _rich(title, headers, cells, justify, wrap, widths, total, header=first)
        with console.capture() as capture:
            console.print(piece)
        lines = capture.get().split("\n")[:-1]
        lines = lines[(0 if first else 1) : (None if last else -1)]  # the border between pieces
        console.file.write("\n".join(lines) + "\n")


def _len(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


class _Plan:
    def __init__(self, tables: list, width: int, notes: list, columns: list | None = None):
        self.tables, self.width, self.notes = tables, width, notes
        self.columns = columns  # the columns of a horizontal table; None: vertical


def _pieces(text: str, wrap) -> list:
    """What a cell may be wrapped into: words (``wrap=True``) or the parts a separator leaves
    (``wrap=", "``: the separator's comma stays at the end of a line)."""
    if isinstance(wrap, str):
        parts = text.split(wrap)
        return [p + wrap.rstrip() for p in parts[:-1]] + parts[-1:]
    return text.split()


def _widths(
    headers: list, cells: list, wrap: list, avail: int, floor: list | None = None, fold: bool = False
) -> list | None:
    """Column widths (without padding) that fit ``avail`` characters, or None.

    A column that does not wrap is as wide as its widest cell and its header's longest word
    (a header wraps between words); a wrapping column may narrow to 12 characters or its
    longest header word (``wrap=True``: long words fold), or to its longest piece
    (``wrap=SEPARATOR``), never below ``floor``. Headers wider than their cells wrap first
    (the widest first), then the widest text column (``wrap=True``) gives way, then the widest
    list (``wrap=SEPARATOR``); ``fold``: headers but the first may break inside a word too (the
    names heading a vertical table's columns)."""
    n = len(headers)
    floor = floor or [0] * n
    content = [max((_len(row[i]) for row in cells), default=0) for i in range(n)]
    word = [max((_len(w) for w in headers[i].split()), default=0) for i in range(n)]
    if fold:
        word[1:] = [min(w, 12) for w in word[1:]]
    natural = [max(content[i], _len(headers[i])) for i in range(n)]
    if sum(natural) <= avail:
        return natural
    low = []
    for i in range(n):
        if isinstance(wrap[i], str):
            piece = max((_len(p) for row in cells for p in _pieces(row[i], wrap[i])), default=0)
            low.append(max(word[i], piece))
        elif wrap[i]:
            low.append(max(word[i], min(content[i], 12)))
        else:
            low.append(max(content[i], word[i]))
        low[i] = max(low[i], floor[i])
    if sum(low) > avail:
        return None
    widths = list(natural)
    headers_only = [not wrap[i] for i in range(n)]  # widths[i] > low[i]: a header wider than its cells
    stages = headers_only, [wrap[i] is True for i in range(n)], [isinstance(wrap[i], str) for i in range(n)]
    for stage in stages:  # headers (a line each), then text, then lists give way
        while sum(widths) > avail:  # narrow the widest column that can give (as rich does)
            free = [i for i in range(n) if stage[i] and widths[i] > low[i]]
            if not free:
                break
            widths[max(free, key=lambda i: widths[i])] -= 1
    return widths


def _tokens(text: str, wrap, width: int) -> list:
    """(piece, glue) pairs a cell may break between: words (a word longer than ``width`` also
    after ``.``, ``_``, ``/`` or ``-``, else every ``width`` characters), or a separator's
    parts; ``glue`` joins a piece to the one before it on the same line."""
    if isinstance(wrap, str):
        return [(p, " ") for p in _pieces(text, wrap)]
    out = []
    for word in text.split(" "):
        parts = re.findall(r"[^./_-]*[./_-]|[^./_-]+$", word) if _len(word) > width else [word]
        for i, part in enumerate(parts or [word]):
            while _len(part) > width:
                out.append((part[:width], " " if i == 0 else ""))
                part, i = part[width:], 1
            out.append((part, " " if i == 0 else ""))
    return out


def _fill(text: str, wrap, width: int) -> str:
    """A wrapping column's cell broken into lines of at most ``width`` characters."""
    if not wrap or _len(text) <= width:
        return text
    lines, line = [], ""
    for piece, glue in _tokens(text, wrap, width):
        joined = line + glue + piece if line else piece
        if line and _len(joined) > width:
            lines.append(line.rstrip())
            joined = piece
        line = joined
    return "\n".join(lines + [line])


def _rich(title, headers, cells, justify, wrap, widths, total: bool, bold_last_column=False, header=True):
    from rich.table import Table as RichTable

    t = RichTable(
        title=visible(title, newlines=True) if title else None,
        title_justify="left",
        show_footer=False,
        show_header=header,
    )
    for i, header in enumerate(headers):
        t.add_column(
            _fill(header, True, widths[i]),
            justify=justify[i],
            width=widths[i],
            no_wrap=False,
            overflow="fold",
            style="bold" if bold_last_column and i == len(headers) - 1 else None,
        )
    cells = [[_fill(text, wrap[i], widths[i]) for i, text in enumerate(row)] for row in cells]
    body = cells[:-1] if total else cells
    for row in body:
        t.add_row(*row)
    if total:
        t.add_section()
        t.add_row(*cells[-1], style="bold")
    return t


def _chrome(n: int) -> int:
    """Borders and padding of a rich table with ``n`` columns."""
    return 3 * n + 1


def layout(table: Table, width: int, wide: bool = False, piped: bool = False) -> _Plan:
    """How a table is drawn at ``width`` characters, in this order:

    1. every column, wrapping columns narrowed (never a numeric cell);
    2. without ``optional`` columns, the highest rank first (a note names them);
    3. vertical: the table transposed (one column per row, its first cell as the header), in
       as many pieces as it takes; a piece of one row is a record.

    ``wide`` (``--wide``): every column at its natural width, however wide. ``piped`` (stdout is
    not a terminal): step 1, else every column at its natural width: a file or a pipe gets every
    column, in the same layout whatever the width."""
    rows = table.shown() + ([table.total] if table.total else [])
    total = bool(table.total)
    columns = list(table.columns)

    def attempt(cols, wide=wide):
        headers = [c.header for c in cols]
        cells = [[_cell(c, row.get(c.key)) for c in cols] for row in rows]
        wrap = [c.wrap for c in cols]
        avail = 10**9 if wide else width - _chrome(len(cols))
        widths = _widths(headers, cells, wrap, avail)
        if widths is None:
            return None
        justify = ["right" if c.numeric else "left" for c in cols]
        rt = _rich(table.title, headers, cells, justify, wrap, widths, total)
        return _Plan([rt], sum(widths) + _chrome(len(cols)), [], cols)

    plan = attempt(columns)
    if plan is not None:
        return plan
    if piped:
        return attempt(columns, wide=True)
    ranked = sorted({c.optional for c in columns if c.optional}, reverse=True)
    dropped = []
    for rank in ranked:
        dropped += [c for c in columns if c.optional == rank]
        plan = attempt([c for c in columns if c not in dropped])
        if plan is not None:
            names = ", ".join(c.header or c.key for c in dropped)
            plan.notes.append(
                f"Not shown at {width} columns: {names} (--wide shows every column; "
                "--format csv or json carries all)."
            )
            return plan
    return _vertical(table, columns, rows, width)


def _vertical(table: Table, columns: list, rows: list, width: int) -> _Plan:
    """The table transposed, cut into pieces of consecutive rows that each fit ``width``."""
    first, rest = columns[0], columns[1:]
    labels = [c.header or c.key for c in rest]
    texts = [[_cell(c, row.get(c.key)) for c in columns] for row in rows]
    total_index = len(rows) - 1 if table.total else None
    tables, start = [], 0
    while start < len(rows):
        best = None
        for stop in range(start + 1, len(rows) + 1):
            headers = [first.header or first.key] + [texts[r][0] for r in range(start, stop)]
            cells = [[labels[i]] + [texts[r][i + 1] for r in range(start, stop)] for i in range(len(rest))]
            wrap = [True] + [any(c.wrap for c in rest)] * (stop - start)
            rigid = [
                max((_len(texts[r][i + 1]) for i, c in enumerate(rest) if not c.wrap), default=0)
                for r in range(start, stop)
            ]
            avail = width - _chrome(stop - start + 1)
            widths = _widths(headers, cells, wrap, avail, [0] + rigid, fold=True)
            if widths is None and best is not None:
                break
            justify = ["left"] + ["right" if all(c.numeric for c in rest) else "left"] * (stop - start)
            best = (stop, headers, cells, justify, wrap, widths or _squeezed(headers, cells, avail))
        stop, headers, cells, justify, wrap, widths = best
        title = table.title if start == 0 else None
        bold = total_index is not None and stop - 1 == total_index
        tables.append(_rich(title, headers, cells, justify, wrap, widths, False, bold_last_column=bold))
        start = stop
    return _Plan(tables, width, [])


def _squeezed(headers, cells, avail) -> list:
    """A single record wider than the terminal: the label column gives way to the value."""
    value = max(_len(headers[1]), max((_len(row[1]) for row in cells), default=0))
    return [max(4, avail - value), value]


def _csv(value):
    if value is UNKNOWN:
        return "?"
    if isinstance(value, Bound):
        return f"{'<=' if value.upper else '>='}{_csv(value.value)}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return "" if value is None else value


def print_json(obj, out=None) -> None:
    """``obj`` as strict RFC 8259 JSON: no ``NaN`` or ``Infinity`` (``allow_nan=False``). A
    value that is not finite is written as null, and the reason (where, and what it was) is
    said on stderr: JSON has no such numbers, and a parser would refuse the document.

    The text is byte for byte ``json.dumps(obj, indent=2, allow_nan=False)``, written piece by
    piece (see :meth:`_JsonWriter.value`): the first two levels value by value, long lists
    item by item, and an iterable that is not a list, tuple, mapping or string (``Analysis``'s
    layers when streamed) as a JSON array written item by item, so that a million layers are
    never one object or one string in memory."""
    out = out or sys.stdout
    replaced: list = []
    writer = _JsonWriter(out)
    writer.value(obj, "", "$", replaced)
    writer.add("\n")
    writer.flush()
    if replaced:
        shown = ", ".join(f"{where} ({what})" for where, what in replaced[:5])
        more = f" and {len(replaced) - 5} more" if len(replaced) > 5 else ""
        print(
            f"note: written as null, JSON having no NaN or infinity: {shown}{more}",
            file=sys.stderr,
        )


def _jstr(text: str) -> str:
    """A JSON string as ``json.dumps`` writes it (ASCII, escapes)."""
    global _jstr
    from json.encoder import encode_basestring_ascii

    _jstr = encode_basestring_ascii
    return _jstr(text)


def _is_stream(value) -> bool:
    """An iterable written as a JSON array item by item (not a string, mapping, list or tuple)."""
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict, list, tuple))


class _NotFinite(ValueError):
    """A float JSON cannot hold (NaN, an infinity) met while encoding."""


class _JsonWriter:
    """Indented JSON (``indent=2``) written in batches of pieces to ``out``.

    The common types are encoded here (strings with ``json``'s own C escaper); anything else
    goes through ``json.dumps`` itself, re-indented, so the text is the same as json's."""

    BATCH = 1024  # pieces joined per write

    def __init__(self, out):
        self.out, self.parts = out, []

    def add(self, text: str) -> None:
        self.parts.append(text)
        if len(self.parts) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.out.write("".join(self.parts))
            self.parts = []

    def value(self, value, pad: str, where: str, replaced: list, depth: int = 0) -> None:
        """One value, nested ``depth`` deep. A stream or a list of more than :data:`BIG` items
        is written item by item, and so is every mapping and list of the first two levels
        (a model's rows, each holding its layers); anything else is encoded whole. A value with
        a float JSON cannot hold is written again from ``finite_json`` (null in its place,
        ``replaced`` says where)."""
        t = type(value)
        if _is_stream(value) or (t is list or t is tuple) and (depth < 2 or len(value) > self.BIG):
            self.array(value, pad, where, replaced, depth)
            return
        if depth < 2 and t is dict and value and all(type(k) is str for k in value):
            self.mapping(value, pad, where, replaced, depth)
            return
        try:
            text = _text(value, pad)
        except _NotFinite:
            text = _text(finite_json(value, where, replaced), pad)
        self.add(text)

    BIG = 1000

    def mapping(self, obj: dict, pad: str, where: str, replaced: list, depth: int) -> None:
        inner = pad + "  "
        sep = "{\n" + inner
        for key, value in obj.items():
            self.add(sep + _jstr(key) + ": ")
            self.value(value, inner, f"{where}.{key}", replaced, depth + 1)
            sep = ",\n" + inner
        self.add("\n" + pad + "}")

    def array(self, items, pad: str, where: str, replaced: list, depth: int = 0) -> None:
        inner = pad + "  "
        sep = "[\n" + inner
        for i, item in enumerate(items):
            self.add(sep)
            self.value(item, inner, f"{where}[{i}]", replaced, depth + 1)
            sep = ",\n" + inner
        self.add("[]" if sep[0] == "[" else "\n" + pad + "]")


_SCALAR_TEXT = {None: "null", True: "true", False: "false"}
_KEYS: dict = {}  # key -> '"key": ' (keys repeat: every layer has the same)


def _key(key: str) -> str:
    text = _KEYS.get(key)
    if text is None:
        text = _jstr(key) + ": "
        if len(_KEYS) < 4096:
            _KEYS[key] = text
    return text


def _text(value, pad: str) -> str:
    """``value`` as ``json.dumps(value, indent=2, allow_nan=False)`` writes it, nested at
    ``pad``; :class:`_NotFinite` for NaN and the infinities. Strings, ints, mappings and lists
    are written here (with json's own C escaper for strings), anything else by json itself.
    A mapping's values that are strings, ints, or lists of ints or of strings are written in
    its loop: a layer's object is mostly those, and a call per value would double the time."""
    t = type(value)
    if t is str:
        return _jstr(value)
    if t is int:
        return int.__repr__(value)
    if t is dict:
        if not value:
            return "{}"
        inner = pad + "  "
        deep = inner + "  "
        sep = ",\n" + deep
        items = []
        key_text = _KEYS.get
        for key, item in value.items():
            k = key_text(key)
            if k is None:
                if type(key) is not str:  # json's own key conversions
                    return _dumps(value, pad)
                k = _key(key)
            ti = type(item)
            if ti is int:
                items.append(k + int.__repr__(item))
            elif ti is str:
                items.append(k + _jstr(item))
            elif (ti is list or ti is tuple) and item and (write := _scalars(item)) is not None:
                items.append(k + "[\n" + deep + sep.join(map(write, item)) + "\n" + inner + "]")
            else:
                items.append(k + _text(item, inner))
        return "{\n" + inner + (",\n" + inner).join(items) + "\n" + pad + "}"
    if t is list or t is tuple:
        if not value:
            return "[]"
        inner = pad + "  "
        sep = ",\n" + inner
        write = _scalars(value)
        if write is not None:
            return "[\n" + inner + sep.join(map(write, value)) + "\n" + pad + "]"
        return "[\n" + inner + sep.join([_text(v, inner) for v in value]) + "\n" + pad + "]"
    if t is float:
        if value != value or value in (_INF, -_INF):
            raise _NotFinite(repr(value))
        return float.__repr__(value)
    if value is None or t is bool:
        return _SCALAR_TEXT[value]
    return _dumps(value, pad)


def _scalars(values):
    """How to write every item of ``values`` when they are all ints (not bools, which JSON
    writes as true/false) or all strings; None otherwise."""
    first = type(values[0])
    if first is not int and first is not str:
        return None
    for v in values:
        if type(v) is not first:
            return None
    return int.__repr__ if first is int else _jstr


_INF = float("inf")


def _dumps(value, pad: str) -> str:
    """``json.dumps`` itself, for what :func:`_text` does not handle, indented at ``pad``."""
    import json

    try:
        text = json.dumps(value, indent=2, allow_nan=False)
    except ValueError as exc:
        if "JSON compliant" in str(exc):
            raise _NotFinite(str(exc)) from None
        raise
    return text.replace("\n", "\n" + pad)


def finite_json(value, where: str = "$", replaced: list | None = None):
    """``value`` with every float that is not finite replaced by None; ``replaced`` collects
    (path, 'nan'/'inf'/'-inf') for each."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        if replaced is not None:
            replaced.append((where, repr(value)))
        return None
    if isinstance(value, dict):
        return {k: finite_json(v, f"{where}.{k}", replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v, f"{where}[{i}]", replaced) for i, v in enumerate(value)]
    return value
