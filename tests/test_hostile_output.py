"""The hostile corpus, output and budget side (issue 12): exit codes CI can trust, budget,
baseline and device files validated, atomic snapshots, strict JSON, and user strings escaped
for where they go.

Every input runs through the real CLI in a subprocess (``python -m cnnstat ...``) under a
200 MB address-space limit, like tests/test_hostile.py.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CORPUS = HERE / "hostile"
MEMORY = 200 << 20
MAX_SECONDS = 5.0
TIMEOUT = 30


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run(args, env=None, cwd=None, code=None, prelude=None, stdin=None):
    """``python -m cnnstat ARGS`` (or a prelude then cnnstat's main) under the memory limit:
    (exit code, stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CNNSTAT_")}
    environ.update(env or {})
    if prelude:
        argv = [sys.executable, "-c", prelude + "\nfrom cnnstat.cli import main\nmain()", *map(str, args)]
    else:
        argv = [sys.executable, "-m", "cnnstat", *map(str, args)]
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=_limit_memory,
        env=environ,
        cwd=cwd,
        stdin=stdin,
    )
    assert time.perf_counter() - start < MAX_SECONDS * 3
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr or "--debug" in args or env, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def one_error(err: str, expect: str = ""):
    lines = err.rstrip("\n").splitlines()
    assert sum(": error: " in line or line.startswith("error: ") for line in lines) == 1, err
    assert all(line.startswith("  note: ") for line in lines[1:]), err
    assert expect in err, (expect, err)
    assert len(err) < 5000


# --- 1. exit codes ------------------------------------------------------------------------

BUG = "import cnnstat.cli.list_ as m\nm.command.callback = lambda **k: {}['boom']"


def test_internal_error_is_exit_3_one_line():
    code, out, err = run(["list"], prelude=BUG, code=3)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("internal error: KeyError")
    assert "rerun with --debug for the traceback" in lines[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(how):
    args, env = (["--debug", "list"], None) if how == "flag" else (["list"], {"CNNSTAT_DEBUG": "1"})
    code, out, err = run(args, prelude=BUG, env=env, code=3)
    assert "Traceback" in err and "KeyError" in err


def test_internal_error_in_check_is_not_exit_1(tmp_path):
    (tmp_path / "cnnstat.toml").write_text('[[budget]]\nmodel = "resnet18"\nmax_params = "20M"\n')
    prelude = "import cnnstat.budget as B\nB.measure = lambda b: 1 / 0"
    code, out, err = run(["check"], prelude=prelude, cwd=tmp_path, code=3)
    assert "internal error: ZeroDivisionError" in err


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_broken_pipe_is_quiet(fmt):
    proc = subprocess.run(
        f"{sys.executable} -m cnnstat list --format {fmt} | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_stdout_closed_is_quiet():
    proc = subprocess.run(
        f"{sys.executable} -m cnnstat list >&-",
        shell=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


# --- 2. budget, baseline and device files: read bounded, every number validated ----------

BUDGET = '[[budget]]\nmodel = "vgg11_bn"\nmax_weights = {}\n'


@pytest.mark.parametrize(
    "value, expect",
    [
        ("0", "must be a positive number"),
        ("-5", "must be a positive number"),
        ("nan", "finite"),
        ("inf", "finite"),
        ("-inf", "finite"),
        ("[1]", "cannot read"),
        ("{a = 1}", "cannot read"),
        ("true", "expected a number"),
        ("9" * 400, "must be at most"),
        ("1e300", "must be at most"),
        ('"1e999M"', "exponent"),
        ('"abc"', "cannot read"),
        ('"' + "x" * 100_000 + '"', "cannot read"),
    ],
)
def test_budget_limit_refused(tmp_path, value, expect):
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format(value))
    code, out, err = run(["check"], cwd=tmp_path, code=2)
    one_error(err, expect)
    assert err.startswith("cnnstat.toml:3:"), err


@pytest.mark.parametrize(
    "key, value", [("fps", "nan"), ("fps", "inf"), ("fps", "0"), ("fps", "1e308"), ("batch", "9" * 400)]
)
def test_budget_setting_refused(tmp_path, key, value):
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"200M"') + f"{key} = {value}\n")
    code, out, err = run(["check"], cwd=tmp_path, code=2)
    one_error(err, key)


def test_exact_si_limit_passes(tmp_path):
    """vgg11_bn has exactly 132,854,144 weights: "132.854144M" is that number, not a float."""
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"132.854144M"'))
    code, out, err = run(["check"], cwd=tmp_path, code=0)
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"132.854143M"'))
    run(["check"], cwd=tmp_path, code=1)


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "fifo", "dir"])
def test_budget_and_baseline_special_files(tmp_path, special):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)
    elif special == "dir":
        special = str(tmp_path)
    code, out, err = run(["check", special], cwd=tmp_path, code=2)
    one_error(err, "budget file")
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"200M"'))
    code, out, err = run(["check", "--baseline", special], cwd=tmp_path, code=2)
    one_error(err, "baseline")


def _baseline(models) -> str:
    return json.dumps({"cnnstat_baseline": 1, "cnnstat_version": "0", "models": models})


@pytest.mark.parametrize(
    "entry, expect",
    [
        ("[]", "must be an object"),
        ('"x"', "must be an object"),
        ('{"params": "12"}', "params must be a number"),
        ('{"params": [1]}', "params must be a number"),
        ('{"params": true}', "params must be a number"),
        ('{"params": -5}', "must not be negative"),
        ('{"params": 1e400}', "params must be a number"),
        ('{"params": NaN}', "not JSON"),
        ('{"params": Infinity}', "not JSON"),
        ('{"receptive_field": ["a"]}', "receptive_field must be a number"),
        ('{"receptive_field": []}', "receptive_field must be a number"),
        ('{"macs": ' + "9" * 400 + "}", "must be at most"),
    ],
)
def test_baseline_entry_refused(tmp_path, entry, expect):
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"200M"'))
    text = '{"cnnstat_baseline": 1, "models": {"vgg11_bn": ' + entry + "}}"
    (tmp_path / "base.json").write_text(text)
    code, out, err = run(["check", "--baseline", "base.json"], cwd=tmp_path, code=2)
    one_error(err, expect)


@pytest.mark.parametrize(
    "body, expect",
    [
        ('bandwidth = 0\nmacs_per_second = {fp32 = "1T"}', "bandwidth must be positive"),
        ('bandwidth = "1 TB/s"\nmacs_per_second = {fp32 = 0}', "fp32 must be positive"),
        ('bandwidth = nan\nmacs_per_second = {fp32 = "1T"}', "finite"),
        ('bandwidth = "1 TB/s"\nmacs_per_second = {fp32 = inf}', "finite"),
        ('bandwidth = "1 TB/s"\nmacs_per_second = {fp32 = -1}', "must be positive"),
        ('bandwidth = "1 TB/s"\nmacs_per_second = {fp32 = "1e99T"}', "at most"),
        ('bandwidth = [1]\nmacs_per_second = {fp32 = "1T"}', "cannot read"),
    ],
)
def test_device_file_refused(tmp_path, body, expect):
    (tmp_path / "cnnstat.toml").write_text("[devices.mine]\n" + body + "\n")
    code, out, err = run(["flops", "resnet18", "--device", "mine"], cwd=tmp_path, code=2)
    one_error(err, expect)


def test_device_file_special(tmp_path):
    os.mkfifo(tmp_path / "cnnstat.toml")
    code, out, err = run(["flops", "resnet18", "--device", "mine"], cwd=tmp_path, code=2)
    one_error(err, "FIFO")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "0", "-1", "abc", "x" * 10_000])
def test_fps_option_refused(value):
    code, out, err = run(["flops", "resnet18", "--fps", value], code=2)
    assert "--fps" in err and len(err) < 1000, err


@pytest.mark.parametrize("value", ["nan", "inf", "1e308"])
def test_max_growth_refused(tmp_path, value):
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"200M"'))
    code, out, err = run(["check", "--max-growth", value], cwd=tmp_path, code=2)
    assert "--max-growth" in err


# --- 3. budget semantics -------------------------------------------------------------------

TWO = '[[budget]]\nmodel = "resnet18"\nmax_params = "20M"\n[[budget]]\nmodel = "{}"\nmax_macs = "5G"\n{}'


@pytest.mark.parametrize("second, extra", [("resnet18", ""), ("alexnet", 'name = "resnet18"\n')])
def test_duplicate_budget_names_refused(tmp_path, second, extra):
    (tmp_path / "cnnstat.toml").write_text(TWO.format(second, extra))
    code, out, err = run(["check"], cwd=tmp_path, code=2)
    one_error(err, "two budgets named 'resnet18' (lines 1 and 4")
    run(["snapshot", "-o", "b.json"], cwd=tmp_path, code=2)
    assert not (tmp_path / "b.json").exists()


def test_model_missing_from_baseline_is_reported(tmp_path):
    (tmp_path / "cnnstat.toml").write_text(TWO.format("alexnet", ""))
    base = {"resnet18": {"params": 11689512}}
    (tmp_path / "b.json").write_text(_baseline(base))
    args = ["check", "--baseline", "b.json"]
    code, out, err = run([*args], cwd=tmp_path, code=0)
    assert "not in the baseline" in out and "1 model(s) not in the baseline" in out
    code, out, err = run([*args, "--format", "github"], cwd=tmp_path, code=0)
    assert "::warning file=cnnstat.toml,line=4::alexnet: not in the baseline" in out
    code, out, err = run([*args, "--format", "json"], cwd=tmp_path, code=0)
    doc = json.loads(out)
    assert [e["baseline"] == [] for e in doc["budgets"]] == [False, True]
    code, out, err = run([*args, "--format", "junit"], cwd=tmp_path, code=0)
    from xml.etree import ElementTree as ET

    suite = ET.fromstring(out).find("testsuite")
    assert suite.get("skipped") == "1"
    assert suite.find("testcase[@classname='alexnet'][@name='baseline']/skipped") is not None


# --- 4. snapshot writes atomically ---------------------------------------------------------


@pytest.mark.parametrize(
    "target, expect",
    [
        ("missing/dir/b.json", "no such directory"),
        ("/dev/full", "a device"),
        ("/dev/null", "a device"),
        (".", "a directory"),
        ("fifo", "a FIFO"),
    ],
)
def test_snapshot_output_refused(tmp_path, target, expect):
    (tmp_path / "cnnstat.toml").write_text('[[budget]]\nmodel = "lenet5"\nmax_params = "20M"\n')
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    code, out, err = run(["snapshot", "-o", target], cwd=tmp_path, code=2)
    one_error(err, expect)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _budgets(tmp_path, n: int) -> str:
    """A budget file of ``n`` budgets (lenet5 under n names): baselines that differ."""
    text = "".join(f'[[budget]]\nmodel = "lenet5"\nname = "m{i}"\nmax_params = "20M"\n' for i in range(n))
    path = tmp_path / f"b{n}.toml"
    path.write_text(text)
    return str(path)


def _snapshot(tmp_path, budgets: str):
    return subprocess.Popen(
        [sys.executable, "-m", "cnnstat", "snapshot", budgets, "-o", "base.json"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_limit_memory,
    )


def test_snapshot_killed_at_random_moments(tmp_path):
    """SIGKILL at random moments: base.json is always the old file or the new one, whole."""
    import random

    old, new = _budgets(tmp_path, 1), _budgets(tmp_path, 3)
    assert _snapshot(tmp_path, old).wait(TIMEOUT) == 0
    old_text = (tmp_path / "base.json").read_text()
    assert _snapshot(tmp_path, new).wait(TIMEOUT) == 0
    new_text = (tmp_path / "base.json").read_text()
    (tmp_path / "base.json").write_text(old_text)
    rng = random.Random(12)
    seen = set()
    for _ in range(12):
        proc = _snapshot(tmp_path, rng.choice([old, new]))
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait(TIMEOUT)
        text = (tmp_path / "base.json").read_text()
        assert text in (old_text, new_text), text[:200]
        json.loads(text)
        seen.add(text == new_text)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 12  # a killed writer may leave its temporary file, never the baseline


def test_snapshot_removes_stale_temporary_files(tmp_path):
    """A killed writer's temporary file is removed by the next snapshot once it is an hour
    old; a fresh one (a writer still at work) and other files are left alone."""
    budgets = _budgets(tmp_path, 1)
    stale, fresh = tmp_path / ".base.json.abcd1234.tmp", tmp_path / ".base.json.efgh5678.tmp"
    other = tmp_path / ".base.json.notours.tmp"
    for path in (stale, fresh, other):
        path.write_text("{")
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    assert _snapshot(tmp_path, budgets).wait(TIMEOUT) == 0
    assert not stale.exists() and fresh.exists() and other.exists()
    json.loads((tmp_path / "base.json").read_text())


def test_snapshot_concurrent_writers(tmp_path):
    """Writers racing on one baseline: the file is always one of them, whole and valid."""
    files = [_budgets(tmp_path, n) for n in (1, 2, 3, 4)]
    texts = set()
    for budgets in files:
        assert _snapshot(tmp_path, budgets).wait(TIMEOUT) == 0
        texts.add((tmp_path / "base.json").read_text())
    for _ in range(3):
        procs = [_snapshot(tmp_path, budgets) for budgets in files]
        while any(p.poll() is None for p in procs):
            text = (tmp_path / "base.json").read_text()
            assert text in texts, text[:200]
        assert all(p.wait(TIMEOUT) == 0 for p in procs)
        text = (tmp_path / "base.json").read_text()
        assert text in texts
        json.loads(text)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_snapshot_keeps_a_symlinked_baseline_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "base.json").write_text("{}")
    (tmp_path / "base.json").symlink_to("real/base.json")
    assert _snapshot(tmp_path, _budgets(tmp_path, 1)).wait(TIMEOUT) == 0
    assert (tmp_path / "base.json").is_symlink()
    assert json.loads((tmp_path / "real" / "base.json").read_text())["cnnstat_baseline"] == 1


# --- 5. JSON output is strict RFC 8259 -----------------------------------------------------


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_print_json_writes_null_for_non_finite(capsys):
    from cnnstat.render import print_json

    print_json({"a": float("inf"), "b": [1.5, float("nan")], "c": {"d": -float("inf")}})
    captured = capsys.readouterr()
    assert _strict(captured.out) == {"a": None, "b": [1.5, None], "c": {"d": None}}
    assert "$.a (inf)" in captured.err and "$.b[1] (nan)" in captured.err


@pytest.mark.parametrize(
    "args",
    [
        ["params", "resnet18"],
        ["summary", "resnet18"],
        ["memory", "resnet18"],
        ["flops", "resnet18", "--device", "h100-sxm"],
        ["compare", "resnet18", "alexnet"],
        ["devices"],
        ["list"],
    ],
)
def test_json_output_is_strict(args):
    code, out, err = run([*args, "--format", "json"])
    assert code == 0, err
    _strict(out)


def test_check_json_with_baseline_of_zero_is_strict(tmp_path):
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"200M"'))
    (tmp_path / "b.json").write_text(_baseline({"vgg11_bn": {"params": 0, "macs": 1}}))
    code, out, err = run(["check", "--baseline", "b.json", "--format", "json"], cwd=tmp_path, code=1)
    growth = {g["metric"]: g["growth_pct"] for g in _strict(out)["budgets"][0]["baseline"]}
    assert growth["params"] is None


@pytest.mark.parametrize("fmt", ["table", "junit", "github"])
def test_growth_from_zero_has_no_percentage(tmp_path, fmt):
    """A metric that was 0 in the baseline grew by no percentage: '(from 0)', never '+inf%'."""
    (tmp_path / "cnnstat.toml").write_text(BUDGET.format('"200M"'))
    (tmp_path / "b.json").write_text(_baseline({"vgg11_bn": {"params": 0}}))
    code, out, err = run(["check", "--baseline", "b.json", "--format", fmt, "--wide"], cwd=tmp_path, code=1)
    assert "inf" not in out + err
    assert "(from 0)" in out + err


# --- 6. user strings escaped for their destination ----------------------------------------

EVIL = "a|b\x1b[2J\u202e\x07\x00\x0b\nc"
SPEC = 'name: "n\\x1b[31m|x"\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 4, k: 3, name: "EVIL"}\n  - relu\n'


def _evil_spec(tmp_path) -> str:
    name = json.dumps(EVIL)[1:-1]  # YAML double quotes read JSON's escapes
    (tmp_path / "s.yaml").write_text(SPEC.replace("EVIL", name))
    return str(tmp_path / "s.yaml")


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_terminal_and_markdown_show_control_characters(tmp_path, fmt):
    spec = _evil_spec(tmp_path)
    code, out, err = run(["summary", spec, "--format", fmt, "--wide"], code=0)
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out and "\u202e" not in out
    assert "\\x1b[2J" in out
    if fmt == "markdown":
        rows = [line for line in out.splitlines() if line.startswith("| ")]
        header_cells = rows[0].count(" | ")
        for row in rows:  # a | in a name does not add a cell
            assert row.replace("\\|", "").count(" | ") == header_cells, row


def test_csv_quotes_user_strings(tmp_path):
    import csv
    import io

    spec = _evil_spec(tmp_path)
    code, out, err = run(["summary", spec, "--format", "csv"], code=0)
    rows = list(csv.reader(io.StringIO(out)))
    assert len({len(r) for r in rows}) == 1
    assert any(EVIL.replace("\x00", "") in cell or EVIL in cell for r in rows for cell in r)


FORGED = "m\n::error file=src/x.py,line=1::forged%0A\r::warning::also"


def _evil_budgets(tmp_path, name) -> None:
    (tmp_path / "cnnstat.toml").write_text(
        f'[[budget]]\nmodel = "resnet18"\nname = {json.dumps(name)}\nmax_params = "1M"\n'
    )


def test_github_annotations_cannot_be_forged(tmp_path):
    _evil_budgets(tmp_path, FORGED)
    code, out, err = run(["check", "--format", "github"], cwd=tmp_path, code=1)
    commands = [line for line in out.splitlines() if line.startswith("::")]
    assert len(commands) == 1, out
    assert commands[0].startswith(
        "::error file=cnnstat.toml,line=4::m%0A::error file=src/x.py,line=1::forged%250A%0D"
    )
    assert "\r" not in out


def test_github_properties_escaped(tmp_path):
    from cnnstat.render import github_data, github_property

    assert github_property("a,b:c%d\ne") == "a%2Cb%3Ac%25d%0Ae"
    assert github_data("a,b:c%d\r\n") == "a,b:c%25d%0D%0A"


@pytest.mark.parametrize("name", [FORGED, EVIL, "\x00\x01\x02\ufffe\x7f", "<&>\"'"])
def test_junit_is_well_formed(tmp_path, name):
    from xml.etree import ElementTree as ET

    _evil_budgets(tmp_path, name)
    code, out, err = run(["check", "--format", "junit"], cwd=tmp_path, code=1)
    root = ET.fromstring(out)
    case = root.find("testsuite/testcase")
    assert case is not None and case.find("failure") is not None


def test_long_names_abbreviated(tmp_path):
    _evil_budgets(tmp_path, "x" * 1_000_000)
    for fmt in ("table", "github", "junit"):
        code, out, err = run(["check", "--format", fmt], cwd=tmp_path, code=1)
        assert len(out) + len(err) < 20_000, (fmt, len(out), len(err))
        assert "\u2026" in out


# --- the corpus files (tests/hostile/out-*.toml): budget files refused with one message ----


@pytest.mark.parametrize("path", sorted(CORPUS.glob("out-*.toml")), ids=lambda p: p.name)
def test_corpus_budget_file(path):
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    code, out, err = run(["check", path], code=2)
    one_error(err, expect)
    assert err.startswith(f"{path}:"), err
