"""Every zoo model: invariants, and the published figures it must reproduce."""

import json
import subprocess
import sys

import pytest

from cnnstat.analysis import COUNT_KEYS, KINDS, analyze
from cnnstat.zoo import get, list_models, models
from helpers import assert_published

ZOO = list_models()


def test_zoo_has_the_first_models():
    expected = {"alexnet", "alexnet-grouped", "alexnet-owt", "lenet5"}
    expected |= {f"vgg{n}{bn}" for n in (11, 13, 16, 19) for bn in ("", "_bn")}
    assert expected <= set(ZOO)


@pytest.mark.parametrize("name", ZOO)
def test_layer_sums_equal_totals(name):
    a = analyze(name)
    totals = a.totals()
    by_kind = a.by_kind()
    for key in COUNT_KEYS:
        assert sum(a.counts(la)[key] for la in a.layers) == totals[key], key
        assert sum(by_kind[k][key] for k in KINDS) == totals[key], key
    assert totals["params"] == totals["weights"] + totals["biases"]
    # conv/fc layers carry every MAC (the convention); other ops carry none
    assert by_kind["other"]["macs"] == 0


@pytest.mark.parametrize("name", ZOO)
def test_every_model_is_documented(name):
    spec = get(name)
    assert spec.description and spec.source
    assert len(spec.description) <= 120, "one line"


@pytest.mark.parametrize("name", ZOO)
def test_json_contract(name, run):
    res = run("summary", name, "--format", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) >= {"model", "input", "batch", "dtype", "totals", "by_kind", "layers", "receptive_field"}
    assert doc["model"] == name
    assert set(doc["totals"]) >= {
        "params",
        "weights",
        "biases",
        "buffers",
        "macs",
        "activations",
        "weight_bytes",
    }
    assert set(doc["by_kind"]) == {"conv", "fc", "other"}
    for layer in doc["layers"]:
        assert set(layer) >= {
            "name",
            "op",
            "kind",
            "inputs",
            "output",
            "params",
            "weights",
            "biases",
            "macs",
            "activations",
            "rf",
        }
        # jump_exact ("1/2") only where upsampling made the jump fractional
        assert {"size", "jump", "start"} <= set(layer["rf"]) <= {"size", "jump", "start", "jump_exact"}
        assert all(isinstance(v, int) for v in (layer["params"], layer["macs"]))
    assert {"size", "jump", "start", "layer"} <= set(doc["receptive_field"])
    assert set(doc["receptive_field"]) <= {"size", "jump", "start", "layer", "jump_exact"}
    names = [la["name"] for la in doc["layers"]]
    assert len(names) == len(set(names)), "layer names are unique"


# torchvision's published metadata (torchvision/models/{alexnet,vgg}.py, weights `meta`:
# "num_params" and "_ops", the latter in GMAC of conv + linear layers at 224x224).
TORCHVISION = {
    "alexnet-owt": (61_100_840, 0.714),
    "vgg11": (132_863_336, 7.609),
    "vgg11_bn": (132_868_840, 7.609),
    "vgg13": (133_047_848, 11.308),
    "vgg13_bn": (133_053_736, 11.308),
    "vgg16": (138_357_544, 15.47),
    "vgg16_bn": (138_365_992, 15.47),
    "vgg19": (143_667_240, 19.632),
    "vgg19_bn": (143_678_248, 19.632),
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_figures(name):
    assert_published(name, *TORCHVISION[name])


def test_vgg_bn_buffers():
    # running mean + variance per BN channel: 2 x (2*64 + 2*128 + 3*256 + 6*512)
    assert analyze("vgg16_bn").totals()["buffers"] == 2 * 4224
    assert analyze("vgg16").totals()["buffers"] == 0


def test_lenet5_matches_the_paper_where_the_variant_agrees():
    # LeCun et al. 1998, section II.B: C1 156 trainable parameters, C5 48,120 trainable
    # connections (= parameters for a 5x5 conv on a 5x5 map), F6 10,164 trainable parameters.
    layers = {la.name: la for la in analyze("lenet5").layers}
    assert layers["c1"].params == 156
    assert layers["c1"].output == (6, 28, 28)
    assert layers["c5"].params == 48_120
    assert layers["c5"].output == (120, 1, 1)
    assert layers["f6"].params == 10_164
    # This variant's C3 is fully connected: 16 x (6 x 25) + 16 (the paper's table: 1,516).
    assert layers["c3"].params == 2_416
    assert analyze("lenet5").totals()["params"] == 156 + 2_416 + 48_120 + 10_164 + 850


def test_model_variants_share_one_file():
    files = {get(n).file for n in list_models("vgg*")}
    assert len(files) == 1


def test_list_pattern():
    assert list_models("alex*") == ["alexnet", "alexnet-grouped", "alexnet-owt"]
    assert list_models("VGG16*") == ["vgg16", "vgg16_bn"]
    assert [s.name for s in models("lenet*")] == ["lenet5"]


def test_spec_path_never_imports_torch():
    code = (
        "import sys; from cnnstat.cli import cli; from cnnstat.analysis import analyze; "
        "[analyze(m).to_dict() for m in ('vgg16', 'alexnet')]; "
        "from click.testing import CliRunner; CliRunner().invoke(cli, ['flops']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'fvcore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
