"""The documentation runs: README.md and docs/*.md are checked against the program.

Conventions the pages follow (docs/contributing.md explains them to writers):

- A fenced block whose first line starts with ``$ cnnstat`` is an example: the command runs
  in-process (click's CliRunner, stdout and stderr together, as a terminal shows them) and its
  output must equal the rest of the block. Before comparing, ANSI codes are dropped, trailing
  spaces stripped, runs of spaces and of table rules (``━━━``) collapsed, since column widths
  vary. A line ``...`` stands for any number of lines. The block may end with ``$ echo $?``
  and the expected exit status; without it, the command must succeed (exit status 0).
- Every ```` ```python ```` block runs (``exec`` in a fresh namespace).
- ``<!-- file: NAME -->`` before a fenced block makes its text the file NAME in the working
  directory of every example on that page (each example runs in an empty temporary directory).
- ``<!-- json: cnnstat ARGS -->`` before a ```` ```json ```` block: the block is an excerpt of the
  command's JSON output. Every key shown has the value shown; a list shows its first elements;
  ``"..."`` (a value, or a key) stands for anything.
- README.md stays under 300 lines, links every page in docs/, and every relative link and
  ``#anchor`` between the pages resolves.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnstat.cli import cli

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TEST_COMMAND = "pip install -c constraints.txt '.[dev,torch]' && pytest"

FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
MARK = re.compile(r"^<!--\s*(file|json):\s*(.*?)\s*-->$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RULES = re.compile(r"([─━═])\1+")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marks: dict  # {"file": NAME} / {"json": COMMAND} from the comments just above the fence

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list:
    """Every fenced block of a Markdown page (not nested), with the marks above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group(1), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        marks, k = {}, start - 1
        while k >= 0 and lines[k].startswith("<!--"):
            mark = MARK.match(lines[k].strip())
            if mark:
                marks[mark.group(1)] = mark.group(2)
            k -= 1
        out.append(Block(page, start + 1, m.group(2), "\n".join(lines[start + 1 : j]), marks))
        i = j + 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]
EXAMPLES = [b for b in ALL if b.text.startswith("$ cnnstat")]
PYTHON = [b for b in ALL if b.lang == "python"]
JSON = [b for b in ALL if "json" in b.marks]


def page_files(page: Path) -> dict:
    return {b.marks["file"]: b.text + "\n" for b in ALL if b.page == page and "file" in b.marks}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory holding the files the page declares."""

    def enter(page):
        for name, text in page_files(page).items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        return tmp_path

    return enter


def invoke(command: str):
    args = shlex.split(command)
    assert args[0] == "cnnstat", command
    bad = [a for a in args if a in (">", ">>", "|", "<", "&&", ";", "2>&1")]
    assert not bad, f"examples run one cnnstat command, without shell syntax: {command}"
    return CliRunner().invoke(cli, args[1:], prog_name="cnnstat", catch_exceptions=False)


def normalize(text: str) -> list:
    lines = [RULES.sub(r"\1", re.sub(" +", " ", ANSI.sub("", line).rstrip())) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list, actual: list) -> bool:
    """``expected`` equals ``actual``, a line ``...`` matching any run of lines."""
    pattern = "".join("(?:.*\n)*?" if e == "..." else re.escape(e) + "\n" for e in expected)
    return re.fullmatch(pattern, "".join(a + "\n" for a in actual)) is not None


def parse_example(text: str) -> tuple:
    """(command, expected output lines, expected exit status or None)."""
    lines = text.splitlines()
    command, expected, status = lines[0][2:], lines[1:], None
    if "$ echo $?" in expected:
        at = expected.index("$ echo $?")
        assert at == len(expected) - 2, "'$ echo $?' comes last, followed by the status"
        status, expected = int(expected[-1]), expected[:at]
    extra = [e for e in expected if e.startswith("$ ")]
    assert not extra, f"one command per block: {extra}"
    return command, expected, status


@pytest.mark.parametrize("block", EXAMPLES, ids=[b.id for b in EXAMPLES])
def test_example(block, workdir):
    command, expected, status = parse_example(block.text)
    workdir(block.page)
    result = invoke(command)
    actual = normalize(result.output)
    want = normalize("\n".join(expected))
    if not matches(want, actual):
        shown = "\n".join(actual)
        pytest.fail(f"{block.id}: `{command}` printed\n{shown}\n\nwhere the page shows\n" + "\n".join(want))
    want_status = 0 if status is None else status
    assert result.exit_code == want_status, f"{block.id}: exit status {result.exit_code}, not {want_status}"


@pytest.fixture
def registry():
    """Python examples may register ops (docs/contributing.md does): put the registry back."""
    from cnnstat.ops import REGISTRY

    saved = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved)


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python(block, workdir, registry):
    workdir(block.page)
    code = compile(block.text, block.id, "exec")
    exec(code, {"__name__": "__docs__"})


def subset(shown, actual, where="$") -> list:
    """Where ``shown`` (a JSON excerpt) differs from ``actual``."""
    if shown == "...":
        return []
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: the page shows an object, the output has {actual!r:.80}"]
        errors = []
        for key, value in shown.items():
            if key == "...":
                continue
            if key not in actual:
                errors.append(f"{where}: no key {key!r} in the output")
            else:
                errors += subset(value, actual[key], f"{where}.{key}")
        return errors
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(actual) < len(shown):
            return [f"{where}: the page shows {len(shown)} element(s), the output has {actual!r:.80}"]
        return [e for i, v in enumerate(shown) for e in subset(v, actual[i], f"{where}[{i}]")]
    if shown != actual or type(shown) is not type(actual):
        return [f"{where}: the page shows {shown!r}, the output has {actual!r}"]
    return []


@pytest.mark.parametrize("block", JSON, ids=[b.id for b in JSON])
def test_json_excerpt(block, workdir):
    workdir(block.page)
    result = invoke(block.marks["json"])  # check --format json exits 1 on a failed limit
    errors = subset(json.loads(block.text), json.loads(result.stdout))
    assert not errors, f"{block.id}:\n" + "\n".join(errors)


# --- the pages themselves ------------------------------------------------------------------------


def test_the_readme_is_the_front_door():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 300
    sh = [b.text for b in blocks(REPO / "README.md") if b.lang == "sh"]
    assert any(TEST_COMMAND in text.splitlines() for text in sh), "CI greps the README for it"
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", text, flags=re.M | re.S)  # headings only
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.*)$", text, flags=re.M)}


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", text, flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


def test_ops_table_names_registered_ops():
    """The op table of docs/spec-language.md: one row per op, each naming a registered op."""
    from cnnstat.ops import REGISTRY

    text = (REPO / "docs" / "spec-language.md").read_text(encoding="utf-8")
    table = text.split("<!-- ops table -->\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].startswith("| op |"), table[0]
    rows = [line for line in table[2:] if line.startswith("|")]
    names = [re.match(r"\| `([\w-]+)`", row) for row in rows]
    assert all(names), [row for row, n in zip(rows, names) if not n]
    unknown = [n.group(1) for n in names if n.group(1) not in REGISTRY]
    assert not unknown, f"rows for ops cnnstat does not have: {unknown}"


# | `model` | HxW | params | published | GMAC | published | RF size / jump | source |
ZOO_ROW = re.compile(
    r"\| `([\w.-]+)` \| (\d+(?:x\d+)+) \| ([\d,]+) \| [^|]* \| ([\d.]+) \| [^|]* \| ([\dx]+) / ([\dx/]+) \|"
)


def _per_axis(cell: str, n: int) -> list:
    """'219' -> n times 219; '109x219x219' -> per axis; '66/65' -> Fraction(66, 65)."""
    from fractions import Fraction

    values = [Fraction(v) for v in cell.split("x")]
    return values * n if len(values) == 1 else values


def test_zoo_table():
    """docs/conventions.md's zoo table: input, params, GMAC and receptive field of each row."""
    from fractions import Fraction

    from cnnstat.analysis import analyze

    text = (REPO / "docs" / "conventions.md").read_text(encoding="utf-8")
    table = text.split("## The zoo against published figures", 1)[1]
    rows = ZOO_ROW.findall(table)
    assert len(rows) == table.count("\n| `"), "every row of the table parses"
    wrong = []
    for name, size_in, params, gmac, size, jump in rows:
        a = analyze(name)
        t, rf = a.totals(), a.receptive_field().rf
        n = len(rf.size)
        shown = (size_in, int(params.replace(",", "")), gmac, _per_axis(size, n), _per_axis(jump, n))
        actual = (
            "x".join(map(str, a.graph.input[1:])),
            t["params"],
            f"{t['macs'] / 1e9:.3f}",
            [Fraction(v) for v in rf.size],
            [Fraction(v) for v in rf.jump],
        )
        if shown != actual:
            wrong.append(f"{name}: the page shows {shown}, cnnstat gives {actual}")
    assert not wrong, "\n".join(wrong)


def test_the_examples_are_found():
    """The parser finds what the pages hold (a guard against a convention silently drifting)."""
    assert len(EXAMPLES) >= 10 and len(PYTHON) >= 3 and JSON
