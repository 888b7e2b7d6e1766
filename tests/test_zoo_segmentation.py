"""Segmentation networks: U-Net (specs/unet.yaml), FCN-32s / FCN-8s (specs/fcn.yaml) and
torchvision's fcn_resnet50, deeplabv3_resnet50 and lraspp_mobilenet_v3_large
(specs/segmentation.yaml), each against a witness written elsewhere.

- U-Net: a PyTorch module written here from the paper (figure 1, section 2), not from the
  spec: sum(numel), fvcore's MACs (a real forward at 572x572) and its output shape.
- FCN: PyTorch modules written here from the reference Caffe net.py files: sum(numel),
  FlopCounterMode (meta device) for both, fvcore for FCN-8s (a real forward at 500x500; its
  layers include every kind FCN-32s has), and the output shape.
- torchvision: its own modules on the meta device (sum(numel), FlopCounterMode) and its weights'
  published num_params and _ops.
- Other inputs and whole frames: crops and resizes take another layer's size (`like:`), so
  every model builds at any input and in frame mode; MACs and output shapes at 1920x1080
  (`flops --mode frame`) and at an odd size equal FlopCounterMode's on the same witnesses.

tests/test_zoo.py, tests/test_torch_build.py and tests/test_rf_oracle.py check every zoo model's
invariants, its build -> torch -> import round trip and its receptive field by autograd.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.analysis import Analysis, analyze
from cnnstat.spec.build import build as build_spec
from cnnstat.torch.check import flop_counter_macs, fvcore_macs
from cnnstat.zoo import get
from helpers import assert_published


def layers(name):
    return {la.name: la for la in analyze(name).layers}


def totals(name):
    return analyze(name).totals()


# --- U-Net --------------------------------------------------------------------------------------


def centre_crop(x, like):
    """x's centre window of like's spatial size (an odd difference leaves the extra pixel after)."""
    h, w = like.shape[-2:]
    dy, dx = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., dy : dy + h, dx : dx + w]


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3), nn.ReLU(inplace=True)
    )


class PaperUNet(nn.Module):
    """Ronneberger et al. 2015, figure 1: two valid 3x3 convolutions + ReLU per level, 2x2 max
    pooling; per expansive level a 2x2 up-convolution halving the channels, the contracting
    path's map centre-cropped and concatenated, two valid 3x3 convolutions; a 1x1 to the classes."""

    def __init__(self, channels=1, classes=2):
        super().__init__()
        widths = [64, 128, 256, 512, 1024]
        self.down = nn.ModuleList()
        for w in widths:
            self.down.append(double_conv(channels, w))
            channels = w
        self.up = nn.ModuleList(nn.ConvTranspose2d(w, w // 2, 2, stride=2) for w in widths[:0:-1])
        self.dec = nn.ModuleList(double_conv(w, w // 2) for w in widths[:0:-1])
        self.out = nn.Conv2d(64, classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < 4:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = up(x)
            x = dec(torch.cat([centre_crop(skip, x), x], 1))
        return self.out(x)


UNET_PARAMS = 31_030_658
UNET_MACS = 150_428_424_448


def test_unet_against_a_module_written_from_the_paper():
    module = PaperUNet()
    t = totals("unet")
    assert get("unet").input == (1, 572, 572)
    assert sum(p.numel() for p in module.parameters()) == t["params"] == UNET_PARAMS
    assert fvcore_macs(module, (1, 572, 572))["macs"] == t["macs"] == UNET_MACS
    with torch.device("meta"):
        out = PaperUNet()(torch.empty(1, 1, 572, 572))
    assert tuple(out.shape[1:]) == analyze("unet").layers[-1].output == (2, 388, 388)


def test_unet_sizes_and_crops_by_hand():
    by = layers("unet")
    # contracting path: -4 per level (two valid 3x3), /2 per pool
    sizes = [by[f"enc{i}.conv2"].output for i in (1, 2, 3, 4)] + [by["bottom.conv2"].output]
    assert sizes == [(64, 568, 568), (128, 280, 280), (256, 136, 136), (512, 64, 64), (1024, 28, 28)]
    # expansive path: x2 by the up-convolution (halving channels), the skip cropped centrally
    expansive = {4: (56, 64, 4), 3: (104, 136, 16), 2: (200, 280, 40), 1: (392, 568, 88)}
    for level, (up, skip, offset) in expansive.items():
        c, jump = 64 * 2 ** (level - 1), 2 ** (level - 1)
        assert by[f"up{level}.upconv"].output == (c, up, up)
        assert by[f"up{level}.crop"].output == (c, up, up)
        assert by[f"up{level}.concat"].output == (2 * c, up, up)
        assert (skip - up) // 2 == offset
        # the crop moves the field's start by offset x jump
        assert by[f"up{level}.crop"].rf.start[0] == by[f"enc{level}.conv2"].rf.start[0] + offset * jump
        assert by[f"up{level}.conv.conv2"].output == (c, up - 4, up - 4)
    # up-convolutions: C_in x C_out x 2 x 2 weights + C_out biases; MACs = input elements x 4 x C_out
    assert by["up4.upconv"].params == 1024 * 512 * 4 + 512
    assert by["up4.upconv"].macs == 1024 * 28 * 28 * 4 * 512
    assert by["score"].params == 64 * 2 + 2


# --- FCN ----------------------------------------------------------------------------------------


class CaffeFCN(nn.Module):
    """voc-fcn32s / voc-fcn8s net.py in PyTorch: Caffe's Pooling rounds up (ceil_mode),
    Deconvolution has no bias and group 1, crop(a, b) = a[offset : offset + b's size]."""

    def __init__(self, stride, classes=21):
        super().__init__()
        self.stride = stride
        stages, cin = [], 3
        for stage, (width, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
            convs = []
            for i in range(n):
                pad = 100 if stage == i == 0 else 1
                convs += [nn.Conv2d(cin, width, 3, padding=pad), nn.ReLU(inplace=True)]
                cin = width
            stages.append(nn.Sequential(*convs, nn.MaxPool2d(2, 2, ceil_mode=True)))
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Sequential(
            nn.Conv2d(512, 4096, 7),
            nn.ReLU(inplace=True),
            nn.Dropout2d(),
            nn.Conv2d(4096, 4096, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(),
            nn.Conv2d(4096, classes, 1),
        )
        if stride == 32:
            self.upscore = nn.ConvTranspose2d(classes, classes, 64, stride=32, bias=False)
        else:
            self.upscore2 = nn.ConvTranspose2d(classes, classes, 4, stride=2, bias=False)
            self.score_pool4 = nn.Conv2d(512, classes, 1)
            self.upscore_pool4 = nn.ConvTranspose2d(classes, classes, 4, stride=2, bias=False)
            self.score_pool3 = nn.Conv2d(256, classes, 1)
            self.upscore8 = nn.ConvTranspose2d(classes, classes, 16, stride=8, bias=False)

    @staticmethod
    def crop(x, like, offset):
        h, w = like.shape[-2:]
        return x[..., offset : offset + h, offset : offset + w]

    def forward(self, data):
        x, pools = data, []
        for stage in self.stages:
            x = stage(x)
            pools.append(x)
        x = self.fc(x)
        if self.stride == 32:
            return self.crop(self.upscore(x), data, 19)
        x = self.upscore2(x)
        x = x + self.crop(self.score_pool4(pools[3]), x, 5)
        x = self.upscore_pool4(x)
        x = x + self.crop(self.score_pool3(pools[2]), x, 9)
        return self.crop(self.upscore8(x), data, 31)


FCN = {"fcn32s": (32, 136_152_917, 181_365_854_976), "fcn8s": (8, 134_489_759, 181_529_034_048)}


@pytest.mark.parametrize("name", FCN)
def test_fcn_against_a_module_written_from_caffe_net_py(name):
    stride, params, macs = FCN[name]
    t = totals(name)
    assert get(name).input == (3, 500, 500)
    with torch.device("meta"):
        module = CaffeFCN(stride)
    assert sum(p.numel() for p in module.parameters()) == t["params"] == params
    assert flop_counter_macs(module, (3, 500, 500)) == t["macs"] == macs
    out = module(torch.empty(1, 3, 500, 500, device="meta"))
    assert tuple(out.shape[1:]) == analyze(name).layers[-1].output == (21, 500, 500)


def test_fcn8s_fvcore():
    assert fvcore_macs(CaffeFCN(8), (3, 500, 500))["macs"] == FCN["fcn8s"][2]


def test_fcn_counts_the_frozen_deconvolutions():
    # Caffe Deconvolution, group 1, no bias: 21 x 21 x k x k weights (fixed to bilinear
    # interpolation, lr_mult 0, but blobs of the net all the same)
    by = layers("fcn32s")
    assert (by["upscore"].weights, by["upscore"].biases) == (21 * 21 * 64 * 64, 0)
    assert by["upscore"].output == (21, (16 - 1) * 32 + 64, 544)
    assert by["upscore"].macs == 21 * 16 * 16 * 64 * 64 * 21
    by = layers("fcn8s")
    weights = [by[n].weights for n in ("upscore2", "upscore_pool4", "upscore8")]
    assert weights == [21 * 21 * 4 * 4, 21 * 21 * 4 * 4, 21 * 21 * 16 * 16]
    # the rest is VGG-16's 13 convolutions and fc6/fc7 as convolutions (vgg16: 138,357,544
    # with a 1000-way fc8 of 4,097,000) plus score_fr (4096 x 21 + 21)
    vgg_body = 138_357_544 - 4_097_000
    assert totals("fcn32s")["params"] == vgg_body + 4096 * 21 + 21 + 21 * 21 * 64 * 64
    extra_8s = (512 * 21 + 21) + (256 * 21 + 21) + 2 * 21 * 21 * 16 + 21 * 21 * 256
    assert totals("fcn8s")["params"] == vgg_body + 4096 * 21 + 21 + extra_8s


def test_fcn_sizes_and_caffe_offsets():
    by = layers("fcn8s")
    # conv1_1 pads 100; Caffe's pooling rounds up: 698 -> 349 -> 175 -> 88 -> 44 -> 22
    pools = [by[f"pool{i}"].output[1] for i in range(1, 6)]
    assert by["conv1_1"].output == (64, 698, 698) and pools == [349, 175, 88, 44, 22]
    assert by["fc6"].output == (4096, 16, 16)
    assert [by[n].output[1] for n in ("upscore2", "upscore_pool4", "upscore8")] == [34, 70, 568]
    assert [by[n].args["offset"] for n in ("score_pool4c", "score_pool3c", "score")] == [5, 9, 31]
    assert layers("fcn32s")["score"].args["offset"] == 19
    # Caffe's coord_map picks the offsets that align the maps: after the final crop, output
    # pixel u is centred on input pixel u (start 0, jump 1), in both models
    for name in FCN:
        rf = analyze(name).receptive_field().rf
        assert (rf.start, rf.jump) == ((0, 0), (1, 1))


# --- torchvision --------------------------------------------------------------------------------

# torchvision's weights metadata (torchvision/models/segmentation/{fcn,deeplabv3,lraspp}.py,
# *_Weights.COCO_WITH_VOC_LABELS_V1.meta): "num_params" exact and "_ops" (GMAC of conv and
# linear layers, aux head included, at the weights' 520x520 resize_size) to the printed digits.
TORCHVISION = {
    "fcn_resnet50": (35_322_218, 152.717),
    "deeplabv3_resnet50": (42_004_074, 178.722),
    "lraspp_mobilenet_v3_large": (3_221_538, 2.086),
}
# cnnstat's exact MACs at 520x520 (== FlopCounterMode on torchvision's module, below)
MACS = {
    "fcn_resnet50": 152_716_512_000,
    "deeplabv3_resnet50": 178_721_945_088,
    "lraspp_mobilenet_v3_large": 2_086_219_688,
}
AUX = {"fcn_resnet50": True, "deeplabv3_resnet50": True, "lraspp_mobilenet_v3_large": False}


def torchvision_module(name, **kwargs):
    import torchvision

    kwargs = {"aux_loss": True, **kwargs} if AUX[name] else kwargs
    with torch.device("meta"):
        return torchvision.models.get_model(
            name, weights=None, weights_backbone=None, num_classes=21, **kwargs
        ).eval()


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_figures(name):
    assert_published(name, *TORCHVISION[name])
    assert get(name).input == (3, 520, 520)
    assert totals(name)["macs"] == MACS[name]


@pytest.mark.parametrize("name", TORCHVISION)
def test_pinned_figures_are_the_installed_torchvision_metadata(name):
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    assert (weights.meta["num_params"], weights.meta["_ops"]) == TORCHVISION[name]
    assert weights.transforms.keywords["resize_size"] == 520
    assert len(weights.meta["categories"]) == 21


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_module(name):
    # torchvision's own module (aux head as the weights have it): sum(numel), FlopCounterMode
    # (which, like cnnstat, counts no MACs for the bilinear interpolations) and output shapes
    module = torchvision_module(name)
    assert sum(p.numel() for p in module.parameters()) == TORCHVISION[name][0]
    assert flop_counter_macs(module, (3, 520, 520)) == MACS[name]
    out = module(torch.empty(1, 3, 520, 520, device="meta"))
    by = layers(name)
    assert sorted(out) == (["aux", "out"] if AUX[name] else ["out"])
    for key, tensor in out.items():
        assert tuple(tensor.shape[1:]) == by[key].output == (21, 520, 520)


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_the_published_counts_include_the_aux_head(name):
    without = sum(p.numel() for p in torchvision_module(name, aux_loss=False).parameters())
    aux = sum(la.params for la in analyze(name).layers if la.name.startswith("aux_classifier."))
    # FCNHead(1024, 21): 3x3 conv 1024 -> 256, BN, 1x1 conv 256 -> 21 with bias
    assert aux == 1024 * 256 * 9 + 2 * 256 + 256 * 21 + 21
    assert without + aux == TORCHVISION[name][0]


def test_dilated_backbones_are_torchvisions():
    # replace_stride_with_dilation=[False, True, True]: every 3x3 of layer3/layer4 has
    # torchvision's stride, dilation and padding, and both stages keep 65x65 (output stride 8)
    tv = dict(torchvision_module("fcn_resnet50").named_modules())
    by = layers("fcn_resnet50")
    for stage, n in (("layer3", 6), ("layer4", 3)):
        for i in range(n):
            ours = by[f"backbone.{stage}.block.{i}.add.main.conv2"]
            theirs = tv[f"backbone.{stage}.{i}.conv2"]
            assert (ours.args["s"], ours.args["d"], ours.args["p"]) == (
                theirs.stride[0],
                theirs.dilation[0],
                theirs.padding[0],
            )
            assert ours.output[1:] == (65, 65)
    # MobileNetV3's dilated C5: the 5x5 depthwise convolutions of features 13-15
    tv = dict(torchvision_module("lraspp_mobilenet_v3_large").named_modules())
    by = layers("lraspp_mobilenet_v3_large")
    for i in (13, 14, 15):
        ours = [la for n, la in by.items() if n.startswith(f"backbone.f{i}.") and "depthwise" in n]
        ours = [la for la in ours if la.op == "dwconv"]
        theirs = tv[f"backbone.{i}.block.1.0"]
        assert [(la.args["s"], la.args["d"], la.args["p"]) for la in ours] == [
            (theirs.stride[0], theirs.dilation[0], theirs.padding[0])
        ]
    low = by[by["low_classifier"].inputs[0]]  # "low": features[4]'s output, stride 8
    assert low.name.startswith("backbone.f4.") and low.output == (40, 65, 65)
    assert by["backbone.f16.act"].output == (960, 33, 33)  # "high": features[16], stride 16


# --- receptive fields ---------------------------------------------------------------------------

# (size, jump, start) of the layer `cnnstat rf` reports (tests/test_rf_oracle.py measures them
# by autograd). U-Net: the 388x388 output's first unit is centred 92 pixels in ((572 - 388) / 2);
# its up-convolutions copy each unit to a 2x2 block, so units 0-15 of a row share one bottom-level
# unit (field 140 at jump 16) and the largest field, 204, exceeds the 185 a uniform field would
# have. FCN: the crops align output and input (start 0). torchvision: the x8 bilinear resize
# makes the jump 1; LR-ASPP's 33x33 "high" map resized to 65x65 has jump 16 x 33/65 = 528/65,
# which the sum with the stride-8 branch keeps as the larger one: 528/65 / 8 = 66/65.
FIELDS = {
    "unet": ("score", (204, 204), (1, 1), (92, 92)),
    "fcn32s": ("score", (436, 436), (1, 1), (0, 0)),
    "fcn8s": ("score", (468, 468), (1, 1), (0, 0)),
    "fcn_resnet50": ("out", (451, 451), (1, 1), (-3.5, -3.5)),
    "deeplabv3_resnet50": ("out", (1027, 1027), (1, 1), (-3.5, -3.5)),
    "lraspp_mobilenet_v3_large": ("out", (691, 691), (66 / 65, 66 / 65), (-487 / 65, -487 / 65)),
}


@pytest.mark.parametrize("name", FIELDS)
def test_receptive_fields(name):
    layer = analyze(name).receptive_field()
    expected = FIELDS[name]
    assert layer.name == expected[0]
    assert layer.rf.size == expected[1]
    assert [float(v) for v in layer.rf.jump] == pytest.approx(expected[2])
    assert [float(v) for v in layer.rf.start] == pytest.approx(expected[3])


def test_unet_bottom_field_by_hand():
    # 3x3 convs add 2 x jump, 2x2 pools add 1 x jump and double it: 5, 6 (j2), 14, 16 (j4), 32,
    # 36 (j8), 68, 76 (j16), 140
    by = layers("unet")
    assert [by[n].rf.size[0] for n in ("enc1.conv2", "pool1", "enc2.conv2", "pool2", "bottom.conv2")] == [
        5,
        6,
        14,
        16,
        140,
    ]
    assert by["bottom.conv2"].rf.jump == (16, 16)


# --- other inputs and whole frames --------------------------------------------------------------


def witness(name):
    """The model's independent module on the meta device: written here, or torchvision's."""
    if name in TORCHVISION:
        return torchvision_module(name)
    with torch.device("meta"):
        return PaperUNet() if name == "unet" else CaffeFCN(FCN[name][0])


def witness_outputs(module, shape):
    out = module(torch.empty(1, *shape, device="meta"))
    return [tuple(t.shape[1:]) for t in (out.values() if isinstance(out, dict) else [out])]


# `flops --mode frame --resolution 1920x1080`: output map and MACs per frame, each equal to
# FlopCounterMode's on the witness at 1080x1920 (below). U-Net's valid convolutions give
# 884 x 1732 (floor pooling drops a row at pool3 and pool4, a column at pool3: 1080 and 1920 are
# not 16n + 124); the others give the frame's size (Caffe's crop and torchvision's resize to
# the input).
FRAME = {
    "unet": ((2, 884, 1732), 1_249_546_646_784),
    "fcn8s": ((21, 1080, 1920), 1_082_141_438_496),
    "fcn32s": ((21, 1080, 1920), 1_081_461_747_456),
    "fcn_resnet50": ((21, 1080, 1920), 1_171_127_808_000),
    "deeplabv3_resnet50": ((21, 1080, 1920), 1_370_550_591_488),
    "lraspp_mobilenet_v3_large": ((21, 1080, 1920), 15_699_177_600),
}


@pytest.mark.parametrize("name", FRAME)
def test_frame_mode_at_full_hd(name, run):
    output, macs = FRAME[name]
    res = run("flops", name, "--mode", "frame", "--resolution", "1920x1080", "--format", "json")
    assert res.exit_code == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert (tuple(row["output"]), row["positions"], row["macs_per_frame"]) == (
        output,
        output[1] * output[2],
        macs,
    )
    assert row["complete"]
    frame = (get(name).input[0], 1080, 1920)
    module = witness(name)
    assert flop_counter_macs(module, frame) == macs
    assert set(witness_outputs(module, frame)) == {output}


# the layers giving the witness's outputs (torchvision's dict: "out", then "aux")
OUTPUTS = {
    "unet": ["score"],
    "fcn8s": ["score"],
    "fcn32s": ["score"],
    "fcn_resnet50": ["out", "aux"],
    "deeplabv3_resnet50": ["out", "aux"],
    "lraspp_mobilenet_v3_large": ["out"],
}


@pytest.mark.parametrize("name", FRAME)
def test_another_input_follows_the_witness(name):
    # an odd, non-square input: poolings meet odd maps, and torchvision's stride-8 map (42 x 51)
    # times 8 is not the input (its resize to the input's size is)
    spec = get(name)
    shape = (spec.input[0], 333, 401)
    graph = build_spec(spec, shape)
    module = witness(name)
    assert Analysis(graph).totals()["macs"] == flop_counter_macs(module, shape)
    by = {la.name: la.output for la in graph.layers}
    assert witness_outputs(module, shape) == [by[k] for k in OUTPUTS[name]]


def test_unet_at_the_papers_tile_sizes():
    # 16n + 124 pixels: every pooling meets an even map, and the output is 184 pixels smaller
    # (92 a side: the valid convolutions' losses, carried up by the up-convolutions)
    for n in (188, 252, 572):
        graph = build_spec(get("unet"), (1, n, n))
        assert graph.layers[-1].output == (2, n - 184, n - 184)
        out = {la.name: la.output for la in graph.layers}
        assert [out[la.inputs[0]][1] % 2 for la in graph.layers if la.op == "maxpool"] == [0, 0, 0, 0]
