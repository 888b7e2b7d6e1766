"""DenseNet, GoogLeNet and the Inception family against their published figures.

The invariants every zoo model must satisfy (layer sums, JSON contract, documentation) run in
tests/test_zoo.py; this file pins the figures published for these models, and where a figure
is not reproduced, cnnstat's own value with the reason.
"""

import pytest

from cnnstat.analysis import analyze
from cnnstat.zoo import get, list_models
from helpers import assert_published, gmac_digits

NEW_MODELS = [
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "googlenet",
    "inception_v3",
    "inception_v3-noaux",
    "bn_inception",
    "inception_resnet_v2",
]


def test_models_are_in_the_zoo():
    assert set(NEW_MODELS) <= set(list_models())
    assert list_models("densenet*") == ["densenet121", "densenet161", "densenet169", "densenet201"]
    assert list_models("inception_v3*") == ["inception_v3", "inception_v3-noaux"]


def test_densenet_variants_share_one_file():
    assert len({get(n).file for n in list_models("densenet*")}) == 1
    assert get("inception_v3").file == get("inception_v3-noaux").file


# torchvision's weights metadata: "num_params" and "_ops" (GMAC of conv + linear layers, at
# the weights' crop size: 224x224, inception_v3 299x299).
# Sources: pytorch/vision torchvision/models/densenet.py (DenseNet{121,161,169,201}_Weights),
# googlenet.py (GoogLeNet_Weights), inception.py (Inception_V3_Weights), IMAGENET1K_V1 meta.
TORCHVISION = {
    "densenet121": (7_978_856, 2.834),
    "densenet161": (28_681_000, 7.728),
    "densenet169": (14_149_480, 3.36),
    "densenet201": (20_013_928, 4.291),
    "googlenet": (6_624_904, 1.498),  # without the aux classifiers (aux_logits=False)
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_figures(name):
    assert_published(name, *TORCHVISION[name])


# Exact counts, so that a change to the specs or the ops shows up here first.
EXACT = {
    "densenet121": (7_978_856, 2_834_161_664),
    "densenet161": (28_681_000, 7_727_907_072),
    "densenet169": (14_149_480, 3_359_843_328),
    "densenet201": (20_013_928, 4_291_365_888),
    "googlenet": (6_624_904, 1_498_376_192),
    "inception_v3": (27_161_264, 5_718_899_296),
    "inception_v3-noaux": (23_834_568, 5_713_216_096),
    "bn_inception": (11_295_240, 2_032_600_064),
    "inception_resnet_v2": (55_843_464, 13_155_794_016),
}


@pytest.mark.parametrize("name", EXACT)
def test_exact_counts(name):
    t = analyze(name).totals()
    assert (t["params"], t["macs"]) == EXACT[name]


# --- Inception v3 and its auxiliary head ----------------------------------------------------

# torchvision Inception_V3_Weights.IMAGENET1K_V1: "num_params": 27161264, "_ops": 5.713.
INCEPTION_V3_PARAMS = 27_161_264
INCEPTION_V3_GMACS = 5.713
# AuxLogits: conv0 768->128 1x1 (+BN), conv1 128->768 5x5 (+BN), fc 768->1000
AUX_PARAMS = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
# at 299x299 the head sees 768x5x5 (avg pool 5, stride 3 over 17x17)
AUX_MACS = 5 * 5 * 128 * 768 + 1 * 1 * 768 * 128 * 25 + 768 * 1000


def test_inception_v3_num_params_include_the_aux_head():
    with_aux = analyze("inception_v3").totals()
    without = analyze("inception_v3-noaux").totals()
    assert with_aux["params"] == INCEPTION_V3_PARAMS
    assert AUX_PARAMS == 3_326_696
    assert with_aux["params"] - without["params"] == AUX_PARAMS


def test_inception_v3_ops_exclude_the_aux_head():
    # torchvision's _ops (5.713) counts the eval-mode forward, which skips AuxLogits: it
    # equals the network without the head. With the head's 5,683,200 MACs it would be 5.719.
    with_aux = analyze("inception_v3").totals()["macs"]
    without = analyze("inception_v3-noaux").totals()["macs"]
    assert AUX_MACS == 5_683_200
    assert with_aux - without == AUX_MACS
    assert gmac_digits(without, INCEPTION_V3_GMACS) == INCEPTION_V3_GMACS
    assert gmac_digits(with_aux, INCEPTION_V3_GMACS) == 5.719


def test_inception_v3_aux_head_branches_off_mixed_6e():
    layers = {la.name: la for la in analyze("inception_v3").layers}
    assert layers["AuxLogits.avgpool1"].inputs == ("Mixed_6e.concat1",)
    assert layers["AuxLogits.conv1.conv"].output == (768, 1, 1)
    # the main path resumes on Mixed_6e, not on the aux head's output
    assert layers["Mixed_7a.concat1.branch3x3.basic1.conv"].inputs == ("Mixed_6e.concat1",)
    assert layers["Mixed_7c.concat1"].output == (2048, 8, 8)
    assert not any(
        n.startswith("AuxLogits") for n in (la.name for la in analyze("inception_v3-noaux").layers)
    )


# --- The SENet paper's table ---------------------------------------------------------------

# Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, table 2 ("re-implementation"
# GFLOPs, which are multiply-accumulates): BN-Inception 2.03 at 224x224, Inception-ResNet-v2
# 11.75 at 299x299.
SENET_BN_INCEPTION = 2.03
SENET_INCEPTION_RESNET_V2 = 11.75

# Parameter counts from an independent implementation: osmr/imgclsmob (pytorchcv)
# pytorch/pytorchcv/models/bninception.py `_test`: weight_count == 11295240, and
# inceptionresnetv2.py `_test`: weight_count == 55843464 (both ported from Cadene's weights).
BN_INCEPTION_PARAMS = 11_295_240
INCEPTION_RESNET_V2_PARAMS = 55_843_464


def test_bn_inception_published_figures():
    t = analyze("bn_inception").totals()
    assert t["params"] == BN_INCEPTION_PARAMS
    assert gmac_digits(t["macs"], SENET_BN_INCEPTION) == SENET_BN_INCEPTION


def test_inception_resnet_v2_params():
    assert analyze("inception_resnet_v2").totals()["params"] == INCEPTION_RESNET_V2_PARAMS


def test_inception_resnet_v2_macs_differ_from_the_senet_table():
    # Not reproduced: the TF-slim network (Cadene / timm, the one with 55,843,464 parameters)
    # performs 13.156 G MACs at 299x299, 1.41 G (12%) more than the SENet table's 11.75. The
    # NASNet paper (Zoph et al., CVPR 2018, table 2) gives 13.2 B mult-adds for the same
    # network; SENet's figure is for the authors' own re-implementation, not published as code.
    macs = analyze("inception_resnet_v2").totals()["macs"]
    assert gmac_digits(macs, 13.156) == 13.156
    assert gmac_digits(macs, SENET_INCEPTION_RESNET_V2) != SENET_INCEPTION_RESNET_V2


# --- Shapes and receptive fields -------------------------------------------------------------

FINAL_FEATURES = {
    "densenet121": ("norm5", (1024, 7, 7)),
    "densenet161": ("norm5", (2208, 7, 7)),
    "densenet169": ("norm5", (1664, 7, 7)),
    "densenet201": ("norm5", (1920, 7, 7)),
    "googlenet": ("inception5b.concat1", (1024, 7, 7)),
    "inception_v3": ("Mixed_7c.concat1", (2048, 8, 8)),
    "bn_inception": ("inception_5b.concat1", (1024, 7, 7)),
    "inception_resnet_v2": ("conv2d_7b.relu", (1536, 8, 8)),
}


@pytest.mark.parametrize("name", FINAL_FEATURES)
def test_final_feature_map(name):
    layer, shape = FINAL_FEATURES[name]
    assert {la.name: la.output for la in analyze(name).layers}[layer] == shape


# (size, jump) of the last spatial layer. The fields exceed the input: every one of these
# networks sees the whole image (and its zero padding) from its last feature map.
RECEPTIVE_FIELDS = {
    "densenet121": (2071, 32),
    "densenet161": (2967, 32),
    "densenet169": (3351, 32),
    "densenet201": (3863, 32),
    "googlenet": (379, 32),
    "inception_v3": (1311, 32),
    "inception_v3-noaux": (1311, 32),
    # at global_pool, Cadene's AvgPool2d(7) over the 7x7 map (699 at inception_5b)
    "bn_inception": (891, 32),
    "inception_resnet_v2": (3039, 32),
}


@pytest.mark.parametrize("name", RECEPTIVE_FIELDS)
def test_receptive_field(name):
    size, jump = RECEPTIVE_FIELDS[name]
    rf = analyze(name).receptive_field().rf
    assert rf.size == (size, size)
    assert rf.jump == (jump, jump)


def test_densenet_transitions_halve_channels_and_resolution():
    layers = {la.name: la.output for la in analyze("densenet121").layers}
    assert layers["denseblock1.5.concat1"] == (256, 56, 56)  # 64 + 6 x 32
    assert layers["transition1.pool"] == (128, 28, 28)
    assert layers["transition2.pool"] == (256, 14, 14)
    assert layers["transition3.pool"] == (512, 7, 7)


def test_googlenet_ceil_mode_pools():
    # torchvision's MaxPool2d(3, 2, ceil_mode=True): 112 -> 56 (floor mode would give 55)
    layers = {la.name: la.output for la in analyze("googlenet").layers}
    assert layers["maxpool1"] == (64, 56, 56)
    assert layers["maxpool2"] == (192, 28, 28)
    assert layers["maxpool3"] == (480, 14, 14)
    assert layers["maxpool4"] == (832, 7, 7)


def test_inception_resnet_v2_residual_blocks():
    names = [la.name for la in analyze("inception_resnet_v2").layers if la.op == "add"]
    assert len(names) == 10 + 20 + 9 + 1
    layers = {la.name: la for la in analyze("inception_resnet_v2").layers}
    # the last Block8 has no relu after its add
    assert "block8.relu1" not in layers
    assert "repeat_2.8.relu1" in layers
