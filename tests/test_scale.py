"""Scale (issue 12): memory linear and small through every output format, and streamed output
that is the same text as the whole document written at once.

JSON is written item by item (``Analysis.json_doc`` + ``print_json``); CSV and Markdown rows
are made as they are written (``render.Rows``); a terminal table of many rows is drawn a
thousand rows at a time. The references are independent of that machinery: ``json.dumps``
of ``Analysis.to_dict()``, CSV written here with the csv module from the layers, and the
same table drawn as one rich table. Memory is measured on whole processes under an
address-space limit (RLIMIT_AS), peak RSS from ``os.wait4``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import subprocess
import sys

import pytest

from cnnstat.analysis import analyze
from cnnstat.cli.common import shape_text

ZOO = ("alexnet", "resnet50", "unet", "inception_v3")
LIMIT = 320 << 20  # address space per run: Python and cnnstat take about 200 MB of it unused
BYTES_PER_LAYER = 1024  # the bound: peak RSS above a one-layer spec's, per layer


def _invoke(*args) -> str:
    from click.testing import CliRunner

    from cnnstat.cli import cli

    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("name", ZOO)
def test_streamed_json_is_json_dumps_of_the_whole_document(name):
    reference = json.dumps(analyze(name).to_dict(), indent=2, allow_nan=False) + "\n"
    for command in ("params", "summary", "rf"):
        assert _invoke(command, name, "--format", "json") == reference


def test_print_json_is_json_dumps_for_odd_values():
    from cnnstat.render import print_json

    doc = {
        "s": 'quote " backslash \\ newline \n é \U0001f600 \u2028',
        "n": [0, -1, 10**40, 1.5, -0.0, 1e300, 2.5e-10, True, False, None],
        "e": [[], {}, [[]], {"a": {}}],
        "t": (1, (2, 3)),
        "k": {1: "int key", None: "null key", 2.5: "float key"},
    }
    out = io.StringIO()
    print_json(doc, out)
    assert out.getvalue() == json.dumps(doc, indent=2, allow_nan=False) + "\n"
    out = io.StringIO()
    print_json({"a": iter([{"b": 1}, 2]), "c": iter([])}, out)  # streams: arrays, item by item
    assert out.getvalue() == json.dumps({"a": [{"b": 1}, 2], "c": []}, indent=2) + "\n"


@pytest.mark.parametrize("name", ("alexnet", "resnet50"))
def test_summary_csv_rows_are_the_layers(name):
    a = analyze(name)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    keys = ["params", "macs", "activations", "activation_bytes"]
    writer.writerow(["name", "op", "kind", "output", *keys, "rf"])
    for la in a.layers:
        c = a.counts(la)
        rf = "?" if la.rf is None else "x".join(map(str, la.rf.size))
        writer.writerow([la.name, la.op, la.kind, shape_text(la.output), *(c[k] for k in keys), rf])
    t = a.totals()
    writer.writerow(["total", "", "", "", *(t[k] for k in keys), ""])
    assert _invoke("summary", name, "--format", "csv") == expected.getvalue()


def _chain(layers: int) -> str:
    return (
        "input: [16, 64, 64]\nblocks:\n  unit: {body: [conv: {out: 16, k: 3, p: 1}, bn, relu]}\n"
        f"layers:\n  - unit: {{repeat: {layers // 3}}}\n"
    )


def test_a_big_terminal_table_is_drawn_in_pieces_as_one_table(tmp_path, monkeypatch):
    import cnnstat.render as render

    spec = tmp_path / "chain.yaml"
    spec.write_text(_chain(720))
    monkeypatch.setattr(render, "CHUNK_ROWS", 300)  # three pieces
    pieces = _invoke("summary", str(spec), "--all")
    monkeypatch.setattr(render, "CHUNK_ROWS", 10**9)
    whole = _invoke("summary", str(spec), "--all")
    assert pieces == whole
    assert len(pieces.splitlines()) > 720


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _peak_rss(spec, *args) -> int:
    """Peak RSS in bytes of ``python -m cnnstat ARGS`` (stdout discarded) under the limit."""
    with open(os.devnull, "w") as null:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnstat", *args[:1], str(spec), *args[1:]],
            stdout=null,
            stderr=subprocess.PIPE,
            preexec_fn=_limited,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert os.waitstatus_to_exitcode(status) == 0, err[-2000:]
    return usage.ru_maxrss * 1024


RUNS = [("params", "--format", "json"), ("summary", "--format", "csv")]


@pytest.fixture(scope="module")
def floor(tmp_path_factory):
    """Peak RSS of each run on a one-layer spec."""
    one = tmp_path_factory.mktemp("one") / "one.yaml"
    one.write_text("input: [16, 64, 64]\nlayers: [relu]\n")
    return {args: _peak_rss(one, *args) for args in RUNS}


def _items(layers: int) -> str:
    """The conv/bn/relu chain written out, one YAML item per layer: every layer has its own
    located YAML data."""
    item = "  - conv: {out: 16, k: 3, p: 1}\n  - bn\n  - relu\n"
    return "input: [16, 64, 64]\nlayers:\n" + item * (layers // 3)


@pytest.mark.parametrize("case, layers", [("relu", 30_000), ("chain", 15_000), ("items", 30_000)])
def test_memory_per_layer_in_every_format(tmp_path, floor, case, layers):
    spec = tmp_path / "big.yaml"
    relu = f"input: [16, 64, 64]\nlayers:\n  - relu: {{repeat: {layers}}}\n"
    spec.write_text({"relu": relu, "chain": _chain(layers), "items": _items(layers)}[case])
    for args in RUNS:
        per_layer = (_peak_rss(spec, *args) - floor[args]) / layers
        assert per_layer < BYTES_PER_LAYER, (args, per_layer)


def test_layers_share_only_arguments_of_the_same_types_and_keep_their_own_locations():
    """Layers whose arguments resolve to equal values of the same types share one dict (what
    keeps a spec written one item per layer small); ``alpha: 1`` and ``alpha: 1.0`` (equal in
    Python, printed apart) do not. Each layer keeps its own file:line:col, as do the YAML
    mapping's keys and values, read back from their packed form."""
    from cnnstat.spec.build import build
    from helpers import spec_from_text

    text = """\
        input: [16, 8, 8]
        layers:
          - elu: {alpha: 1}
          - elu: {alpha: 1.0}
          - elu: {alpha: 1.0}
          - conv: {out: 16, k: 3, p: 1}
          - conv:   {out: 16, k: 3,   p: 1}
          - relu
          - relu
        """
    spec = spec_from_text(text, "s.yaml")
    elu1, elu2, elu3, conv1, conv2, relu1, relu2 = build(spec).layers
    assert elu2.args is elu3.args and conv1.args is conv2.args and relu1.args is relu2.args
    assert elu1.args is not elu2.args
    assert type(elu1.args["alpha"]) is int and type(elu2.args["alpha"]) is float
    assert [str(la.loc) for la in (elu1, conv2, relu2)] == ["s.yaml:3:5", "s.yaml:7:5", "s.yaml:9:5"]
    args = spec.layers[4]["conv"]
    assert str(spec.layers[4].locs["conv"]) == "s.yaml:7:13"  # columns counted by hand
    assert [str(args.key_locs[k]) for k in args] == ["s.yaml:7:14", "s.yaml:7:23", "s.yaml:7:31"]
    assert [str(args.locs[k]) for k in args] == ["s.yaml:7:19", "s.yaml:7:26", "s.yaml:7:34"]
    assert "x" not in args.locs and args.locs.get("x") is None and spec.layers.loc_of(9) == spec.layers.loc


def _load_with(base, text: str):
    """``load_yaml_counted`` on PyYAML's ``base`` loader: (data or None, nodes added, error)."""
    import cnnstat.spec.yamlload as yamlload
    from cnnstat.errors import SpecError

    saved = yamlload._Loader
    yamlload._Loader = type("Loader", (base,), {})
    try:
        data, added = yamlload.load_yaml_counted(text, "f.yaml")
        return repr(data), added, None
    except SpecError as exc:
        return None, None, exc
    finally:
        yamlload._Loader = saved


def test_libyaml_and_pure_loader_read_alike():
    """libyaml's C parser (used where PyYAML has it: 100k layers parse 2-3x faster) gives the
    same data, the same alias and merge-key accounting and the same errors as PyYAML's pure
    parser on the hostile corpus and the zoo; a YAML syntax error is located on the same line
    by both (the wording of the parsers' own messages differs)."""
    from pathlib import Path

    import yaml

    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    here = Path(__file__).parent
    files = sorted((here / "hostile").glob("*.yaml")) + sorted((here.parent / "specs").glob("*.yaml"))
    assert len(files) > 40
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    texts += ["a: [1, 2\n", "a: b: c\n", "- a\nb: 1\n", "a:\n\t- 1\n", "a: |\n  x\n y\n", "\x00"]
    for text in texts:
        c_data, c_added, c_error = _load_with(yaml.CSafeLoader, text)
        p_data, p_added, p_error = _load_with(yaml.SafeLoader, text)
        assert (c_data, c_added) == (p_data, p_added), text[:200]
        assert (c_error is None) == (p_error is None), text[:200]
        if c_error is not None and "YAML: " not in c_error.message:  # cnnstat's own: identical
            assert str(c_error) == str(p_error)
        elif c_error is not None:
            assert c_error.loc.line == p_error.loc.line, (str(c_error), str(p_error))
