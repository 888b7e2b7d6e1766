"""The CLI end to end: every command, every format, the installed console script."""

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cnnstat.zoo import list_models

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["params", "summary", "rf"])
def test_json_is_one_object_with_exact_integers(run, command):
    res = run(command, "vgg16", "--format", "json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["totals"]["params"] == 138_357_544
    assert doc["totals"]["macs"] == 15_470_264_320
    assert doc["input"] == [3, 224, 224]
    assert doc["receptive_field"]["size"] == [212, 212]


def test_params_csv_and_markdown(run):
    rows = list(csv.DictReader(io.StringIO(run("params", "vgg16", "--format", "csv").stdout)))
    by_kind = {r["kind"]: r for r in rows}
    assert int(by_kind["conv"]["weights"]) == 14_710_464
    assert int(by_kind["total"]["params"]) == 138_357_544
    md = run("params", "vgg16", "--format", "markdown").stdout
    assert "| conv | 14.71M |" in md


def test_summary_csv_has_a_row_per_layer(run):
    rows = list(csv.DictReader(io.StringIO(run("summary", "alexnet", "--format", "csv").stdout)))
    assert rows[0]["name"] == "conv1" and rows[0]["output"] == "96x55x55"
    assert rows[-1]["name"] == "total"
    assert sum(int(r["macs"]) for r in rows[:-1]) == int(rows[-1]["macs"]) == 724_406_816


def test_rf_table(run):
    out = run("rf", "vgg16").stdout
    assert "Receptive field: 212x212 pixels, jump 32x32" in out


def test_dtype_batch_binary(run):
    doc = json.loads(run("params", "vgg16", "--dtype", "int8", "--batch", "4", "--format", "json").stdout)
    assert doc["dtype"] == "int8" and doc["batch"] == 4
    assert doc["totals"]["weight_bytes"] == 138_344_128  # one byte per weight
    assert doc["totals"]["macs"] == 4 * 15_470_264_320
    assert "527.74 MiB" in run("params", "vgg16", "--binary").stdout  # 553,376,512 / 2^20


def test_input_and_resolution_overrides(run):
    doc = json.loads(run("summary", "alexnet-owt", "--input", "3x300x300", "--format", "json").stdout)
    assert doc["input"] == [3, 300, 300]
    assert run("summary", "lenet5", "--input", "1x64x64").exit_code == 2  # f6 is sized for 32x32
    doc = json.loads(run("summary", "alexnet-owt", "--resolution", "320x240", "--format", "json").stdout)
    assert doc["input"] == [3, 240, 320]
    assert doc["totals"]["params"] == 61_100_840  # the adaptive pool keeps fc6's input at 6x6


def test_flops_every_zoo_model_sorted(run):
    rows = json.loads(run("flops", "--format", "json").stdout)
    assert {r["model"] for r in rows} >= {"vgg16", "alexnet", "lenet5"}
    rates = [r["macs_per_second"] for r in rows]
    assert rates == sorted(rates, reverse=True)
    assert len(rows) == len(list_models())


def test_flops_options(run):
    (row,) = json.loads(
        run(
            "flops", "vgg16", "--tiles", "whole", "--flops-per-mac", "2", "--fps", "25", "--format", "json"
        ).stdout
    )
    assert row["tiles"] == 45 and row["tiling"] == "whole"
    assert row["macs_per_frame"] == 45 * 15_470_264_320
    assert row["flops_per_second"] == 2 * 25 * 45 * 15_470_264_320
    (row,) = json.loads(run("flops", "vgg16", "--tile", "448x448", "--format", "json").stdout)
    assert row["tiles"] == pytest.approx(1920 * 1080 / 448**2)
    out = run("flops", "vgg16", "--flops-per-mac", "2").stdout
    assert "FLOP/s = MAC/s x 2" in out


def test_list(run):
    out = run("list", "vgg1*").stdout
    assert "vgg16_bn" in out and "alexnet" not in out
    rows = json.loads(run("list", "--format", "json").stdout)
    assert {r["name"] for r in rows} >= {"alexnet", "vgg16", "lenet5"}


def test_help_lists_every_command(run):
    out = run("--help").stdout
    for command in ("params", "flops", "summary", "rf", "list"):
        assert command in out


def test_console_script_runs_from_anywhere(tmp_path):
    """The installed `cnnstat` script finds the zoo from any directory."""
    script = Path(sys.executable).with_name("cnnstat")
    assert script.exists(), "install the package (pip install -e . or pip install .)"
    res = subprocess.run(
        [script, "params", "vgg16", "--format", "json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["totals"]["params"] == 138_357_544
    res = subprocess.run(
        [sys.executable, "-m", "cnnstat", "list", "lenet*"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0 and "lenet5" in res.stdout


def test_wheel_ships_the_zoo(tmp_path):
    """A non-editable install carries specs/ inside the package (cnnstat/specs)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            REPO,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cnnstat-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("cnnstat/specs/") for n in names if n.startswith("cnnstat/specs/")}
    assert shipped == {str(p.relative_to(REPO / "specs")) for p in (REPO / "specs").rglob("*.yaml")}
