"""The error catalogue: one small input per class of user error.

Every case must end with exit code 2 and one clear message on stderr (nothing on stdout, no
Python traceback). Errors that come from a spec file must start with ``FILE:LINE:COL: error:``
pointing at the offending item; errors inside a block carry a note naming where the block was
instantiated. Suggestions (``did you mean 'x'``) are checked where the input is a near miss.
"""

from __future__ import annotations

import textwrap
import traceback

import pytest
from click.testing import CliRunner

from cnnstat.cli import cli

# --- helpers ------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def check_error(result, expected=(), loc=None, prefix="error: "):
    """Exit 2, message on stderr only, no traceback, first line located at ``loc``."""
    crash = None if isinstance(result.exception, SystemExit) else result.exception
    assert crash is None, "uncaught exception:\n" + "".join(traceback.format_exception(crash))
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.stdout == "", result.stdout
    err = result.stderr
    first = err.splitlines()[0] if err else ""
    if loc is not None:
        prefix = f"{loc}: error: "
    assert first.startswith(prefix), f"expected {prefix!r} at the start of:\n{err}"
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    return err


def spec(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def case(id, text, line, col, *expected):
    return pytest.param(spec(text), line, col, expected, id=id)


# Reused preambles (the line numbers in the table count from the top of the whole file).
LAYERS = "input: [3, 8, 8]\nlayers:\n"  # first layer on line 3

BLOCK = spec("""
    input: [3, 8, 8]
    blocks:
      unit:
        params: {out: int, k: 3}
        body:
          - conv: {out: $out, k: $k, p: 1}
          - relu
    layers:
""")  # first layer on line 9; the conv in the block body is on line 6, column 9

PARAMS = "input: [3, 8, 8]\nparams: {width: 4, zero: 0}\nlayers:\n"  # first layer on line 4


# --- errors located in a spec file ----------------------------------------------------------
# (id, spec text, line, column, substrings of stderr; "{path}" stands for the spec's path).
# Texts are dedented, so a multi-line spec reads as the file it writes.

SPEC_CASES = [
    # YAML itself
    case(
        "yaml-syntax",
        LAYERS + "  - conv: {out: 4, k: 3]\n",
        3,
        24,
        "YAML",
        "did not find expected ',' or '}'",
    ),
    case(
        "yaml-duplicate-key",
        "input: [3, 8, 8]\nlayers: [relu]\ninput: [3, 16, 16]\n",
        3,
        1,
        "duplicate key 'input'",
        "first given at line 1",
    ),
    case(
        "yaml-python-tag",
        LAYERS + "  - !!python/object:os.system {}\n",
        3,
        5,
        "YAML tag '!!python/object:os.system' is not allowed",
        "a spec is data",
    ),
    case(
        "top-level-list",
        "- conv: {out: 4, k: 3}\n- relu\n",
        1,
        1,
        "a spec must be a mapping with 'input' and 'layers'",
    ),
    case("top-level-empty", "", 1, 1, "a spec must be a mapping with 'input' and 'layers'"),
    # top-level structure
    case(
        "unknown-top-key",
        "input: [3, 8, 8]\nlayer: [relu]\n",
        2,
        1,
        "unknown key 'layer' in the spec",
        "did you mean 'layers'",
    ),
    case("missing-input", "layers: [relu]\n", 1, 1, "the spec has no 'input'"),
    case("missing-layers", "input: [3, 8, 8]\n", 1, 1, "the spec has no 'layers'"),
    case(
        "input-zero", "input: [3, 0, 8]\nlayers: [relu]\n", 1, 8, "input sizes must be positive", "[3, 0, 8]"
    ),
    case(
        "input-not-int",
        'input: [3, "a"]\nlayers: [relu]\n',
        1,
        8,
        "input must be [C, H, W], [C, L], [C, D, H, W] or [D] (integers)",
        "'a'",
    ),
    # ops and their arguments
    case(
        "unknown-op",
        LAYERS + "  - relu\n  - cnov: {out: 4, k: 3}\n",
        4,
        5,
        "unknown op or block 'cnov'",
        "did you mean 'conv'",
    ),
    case(
        "unknown-argument",
        LAYERS + "  - conv: {out: 4, kernal: 3}\n",
        3,
        20,
        "conv has no argument 'kernal'",
        "did you mean 'kernel'",
    ),
    case("missing-argument", LAYERS + "  - conv: {k: 3}\n", 3, 11, "conv needs argument 'out'"),
    case(
        "wrong-argument-type",
        LAYERS + '  - conv: {out: 4, k: "three"}\n',
        3,
        23,
        "conv: 'k' must be an integer or a list of integers",
        "'three'",
    ),
    case(
        "alias-twice",
        LAYERS + "  - conv: {out: 4, k: 3, kernel: 3}\n",
        3,
        26,
        "conv: 'kernel' and 'k' are the same argument",
    ),
    # blocks
    case(
        "block-unknown-param",
        BLOCK + "  - unit: {out: 4, kk: 3}\n",
        9,
        20,
        "block 'unit' has no parameter 'kk'",
        "did you mean 'k'",
    ),
    case(
        "block-missing-param", BLOCK + "  - unit: {k: 3}\n", 9, 11, "block 'unit' needs parameter 'out' (int)"
    ),
    case(
        "block-wrong-param-type",
        BLOCK + "  - unit: {out: four}\n",
        9,
        17,
        "parameter 'out' must be int",
        "'four'",
    ),
    # The second instantiation fails (k: 11 > 8 + 2 padding): the error points into the body
    # and the note at the instantiating line, 10, not at the first use on line 9.
    case(
        "block-error-second-instance",
        BLOCK + "  - unit: {out: 4}\n  - unit: {out: 8, k: 11}\n",
        6,
        9,
        "conv: kernel 11 (spans 11) is larger than its padded input 10",
        "note: in block 'unit' instantiated at {path}:10:5 (unit2)",
    ),
    # 8 -> 4 with k: 7, p: 1; the second repetition (4 + 2 < 7) fails.
    case(
        "block-error-in-repeat",
        BLOCK + "  - unit: {out: 4, k: 7, repeat: 2}\n",
        6,
        9,
        "larger than its padded input 6",
        "note: in block 'unit' instantiated at {path}:9:5 (unit2, repeat 2 of 2)",
    ),
    # A block used inside a block: a bad parameter value passed through the outer block must
    # still say which instantiation of the outer block it came from.
    case(
        "nested-block-wrong-param-type",
        """
        input: [3, 8, 8]
        blocks:
          unit:
            params: {out: int}
            body:
              - conv: {out: $out, k: 3, p: 1}
          pair:
            params: {o: any}
            body:
              - unit: {out: $o}
        layers:
          - pair: {o: 4}
          - pair: {o: four}
        """,
        10,
        21,
        "parameter 'out' must be int",
        "'four'",
        "note: in block 'pair' instantiated at {path}:13:5 (pair2)",
    ),
    # expressions
    case(
        "expr-unknown-param",
        PARAMS + "  - conv: {out: $(widht * 2), k: 3}\n",
        4,
        17,
        "unknown parameter 'widht'",
        "did you mean 'width'",
    ),
    case(
        "expr-division-by-zero",
        PARAMS + "  - conv: {out: $(width // zero), k: 3}\n",
        4,
        17,
        "in '$(width // zero)': division by zero",
    ),
    case(
        "expr-import",
        PARAMS + "  - conv: {out: \"$(__import__('os'))\", k: 3}\n",
        4,
        17,
        "'__import__('os')' is not allowed in an expression",
    ),
    case(
        "expr-attribute",
        PARAMS + "  - conv: {out: $(x.y), k: 3}\n",
        4,
        17,
        "'x.y' is not allowed in an expression",
    ),
    # Arithmetic that Python itself refuses (overflow, comparing a number with a string) must
    # still end as a located error naming the expression, not as a traceback.
    case(
        "expr-float-overflow", PARAMS + "  - conv: {out: $(1e308 ** 2), k: 3}\n", 4, 17, "in '$(1e308 ** 2)'"
    ),
    case(
        "expr-function-overflow",
        PARAMS + "  - conv: {out: $(int(1e400)), k: 3}\n",
        4,
        17,
        "in '$(int(1e400))'",
    ),
    case(
        "expr-compare-number-with-string",
        PARAMS + "  - conv: {out: \"$(width < 'a')\", k: 3}\n",
        4,
        17,
        "in '$(width < 'a')'",
    ),
    # shapes
    case(
        "add-shapes-differ",
        """
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, k: 3, p: 1}
          - add:
              a: identity
              b: [{conv: {out: 8, k: 3, p: 1}}]
        """,
        4,
        5,
        "add: branch 'a' is [4, 8, 8], branch 'b' is [8, 8, 8]",
    ),
    case(
        "concat-spatial-differs",
        """
        input: [3, 8, 8]
        layers:
          - concat:
              a: identity
              b: [{maxpool: {k: 2}}]
        """,
        3,
        5,
        "concat: spatial sizes differ",
        "branch 'a' is [3, 8, 8]",
        "branch 'b' is [3, 4, 4]",
    ),
    case(
        "mul-bad-broadcast",
        """
        input: [3, 8, 8]
        layers:
          - mul:
              a: identity
              b: [{avgpool: {k: 2}}]
        """,
        3,
        5,
        "mul: branch 'a' is [3, 8, 8], branch 'b' is [3, 4, 4]",
        "only [C, 1, 1] broadcasts",
    ),
    case(
        "fc-not-flat",
        LAYERS + "  - conv: {out: 4, k: 3}\n  - fc: {out: 10}\n",
        4,
        5,
        "fc needs a flat input, got [4, 6, 6]",
        "flatten",
    ),
    case(
        "kernel-too-large",
        LAYERS + "  - conv: {out: 4, k: 9}\n",
        3,
        5,
        "conv: kernel 9 (spans 9) is larger than its padded input 8",
    ),
    case(
        "groups-not-dividing",
        LAYERS + "  - conv: {out: 4, k: 3, groups: 2}\n",
        3,
        5,
        "conv: groups=2 must divide input channels 3 and output channels 4",
    ),
    case(
        "negative-padding",
        LAYERS + "  - conv: {out: 4, k: 3, p: -1}\n",
        3,
        5,
        "conv: padding must not be negative",
    ),
    case("zero-stride", LAYERS + "  - conv: {out: 4, k: 3, s: 0}\n", 3, 5, "conv: stride must be at least 1"),
    case(
        "pool-padding-over-half",
        LAYERS + "  - maxpool: {k: 3, p: 2}\n",
        3,
        5,
        "maxpool: padding 2 must be at most half the window [3, 3]",
    ),
    # graph structure and the reserved keys
    case(
        "from-unknown-layer",
        """
        input: [3, 8, 8]
        layers:
          - conv: {name: stem, out: 4, k: 3, p: 1}
          - relu
          - conv: {out: 4, k: 1, from: stme}
        """,
        5,
        32,
        "'from': no earlier layer named 'stme'",
        "did you mean 'stem'",
    ),
    case(
        "duplicate-layer-name",
        LAYERS + "  - conv: {name: c, out: 4, k: 3, p: 1}\n  - conv: {name: c, out: 4, k: 3, p: 1}\n",
        4,
        5,
        "duplicate layer name 'c'",
    ),
    case(
        "merge-one-branch",
        LAYERS + "  - relu\n  - add: {a: identity}\n",
        4,
        10,
        "add needs at least two named branches, got 1",
    ),
    case(
        "repeat-negative",
        LAYERS + "  - relu: {repeat: -1}\n",
        3,
        20,
        "'repeat' must be a non-negative integer, got -1",
    ),
    case("if-not-bool", LAYERS + "  - relu: {if: 3}\n", 3, 16, "'if' must be true or false, got 3"),
]


@pytest.mark.parametrize("text, line, col, expected", SPEC_CASES)
def test_spec_error(tmp_path, text, line, col, expected):
    path = tmp_path / "model.yaml"
    path.write_text(text, encoding="utf-8")
    result = invoke("params", path)
    check_error(result, [e.replace("{path}", str(path)) for e in expected], loc=f"{path}:{line}:{col}")


def test_yaml_apply_tag_is_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.yaml").write_text(
        "input: !!python/object/apply:os.system ['touch pwned']\nlayers: [relu]\n", encoding="utf-8"
    )
    result = invoke("params", "model.yaml")
    check_error(result, ["is not allowed", "!!python/object/apply:os.system"], loc="model.yaml:1:8")
    assert not (tmp_path / "pwned").exists()


def test_expression_is_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.yaml").write_text(
        LAYERS + "  - conv: {out: \"$(__import__('os').system('touch pwned'))\", k: 3}\n", encoding="utf-8"
    )
    result = invoke("params", "model.yaml")
    check_error(result, ["is not allowed in an expression"], loc="model.yaml:3:17")
    assert not (tmp_path / "pwned").exists()


# --- model names and command-line options -----------------------------------------------------

OPTION_CASES = [
    pytest.param(
        ["params", "vgg61"],
        ["unknown model 'vgg61'", "did you mean", "'vgg16'", "'vgg19'", "cnnstat list"],
        id="unknown-model",
    ),
    pytest.param(
        ["params", "vgg16", "--resolution", "19x"],
        ["malformed resolution '19x'", "WIDTHxHEIGHT"],
        id="resolution-malformed",
    ),
    pytest.param(
        ["params", "vgg16", "--input", "3x224"],
        ["--input 3x224 has 2 dimensions", "vgg16 takes 3 (3x224x224)"],
        id="input-wrong-rank",
    ),
    pytest.param(
        ["params", "vgg16", "--input", "3xax224"],
        ["malformed input '3xax224'", "CxHxW"],
        id="input-malformed",
    ),
    pytest.param(
        ["params", "vgg16", "--input", "3x64x64", "--resolution", "64x64"],
        ["give --input or --resolution, not both"],
        id="input-and-resolution",
    ),
    pytest.param(["flops", "vgg16", "--tile", "0x5"], ["tile", "'0x5'", "positive"], id="flops-tile-zero"),
]


@pytest.mark.parametrize("args, expected", OPTION_CASES)
def test_option_error(args, expected):
    check_error(invoke(*args), expected)


def test_missing_spec_file(tmp_path):
    path = tmp_path / "nope.yaml"
    check_error(invoke("params", path), [f"no such spec file: {path}"])


def test_unknown_dtype_is_a_usage_error():
    err = check_error(invoke("params", "vgg16", "--dtype", "fp8"), prefix="Usage: ")
    assert "Invalid value for '--dtype'" in err
    assert "'fp8'" in err
