"""The mobile networks of the zoo against their published figures."""

import pytest

from cnnstat.analysis import analyze
from cnnstat.zoo import get
from helpers import assert_published

# torchvision's weights metadata (torchvision/models/{mobilenetv2,mobilenetv3,squeezenet,
# shufflenetv2,mnasnet,efficientnet}.py, IMAGENET1K_V1 `meta`): "num_params", exact, and
# "_ops", GMAC of conv + linear layers at 224x224, to the printed digits.
TORCHVISION = {
    "mobilenet_v2": (3_504_872, 0.301),
    "mobilenet_v3_large": (5_483_032, 0.217),
    "mobilenet_v3_small": (2_542_856, 0.057),
    "squeezenet1_0": (1_248_424, 0.819),
    "squeezenet1_1": (1_235_496, 0.349),
    "shufflenet_v2_x0_5": (1_366_792, 0.04),
    "shufflenet_v2_x1_0": (2_278_604, 0.145),
    "shufflenet_v2_x1_5": (3_503_624, 0.296),
    "shufflenet_v2_x2_0": (7_393_996, 0.583),
    "mnasnet1_0": (4_383_312, 0.314),
    "efficientnet_b0": (5_288_548, 0.386),
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_figures(name):
    assert_published(name, *TORCHVISION[name])


def test_mobilenet_v1_paper():
    # Howard et al. 2017, table 8 (and table 1's network): 1.0 MobileNet-224, 569 million
    # mult-adds, 4.2 million parameters.
    a = analyze("mobilenet_v1")
    t, by_kind = a.totals(), a.by_kind()
    assert t["macs"] == 568_740_352
    assert round(t["macs"] / 1e6) == 569
    # The paper counts weights only: 3,185,088 conv + 1,024,000 fc = 4,209,088 (its table 2
    # gives the fc 24.33% of them: 1,024,000 / 4,209,088). cnnstat's parameters add the fc
    # bias (1,000) and batch norm's gamma and beta (2 x 10,944 channels): 4,231,976. Both
    # round to the paper's 4.2M.
    assert t["weights"] - by_kind["other"]["weights"] == 4_209_088
    assert round(100 * by_kind["fc"]["weights"] / 4_209_088, 2) == 24.33
    assert t["params"] == 4_209_088 + 1_000 + 2 * 10_944 == 4_231_976
    assert round(t["params"] / 1e6, 1) == 4.2


def test_mobilenet_v1_tf_slim_table():
    # tensorflow/models research/slim/nets/mobilenet_v1.py, docstring "100% Mobilenet V1
    # (base) with input size 224x224": the convolutions without the logits, 3,185,088
    # params and 567,716,352 MACs; first and last layer as listed there.
    a = analyze("mobilenet_v1")
    conv = a.by_kind()["conv"]
    assert (conv["params"], conv["macs"]) == (3_185_088, 567_716_352)
    layers = {la.name: la for la in a.layers}
    conv0 = layers["features.conv0.conv1"]
    assert (conv0.weights, conv0.macs) == (864, 10_838_016)
    last = layers["features.separable13.pointwise.conv1"]
    assert (last.weights, last.macs) == (1_048_576, 51_380_224)
    # 13 depthwise-separable blocks: 13 depthwise and 14 standard convolutions, 1 fc
    ops = [la.op for la in a.layers]
    assert (ops.count("dwconv"), ops.count("conv"), ops.count("fc")) == (13, 14, 1)
    assert layers["features.separable13.pointwise.relu1"].output == (1024, 7, 7)


def test_mobilenet_v1_receptive_field():
    # 3x3/2 stem, then 13 3x3 depthwise convs at strides 1,2,1,2,1,2,1,1,1,1,1,2,1:
    # 3 + 2*(2 + 2 + 4 + 4 + 8 + 8 + 5*16 + 16 + 32) = 315 pixels, jump 32. TF 'SAME'
    # padding puts the extra pixel after: the first unit's field is centred at pixel 31.
    rf = analyze("mobilenet_v1").receptive_field().rf
    assert (rf.size, rf.jump, rf.start) == ((315, 315), (32, 32), (31.0, 31.0))


def test_squeeze_channels():
    layers = {la.name: la for la in analyze("mobilenet_v3_large").layers}
    # MobileNet v3: _make_divisible(expanded // 4, 8); 72 // 4 = 18 -> 24, 120 // 4 = 30 -> 32
    assert layers["features.inverted_residual4.block.se.excite.scale.fc1"].output[0] == 24
    assert layers["features.inverted_residual5.residual.main.block.se.excite.scale.fc1"].output[0] == 32
    layers = {la.name: la for la in analyze("efficientnet_b0").layers}
    # EfficientNet: max(1, the block's input channels // 4), not the expanded width
    assert layers["features.stage1.block.se.excite.scale.fc1"].output[0] == 8  # 32 // 4
    assert layers["features.stage2.0.block.se.excite.scale.fc1"].output[0] == 4  # 16 // 4
    assert layers["features.stage2.1.residual.main.block.se.excite.scale.fc1"].output[0] == 6  # 24 // 4


def test_shufflenet_units():
    layers = {la.name: la for la in analyze("shufflenet_v2_x1_0").layers}
    # stride 2: both branches see all 24 input channels; stride 1: each half of 116
    assert layers["stage2.down.concat1.branch1.dwconv1"].weights == 24 * 9
    assert layers["stage2.down.concat1.branch2.main.conv1"].weights == 24 * 58
    assert layers["stage2.unit.0.concat1.branch1.slice1"].output == (58, 28, 28)
    assert layers["stage2.unit.0.concat1.branch2.main.conv1"].weights == 58 * 58
    assert layers["stage2.unit.0.shuffle1"].output == (116, 28, 28)


def test_squeezenet_pools_round_up():
    layers = {la.name: la for la in analyze("squeezenet1_0").layers}
    # 224 -> 109 (7x7/2) -> 54 -> 27 -> 13 with ceil_mode (floor would give 54, 26, 12)
    assert [layers[n].output[1] for n in ("conv1", "pool1", "pool4", "pool8")] == [109, 54, 27, 13]


def test_mobile_models_share_their_blocks():
    files = {get(n).file for n in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mnasnet1_0")}
    assert files == {get("efficientnet_b0").file}
    assert get("shufflenet_v2_x0_5").file == get("shufflenet_v2_x2_0").file
    assert get("squeezenet1_0").file == get("squeezenet1_1").file


def test_receptive_fields_without_squeeze_excitation():
    # no SE: the receptive field of the last feature map (size, jump) per axis
    expected = {
        "mobilenet_v2": (491, 32),
        "mnasnet1_0": (843, 32),
        "squeezenet1_0": (155, 16),
        "squeezenet1_1": (207, 16),
        "shufflenet_v2_x1_0": (527, 32),
    }
    for name, (size, jump) in expected.items():
        rf = analyze(name).receptive_field().rf
        assert (rf.size, rf.jump) == ((size, size), (jump, jump)), name


@pytest.mark.parametrize(
    "name, size", [("mobilenet_v3_large", 595), ("mobilenet_v3_small", 639), ("efficientnet_b0", 851)]
)
def test_se_receptive_field(name, size):
    # Squeeze-excitation gates are globally pooled: merges take the field of the spatial
    # branch, so the gate neither widens the field nor multiplies the jump.
    assert analyze(name).receptive_field().rf.size == (size, size)
    assert analyze(name).receptive_field().rf.jump == (32, 32)
