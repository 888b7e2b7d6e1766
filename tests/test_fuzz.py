"""Property-based robustness: whatever the input, cnnstat gives a result or a located error.

Generated and mutated specs and budget files go through the real loaders and the CLI; the
only acceptable outcomes are success (exit 0), a budget failure (exit 1, check only) or a
user error (exit 2) with a message - never an uncaught exception, never a hang. The example
counts are for CI; `CNNSTAT_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py` runs a longer sweep.
"""

import os
import string

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnstat.cli import cli
from cnnstat.errors import CnnstatError

EXAMPLES = int(os.environ.get("CNNSTAT_FUZZ_EXAMPLES", "800"))  # per test: 3,200 in CI
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

OPS = [
    "conv",
    "dwconv",
    "local",
    "fc",
    "maxpool",
    "avgpool",
    "gap",
    "bn",
    "relu",
    "flatten",
    "add",
    "concat",
    "mul",
    "slice",
    "shuffle",
    "adaptive_avgpool",
    "prelu",
    "lrn",
    "softmax",
    # the vocabulary of decoders, video and transformer-era blocks
    "conv_transpose",
    "upsample",
    "pixel_shuffle",
    "pixel_unshuffle",
    "pad",
    "crop",
    "layernorm",
    "groupnorm",
    "instancenorm",
    "leaky_relu",
    "gelu",
    "hardtanh",
    "linear",
    "tokens",
    "to_map",
    "class_token",
    "pos_embed",
    "take",
    "attention",
    "matmul",
]
KEYS = [
    "out",
    "k",
    "s",
    "p",
    "d",
    "groups",
    "bias",
    "name",
    "repeat",
    "first",
    "from",
    "if",
    "mult",
    "size",
    "start",
    "stop",
    "ceil",
    "kernel",
    "x",
    "y",
    "output_padding",
    "scale",
    "mode",
    "like",
    "offset",
    "factor",
    "heads",
    "window",
    "shift",
    "sr",
    "index",
    "dim",
]

scalars = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([0, 1, 2, 3, 7, -1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(alphabet=string.printable + "éλ中", max_size=12),
    st.sampled_from(
        [
            "same",
            "valid",
            "identity",
            "$x",
            "$(x * 2)",
            "$(1/0)",
            "$(__import__('os'))",
            "$(10 ** 400)",
            "$in_channels",
            "!!python/object:os.system",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS + OPS), inner, max_size=4),
    ),
    max_leaves=12,
)
layer = st.one_of(
    st.sampled_from(OPS),
    st.builds(
        lambda op, args: {op: args},
        st.sampled_from(OPS),
        st.dictionaries(st.sampled_from(KEYS), values, max_size=4),
    ),
    values,
)
spec = st.fixed_dictionaries(
    {
        "input": st.one_of(st.just([3, 16, 16]), st.lists(scalars, max_size=4)),
        "layers": st.lists(layer, max_size=6),
    },
    optional={
        "params": st.dictionaries(st.sampled_from(["x", "y", "in_channels", "1bad"]), values, max_size=3),
        "blocks": st.dictionaries(
            st.sampled_from(["b", "c", "relu"]),
            st.fixed_dictionaries(
                {"body": st.lists(st.one_of(layer, st.sampled_from(["b", "c"])), max_size=3)},
                optional={"params": st.dictionaries(st.sampled_from(["x", "w"]), values)},
            ),
            max_size=2,
        ),
        "defaults": st.dictionaries(st.sampled_from(OPS), values, max_size=2),
        "nominal": values,
        "cnnstat": scalars,
        "variants": values,
        "include": values,
    },
)


def _run(tmp_path, text, *args, command="params"):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, [command, str(path), *args])
    # Only SystemExit (click's exit codes) may leave the command; anything else is a bug.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n--- input ---\n{text}"
    )
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stderr.strip() and "Traceback" not in result.stderr
    return result


@FUZZ
@given(doc=spec)
def test_generated_specs(tmp_path_factory, doc):
    tmp = tmp_path_factory.mktemp("fuzz")
    _run(tmp, yaml.safe_dump(doc, allow_unicode=True), "--format", "json")


VALID = """\
input: [3, 32, 32]
params: {w: 8}
blocks:
  unit:
    params: {out: int, stride: 1}
    body:
      - add:
          main: [conv: {out: $out, k: 3, s: $stride, p: 1}, bn, relu]
          skip: [conv: {out: $out, k: 1, s: $stride, if: $(stride != 1 or in_channels != out)}]
layers:
  - conv: {out: $w, k: 3, p: 1, name: stem}
  - unit: {out: 16, repeat: 2, first: {stride: 2}}
  - concat: {a: identity, b: {from: stem}}
  - gap
  - flatten
  - fc: {out: 10}
"""


@FUZZ
@given(
    pos=st.integers(min_value=0, max_value=len(VALID) - 1),
    junk=st.text(min_size=1, max_size=6),
    cut=st.booleans(),
)
def test_mutated_valid_spec(tmp_path_factory, pos, junk, cut):
    """One edit anywhere in a valid spec: insert junk, or cut a piece out."""
    text = VALID[:pos] + ("" if cut else junk) + VALID[pos + (len(junk) if cut else 0) :]
    _run(tmp_path_factory.mktemp("fuzz"), text, "--format", "json")


@FUZZ
@given(text=st.text(alphabet=string.printable + "[]{}:-&*!|>'\"#%@`", max_size=200))
def test_random_text(tmp_path_factory, text):
    _run(tmp_path_factory.mktemp("fuzz"), text)


budget_values = st.one_of(
    scalars, st.sampled_from(["25M", "4.1G", "30 MB", "1.2T", "3 MiB", "x", "-5", "1e400"])
)
budget_entry = st.dictionaries(
    st.sampled_from(
        [
            "model",
            "input",
            "resolution",
            "fps",
            "dtype",
            "batch",
            "mode",
            "name",
            "max_params",
            "max_macs",
            "max_macs_per_second",
            "max_weight_bytes",
            "min_receptive_field",
            "max_peak_activation_bytes",
            "max_parms",
        ]
    ),
    st.one_of(budget_values, st.sampled_from(["lenet5", "vgg16", "nope", "fuzz.yaml", "3x32x32", "frame"])),
    max_size=6,
)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


@FUZZ
@given(entries=st.lists(budget_entry, max_size=3), raw=st.text(max_size=30))
def test_generated_budget_files(tmp_path_factory, entries, raw):
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "fuzz.yaml").write_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 2, k: 3}\n")
    text = (
        "".join(
            "[[budget]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in e.items() if v is not None)
            for e in entries
        )
        + raw
    )
    path = tmp / "cnnstat.toml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(path), "--format", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n--- budget ---\n{text}"
    )
    assert result.exit_code in (0, 1, 2)


def test_huge_input_stays_exact(run):
    """Integers stay exact at any size: JSON carries Python's arbitrary-precision ints."""
    import json

    one = json.loads(run("params", "resnet50", "--input", "3x100000x100000", "--format", "json").stdout)
    conv1 = one["layers"][0]
    assert conv1["macs"] == 64 * 50000 * 50000 * 3 * 7 * 7  # 7x7/2 stem on a 100000^2 input
    many = json.loads(
        run("params", "resnet50", "--input", "3x100000x100000", "--batch", "1000", "--format", "json").stdout
    )
    macs = many["totals"]["macs"]
    assert isinstance(macs, int) and macs > 2**53  # past float's exact range
    assert macs == 1000 * one["totals"]["macs"]
    assert many["memory"]["peak_activation_bytes"] == 1000 * one["memory"]["peak_activation_bytes"]


def test_the_api_raises_only_user_errors():
    from helpers import analyze_text

    for text in (
        "input: [3, 8, 8]\nlayers: [conv]\n",
        "layers: []\n",
        "[",
        "input: [1]\nlayers: [flatten, fc]\n",
    ):
        try:
            analyze_text(text)
        except CnnstatError:
            pass


@FUZZ
@given(
    module=st.text(alphabet=string.ascii_letters + string.digits + "._/-", min_size=1, max_size=20),
    attr=st.text(alphabet=string.ascii_letters + string.digits + "._()", max_size=12),
    kwargs=st.one_of(st.none(), st.text(max_size=20)),
)
def test_generated_module_references(module, attr, kwargs):
    """PyTorch model references that name nothing importable: exit 2 with a message. (The
    prefix keeps the fuzzer away from real modules: importing one runs its code.)"""
    args = ["params", f"zz_cnnstat_fuzz_{module}:{attr}", "--format", "json"] + (
        ["--kwargs", kwargs] if kwargs is not None else []
    )
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception} for {args}"
    )
    assert result.exit_code in (0, 2)
