"""`cnnstat verify`, and the boundary: torch is imported for PyTorch models only."""

import json
import subprocess
import sys

import pytest


def test_spec_commands_never_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from cnnstat.cli import cli; import cnnstat.torch; "
        "[CliRunner().invoke(cli, [c, 'resnet18', '--format', 'json']) "
        "for c in ('params', 'summary', 'rf')]; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'fvcore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_verify_a_spec_table(run):
    res = run("verify", "resnet18", "--resolution", "320x240")
    assert res.exit_code == 0, res.stdout
    row = next(line for line in res.stdout.splitlines() if line.startswith("│ resnet18"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    macs = "2,818,314,240"  # conv + fc of ResNet-18 at 320x240: all three agree
    assert cells == ["resnet18", "3x240x320", "11,689,512", "11,689,512", macs, macs, macs, "equal"]
    assert "fvcore" in res.stdout and "FlopCounterMode" in res.stdout


def test_verify_json_and_a_torch_model(run):
    res = run("verify", "torchvision:inception_v3", "--format", "json")
    assert res.exit_code == 0
    (r,) = json.loads(res.stdout)
    assert r["input"] == [3, 299, 299] and r["equal"]
    # every parameter is counted, the auxiliary head's too (it does not run: 0 MACs)
    assert r["params"] == {"cnnstat": 27_161_264, "torch": 27_161_264, "not_executed": 3_326_696}
    assert r["macs"] == {"cnnstat": 5_713_216_096, "fvcore": 5_713_216_096, "flop_counter": 5_713_216_096}
    assert r["fvcore_by_operator"]["conv"] + r["fvcore_by_operator"]["linear"] == 5_713_216_096


@pytest.mark.parametrize(
    "args, message",
    [
        (["lenet5", "--resolution", "64x64"], "zoo:lenet5.yaml:23:5: error: fc 'f6' gets input"),
        (["vgg61"], "error: unknown model 'vgg61'"),
        (["resnet18", "--kwargs", "x=1"], "error: --kwargs applies to PyTorch models"),
    ],
)
def test_verify_errors(run, args, message):
    res = run("verify", *args)
    assert res.exit_code == 2 and res.stderr.startswith(message), res.stderr


def test_verify_is_listed(run):
    assert "verify" in run("--help").stdout
