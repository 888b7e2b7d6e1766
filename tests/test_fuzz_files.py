"""Property-based robustness, continued: the files around a spec.

tests/test_fuzz.py generates specs and budget files; this module generates what comes with
them in a pull request: trees of included files (cycles, ``../``, absolute paths, devices,
FIFOs, directories), YAML anchors, aliases and merge keys, baselines, device files, output
paths for ``snapshot -o``, and the numbers tables print. The only acceptable outcomes are a
result or one message with exit 2 (exit 1 also for check) - never an uncaught exception, never
a hang (each run is cut by an alarm), never the content of a file outside the spec's tree in
a message. `CNNSTAT_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_files.py` runs a longer sweep.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import string
from contextlib import contextmanager
from fractions import Fraction

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnnstat.cli import cli
from cnnstat.render import Column, Table, render
from cnnstat.units import human_bytes, si

EXAMPLES = max(1, int(os.environ.get("CNNSTAT_FUZZ_EXAMPLES", "800")) // 4)  # 200 per test in CI
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
SECONDS = 20  # a run past this is a hang
SECRET = "API_TOKEN_hunter2"  # in a file outside the spec's tree: never quoted back


@contextmanager
def alarm(seconds: int = SECONDS):
    """Fail instead of hanging: SIGALRM interrupts a read that never returns."""

    def hang(signum, frame):
        raise TimeoutError(f"no result within {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def invoke(args, cwd, codes=(0, 2)):
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with alarm():
            result = CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(here)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception} for {args}"
    )
    assert result.exit_code in codes, (result.exit_code, result.output[-2000:])
    if result.exit_code == 2:
        assert result.stderr.strip() and "Traceback" not in result.stderr
        assert len(result.stderr) < 5000, result.stderr[:300]
    assert SECRET not in result.output and "hunter2" not in result.output
    event(f"exit {result.exit_code}")
    return result


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/secret.yaml (outside), root/proj/ (the spec's tree) with a FIFO, a folder and a
    symlink loop beside the specs the examples write."""
    root = tmp_path_factory.mktemp("tree")
    (root / "secret.yaml").write_text(f"{SECRET}: 1\nblocks: {{x: {{body: [relu]}}}}\n")
    proj = root / "proj"
    (proj / "sub").mkdir(parents=True)
    os.mkfifo(proj / "fifo.yaml")
    (proj / "folder.yaml").mkdir()
    os.symlink("loop.yaml", proj / "loop.yaml")
    os.symlink(str(root / "secret.yaml"), proj / "link-out.yaml")
    return proj


# --- include trees ------------------------------------------------------------------------

FILES = ["a.yaml", "b.yaml", "sub/c.yaml"]
TARGETS = FILES + [
    "../secret.yaml",
    "sub/../a.yaml",
    "/dev/zero",
    "/dev/null",
    "/etc/passwd",
    "fifo.yaml",
    "folder.yaml",
    "loop.yaml",
    "link-out.yaml",
    "missing.yaml",
    "main.yaml",
    "",
    "a.yaml\x00",
]
BLOCKS = ["x", "y", "z"]
layer = st.one_of(
    st.sampled_from(["relu", "bn", "x", "y", "z", "gap"]),
    st.sampled_from([{"conv": {"out": 4, "k": 3, "p": 1}}, {"x": {"repeat": 3}}, {"y": {"if": False}}]),
)
included = st.fixed_dictionaries(
    {},
    optional={
        "blocks": st.dictionaries(
            st.sampled_from(BLOCKS), st.fixed_dictionaries({"body": st.lists(layer, max_size=3)}), max_size=3
        ),
        "include": st.one_of(st.sampled_from(TARGETS), st.lists(st.sampled_from(TARGETS), max_size=3)),
        "layers": st.lists(layer, max_size=2),
        "description": st.text(max_size=10),
    },
)


@FUZZ
@given(files=st.lists(included, min_size=3, max_size=3), main=included)
def test_include_trees(tree, files, main):
    """Includes that cycle, repeat, leave the tree or name devices: a result or exit 2."""
    import yaml

    for name, doc in zip(FILES, files):
        (tree / name).write_text(yaml.safe_dump(doc))
    main = {"input": [3, 8, 8], "layers": main.get("layers") or ["x"], **main}
    (tree / "main.yaml").write_text(yaml.safe_dump(main))
    invoke(["params", "main.yaml", "--format", "json"], tree)


# --- anchors, aliases, merge keys ---------------------------------------------------------


@st.composite
def anchored(draw):
    """A YAML text whose nodes are anchored (&n0, &n1, ...) and reused by aliases and merge
    keys (``<<: *n``, ``<<: [*n, *m]``), each node built from those before it."""
    nodes = []
    for i in range(draw(st.integers(1, 7))):
        refs = [f"*n{j}" for j in range(i)]
        kind = draw(st.sampled_from(["list", "map", "scalar"]))
        if kind == "scalar":
            body = draw(st.sampled_from(["relu", "3", "x", "{conv: {out: 2, k: 1}}", "[relu, bn]"]))
        elif kind == "list":
            items = draw(st.lists(st.sampled_from(refs + ["relu", "bn", "x"]), max_size=4))
            body = "[" + ", ".join(items) + "]"
        else:
            pairs = draw(
                st.lists(
                    st.tuples(st.sampled_from(["body", "out", "k", "repeat", "relu", "x"]),
                              st.sampled_from(refs + ["1", "relu", "[relu]"])),
                    max_size=3,
                )
            )
            merges = draw(st.lists(st.sampled_from(refs), max_size=2)) if refs else []
            items = [f"{k}: {v}" for k, v in pairs]
            if merges:
                items.append("<<: " + (merges[0] if len(merges) == 1 else "[" + ", ".join(merges) + "]"))
            body = "{" + ", ".join(items) + "}"
        nodes.append(f"&n{i} {body}")
    last = len(nodes) - 1
    if draw(st.booleans()):  # each node a block's body: the spec can be valid
        pool = "\n".join(f"  p{i}: {{body: [{node}]}}" for i, node in enumerate(nodes))
        return f"input: [3, 8, 8]\nblocks:\n{pool}\nlayers: [p{last}, {{p{last}: {{repeat: 2}}}}]\n"
    pool = "\n".join(f"  - {node}" for node in nodes)  # a pool of anchors, used from elsewhere
    use = draw(st.sampled_from([f"layers: [*n{last}]", f"blocks: {{x: {{body: *n{last}}}}}\nlayers: [x]"]))
    return f"input: [3, 8, 8]\nnominal:\n{pool}\n{use}\n"


@FUZZ
@given(text=anchored())
def test_anchors_aliases_and_merge_keys(tree, text):
    (tree / "anchors.yaml").write_text(text)
    invoke(["params", "anchors.yaml", "--format", "json"], tree)


# --- special files in every role ----------------------------------------------------------

SPECIALS = ["/dev/zero", "/dev/null", "fifo.yaml", "folder.yaml", "loop.yaml", "missing.yaml", "/dev/full"]
BUDGET = '[[budget]]\nmodel = "{model}"\nmax_params = "1M"\n'


@FUZZ
@given(
    role=st.sampled_from(["spec", "budget", "model", "baseline", "device"]),
    special=st.sampled_from(SPECIALS),
)
def test_special_files_in_every_role(tree, role, special):
    """A device, FIFO, folder, symlink loop or missing file wherever a file is read: exit 2."""
    (tree / "lenet.yaml").write_text("input: [1, 8, 8]\nlayers: [conv: {out: 2, k: 3}]\n")
    if role == "spec":
        args = ["params", special]
    elif role == "budget":
        args = ["check", special]
    elif role == "model":
        (tree / "budget.toml").write_text(BUDGET.format(model=special))
        args = ["check", "budget.toml"]
    elif role == "baseline":
        (tree / "budget.toml").write_text(BUDGET.format(model="lenet.yaml"))
        args = ["check", "budget.toml", "--baseline", special]
    else:
        args = ["flops", "lenet.yaml", "--device", special]
    result = invoke(args, tree, codes=(2,))
    assert result.stderr.count("\n") <= 3


# --- baselines ----------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**400),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
metric_values = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0, max_value=1e12),
    st.lists(st.integers(min_value=0, max_value=500), max_size=3),
    json_values,
)
entry = st.one_of(
    st.dictionaries(
        st.sampled_from(["params", "macs", "weight_bytes", "peak_activation_bytes", "receptive_field", "x"]),
        metric_values,
        max_size=5,
    ),
    json_values,
)
baseline_doc = st.one_of(
    st.fixed_dictionaries(
        {
            "cnnstat_baseline": st.sampled_from([1, 1, 2, "1", None]),
            "models": st.one_of(
                st.dictionaries(st.sampled_from(["lenet.yaml", "other", ""]), entry, max_size=2), json_values
            ),
        }
    ),
    json_values,
)


@FUZZ
@given(doc=baseline_doc, growth=st.sampled_from(["0", "5", "1e9"]))
def test_generated_baselines(tree, doc, growth):
    (tree / "lenet.yaml").write_text("input: [1, 8, 8]\nlayers: [conv: {out: 2, k: 3}]\n")
    (tree / "budget.toml").write_text(BUDGET.format(model="lenet.yaml"))
    (tree / "base.json").write_text(json.dumps(doc))
    for fmt in ("json", "table", "github"):
        result = invoke(
            ["check", "budget.toml", "--baseline", "base.json", "--max-growth", growth, "--format", fmt],
            tree,
            codes=(0, 1, 2),
        )
        if fmt == "json" and result.exit_code != 2:
            json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


# --- device files -------------------------------------------------------------------------

device_values = st.one_of(
    st.sampled_from(["25.6 GB/s", "4T", "1 TB/s", "0", "-1T", "nan", "inf", "1e400", "x", "", "3 MiB/s"]),
    st.integers(min_value=-(10**20), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
device_table = st.dictionaries(
    st.sampled_from(["bandwidth", "ops_per_second", "macs_per_second", "description", "kind", "tops"]),
    st.one_of(
        device_values,
        st.dictionaries(st.sampled_from(["fp32", "fp16", "int8", "int4", "fp64"]), device_values, max_size=3),
    ),
    max_size=4,
)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 2**63 else f'"{value}"'
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # a TOML basic string is a JSON string


@FUZZ
@given(table=device_table, dtype=st.sampled_from(["fp32", "fp16", "int8"]))
def test_generated_device_files(tree, table, dtype):
    (tree / "lenet.yaml").write_text("input: [1, 8, 8]\nlayers: [conv: {out: 2, k: 3}]\n")
    body = "[devices.fuzz]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())
    (tree / "cnnstat.toml").write_text(body)
    try:
        for fmt in ("json", "table"):
            args = ["flops", "lenet.yaml", "--device", "fuzz", "--dtype", dtype, "--format", fmt]
            result = invoke(args, tree)
            if fmt == "json" and result.exit_code == 0:
                json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    finally:
        (tree / "cnnstat.toml").unlink()


# --- output paths -------------------------------------------------------------------------

OUTPUTS = [
    "out.json",
    "sub/out.json",
    "nowhere/out.json",
    "folder.yaml",
    "fifo.yaml",
    "loop.yaml",
    "/dev/full",
    "/dev/null",
    "",
    ".",
    "sub/",
    "x" * 300,
    "line\nbreak.json",
    "link-out.yaml",
]


@FUZZ
@given(target=st.sampled_from(OUTPUTS))
def test_snapshot_output_paths(tree, target):
    """Wherever -o points, snapshot writes a whole baseline there or refuses (exit 2)."""
    (tree / "lenet.yaml").write_text("input: [1, 8, 8]\nlayers: [conv: {out: 2, k: 3}]\n")
    (tree / "budget.toml").write_text(BUDGET.format(model="lenet.yaml"))
    before = (tree.parent / "secret.yaml").read_text()
    result = invoke(["snapshot", "budget.toml", "-o", target], tree)
    if result.exit_code == 0 and target not in ("/dev/null",):
        written = os.path.realpath(tree / target)
        doc = json.loads(open(written, encoding="utf-8").read())
        assert doc["cnnstat_baseline"] == 1 and "lenet.yaml" in json.dumps(doc)
        if written == os.path.realpath(tree.parent / "secret.yaml"):  # a symlink is followed
            (tree.parent / "secret.yaml").write_text(before)


# --- the numbers tables print -------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.fractions(max_denominator=10**6),
    st.sampled_from([999.995, 999_999.999, 999_995_000, 1023.999 * 1024, 10**18 - 1, 2**1024, 0.0, -0.0]),
)


def _value(text: str, suffixes: dict) -> float | None:
    """The number a formatted figure stands for, e.g. '1.89M' -> 1.89e6 (None for nan)."""
    text = text.strip()
    if text in ("nan",):
        return None
    for suffix, factor in sorted(suffixes.items(), key=lambda kv: -len(kv[0])):
        if suffix and text.endswith(suffix):
            return float(text[: -len(suffix)].strip()) * factor
    return float(text.rstrip("B").strip())


SI = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
BYTES = {"kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15, "B": 1}
BINARY = {"KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40, "PiB": 2.0**50, "B": 1}


@FUZZ
@given(n=numbers)
def test_formatted_numbers_stand_for_their_value(n):
    """si and human_bytes print any number - past float's range, NaN, infinities - and what
    they print stands for the number: within half a unit of the last digit shown."""
    for text, suffixes, step in (
        (si(n), SI, 0.005),
        (human_bytes(n), BYTES, 0.005),
        (human_bytes(n, binary=True), BINARY, 0.005),
    ):
        assert text and text.isprintable() and len(text) < 20, text
        value = _value(text, suffixes)
        if isinstance(n, float) and math.isnan(n):
            assert value is None
            continue
        if isinstance(n, float) and math.isinf(n):
            assert value == n
            continue
        exact = Fraction(n)
        if "e" in text:  # scientific: three significant digits
            mantissa, exponent = text.split()[0].split("e")
            assert abs(Fraction(mantissa) * Fraction(10) ** int(exponent) - exact) <= abs(exact) / 100
            continue
        unit = max((f for s, f in suffixes.items() if text.endswith(s)), default=1)
        tolerance = Fraction(unit) * Fraction(step) if unit > 1 else Fraction(1)  # bytes: whole
        assert abs(Fraction(value) - exact) <= tolerance + abs(exact) * Fraction(1, 10**12), (n, text)
        if unit > 1:  # never '1000.00K' where '1.00M' is meant
            assert abs(float(text.split()[0].rstrip(string.ascii_letters))) < (1024 if unit != 1 else 1000)


@FUZZ
@given(values=st.lists(numbers, min_size=1, max_size=4), fmt=st.sampled_from(["table", "markdown", "csv"]))
def test_tables_render_extreme_numbers(values, fmt):
    """A table of extreme figures renders in every format, one row per value."""
    table = Table(
        "extremes",
        [
            Column("name", "name", numeric=False, wrap=True),
            Column("count", "count", si),
            Column("bytes", "bytes", human_bytes),
        ],
    )
    for i, v in enumerate(values):
        table.rows.append({"name": f"layer{i}", "count": v, "bytes": v})
    out = io.StringIO()
    render(table, fmt, out)
    text = out.getvalue()
    for i in range(len(values)):
        assert f"layer{i}" in text
