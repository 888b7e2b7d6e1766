"""The spec language's finer points: `from:` naming a block instance, `if: false` layers
still checked, and block parameter types (misspelled type names, the `list` type)."""

import pytest

from cnnstat.errors import SpecError
from helpers import analyze_text, spec_from_text

# --- from: a block instance ---------------------------------------------------------------

DOWN = """\
input: [3, 16, 16]
blocks:
  down:
    params: {out: int}
    body:
      - conv: {out: $out, k: 3, p: 1}
      - relu
      - conv: {out: $out, k: 3, p: 1}
      - relu
layers:
"""  # layers from line 11


def names(a):
    return [la.name for la in a.layers]


def by_name(a):
    return {la.name: la for la in a.layers}


def error(text, *, input=None):
    with pytest.raises(SpecError) as info:
        analyze_text(text, input)
    return str(info.value)


def test_from_names_a_block_instance():
    a = analyze_text(
        DOWN
        + "  - down: {out: 8, name: enc1}\n"
        + "  - maxpool: {k: 2}\n"
        + "  - conv: {out: 4, k: 1, from: enc1}\n"
    )
    layers = by_name(a)
    assert layers["conv1"].inputs == ("enc1.relu2",)  # the block's last layer
    assert layers["conv1"].output == (4, 16, 16)  # not the pooled 8x8
    assert "enc1" not in names(a)  # a name for a tensor, not a layer of its own
    assert len(a.layers) == 6


def test_unet_skip_concatenates_an_encoder_block():
    a = analyze_text(
        DOWN
        + "  - down: {out: 8, name: enc1}\n"
        + "  - down: {out: 8, name: mid}\n"
        + "  - concat:\n"
        + "      up: identity\n"
        + "      skip: {from: enc1}\n"
        + "  - down: {out: 4, name: dec1}\n"
    )
    cat = by_name(a)["concat1"]
    assert cat.inputs == ("mid.relu2", "enc1.relu2")
    assert cat.output == (16, 16, 16)
    assert by_name(a)["dec1.conv1"].inputs == ("concat1",)


def test_repeated_and_auto_named_instances_are_names():
    a = analyze_text(
        DOWN
        + "  - down: {out: 8, repeat: 2, name: enc}\n"
        + "  - down: {out: 4}\n"
        + "  - down: {out: 2}\n"
        + "  - conv: {out: 1, k: 1, from: enc.0}\n"
        + "  - conv: {out: 1, k: 1, from: enc.1}\n"
        + "  - conv: {out: 1, k: 1, from: down1}\n"
        + "  - conv: {out: 1, k: 1, from: down2}\n"
    )
    layers = by_name(a)
    assert [layers[f"conv{i}"].inputs for i in range(1, 5)] == [
        ("enc.0.relu2",),
        ("enc.1.relu2",),
        ("down1.relu2",),
        ("down2.relu2",),
    ]
    assert [layers[f"conv{i}"].output[0] for i in range(1, 5)] == [1, 1, 1, 1]


def test_block_names_resolve_in_the_enclosing_scope_first():
    a = analyze_text(
        """\
input: [3, 8, 8]
blocks:
  unit:
    params: {out: int}
    body:
      - conv: {out: $out, k: 1}
  pair:
    params: {out: int}
    body:
      - unit: {out: $out, name: a}
      - unit: {out: 5}
      - add:
          x: identity
          y: {from: a}
layers:
  - unit: {out: 5, name: a}
  - pair: {out: 5, name: p}
"""
    )
    assert by_name(a)["p.add1"].inputs == ("p.unit1.conv1", "p.a.conv1")  # p.a, not the top-level a


def test_a_block_whose_layers_are_all_skipped_names_its_input():
    a = analyze_text(
        """\
input: [3, 8, 8]
blocks:
  maybe:
    params: {enabled: false}
    body:
      - conv: {out: 4, k: 1, if: $enabled}
layers:
  - relu
  - maybe: {name: m}
  - conv: {out: 2, k: 1}
  - conv: {out: 2, k: 1, from: m}
"""
    )
    assert by_name(a)["conv2"].inputs == ("relu1",)


def test_a_block_instance_name_must_be_unique():
    msg = error(DOWN + "  - conv: {out: 8, k: 1, name: enc1}\n  - down: {out: 8, name: enc1}\n")
    assert msg.startswith("test.yaml:12:5: error: duplicate layer name 'enc1' (first at test.yaml:11:5)")
    msg = error(DOWN + "  - down: {out: 8, name: enc1}\n  - conv: {out: 8, k: 1, name: enc1}\n")
    assert msg.startswith("test.yaml:12:5: error: duplicate layer name 'enc1' (first at test.yaml:11:5)")
    # an auto name is taken too
    msg = error(DOWN + "  - down: {out: 8}\n  - relu: {name: down1}\n")
    assert msg.startswith("test.yaml:12:5: error: duplicate layer name 'down1' (first at test.yaml:11:5)")


def test_from_a_misspelled_instance_suggests_it():
    msg = error(DOWN + "  - down: {out: 8, name: enc1}\n  - relu: {from: enc}\n")
    assert msg.startswith("test.yaml:12:18: error: 'from': no earlier layer named 'enc'")
    assert "(did you mean 'enc1'" in msg


# --- if: false layers are checked ---------------------------------------------------------

PLAIN = "input: [3, 8, 8]\nparams: {width: 8, head: 0}\nlayers:\n"  # layers from line 4


def test_skipped_layer_unknown_argument():
    msg = error(PLAIN + "  - conv: {out: 8, kk: 3, if: false}\n")
    assert msg.startswith("test.yaml:4:20: error: conv has no argument 'kk' (did you mean 'k'?)")


def test_skipped_layer_missing_required_argument():
    msg = error(PLAIN + "  - conv: {k: 3, if: false}\n")
    assert msg.startswith("test.yaml:4:11: error: conv needs argument 'out'")


def test_skipped_layer_required_argument_from_defaults():
    a = analyze_text(
        "input: [3, 8, 8]\ndefaults:\n  conv: {k: 3}\nlayers:\n  - conv: {out: 8, if: false}\n  - relu\n"
    )
    assert names(a) == ["relu1"]


def test_skipped_layer_literal_values_are_typed():
    msg = error(PLAIN + "  - conv: {out: eight, k: 3, if: false}\n")
    assert msg.startswith("test.yaml:4:17: error: conv: 'out' must be an integer, got 'eight'")
    msg = error(PLAIN + "  - maxpool: {k: 2, ceil: 3, if: false}\n")
    assert msg.startswith("test.yaml:4:27: error: maxpool: 'ceil' must be true or false, got 3")


def test_skipped_layer_same_argument_twice():
    msg = error(PLAIN + "  - conv: {out: 8, k: 3, kernel: 3, if: false}\n")
    assert msg.startswith("test.yaml:4:26: error: conv: 'kernel' and 'k' are the same argument")


def test_skipped_layer_expressions_check_names_not_values():
    # `out: $head` is 0, not a valid width, but the layer is off exactly then: accepted
    a = analyze_text(PLAIN + "  - gap\n  - flatten\n  - fc: {out: $head, if: $(head > 0)}\n")
    assert names(a) == ["gap1", "flatten1"]
    msg = error(PLAIN + "  - conv: {out: $widht, k: 3, if: false}\n")
    assert msg.startswith("test.yaml:4:17: error: in '$widht': unknown parameter 'widht'")
    assert "(did you mean 'width'?)" in msg
    msg = error(PLAIN + "  - conv: {out: 8, k: [$(wdth // 4), 1], if: false}\n")
    assert msg.startswith("test.yaml:4:23: error: in '$(wdth // 4)': unknown parameter 'wdth'")
    msg = error(PLAIN + "  - conv: {out: $(width +), k: 3, if: false}\n")
    assert msg.startswith("test.yaml:4:17: error: cannot parse expression '$(width +)'")


def test_skipped_layer_first_and_repeat_zero_are_checked():
    msg = error(PLAIN + "  - conv: {out: 8, k: 3, if: false, first: {ss: 2}}\n")
    assert msg.startswith("test.yaml:4:45: error: conv has no argument 'ss' (did you mean 's'?)")
    msg = error(PLAIN + "  - conv: {out: 8, kk: 3, repeat: 0}\n")
    assert msg.startswith("test.yaml:4:20: error: conv has no argument 'kk' (did you mean 'k'?)")
    assert names(analyze_text(PLAIN + "  - conv: {out: 8, k: 3, repeat: 0}\n  - relu\n")) == ["relu1"]


def test_skipped_block_instance_is_checked():
    msg = error(DOWN + "  - down: {ouT: 8, if: false}\n")
    assert msg.startswith("test.yaml:11:12: error: block 'down' has no parameter 'ouT' (did you mean 'out'?)")
    msg = error(DOWN + "  - down: {if: false}\n")
    assert msg.startswith("test.yaml:11:11: error: block 'down' needs parameter 'out' (int)")
    msg = error(DOWN + "  - down: {out: wide, if: false}\n")
    assert msg.startswith("test.yaml:11:17: error: parameter 'out' must be int, got 'wide'")
    a = analyze_text(DOWN + "  - down: {out: $(in_channels * 0), if: false}\n  - relu\n")
    assert names(a) == ["relu1"]


def test_skipped_merge_branches_are_checked():
    msg = error(PLAIN + "  - add:\n      if: false\n      a: [conv: {out: 8, kk: 3}]\n      b: identity\n")
    assert msg.startswith("test.yaml:6:26: error: conv has no argument 'kk' (did you mean 'k'?)")
    msg = error(PLAIN + "  - add:\n      if: false\n      a: [cnv: {out: 8}]\n      b: identity\n")
    assert msg.startswith("test.yaml:6:11: error: unknown op or block 'cnv' (did you mean 'conv'")
    msg = error(PLAIN + "  - add: {if: false, a: identity}\n")
    assert "add needs at least two named branches, got 1" in msg


def test_skipped_layer_in_a_block_notes_the_instance():
    msg = error(
        """\
input: [3, 8, 8]
blocks:
  unit:
    params: {out: int, extra: false}
    body:
      - conv: {out: $out, k: 1}
      - bn: {afine: false, if: $extra}
layers:
  - unit: {out: 4, name: u}
"""
    )
    assert msg.startswith("test.yaml:7:14: error: bn has no argument 'afine' (did you mean 'affine'?)")
    assert "note: in block 'unit' instantiated at test.yaml:9:5 (u)" in msg


def test_skipped_layers_in_the_zoo_style_still_build():
    a = analyze_text(
        """\
input: [3, 8, 8]
blocks:
  act:
    params: {act: relu}
    body:
      - relu: {if: $(act == 'relu')}
      - relu6: {if: $(act == 'relu6')}
      - hardswish: {if: $(act == 'hardswish')}
layers:
  - act: {act: relu6}
  - act
"""
    )
    assert names(a) == ["act1.relu61", "act2.relu1"]


# --- block parameter types ----------------------------------------------------------------

TYPED = """\
input: [3, 8, 8]
blocks:
  unit:
    params: {out: int, mode: {type}}
    body:
      - conv: {out: $out, k: 1}
layers:
  - unit: {out: 4}
"""


@pytest.mark.parametrize(
    "given, meant",
    [
        ("string", "str"),
        ("integer", "int"),
        ("boolean", "bool"),
        ("number", "float"),
        ("bool_", "bool"),
        ("dict", "any"),
        ("tuple", "list"),
        ("Int", "int"),
        ("STR", "str"),
        ("Any", "any"),
        ("List", "list"),
        ("String", "str"),
    ],
)
def test_misspelled_parameter_type_is_an_error(given, meant):
    with pytest.raises(SpecError) as info:
        spec_from_text(TYPED.replace("{type}", given))
    assert str(info.value).startswith(
        f"test.yaml:4:30: error: unknown parameter type '{given}' (did you mean '{meant}'?)"
    )


@pytest.mark.parametrize("default", ["bilinear", "relu", "strided", "integral", "strings", "listen"])
def test_string_defaults_stay_defaults(default):
    spec = spec_from_text(TYPED.replace("{type}", default))
    assert spec.blocks["unit"].params["mode"] == ("str", default)
    analyze_text(TYPED.replace("{type}", default))


def test_spec_level_parameter_type_misspelled():
    with pytest.raises(SpecError) as info:
        spec_from_text("input: [3, 8, 8]\nparams: {width: integer}\nlayers: [relu]\n")
    assert str(info.value).startswith(
        "test.yaml:2:17: error: unknown parameter type 'integer' (did you mean 'int'?)"
    )


LISTED = """\
input: [3, 8, 8]
blocks:
  unit:
    params: {ks: list}
    body:
      - conv: {out: 4, k: $ks, p: 0}
layers:
"""  # layers from line 8


def test_list_parameter_type():
    assert spec_from_text(LISTED + "  - relu\n").blocks["unit"].params["ks"][0] == "list"
    a = analyze_text(LISTED + "  - unit: {ks: [3, 1]}\n")
    assert by_name(a)["unit1.conv1"].output == (4, 6, 8)
    msg = error(LISTED + "  - unit: {ks: 3}\n")
    assert msg.startswith("test.yaml:8:16: error: parameter 'ks' must be list, got 3")
    msg = error(LISTED + "  - unit\n")
    assert msg.startswith("test.yaml:8:5: error: block 'unit' needs parameter 'ks' (list)")
    msg = error(LISTED + "  - unit: {ks: 3, if: false}\n")
    assert msg.startswith("test.yaml:8:16: error: parameter 'ks' must be list, got 3")


def test_from_looks_through_enclosing_scopes():
    """A layer inside a merge branch can name a layer of its block (lexical scoping: the
    innermost scope first, then each enclosing one, then the top level)."""
    a = analyze_text(
        """
        input: [1, 64, 64]
        blocks:
          up:
            params: {out: int, skip: str}
            body:
              - conv_transpose: {out: $out, k: 2, s: 2, name: up}
              - concat:
                  skip: [crop: {from: $skip, like: up}]
                  up: identity
        layers:
          - conv: {out: 8, k: 3, name: enc1}
          - maxpool: {k: 2}
          - conv: {out: 16, k: 3}
          - up: {out: 8, skip: enc1}
        """
    )
    crop = next(la for la in a.layers if la.op == "crop")
    assert crop.name == "up1.concat1.skip.crop1"
    assert crop.inputs == ("enc1", "up1.up")  # enc1 from the top level, up from the block
    assert crop.output == (8, 58, 58)
    assert a.layers[-1].output == (16, 58, 58)
