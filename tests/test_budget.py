"""cnnstat check / snapshot end to end: budgets, exit codes, formats, baselines."""

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PASSING = """
[[budget]]
model = "mobilenet_v2"
max_params = "4M"
max_weights = "3.5M"
max_macs = "0.31G"
max_macs_per_frame = "13G"
max_macs_per_second = "10T"
max_weight_bytes = "14 MB"
max_param_bytes = "15 MB"
max_activations = "20M"
max_peak_activation_bytes = "10 MiB"
min_receptive_field = 200
max_receptive_field = "500 px"
"""

# One limit just under mobilenet_v2's value for each metric (values pinned in test_zoo_mobile
# and checked here by hand: 3,504,872 params, 300,774,272 MACs at 224x224).
EXCEEDED = {
    "max_params": ("3.5M", "params 3.50M exceeds the limit 3.50M by 0.1%"),
    "max_weights": ("3M", "exceeds the limit 3.00M"),
    "max_macs": ("300M", "macs 300.77M exceeds the limit 300.00M by 0.3%"),
    "max_macs_per_frame": ("12G", "exceeds the limit 12.00G"),
    "max_macs_per_second": ("300G", "macs_per_second 372.90G exceeds the limit 300.00G by 24.3%"),
    "max_weight_bytes": ("13 MB", "weight_bytes 13.95 MB exceeds the limit 13.00 MB"),
    "max_param_bytes": ("13 MiB", "exceeds the limit 13.63 MB"),
    "max_activations": ("10M", "exceeds the limit 10.00M"),
    "max_peak_activation_bytes": ("5 MB", "peak_activation_bytes 10.24 MB exceeds the limit 5.00 MB"),
    "min_receptive_field": (500, "receptive_field 491 px falls short of the minimum 500 px by 1.8%"),
    "max_receptive_field": (400, "receptive_field 491 px exceeds the limit 400 px by 22.8%"),
}


@pytest.fixture
def budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(text, name="cnnstat.toml"):
        (tmp_path / name).write_text(textwrap.dedent(text))
        return tmp_path / name

    return write


def test_passing_budget(budget, run):
    budget(PASSING)
    res = run("check")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "all budgets pass" in res.stdout
    doc = json.loads(run("check", "--format", "json").stdout)
    assert doc["passed"] is True
    (entry,) = doc["budgets"]
    assert entry["values"]["params"] == 3_504_872
    assert entry["values"]["macs"] == 300_774_272
    assert len(entry["checks"]) == 11 and all(c["ok"] for c in entry["checks"])
    # a spec is complete: no figure is a lower bound
    assert entry["values"]["complete"] is True and entry["values"]["incomplete"] == []
    assert not any(c["lower_bound"] for c in entry["checks"])
    assert entry["settings"]["allow_lower_bounds"] is False


@pytest.mark.parametrize("limit", EXCEEDED)
def test_each_metric_exceeded(budget, run, limit):
    value, message = EXCEEDED[limit]
    value = f'"{value}"' if isinstance(value, str) else value
    budget(f'[[budget]]\nmodel = "mobilenet_v2"\n{limit} = {value}\n')
    res = run("check", "--format", "github")
    assert res.exit_code == 1
    (line, summary) = res.stdout.strip().splitlines()
    assert re.fullmatch(r"::error file=cnnstat\.toml,line=3::mobilenet_v2: .+", line), line
    assert message in line
    assert summary == "cnnstat check: 0 passed, 1 failed"


def test_1080p30_budget_vgg16_fails_mobilenet_v2_passes(budget, run):
    budget(
        """
        [[budget]]
        model = "vgg16"
        resolution = "1920x1080"
        fps = 30
        max_macs_per_second = "10T"

        [[budget]]
        model = "mobilenet_v2"
        resolution = "1920x1080"
        fps = 30
        max_macs_per_second = "10T"
        """
    )
    res = run("check", "--format", "json")
    assert res.exit_code == 1
    vgg, mobile = json.loads(res.stdout)["budgets"]
    assert vgg["checks"][0]["ok"] is False and vgg["checks"][0]["value"] == 19_179_970_560_000
    assert vgg["checks"][0]["headroom_pct"] == pytest.approx(-91.7997056)
    assert mobile["checks"][0]["ok"] is True
    assert "[1/2] vgg16" in res.stderr  # progress on stderr


def test_frame_mode_budget(budget, run):
    budget('[[budget]]\nmodel = "vgg16"\nmode = "frame"\nmax_macs_per_frame = "800G"\n')
    res = run("check", "--format", "json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["budgets"][0]["values"]["macs_per_frame"] == 814_056_210_432


@pytest.mark.parametrize(
    "text, line, message",
    [
        (
            '[[budget]]\nmodel = "vgg16"\nmax_parms = 1\n',
            3,
            "unknown key 'max_parms' in a budget (did you mean 'max_params'",
        ),
        ('[[budget]]\nmodel = "vgg16"\nmax_params = "lots"\n', 3, "max_params: cannot read 'lots'"),
        ('[[budget]]\nmodel = "vgg16"\nmax_weight_bytes = "4 MAC"\n', 3, "units: B"),
        ('[[budget]]\nmodel = "vgg61"\nmax_params = 1\n', 2, "budget model 'vgg61': unknown model 'vgg61'"),
        ('[[budget]]\nmodel = "vgg16"\n', 1, "sets no limit"),
        ("[[budget]]\nmax_params = 1\n", 1, "a budget needs model"),
        ('[[budget]]\nmodel = "vgg16"\ndtype = "fp8"\nmax_params = 1\n', 3, "unknown dtype 'fp8'"),
        ('[[budget]]\nmodel = "vgg16"\nresolution = "wide"\nmax_params = 1\n', 3, "malformed resolution"),
        ('[[budget]]\nmodel = "vgg16"\nmax_params = [1\n', 3, "TOML:"),
        ('[[budget]]\nmodel = "vgg16"\ninput = "3x448x448"\nmax_params = 1\n', 2, "fc 'fc1' gets input"),
        ("[other]\nx = 1\n", 1, "no [[budget]] tables"),
        (
            '[[budget]]\nmodel = "vgg16"\nallow_lower_bounds = "yes"\nmax_params = 1\n',
            3,
            "allow_lower_bounds must be true or false, got 'yes'",
        ),
    ],
)
def test_malformed_budget_files(budget, run, text, line, message):
    budget(text)
    res = run("check")
    assert res.exit_code == 2
    assert res.stderr.startswith(f"cnnstat.toml:{line}:"), res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_second_budget_lines_are_located(budget, run):
    budget(
        '[[budget]]\nmodel = "vgg16"\nmax_params = "200M"\n\n'
        '[[budget]]\nmodel = "alexnet"\nmax_macs = "1G"\nmax_weights = 1\n'
    )
    lines = run("check", "--format", "github").stdout.splitlines()
    assert lines[0].startswith("::error file=cnnstat.toml,line=8::alexnet: weights")


def test_pyproject_and_explicit_path(budget, run, tmp_path):
    budget(
        '[project]\nname = "x"\n\n[[tool.cnnstat.budget]]\nmodel = "lenet5"\nmax_params = "100K"\n',
        "pyproject.toml",
    )
    assert run("check").exit_code == 0
    budget('[[budget]]\nmodel = "lenet5"\nmax_params = 1000\n', "other.toml")
    assert run("check", "other.toml").exit_code == 1
    assert run("check", "missing.toml").exit_code == 2


def test_spec_paths_are_relative_to_the_budget_file(budget, run, tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "tiny.yaml").write_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 2, k: 3}\n")
    budget('[[budget]]\nmodel = "tiny.yaml"\nmax_params = 20\n', "nets/budget.toml")
    res = run("check", "nets/budget.toml", "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["budgets"][0]["values"]["params"] == 20


def test_junit_output_parses(budget, run):
    budget(PASSING + '\n[[budget]]\nmodel = "vgg16"\nmax_params = "100M"\n')
    res = run("check", "--format", "junit")
    assert res.exit_code == 1
    root = ET.fromstring(res.stdout)
    suite = root.find("testsuite")
    assert suite.get("tests") == "12" and suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("vgg16", "max_params")]
    assert "exceeds the limit 100.00M" in failed[0].find("failure").get("message")


def test_baseline_growth_and_shrinkage(budget, run, tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 4, k: 3}\n")
    budget('[[budget]]\nmodel = "net.yaml"\nmax_params = 1000\n')
    res = run("snapshot", "-o", "base.json")
    assert res.exit_code == 0
    base = json.loads((tmp_path / "base.json").read_text())
    assert base["cnnstat_baseline"] == 1 and base["models"]["net.yaml"]["params"] == 40
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 5, k: 3}\n")  # params 40 -> 50
    res = run("check", "--baseline", "base.json", "--format", "json")
    assert res.exit_code == 1
    growth = {g["metric"]: g for g in json.loads(res.stdout)["budgets"][0]["baseline"]}
    assert growth["params"]["growth_pct"] == pytest.approx(25.0) and not growth["params"]["ok"]
    assert run("check", "--baseline", "base.json", "--max-growth", "30").exit_code == 0
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 3, k: 3}\n")  # shrinks
    res = run("check", "--baseline", "base.json")
    assert res.exit_code == 0 and "shrank" in res.stdout
    (tmp_path / "bad.json").write_text("{}")
    assert run("check", "--baseline", "bad.json").exit_code == 2


def test_readme_example_budget_file(budget, run):
    """The budget file shown in the README passes through cnnstat check as the README says."""
    readme = (REPO / "README.md").read_text()
    example = readme.split("<!-- budget-example -->")[1].split("```toml")[1].split("```")[0]
    budget(example)
    res = run("check", "--format", "json")
    assert res.exit_code == 1  # the README shows vgg16 failing the 1080p30 budget
    failed = [
        (b["name"], c["limit_key"])
        for b in json.loads(res.stdout)["budgets"]
        for c in b["checks"]
        if not c["ok"]
    ]
    assert failed == [("vgg16", "max_macs_per_second")]


def test_pre_commit_hook_definition():
    import yaml

    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "cnnstat-check" and hook["entry"] == "cnnstat check"
