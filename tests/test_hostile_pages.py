"""The hostile corpus of the page commands (issue 12 applied to ``cnnstat explain`` and
``cnnstat report`` / ``check --report``): huge networks end in seconds with a page of bounded
size that says what it left out; hostile names cannot break the Markdown or HTML they land in;
output paths that cannot be written are one message and exit 2, a file is whole or absent;
models that fail leave no file.

Every run is the real CLI in a subprocess under an address-space limit (``RLIMIT_AS``), timed,
as tests/test_hostile_output.py runs it. The million-layer figures are benchmarks (docs/explain.md
and docs/report.md, "At scale"), not tests.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

SMALL = 300 << 20  # address space of a run on a small model
LARGE = 800 << 20  # of a run on 100,000 layers (the analysis is about 50 MB of it)
N = 100_000
RELU = "input: [16, 64, 64]\nlayers:\n  - relu: {{repeat: {n}}}\n"
CHAIN = """input: [16, 64, 64]
blocks:
  unit: {{body: [conv: {{out: 16, k: 3, p: 1}}, bn, relu]}}
layers:
  - unit: {{repeat: {n}}}
"""


def run(args, memory=SMALL, seconds=15.0, cwd=None):
    """``python -m cnnstat ARGS`` under ``memory`` bytes of address space: (exit code, stdout,
    stderr); it must end within ``seconds`` (generous: the test machine is shared) and never
    with a traceback."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    environ = {k: v for k, v in os.environ.items() if not k.startswith("CNNSTAT_")}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cnnstat", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit if memory else None,
        env=environ,
        cwd=cwd,
    )
    took = time.perf_counter() - start
    assert took < seconds, (args[:3], took)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-2000:]
    return proc.returncode, proc.stdout, proc.stderr


def one_error(err: str, expect: str = "") -> None:
    """One located message, short."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], err[:2000]
    assert expect in lines[0], (expect, lines[0])
    assert len(lines[0]) < 600, len(lines[0])


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Spec files of 100,000 layers: ``relu`` repeated, and conv/bn/relu blocks repeated."""
    folder = tmp_path_factory.mktemp("big")
    (folder / "relu100k.yaml").write_text(RELU.format(n=N))
    (folder / "chain100k.yaml").write_text(CHAIN.format(n=N // 3))
    return folder


# --- scale ---------------------------------------------------------------------------------------


def sections(markdown: str) -> list:
    return [line[3:] for line in markdown.splitlines() if line.startswith("## ")]


def test_sheet_of_100k_layers_is_abridged(big):
    """The first 200 sections and the last 50, the gap said with the commands that show it,
    the totals of the sections shown reconciled and the whole network's beside them; seconds,
    not minutes (it took 40 s and 600 MB, and 254 MB of output, before)."""
    code, out, err = run(["explain", big / "relu100k.yaml"], LARGE)
    assert code == 0 and err == ""
    heads = sections(out)
    assert heads[:2] == ["relu1 (relu)", "relu2 (relu)"] and heads[199] == "relu200 (relu)"
    assert heads[200] == "... 99,750 more layers"
    assert heads[201] == "relu99951 (relu)" and heads[-2] == "relu100000 (relu)" and heads[-1] == "Totals"
    assert len(heads) == 200 + 1 + 50 + 1
    assert "Layers 201 to 99,950 of 100,000 are not derived here" in out
    hint = f"`cnnstat explain {big / 'relu100k.yaml'} LAYER` derives any one of them, `--all` every one;"
    assert hint in out
    # activations by hand: 16x64x64 elements a layer; 250 shown, 100,000 in all
    assert f"| sum of the 250 sections | 0 | 0 | 0 | 0 B | 0 | {250 * 16 * 64 * 64:,} |" in out
    assert f"| {N * 16 * 64 * 64:,} | 26.21 GB |" in out  # 4 bytes each: 26,214,400,000 B
    assert "The sums of the 250 sections and cnnstat's figures for the same layers are equal" in out
    assert len(out) < 200_000


def test_sheet_json_and_o_of_100k_layers(big, tmp_path):
    """--format json -o: strict JSON (no NaN/Infinity), the sections shown and what is not,
    totals agreeing; the conv chain's weights by hand (16·16·3·3 per conv, 33,333 convs)."""
    target = tmp_path / "chain.json"
    code, out, err = run(["explain", big / "chain100k.yaml", "--format", "json", "-o", target], LARGE, 25)
    assert code == 0 and out == "" and err == f"wrote {target}\n"

    def refuse(constant):
        raise AssertionError(f"{constant} in JSON")

    doc = json.loads(target.read_text(encoding="utf-8"), parse_constant=refuse)
    assert len(doc["layers"]) == 250
    assert doc["not_shown"] == {
        "layers": 99_999 - 250,
        "first": 201,
        "last": 99_999 - 50,
        "of": 99_999,
        "how": f"cnnstat explain {big / 'chain100k.yaml'} --all --format json; "
        f"cnnstat explain {big / 'chain100k.yaml'} LAYER",
    }
    t = doc["totals"]
    assert t["agree"] is True and t["layers"] == 250
    conv, bn = 16 * 16 * 3 * 3, 16  # a unit's weights: the 3x3 conv's, the batch norm's scale
    assert t["network"]["weights"] == 33_333 * (conv + bn)
    # shown: layers 1-200 (units 1-66, unit67's conv and bn) and 99,950-99,999 (unit33317's bn
    # and relu, units 33,318-33,333): 67 + 16 convs, 67 + 17 batch norms
    assert t["sum"]["weights"] == t["analysis"]["weights"] == 83 * conv + 84 * bn
    assert [p.name for p in tmp_path.iterdir()] == ["chain.json"]


def test_one_layer_of_100k(big):
    code, out, err = run(["explain", big / "chain100k.yaml", "unit33333.conv1"], LARGE)
    assert code == 0 and out.startswith("chain100k: unit33333.conv1 (conv)\n")
    assert "weights = K·K·C_in·C_out = 3·3·16·16 = 2,304" in out
    # the receptive field of the 33,333rd 3x3 convolution: 1 + 2·33,333
    assert f"r' = r + (K - 1)·j = {2 * 33_332 + 1} + (3 - 1)·1 = {2 * 33_333 + 1:,}\n" in out


def test_unknown_layer_of_100k_is_answered_briefly(big):
    code, out, err = run(["explain", big / "relu100k.yaml", "relu_99999"], LARGE)
    assert code == 2
    one_error(err, "no layer 'relu_99999' in relu100k (did you mean 'relu99999' or")


def test_explain_all_streams_every_section(tmp_path):
    """--all: every section past 300 layers, the totals over all of them equal cnnstat's."""
    spec = tmp_path / "relu400.yaml"
    spec.write_text(RELU.format(n=400))
    code, out, err = run(["explain", spec, "--all"])
    assert code == 0 and len(sections(out)) == 401 and "more layers" not in out
    assert "The sums of the sections and cnnstat's totals are equal." in out
    code, out, err = run(["explain", spec, "--format", "text"])
    assert code == 0 and out.count("\nrelu") == 249  # 250 layers' texts, the first at the top
    assert "... 150 more layers (201 to 350 of 400) not shown:" in out


def test_explain_all_keeps_memory_flat(tmp_path):
    """--all writes each section as it is made: 5,000 layers' sheet (3.4 MB of Markdown) in the
    address space of a small model's run (20,000 layers: 36 MB of memory, as abridged)."""
    spec = tmp_path / "chain.yaml"
    spec.write_text(CHAIN.format(n=5_000 // 3))
    code, out, err = run(["explain", spec, "--all", "-o", tmp_path / "all.md"], SMALL, 120)
    assert code == 0
    text = (tmp_path / "all.md").read_text(encoding="utf-8")
    assert len(sections(text)) == 4_998 + 1 and "more layers" not in text
    assert "The sums of the sections and cnnstat's totals are equal." in text


def test_variants_that_expand_are_not_built_whole(tmp_path):
    """Forty variants of a spec file each a million layers: explain compares a model with its
    spec's other models, but builds each only as far as the model's own layers."""
    variants = "".join(f"  v{i}: {{params: {{n: 1000000}}}}\n" for i in range(40))
    spec = tmp_path / "variants.yaml"
    spec.write_text(
        f"name: base\ninput: [3, 16, 16]\nparams: {{n: 2}}\nvariants:\n{variants}"
        "layers:\n  - relu: {repeat: $n}\n"
    )
    code, out, err = run(["explain", spec], SMALL, 10)
    assert code == 0 and sections(out) == ["relu1 (relu)", "relu2 (relu)", "Totals"]


def test_report_of_100k_layers(big, tmp_path):
    """The layer table abridged (200 + a row saying what is left out + 50), no plots (said on
    the page), the totals whole; seconds and a page of kilobytes (22 s and 211 MB before;
    10,000 layers with plots took 150 s and 22 MB)."""
    target = tmp_path / "r.html"
    code, out, err = run(["report", big / "relu100k.yaml", "-o", target], LARGE, 25)
    assert code == 0 and "100000 layers, no plots (more than 2,000 layers)" in err
    page = target.read_text(encoding="utf-8")
    assert page.count('<tr class="layer">') == 250
    assert '<tr class="more" data-hidden="99750">' in page
    assert "... 99,750 more layers (rows 201 to 99,950) not shown" in page
    assert "No plots: 100,000 layers, more than the 2,000 a page draws" in page
    assert "<svg" not in page and len(page) < 400_000
    assert f'data-v="{N * 16 * 64 * 64}" data-k="activations"' in page


def test_check_report_of_100k_layers(big, tmp_path):
    (tmp_path / "cnnstat.toml").write_text('[[budget]]\nmodel = "relu100k.yaml"\nmax_params = "1M"\n')
    (tmp_path / "relu100k.yaml").write_text(RELU.format(n=N))
    code, out, err = run(["check", "--report", "b.html"], LARGE, 30, cwd=tmp_path)
    assert code == 0, err
    page = (tmp_path / "b.html").read_text(encoding="utf-8")
    assert page.count('<tr class="layer">') == 250 and "No plots" in page and len(page) < 400_000


# --- hostile names ---------------------------------------------------------------------------------

NASTY = "a|b\\nc <script>x</script> \\u202eevil \\e[31mred"


def nasty_spec(folder: Path, long: int = 0) -> Path:
    """A model and layers named with a pipe, a newline, HTML, a bidi override, an escape code,
    and (``long``) a name of that many characters."""
    spec = folder / "nasty.yaml"
    spec.write_text(
        'name: "m|x\\n# head <b>"\ndescription: "d | e\\n## f"\ninput: [3, 16, 16]\nlayers:\n'
        f'  - conv: {{out: 4, k: 3, name: "{NASTY}"}}\n'
        '  - relu: {name: "r`1``|"}\n'
        "  - gap\n  - flatten\n"
        f'  - fc: {{out: 2, name: "{"x" * long or "fc"}"}}\n'
    )
    return spec


def test_markdown_tables_and_headings_hold(tmp_path):
    code, out, err = run(["explain", nasty_spec(tmp_path)])
    assert code == 0
    assert "\x1b" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert not [line for line in lines if "<script>" in re.sub(r"`[^`]*`", "", line)]  # HTML in code only
    assert lines[0] == "# m\\|x \\# head \\<b\\>: the arithmetic, layer by layer"
    assert "## a\\|b c \\<script\\>x\\</script\\> \\u202eevil \\x1b\\[31mred (conv)" in lines
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 3 + 2  # header, rule, 3 kinds, the sum and cnnstat's row
    for row in table:  # every row 9 cells: no unescaped | inside one
        assert len(re.split(r"(?<!\\)\|", row)) == 10, row
    assert "| `cnnstat summary m\\|x # head <b>` |" in out
    assert [line for line in lines if line.startswith("#") and not line.startswith("## ")] == [lines[0]]


def test_long_names_are_cut_everywhere_but_json(tmp_path):
    """A layer named with a megabyte: the sheet and the page cut it (200 characters; 60 in a
    plot's labels), quickly; the JSON, which is data, keeps it whole."""
    spec = nasty_spec(tmp_path, long=1_000_000)
    code, out, err = run(["explain", spec])
    assert code == 0 and len(out) < 50_000 and "x" * 199 + "\u2026" in out and "x" * 201 not in out
    code, out, err = run(["explain", spec, "--format", "json"])
    assert code == 0 and json.loads(out)["layers"][-1]["name"] == "x" * 1_000_000
    target = tmp_path / "n.html"
    code, out, err = run(["report", spec, "-o", target], memory=0, seconds=60)
    assert code == 0 and "4 plots" in err and "Warning" not in err  # no glyph warnings either
    page = target.read_text(encoding="utf-8")
    assert len(page) < 2_000_000, len(page)  # 168 MB and 460 s before: the plots drew it whole
    assert "x" * 201 not in page and "<script>" not in page and "\u202e" not in page


def test_unknown_layer_huge_or_escaped(tmp_path):
    spec = nasty_spec(tmp_path)
    code, out, err = run(["explain", spec, "conv" * 30_000])
    assert code == 2
    one_error(err, "no layer 'convconvconv")
    code, out, err = run(["explain", "lenet5", "conv\x1b[31m1\u202e"])
    assert code == 2
    one_error(err, "no layer 'conv\\x1b[31m1\\u202e' in lenet5")
    code, out, err = run(["explain", spec, "a|b\nc <script>x</script> \u202eevil \x1b[31mre"])
    one_error(err, "(did you mean 'a|b\\nc <script>x</script> \\u202eevil \\x1b[31mred'?)")


def test_numbers_past_float_range(tmp_path):
    code, out, err = run(["explain", "alexnet", "conv1", "--input", "3x2000000000x2000000000"])
    assert code == 2
    one_error(err, "is too large")
    huge = ["--input", "3x2000000000x2000000000"]
    code, out, err = run(["report", "alexnet", *huge, "-o", tmp_path / "r.html"])
    assert code == 2 and not (tmp_path / "r.html").exists()
    one_error(err, "is too large")
    code, out, err = run(["report", "alexnet", "--batch", str(2**31 + 1), "-o", tmp_path / "r.html"])
    assert code == 2 and "--batch" in err and not (tmp_path / "r.html").exists()
    code, out, err = run(["report", "alexnet", "--batch", str(2**31), "--no-plots", "-o", "-"])
    assert code == 0 and not re.search(r"\b(nan|inf|NaN|Infinity)\b", out)
    macs = 724_406_816 * 2**31  # alexnet's MACs (docs/report.md) for the batch
    assert f'data-v="{macs}" data-k="macs"' in out


# --- output paths ------------------------------------------------------------------------------------

BAD_TARGETS = {
    "missing": ("missing/x.out", "no such directory"),
    "directory": ("dir", "it is a directory"),
    "device": ("/dev/full", "it is a device"),
    "fifo": ("fifo", "it is a FIFO"),
}
COMMANDS = {
    "explain": ["explain", "lenet5", "-o"],
    "explain-json": ["explain", "lenet5", "--format", "json", "-o"],
    "report": ["report", "lenet5", "--no-plots", "-o"],
}


@pytest.mark.parametrize("target", list(BAD_TARGETS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_unwritable_targets(tmp_path, command, target):
    path, expect = BAD_TARGETS[target]
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    code, out, err = run([*COMMANDS[command], path], seconds=10, cwd=tmp_path)
    assert code == 2 and out == ""
    one_error(err, expect)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo"]


def test_check_report_unwritable(tmp_path):
    (tmp_path / "cnnstat.toml").write_text('[[budget]]\nmodel = "lenet5"\nmax_params = "1M"\n')
    os.mkfifo(tmp_path / "fifo")
    cases = (
        ("fifo", "it is a FIFO"),
        ("/dev/full", "it is a device"),
        ("no/b.html", "no such"),
        ("-", "needs a file"),
    )
    for path, expect in cases:
        code, out, err = run(["check", "--report", path], cwd=tmp_path)
        assert code == 2
        one_error(err, expect)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnnstat.toml", "fifo"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_symlink_and_stdout(tmp_path, command):
    """A symlink is written through (the link kept, its target replaced whole); '-' is stdout."""
    (tmp_path / "old.txt").write_text("old")
    (tmp_path / "link").symlink_to("old.txt")
    code, out, err = run([*COMMANDS[command], "link"], cwd=tmp_path)
    assert code == 0 and (tmp_path / "link").is_symlink()
    written = (tmp_path / "old.txt").read_text(encoding="utf-8")
    code, out, err = run([*COMMANDS[command], "-"], cwd=tmp_path)
    assert code == 0 and out == written and "-" not in os.listdir(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["link", "old.txt"]  # no temporary file left


@pytest.mark.parametrize("command", [["explain", "lenet5"], ["report", "lenet5", "--no-plots", "-o", "-"]])
def test_stdout_on_a_full_device(command):
    with open("/dev/full", "w") as full:
        argv = [sys.executable, "-m", "cnnstat", *command]
        proc = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE)
    assert proc.returncode == 2
    assert proc.stderr.decode() == "error: cannot write standard output: No space left on device\n"


# --- models that fail ---------------------------------------------------------------------------------


def failing_models(folder: Path) -> dict:
    (folder / "garbage.onnx").write_bytes(bytes(range(256)) * 20)
    (folder / "bad.yaml").write_text("input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, k: 30}\n")
    (folder / "boom.py").write_text(
        "import torch\nclass Fwd(torch.nn.Module):\n    def forward(self, x):\n"
        "        raise ValueError('boom in forward')\n"
    )
    return {
        "onnx": ("garbage.onnx", "not an ONNX model"),
        "spec": ("bad.yaml", "bad.yaml:3:5: error: conv: kernel 30"),
        "torch": ("boom.py:Fwd", "ValueError: boom in forward"),
    }


@pytest.mark.parametrize("model", ["onnx", "spec", "torch"])
def test_failing_models_leave_no_file(tmp_path, model):
    path, expect = failing_models(tmp_path)[model]
    memory = 0 if model == "torch" else SMALL  # torch maps gigabytes of address space at import
    for args in (["explain", path, "-o", "out.md"], ["report", path, "-o", "out.html"]):
        code, out, err = run(args, memory, 60, cwd=tmp_path)
        assert code == 2 and out == ""
        one_error(err, expect)
    assert not {"out.md", "out.html"} & set(os.listdir(tmp_path))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_check_report_of_a_failing_model(tmp_path):
    failing_models(tmp_path)
    (tmp_path / "cnnstat.toml").write_text('[[budget]]\nmodel = "bad.yaml"\nmax_params = "1M"\n')
    code, out, err = run(["check", "--report", "b.html"], cwd=tmp_path)
    assert code == 2 and "kernel 30" in err and not (tmp_path / "b.html").exists()


# --- in process: the pieces the page relies on ---------------------------------------------------


def test_plot_labels_cut_and_kept_apart():
    """The copy the plots draw: names escaped and cut to 60 characters, two names alike in their
    first 59 numbered apart, the inputs renamed with them; figures untouched."""
    from cnnstat.analysis import analyze
    from cnnstat.report import plot_safe
    from cnnstat.spec.model import parse_spec
    from cnnstat.spec.yamlload import load_yaml

    a_name, b_name = "a" * 100 + "1", "a" * 100 + "2"
    text = (
        f"name: m\ninput: [3, 8, 8]\nlayers:\n  - conv: {{out: 2, k: 3, name: {a_name}}}\n"
        f'  - relu: {{name: {b_name}}}\n  - relu: {{name: "x\\e[31m"}}\n'
    )
    a = analyze(parse_spec(load_yaml(text, "m.yaml"), "m.yaml"))
    safe = plot_safe(a)
    names = [la.name for la in safe.layers]
    assert names == ["a" * 59 + "\u2026", "a" * 59 + "\u2026~2", "x\\x1b[31m"]
    assert safe.layers[1].inputs == (names[0],) and safe.layers[2].inputs == (names[1],)
    assert [la.macs for la in safe.layers] == [la.macs for la in a.layers] == [6 * 6 * 2 * 3 * 3 * 3, 0, 0]
    assert plot_safe(analyze("lenet5")).layers[0].name == "c1"  # plain names: the analysis itself


def test_bounds_on_every_device_equal_bound_on_each():
    """The page's throughput table (hardware.bounds, one pass) gives flops --device's figures
    (the sum of the roofline's per-layer times), to the last bit."""
    from cnnstat.analysis import analyze
    from cnnstat.hardware import bounds, devices, roofline

    for model in ("resnet50", "mobilenet_v2", "lenet5"):
        a = analyze(model)
        rated = [d for d in devices().values() if "fp16" in d.macs]
        for dev, b in zip(rated, bounds(a.graph, rated, "fp16", 30, 3, 2)):
            rows = roofline(a.graph, dev, "fp16", 2)
            assert b["latency_s"] == float(sum(r["time_s"] for r in rows) * 3)
            assert b["compute_bound_layers"] == sum(r["bound"] == "compute" for r in rows)
            assert b["memory_bound_layers"] == sum(r["bound"] == "memory" for r in rows)
