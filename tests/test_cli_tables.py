"""Tables in a real terminal: every command at 60 to 200 columns, in a pseudo-terminal.

rich shrinks a table to the terminal's width; cnnstat's layout (cnnstat/render.py) must never
let it cut a cell: numbers keep their width, text wraps, optional columns give way (with a note
naming them) and, below that, the table turns vertical. Piped output (CliRunner, files) never
sees this, so these tests run ``python -m cnnstat`` with a pty as stdout and COLUMNS set.
"""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from cnnstat.render import Bound, Column, Table, layout

REPO = Path(__file__).resolve().parent.parent
WIDTHS = (60, 80, 100, 120, 200)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def in_terminal(args, columns: int, cwd=None, timeout: float = 120) -> tuple:
    """(output with ANSI codes removed, exit status) of ``cnnstat ARGS`` in a terminal
    ``columns`` wide (stdout and stderr both on the pty, as a user sees them)."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"}
    for key in ("NO_COLOR", "FORCE_COLOR"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnstat", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd or REPO,
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                pytest.fail(f"cnnstat {' '.join(args)} printed nothing for {timeout} s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait()
    text = b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    return ANSI.sub("", text), proc.returncode


BUDGET = """\
[[budget]]
model = "resnet50"
max_params = "30M"
max_macs = "4G"
max_peak_activation_bytes = "20 MB"
min_receptive_field = 200

[[budget]]
model = "mobilenet_v2"
name = "mobilenet_v2 at Full HD, tiled"
max_macs_per_second = "500G"
"""

# command, texts that must appear whole at every width (totals; numbers)
COMMANDS = [
    ("params vgg16", ["138.36M", "15.47G", "553.43 MB", "123.64M"]),
    ("summary alexnet", ["60.97M", "724.41M", "105.42M", "37.75M"]),
    ("summary resnet50", ["25.56M", "4.09G", "118.01M"]),
    ("rf vgg16", ["212x212", "32x32"]),
    ("memory resnet50", ["102.23 MB", "10.24 MB", "499.24 MB"]),
    ("flops alexnet-grouped vgg16", ["805.43G", "19.18T", "639.33G"]),
    ("flops mobilenet_v2 --device jetson-orin-nano --dtype fp16", ["372.90G", "52.55", "19.0"]),
    ("flops lenet5 --device cpu-8core-avx2 --per-layer", ["117.60K", "240.00K"]),
    (
        "compare resnet50 vgg16 mobilenet_v2 --device jetson-orin-nano",
        ["25.56M", "138.36M", "3.50M", "15.47G", "300.77M", "553.43 MB", "19.18T", "372.90G"],
    ),
    ("devices", ["989.45T", "3.35TB/s", "102.00GB/s"]),
    ("list", ["138.36M", "15.47G", "60.97M"]),
    ("check", ["25.56M", "4.09G", "4.00G", "372.90G"]),
]


@pytest.fixture(scope="module")
def budget_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("budget")
    (path / "cnnstat.toml").write_text(BUDGET, encoding="utf-8")
    return path


def cells(text: str) -> list:
    """The cells of the tables in ``text`` (rows of box-drawing characters)."""
    out = []
    for line in text.splitlines():
        if line.startswith(("│", "┃")):
            out += [c.strip() for c in re.split("[│┃]", line)[1:-1]]
    return out


@pytest.mark.parametrize("command,numbers", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_no_cell_is_cut(command, numbers, budget_dir):
    for columns in WIDTHS:
        out, status = in_terminal(command.split(), columns, cwd=budget_dir)
        where = f"`cnnstat {command}` at {columns} columns:\n{out}"
        assert status in (0, 1), where  # check: 1 when a limit is exceeded
        assert "…" not in out, where
        assert "┏" in out, where  # a table was drawn
        assert max(len(line) for line in out.splitlines()) <= columns, where
        table_cells = cells(out)
        for number in numbers:
            assert any(re.search(rf"(^|[ ,]){re.escape(number)}([ ,]|$)", c) for c in table_cells), (
                f"{number} not whole in {where}"
            )


def test_hidden_columns_are_named_and_wide_shows_them():
    out, _ = in_terminal(["summary", "resnet50"], 80)
    assert "Not shown at 80 columns: kind, activations" in re.sub(r"\s+", " ", out)
    assert "--wide shows every column" in re.sub(r"\s+", " ", out)
    assert "act. fp32" not in cells(out)
    wide, _ = in_terminal(["summary", "resnet50", "--wide"], 80)
    assert {"kind", "activations", "act. fp32", "RF size /jump"} <= set(cells(wide))
    assert "Not shown" not in wide and "…" not in wide


def test_narrow_terminal_turns_the_table_vertical():
    out, _ = in_terminal(["compare", "resnet50", "vgg16", "mobilenet_v2"], 60)
    rows = cells(out)
    # one column per model, one row per figure
    assert rows[:4] == ["model", "resnet50", "vgg16", "mobilenet_v2"]
    assert ["params", "25.56M", "138.36M", "3.50M"] == rows[rows.index("params") :][:4]


# --- the layout itself, without a terminal ----------------------------------------------------


def wide_numbers_table(n_rows=3) -> Table:
    columns = [Column("name", "name", numeric=False, wrap=True)] + [
        Column(f"figure number {i}", f"v{i}", lambda v: f"{v:,}") for i in range(8)
    ]
    rows = [
        {"name": f"layer{r}.block.conv", **{f"v{i}": 10**12 + i for i in range(8)}} for r in range(n_rows)
    ]
    table = Table("t", columns, rows)
    table.total = {"name": "total", **{f"v{i}": Bound(3 * 10**12) for i in range(8)}}
    return table


def drawn(plan) -> str:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=plan.width, highlight=False, markup=False)
    for t in plan.tables:
        console.print(t)
    return out.getvalue()


@pytest.mark.parametrize("width", [30, 40, 60, 80, 120, 200])
def test_layout_never_cuts_a_number(width):
    table = wide_numbers_table()
    text = drawn(layout(table, width))
    assert "…" not in text
    assert text.count("1,000,000,000,007") == 3 and text.count("≥ 3,000,000,000,000") == 8
    assert max(len(line) for line in text.splitlines()) <= max(width, 30)


def test_piped_output_keeps_every_column():
    table = wide_numbers_table()
    plan = layout(table, 80, piped=True)
    assert len(plan.tables) == 1 and not plan.notes
    assert "figure number 7" in re.sub(r"\s+", " ", drawn(plan).replace("┃", " "))


@pytest.mark.parametrize("columns", [60, 120])
def test_verify_table_is_not_cut(columns):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    out, status = in_terminal(["verify", "lenet5"], columns)
    assert status == 0, out
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= columns, out
    assert "61,706" in cells(out) and "416,520" in cells(out), out


# --- what users of torchinfo, ptflops and fvcore look for ---------------------------------------


def test_exact_totals_under_the_table(run):
    for command in ("params", "summary"):
        out = run(command, "vgg16").stdout
        assert "Total params: 138,357,544\nTotal MACs: 15,470,264,320\n" in out
    out = run("params", "vgg16", "--batch", "4").stdout
    assert f"Total MACs: {4 * 15_470_264_320:,} (batch 4)" in out
    md = run("params", "vgg16", "--format", "markdown").stdout
    assert "Total params: 138,357,544" in md


ROLLNET = """\
import torch
from torch import nn


class RollNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.roll(self.conv(x), 1, dims=2)
        return self.head(x.mean((2, 3)))
"""


def test_an_incomplete_import_prints_a_lower_bound(run, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "rollnet.py").write_text(ROLLNET, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = run("summary", "rollnet.py:RollNet", "--input", "3x32x32").stdout
    assert "Total params: 618\nTotal MACs: ≥ 442,528\n" in out
    rows = {r[0]: r for r in (cells(line) for line in out.splitlines() if line.startswith("│"))}
    assert rows["roll"][-1] == "?" and rows["conv"][-1] == "≤ 100.0%"  # % MACs


def csv_rows(run, *args) -> list:
    import csv

    res = run(*args, "--format", "csv")
    assert res.exit_code == 0, res.output
    return list(csv.DictReader(io.StringIO(res.stdout)))


def test_summary_depth_folds_by_dotted_name(run):
    rows = csv_rows(run, "summary", "resnet50", "--depth", "3")
    names = [r["name"] for r in rows]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert "layer1.block.0" in names and "layer4.block.2" in names
    assert not any(n.count(".") > 2 for n in names)
    body, total = rows[:-1], rows[-1]
    assert sum(int(r["params"]) for r in body) == int(total["params"]) == 25_557_032
    assert sum(int(r["macs"]) for r in body) == int(total["macs"]) == 4_089_184_256
    block = next(r for r in rows if r["name"] == "layer2.block.0")
    assert block["output"] == "512x28x28" and block["op"].endswith(" layers")
    folded = csv_rows(run, "summary", "resnet50", "--depth", "1")
    assert [r["name"] for r in folded[4:8]] == ["layer1", "layer2", "layer3", "layer4"]


def test_summary_depth_on_a_torchvision_import(run):
    pytest.importorskip("torchvision")
    rows = csv_rows(run, "summary", "torchvision:resnet18", "--depth", "2")
    names = [r["name"] for r in rows]
    assert ["layer2.0", "layer2.1"] == [n for n in names if n.startswith("layer2")]
    assert int(rows[-1]["params"]) == 11_689_512


def test_summary_shares_sort_and_top(run):
    out = run("summary", "lenet5").stdout
    c3 = next(line for line in out.splitlines() if line.startswith("│ c3 "))
    assert cells(c3)[-2:] == ["3.9%", "57.6%"]  # 2,416 of 61,706 params; 240,000 of 416,520 MACs
    rows = csv_rows(run, "summary", "densenet201", "--sort", "macs", "--top", "10")
    assert len(rows) == 11 and rows[-1]["name"] == "total"
    macs = [int(r["macs"]) for r in rows[:-1]]
    assert macs == sorted(macs, reverse=True) and macs[0] == 314_703_872
    assert int(rows[-1]["macs"]) == 4_291_365_888  # the total stays the network's
    assert "params_pct" not in rows[0]  # shares: tables only
    out = run("summary", "densenet201", "--sort", "macs", "--top", "10").stdout
    assert "The first 10 of 707 layers by macs (--top): 10.0% of the params, 31.0% of the MACs." in out
    rows = csv_rows(run, "summary", "vgg16", "--sort", "params", "--top", "1")
    assert rows[0]["name"] == "fc1" and int(rows[0]["params"]) == 102_764_544


def test_names_are_case_insensitive(run):
    res = run("params", "VGG16", "--format", "json")
    assert res.exit_code == 0 and '"model": "vgg16"' in res.stdout
    assert run("summary", "ResNet50", "--format", "csv").exit_code == 0
    res = run("params", "VGG61")
    assert res.exit_code == 2
    assert "unknown model 'VGG61' (did you mean 'vgg19', 'vgg16', 'vgg13'?)" in res.stderr


def test_list_in_natural_order(run):
    import json

    names = [r["name"] for r in json.loads(run("list", "resnet*", "--format", "json").stdout)]
    assert names == [
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet50-v1",
        "resnet101",
        "resnet101-v1",
        "resnet152",
        "resnet152-v1",
    ]


def test_a_batch_in_input_points_to_batch(run):
    res = run("params", "vgg16", "--input", "1x3x224x224")
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        "error: --input 1x3x224x224 has 4 dimensions; vgg16 takes 3 (3x224x224). "
        "--input is one sample; the batch is --batch: --input 3x224x224 --batch 1"
    )
    res = run("summary", "r3d_18", "--input", "2x3x16x112x112")
    assert res.exit_code == 2 and "the batch is --batch: --input 3x16x112x112 --batch 2" in res.stderr
    res = run("flops", "vgg16", "--input", "1x3x224x224")  # flops has no --batch
    assert res.exit_code == 2 and res.stderr.strip().endswith("without the batch: --input 3x224x224")
    res = run("params", "vgg16", "--input", "3x224")  # one too few: no hint
    assert res.exit_code == 2 and "--batch" not in res.stderr


TCN = (
    "name: tcn\ninput: [8, 256]\nlayers:\n  - conv: {out: 16, k: 3}\n  - gap\n  - flatten\n  - fc: {out: 4}\n"
)
MLP = "name: mlp\ninput: [784]\nlayers:\n  - fc: {out: 128}\n  - relu\n  - fc: {out: 10}\n"


def test_compare_keeps_a_model_that_cannot_tile(run, tmp_path, monkeypatch):
    import json

    (tmp_path / "tcn.yaml").write_text(TCN, encoding="utf-8")
    (tmp_path / "mlp.yaml").write_text(MLP, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    res = run("compare", "tcn.yaml", "mlp.yaml", "lenet5", "--device", "jetson-orin-nano")
    assert res.exit_code == 0, res.output
    lines = {
        line.split("│")[1].strip(): line.split("│")[1:-1] for line in res.stdout.splitlines() if "│" in line
    }
    assert lines["mlp"][2].strip() == "101.77K" and lines["mlp"][-2:] == [" " * 8, " " * 9]
    assert lines["lenet5"][-2].strip() == "25.30G"
    assert (
        "mlp: no MAC/s or max fps: tile mode needs a [C, H, W] or [C, D, H, W] input, got [784]."
        in res.stdout
    )
    rows = json.loads(run("compare", "tcn.yaml", "lenet5", "--format", "json").stdout)
    assert rows[0]["macs_per_second"] is None and "tile mode needs" in rows[0]["no_throughput"]
    assert rows[0]["macs"] == 8 * 16 * 3 * 254 + 16 * 4 and "no_throughput" not in rows[1]


# --- the CLI speaks to any user --------------------------------------------------------------------


def every_command():
    import click

    from cnnstat.cli import COMMANDS, cli

    ctx = click.Context(cli)
    return [(name, cli.get_command(ctx, name)) for name in COMMANDS]


def test_every_option_has_help():
    import click

    missing = [
        f"{name} {p.opts[0]}"
        for name, command in every_command()
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and not p.help
    ]
    assert not missing


def test_command_summaries_are_whole(run):
    out = run("--help").stdout
    listed = out.split("Commands:\n", 1)[1]
    assert "..." not in listed
    for name, command in every_command():
        assert command.short_help and len(command.short_help) <= 66, name  # one line at 80 columns
        assert f"  {name} " in listed and command.short_help.split()[0] in listed


def test_no_lecture_in_output_or_help(run):
    for path in [*(REPO / "cnnstat" / "cli").glob("*.py"), REPO / "cnnstat" / "render.py"]:
        assert "lecture" not in path.read_text(encoding="utf-8").lower(), path
    texts = [run("--help").stdout] + [run(name, "--help").stdout for name, _ in every_command()]
    texts += [run("flops", "vgg16").stdout, run("flops", "vgg16", "--tiles", "whole").stdout]
    assert not [t for t in texts if "lecture" in t.lower()]


def test_verify_takes_a_torch_device(run):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    import json

    res = run("verify", "lenet5", "--torch-device", "cpu", "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["equal"] is True
    assert not res.stderr
    res = run("verify", "lenet5", "--device", "cpu", "--format", "json")  # the old name, deprecated
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["equal"] is True
    assert res.stderr.startswith("warning: verify --device is now --torch-device")
    assert "--device" not in run("verify", "--help").stdout.replace("--torch-device", "")


# --- budget output that agrees with itself -----------------------------------------------------


def in_dir(run, tmp_path, monkeypatch, files: dict, *args):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return run("check", *args)


PASSING = '[[budget]]\nmodel = "resnet50"\nmax_params = "30M"\n'


def test_only_the_baseline_grew(run, tmp_path, monkeypatch):
    import json
    import xml.etree.ElementTree as ET

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnnstat.toml").write_text(PASSING, encoding="utf-8")
    assert run("snapshot", "-o", "base.json").exit_code == 0
    doc = json.loads((tmp_path / "base.json").read_text())
    doc["models"]["resnet50"]["macs"] -= 1_000_000  # the model grew since the snapshot
    (tmp_path / "base.json").write_text(json.dumps(doc))
    verdict = "cnnstat check: 10 passed, 1 failed (1 grew over the baseline)"
    res = run("check", "--baseline", "base.json")
    assert res.exit_code == 1 and res.stdout.rstrip().splitlines()[-1] == verdict
    assert "4,088,184,256" in res.stdout and "4,089,184,256" in res.stdout  # 4.09G both, rounded
    res = run("check", "--baseline", "base.json", "--format", "github")
    assert res.exit_code == 1 and res.stdout.rstrip().splitlines()[-1] == verdict
    res = run("check", "--baseline", "base.json", "--format", "junit")
    suite = ET.fromstring(res.stdout)
    assert res.exit_code == 1 and (suite.get("tests"), suite.get("failures")) == ("11", "1")
    res = run("check", "--baseline", "base.json", "--format", "json")
    assert res.exit_code == 1 and json.loads(res.stdout)["passed"] is False
    res = run("check", "--baseline", "base.json", "--max-growth", "1")
    assert res.exit_code == 0
    assert res.stdout.rstrip().endswith("cnnstat check: 11 passed, 0 failed: all budgets pass")


def test_a_failed_minimum_is_under(run, tmp_path, monkeypatch):
    files = {"cnnstat.toml": PASSING + "min_receptive_field = 600\n"}
    res = in_dir(run, tmp_path, monkeypatch, files)
    assert res.exit_code == 1
    row = next(line for line in res.stdout.splitlines() if "min_receptive_field" in line)
    assert "28.8% under" in row and "over" not in row and "FAIL" in row
    assert res.stdout.rstrip().endswith("cnnstat check: 1 passed, 1 failed")
    res = run("check", "--format", "github")
    assert "receptive_field 427 px falls short of the minimum 600 px by 28.8%" in res.stdout


def test_a_model_error_says_error_once(run, tmp_path, monkeypatch):
    files = {
        "bad.yaml": "input: [3, 32, 32]\nlayers:\n  - conv: {out: 16, kernel_sise: 3}\n",
        "cnnstat.toml": '[[budget]]\nmodel = "bad.yaml"\nmax_params = "1M"\n',
    }
    res = in_dir(run, tmp_path, monkeypatch, files)
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        "cnnstat.toml:2:1: error: budget model 'bad.yaml': bad.yaml:3:21: conv has no argument "
        "'kernel_sise' (did you mean 'kernel_size' or 'kernel'?)"
    )
    files = {"cnnstat.toml": '[[budget]]\nmodel = "resnet50"\ninput = "1x3x224x224"\nmax_params = "1M"\n'}
    res = in_dir(run, tmp_path, monkeypatch, files)
    assert res.exit_code == 2 and res.stderr.count("error:") == 1
    assert 'the batch is batch: input = "3x224x224", batch = 1' in res.stderr


@pytest.mark.parametrize(
    "name,header,fix",
    [
        ("cnnstat.toml", "[budget]", "[[budget]]"),
        ("pyproject.toml", "[tool.cnnstat.budget]", "[[tool.cnnstat.budget]]"),
    ],
)
def test_single_brackets_get_a_hint(run, tmp_path, monkeypatch, name, header, fix):
    files = {name: f'# budgets\n{header}\nmodel = "resnet50"\nmax_params = "1M"\n'}
    res = in_dir(run, tmp_path, monkeypatch, files, name)
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"{name}:2:1: error: {header} is a single table: write each budget as {fix} "
        "(double brackets, an array of tables)"
    )
