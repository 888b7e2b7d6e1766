"""The spec language: blocks, repeat/first, names, from:, defaults, expressions, variants."""

import pytest

from cnnstat.errors import OpError, SpecError
from cnnstat.spec.expr import evaluate
from helpers import analyze_text, spec_from_text

RESNETISH = """
input: [3, 32, 32]
defaults:
  conv: {bias: false, p: 1, k: 3}
blocks:
  basic:
    params: {out: int, stride: 1, project: false}
    body:
      - add:
          main:
            - conv: {out: $out, s: $stride}
            - bn
            - relu
            - conv: {out: $out}
            - bn
          skip:
            - conv: {out: $out, k: 1, p: 0, s: $stride, if: $project}
      - relu
layers:
  - conv: {out: 16}
  - basic: {out: 16, repeat: 2, name: layer1}
  - basic: {out: 32, repeat: 2, name: layer2, first: {stride: 2, project: true}}
  - gap
  - flatten
  - fc: {out: 10}
"""


def test_blocks_repeat_and_first():
    a = analyze_text(RESNETISH)
    names = [la.name for la in a.layers]
    assert "layer1.0.add1.main.conv1" in names
    assert "layer2.0.add1.skip.conv1" in names  # the projection only in the first instance
    assert "layer2.1.add1.skip.conv1" not in names
    by_name = {la.name: la for la in a.layers}
    assert by_name["layer2.0.add1.main.conv1"].output == (32, 16, 16)
    assert by_name["layer2.1.relu1"].output == (32, 16, 16)
    assert by_name["layer1.1.add1"].inputs == ("layer1.1.add1.main.bn2", "layer1.0.relu1")
    # the per-op defaults applied: no conv bias anywhere
    assert all(la.biases == 0 for la in a.layers if la.op == "conv")
    expected = 3 * 16 * 9 + 4 * 16 * 16 * 9 + 32 * 16 * 9 + 3 * 32 * 32 * 9 + 16 * 32
    assert sum(la.weights for la in a.layers if la.op == "conv") == expected


def test_auto_names_count_per_scope():
    a = analyze_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 2, k: 1, repeat: 3}\n  - relu\n  - relu\n")
    assert [la.name for la in a.layers] == ["conv1", "conv2", "conv3", "relu1", "relu2"]
    a = analyze_text("input: [1, 8, 8]\nlayers:\n  - conv: {out: 2, k: 1, repeat: 2, name: c}\n")
    assert [la.name for la in a.layers] == ["c.0", "c.1"]


def test_from_reaches_back():
    a = analyze_text(
        """
        input: [3, 16, 16]
        layers:
          - conv: {out: 8, k: 3, p: 1, name: stem}
          - maxpool: {k: 2}
          - conv: {out: 8, k: 1}
          - conv: {out: 4, k: 1, from: stem, name: side}
          - concat: {a: {from: stem}, b: [conv: {out: 4, k: 1}]}
        """
    )
    by_name = {la.name: la for la in a.layers}
    assert by_name["side"].inputs == ("stem",)
    assert by_name["side"].output == (4, 16, 16)
    assert by_name["concat1"].inputs == ("stem", "concat1.b.conv1")


def test_expressions():
    scope = {"growth": 32, "width": 1.5, "stride": 2}
    assert evaluate("$growth", scope) == 32
    assert evaluate("$(4 * growth)", scope) == 128
    assert evaluate("$(int(64 * width) // 8 * 8)", scope) == 96
    assert evaluate("$(stride != 1 or growth > 64)", scope) is True
    assert evaluate("$(max(8, growth // 8) if stride == 2 else 0)", scope) == 8
    assert evaluate(["$growth", 3], scope) == [32, 3]
    assert evaluate("plain", scope) == "plain"
    for bad in (
        "$(__import__('os'))",
        "$(growth.real)",
        "$(scope[0])",
        "$(lambda: 1)",
        "$(2 ** 9999)",
        "$(growth / 0)",
        "$nope",
        "$(open('x'))",
    ):
        with pytest.raises(OpError):
            evaluate(bad, scope)


def test_expressions_in_specs():
    a = analyze_text(
        """
        input: [3, 8, 8]
        params: {width: 2}
        blocks:
          unit:
            params: {c: int, k: 3}
            body:
              - conv: {out: $(c * width), k: $k, p: $(k // 2)}
        layers:
          - unit: {c: 8}
          - unit: {c: 4, k: 5}
        """
    )
    assert [la.output for la in a.layers] == [(16, 8, 8), (8, 8, 8)]
    assert a.layers[1].weights == 8 * 16 * 25


def test_variants():
    spec = spec_from_text(
        """
        name: base
        input: [3, 8, 8]
        params: {c: 4}
        variants:
          wide: {params: {c: 16}, description: wider, input: [3, 16, 16]}
        layers:
          - conv: {out: $c, k: 3}
        """
    )
    assert spec.models == ["base", "wide"]
    wide = spec.variant("wide")
    assert (wide.name, wide.description, wide.input, wide.params) == ("wide", "wider", (3, 16, 16), {"c": 16})
    with pytest.raises(SpecError, match="unknown parameter 'd'"):
        spec_from_text(
            "input: [1, 4]\nparams: {c: 1}\nvariants:\n  v: {params: {d: 2}}\nlayers: [relu]\n"
        ).variant("v")


def test_input_override_changes_shapes_not_weights():
    base = analyze_text(RESNETISH)
    big = analyze_text(RESNETISH, input=(3, 64, 64))
    assert big.totals()["params"] == base.totals()["params"]
    conv_macs = lambda a: sum(la.macs for la in a.layers if la.op == "conv")
    assert conv_macs(big) == 4 * conv_macs(base)


def test_batch_and_dtype():
    a = analyze_text(RESNETISH, batch=8, dtype="int4")
    b = analyze_text(RESNETISH)
    assert a.totals()["macs"] == 8 * b.totals()["macs"]
    assert a.totals()["activations"] == 8 * b.totals()["activations"]
    assert a.totals()["params"] == b.totals()["params"]
    # int4: two weights per byte, each layer's tensor rounded up to whole bytes
    assert a.totals()["weight_bytes"] == sum(-(-la.weights // 2) for la in b.layers)
    assert b.totals()["weight_bytes"] == 4 * b.totals()["weights"]


def test_yaml_anchors_and_merge_keys_work():
    a = analyze_text(
        """
        input: [3, 8, 8]
        layers:
          - conv: &c3 {out: 4, k: 3, p: 1}
          - conv: {<<: *c3, out: 8}
        """
    )
    assert [la.output[0] for la in a.layers] == [4, 8]


def test_fc_weights_are_fixed_by_the_spec_input(run):
    # VGG as in the paper flattens pool5 straight into fc6: at 448x448 fc6 would need
    # 4x the weights, a different network; cnnstat refuses and says where.
    res = run("params", "vgg16", "--input", "3x448x448")
    assert res.exit_code == 2
    assert "zoo:vgg.yaml:" in res.stderr
    assert "fc 'fc1' gets input [100352] at input 3x448x448, but [25088]" in res.stderr
    # torchvision's AlexNet pools adaptively to 6x6 first: any input keeps fc6's weights.
    res = run("params", "alexnet-owt", "--input", "3x448x448", "--format", "json")
    assert res.exit_code == 0


def test_locally_connected_weights_are_fixed_by_the_spec_input():
    text = "input: [1, 8, 8]\nlayers:\n  - local: {out: 2, k: 3}\n"
    with pytest.raises(SpecError, match=r"local 'local1' gets input \[1, 16, 16\]"):
        analyze_text(text, input=(1, 16, 16))
    assert analyze_text(text, input=(1, 8, 8)).totals()["weights"] == 36 * 2 * 9


def test_in_channels_is_the_block_input():
    a = analyze_text(
        """
        input: [3, 8, 8]
        blocks:
          transition:
            body:
              - conv: {out: $(in_channels // 2), k: 1}
        layers:
          - conv: {out: 64, k: 1}
          - transition
          - transition
        """
    )
    assert [la.output[0] for la in a.layers] == [64, 32, 16]
    with pytest.raises(SpecError, match="in_channels is built in"):
        spec_from_text(
            "input: [1, 4]\nblocks:\n  b:\n    params: {in_channels: 1}\n    body: [relu]\nlayers: [relu]\n"
        )


def test_include_shares_blocks_between_files(tmp_path):
    from cnnstat.spec.model import load_spec_file

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "common.yaml").write_text(
        "description: shared blocks\nblocks:\n  cbr:\n    params: {out: int}\n"
        "    body: [conv: {out: $out, k: 3, p: 1, bias: false}, bn, relu]\n"
    )
    (tmp_path / "net.yaml").write_text(
        "input: [3, 8, 8]\ninclude: [lib/common.yaml]\nlayers:\n  - cbr: {out: 4}\n  - cbr: {out: 8}\n"
    )
    spec = load_spec_file(tmp_path / "net.yaml", display="net.yaml")
    from cnnstat.analysis import Analysis
    from cnnstat.spec.build import build

    a = Analysis(build(spec))
    assert [la.name for la in a.layers][:3] == ["cbr1.conv1", "cbr1.bn1", "cbr1.relu1"]
    assert a.totals()["weights"] == 4 * 27 + 4 + 8 * 36 + 8  # conv weights + bn gammas


def test_include_errors(tmp_path):
    from cnnstat.spec.model import load_spec_file

    (tmp_path / "a.yaml").write_text("include: b.yaml\nblocks:\n  x:\n    body: [relu]\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\nblocks:\n  y:\n    body: [relu]\n")
    (tmp_path / "net.yaml").write_text("input: [1, 4]\ninclude: [a.yaml]\nlayers: [relu]\n")
    with pytest.raises(SpecError, match=r"include cycle: net.yaml -> a.yaml -> b.yaml -> a.yaml"):
        load_spec_file(tmp_path / "net.yaml", display="net.yaml")
    (tmp_path / "dup.yaml").write_text(
        "input: [1, 4]\ninclude: [b2.yaml]\nblocks:\n  y:\n    body: [relu]\nlayers: [relu]\n"
    )
    (tmp_path / "b2.yaml").write_text("blocks:\n  y:\n    body: [relu]\n")
    with pytest.raises(SpecError, match=r"block 'y' is defined here and at b2.yaml:2:3"):
        load_spec_file(tmp_path / "dup.yaml", display="dup.yaml")
    (tmp_path / "missing.yaml").write_text("input: [1, 4]\ninclude: [nope.yaml]\nlayers: [relu]\n")
    with pytest.raises(SpecError, match=r"no such spec file: nope.yaml") as info:
        load_spec_file(tmp_path / "missing.yaml", display="missing.yaml")
    assert str(info.value.loc) == "missing.yaml:2:11"
