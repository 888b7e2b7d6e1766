"""The hostile corpus, output and budget side (issue 12): exit codes CI can trust, budget,
baseline and device files validated, atomic snapshots, strict JSON, and user strings escaped
for where they go.

Every input runs through the real CLI in a subprocess (``python -m cnnstat ...``) under a
200 MB address-space limit, like tests/test_hostile.py.
"""

from __future__ import annotations

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
